package eas

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
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
		applyDeviceInformation(d, di.Child(wbxml.SettingsSet))
		resp.Append(wbxml.E(wbxml.SettingsDeviceInformation, wbxml.T(wbxml.SettingsStatus, "1")))
	}

	// The client's acknowledgement of a wipe, MS-ASPROV 3.2.5.1.2.2.
	for _, t := range []wbxml.Tag{wbxml.ProvisionRemoteWipe, wbxml.ProvisionAccountOnlyRemoteWipe} {
		if ack := body.Child(t); ack != nil {
			st := ack.ChildText(wbxml.ProvisionStatus)
			if d.Wipe == store.WipePending || d.Wipe == store.WipeAccountOnly {
				if st == "1" {
					s.Log.Warn("remote wipe acknowledged", "kind", t.Name())
					d.Wipe = store.WipeAcknowledged
				} else {
					s.Log.Error("remote wipe failed on the device", "kind", t.Name(), "status", st)
				}
			}
			if err := h.deps.Store.UpdateDevice(ctx, *d); err != nil {
				return nil, err
			}
			return resp.Append(wbxml.T(wbxml.ProvisionStatus, "1")), nil
		}
	}

	// A pending wipe answers every other Provision request.
	switch {
	case d.Wipe == store.WipePending:
		if err := h.deps.Store.UpdateDevice(ctx, *d); err != nil {
			return nil, err
		}
		s.Log.Warn("sending remote wipe")
		return resp.Append(wbxml.T(wbxml.ProvisionStatus, "1"), wbxml.E(wbxml.ProvisionRemoteWipe)), nil
	case d.Wipe == store.WipeAccountOnly && versionAtLeast(s.Req.Version, "16.1"):
		if err := h.deps.Store.UpdateDevice(ctx, *d); err != nil {
			return nil, err
		}
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

	// Step 2: the client acknowledges the temporary key.
	sent, err := strconv.ParseUint(keyText, 10, 32)
	if err != nil || uint32(sent) != d.PolicyKey || d.PolicyKey == 0 {
		s.Log.Info("policy key mismatch in acknowledgement", "sent", keyText, "want", d.PolicyKey)
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
	key, err := h.newPolicyKey()
	if err != nil {
		return nil, err
	}
	d.PolicyKey, d.PolicyHash = key, h.policyHash
	if err := h.deps.Store.UpdateDevice(ctx, *d); err != nil {
		return nil, err
	}
	out.Append(wbxml.T(wbxml.ProvisionStatus, strconv.Itoa(policyStatusOK)),
		wbxml.T(wbxml.ProvisionPolicyKey, strconv.FormatUint(uint64(key), 10)))
	return resp, nil
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
