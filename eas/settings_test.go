package eas

import (
	"context"
	"strings"
	"testing"

	"github.com/easd/easd/internal/passwd"
	"github.com/easd/easd/wbxml"
	"github.com/google/go-cmp/cmp"
)

// settingsBody wraps sections in a Settings request.
func settingsBody(sections ...*wbxml.Node) *wbxml.Node {
	return wbxml.E(wbxml.SettingsSettings, sections...)
}

// settingsResp is the expected response: Settings > Status, sections.
func settingsResp(status string, sections ...*wbxml.Node) *wbxml.Node {
	return wbxml.E(wbxml.SettingsSettings, append([]*wbxml.Node{wbxml.T(wbxml.SettingsStatus, status)}, sections...)...)
}

// sectionResp is an expected section: tag > Status, children.
func sectionResp(tag wbxml.Tag, status string, children ...*wbxml.Node) *wbxml.Node {
	return wbxml.E(tag, append([]*wbxml.Node{wbxml.T(wbxml.SettingsStatus, status)}, children...)...)
}

// checkTree compares two trees by their XML form, which shows element
// order and names in a diff.
func checkTree(t *testing.T, what string, got, want *wbxml.Node) {
	t.Helper()
	if diff := cmp.Diff(want.String(), got.String()); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

// settings sends a Settings request as alice on DEV1 (or c's user/device)
// after provisioning, and returns the decoded response.
func (ts *testServer) settings(c call, sections ...*wbxml.Node) *wbxml.Node {
	ts.t.Helper()
	if c.policyKey == nil {
		k := ts.provision(c)
		c.policyKey = &k
	}
	c.cmd, c.body = "Settings", settingsBody(sections...)
	r := ts.do(c)
	if r.code != 200 || r.body == nil {
		ts.t.Fatalf("Settings: HTTP %d, body %q", r.code, r.raw)
	}
	return r.body
}

func TestSettingsDeviceInformation(t *testing.T) {
	ts := newTestServer(t, nil)
	set := wbxml.E(wbxml.SettingsSet,
		wbxml.T(wbxml.SettingsModel, "iPhone15,2"),
		wbxml.T(wbxml.SettingsIMEI, "356938035643809"),
		wbxml.T(wbxml.SettingsFriendlyName, "Alice's iPhone"),
		wbxml.T(wbxml.SettingsOS, "iOS 18.1"),
		wbxml.T(wbxml.SettingsOSLanguage, "English"),
		wbxml.T(wbxml.SettingsPhoneNumber, "+15551234567"),
		wbxml.T(wbxml.SettingsUserAgent, "Apple-iPhone15C2/2201.100"),
		wbxml.T(wbxml.SettingsEnableOutboundSMS, "0"),
		wbxml.T(wbxml.SettingsMobileOperator, "Contoso Mobile"))
	got := ts.settings(call{}, wbxml.E(wbxml.SettingsDeviceInformation, set))
	checkTree(t, "response", got, settingsResp("1", sectionResp(wbxml.SettingsDeviceInformation, "1")))

	d := ts.device("alice", "DEV1")
	type info struct{ Model, IMEI, FriendlyName, OS, OSLanguage, PhoneNumber, MobileOperator, UserAgent string }
	want := info{"iPhone15,2", "356938035643809", "Alice's iPhone", "iOS 18.1", "English", "+15551234567", "Contoso Mobile", "Apple-iPhone15C2/2201.100"}
	if diff := cmp.Diff(want, info{d.Model, d.IMEI, d.FriendlyName, d.OS, d.OSLanguage, d.PhoneNumber, d.MobileOperator, d.UserAgent}); diff != "" {
		t.Errorf("stored device (-want +got):\n%s", diff)
	}
	// Another user's device of the same id is untouched.
	ts.settings(call{user: "bob"}, wbxml.E(wbxml.SettingsUserInformation, wbxml.E(wbxml.SettingsGet)))
	if b := ts.device("bob", "DEV1"); b.Model != "" {
		t.Errorf("bob's device got model %q", b.Model)
	}

	// DeviceInformation without Set is a protocol error for that section.
	got = ts.settings(call{}, wbxml.E(wbxml.SettingsDeviceInformation))
	checkTree(t, "without Set", got, settingsResp("1", sectionResp(wbxml.SettingsDeviceInformation, "2")))
}

func TestSettingsUserInformation(t *testing.T) {
	ctx := context.Background()
	userInfo := wbxml.E(wbxml.SettingsUserInformation, wbxml.E(wbxml.SettingsGet))
	old := func(addr string) *wbxml.Node {
		return settingsResp("1", sectionResp(wbxml.SettingsUserInformation, "1",
			wbxml.E(wbxml.SettingsGet, wbxml.E(wbxml.SettingsEmailAddresses, wbxml.T(wbxml.SettingsSmtpAddress, addr)))))
	}
	accounts := func(name, addr string) *wbxml.Node {
		return settingsResp("1", sectionResp(wbxml.SettingsUserInformation, "1",
			wbxml.E(wbxml.SettingsGet, wbxml.E(wbxml.SettingsAccounts, wbxml.E(wbxml.SettingsAccount,
				wbxml.T(wbxml.SettingsUserDisplayName, name),
				wbxml.E(wbxml.SettingsEmailAddresses,
					wbxml.T(wbxml.SettingsSmtpAddress, addr),
					wbxml.T(wbxml.SettingsPrimarySmtpAddress, addr)))))))
	}
	for _, tc := range []struct {
		name    string
		domain  string
		user    string
		version string
		want    *wbxml.Node
	}{
		{"12.1 with domain", "example.com", "alice", "12.1", old("alice@example.com")},
		{"14.0 with domain", "example.com", "alice", "14.0", old("alice@example.com")},
		{"14.1 with domain", "example.com", "alice", "14.1", accounts("alice", "alice@example.com")},
		{"14.1 without domain", "", "alice", "14.1", accounts("alice", "alice")},
		{"14.1 address login", "example.com", "carol@example.org", "14.1", accounts("carol@example.org", "carol@example.org")},
		{"14.0 address login", "", "carol@example.org", "14.0", old("carol@example.org")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, func(c *Config) { c.Domain = tc.domain })
			h, err := passwd.Hash("carol-pw", fastHash, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ts.st.CreateUser(ctx, "carol@example.org", h); err != nil {
				t.Fatal(err)
			}
			c := call{user: tc.user, version: tc.version}
			if tc.user == "carol@example.org" {
				c.pass = "carol-pw"
			}
			checkTree(t, "response", ts.settings(c, userInfo), tc.want)
		})
	}
}

// oofMsg is an OofMessage for the audience tag.
func oofMsg(audience wbxml.Tag, enabled, reply, bodyType string) *wbxml.Node {
	m := wbxml.E(wbxml.SettingsOofMessage, wbxml.E(audience), wbxml.T(wbxml.SettingsEnabled, enabled))
	if reply != "" || bodyType != "" {
		m.Append(wbxml.T(wbxml.SettingsReplyMessage, reply))
	}
	if bodyType != "" {
		m.Append(wbxml.T(wbxml.SettingsBodyType, bodyType))
	}
	return m
}

func oofGetReq(bodyType string) *wbxml.Node {
	return wbxml.E(wbxml.SettingsOof, wbxml.E(wbxml.SettingsGet, wbxml.T(wbxml.SettingsBodyType, bodyType)))
}

func oofSetReq(children ...*wbxml.Node) *wbxml.Node {
	return wbxml.E(wbxml.SettingsOof, wbxml.E(wbxml.SettingsSet, children...))
}

// oofGetResp is the expected Oof Get section.
func oofGetResp(state string, times []string, msgs ...*wbxml.Node) *wbxml.Node {
	get := wbxml.E(wbxml.SettingsGet, wbxml.T(wbxml.SettingsOofState, state))
	if times != nil {
		get.Append(wbxml.T(wbxml.SettingsStartTime, times[0]), wbxml.T(wbxml.SettingsEndTime, times[1]))
	}
	get.Append(msgs...)
	return settingsResp("1", sectionResp(wbxml.SettingsOof, "1", get))
}

func TestSettingsOof(t *testing.T) {
	ts := newTestServer(t, nil)
	key := ts.provision(call{})
	alice := call{policyKey: &key}
	bobKey := ts.provision(call{user: "bob"})
	bob := call{user: "bob", policyKey: &bobKey}
	oofStatus := func(c call, set *wbxml.Node) string {
		t.Helper()
		return ts.settings(c, set).Path(wbxml.SettingsOof).ChildText(wbxml.SettingsStatus)
	}
	disabled := oofGetResp("0", nil,
		oofMsg(wbxml.SettingsAppliesToInternal, "0", "", "Text"),
		oofMsg(wbxml.SettingsAppliesToExternalKnown, "0", "", "Text"),
		oofMsg(wbxml.SettingsAppliesToExternalUnknown, "0", "", "Text"))

	// Never set: disabled, one message per audience (MS-ASCMD 2.2.3.122).
	checkTree(t, "default Get", ts.settings(alice, oofGetReq("Text")), disabled)

	// A time-based Set round-trips; the stored Text message comes back as
	// Text even when HTML is asked for.
	set := oofSetReq(
		wbxml.T(wbxml.SettingsOofState, "2"),
		wbxml.T(wbxml.SettingsStartTime, "2026-12-20T08:00:00.000Z"),
		wbxml.T(wbxml.SettingsEndTime, "2027-01-04T18:00:00.000Z"),
		oofMsg(wbxml.SettingsAppliesToInternal, "1", "Back on 4 January.", "Text"),
		oofMsg(wbxml.SettingsAppliesToExternalKnown, "1", "<p>Away</p>", "HTML"),
		oofMsg(wbxml.SettingsAppliesToExternalUnknown, "0", "", ""))
	checkTree(t, "Set", ts.settings(alice, set), settingsResp("1", sectionResp(wbxml.SettingsOof, "1")))
	timeBased := oofGetResp("2", []string{"2026-12-20T08:00:00.000Z", "2027-01-04T18:00:00.000Z"},
		oofMsg(wbxml.SettingsAppliesToInternal, "1", "Back on 4 January.", "Text"),
		oofMsg(wbxml.SettingsAppliesToExternalKnown, "1", "<p>Away</p>", "HTML"),
		oofMsg(wbxml.SettingsAppliesToExternalUnknown, "0", "", "HTML"))
	checkTree(t, "Get after Set", ts.settings(alice, oofGetReq("HTML")), timeBased)

	// Bob does not see alice's Oof.
	checkTree(t, "bob's Get", ts.settings(bob, oofGetReq("Text")), disabled)

	// Refused Sets leave the stored state alone.
	for _, tc := range []struct {
		name string
		set  *wbxml.Node
		want string
	}{
		{"end before start", oofSetReq(wbxml.T(wbxml.SettingsOofState, "2"),
			wbxml.T(wbxml.SettingsStartTime, "2027-01-04T18:00:00.000Z"),
			wbxml.T(wbxml.SettingsEndTime, "2026-12-20T08:00:00.000Z")), "5"},
		{"empty range", oofSetReq(wbxml.T(wbxml.SettingsOofState, "2"),
			wbxml.T(wbxml.SettingsStartTime, "2027-01-04T18:00:00.000Z"),
			wbxml.T(wbxml.SettingsEndTime, "2027-01-04T18:00:00.000Z")), "5"},
		{"start without end", oofSetReq(wbxml.T(wbxml.SettingsOofState, "2"),
			wbxml.T(wbxml.SettingsStartTime, "2027-01-04T18:00:00.000Z")), "2"},
		{"unparsable time", oofSetReq(wbxml.T(wbxml.SettingsOofState, "2"),
			wbxml.T(wbxml.SettingsStartTime, "tomorrow"),
			wbxml.T(wbxml.SettingsEndTime, "2027-01-04T18:00:00.000Z")), "5"},
		{"unknown state", oofSetReq(wbxml.T(wbxml.SettingsOofState, "3")), "5"},
		{"reply without body type", oofSetReq(
			wbxml.E(wbxml.SettingsOofMessage, wbxml.E(wbxml.SettingsAppliesToInternal), wbxml.T(wbxml.SettingsReplyMessage, "x"))), "2"},
		{"unknown body type", oofSetReq(oofMsg(wbxml.SettingsAppliesToInternal, "1", "x", "RTF")), "5"},
		{"two audiences", oofSetReq(wbxml.E(wbxml.SettingsOofMessage,
			wbxml.E(wbxml.SettingsAppliesToInternal), wbxml.E(wbxml.SettingsAppliesToExternalKnown))), "2"},
		{"no audience", oofSetReq(wbxml.E(wbxml.SettingsOofMessage, wbxml.T(wbxml.SettingsEnabled, "1"))), "2"},
		{"bad Enabled", oofSetReq(oofMsg(wbxml.SettingsAppliesToInternal, "yes", "", "")), "5"},
		{"Get and Set", wbxml.E(wbxml.SettingsOof, wbxml.E(wbxml.SettingsGet), wbxml.E(wbxml.SettingsSet)), "6"},
		{"neither Get nor Set", wbxml.E(wbxml.SettingsOof), "2"},
		{"Get with unknown body type", oofGetReq("RTF"), "5"},
	} {
		if got := oofStatus(alice, tc.set); got != tc.want {
			t.Errorf("%s: Oof status %s, want %s", tc.name, got, tc.want)
		}
	}
	checkTree(t, "Get after refused Sets", ts.settings(alice, oofGetReq("HTML")), timeBased)

	// Turning Oof off keeps the messages and drops the range.
	if got := oofStatus(alice, oofSetReq(wbxml.T(wbxml.SettingsOofState, "0"))); got != "1" {
		t.Fatalf("disable: Oof status %s", got)
	}
	checkTree(t, "Get after disable", ts.settings(alice, oofGetReq("Text")), oofGetResp("0", nil,
		oofMsg(wbxml.SettingsAppliesToInternal, "1", "Back on 4 January.", "Text"),
		oofMsg(wbxml.SettingsAppliesToExternalKnown, "1", "<p>Away</p>", "HTML"),
		oofMsg(wbxml.SettingsAppliesToExternalUnknown, "0", "", "Text")))

	// Global with a range: accepted, the range is not stored (MS-ASCMD
	// 2.2.3.124); time-based again without a range is refused.
	if got := oofStatus(alice, oofSetReq(wbxml.T(wbxml.SettingsOofState, "1"),
		wbxml.T(wbxml.SettingsStartTime, "2026-12-20T08:00:00Z"),
		wbxml.T(wbxml.SettingsEndTime, "2027-01-04T18:00:00Z"))); got != "1" {
		t.Fatalf("global with range: Oof status %s", got)
	}
	get := ts.settings(alice, oofGetReq("Text")).Path(wbxml.SettingsOof, wbxml.SettingsGet)
	if get.ChildText(wbxml.SettingsOofState) != "1" || get.Child(wbxml.SettingsStartTime) != nil {
		t.Errorf("global Oof: %v", get)
	}
	if got := oofStatus(alice, oofSetReq(wbxml.T(wbxml.SettingsOofState, "2"))); got != "2" {
		t.Errorf("time-based without range: Oof status %s, want 2", got)
	}
}

func TestSettingsSections(t *testing.T) {
	ts := newTestServer(t, nil)
	key := ts.provision(call{})
	c := call{policyKey: &key}

	// Sections are answered in request order, each with its status.
	got := ts.settings(c,
		wbxml.E(wbxml.SettingsRightsManagementInformation, wbxml.E(wbxml.SettingsGet)),
		wbxml.E(wbxml.SettingsDevicePassword, wbxml.E(wbxml.SettingsSet, wbxml.T(wbxml.SettingsPassword, "recovery-secret-8a1f"))),
		wbxml.E(wbxml.SettingsUserInformation, wbxml.E(wbxml.SettingsGet)))
	checkTree(t, "mixed request", got, settingsResp("1",
		sectionResp(wbxml.SettingsRightsManagementInformation, "1",
			wbxml.E(wbxml.SettingsGet, wbxml.E(wbxml.RightsManagementRightsManagementTemplates))),
		// PasswordRecoveryEnabled is 0 in our policy: denied by policy.
		sectionResp(wbxml.SettingsDevicePassword, "7"),
		sectionResp(wbxml.SettingsUserInformation, "1", wbxml.E(wbxml.SettingsGet, wbxml.E(wbxml.SettingsAccounts,
			wbxml.E(wbxml.SettingsAccount, wbxml.T(wbxml.SettingsUserDisplayName, "alice"),
				wbxml.E(wbxml.SettingsEmailAddresses, wbxml.T(wbxml.SettingsSmtpAddress, "alice@example.com"),
					wbxml.T(wbxml.SettingsPrimarySmtpAddress, "alice@example.com"))))))))

	// Empty or unknown requests are a Settings protocol error.
	checkTree(t, "empty Settings", ts.settings(c), settingsResp("2"))
	checkTree(t, "unknown element only", ts.settings(c, wbxml.E(wbxml.AirSyncSync)), settingsResp("2"))
	r := ts.do(call{cmd: "Settings", policyKey: &key})
	checkTree(t, "no body", r.body, settingsResp("2"))
	// Sections without their operation.
	checkTree(t, "sections without Get/Set", ts.settings(c,
		wbxml.E(wbxml.SettingsUserInformation),
		wbxml.E(wbxml.SettingsDevicePassword, wbxml.E(wbxml.SettingsSet)),
		wbxml.E(wbxml.SettingsRightsManagementInformation)),
		settingsResp("1",
			sectionResp(wbxml.SettingsUserInformation, "2"),
			sectionResp(wbxml.SettingsDevicePassword, "2"),
			sectionResp(wbxml.SettingsRightsManagementInformation, "2")))
	if got := ts.logs.String(); strings.Contains(got, "recovery-secret-8a1f") {
		t.Errorf("recovery password in the log:\n%s", got)
	}
}

func TestSettingsGateAndBadBody(t *testing.T) {
	ts := newTestServer(t, nil)
	body := settingsBody(wbxml.E(wbxml.SettingsUserInformation, wbxml.E(wbxml.SettingsGet)))

	// Without a policy key: status 142 in the body at 14.1, HTTP 449 at 12.1.
	r := ts.do(call{cmd: "Settings", body: body})
	checkTree(t, "no key 14.1", r.body, settingsResp("142"))
	if r.code != 200 {
		t.Errorf("no key 14.1: HTTP %d", r.code)
	}
	if r = ts.do(call{cmd: "Settings", version: "12.1", body: body}); r.code != 449 || len(r.raw) != 0 {
		t.Errorf("no key 12.1: HTTP %d body %q, want 449 and no body", r.code, r.raw)
	}

	// A body that is not WBXML: status 102 at 14.1, HTTP 400 at 12.1.
	key := ts.provision(call{})
	garbage := []byte{0x03, 0x01, 0x6a, 0x00, 0x00, 0x12, 0x45, 0x46}
	r = ts.do(call{cmd: "Settings", rawBody: garbage, policyKey: &key})
	checkTree(t, "garbage 14.1", r.body, settingsResp("102"))
	if r = ts.do(call{cmd: "Settings", version: "12.1", rawBody: garbage, policyKey: &key}); r.code != 400 {
		t.Errorf("garbage 12.1: HTTP %d, want 400", r.code)
	}
	// Another command's element at the top: status 101 (invalid content).
	r = ts.do(call{cmd: "Settings", body: wbxml.E(wbxml.ProvisionProvision), policyKey: &key})
	checkTree(t, "wrong top element", r.body, settingsResp("101"))
}
