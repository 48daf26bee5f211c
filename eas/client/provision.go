package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/easd/easd/wbxml"
)

// PolicyType is the policy format of protocol 12.0 and later (MS-ASPROV
// 2.2.2.43).
const PolicyType = "MS-EAS-Provisioning-WBXML"

// Provision runs the two-step policy exchange (MS-ASPROV 3.1.5.1): the
// initial request (with settings:DeviceInformation for 14.1 and later)
// gets a temporary key and the policy, the acknowledgement gets the final
// key, which later requests carry in X-MS-PolicyKey. It returns that key
// and the EASProvisionDoc element (nil if the server sent none).
//
// If the server answers with a remote wipe the client acknowledges it and
// returns a *WipeError.
func (c *Client) Provision(ctx context.Context) (uint32, *wbxml.Node, error) {
	c.provMu.Lock()
	defer c.provMu.Unlock()
	return c.provisionLocked(ctx, false)
}

// reprovision provisions after a command was refused with key usedKey,
// unless another goroutine already did so meanwhile.
func (c *Client) reprovision(ctx context.Context, usedKey uint32, wipe bool) error {
	c.provMu.Lock()
	defer c.provMu.Unlock()
	if k := c.PolicyKey(); !wipe && k != 0 && k != usedKey {
		return nil
	}
	_, _, err := c.provisionLocked(ctx, wipe)
	return err
}

func (c *Client) provisionLocked(ctx context.Context, wipeAnnounced bool) (uint32, *wbxml.Node, error) {
	if w := c.Wiped(); w != nil {
		return 0, nil, w
	}
	if err := c.ensureVersion(ctx); err != nil {
		return 0, nil, err
	}
	// The initial request resets the key to 0 (MS-ASPROV 3.1.5.1.1).
	c.SetPolicyKey(0)
	if wipeAnnounced {
		// After status 140 the initial request is an empty Provision; the
		// server answers with the wipe directive.
		resp, err := c.provisionStep(ctx, wbxml.E(wbxml.ProvisionProvision))
		if w := wipeDirective(resp); w != nil {
			return 0, nil, c.ackWipe(ctx, w.Tag == wbxml.ProvisionAccountOnlyRemoteWipe)
		}
		var se *StatusError
		if err != nil && !errors.As(err, &se) {
			return 0, nil, err
		}
		// No wipe after all (cancelled meanwhile): provision normally.
	}

	req := wbxml.E(wbxml.ProvisionProvision)
	if c.atLeast("14.1") {
		req.Append(deviceInformation(c.deviceInfo(), c.atLeast("14.0")))
	}
	req.Append(wbxml.E(wbxml.ProvisionPolicies, wbxml.E(wbxml.ProvisionPolicy,
		wbxml.T(wbxml.ProvisionPolicyType, PolicyType))))
	resp, err := c.provisionStep(ctx, req)
	if w := wipeDirective(resp); w != nil {
		return 0, nil, c.ackWipe(ctx, w.Tag == wbxml.ProvisionAccountOnlyRemoteWipe)
	}
	if err != nil {
		return 0, nil, err
	}
	if st := resp.Body.Child(wbxml.SettingsDeviceInformation).ChildText(wbxml.SettingsStatus); st != "" && st != "1" {
		return 0, nil, statusErr("Provision", "DeviceInformation", st)
	}
	temp, pol, err := policyKey(resp)
	if err != nil {
		return 0, nil, err
	}
	doc := pol.Path(wbxml.ProvisionData, wbxml.ProvisionEASProvisionDoc)

	// The acknowledgement carries the temporary key, in the body and as
	// the current key (MS-ASPROV 3.1.5.1.2.1).
	c.SetPolicyKey(temp)
	ack := wbxml.E(wbxml.ProvisionProvision, wbxml.E(wbxml.ProvisionPolicies, wbxml.E(wbxml.ProvisionPolicy,
		wbxml.T(wbxml.ProvisionPolicyType, PolicyType),
		wbxml.T(wbxml.ProvisionPolicyKey, strconv.FormatUint(uint64(temp), 10)),
		wbxml.T(wbxml.ProvisionStatus, strconv.Itoa(c.cfg.PolicyAckStatus)))))
	resp, err = c.provisionStep(ctx, ack)
	if w := wipeDirective(resp); w != nil {
		return 0, nil, c.ackWipe(ctx, w.Tag == wbxml.ProvisionAccountOnlyRemoteWipe)
	}
	if err != nil {
		c.SetPolicyKey(0)
		return 0, nil, err
	}
	final, _, err := policyKey(resp)
	if err != nil {
		c.SetPolicyKey(0)
		return 0, nil, err
	}
	c.SetPolicyKey(final)
	return final, doc, nil
}

// provisionStep sends one Provision request; an empty answer is an error.
func (c *Client) provisionStep(ctx context.Context, body *wbxml.Node) (*Response, error) {
	b, ct, err := encodeBody(&Request{Cmd: "Provision", Body: body})
	if err != nil {
		return nil, err
	}
	resp, err := c.roundTrip(ctx, &Request{Cmd: "Provision"}, b, ct)
	if err == nil && resp.Body == nil {
		err = errors.New("client: Provision: empty response")
	}
	return resp, err
}

// wipeDirective returns the RemoteWipe or AccountOnlyRemoteWipe element of
// a Provision response, or nil.
func wipeDirective(resp *Response) *wbxml.Node {
	if resp == nil || resp.Body == nil || resp.Body.Tag != wbxml.ProvisionProvision {
		return nil
	}
	if w := resp.Body.Child(wbxml.ProvisionRemoteWipe); w != nil {
		return w
	}
	return resp.Body.Child(wbxml.ProvisionAccountOnlyRemoteWipe)
}

// ackWipe acknowledges a wipe directive (MS-ASPROV 3.1.5.1.2.2) and marks
// the client wiped; it never waits on the answer's content.
func (c *Client) ackWipe(ctx context.Context, accountOnly bool) error {
	tag := wbxml.ProvisionRemoteWipe
	if accountOnly {
		tag = wbxml.ProvisionAccountOnlyRemoteWipe
	}
	_, err := c.provisionStep(ctx, wbxml.E(wbxml.ProvisionProvision, wbxml.E(tag, wbxml.T(wbxml.ProvisionStatus, "1"))))
	w := &WipeError{AccountOnly: accountOnly, AckErr: err}
	c.mu.Lock()
	c.wiped, c.policyKey = w, 0
	c.mu.Unlock()
	return w
}

// policyKey reads Policies > Policy > Status and PolicyKey.
func policyKey(resp *Response) (uint32, *wbxml.Node, error) {
	pol := resp.Body.Path(wbxml.ProvisionPolicies, wbxml.ProvisionPolicy)
	if pol == nil {
		return 0, nil, errors.New("client: Provision: no Policy in the response")
	}
	if st := pol.ChildText(wbxml.ProvisionStatus); st != "1" {
		return 0, pol, statusErr("Provision", "Policy", st)
	}
	text := pol.ChildText(wbxml.ProvisionPolicyKey)
	k, err := strconv.ParseUint(text, 10, 32)
	if err != nil || k == 0 {
		return 0, pol, fmt.Errorf("client: Provision: policy key %q is not a non-zero uint32", text)
	}
	return uint32(k), pol, nil
}

func statusErr(cmd, elem, st string) error {
	n, _ := strconv.Atoi(st)
	return &StatusError{Command: cmd, Element: elem, Status: n}
}
