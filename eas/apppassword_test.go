package eas

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/easd/easd/store"
	"github.com/easd/easd/wbxml"
)

func TestAppPasswordForm(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		pw, hash, err := NewAppPassword(nil)
		if err != nil {
			t.Fatal(err)
		}
		groups := strings.Split(pw, "-")
		if len(groups) != 5 || len(pw) != 29 {
			t.Fatalf("app password %q: want five groups of five", pw)
		}
		for _, c := range strings.ReplaceAll(pw, "-", "") {
			if !strings.ContainsRune(appPasswordAlphabet, c) {
				t.Fatalf("app password %q has %q, not in the alphabet", pw, c)
			}
		}
		if seen[pw] {
			t.Fatalf("app password %q generated twice", pw)
		}
		seen[pw] = true
		if got, ok := HashAppPassword(pw); !ok || got != hash || !strings.HasPrefix(hash, "$sha256$") {
			t.Errorf("HashAppPassword(%q) = %q, %v; want %q", pw, got, ok, hash)
		}
		// As a phone keyboard may type it.
		for _, typed := range []string{strings.ToUpper(pw), strings.ReplaceAll(pw, "-", ""), strings.ReplaceAll(pw, "-", " "),
			strings.ToUpper(pw[:1]) + pw[1:]} {
			if got, ok := HashAppPassword(typed); !ok || got != hash {
				t.Errorf("HashAppPassword(%q) = %q, %v; want %q", typed, got, ok, hash)
			}
		}
	}
	if AppPasswordBits < 120 {
		t.Errorf("app passwords carry %d bits, want at least 120 (a fast digest is safe only then)", AppPasswordBits)
	}
	// The alphabet has 32 distinct letters: 5 bits each.
	distinct := map[rune]bool{}
	for _, c := range appPasswordAlphabet {
		distinct[c] = true
	}
	if len(distinct) != 32 {
		t.Errorf("alphabet has %d distinct letters, want 32", len(distinct))
	}
	for _, bad := range []string{"", "alice-pw", "abcde-fghij-kmnpq-rstuv-wxy2", "abcde-fghij-kmnpq-rstuv-wxyz23",
		"abcde-fghij-kmnpq-rstuv-wxyl0", strings.Repeat("a", 25) + strings.Repeat("-", 40)} {
		if h, ok := HashAppPassword(bad); ok {
			t.Errorf("HashAppPassword(%q) = %q, accepted; want refused", bad, h)
		}
	}
}

// countingApps counts the store calls that app passwords make.
type countingApps struct {
	AppPasswordStore
	lists, touches atomic.Int32
}

func (c *countingApps) AppPasswords(ctx context.Context, userID int64) ([]store.AppPassword, error) {
	c.lists.Add(1)
	return c.AppPasswordStore.AppPasswords(ctx, userID)
}

func (c *countingApps) TouchAppPassword(ctx context.Context, id int64, at time.Time) error {
	c.touches.Add(1)
	return c.AppPasswordStore.TouchAppPassword(ctx, id, at)
}

// addAppPassword gives user a new app password and returns it.
func (ts *testServer) addAppPassword(user, device string) (string, store.AppPassword) {
	ts.t.Helper()
	u, err := ts.st.User(context.Background(), user)
	if err != nil {
		ts.t.Fatal(err)
	}
	pw, hash, err := NewAppPassword(nil)
	if err != nil {
		ts.t.Fatal(err)
	}
	p, err := ts.st.AddAppPassword(context.Background(), store.AppPassword{UserID: u.ID, Label: "test", DeviceID: device, Hash: hash})
	if err != nil {
		ts.t.Fatal(err)
	}
	return pw, p
}

func TestLocalAuthAppPasswords(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx := context.Background()
	apps := &countingApps{AppPasswordStore: ts.st}
	auth := LocalAuth{Users: ts.st, AppPasswords: apps, Now: ts.clock.Now}
	anyDev, _ := ts.addAppPassword("alice", "")
	bound, boundRec := ts.addAppPassword("alice", "IPHONE1")
	bobs, _ := ts.addAppPassword("bob", "")

	ok := func(what string, u store.User, err error) {
		t.Helper()
		if err != nil || u.Name != "alice" {
			t.Errorf("%s: %q, %v; want alice", what, u.Name, err)
		}
	}
	bad := func(what string, _ store.User, err error) {
		t.Helper()
		if !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%s: %v, want ErrBadCredentials", what, err)
		}
	}
	u, err := auth.Authenticate(ctx, "alice", "alice-pw")
	ok("account password", u, err)
	if n := apps.lists.Load(); n != 0 {
		t.Errorf("an ordinary password looked up app passwords %d times; want none", n)
	}
	u, err = auth.Authenticate(ctx, "alice", anyDev)
	ok("app password", u, err)
	u, err = auth.Authenticate(ctx, "alice@example.com", strings.ToUpper(anyDev))
	ok("app password typed in capitals, address login", u, err)
	u, err = auth.AuthenticateDevice(ctx, "alice", anyDev, "ANYTHING")
	ok("unbound app password from any device", u, err)
	u, err = auth.Authenticate(ctx, "alice", bobs)
	bad("bob's app password for alice", u, err)

	// Bound to IPHONE1: accepted from it, and from requests naming no
	// device (OPTIONS, Autodiscover); refused elsewhere.
	u, err = auth.AuthenticateDevice(ctx, "alice", bound, "IPHONE1")
	ok("bound app password from its device", u, err)
	u, err = auth.AuthenticateDevice(ctx, "alice", bound, "")
	ok("bound app password, no device named", u, err)
	u, err = auth.AuthenticateDevice(ctx, "alice", bound, "IPHONE2")
	bad("bound app password from another device", u, err)
	u, err = auth.AuthenticateDevice(ctx, "alice", bound, "iphone1")
	bad("bound app password from a device id differing in case", u, err)
	u, err = auth.Authenticate(ctx, "alice", bound)
	bad("bound app password without DeviceAuthenticator", u, err)

	// Uses were recorded once: all within the same minute.
	if n := apps.touches.Load(); n != 2 {
		t.Errorf("TouchAppPassword ran %d times for two passwords used in one minute; want 2", n)
	}
	ts.clock.now = ts.clock.now.Add(appPasswordTouchEvery)
	u, err = auth.AuthenticateDevice(ctx, "alice", bound, "IPHONE1")
	ok("bound app password a minute later", u, err)
	if n := apps.touches.Load(); n != 3 {
		t.Errorf("TouchAppPassword ran %d times after a minute; want 3", n)
	}
	ps, err := ts.st.AppPasswords(ctx, boundRec.UserID)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.ID == boundRec.ID && !p.LastUsed.Equal(ts.clock.now) {
			t.Errorf("LastUsed = %v, want %v", p.LastUsed, ts.clock.now)
		}
	}

	// Revoked: refused at once (nothing is cached).
	if err := ts.st.DeleteAppPassword(ctx, boundRec.UserID, boundRec.ID); err != nil {
		t.Fatal(err)
	}
	u, err = auth.AuthenticateDevice(ctx, "alice", bound, "IPHONE1")
	bad("revoked app password", u, err)
	u, err = auth.Authenticate(ctx, "alice", anyDev)
	ok("the other app password after a revocation", u, err)

	// A matching app password needs no argon2id check: it works even when
	// the account's own hash is unusable.
	if err := ts.st.SetPassword(ctx, "alice", "$unknown$format"); err != nil {
		t.Fatal(err)
	}
	u, err = auth.Authenticate(ctx, "alice", anyDev)
	ok("app password with a broken account hash", u, err)
	if _, err := auth.Authenticate(ctx, "alice", "alice-pw"); err == nil || errors.Is(err, ErrBadCredentials) {
		t.Errorf("account password against a broken hash: %v; want a hash error", err)
	}
	u, err = auth.Authenticate(ctx, "nobody", anyDev)
	bad("unknown user", u, err)
}

// TestLocalAuthManyAppPasswords: a login with many app passwords costs
// one store read and one digest, however many there are.
func TestLocalAuthManyAppPasswords(t *testing.T) {
	ts := newTestServer(t, nil)
	apps := &countingApps{AppPasswordStore: ts.st}
	auth := LocalAuth{Users: ts.st, AppPasswords: apps, Now: ts.clock.Now}
	var last string
	for range 100 {
		last, _ = ts.addAppPassword("alice", "")
	}
	// The account hash is unusable: any argon2id check would fail.
	if err := ts.st.SetPassword(context.Background(), "alice", "$unknown$format"); err != nil {
		t.Fatal(err)
	}
	if u, err := auth.Authenticate(context.Background(), "alice", last); err != nil || u.Name != "alice" {
		t.Fatalf("the 100th app password: %q, %v", u.Name, err)
	}
	if n := apps.lists.Load(); n != 1 {
		t.Errorf("AppPasswords read %d times; want 1", n)
	}
}

// TestAppPasswordRequests uses an app password through the handler, as a
// phone does, and revokes it: the next request is refused.
func TestAppPasswordRequests(t *testing.T) {
	ts := newTestServer(t, nil)
	pw, rec := ts.addAppPassword("alice", "")
	if r := ts.do(call{method: http.MethodOptions, pass: pw}); r.code != 200 {
		t.Fatalf("OPTIONS with an app password = %d", r.code)
	}
	key := ts.provision(call{pass: pw})
	settings := wbxml.E(wbxml.SettingsSettings, wbxml.E(wbxml.SettingsUserInformation, wbxml.E(wbxml.SettingsGet)))
	if r := ts.do(call{cmd: "Settings", pass: pw, body: settings, policyKey: &key}); r.code != 200 || r.body.ChildText(wbxml.SettingsStatus) != "1" {
		t.Fatalf("Settings with an app password: %d %v", r.code, r.body)
	}
	// The account password still works alongside.
	if r := ts.do(call{cmd: "Settings", body: settings, policyKey: &key}); r.code != 200 {
		t.Errorf("Settings with the account password = %d", r.code)
	}
	if err := ts.st.DeleteAppPassword(context.Background(), rec.UserID, rec.ID); err != nil {
		t.Fatal(err)
	}
	if r := ts.do(call{cmd: "Settings", pass: pw, body: settings, policyKey: &key}); r.code != 401 {
		t.Errorf("Settings after revocation = %d, want 401", r.code)
	}
	if strings.Contains(ts.logs.String(), pw) {
		t.Error("app password in the log")
	}
}

// TestCheckPasswordDevice checks which DeviceId the handler gives a
// DeviceAuthenticator: the command's (plain or base64 query), the plain
// query's on OPTIONS, none for Autodiscover.
func TestCheckPasswordDevice(t *testing.T) {
	ts := newTestServer(t, nil)
	pw, _ := ts.addAppPassword("alice", "DEADBEEF")
	for _, tc := range []struct {
		method, target string
		ok             bool
	}{
		{"POST", Path + "?Cmd=Provision&User=alice&DeviceId=DEADBEEF&DeviceType=iPhone", true},
		{"POST", Path + "?cmd=Provision&user=alice&deviceid=DEADBEEF&devicetype=iPhone", true},
		{"POST", Path + "?Cmd=Provision&User=alice&DeviceId=OTHER&DeviceType=iPhone", false},
		{"POST", Path + "?" + base64Query(141, 20, []byte{0xde, 0xad, 0xbe, 0xef}, nil, "WP"), true},
		{"POST", Path + "?" + base64Query(141, 20, []byte{0xde, 0xad, 0xbe, 0xee}, nil, "WP"), false},
		{"OPTIONS", Path + "?User=alice&DeviceId=DEADBEEF&DeviceType=iPhone", true},
		{"OPTIONS", Path + "?User=alice&DeviceId=OTHER&DeviceType=iPhone", false},
		{"OPTIONS", Path, true},
		{"POST", "/autodiscover/autodiscover.xml", true},
	} {
		r := httptest.NewRequest(tc.method, tc.target, nil)
		u, err := ts.h.checkPassword(context.Background(), r, "alice", pw)
		if got := err == nil && u.Name == "alice"; got != tc.ok {
			t.Errorf("%s %s: %q, %v; want accepted %v", tc.method, tc.target, u.Name, err, tc.ok)
		}
	}
}

// TestAppPasswordDeviceBoundRequests: an app password bound to a device
// works from it (and for OPTIONS without a query), and is refused from
// another device. It needs Handler.authenticate to call checkPassword.
func TestAppPasswordDeviceBoundRequests(t *testing.T) {
	ts := newTestServer(t, nil)
	pw, _ := ts.addAppPassword("alice", "DEV1")
	if r := ts.do(call{method: http.MethodOptions, pass: pw, rawQuery: "User=alice"}); r.code != 200 {
		t.Errorf("OPTIONS naming no device = %d, want 200", r.code)
	}
	ts.provision(call{pass: pw, device: "DEV1"})
	if r := ts.do(call{cmd: "Provision", pass: pw, device: "DEV2", body: provisionRequest("", "")}); r.code != 401 {
		t.Errorf("Provision from another device = %d, want 401", r.code)
	}
	if r := ts.do(call{method: http.MethodOptions, pass: pw, rawQuery: "User=alice&DeviceId=DEV2&DeviceType=iPhone"}); r.code != 401 {
		t.Errorf("OPTIONS naming another device = %d, want 401", r.code)
	}
}

// TestWipeAudit: a device acknowledging a remote wipe leaves one
// "device.wiped" entry by "server" in the audit log (a retried
// acknowledgement none), and a log line.
func TestWipeAudit(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.provision(call{})
	if _, err := ts.st.SetDeviceWipe(context.Background(), ts.device("alice", "DEV1").ID, store.WipePending); err != nil {
		t.Fatal(err)
	}
	if r := ts.do(call{cmd: "Provision", body: provisionRequest("", "")}); r.body.Child(wbxml.ProvisionRemoteWipe) == nil {
		t.Fatalf("no wipe sent: %v", r.body)
	}
	ack := wbxml.E(wbxml.ProvisionProvision, wbxml.E(wbxml.ProvisionRemoteWipe, wbxml.T(wbxml.ProvisionStatus, "1")))
	for range 2 {
		if r := ts.do(call{cmd: "Provision", body: ack}); r.code != 200 {
			t.Fatalf("ack = %d", r.code)
		}
	}
	es, err := ts.st.Audit(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Actor != "server" || es[0].Action != "device.wiped" || es[0].User != "alice" ||
		es[0].Device != "DEV1" || !strings.Contains(es[0].Detail, "RemoteWipe") {
		t.Errorf("audit log after the wipe = %+v; want one device.wiped of alice's DEV1 by server", es)
	}
	if !strings.Contains(ts.logs.String(), "msg=audit") || !strings.Contains(ts.logs.String(), "action=device.wiped") {
		t.Errorf("no audit log line:\n%s", ts.logs.String())
	}
}
