package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/easd/easd/internal/testenv"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
)

// busWait bounds every wait of these tests.
const busWait = 10 * time.Second

// notice is one call of a Listen callback.
type notice struct {
	User       int64
	Collection string
}

// logRecorder is a slog.Handler that keeps the records' levels and
// messages and copies them to the test log.
type logRecorder struct {
	t    *testing.T
	mu   sync.Mutex
	recs []notice // User holds the level
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%q", a.Key, a.Value.String())
		return true
	})
	h.t.Logf("%v %s%s", r.Level, r.Message, b.String())
	h.mu.Lock()
	h.recs = append(h.recs, notice{int64(r.Level), r.Message})
	h.mu.Unlock()
	return nil
}

// count returns how many records of level have a message containing msg.
func (h *logRecorder) count(level slog.Level, msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.recs {
		if r.User == int64(level) && strings.Contains(r.Collection, msg) {
			n++
		}
	}
	return n
}

// newBus returns a Bus of s logging to a new recorder.
func newBus(t *testing.T, s *Store) (*Bus, *logRecorder) {
	rec := &logRecorder{t: t}
	return s.NewBus(slog.New(rec)), rec
}

// listener runs Bus.Listen in a goroutine and collects its callbacks.
type listener struct {
	t       *testing.T
	ch      chan notice
	cancel  context.CancelFunc
	done    chan struct{}
	err     error // valid once done is closed
	stopped sync.Once
}

// startListen starts b.Listen; the test's cleanup stops it. It does not
// wait for the connection.
func startListen(t *testing.T, b *Bus) *listener {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &listener{t: t, ch: make(chan notice, 10000), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		l.err = b.Listen(ctx, func(user int64, collection string) {
			select {
			case l.ch <- notice{user, collection}:
			default:
				t.Errorf("Listen callback: channel full, dropping (%d, %q)", user, collection)
			}
		})
	}()
	t.Cleanup(func() { _ = l.stop() })
	return l
}

// listen starts b.Listen and waits until its connection is up.
func listen(t *testing.T, b *Bus) *listener {
	t.Helper()
	l := startListen(t, b)
	waitFor(t, "the bus to connect", b.Connected)
	return l
}

// stop cancels Listen and returns its error; it fails the test if Listen
// does not return within busWait.
func (l *listener) stop() error {
	l.stopped.Do(func() {
		l.cancel()
		select {
		case <-l.done:
		case <-time.After(busWait):
			l.t.Errorf("Listen did not return within %v of its context's end", busWait)
			l.err = errors.New("Listen did not return")
		}
	})
	return l.err
}

// next returns the next callback, failing the test after busWait.
func (l *listener) next(t *testing.T) notice {
	t.Helper()
	select {
	case n := <-l.ch:
		return n
	case <-time.After(busWait):
		t.Fatalf("no notice within %v", busWait)
		return notice{}
	}
}

// nextN returns the next n callbacks.
func (l *listener) nextN(t *testing.T, n int) []notice {
	t.Helper()
	got := make([]notice, 0, n)
	deadline := time.After(busWait)
	for len(got) < n {
		select {
		case x := <-l.ch:
			got = append(got, x)
		case <-deadline:
			t.Fatalf("got %d of %d notices within %v: %v", len(got), n, busWait, got)
		}
	}
	return got
}

// waitFor polls cond until it holds, failing the test after busWait.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(busWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", busWait, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// listeners returns the backend pids of the sessions of s's database
// whose last statement was a LISTEN.
func listeners(t *testing.T, s *Store) []uint32 {
	t.Helper()
	rows, err := s.pool.Query(t.Context(), `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND query ILIKE 'LISTEN%' ORDER BY pid`)
	if err != nil {
		t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[uint32])
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

// notifyRaw sends payload on the bus channel as any client could.
func notifyRaw(t *testing.T, s *Store, payload string) {
	t.Helper()
	if _, err := s.pool.Exec(t.Context(), `SELECT pg_notify('easd_changes', $1)`, payload); err != nil {
		t.Fatalf("pg_notify(%q): %v", payload, err)
	}
}

// twoStores opens two Stores on one fresh database, as two easd
// instances would.
func twoStores(t *testing.T) (*Store, *Store) {
	url := testenv.PostgresURL(t)
	return open(t, url, Options{}), open(t, url, Options{})
}

func TestBusDelivers(t *testing.T) {
	s1, s2 := twoStores(t)
	b1, _ := newBus(t, s1)
	b2, _ := newBus(t, s2)
	l1, l2 := listen(t, b1), listen(t, b2)
	ctx := t.Context()

	want := []notice{
		{7, ""},
		{7, "3:12"},
		{42, "a b"},
		{1 << 62, "x"},
		{0, ""},
		{8, strings.Repeat("é", MaxBusCollection/2)},
	}
	for _, n := range want {
		if err := b1.Publish(ctx, n.User, n.Collection); err != nil {
			t.Fatalf("Publish(%d, %q): %v", n.User, n.Collection, err)
		}
	}
	if diff := cmp.Diff(want, l2.nextN(t, len(want))); diff != "" {
		t.Errorf("bus 2 received (-want +got):\n%s", diff)
	}

	// Notices are delivered in commit order, so a bus that heard its own
	// would hear them before a later notice of the other bus.
	if err := b2.Publish(ctx, 99, "from 2"); err != nil {
		t.Fatal(err)
	}
	if got := l1.next(t); got != (notice{99, "from 2"}) {
		t.Errorf("bus 1 first received %v, want bus 2's notice only", got)
	}
	if err := b1.Publish(ctx, 98, "from 1"); err != nil {
		t.Fatal(err)
	}
	if got := l2.next(t); got != (notice{98, "from 1"}) {
		t.Errorf("bus 2 next received %v, want bus 1's notice only", got)
	}
	for _, l := range []*listener{l1, l2} {
		if err := l.stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("Listen = %v, want context.Canceled", err)
		}
	}
	if len(l1.ch)+len(l2.ch) != 0 {
		t.Errorf("unexpected notices left: %d on bus 1, %d on bus 2", len(l1.ch), len(l2.ch))
	}
}

func TestBusManyInOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		idle time.Duration
	}{
		{"default", 0},
		// Idle checks (re-LISTEN) between and amid the notices.
		{"idle checks", time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s1, s2 := twoStores(t)
			b1, _ := newBus(t, s1)
			b2, _ := newBus(t, s2)
			if tc.idle > 0 {
				b2.idleCheck = tc.idle
			}
			l2 := listen(t, b2)
			var want []notice
			for i := range 200 {
				n := notice{int64(i%7 + 1), "c" + strconv.Itoa(i)}
				want = append(want, n)
				if err := b1.Publish(t.Context(), n.User, n.Collection); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(want, l2.nextN(t, len(want))); diff != "" {
				t.Errorf("received (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBusIgnoresMalformed(t *testing.T) {
	s1, s2 := twoStores(t)
	b1, _ := newBus(t, s1)
	b2, rec := newBus(t, s2)
	l2 := listen(t, b2)

	malformed := []string{
		"",
		"garbage",
		"abc 5",
		" 5 c",
		"abc  c",
		"abc x c",
		"abc -1 c",
		"abc 05 c",
		"abc +5 c",
		"abc 99999999999999999999 c",
		"abc 5 a\nb",
		"abc 5 " + strings.Repeat("x", MaxBusCollection+1),
	}
	for _, p := range malformed {
		notifyRaw(t, s1, p)
	}
	notifyRaw(t, s1, b2.instance+" 5 own") // as if from b2 itself
	if err := b1.Publish(t.Context(), 6, "valid"); err != nil {
		t.Fatal(err)
	}
	if got := l2.next(t); got != (notice{6, "valid"}) {
		t.Errorf("received %v, want only the valid notice", got)
	}
	if n := rec.count(slog.LevelDebug, "malformed"); n != len(malformed) {
		t.Errorf("%d malformed notices logged at Debug, want %d", n, len(malformed))
	}
}

func TestParseNotice(t *testing.T) {
	type result struct {
		Instance   string
		User       int64
		Collection string
		OK         bool
	}
	for payload, want := range map[string]result{
		"i 5 ":                    {"i", 5, "", true},
		"i 0 ":                    {"i", 0, "", true},
		"i 5 a b":                 {"i", 5, "a b", true},
		"i 5 3:12":                {"i", 5, "3:12", true},
		"i 5":                     {},
		"i":                       {},
		"":                        {},
		" 5 c":                    {},
		"i -5 c":                  {},
		"i 5x c":                  {},
		"i 5 \x00":                {},
		"i 5 \xff":                {},
		"i 5 c\nd":                {},
		"i 0x10 c":                {},
		"i 1_000 c":               {},
		"i 9223372036854775807 c": {"i", 9223372036854775807, "c", true},
	} {
		var got result
		got.Instance, got.User, got.Collection, got.OK = parseNotice(payload)
		if got != want {
			t.Errorf("parseNotice(%q) = %+v, want %+v", payload, got, want)
		}
	}
}

func TestBusPublishRejects(t *testing.T) {
	s1, s2 := twoStores(t)
	b1, _ := newBus(t, s1)
	b2, _ := newBus(t, s2)
	l2 := listen(t, b2)
	ctx := t.Context()

	for _, tc := range []struct {
		user int64
		coll string
	}{
		{1, strings.Repeat("x", MaxBusCollection+1)},
		{1, "a\nb"},
		{1, "a\x00b"},
		{1, "\xff"},
		{-1, "c"},
	} {
		if err := b1.Publish(ctx, tc.user, tc.coll); err == nil {
			t.Errorf("Publish(%d, %.20q) succeeded, want an error", tc.user, tc.coll)
		}
	}
	longest := strings.Repeat("y", MaxBusCollection)
	if err := b1.Publish(ctx, 1, longest); err != nil {
		t.Fatalf("Publish(1, %d bytes): %v", len(longest), err)
	}
	if got := l2.next(t); got != (notice{1, longest}) {
		t.Errorf("received %.40v, want only the notice of %d bytes", got, len(longest))
	}
}

func TestBusOneConnection(t *testing.T) {
	s1, s2 := twoStores(t)
	b1, _ := newBus(t, s1)
	b2, _ := newBus(t, s2)
	if got := listeners(t, s1); len(got) != 0 {
		t.Fatalf("listening sessions before Listen: %v", got)
	}
	l1, l2 := listen(t, b1), listen(t, b2)

	// A second Listen on a Bus fails at once, without connecting.
	start := time.Now()
	if err := b1.Listen(t.Context(), func(int64, string) { t.Error("second Listen called fn") }); err == nil {
		t.Error("second Listen succeeded, want an error")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("second Listen took %v", d)
	}

	for i := range 20 {
		if err := b1.Publish(t.Context(), 1, strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		if err := b2.Publish(t.Context(), 2, strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	l1.nextN(t, 20)
	l2.nextN(t, 20)
	want := []uint32{b1.pid.Load(), b2.pid.Load()}
	slices.Sort(want)
	if diff := cmp.Diff(want, listeners(t, s1)); diff != "" {
		t.Errorf("listening sessions (-the buses' +pg_stat_activity):\n%s", diff)
	}

	// Listen closes its connection when it returns.
	if err := l1.stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Listen = %v, want context.Canceled", err)
	}
	if b1.Connected() {
		t.Error("Connected after Listen returned")
	}
	waitFor(t, "one listening session left", func() bool {
		return slices.Equal(listeners(t, s1), []uint32{b2.pid.Load()})
	})
	if err := b1.Listen(t.Context(), func(int64, string) {}); err == nil {
		t.Error("Listen after Listen returned succeeded, want an error")
	}
	if err := l2.stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Listen = %v, want context.Canceled", err)
	}
}

func TestBusListenCancel(t *testing.T) {
	s1, _ := twoStores(t)
	b1, _ := newBus(t, s1)
	l := listen(t, b1)
	start := time.Now()
	if err := l.stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Listen = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Listen returned %v after cancel", d)
	}
	if b1.Connected() {
		t.Error("Connected after Listen returned")
	}
	waitFor(t, "no listening session", func() bool { return len(listeners(t, s1)) == 0 })

	// A context already ended.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	b2, _ := newBus(t, s1)
	if err := b2.Listen(ctx, func(int64, string) {}); !errors.Is(err, context.Canceled) {
		t.Errorf("Listen(ended context) = %v, want context.Canceled", err)
	}
}

func TestBusReconnect(t *testing.T) {
	s1, s2 := twoStores(t)
	b1, _ := newBus(t, s1)
	b2, rec := newBus(t, s2)
	l2 := listen(t, b2)

	pids := listeners(t, s1)
	if len(pids) != 1 || pids[0] != b2.pid.Load() {
		t.Fatalf("listening sessions %v, want bus 2's %d only", pids, b2.pid.Load())
	}
	old := pids[0]
	var ok bool
	if err := s1.pool.QueryRow(t.Context(), `SELECT pg_terminate_backend($1)`, old).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", old, ok, err)
	}
	if got := l2.next(t); got != (notice{0, ""}) {
		t.Fatalf("after the connection was killed, received %v; want (0, \"\")", got)
	}
	if !b2.Connected() {
		t.Error("not Connected after the reconnect callback")
	}
	if rec.count(slog.LevelWarn, "lost") != 1 || rec.count(slog.LevelInfo, "listening again") != 1 {
		t.Errorf("want one Warn on the loss and one Info on the reconnect")
	}

	if err := b1.Publish(t.Context(), 3, "after"); err != nil {
		t.Fatal(err)
	}
	if got := l2.next(t); got != (notice{3, "after"}) {
		t.Errorf("after the reconnect, received %v; want (3, \"after\")", got)
	}
	waitFor(t, "one listening session, the new one", func() bool {
		pids := listeners(t, s1)
		return len(pids) == 1 && pids[0] == b2.pid.Load() && pids[0] != old
	})
	if len(l2.ch) != 0 {
		t.Errorf("%d unexpected notices", len(l2.ch))
	}
}

// proxy forwards TCP connections to a server. Refusing, it closes new
// connections at once; frozen, it also stops forwarding on the open
// ones without closing them, like a network that drops packets.
type proxy struct {
	ln     net.Listener
	target string
	refuse atomic.Bool
	frozen atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.refuse.Load() {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(s, c) })
		p.wg.Go(func() { p.pipe(c, s) })
	}
}

// pipe copies from src to dst, dropping what it reads while frozen.
func (p *proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.frozen.Load() {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// busVia returns a Bus of s whose listening connection goes through a
// new proxy to s's server.
func busVia(t *testing.T, s *Store) (*Bus, *logRecorder, *proxy) {
	p := newProxy(t, net.JoinHostPort(s.cfg.Host, strconv.Itoa(int(s.cfg.Port))))
	cfg := s.cfg.Copy()
	cfg.Host, cfg.Fallbacks = "127.0.0.1", nil
	cfg.Port = uint16(p.ln.Addr().(*net.TCPAddr).Port)
	b, rec := newBus(t, &Store{cfg: cfg, pool: s.pool, now: s.now})
	return b, rec, p
}

// TestBusUnreachable covers a listening connection that cannot be opened
// at first, and one whose peer goes silent.
func TestBusUnreachable(t *testing.T) {
	s1, s2 := twoStores(t)
	b1, _ := newBus(t, s1)
	b2, rec, p := busVia(t, s2)
	b2.idleCheck, b2.checkTimeout = 50*time.Millisecond, 200*time.Millisecond

	p.refuse.Store(true)
	l2 := startListen(t, b2)
	waitFor(t, "a failed connection attempt", func() bool { return rec.count(slog.LevelWarn, "cannot listen") > 0 })
	if b2.Connected() {
		t.Error("Connected while the server is unreachable")
	}
	p.refuse.Store(false)
	if got := l2.next(t); got != (notice{0, ""}) {
		t.Fatalf("after connecting late, received %v; want (0, \"\")", got)
	}
	if err := b1.Publish(t.Context(), 4, "c"); err != nil {
		t.Fatal(err)
	}
	if got := l2.next(t); got != (notice{4, "c"}) {
		t.Fatalf("received %v, want (4, \"c\")", got)
	}

	// The peer goes silent: the idle check notices it.
	p.refuse.Store(true)
	p.frozen.Store(true)
	waitFor(t, "the bus to notice the silent peer", func() bool { return !b2.Connected() })
	p.frozen.Store(false)
	p.refuse.Store(false)
	if got := l2.next(t); got != (notice{0, ""}) {
		t.Fatalf("after reconnecting, received %v; want (0, \"\")", got)
	}
	if err := b1.Publish(t.Context(), 5, "d"); err != nil {
		t.Fatal(err)
	}
	if got := l2.next(t); got != (notice{5, "d"}) {
		t.Fatalf("received %v, want (5, \"d\")", got)
	}

	// Listen ends promptly while waiting to reconnect.
	p.refuse.Store(true)
	p.frozen.Store(true)
	waitFor(t, "the bus to notice the silent peer", func() bool { return !b2.Connected() })
	start := time.Now()
	if err := l2.stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Listen = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Listen returned %v after cancel", d)
	}
	if len(l2.ch) != 0 {
		t.Errorf("%d unexpected notices", len(l2.ch))
	}
}

func TestJitter(t *testing.T) {
	for _, d := range []time.Duration{busMinBackoff, time.Second, busMaxBackoff} {
		for range 1000 {
			if j := jitter(d); j < d/2 || j > d {
				t.Fatalf("jitter(%v) = %v, want within [%v, %v]", d, j, d/2, d)
			}
		}
	}
}
