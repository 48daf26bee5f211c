package eas

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// throttle counts failed logins per key (a user, a client network) in a
// fixed window; a key with max failures is locked until its window ends.
// Checks in flight count as failures until they are known to have
// succeeded, so parallel guesses cannot slip past the limit. Memory is
// bounded: at most maxKeys keys are tracked; when full, expired keys are
// pruned and then the oldest is evicted.
type throttle struct {
	max    int
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	keys map[string]*failures
}

type failures struct {
	n       int // failures in the window
	pending int // checks in flight
	since   time.Time
}

const maxThrottleKeys = 100_000

func newThrottle(max int, window time.Duration, now func() time.Time) *throttle {
	return &throttle{max: max, window: window, now: now, keys: map[string]*failures{}}
}

// begin records a check in flight for each key and returns how long the
// most restricted of them stays locked; 0 when none is, and then the caller
// must call end with the outcome.
func (t *throttle) begin(keys ...string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var wait time.Duration
	for _, k := range keys {
		f := t.get(k, now)
		if f.n+f.pending >= t.max {
			// Failures lock the key for the rest of the window; checks
			// still in flight (many phones behind one NAT logging in at
			// once) only for a moment.
			left := time.Second
			if f.n >= t.max {
				left = max(f.since.Add(t.window).Sub(now), time.Second)
			}
			wait = max(wait, left)
		}
	}
	if wait > 0 {
		return wait
	}
	for _, k := range keys {
		t.get(k, now).pending++
	}
	return 0
}

// end closes a check begun with begin. A failure counts against every key;
// a success clears the failures of the user key (keys[0]).
func (t *throttle) end(failed bool, keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for i, k := range keys {
		f := t.get(k, now)
		if f.pending > 0 {
			f.pending--
		}
		switch {
		case failed:
			f.n++
		case i == 0:
			f.n = 0
		}
	}
}

// get returns the entry of k, started afresh when its window has passed.
func (t *throttle) get(k string, now time.Time) *failures {
	f := t.keys[k]
	if f != nil && now.Sub(f.since) >= t.window {
		f.n, f.since = 0, now
	}
	if f == nil {
		if len(t.keys) >= maxThrottleKeys {
			t.evict(now)
		}
		f = &failures{since: now}
		t.keys[k] = f
	}
	return f
}

// evict drops expired idle keys, then the oldest idle one if none expired.
func (t *throttle) evict(now time.Time) {
	var oldest string
	var oldestSince time.Time
	for k, f := range t.keys {
		if f.pending > 0 {
			continue
		}
		if now.Sub(f.since) >= t.window {
			delete(t.keys, k)
			continue
		}
		if oldest == "" || f.since.Before(oldestSince) {
			oldest, oldestSince = k, f.since
		}
	}
	if len(t.keys) >= maxThrottleKeys && oldest != "" {
		delete(t.keys, oldest)
	}
}

// userKey is the throttle key of a login: its local part, so that the
// forms alice, alice@example.com and alice@anything share one budget.
func userKey(login string) string {
	local, _, _ := strings.Cut(login, "@")
	return "u:" + local
}

// addrKey is the throttle key of a client address: the address for IPv4,
// its /64 for IPv6 (one subscriber's allocation).
func addrKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return "a:" + addr
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return "a:" + p.String()
	}
	return "a:" + ip.String()
}

// clientAddr returns the client's IP address. A request from a trusted
// proxy is attributed to the last address in X-Forwarded-For that is not
// itself a trusted proxy.
func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	host := r.RemoteAddr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		host = ap.Addr().Unmap().String()
	}
	if len(trusted) == 0 || !inPrefixes(host, trusted) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.TrimSpace(hops[i])
		if h == "" {
			continue
		}
		if !inPrefixes(h, trusted) {
			return h
		}
	}
	return host
}

func inPrefixes(addr string, ps []netip.Prefix) bool {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
