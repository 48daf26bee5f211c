package imapbridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/google/go-cmp/cmp"

	"github.com/easd/easd/internal/testenv"
)

// tcpProxy forwards TCP connections to an upstream, counts them, and can
// cut them as a server hanging up would.
type tcpProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu               sync.Mutex
	conns            map[net.Conn]net.Conn // client side -> upstream side
	cur, peak, total int
	sentToUpstream   int64
	closed           bool
}

func newProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	x := &tcpProxy{ln: ln, target: target, conns: make(map[net.Conn]net.Conn)}
	x.wg.Add(1)
	go x.accept()
	t.Cleanup(func() {
		ln.Close()
		x.mu.Lock()
		x.closed = true
		x.mu.Unlock()
		x.cut()
		x.wg.Wait()
	})
	return x
}

func (x *tcpProxy) addr() string { return x.ln.Addr().String() }

func (x *tcpProxy) accept() {
	defer x.wg.Done()
	for {
		c, err := x.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", x.target)
		if err != nil {
			c.Close()
			continue
		}
		x.mu.Lock()
		if x.closed {
			x.mu.Unlock()
			c.Close()
			up.Close()
			return
		}
		x.conns[c] = up
		x.cur++
		x.total++
		x.peak = max(x.peak, x.cur)
		x.mu.Unlock()
		x.wg.Add(1)
		go x.pipe(c, up)
	}
}

// pipe copies both ways until either side ends, then closes both.
func (x *tcpProxy) pipe(c, up net.Conn) {
	defer x.wg.Done()
	done := make(chan struct{}, 2)
	go func() {
		// Count before forwarding, so that the count is up to date once
		// the upstream answers.
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				x.mu.Lock()
				x.sentToUpstream += int64(n)
				x.mu.Unlock()
				if _, err := up.Write(buf[:n]); err != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(c, up)
		done <- struct{}{}
	}()
	<-done
	c.Close()
	up.Close()
	<-done
	x.mu.Lock()
	delete(x.conns, c)
	x.cur--
	x.mu.Unlock()
}

// cut closes every connection in progress, on both sides.
func (x *tcpProxy) cut() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for c, up := range x.conns {
		c.Close()
		up.Close()
	}
}

type proxyCounts struct{ Cur, Peak, Total int }

func (x *tcpProxy) counts() proxyCounts {
	x.mu.Lock()
	defer x.mu.Unlock()
	return proxyCounts{x.cur, x.peak, x.total}
}

func (x *tcpProxy) sent() int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.sentToUpstream
}

func newTestPool(t *testing.T, addr string, opts PoolOptions) *Pool {
	t.Helper()
	p := NewPool(Config{Addr: addr, TLS: TLSNone}, opts)
	t.Cleanup(p.Close)
	return p
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// waitClosed waits for c's connection to be closed.
func waitClosed(t *testing.T, c *imapclient.Client) {
	t.Helper()
	select {
	case <-c.Closed():
	case <-time.After(5 * time.Second):
		t.Fatal("connection not closed within 5s")
	}
}

func acquire(t *testing.T, p *Pool, user, password string) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := p.Acquire(ctx, user, password)
	if err != nil {
		t.Fatalf("Acquire(%q): %v", user, err)
	}
	return c
}

// messages returns the number of messages of INBOX, seen through c.
func messages(t *testing.T, c *Conn) uint32 {
	t.Helper()
	data, err := c.Client().Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT INBOX: %v", err)
	}
	return data.NumMessages
}

func checkStats(t *testing.T, p *Pool, user string, want PoolStats) {
	t.Helper()
	got := p.Stats()
	if user != "" {
		got = p.UserStats(user)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stats of %q (-want +got):\n%s", user, diff)
	}
}

const testMessage = "From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nhello\r\n"

func TestPoolBoundsConnectionsPerUser(t *testing.T) {
	t.Parallel()
	d := testenv.Dovecot(t, map[string]string{"alice": "pw"})
	d.Deliver(t, "alice", "INBOX", []byte(testMessage))
	x := newProxy(t, d.Addr)
	const maxPerUser = 3
	p := newTestPool(t, x.addr(), PoolOptions{MaxPerUser: maxPerUser})

	var (
		mu      sync.Mutex
		maxSeen PoolStats
		bad     []PoolStats
	)
	stop := make(chan struct{})
	monitored := make(chan struct{})
	go func() {
		defer close(monitored)
		for {
			s := p.UserStats("alice")
			mu.Lock()
			maxSeen.Open = max(maxSeen.Open, s.Open)
			maxSeen.InUse = max(maxSeen.InUse, s.InUse)
			maxSeen.Waiting = max(maxSeen.Waiting, s.Waiting)
			if s.Open > maxPerUser || s.Idle+s.InUse > s.Open {
				bad = append(bad, s)
			}
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
	}()

	var wg sync.WaitGroup
	for g := range 20 {
		wg.Go(func() {
			for i := range 5 {
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				c, err := p.Acquire(ctx, "alice", "pw")
				cancel()
				if err != nil {
					t.Errorf("goroutine %d, round %d: %v", g, i, err)
					return
				}
				data, err := c.Client().Select("INBOX", nil).Wait()
				if err != nil {
					t.Errorf("goroutine %d, round %d: SELECT: %v", g, i, err)
					c.Discard()
					return
				}
				if data.NumMessages != 1 {
					t.Errorf("goroutine %d, round %d: %d messages in INBOX; want 1", g, i, data.NumMessages)
				}
				c.Release()
			}
		})
	}
	wg.Wait()
	close(stop)
	<-monitored

	if len(bad) > 0 {
		t.Errorf("stats out of bounds during the run: %+v", bad)
	}
	if maxSeen.Open < 1 || maxSeen.Open > maxPerUser || maxSeen.Waiting == 0 {
		t.Errorf("peak stats %+v; want 1..%d open, some waiting", maxSeen, maxPerUser)
	}
	// The upstream's own count: no more connections than the bound, and
	// none reopened since all stayed healthy.
	n := x.counts()
	if n.Peak > maxPerUser || n.Total != n.Peak {
		t.Errorf("upstream connections %+v; want a peak of at most %d, none reopened", n, maxPerUser)
	}
	checkStats(t, p, "", PoolStats{Open: n.Cur, Idle: n.Cur})
}

func TestPoolUsersAreIndependent(t *testing.T) {
	t.Parallel()
	d := testenv.Dovecot(t, map[string]string{"alice": "pw-a", "bob": "pw-b"})
	d.Deliver(t, "alice", "INBOX", []byte(testMessage))
	for range 2 {
		d.Deliver(t, "bob", "INBOX", []byte(testMessage))
	}
	p := newTestPool(t, d.Addr, PoolOptions{MaxPerUser: 1})

	a := acquire(t, p, "alice", "pw-a")
	// alice is at her bound...
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := p.Acquire(ctx, "alice", "pw-a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Acquire of alice: %v; want a deadline error", err)
	}
	// ... bob is not.
	b := acquire(t, p, "bob", "pw-b")
	if got := messages(t, a); got != 1 {
		t.Errorf("alice sees %d messages; want 1", got)
	}
	if got := messages(t, b); got != 2 {
		t.Errorf("bob sees %d messages; want 2", got)
	}
	checkStats(t, p, "alice", PoolStats{Open: 1, InUse: 1})
	checkStats(t, p, "bob", PoolStats{Open: 1, InUse: 1})
	checkStats(t, p, "", PoolStats{Open: 2, InUse: 2})

	b.Release()
	// bob's idle connection is not alice's to take.
	checkStats(t, p, "bob", PoolStats{Open: 1, Idle: 1})
	if got := messages(t, acquire(t, p, "bob", "pw-b")); got != 2 {
		t.Errorf("bob sees %d messages; want 2", got)
	}
	a.Release()
}

func TestPoolBadCredentials(t *testing.T) {
	t.Parallel()
	d := testenv.Dovecot(t, map[string]string{"alice": "pw"})
	x := newProxy(t, d.Addr)
	p := newTestPool(t, x.addr(), PoolOptions{})

	for _, tt := range []struct{ name, user, password string }{
		{"wrong password", "alice", "wrong"},
		{"unknown user", "mallory", "pw"},
		{"empty password", "alice", ""},
		{"NUL in password", "alice", "p\x00w"},
	} {
		c, err := p.Acquire(t.Context(), tt.user, tt.password)
		if !errors.Is(err, ErrBadCredentials) || errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: Acquire = %v, %v; want only ErrBadCredentials", tt.name, c, err)
		}
		checkStats(t, p, "", PoolStats{})
	}
	if got := x.counts().Total; got != 2 {
		t.Errorf("%d connections to the upstream; want 2 (none for unsendable passwords)", got)
	}
	waitFor(t, "failed connections to close", func() bool { return x.counts().Cur == 0 })

	// A wrong password does not get the right one's idle connection.
	c := acquire(t, p, "alice", "pw")
	cl := c.Client()
	c.Release()
	if _, err := p.Acquire(t.Context(), "alice", "wrong"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("Acquire with wrong password after a right one: %v; want ErrBadCredentials", err)
	}
	waitClosed(t, cl)
	checkStats(t, p, "", PoolStats{})
	acquire(t, p, "alice", "pw").Release()
	checkStats(t, p, "alice", PoolStats{Open: 1, Idle: 1})
}

func TestPoolUnavailable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusing := ln.Addr().String()
	ln.Close()

	for _, addr := range []string{refusing, "no port"} {
		p := newTestPool(t, addr, PoolOptions{})
		_, err := p.Acquire(t.Context(), "alice", "pw")
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrBadCredentials) {
			t.Errorf("Acquire at %q: %v; want only ErrUnavailable", addr, err)
		}
		checkStats(t, p, "", PoolStats{})
	}
}

func TestPoolWaitsForRelease(t *testing.T) {
	t.Parallel()
	d := testenv.Dovecot(t, map[string]string{"alice": "pw"})
	x := newProxy(t, d.Addr)
	p := newTestPool(t, x.addr(), PoolOptions{MaxPerUser: 1})
	c1 := acquire(t, p, "alice", "pw")

	// A deadline while waiting.
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.Acquire(ctx, "alice", "pw")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("Acquire while at the bound: %v; want ErrUnavailable and context.DeadlineExceeded", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Acquire returned after %v; want about 150ms", elapsed)
	}
	checkStats(t, p, "alice", PoolStats{Open: 1, InUse: 1})

	// A waiter gets the released connection itself.
	got := make(chan *Conn)
	go func() {
		c, err := p.Acquire(t.Context(), "alice", "pw")
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	waitFor(t, "a waiter", func() bool { return p.Stats().Waiting == 1 })
	c1.Release()
	c2 := <-got
	if c2 == nil {
		t.FailNow()
	}
	if c2.Client() != c1.Client() {
		t.Error("the waiter did not get the released connection")
	}
	c1.Release() // a second Release does nothing
	checkStats(t, p, "alice", PoolStats{Open: 1, InUse: 1})

	// A waiter gets the slot of a discarded connection, and dials.
	go func() {
		c, err := p.Acquire(t.Context(), "alice", "pw")
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	waitFor(t, "a waiter", func() bool { return p.Stats().Waiting == 1 })
	c2.Discard()
	c3 := <-got
	if c3 == nil {
		t.FailNow()
	}
	if c3.Client() == c2.Client() {
		t.Error("the waiter got the discarded connection")
	}
	messages(t, c3)
	checkStats(t, p, "alice", PoolStats{Open: 1, InUse: 1})
	c3.Release()
	// (The proxy's peak may count the discarded connection, whose end it
	// notices a little after the pool closed it.)
	if n := x.counts(); n.Total != 2 {
		t.Errorf("upstream connections %+v; want 2 in all", n)
	}
}

func TestPoolDropsConnectionsClosedByServer(t *testing.T) {
	t.Parallel()
	d := testenv.Dovecot(t, map[string]string{"alice": "pw"})
	x := newProxy(t, d.Addr)
	p := newTestPool(t, x.addr(), PoolOptions{})

	// Hung up while idle: not handed out again.
	c := acquire(t, p, "alice", "pw")
	old := c.Client()
	c.Release()
	x.cut()
	waitClosed(t, old)
	c = acquire(t, p, "alice", "pw")
	if c.Client() == old {
		t.Fatal("Acquire handed out a connection closed by the server")
	}
	messages(t, c)
	checkStats(t, p, "alice", PoolStats{Open: 1, InUse: 1})

	// Hung up while in use: dropped on Release.
	old = c.Client()
	x.cut()
	waitClosed(t, old)
	c.Release()
	checkStats(t, p, "", PoolStats{})
	if got := x.counts().Total; got != 2 {
		t.Errorf("%d connections to the upstream; want 2", got)
	}
}

func TestPoolIdleConnectionChecks(t *testing.T) {
	t.Parallel()
	d := testenv.Dovecot(t, map[string]string{"alice": "pw"})
	x := newProxy(t, d.Addr)
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := newTestPool(t, x.addr(), PoolOptions{IdleTimeout: time.Hour, Now: clock.Now})

	c := acquire(t, p, "alice", "pw")
	first := c.Client()
	c.Release()

	// Briefly idle: reused without a word to the server.
	clock.Advance(10 * time.Second)
	sent := x.sent()
	c = acquire(t, p, "alice", "pw")
	if c.Client() != first {
		t.Error("a connection idle for 10s was not reused")
	}
	if got := x.sent(); got != sent {
		t.Errorf("%d bytes sent to reuse a connection idle for 10s; want none", got-sent)
	}
	c.Release()

	// Idle for over 30 s: checked with a NOOP, then reused.
	clock.Advance(31 * time.Second)
	c = acquire(t, p, "alice", "pw")
	if c.Client() != first {
		t.Error("a connection idle for 31s was not reused")
	}
	if x.sent() == sent {
		t.Error("a connection idle for 31s was reused without a NOOP")
	}
	c.Release()

	// Idle beyond IdleTimeout: closed, not reused.
	clock.Advance(time.Hour)
	c = acquire(t, p, "alice", "pw")
	if c.Client() == first {
		t.Error("a connection idle beyond IdleTimeout was reused")
	}
	waitClosed(t, first)
	c.Release()
	checkStats(t, p, "", PoolStats{Open: 1, Idle: 1})
}

func TestPoolReapsIdleConnections(t *testing.T) {
	t.Parallel()
	d := testenv.Dovecot(t, map[string]string{"alice": "pw"})
	x := newProxy(t, d.Addr)
	p := newTestPool(t, x.addr(), PoolOptions{IdleTimeout: 200 * time.Millisecond})

	c1 := acquire(t, p, "alice", "pw")
	c2 := acquire(t, p, "alice", "pw")
	c1.Release()
	waitFor(t, "the idle connection to be reaped", func() bool { return p.Stats() == PoolStats{Open: 1, InUse: 1} })
	waitClosed(t, c1.Client())
	// In use for longer than IdleTimeout is fine.
	messages(t, c2)
	c2.Release()
	waitFor(t, "the idle connection to be reaped", func() bool { return p.Stats() == PoolStats{} })
	waitFor(t, "upstream connections to end", func() bool { return x.counts().Cur == 0 })
}

// setPassword makes password the only password of user in d's
// passwd-file, and waits until Dovecot takes it (it rereads the file when
// it changed, but at most once a second).
func setPassword(t *testing.T, d *testenv.DovecotServer, user, password string) {
	t.Helper()
	name := filepath.Join(d.Dir, "passwd")
	tmp := name + ".new"
	if err := os.WriteFile(tmp, fmt.Appendf(nil, "%s:{PLAIN}%s::::::\n", user, password), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
	a, err := NewIMAPAuthenticator(Config{Addr: d.Addr, TLS: TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Dovecot to take the new password", func() bool {
		return a.Verify(t.Context(), user, password) == nil
	})
}

func TestPoolPasswordChange(t *testing.T) {
	t.Parallel()
	d := testenv.Dovecot(t, map[string]string{"alice": "old-pw"})
	p := newTestPool(t, d.Addr, PoolOptions{})

	c1 := acquire(t, p, "alice", "old-pw")
	c2 := acquire(t, p, "alice", "old-pw")
	old2 := c2.Client()
	c2.Release()
	checkStats(t, p, "alice", PoolStats{Open: 2, Idle: 1, InUse: 1})

	setPassword(t, d, "alice", "the-new-password")
	// The new password does not get the old one's idle connection, which
	// is closed once the new password logged in.
	c3 := acquire(t, p, "alice", "the-new-password")
	if c3.Client() == old2 {
		t.Fatal("the new password got a connection opened with the old one")
	}
	waitClosed(t, old2)
	checkStats(t, p, "alice", PoolStats{Open: 2, InUse: 2})
	// A connection of the old password in use is not kept on Release.
	old1 := c1.Client()
	c1.Release()
	waitClosed(t, old1)
	checkStats(t, p, "alice", PoolStats{Open: 1, InUse: 1})
	c3.Release()
	checkStats(t, p, "alice", PoolStats{Open: 1, Idle: 1})

	// The old password no longer logs in, and gets nothing from the pool.
	if _, err := p.Acquire(t.Context(), "alice", "old-pw"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("Acquire with the old password: %v; want ErrBadCredentials", err)
	}
	checkStats(t, p, "", PoolStats{})
	acquire(t, p, "alice", "the-new-password").Release()
}

func TestPoolHoldsNoPassword(t *testing.T) {
	t.Parallel()
	passwords := map[string]string{"alice": "hunter2-hunter2", "bob": "über-geheim"}
	d := testenv.Dovecot(t, passwords)
	p := newTestPool(t, d.Addr, PoolOptions{})
	seen := map[uintptr]bool{}
	for u, pw := range passwords {
		c := acquire(t, p, u, pw)
		// imapclient's write buffer may still hold the LOGIN command; the
		// pool's own state must not.
		seen[reflect.ValueOf(c.Client()).Pointer()] = true
		c.Release()
	}
	var leaks []string
	walkBytes(reflect.ValueOf(p).Elem(), seen, func(b []byte) {
		for u, pw := range passwords {
			if bytes.Contains(b, []byte(pw)) {
				leaks = append(leaks, fmt.Sprintf("%s's password in %q", u, b))
			}
		}
	})
	if len(leaks) > 0 {
		t.Errorf("the pool holds clear passwords: %q", leaks)
	}
}

// TestPoolClose is not parallel: it counts goroutines.
func TestPoolClose(t *testing.T) {
	d := testenv.Dovecot(t, map[string]string{"alice": "pw", "bob": "pw"})
	before := runtime.NumGoroutine()
	p := NewPool(Config{Addr: d.Addr, TLS: TLSNone}, PoolOptions{MaxPerUser: 2, IdleTimeout: 50 * time.Millisecond})

	a1 := acquire(t, p, "alice", "pw")
	a2 := acquire(t, p, "alice", "pw")
	acquire(t, p, "bob", "pw").Release()
	waiting := make(chan error)
	go func() {
		_, err := p.Acquire(t.Context(), "alice", "pw")
		waiting <- err
	}()
	waitFor(t, "a waiter", func() bool { return p.Stats().Waiting == 1 })

	p.Close()
	if err := <-waiting; !errors.Is(err, ErrPoolClosed) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("waiting Acquire at Close: %v; want ErrPoolClosed", err)
	}
	waitClosed(t, a1.Client()) // in use, closed too
	if _, err := p.Acquire(t.Context(), "bob", "pw"); !errors.Is(err, ErrPoolClosed) {
		t.Errorf("Acquire after Close: %v; want ErrPoolClosed", err)
	}
	checkStats(t, p, "", PoolStats{Open: 2, InUse: 2})
	a1.Release()
	a2.Discard()
	checkStats(t, p, "", PoolStats{})
	p.Close() // again: nothing happens

	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close; want at most %d as before:\n%s",
				runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
