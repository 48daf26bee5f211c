package imapbridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeAuth is an upstream with fixed passwords that counts its calls.
// If gate is set, each call waits for it and reports its start on started.
type fakeAuth struct {
	passwords map[string]string
	gate      chan struct{}
	started   chan struct{}
	err       error // returned instead of the password check, if set

	mu    sync.Mutex
	calls int
}

func (f *fakeAuth) Verify(ctx context.Context, user, password string) error {
	f.mu.Lock()
	f.calls++
	err := f.err
	f.mu.Unlock()
	if f.gate != nil {
		f.started <- struct{}{}
		select {
		case <-f.gate:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
	}
	if err != nil {
		return err
	}
	if pw, ok := f.passwords[user]; !ok || pw != password {
		return fmt.Errorf("%w: fake", ErrBadCredentials)
	}
	return nil
}

func (f *fakeAuth) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrBadCredentials):
		return "bad credentials"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	}
	return "unclassified: " + err.Error()
}

// step is one Verify call and what it must give.
type step struct {
	advance        time.Duration // clock advance before the call
	user, password string
	want           string
	calls          int // upstream calls after it
}

func runSteps(t *testing.T, c *CachedAuthenticator, clock *fakeClock, up *fakeAuth, steps []step) {
	t.Helper()
	for i, s := range steps {
		clock.Advance(s.advance)
		err := c.Verify(t.Context(), s.user, s.password)
		if got := result(err); got != s.want {
			t.Errorf("step %d: Verify(%q, %q) = %v (%s); want %s", i, s.user, s.password, err, got, s.want)
		}
		if got := up.callCount(); got != s.calls {
			t.Errorf("step %d: Verify(%q, %q): %d upstream calls; want %d", i, s.user, s.password, got, s.calls)
		}
	}
}

func newTestCache(up Authenticator, opts CacheOptions) (*CachedAuthenticator, *fakeClock) {
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	opts.Now = clock.Now
	return NewCachedAuthenticator(up, opts), clock
}

func TestCachedAuthenticator(t *testing.T) {
	up := &fakeAuth{passwords: map[string]string{"alice": "pw-a", "bob": "pw-b"}}
	c, clock := newTestCache(up, CacheOptions{TTL: time.Minute})
	runSteps(t, c, clock, up, []step{
		{0, "alice", "pw-a", "ok", 1},
		{0, "alice", "pw-a", "ok", 1}, // cached
		{0, "alice", "wrong", "bad credentials", 2},
		{0, "alice", "wrong", "bad credentials", 3}, // failures are not cached
		{0, "alice", "pw-a", "ok", 3},               // ... and do not evict the right one
		{0, "bob", "pw-a", "bad credentials", 4},    // one user's entry does not serve another
		{0, "bob", "pw-b", "ok", 5},
		{0, "ALICE", "pw-a", "bad credentials", 6}, // user names are compared exactly
		{59 * time.Second, "alice", "pw-a", "ok", 6},
		{time.Second, "alice", "pw-a", "ok", 7}, // expired after the TTL: asked again
		{30 * time.Second, "alice", "pw-a", "ok", 7},
		{30 * time.Second, "bob", "pw-b", "ok", 8},
	})
}

func TestCachedAuthenticatorPasswordChange(t *testing.T) {
	up := &fakeAuth{passwords: map[string]string{"alice": "old"}}
	c, clock := newTestCache(up, CacheOptions{})
	runSteps(t, c, clock, up, []step{
		{0, "alice", "old", "ok", 1},
	})
	up.passwords = map[string]string{"alice": "new"}
	runSteps(t, c, clock, up, []step{
		{0, "alice", "new", "ok", 2}, // replaces the cached one
		{0, "alice", "old", "bad credentials", 3},
		{0, "alice", "new", "ok", 3},
	})
	c.Forget("alice")
	runSteps(t, c, clock, up, []step{
		{0, "alice", "new", "ok", 4},
		{DefaultCacheTTL - time.Nanosecond, "alice", "new", "ok", 4},
		{time.Nanosecond, "alice", "new", "ok", 5}, // default TTL
	})
}

func TestCachedAuthenticatorUnavailableNotCached(t *testing.T) {
	up := &fakeAuth{passwords: map[string]string{"alice": "pw"}, err: fmt.Errorf("%w: down", ErrUnavailable)}
	c, clock := newTestCache(up, CacheOptions{})
	runSteps(t, c, clock, up, []step{
		{0, "alice", "pw", "unavailable", 1},
		{0, "alice", "pw", "unavailable", 2},
	})
	up.mu.Lock()
	up.err = nil
	up.mu.Unlock()
	runSteps(t, c, clock, up, []step{
		{0, "alice", "pw", "ok", 3},
		{0, "alice", "pw", "ok", 3},
	})
}

func TestCachedAuthenticatorEvictsOldest(t *testing.T) {
	up := &fakeAuth{passwords: map[string]string{"a": "1", "b": "2", "c": "3", "d": "4"}}
	c, clock := newTestCache(up, CacheOptions{MaxEntries: 3})
	runSteps(t, c, clock, up, []step{
		{0, "a", "1", "ok", 1},
		{time.Second, "b", "2", "ok", 2},
		{time.Second, "c", "3", "ok", 3},
		{time.Second, "a", "1", "ok", 3}, // a hit does not make it younger
		{time.Second, "d", "4", "ok", 4}, // evicts a
		{0, "b", "2", "ok", 4},
		{0, "c", "3", "ok", 4},
		{0, "d", "4", "ok", 4},
		{0, "a", "1", "ok", 5}, // evicts b
		{0, "c", "3", "ok", 5},
		{0, "b", "2", "ok", 6},
	})
	if got := cachedUsers(c); !cmp.Equal(got, []string{"d", "a", "b"}) {
		t.Errorf("cached users, oldest first: %q; want [d a b]", got)
	}
}

func TestCachedAuthenticatorDropsExpired(t *testing.T) {
	up := &fakeAuth{passwords: map[string]string{"a": "1", "b": "2", "c": "3"}}
	c, clock := newTestCache(up, CacheOptions{TTL: time.Minute})
	runSteps(t, c, clock, up, []step{
		{0, "a", "1", "ok", 1},
		{30 * time.Second, "b", "2", "ok", 2},
		{40 * time.Second, "c", "3", "ok", 3}, // a has expired: dropped on insert
	})
	if got := cachedUsers(c); !cmp.Equal(got, []string{"b", "c"}) {
		t.Errorf("cached users, oldest first: %q; want [b c]", got)
	}
}

// cachedUsers lists the users of c's entries, oldest first.
func cachedUsers(c *CachedAuthenticator) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var users []string
	for el := c.order.Front(); el != nil; el = el.Next() {
		users = append(users, el.Value.(*cacheEntry).user)
	}
	if len(users) != len(c.entries) {
		panic("order and entries disagree")
	}
	return users
}

// TestCachedAuthenticatorHoldsNoPassword walks everything the cache
// holds, but the wrapped Authenticator, for the passwords' bytes.
func TestCachedAuthenticatorHoldsNoPassword(t *testing.T) {
	passwords := map[string]string{
		"alice": "hunter2-hunter2",
		"bob":   strings.Repeat("x", 32), // as long as a MAC
		"carol": "über-geheim",
	}
	c, _ := newTestCache(&fakeAuth{passwords: passwords}, CacheOptions{})
	for u, pw := range passwords {
		if err := c.Verify(t.Context(), u, pw); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(cachedUsers(c)); got != len(passwords) {
		t.Fatalf("%d users cached; want %d", got, len(passwords))
	}
	var leaks []string
	seen := map[uintptr]bool{}
	check := func(b []byte) {
		for u, pw := range passwords {
			if bytes.Contains(b, []byte(pw)) {
				leaks = append(leaks, fmt.Sprintf("%s's password in %q", u, b))
			}
		}
	}
	v := reflect.ValueOf(c).Elem()
	for i := range v.NumField() {
		if v.Type().Field(i).Name != "next" { // the fake knows the passwords
			walkBytes(v.Field(i), seen, check)
		}
	}
	if len(leaks) > 0 {
		t.Errorf("the cache holds clear passwords: %q", leaks)
	}
}

// walkBytes calls f with every string and byte array or slice reachable
// from v.
func walkBytes(v reflect.Value, seen map[uintptr]bool, f func([]byte)) {
	switch v.Kind() {
	case reflect.String:
		f([]byte(v.String()))
	case reflect.Array, reflect.Slice:
		if v.Kind() == reflect.Slice {
			if v.IsNil() || seen[v.Pointer()] {
				return
			}
			seen[v.Pointer()] = true
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			b := make([]byte, v.Len())
			for i := range b {
				b[i] = byte(v.Index(i).Uint())
			}
			f(b)
			return
		}
		for i := range v.Len() {
			walkBytes(v.Index(i), seen, f)
		}
	case reflect.Pointer:
		if v.IsNil() || seen[v.Pointer()] {
			return
		}
		seen[v.Pointer()] = true
		walkBytes(v.Elem(), seen, f)
	case reflect.Interface:
		if !v.IsNil() {
			walkBytes(v.Elem(), seen, f)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			walkBytes(v.Field(i), seen, f)
		}
	case reflect.Map:
		if v.IsNil() || seen[v.Pointer()] {
			return
		}
		seen[v.Pointer()] = true
		it := v.MapRange()
		for it.Next() {
			walkBytes(it.Key(), seen, f)
			walkBytes(it.Value(), seen, f)
		}
	}
}

func TestCachedAuthenticatorCoalesces(t *testing.T) {
	up := &fakeAuth{
		passwords: map[string]string{"alice": "pw"},
		gate:      make(chan struct{}),
		started:   make(chan struct{}, 10),
	}
	c, _ := newTestCache(up, CacheOptions{})
	const n = 5
	errs := make(chan error, n)
	for range n {
		go func() { errs <- c.Verify(t.Context(), "alice", "wrong") }()
	}
	<-up.started
	waitForWaiters(t, c, n-1)
	close(up.gate)
	for range n {
		if err := <-errs; !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Verify = %v; want ErrBadCredentials", err)
		}
	}
	if got := up.callCount(); got != 1 {
		t.Errorf("%d upstream calls for %d concurrent identical verifications; want 1", got, n)
	}
}

// TestCachedAuthenticatorLeaderCancelled checks that a caller whose context
// is alive does not inherit the context error of the caller it waited for.
func TestCachedAuthenticatorLeaderCancelled(t *testing.T) {
	up := &fakeAuth{
		passwords: map[string]string{"alice": "pw"},
		gate:      make(chan struct{}),
		started:   make(chan struct{}, 10),
	}
	c, _ := newTestCache(up, CacheOptions{})
	leaderCtx, cancel := context.WithCancel(t.Context())
	leader := make(chan error, 1)
	go func() { leader <- c.Verify(leaderCtx, "alice", "pw") }()
	<-up.started
	follower := make(chan error, 1)
	go func() { follower <- c.Verify(t.Context(), "alice", "pw") }()
	waitForWaiters(t, c, 1)
	cancel()
	if err := <-leader; !errors.Is(err, context.Canceled) {
		t.Errorf("leader: Verify = %v; want context.Canceled", err)
	}
	<-up.started // the follower's own call
	close(up.gate)
	if err := <-follower; err != nil {
		t.Errorf("follower: Verify = %v; want nil", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Verify(ctx, "alice", "pw"); err != nil {
		t.Errorf("Verify after the follower's success = %v; want a cache hit", err)
	}
}

// waitForWaiters waits until n callers wait for the one flight in c.
func waitForWaiters(t *testing.T, c *CachedAuthenticator, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		got := 0
		for _, f := range c.inflight {
			got += f.waiters
		}
		c.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d callers waiting; want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCachedAuthenticatorWaiterContext(t *testing.T) {
	up := &fakeAuth{
		passwords: map[string]string{"alice": "pw"},
		gate:      make(chan struct{}),
		started:   make(chan struct{}, 10),
	}
	c, _ := newTestCache(up, CacheOptions{})
	leader := make(chan error, 1)
	go func() { leader <- c.Verify(t.Context(), "alice", "pw") }()
	<-up.started
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := c.Verify(ctx, "alice", "pw")
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiter whose context expired: Verify = %v; want ErrUnavailable and DeadlineExceeded", err)
	}
	close(up.gate)
	if err := <-leader; err != nil {
		t.Errorf("leader: Verify = %v", err)
	}
}

type panickingAuth struct{}

func (panickingAuth) Verify(context.Context, string, string) error { panic("boom") }

func TestCachedAuthenticatorPanic(t *testing.T) {
	c, _ := newTestCache(panickingAuth{}, CacheOptions{})
	for i := range 2 { // the second call must not find a stuck flight
		func() {
			defer func() {
				if r := recover(); r != "boom" {
					t.Errorf("call %d: recovered %v; want the upstream's panic", i, r)
				}
			}()
			_ = c.Verify(t.Context(), "alice", "pw")
		}()
	}
	if got := cachedUsers(c); len(got) != 0 {
		t.Errorf("cached %q after a panic", got)
	}
}

func TestCachedAuthenticatorConcurrent(t *testing.T) {
	users := map[string]string{}
	for i := range 20 {
		users[fmt.Sprint("u", i)] = fmt.Sprint("pw", i)
	}
	up := &fakeAuth{passwords: users}
	c, clock := newTestCache(up, CacheOptions{MaxEntries: 10, TTL: time.Second})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				u := fmt.Sprint("u", (g*7+i)%20)
				pw := users[u]
				want := "ok"
				if i%5 == 0 {
					pw, want = "wrong", "bad credentials"
				}
				if got := result(c.Verify(t.Context(), u, pw)); got != want {
					t.Errorf("Verify(%s) = %s; want %s", u, got, want)
					return
				}
				if i%50 == 0 {
					clock.Advance(300 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	if got := len(cachedUsers(c)); got > 10 {
		t.Errorf("%d entries cached; want at most 10", got)
	}
}
