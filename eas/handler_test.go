package eas

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/easd/easd/store"
	"github.com/easd/easd/wbxml"
)

func TestOptions(t *testing.T) {
	ts := newTestServer(t, nil)
	r := ts.do(call{method: http.MethodOptions})
	if r.code != 200 {
		t.Fatalf("OPTIONS = %d", r.code)
	}
	if got := r.header.Get("MS-ASProtocolVersions"); got != "12.1,14.0,14.1" {
		t.Errorf("MS-ASProtocolVersions = %q", got)
	}
	cmds := r.header.Get("MS-ASProtocolCommands")
	if cmds != "Provision,ResolveRecipients,Search,Settings" {
		t.Errorf("MS-ASProtocolCommands = %q: must list exactly what is served", cmds)
	}
	if r.header.Get("MS-Server-ActiveSync") == "" {
		t.Error("no MS-Server-ActiveSync header")
	}
	// Unauthenticated OPTIONS asks for credentials.
	r = ts.do(call{method: http.MethodOptions, pass: "-"})
	if r.code != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("OPTIONS without credentials = %d %q", r.code, r.header.Get("WWW-Authenticate"))
	}
	// The path is matched case-insensitively.
	if r = ts.do(call{method: http.MethodOptions, path: "/microsoft-server-activesync"}); r.code != 200 {
		t.Errorf("lower-case path = %d", r.code)
	}
	if r = ts.do(call{method: http.MethodOptions, path: "/elsewhere"}); r.code != 404 {
		t.Errorf("other path = %d", r.code)
	}
}

// TestBadInput is the table: every bad request gets the right EAS
// status or HTTP code, never a 500.
func TestBadInput(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxBodyBytes = 1024 })
	key := ts.provision(call{})
	blockedKey := ts.provision(call{device: "BLOCKED"})
	if err := ts.st.SetDeviceAccess(context.Background(), ts.device("alice", "BLOCKED").ID, store.DeviceBlocked); err != nil {
		t.Fatal(err)
	}
	settings := wbxml.E(wbxml.SettingsSettings, wbxml.E(wbxml.SettingsUserInformation, wbxml.E(wbxml.SettingsGet)))
	for _, tc := range []struct {
		name       string
		c          call
		wantHTTP   int
		wantStatus string // top-level Status in the body; "" for none
	}{
		{"missing Cmd", call{rawQuery: "User=alice&DeviceId=D&DeviceType=iPhone"}, 400, ""},
		{"missing DeviceId", call{rawQuery: "Cmd=Provision&User=alice&DeviceType=iPhone"}, 400, ""},
		{"unsupported version", call{cmd: "Provision", version: "2.5"}, 400, ""},
		{"no version", call{cmd: "Provision", version: "-"}, 400, ""},
		{"no credentials", call{cmd: "Provision", pass: "-"}, 401, ""},
		{"wrong password", call{cmd: "Provision", user: "bob", pass: "wrong"}, 401, ""},
		{"unknown command 14.1", call{cmd: "Frobnicate", policyKey: &key}, 501, ""},
		{"known but unserved command 14.1", call{cmd: "MoveItems", policyKey: &key, body: wbxml.E(wbxml.MoveMoveItems)}, 200, "137"},
		{"known but unserved command 12.1", call{cmd: "MoveItems", version: "12.1", policyKey: &key}, 501, ""},
		{"malformed WBXML 14.1", call{cmd: "Provision", rawBody: []byte{0x03, 0x01, 0x6a, 0x00, 0x45, 0x01, 0x01, 0x01}}, 200, "102"},
		{"malformed WBXML 12.1", call{cmd: "Provision", version: "12.1", rawBody: []byte{0x03, 0x01}}, 400, ""},
		{"wrong top element", call{cmd: "Provision", body: wbxml.E(wbxml.PingPing)}, 200, "101"},
		{"no policy key 14.1", call{cmd: "Settings", body: settings}, 200, "142"},
		{"stale policy key 14.1", call{cmd: "Settings", body: settings, policyKey: ptr(key + 1)}, 200, "144"},
		{"stale policy key 12.1", call{cmd: "Settings", version: "12.1", body: settings, policyKey: ptr(key + 1)}, 449, ""},
		{"no policy key 12.1", call{cmd: "Settings", version: "12.1", body: settings}, 449, ""},
		{"blocked device 14.1", call{cmd: "Settings", device: "BLOCKED", body: settings, policyKey: &blockedKey}, 200, "129"},
		{"blocked device 12.1", call{cmd: "Settings", version: "12.1", device: "BLOCKED", policyKey: &blockedKey}, 403, ""},
		{"body over the limit", call{cmd: "Provision", rawBody: make([]byte, 2048)}, 413, ""},
		{"method", call{method: http.MethodPut, cmd: "Provision"}, 405, ""},
		// Found by FuzzHandler on PostgreSQL, which refuses invalid UTF-8
		// (then 500 / status 110, or 503 for the login).
		{"DeviceId not UTF-8", call{rawQuery: "Cmd=Provision&User=alice&DeviceId=%C3%28&DeviceType=iPhone"}, 400, ""},
		{"DeviceType not UTF-8", call{rawQuery: "Cmd=Provision&User=alice&DeviceId=D&DeviceType=%D3Mt"}, 400, ""},
		{"login with NUL", call{rawQuery: "Cmd=Provision&User=alice&DeviceId=D&DeviceType=iPhone", user: "al\x00ice"}, 401, ""},
		{"login not UTF-8", call{rawQuery: "Cmd=Provision&User=alice&DeviceId=D&DeviceType=iPhone", user: "al\xffice"}, 401, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.do(tc.c)
			if r.code != tc.wantHTTP {
				t.Fatalf("HTTP %d, want %d (body %v)", r.code, tc.wantHTTP, r.body)
			}
			if tc.wantStatus != "" {
				if r.body == nil {
					t.Fatalf("no body, want Status %s", tc.wantStatus)
				}
				if got := r.body.ChildText(statusTag(r.body.Tag)); got != tc.wantStatus {
					t.Errorf("Status = %q, want %s (%v)", got, tc.wantStatus, r.body)
				}
			}
		})
	}
}

func TestInvalidPolicyKeyHeader(t *testing.T) {
	ts := newTestServer(t, nil)
	req, _ := http.NewRequest("POST", ts.srv.URL+Path+"?Cmd=Provision&User=alice&DeviceId=D&DeviceType=x", nil)
	req.SetBasicAuth("alice", "alice-pw")
	req.Header.Set("MS-ASProtocolVersion", "14.1")
	req.Header.Set("X-MS-PolicyKey", "not-a-number")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("HTTP %d, want 400", resp.StatusCode)
	}
}

func TestProvisionFromScratch(t *testing.T) {
	ts := newTestServer(t, nil)
	// Step 1 with DeviceInformation, as iOS sends it for 14.1.
	body := provisionRequest("", "")
	body.Children = append([]*wbxml.Node{wbxml.E(wbxml.SettingsDeviceInformation, wbxml.E(wbxml.SettingsSet,
		wbxml.T(wbxml.SettingsModel, "iPhone15,2"), wbxml.T(wbxml.SettingsOS, "iOS 18.1"),
		wbxml.T(wbxml.SettingsFriendlyName, "Alice's iPhone")))}, body.Children...)
	r := ts.do(call{cmd: "Provision", body: body})
	if r.code != 200 || r.body.ChildText(wbxml.ProvisionStatus) != "1" {
		t.Fatalf("step 1: %d %v", r.code, r.body)
	}
	if r.body.Path(wbxml.SettingsDeviceInformation).ChildText(wbxml.SettingsStatus) != "1" {
		t.Errorf("no DeviceInformation status: %v", r.body)
	}
	pol := r.body.Path(wbxml.ProvisionPolicies, wbxml.ProvisionPolicy)
	temp := pol.ChildText(wbxml.ProvisionPolicyKey)
	if pol.ChildText(wbxml.ProvisionPolicyType) != PolicyType || pol.ChildText(wbxml.ProvisionStatus) != "1" || temp == "" {
		t.Fatalf("step 1 policy: %v", pol)
	}
	if pol.Path(wbxml.ProvisionData, wbxml.ProvisionEASProvisionDoc, wbxml.ProvisionDevicePasswordEnabled) == nil {
		t.Errorf("no EASProvisionDoc: %v", pol)
	}
	d := ts.device("alice", "DEV1")
	if d.Model != "iPhone15,2" || d.FriendlyName != "Alice's iPhone" || d.PolicyHash != "" {
		t.Errorf("device after step 1: %+v", d)
	}
	// The temporary key does not pass the gate.
	tk, _ := strconv.ParseUint(temp, 10, 32)
	settings := wbxml.E(wbxml.SettingsSettings, wbxml.E(wbxml.SettingsUserInformation, wbxml.E(wbxml.SettingsGet)))
	if r := ts.do(call{cmd: "Settings", body: settings, policyKey: ptr(uint32(tk))}); r.body.ChildText(wbxml.SettingsStatus) != "142" {
		t.Errorf("temporary key accepted: %v", r.body)
	}
	// Step 2: a wrong key in the acknowledgement is a policy status 5.
	r = ts.do(call{cmd: "Provision", body: provisionRequest("12345", "1")})
	if got := r.body.Path(wbxml.ProvisionPolicies, wbxml.ProvisionPolicy).ChildText(wbxml.ProvisionStatus); got != "5" {
		t.Errorf("ack with wrong key: policy status %q, want 5", got)
	}
	r = ts.do(call{cmd: "Provision", body: provisionRequest(temp, "1")})
	final := r.body.Path(wbxml.ProvisionPolicies, wbxml.ProvisionPolicy).ChildText(wbxml.ProvisionPolicyKey)
	if final == "" || final == temp {
		t.Fatalf("final key %q (temp %q): %v", final, temp, r.body)
	}
	fk, _ := strconv.ParseUint(final, 10, 32)
	d = ts.device("alice", "DEV1")
	if d.PolicyKey != uint32(fk) || d.PolicyHash != DefaultPolicy.Hash() {
		t.Errorf("device after step 2: key %d hash %q", d.PolicyKey, d.PolicyHash)
	}
	if r := ts.do(call{cmd: "Settings", body: settings, policyKey: ptr(uint32(fk))}); r.body.ChildText(wbxml.SettingsStatus) != "1" {
		t.Errorf("final key refused: %v", r.body)
	}
	// The acknowledgement retried (its response was lost) gets the same
	// final key, MS-ASPROV 3.2.5.1.2.
	r = ts.do(call{cmd: "Provision", body: provisionRequest(temp, "1")})
	if again := r.body.Path(wbxml.ProvisionPolicies, wbxml.ProvisionPolicy).ChildText(wbxml.ProvisionPolicyKey); again != final {
		t.Errorf("retried acknowledgement: key %q, want the same %q (%v)", again, final, r.body)
	}
	// Unknown policy type: policy status 3.
	bad := wbxml.E(wbxml.ProvisionProvision, wbxml.E(wbxml.ProvisionPolicies, wbxml.E(wbxml.ProvisionPolicy,
		wbxml.T(wbxml.ProvisionPolicyType, "MS-WAP-Provisioning-XML"))))
	r = ts.do(call{cmd: "Provision", body: bad})
	if got := r.body.Path(wbxml.ProvisionPolicies, wbxml.ProvisionPolicy).ChildText(wbxml.ProvisionStatus); got != "3" {
		t.Errorf("unknown policy type: status %q, want 3", got)
	}
}

func TestPolicyChangeForcesReprovision(t *testing.T) {
	ts := newTestServer(t, nil)
	key := ts.provision(call{})
	settings := wbxml.E(wbxml.SettingsSettings, wbxml.E(wbxml.SettingsUserInformation, wbxml.E(wbxml.SettingsGet)))
	// A new handler with a stricter policy over the same store.
	stricter := DefaultPolicy
	stricter.PasswordRequired, stricter.MinPasswordLength = true, 6
	ts.h = NewHandler(Config{Policy: stricter}, ts.h.deps)
	ts.srv.Config.Handler = ts.h
	r := ts.do(call{cmd: "Settings", body: settings, policyKey: &key})
	if got := r.body.ChildText(wbxml.SettingsStatus); got != "143" {
		t.Fatalf("old key after policy change: status %q, want 143", got)
	}
	if r := ts.do(call{cmd: "Settings", version: "12.1", body: settings, policyKey: &key}); r.code != 449 {
		t.Errorf("12.1 after policy change: HTTP %d, want 449", r.code)
	}
	newKey := ts.provision(call{})
	if r := ts.do(call{cmd: "Settings", body: settings, policyKey: &newKey}); r.body.ChildText(wbxml.SettingsStatus) != "1" {
		t.Errorf("new key refused: %v", r.body)
	}
	// A strict policy that the device did not apply gets no key.
	r = ts.do(call{cmd: "Provision", body: provisionRequest("", "")})
	temp := r.body.Path(wbxml.ProvisionPolicies, wbxml.ProvisionPolicy).ChildText(wbxml.ProvisionPolicyKey)
	r = ts.do(call{cmd: "Provision", body: provisionRequest(temp, "3")})
	if got := r.body.ChildText(wbxml.ProvisionStatus); got != "139" {
		t.Errorf("policy not applied under a strict policy: status %q, want 139 (%v)", got, r.body)
	}
}

func TestRemoteWipe(t *testing.T) {
	for _, tc := range []struct {
		name    string
		wipe    store.WipeState
		version string
		elem    wbxml.Tag
	}{
		{"full", store.WipePending, "14.1", wbxml.ProvisionRemoteWipe},
		{"account only", store.WipeAccountOnly, "16.1", wbxml.ProvisionAccountOnlyRemoteWipe},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, func(c *Config) { c.Versions = []string{"14.1", "16.1"} })
			c := call{version: tc.version}
			key := ts.provision(c)
			if _, err := ts.st.SetDeviceWipe(context.Background(), ts.device("alice", "DEV1").ID, tc.wipe); err != nil {
				t.Fatal(err)
			}
			settings := wbxml.E(wbxml.SettingsSettings, wbxml.E(wbxml.SettingsUserInformation, wbxml.E(wbxml.SettingsGet)))
			r := ts.do(call{version: tc.version, cmd: "Settings", body: settings, policyKey: &key})
			if got := r.body.ChildText(wbxml.SettingsStatus); got != "140" {
				t.Fatalf("command with wipe pending: status %q, want 140", got)
			}
			r = ts.do(call{version: tc.version, cmd: "Provision", body: provisionRequest("", "")})
			if r.body.Child(tc.elem) == nil {
				t.Fatalf("Provision did not carry %v: %v", tc.elem, r.body)
			}
			// A failed wipe is answered with Status 2 and the directive again
			// (MS-ASPROV 3.2.5.1.2.2).
			failed := wbxml.E(wbxml.ProvisionProvision, wbxml.E(tc.elem, wbxml.T(wbxml.ProvisionStatus, "2")))
			r = ts.do(call{version: tc.version, cmd: "Provision", body: failed})
			if r.body.ChildText(wbxml.ProvisionStatus) != "2" || r.body.Child(tc.elem) == nil {
				t.Errorf("failed wipe report answered %v", r.body)
			}
			if got := ts.device("alice", "DEV1").Wipe; got != tc.wipe {
				t.Errorf("wipe state after a failed report = %q, want still %q", got, tc.wipe)
			}
			ack := wbxml.E(wbxml.ProvisionProvision, wbxml.E(tc.elem, wbxml.T(wbxml.ProvisionStatus, "1")))
			for i := range 2 { // the second is a retry after a lost response
				if r = ts.do(call{version: tc.version, cmd: "Provision", body: ack}); r.code != 200 || r.body.ChildText(wbxml.ProvisionStatus) != "1" {
					t.Errorf("ack #%d answered %d %v", i+1, r.code, r.body)
				}
			}
			if got := ts.device("alice", "DEV1").Wipe; got != store.WipeAcknowledged {
				t.Errorf("wipe state after ack = %q", got)
			}
			if r = ts.do(call{version: tc.version, cmd: "Settings", body: settings, policyKey: &key}); r.body.ChildText(wbxml.SettingsStatus) != "129" {
				t.Errorf("wiped device still served: %v", r.body)
			}
			if r = ts.do(call{version: tc.version, cmd: "Provision", body: provisionRequest("", "")}); r.body.ChildText(wbxml.ProvisionStatus) != "129" {
				t.Errorf("wiped device may provision again: %v", r.body)
			}
		})
	}
	t.Run("account only before 16.1 is refused, never a full wipe", func(t *testing.T) {
		ts := newTestServer(t, nil)
		key := ts.provision(call{})
		if _, err := ts.st.SetDeviceWipe(context.Background(), ts.device("alice", "DEV1").ID, store.WipeAccountOnly); err != nil {
			t.Fatal(err)
		}
		r := ts.do(call{cmd: "Provision", body: provisionRequest("", "")})
		if r.body.Child(wbxml.ProvisionRemoteWipe) != nil || r.body.Child(wbxml.ProvisionAccountOnlyRemoteWipe) != nil {
			t.Fatalf("14.1 device got a wipe: %v", r.body)
		}
		if r := ts.do(call{cmd: "Settings", body: wbxml.E(wbxml.SettingsSettings), policyKey: &key}); r.body.ChildText(wbxml.SettingsStatus) != "129" {
			t.Errorf("device not refused: %v", r.body)
		}
	})
}

func TestDeviceRules(t *testing.T) {
	ts := newTestServer(t, func(c *Config) {
		c.MaxDevicesPerUser = 2
		c.AccessRules = []AccessRule{{DeviceType: "SAMSUNG*", Access: store.DeviceQuarantined}}
	})
	ts.provision(call{device: "A"})
	if r := ts.do(call{cmd: "Provision", device: "S1", devType: "SAMSUNGSMG991B", body: provisionRequest("", "")}); r.body.ChildText(wbxml.ProvisionStatus) != "129" {
		t.Errorf("quarantined device served: %v", r.body)
	}
	if got := ts.device("alice", "S1").Access; got != store.DeviceQuarantined {
		t.Errorf("access = %q", got)
	}
	// The user now has two devices: a third is refused with 177.
	r := ts.do(call{cmd: "Provision", device: "C", body: provisionRequest("", "")})
	if got := r.body.ChildText(wbxml.ProvisionStatus); got != "177" {
		t.Errorf("third device: status %q, want 177", got)
	}
	// Another user is not affected.
	ts.provision(call{user: "bob", pass: "bob-pw", device: "C"})
}

// TestModelRule applies an access rule naming a model once the model is
// known, from DeviceInformation inside Provision, before any key is issued.
func TestModelRule(t *testing.T) {
	ts := newTestServer(t, func(c *Config) {
		c.AccessRules = []AccessRule{{Model: "Nokia*", Access: store.DeviceBlocked}}
	})
	body := provisionRequest("", "")
	body.Children = append([]*wbxml.Node{wbxml.E(wbxml.SettingsDeviceInformation, wbxml.E(wbxml.SettingsSet,
		wbxml.T(wbxml.SettingsModel, "Nokia 3310")))}, body.Children...)
	r := ts.do(call{cmd: "Provision", device: "N1", devType: "Android", body: body})
	if got := r.body.ChildText(wbxml.ProvisionStatus); got != "129" {
		t.Errorf("blocked model: status %q, want 129 (%v)", got, r.body)
	}
	if d := ts.device("alice", "N1"); d.Access != store.DeviceBlocked || d.PolicyKey != 0 {
		t.Errorf("device after the rule: access %q key %d", d.Access, d.PolicyKey)
	}
	// Another model passes.
	body.Children[0] = wbxml.E(wbxml.SettingsDeviceInformation, wbxml.E(wbxml.SettingsSet, wbxml.T(wbxml.SettingsModel, "Pixel 9")))
	if r := ts.do(call{cmd: "Provision", device: "P1", devType: "Android", body: body}); r.body.ChildText(wbxml.ProvisionStatus) != "1" {
		t.Errorf("allowed model: %v", r.body)
	}
}

func TestLoginThrottle(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.LoginFailures, c.LoginWindow = 3, time.Minute })
	for range 3 {
		if r := ts.do(call{method: http.MethodOptions, pass: "bad"}); r.code != 401 {
			t.Fatalf("bad password = %d", r.code)
		}
	}
	// Locked: even the right password is not checked now.
	r := ts.do(call{method: http.MethodOptions})
	if r.code != 503 || r.header.Get("Retry-After") == "" {
		t.Errorf("locked login = %d Retry-After %q, want 503 with Retry-After", r.code, r.header.Get("Retry-After"))
	}
	ts.clock.now = ts.clock.now.Add(61 * time.Second)
	if r := ts.do(call{method: http.MethodOptions}); r.code != 200 {
		t.Errorf("after the window = %d", r.code)
	}
	if strings.Contains(ts.logs.String(), "alice-pw") {
		t.Error("password in the log")
	}
}

func TestLoginForms(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, login := range []string{"alice", "ALICE", `EXAMPLE\alice`, "alice@example.com"} {
		if r := ts.do(call{method: http.MethodOptions, user: login, pass: "alice-pw"}); r.code != 200 {
			t.Errorf("login %q = %d", login, r.code)
		}
	}
	if r := ts.do(call{method: http.MethodOptions, user: "nobody", pass: "x"}); r.code != 401 {
		t.Errorf("unknown user = %d", r.code)
	}
	// A disabled user is refused with 403 / status 126.
	ts.st.SetDisabled(context.Background(), "bob", true)
	if r := ts.do(call{cmd: "Provision", user: "bob", pass: "bob-pw", body: provisionRequest("", "")}); r.body.ChildText(wbxml.ProvisionStatus) != "126" {
		t.Errorf("disabled user: %v", r.body)
	}
}

func TestBase64Query(t *testing.T) {
	ts := newTestServer(t, nil)
	devID := []byte{0xde, 0xad, 0xbe, 0xef}
	q := base64Query(141, 20, devID, nil, "WindowsPhone")
	r := ts.do(call{rawQuery: q, version: "-", body: provisionRequest("", "")})
	if r.code != 200 || r.body.ChildText(wbxml.ProvisionStatus) != "1" {
		t.Fatalf("base64 Provision: %d %v", r.code, r.body)
	}
	temp := r.body.Path(wbxml.ProvisionPolicies, wbxml.ProvisionPolicy).ChildText(wbxml.ProvisionPolicyKey)
	r = ts.do(call{rawQuery: q, version: "-", body: provisionRequest(temp, "1")})
	final, _ := strconv.ParseUint(r.body.Path(wbxml.ProvisionPolicies, wbxml.ProvisionPolicy).ChildText(wbxml.ProvisionPolicyKey), 10, 32)
	d := ts.device("alice", "DEADBEEF")
	if d.DeviceType != "WindowsPhone" || d.PolicyKey != uint32(final) || d.ProtocolVersion != "14.1" {
		t.Errorf("device from base64 query: %+v", d)
	}
	// The policy key travels inside the query in this form.
	pk := binary.LittleEndian.AppendUint32(nil, uint32(final))
	settings := wbxml.E(wbxml.SettingsSettings, wbxml.E(wbxml.SettingsUserInformation, wbxml.E(wbxml.SettingsGet)))
	r = ts.do(call{rawQuery: base64Query(141, 17, devID, pk, "WindowsPhone"), version: "-", body: settings})
	if got := r.body.ChildText(wbxml.SettingsStatus); got != "1" {
		t.Errorf("policy key in base64 query not used: %v", r.body)
	}
	// Truncated and garbage base64 queries are 400.
	for _, bad := range []string{"AAAA", "!!!notbase64", base64Query(141, 20, devID, []byte{1, 2}, "x")} {
		if r := ts.do(call{rawQuery: bad, version: "-"}); r.code != 400 {
			t.Errorf("query %q = %d, want 400", bad, r.code)
		}
	}
}

func TestPlainQueryAnyCase(t *testing.T) {
	ts := newTestServer(t, nil)
	r := ts.do(call{rawQuery: "cmd=Provision&user=alice&deviceid=LOWER1&devicetype=Android", body: provisionRequest("", "")})
	if r.code != 200 || r.body.ChildText(wbxml.ProvisionStatus) != "1" {
		t.Errorf("lower-case parameter names: %d %v", r.code, r.body)
	}
}

func TestParseBase64Params(t *testing.T) {
	q := base64Query(121, 3, []byte("ID"), []byte{1, 0, 0, 0}, "T",
		[]byte{1, 2, 'c', '1'}, []byte{3, 2, 'i', '1'}, []byte{7, 1, 0x03}, []byte{8, 5, 'a', 'l', 'i', 'c', 'e'}, []byte{0, 3, 'a', 't', 't'})
	req, err := parseBase64Query(q)
	if err != nil {
		t.Fatal(err)
	}
	if req.Cmd != "SmartReply" || req.Version != "12.1" || req.CollectionID != "c1" || req.ItemID != "i1" ||
		!req.SaveInSent || !req.AcceptMultiPart || req.User != "alice" || req.AttachmentName != "att" ||
		req.PolicyKey == nil || *req.PolicyKey != 1 || req.DeviceID != "4944" || req.Locale != 0x0409 {
		t.Errorf("parsed %+v", req)
	}
}

func TestVersionNum(t *testing.T) {
	for v, want := range map[string]int{"14.1": 141, "2.5": 25, "16.0": 160, "": 0, "x.y": 0, "14": 0, "1.10": 0} {
		if got := versionNum(v); got != want {
			t.Errorf("versionNum(%q) = %d, want %d", v, got, want)
		}
	}
}

func TestOverload(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxConcurrent = 1 })
	ts.h.busy <- struct{}{} // one command is running
	r := ts.do(call{cmd: "Provision", body: provisionRequest("", "")})
	if r.code != 503 || r.header.Get("Retry-After") != "10" {
		t.Errorf("overloaded = %d Retry-After %q, want 503 with Retry-After", r.code, r.header.Get("Retry-After"))
	}
	<-ts.h.busy
	if r := ts.do(call{cmd: "Provision", body: provisionRequest("", "")}); r.code != 200 {
		t.Errorf("after the load went = %d", r.code)
	}
}

func TestSmallCommandBodyCap(t *testing.T) {
	ts := newTestServer(t, nil) // the global limit stays at 50 MiB
	r := ts.do(call{cmd: "Provision", rawBody: make([]byte, smallBody+1)})
	if r.code != 413 {
		t.Errorf("Provision body over %d bytes = %d, want 413", smallBody, r.code)
	}
}

func TestObserve(t *testing.T) {
	var got []string
	ts := newTestServer(t, nil)
	ts.h.deps.Observe = func(cmd, result string) { got = append(got, cmd+" "+result) }
	key := ts.provision(call{})
	settings := wbxml.E(wbxml.SettingsSettings, wbxml.E(wbxml.SettingsUserInformation, wbxml.E(wbxml.SettingsGet)))
	ts.do(call{cmd: "Settings", body: settings})                  // no key: 142
	ts.do(call{cmd: "Settings", body: settings, policyKey: &key}) // ok
	ts.do(call{cmd: "Frobnicate", policyKey: &key})               // unknown: bounded label
	ts.do(call{cmd: "Provision", pass: "wrong"})                  // 401
	want := []string{"Provision ok", "Provision ok", "Settings status_142", "Settings ok", "other status_137", "Provision http_401"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("observed %q, want %q", got, want)
	}
}

// TestUserSlots checks the per-user counters behind Config.
// MaxUserConcurrent: the bound, idempotent release, and no entry left for
// a user with nothing running.
func TestUserSlots(t *testing.T) {
	u := newUserSlots(2)
	r1, ok1 := u.acquire(1)
	r2, ok2 := u.acquire(1)
	if !ok1 || !ok2 {
		t.Fatal("user 1 could not take 2 slots of 2")
	}
	if _, ok := u.acquire(1); ok {
		t.Error("user 1 took a third slot of 2")
	}
	rb, ok := u.acquire(2)
	if !ok {
		t.Error("user 2 refused while user 1 is at the limit")
	}
	r1()
	r1() // idempotent: gives back one slot, not two
	r3, ok := u.acquire(1)
	if !ok {
		t.Fatal("user 1 refused after a release")
	}
	if _, ok := u.acquire(1); ok {
		t.Error("a second release of the same slot freed another one")
	}
	r2()
	r3()
	rb()
	if n := u.users(); n != 0 {
		t.Errorf("%d users counted with nothing running, want 0 (counters are removed at zero)", n)
	}
}

// TestOverloadReleasesUserSlot checks that a request refused for the
// global bound gives its per-user slot back.
func TestOverloadReleasesUserSlot(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxConcurrent, c.MaxUserConcurrent = 1, 1 })
	ts.h.busy <- struct{}{} // another command is running
	for range 2 {
		r := ts.do(call{cmd: "Provision", body: provisionRequest("", "")})
		if r.code != 503 || r.header.Get("Retry-After") != "10" {
			t.Errorf("overloaded = %d Retry-After %q, want 503 with Retry-After 10", r.code, r.header.Get("Retry-After"))
		}
	}
	<-ts.h.busy
	if r := ts.do(call{cmd: "Provision", body: provisionRequest("", "")}); r.code != 200 {
		t.Errorf("after the load went = %d, want 200 (the user's slot was kept by a refused request?)", r.code)
	}
	if n := ts.h.userBusy.users(); n != 0 {
		t.Errorf("%d users counted after every request ended", n)
	}
}

// TestDeviceLimitConcurrent sends the first contact of many phones of one
// user at once: the per-user device limit holds (store.AddDevice counts
// and inserts in one transaction), the others get status 177.
func TestDeviceLimitConcurrent(t *testing.T) {
	const phones, limit = 12, 5
	// Logins in flight count against the throttle (throttle.go): allow
	// all of them at once here.
	ts := newTestServer(t, func(c *Config) { c.MaxDevicesPerUser, c.LoginFailures = limit, 100 })
	var body bytes.Buffer
	if err := wbxml.Encode(&body, provisionRequest("", "")); err != nil {
		t.Fatal(err)
	}
	type result struct {
		code   int
		status string
		err    error
	}
	results := make(chan result, phones)
	var wg sync.WaitGroup
	for i := range phones {
		wg.Go(func() {
			code, status, err := provisionRaw(ts.srv.URL, fmt.Sprintf("PHONE%02d", i), body.Bytes())
			results <- result{code, status, err}
		})
	}
	wg.Wait()
	close(results)
	counts := map[string]int{}
	for r := range results {
		if r.err != nil {
			t.Fatal(r.err)
		}
		counts[fmt.Sprintf("%d/%s", r.code, r.status)]++
	}
	if want := map[string]int{"200/1": limit, "200/177": phones - limit}; !cmp.Equal(counts, want) {
		t.Errorf("answers %v, want %v\n%s", counts, want, ts.logs.String())
	}
	u, err := ts.st.User(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	devs, err := ts.st.Devices(context.Background(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != limit {
		t.Errorf("%d devices registered, want the limit %d", len(devs), limit)
	}
	// A registered phone still works at the limit; 12.1 gets HTTP 403.
	if code, status, err := provisionRaw(ts.srv.URL, devs[0].DeviceID, body.Bytes()); err != nil || code != 200 || status != "1" {
		t.Errorf("registered phone at the limit: %d %q %v", code, status, err)
	}
	if r := ts.do(call{cmd: "Provision", version: "12.1", device: "LATE121", body: provisionRequest("", "")}); r.code != 403 {
		t.Errorf("12.1 phone over the limit: HTTP %d, want 403", r.code)
	}
}

// provisionRaw posts a Provision of alice's device id and returns the
// HTTP code and the top-level Status.
func provisionRaw(base, device string, body []byte) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, base+Path+"?Cmd=Provision&User=alice&DeviceId="+device+"&DeviceType=iPhone", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.SetBasicAuth("alice", "alice-pw")
	req.Header.Set("MS-ASProtocolVersion", "14.1")
	req.Header.Set("Content-Type", "application/vnd.ms-sync.wbxml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || len(raw) == 0 {
		return resp.StatusCode, "", err
	}
	n, err := wbxml.DecodeBytes(raw, wbxml.Limits{})
	if err != nil {
		return resp.StatusCode, "", err
	}
	return resp.StatusCode, n.ChildText(wbxml.ProvisionStatus), nil
}
