package eas

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/easd/easd/store"
	"github.com/easd/easd/wbxml"
)

// PolicyType is the only policy format of protocol 12.0 and later
// (MS-ASPROV 2.2.2.41).
const PolicyType = "MS-EAS-Provisioning-WBXML"

// Policy-level status codes, MS-ASPROV 2.2.2.54.2.
const (
	policyStatusOK           = 1
	policyStatusUnknownType  = 3
	policyStatusKeyMismatch  = 5
	statusNotProvisionable   = 139 // MS-ASCMD 2.2.2 DeviceNotFullyProvisionable
	provisionStatusProtocolE = 2   // MS-ASPROV 2.2.2.54.1 protocol error
)

// provision runs the Provision command, MS-ASPROV 3.2.5: the two-step
// policy key exchange, DeviceInformation (14.1+), and remote wipe with its
// acknowledgement.
func (h *Handler) provision(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error) {
	if body == nil {
		return nil, Errorf(StatusInvalidContent, "empty Provision request")
	}
	d := &s.Device
	resp := wbxml.E(wbxml.ProvisionProvision)

	if di := body.Child(wbxml.SettingsDeviceInformation); di != nil {
		if err := h.deviceInformation(ctx, s, di.Child(wbxml.SettingsSet)); err != nil {
			return nil, err
		}
		resp.Append(wbxml.E(wbxml.SettingsDeviceInformation, wbxml.T(wbxml.SettingsStatus, "1")))
	}

	// The client's acknowledgement of a wipe, MS-ASPROV 3.2.5.1.2.2.
	for _, t := range []wbxml.Tag{wbxml.ProvisionRemoteWipe, wbxml.ProvisionAccountOnlyRemoteWipe} {
		if ack := body.Child(t); ack != nil {
			return h.wipeAck(ctx, s, resp, t, ack.ChildText(wbxml.ProvisionStatus))
		}
	}

	// A pending wipe answers every other Provision request.
	switch {
	case d.Wipe == store.WipePending:
		s.Log.Warn("sending remote wipe")
		return resp.Append(wbxml.T(wbxml.ProvisionStatus, "1"), wbxml.E(wbxml.ProvisionRemoteWipe)), nil
	case d.Wipe == store.WipeAccountOnly && versionAtLeast(s.Req.Version, "16.1"):
		s.Log.Warn("sending account-only remote wipe")
		return resp.Append(wbxml.T(wbxml.ProvisionStatus, "1"), wbxml.E(wbxml.ProvisionAccountOnlyRemoteWipe)), nil
	}

	pol := body.Path(wbxml.ProvisionPolicies, wbxml.ProvisionPolicy)
	if pol == nil {
		return resp.Append(wbxml.T(wbxml.ProvisionStatus, strconv.Itoa(provisionStatusProtocolE))), nil
	}
	typ := pol.ChildText(wbxml.ProvisionPolicyType)
	out := wbxml.E(wbxml.ProvisionPolicy, wbxml.T(wbxml.ProvisionPolicyType, typ))
	policies := wbxml.E(wbxml.ProvisionPolicies, out)
	resp.Append(wbxml.T(wbxml.ProvisionStatus, "1"), policies)
	if typ != PolicyType {
		out.Append(wbxml.T(wbxml.ProvisionStatus, strconv.Itoa(policyStatusUnknownType)))
		return resp, nil
	}

	keyText := pol.ChildText(wbxml.ProvisionPolicyKey)
	if keyText == "" {
		// Step 1: a temporary key with the policy document.
		key, err := h.newPolicyKey()
		if err != nil {
			return nil, err
		}
		d.PolicyKey, d.PolicyHash = key, ""
		if err := h.deps.Store.UpdateDevice(ctx, *d); err != nil {
			return nil, err
		}
		out.Append(wbxml.T(wbxml.ProvisionStatus, strconv.Itoa(policyStatusOK)),
			wbxml.T(wbxml.ProvisionPolicyKey, strconv.FormatUint(uint64(key), 10)),
			wbxml.E(wbxml.ProvisionData, h.cfg.Policy.doc()))
		return resp, nil
	}

	// Step 2: the client acknowledges the temporary key. The final key is
	// derived from the temporary one, so a client retrying its
	// acknowledgement after a lost response gets the same final key.
	sent, err := strconv.ParseUint(keyText, 10, 32)
	temp := uint32(sent)
	final := finalPolicyKey(d, temp, h.policyHash)
	switch {
	case err == nil && temp != 0 && temp == d.PolicyKey && d.PolicyHash == "":
	case err == nil && temp != 0 && final == d.PolicyKey && d.PolicyHash == h.policyHash:
		s.Log.Info("repeated policy acknowledgement; same final key")
		out.Append(wbxml.T(wbxml.ProvisionStatus, strconv.Itoa(policyStatusOK)),
			wbxml.T(wbxml.ProvisionPolicyKey, strconv.FormatUint(uint64(final), 10)))
		return resp, nil
	default:
		s.Log.Info("policy key mismatch in acknowledgement", "sent", keyText)
		out.Append(wbxml.T(wbxml.ProvisionStatus, strconv.Itoa(policyStatusKeyMismatch)))
		return resp, nil
	}
	switch st := pol.ChildText(wbxml.ProvisionStatus); st {
	case "1", "4": // applied; externally managed
	default:
		if h.cfg.Policy.strict() {
			return nil, &Error{Status: statusNotProvisionable, HTTP: http.StatusForbidden,
				Err: fmt.Errorf("device did not apply the policy (status %q)", st)}
		}
		s.Log.Info("device applied the policy partially", "status", st)
	}
	d.PolicyKey, d.PolicyHash = final, h.policyHash
	if err := h.deps.Store.UpdateDevice(ctx, *d); err != nil {
		return nil, err
	}
	out.Append(wbxml.T(wbxml.ProvisionStatus, strconv.Itoa(policyStatusOK)),
		wbxml.T(wbxml.ProvisionPolicyKey, strconv.FormatUint(uint64(final), 10)))
	return resp, nil
}

// finalPolicyKey derives the final key from the temporary one, the device
// and the policy; never 0 and never the temporary key itself.
func finalPolicyKey(d *store.Device, temp uint32, policyHash string) uint32 {
	hs := sha256.New()
	fmt.Fprintf(hs, "%d\x00%s\x00%d\x00%s", d.UserID, d.DeviceID, temp, policyHash)
	var sum [sha256.Size]byte
	k := binary.LittleEndian.Uint32(hs.Sum(sum[:0]))
	if k == 0 || k == temp {
		k ^= 0x5a5a5a5b
	}
	return k
}

// wipeAck handles the client's report on a remote wipe, MS-ASPROV
// 3.2.5.1.2.2: success is recorded (once: a repeated report gets the same
// answer); a failure is answered with Status 2 and the wipe directive again.
func (h *Handler) wipeAck(ctx context.Context, s *Session, resp *wbxml.Node, kind wbxml.Tag, status string) (*wbxml.Node, error) {
	d := &s.Device
	if status != "1" {
		s.Log.Error("remote wipe failed on the device", "kind", kind.Name(), "status", status)
		if d.Wipe == store.WipePending || d.Wipe == store.WipeAccountOnly {
			return resp.Append(wbxml.T(wbxml.ProvisionStatus, strconv.Itoa(provisionStatusProtocolE)), wbxml.E(kind)), nil
		}
		return resp.Append(wbxml.T(wbxml.ProvisionStatus, "1")), nil
	}
	changed, err := h.deps.Store.SetDeviceWipe(ctx, d.ID, store.WipeAcknowledged, store.WipePending, store.WipeAccountOnly)
	if err != nil {
		return nil, err
	}
	if changed {
		s.Log.Warn("remote wipe acknowledged", "kind", kind.Name())
		d.Wipe = store.WipeAcknowledged
		h.audit(ctx, s.Log, store.AuditEntry{Actor: "server", Action: "device.wiped", User: s.User.Name,
			Device: d.DeviceID, Detail: kind.Name() + " acknowledged by the device"})
	}
	return resp.Append(wbxml.T(wbxml.ProvisionStatus, "1")), nil
}

// auditLog is the optional part of the handler's store that keeps the
// audit log of administrative actions (store.AdminStore has it).
type auditLog interface {
	AddAudit(ctx context.Context, e store.AuditEntry) (store.AuditEntry, error)
}

// audit records e in the store's audit log when it keeps one, and logs it
// at info on log, the session's logger, which names the user and device
// already. The state change it reports is already committed: the entry is
// written even if the client has hung up meanwhile.
func (h *Handler) audit(ctx context.Context, log *slog.Logger, e store.AuditEntry) {
	log.Info("audit", "actor", e.Actor, "action", e.Action, "detail", e.Detail)
	al, ok := h.deps.Store.(auditLog)
	if !ok {
		return
	}
	if _, err := al.AddAudit(context.WithoutCancel(ctx), e); err != nil {
		log.Error("audit log: entry not recorded", "action", e.Action, "err", err)
	}
}

// deviceInformation stores Settings DeviceInformation > Set (sent inside
// Provision from 14.1, or in Settings), then applies the access rules that
// name a model: on first contact the model is not yet known.
func (h *Handler) deviceInformation(ctx context.Context, s *Session, set *wbxml.Node) error {
	d := &s.Device
	hadModel := d.Model != ""
	applyDeviceInformation(d, set)
	if err := h.deps.Store.UpdateDevice(ctx, *d); err != nil {
		return err
	}
	if hadModel || d.Model == "" || d.Access != store.DeviceAllowed {
		return nil
	}
	if a := accessFor(h.cfg.AccessRules, d.DeviceType, d.Model); a != store.DeviceAllowed {
		if err := h.deps.Store.SetDeviceAccess(ctx, d.ID, a); err != nil {
			return err
		}
		d.Access = a
		return &Error{Status: StatusDeviceBlocked, HTTP: http.StatusForbidden,
			Err: fmt.Errorf("device %s (model %q) is %s by the access rules", d.DeviceID, d.Model, a)}
	}
	return nil
}

// strict reports whether the policy demands something a device may fail
// to apply; then only a full acknowledgement earns a policy key.
func (p Policy) strict() bool {
	return p.PasswordRequired || p.RequireEncryption || p.MinPasswordLength > 0 || p.WipeAfterFailures > 0
}

// newPolicyKey returns a random non-zero key (0 means "not provisioned").
func (h *Handler) newPolicyKey() (uint32, error) {
	r := h.deps.Rand
	if r == nil {
		r = rand.Reader
	}
	var b [4]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, fmt.Errorf("policy key: %w", err)
		}
		if k := binary.LittleEndian.Uint32(b[:]); k != 0 {
			return k, nil
		}
	}
}

// applyDeviceInformation copies Settings DeviceInformation > Set
// (MS-ASCMD 2.2.3.45) into d.
func applyDeviceInformation(d *store.Device, set *wbxml.Node) {
	if set == nil {
		return
	}
	for _, f := range []struct {
		tag wbxml.Tag
		dst *string
	}{
		{wbxml.SettingsModel, &d.Model}, {wbxml.SettingsIMEI, &d.IMEI},
		{wbxml.SettingsFriendlyName, &d.FriendlyName}, {wbxml.SettingsOS, &d.OS},
		{wbxml.SettingsOSLanguage, &d.OSLanguage}, {wbxml.SettingsPhoneNumber, &d.PhoneNumber},
		{wbxml.SettingsMobileOperator, &d.MobileOperator},
	} {
		if n := set.Child(f.tag); n != nil {
			v := n.Text()
			if len(v) > 256 {
				v = v[:256]
			}
			*f.dst = v
		}
	}
}
