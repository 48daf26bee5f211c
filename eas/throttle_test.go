package eas

import (
	"net/http"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

func TestThrottleKeys(t *testing.T) {
	for in, want := range map[string]string{
		"alice": "u:alice", "alice@example.com": "u:alice", "alice@x0": "u:alice",
	} {
		if got := userKey(in); got != want {
			t.Errorf("userKey(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"192.0.2.7":                "a:192.0.2.7",
		"::ffff:192.0.2.7":         "a:192.0.2.7",
		"2001:db8:1:2:aaaa::1":     "a:2001:db8:1:2::/64",
		"2001:db8:1:2:bbbb:cc::99": "a:2001:db8:1:2::/64",
		"not-an-ip":                "a:not-an-ip",
	} {
		if got := addrKey(in); got != want {
			t.Errorf("addrKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestThrottleCountsChecksInFlight(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := newThrottle(3, time.Minute, func() time.Time { return now })
	// Three checks start before any has failed: the fourth must wait.
	for i := range 3 {
		if wait := th.begin("u:alice", "a:x"); wait != 0 {
			t.Fatalf("check %d locked: %v", i, wait)
		}
	}
	if wait := th.begin("u:alice", "a:y"); wait == 0 {
		t.Fatal("a fourth parallel guess got through")
	}
	// Two succeed, one fails: not locked any more.
	th.end(false, "u:alice", "a:x")
	th.end(false, "u:alice", "a:x")
	th.end(true, "u:alice", "a:x")
	if wait := th.begin("u:alice", "a:x"); wait != 0 {
		t.Fatalf("locked after one failure: %v", wait)
	}
	th.end(true, "u:alice", "a:x")
	th.begin("u:alice", "a:z")
	th.end(true, "u:alice", "a:z")
	// Three failures for alice, from any address, lock alice everywhere.
	wait := th.begin("u:alice", "a:new")
	if wait <= 0 || wait > time.Minute {
		t.Fatalf("alice after 3 failures: wait %v", wait)
	}
	now = now.Add(time.Minute)
	if wait := th.begin("u:alice", "a:new"); wait != 0 {
		t.Errorf("still locked after the window: %v", wait)
	}
}

func TestThrottleBoundedMemory(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := newThrottle(3, time.Minute, func() time.Time { return now })
	for i := range maxThrottleKeys + 10 {
		k := "a:" + netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String()
		th.begin(k)
		th.end(true, k)
	}
	if n := len(th.keys); n > maxThrottleKeys {
		t.Errorf("%d keys tracked, bound is %d", n, maxThrottleKeys)
	}
}

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		remote, xff string
		trusted     []netip.Prefix
		want        string
	}{
		{"192.0.2.1:5555", "", nil, "192.0.2.1"},
		{"192.0.2.1:5555", "203.0.113.9", nil, "192.0.2.1"},               // untrusted: header ignored
		{"192.0.2.1:5555", "203.0.113.9", trusted, "192.0.2.1"},           // not from the proxy
		{"10.1.1.1:5555", "203.0.113.9", trusted, "203.0.113.9"},          // from the proxy
		{"10.1.1.1:5555", "6.6.6.6, 203.0.113.9", trusted, "203.0.113.9"}, // the proxy appended the real client last
		{"10.1.1.1:5555", "203.0.113.9, 10.2.2.2", trusted, "203.0.113.9"},
		{"[2001:db8::1]:443", "", nil, "2001:db8::1"},
	} {
		r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := clientAddr(r, tc.trusted); got != tc.want {
			t.Errorf("clientAddr(%s, XFF %q) = %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}

// TestLoginThrottleAcrossForms locks alice out through the handler with
// failures under different login forms and client addresses.
func TestLoginThrottleAcrossForms(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.LoginFailures, c.LoginWindow = 3, time.Minute })
	for _, login := range []string{"alice@x0", "alice@x1", `DOM\alice`} {
		if r := ts.do(call{method: http.MethodOptions, user: login, pass: "bad"}); r.code != 401 {
			t.Fatalf("bad password as %s = %d", login, r.code)
		}
	}
	r := ts.do(call{method: http.MethodOptions})
	if r.code != 503 {
		t.Errorf("alice after failures under other forms = %d, want 503", r.code)
	}
	if ra := r.header.Get("Retry-After"); ra == "" || ra == "30" {
		t.Errorf("Retry-After %q, want the real remaining wait (60s)", ra)
	}
}

// TestThrottleInFlightOnly: logins in flight alone hold a key for a
// moment, never for the window (phones behind one NAT logging in at once).
func TestThrottleInFlightOnly(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := newThrottle(3, 15*time.Minute, func() time.Time { return now })
	for i := range 3 {
		if w := th.begin(userKey("u"+strconv.Itoa(i)), "a:10.0.0.1"); w != 0 {
			t.Fatalf("login %d waited %v", i, w)
		}
	}
	if w := th.begin("u:other", "a:10.0.0.1"); w != time.Second {
		t.Errorf("with 3 logins in flight from the address: wait %v, want 1s", w)
	}
	for i := range 3 {
		th.end(false, userKey("u"+strconv.Itoa(i)), "a:10.0.0.1")
	}
	if w := th.begin("u:other", "a:10.0.0.1"); w != 0 {
		t.Errorf("after they succeeded: wait %v", w)
	}
}
