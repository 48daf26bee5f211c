package eas

import (
	"crypto/sha256"
	"encoding/hex"
	"path"
	"strconv"
	"strings"

	"github.com/easd/easd/store"
	"github.com/easd/easd/wbxml"
)

// Policy is the device security policy sent in Provision's
// EASProvisionDoc (MS-ASPROV 2.2.2.27). The zero value is permissive.
type Policy struct {
	// Enforce makes every command but Provision require the current policy
	// key (MS-ASPROV 3.2.5.1). Without it, devices may sync unprovisioned,
	// and remote wipe only reaches devices that provision of their own accord.
	Enforce bool

	PasswordRequired   bool // DevicePasswordEnabled
	AlphanumericPIN    bool // AlphanumericDevicePasswordRequired
	AllowSimplePIN     bool // AllowSimpleDevicePassword (1234, 1111)
	MinPasswordLength  int  // MinDevicePasswordLength; 0 none
	MinComplexChars    int  // MinDevicePasswordComplexCharacters; 0 none
	InactivityLockSecs int  // MaxInactivityTimeDeviceLock; 0 none
	WipeAfterFailures  int  // MaxDevicePasswordFailedAttempts; 0 never
	PasswordExpireDays int  // DevicePasswordExpiration; 0 never
	PasswordHistory    int  // DevicePasswordHistory
	RequireEncryption  bool // RequireDeviceEncryption
	AttachmentsBlocked bool // AttachmentsEnabled = 0
	MaxAttachmentSize  int  // MaxAttachmentSize in bytes; 0 no limit
	CameraBlocked      bool // AllowCamera = 0
	HTMLEmailBlocked   bool // AllowHTMLEmail = 0
}

// DefaultPolicy is enforced and permissive: devices must provision (so a
// remote wipe always reaches them) but nothing is demanded of them.
var DefaultPolicy = Policy{Enforce: true, AllowSimplePIN: true}

// Hash identifies the policy's content; a device provisioned under another
// hash is sent back to Provision (status 143, MS-ASCMD 2.2.2).
func (p Policy) Hash() string {
	var b strings.Builder
	for _, n := range p.doc().Children {
		b.WriteString(n.Tag.String())
		b.WriteByte('=')
		b.Write(n.Value)
		b.WriteByte(';')
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:8])
}

func b01(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// doc renders the EASProvisionDoc, MS-ASPROV 2.2.2.27. Elements are in the
// schema's order; unlimited numbers are left out, as Exchange does.
func (p Policy) doc() *wbxml.Node {
	d := wbxml.E(wbxml.ProvisionEASProvisionDoc)
	add := func(t wbxml.Tag, v string) { d.Append(wbxml.T(t, v)) }
	num := func(t wbxml.Tag, n int) {
		if n > 0 {
			add(t, strconv.Itoa(n))
		}
	}
	add(wbxml.ProvisionDevicePasswordEnabled, b01(p.PasswordRequired))
	add(wbxml.ProvisionAlphanumericDevicePasswordRequired, b01(p.AlphanumericPIN))
	add(wbxml.ProvisionPasswordRecoveryEnabled, "0")
	add(wbxml.ProvisionRequireStorageCardEncryption, b01(p.RequireEncryption))
	add(wbxml.ProvisionAttachmentsEnabled, b01(!p.AttachmentsBlocked))
	num(wbxml.ProvisionMinDevicePasswordLength, p.MinPasswordLength)
	num(wbxml.ProvisionMaxInactivityTimeDeviceLock, p.InactivityLockSecs)
	num(wbxml.ProvisionMaxDevicePasswordFailedAttempts, p.WipeAfterFailures)
	num(wbxml.ProvisionMaxAttachmentSize, p.MaxAttachmentSize)
	add(wbxml.ProvisionAllowSimpleDevicePassword, b01(p.AllowSimplePIN))
	num(wbxml.ProvisionDevicePasswordExpiration, p.PasswordExpireDays)
	add(wbxml.ProvisionDevicePasswordHistory, strconv.Itoa(p.PasswordHistory))
	add(wbxml.ProvisionAllowStorageCard, "1")
	add(wbxml.ProvisionAllowCamera, b01(!p.CameraBlocked))
	add(wbxml.ProvisionRequireDeviceEncryption, b01(p.RequireEncryption))
	add(wbxml.ProvisionAllowUnsignedApplications, "1")
	add(wbxml.ProvisionAllowUnsignedInstallationPackages, "1")
	if p.MinComplexChars > 0 {
		add(wbxml.ProvisionMinDevicePasswordComplexCharacters, strconv.Itoa(p.MinComplexChars))
	}
	add(wbxml.ProvisionAllowWiFi, "1")
	add(wbxml.ProvisionAllowTextMessaging, "1")
	add(wbxml.ProvisionAllowPOPIMAPEmail, "1")
	add(wbxml.ProvisionAllowBluetooth, "2")
	add(wbxml.ProvisionAllowIrDA, "1")
	add(wbxml.ProvisionRequireManualSyncWhenRoaming, "0")
	add(wbxml.ProvisionAllowDesktopSync, "1")
	add(wbxml.ProvisionMaxCalendarAgeFilter, "0")
	add(wbxml.ProvisionAllowHTMLEmail, b01(!p.HTMLEmailBlocked))
	add(wbxml.ProvisionMaxEmailAgeFilter, "0")
	add(wbxml.ProvisionRequireSignedSMIMEMessages, "0")
	add(wbxml.ProvisionRequireEncryptedSMIMEMessages, "0")
	add(wbxml.ProvisionAllowSMIMEEncryptionAlgorithmNegotiation, "2")
	add(wbxml.ProvisionAllowSMIMESoftCerts, "1")
	add(wbxml.ProvisionAllowBrowser, "1")
	add(wbxml.ProvisionAllowConsumerEmail, "1")
	add(wbxml.ProvisionAllowRemoteDesktop, "1")
	add(wbxml.ProvisionAllowInternetSharing, "1")
	return d
}

// AccessRule sets the access state of new devices whose DeviceType and
// model match; patterns are path.Match globs, case-insensitive, and an empty
// pattern matches anything.
type AccessRule struct {
	DeviceType string
	Model      string
	Access     store.DeviceAccess
}

// accessFor returns the access of the first matching rule, else allowed.
func accessFor(rules []AccessRule, deviceType, model string) store.DeviceAccess {
	for _, r := range rules {
		if globMatch(r.DeviceType, deviceType) && globMatch(r.Model, model) {
			return r.Access
		}
	}
	return store.DeviceAllowed
}

func globMatch(pattern, s string) bool {
	if pattern == "" {
		return true
	}
	ok, err := path.Match(strings.ToLower(pattern), strings.ToLower(s))
	return err == nil && ok
}
