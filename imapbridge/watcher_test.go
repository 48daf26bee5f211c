package imapbridge

import (
	"bytes"
	"log/slog"
	"maps"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/google/go-cmp/cmp"

	"github.com/easd/easd/eas"
	"github.com/easd/easd/internal/testenv"
	easstore "github.com/easd/easd/store"
)

// watchPassword is alice's password in the watcher tests: distinctive, so
// that a log holding it is noticed.
const watchPassword = "watch-s3cret-pw"

// syncBuffer is a bytes.Buffer for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// watchEnv is a Dovecot with user alice, a Backend whose connections go
// through a proxy (which counts them), and a client of alice's own for
// changes by "another device".
type watchEnv struct {
	d     *testenv.DovecotServer
	x     *tcpProxy
	b     *Backend
	acct  eas.MailAccount
	other *imapclient.Client
	log   *syncBuffer
}

// newWatchEnv starts it with a sweep of 200 ms, a linger of 200 ms and
// reconnect delays of 50 ms unless opts says otherwise. The folder Work
// exists.
func newWatchEnv(t *testing.T, opts BackendOptions) *watchEnv {
	t.Helper()
	d := testenv.Dovecot(t, map[string]string{"alice": watchPassword})
	x := newProxy(t, d.Addr)
	log := &syncBuffer{}
	opts.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.WatchSweep = cmpOr(opts.WatchSweep, 200*time.Millisecond)
	opts.WatchLinger = cmpOr(opts.WatchLinger, 200*time.Millisecond)
	b := NewBackend(newTestPool(t, x.addr(), PoolOptions{}), opts)
	b.watch.backoffMin, b.watch.backoffMax = 50*time.Millisecond, 200*time.Millisecond
	e := &watchEnv{
		d: d, x: x, b: b, log: log,
		acct:  eas.MailAccount{Login: "alice", Password: watchPassword},
		other: loggedIn(t, d.Addr, "alice", watchPassword),
	}
	if err := e.other.Create("Work", nil).Wait(); err != nil {
		t.Fatalf("CREATE Work: %v", err)
	}
	t.Cleanup(func() {
		b.CloseWatchers()
		if strings.Contains(log.String(), watchPassword) {
			t.Errorf("the log holds the password:\n%s", log)
		}
		if t.Failed() {
			t.Logf("backend log:\n%s", log)
		}
	})
	return e
}

// recorder collects the events of one Watch.
type recorder struct {
	t        *testing.T
	ch       chan eas.MailEvent
	inFlight atomic.Int32
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{t: t, ch: make(chan eas.MailEvent, 10000)}
}

func (r *recorder) fn(ev eas.MailEvent) {
	if r.inFlight.Add(1) != 1 {
		r.t.Error("fn called concurrently for one Watch")
	}
	defer r.inFlight.Add(-1)
	select {
	case r.ch <- ev:
	default:
		r.t.Error("too many events")
	}
}

// wait returns the first event for which match is true, failing the test
// if none comes within timeout.
func (r *recorder) wait(what string, timeout time.Duration, match func(eas.MailEvent) bool) eas.MailEvent {
	r.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-r.ch:
			if match(ev) {
				return ev
			}
		case <-deadline:
			r.t.Fatalf("no %s within %v", what, timeout)
		}
	}
}

// waitSnapshots waits for an event of each folder with Messages as in
// want, in any order.
func (r *recorder) waitSnapshots(timeout time.Duration, want map[string]uint32) {
	r.t.Helper()
	deadline := time.After(timeout)
	missing := maps.Clone(want)
	for len(missing) > 0 {
		select {
		case ev := <-r.ch:
			if n, ok := missing[ev.Folder]; ok && folderEvent(ev.Folder, n)(ev) {
				delete(missing, ev.Folder)
			}
		case <-deadline:
			r.t.Fatalf("no snapshots of %v within %v", slices.Sorted(maps.Keys(missing)), timeout)
		}
	}
}

// folderEvent matches an event of folder whose Messages is n.
func folderEvent(folder string, n uint32) func(eas.MailEvent) bool {
	return func(ev eas.MailEvent) bool {
		return ev.Folder == folder && ev.Status.Messages == n && ev.Status.UIDValidity != 0
	}
}

// drain empties r's queue.
func (r *recorder) drain() {
	for {
		select {
		case <-r.ch:
		default:
			return
		}
	}
}

func (e *watchEnv) watch(t *testing.T, folders ...string) (*recorder, func()) {
	t.Helper()
	r := newRecorder(t)
	stop := e.b.Watch(e.acct, folders, r.fn)
	t.Cleanup(stop)
	return r, stop
}

func TestWatchInboxAppend(t *testing.T) {
	t.Parallel()
	e := newWatchEnv(t, BackendOptions{WatchSweep: time.Minute})
	// A plain IDLE client beside the watcher: the server's own delay
	// (Dovecot tells IDLE clients 500 ms after a change) is not ours.
	raw := make(chan time.Time, 100)
	rc, err := imapclient.DialInsecure(e.d.Addr, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(m *imapclient.UnilateralDataMailbox) {
			if m.NumMessages != nil {
				raw <- time.Now()
			}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := rc.Login("alice", watchPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := rc.Idle()
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()

	r, _ := e.watch(t, "INBOX")
	first := r.wait("first INBOX snapshot", 5*time.Second, folderEvent("INBOX", 0))
	if first.Status.UIDNext == 0 || first.Status.HighestModSeq == 0 {
		t.Errorf("first snapshot %+v: want UIDNEXT and HIGHESTMODSEQ", first.Status)
	}
	var overheads []time.Duration
	for i := uint32(1); i <= 5; i++ {
		start := time.Now()
		appendMessage(t, e.other, "INBOX", rawMessage(int(i)), time.Now())
		ev := r.wait("INBOX event after APPEND", 2*time.Second, folderEvent("INBOX", i))
		got := time.Now()
		if ev.Status.UIDNext != first.Status.UIDNext+i {
			t.Errorf("after %d APPENDs: UIDNEXT %d, want %d", i, ev.Status.UIDNext, first.Status.UIDNext+i)
		}
		var told time.Time
		select {
		case told = <-raw:
		case <-time.After(2 * time.Second):
			t.Fatal("the plain IDLE client heard nothing")
		}
		overheads = append(overheads, got.Sub(told))
		t.Logf("APPEND %d: event %v after APPEND, %v after the server told a plain IDLE client", i, got.Sub(start), got.Sub(told))
	}
	slices.Sort(overheads)
	if p50 := overheads[len(overheads)/2]; p50 > 250*time.Millisecond {
		t.Errorf("median time from the server telling to the event: %v", p50)
	}
}

func TestWatchFlagChange(t *testing.T) {
	t.Parallel()
	e := newWatchEnv(t, BackendOptions{WatchSweep: time.Minute})
	uid := appendMessage(t, e.other, "INBOX", rawMessage(1), time.Now())
	r, _ := e.watch(t, "INBOX")
	first := r.wait("first INBOX snapshot", 5*time.Second, folderEvent("INBOX", 1))
	store(t, e.other, "INBOX", uid, imap.StoreFlagsAdd, imap.FlagFlagged)
	ev := r.wait("INBOX event after STORE", 2*time.Second, func(ev eas.MailEvent) bool { return ev.Folder == "INBOX" })
	if ev.Status.HighestModSeq <= first.Status.HighestModSeq || ev.Status.Messages != 1 {
		t.Errorf("after STORE: %+v, before %+v: want a higher HIGHESTMODSEQ, 1 message", ev.Status, first.Status)
	}
	// An expunge too.
	store(t, e.other, "INBOX", uid, imap.StoreFlagsAdd, imap.FlagDeleted)
	if err := e.other.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	r.wait("INBOX event after EXPUNGE", 2*time.Second, folderEvent("INBOX", 0))
}

func TestWatchOtherFolderSweep(t *testing.T) {
	t.Parallel()
	e := newWatchEnv(t, BackendOptions{})
	r, _ := e.watch(t, "INBOX", "Work")
	r.wait("first Work snapshot", 5*time.Second, folderEvent("Work", 0))
	appendMessage(t, e.other, "Work", rawMessage(1), time.Now())
	start := time.Now()
	r.wait("Work event after APPEND", 2*time.Second, folderEvent("Work", 1))
	t.Logf("APPEND to Work seen after %v (sweep 200ms)", time.Since(start))
	// Unchanged folders cost no event.
	r.drain()
	select {
	case ev := <-r.ch:
		t.Errorf("event without a change: %+v", ev)
	case <-time.After(500 * time.Millisecond):
	}
}

func TestWatchNewFolderSnapshotAtOnce(t *testing.T) {
	t.Parallel()
	// A sweep far away: the snapshot of a newly watched folder must not
	// wait for it.
	e := newWatchEnv(t, BackendOptions{WatchSweep: time.Hour})
	appendMessage(t, e.other, "Work", rawMessage(1), time.Now())
	r1, _ := e.watch(t, "INBOX")
	r1.wait("first INBOX snapshot", 5*time.Second, folderEvent("INBOX", 0))
	r2, _ := e.watch(t, "Work", "INBOX")
	// INBOX's snapshot is known: sent at once; Work's after one STATUS,
	// which may come first (it may run before the known ones are sent).
	r2.waitSnapshots(2*time.Second, map[string]uint32{"INBOX": 0, "Work": 1})
	select {
	case ev := <-r1.ch:
		t.Errorf("the first watch, of INBOX only, got %+v", ev)
	default:
	}
}

func TestWatchHierarchy(t *testing.T) {
	t.Parallel()
	e := newWatchEnv(t, BackendOptions{})
	r, _ := e.watch(t, "INBOX")
	// A watch of no folder hears of the hierarchy too.
	rNone, _ := e.watch(t)
	r.wait("first INBOX snapshot", 5*time.Second, folderEvent("INBOX", 0))
	if err := e.other.Create("Projects", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	isHierarchy := func(ev eas.MailEvent) bool { return ev.Hierarchy }
	r.wait("Hierarchy event after CREATE", 3*time.Second, isHierarchy)
	rNone.wait("Hierarchy event after CREATE (no folders)", 3*time.Second, isHierarchy)
	if err := e.other.Rename("Projects", "Archive", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	r.wait("Hierarchy event after RENAME", 3*time.Second, isHierarchy)
}

func TestWatchOneConnectionPerUser(t *testing.T) {
	t.Parallel()
	e := newWatchEnv(t, BackendOptions{WatchLinger: 300 * time.Millisecond})
	r1, stop1 := e.watch(t, "INBOX", "Work")
	r1.wait("first INBOX snapshot", 5*time.Second, folderEvent("INBOX", 0))
	r2, stop2 := e.watch(t, "INBOX")
	r2.wait("known INBOX snapshot", 2*time.Second, folderEvent("INBOX", 0))
	stop1()
	stop1() // harmless
	r3, stop3 := e.watch(t, "Work")
	r3.wait("Work snapshot", 2*time.Second, folderEvent("Work", 0))

	appendMessage(t, e.other, "INBOX", rawMessage(1), time.Now())
	r2.wait("INBOX event", 2*time.Second, folderEvent("INBOX", 1))
	if got := e.x.counts(); got.Total != 1 {
		t.Errorf("connections through the proxy: %+v, want 1 in total", got)
	}
	if diff := cmp.Diff(WatchStats{Users: 1, Connections: 1, Watches: 2}, e.b.WatchStats(), cmpIgnoreCommands); diff != "" {
		t.Errorf("WatchStats (-want +got):\n%s", diff)
	}

	// The last stop: the connection lingers, a Watch meanwhile reuses it.
	stop2()
	stop3()
	r4, stop4 := e.watch(t, "INBOX")
	r4.wait("INBOX snapshot after re-watch", 2*time.Second, folderEvent("INBOX", 1))
	stop4()
	if got := e.x.counts(); got.Total != 1 {
		t.Errorf("connections through the proxy: %+v, want 1 in total", got)
	}
	// Past the linger: logged out, gone.
	waitFor(t, "watcher connection closed", func() bool { return e.x.counts().Cur == 0 })
	waitFor(t, "watchers gone", func() bool { return e.b.WatchStats() == WatchStats{Commands: e.b.WatchStats().Commands} })
	if !strings.Contains(e.log.String(), "imap watcher: ended") {
		t.Error("no log of the watcher ending")
	}
}

var cmpIgnoreCommands = cmp.Transformer("noCommands", func(s WatchStats) WatchStats { s.Commands = 0; return s })

func TestWatchReconnect(t *testing.T) {
	t.Parallel()
	e := newWatchEnv(t, BackendOptions{})
	r, _ := e.watch(t, "INBOX")
	r.wait("first INBOX snapshot", 5*time.Second, folderEvent("INBOX", 0))
	e.x.cut()
	r.wait("Resync after reconnect", 5*time.Second, func(ev eas.MailEvent) bool { return ev.Resync })
	appendMessage(t, e.other, "INBOX", rawMessage(1), time.Now())
	r.wait("INBOX event after reconnect", 2*time.Second, folderEvent("INBOX", 1))
	if got := e.x.counts(); got.Total != 2 || got.Cur != 1 {
		t.Errorf("connections through the proxy: %+v, want 2 in total, 1 open", got)
	}
	if s := e.b.WatchStats(); s.Connections != 1 || s.Users != 1 {
		t.Errorf("WatchStats %+v: want 1 connection, 1 user", s)
	}
}

func TestWatchIdleCost(t *testing.T) {
	t.Parallel()
	const sweep = 200 * time.Millisecond
	e := newWatchEnv(t, BackendOptions{WatchSweep: sweep})
	for _, f := range []string{"Work", "Sent", "Trash"} {
		appendMessage(t, e.other, f, rawMessage(1), time.Now())
	}
	r, _ := e.watch(t, "INBOX", "Work", "Sent", "Trash")
	r.waitSnapshots(5*time.Second, map[string]uint32{"INBOX": 0, "Work": 1, "Sent": 1, "Trash": 1})
	// Start right after a sweep, measure over about a second.
	start := e.b.WatchStats().Commands
	t0 := time.Now()
	time.Sleep(time.Second)
	used := e.b.WatchStats().Commands - start
	elapsed := time.Since(t0)
	// Per sweep: DONE, 3 STATUS, LIST, IDLE.
	sweeps := uint64(elapsed/sweep) + 1
	if bound := sweeps * 6; used > bound {
		t.Errorf("%d commands in %v while nothing changed, want at most %d (%d sweeps)", used, elapsed, bound, sweeps)
	}
	if used < 6 {
		t.Errorf("%d commands in %v: no sweep?", used, elapsed)
	}
	t.Logf("%d commands in %v (sweep %v, 3 other folders)", used, elapsed, sweep)
	select {
	case ev := <-r.ch:
		t.Errorf("event without a change: %+v", ev)
	default:
	}
}

func TestWatchCloseWatchers(t *testing.T) {
	t.Parallel()
	e := newWatchEnv(t, BackendOptions{WatchLinger: time.Hour})
	r, stop := e.watch(t, "INBOX")
	r.wait("first INBOX snapshot", 5*time.Second, folderEvent("INBOX", 0))
	// A second user whose upstream login fails keeps retrying.
	e.b.Watch(eas.MailAccount{Login: "bob", Password: "x"}, []string{"INBOX"}, func(eas.MailEvent) {})
	stop() // lingering for an hour
	start := time.Now()
	e.b.CloseWatchers()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("CloseWatchers took %v", d)
	}
	if diff := cmp.Diff(WatchStats{Watches: 1}, e.b.WatchStats(), cmpIgnoreCommands); diff != "" {
		t.Errorf("WatchStats after CloseWatchers (-want +got):\n%s", diff)
	}
	waitFor(t, "watcher connection closed", func() bool { return e.x.counts().Cur == 0 })
	total := e.x.counts().Total
	r2 := newRecorder(t)
	stop2 := e.b.Watch(e.acct, []string{"INBOX"}, r2.fn)
	stop2()
	time.Sleep(100 * time.Millisecond)
	if got := e.x.counts().Total; got != total {
		t.Errorf("Watch after CloseWatchers connected")
	}
	if s := e.b.WatchStats(); s.Users != 0 {
		t.Errorf("Watch after CloseWatchers: %+v", s)
	}
	e.b.CloseWatchers() // harmless
}

func TestWatchBadCredentials(t *testing.T) {
	t.Parallel()
	e := newWatchEnv(t, BackendOptions{})
	bad := eas.MailAccount{Login: "alice", Password: "wrong"}
	r := newRecorder(t)
	stop := e.b.Watch(bad, []string{"INBOX"}, r.fn)
	defer stop()
	waitFor(t, "a refused login logged", func() bool { return strings.Contains(e.log.String(), "level=WARN") })
	time.Sleep(300 * time.Millisecond)
	if got := e.x.counts().Total; got != 1 {
		t.Errorf("%d connections after a refused login, want 1 (a long backoff)", got)
	}
	// The right password, given by another Watch, is tried at once.
	r2, _ := e.watch(t, "INBOX")
	r2.wait("INBOX snapshot with the right password", 5*time.Second, folderEvent("INBOX", 0))
	r.wait("INBOX snapshot for the first watch too", time.Second, folderEvent("INBOX", 0))
	if strings.Contains(e.log.String(), "wrong") {
		t.Errorf("the log holds a password:\n%s", e.log)
	}
}

func TestWatchMasterUser(t *testing.T) {
	t.Parallel()
	d := testenv.Dovecot(t, map[string]string{"alice": "pw"})
	b := NewBackend(newTestPool(t, d.Addr, PoolOptions{}), BackendOptions{MasterUser: d.MasterUser, MasterPassword: d.MasterPassword})
	t.Cleanup(b.CloseWatchers)
	r := newRecorder(t)
	// A local user: no IMAP password of its own.
	stop := b.Watch(eas.MailAccount{Login: "alice", User: easstore.User{Name: "alice"}}, []string{"INBOX"}, r.fn)
	defer stop()
	r.wait("first INBOX snapshot", 5*time.Second, folderEvent("INBOX", 0))
	d.Deliver(t, "alice", "INBOX", rawMessage(1))
	r.wait("INBOX event after delivery", 2*time.Second, folderEvent("INBOX", 1))
}

func TestWatchStopFromCallback(t *testing.T) {
	t.Parallel()
	e := newWatchEnv(t, BackendOptions{})
	var stop func()
	got := make(chan eas.MailEvent, 10)
	ready := make(chan struct{})
	stop = e.b.Watch(e.acct, []string{"INBOX"}, func(ev eas.MailEvent) {
		<-ready
		got <- ev
		stop()
	})
	close(ready)
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	appendMessage(t, e.other, "INBOX", rawMessage(1), time.Now())
	waitFor(t, "no watches", func() bool { return e.b.WatchStats().Watches == 0 })
	select {
	case ev := <-got:
		t.Errorf("event after stop: %+v", ev)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestWatchSweepMaxRoundRobin(t *testing.T) {
	t.Parallel()
	const sweep = 200 * time.Millisecond
	e := newWatchEnv(t, BackendOptions{WatchSweep: sweep, WatchSweepMax: 2})
	others := []string{"Work", "Sent", "Trash", "Drafts"}
	r, _ := e.watch(t, append([]string{"INBOX"}, others...)...)
	r.waitSnapshots(5*time.Second, map[string]uint32{"INBOX": 0, "Work": 0, "Sent": 0, "Trash": 0, "Drafts": 0})
	// Every folder is seen within a few sweeps, though one sweep looks
	// at two of them only.
	for _, f := range others {
		appendMessage(t, e.other, f, rawMessage(1), time.Now())
	}
	r.waitSnapshots(5*time.Second, map[string]uint32{"Work": 1, "Sent": 1, "Trash": 1, "Drafts": 1})
	start := e.b.WatchStats().Commands
	t0 := time.Now()
	time.Sleep(time.Second)
	used, elapsed := e.b.WatchStats().Commands-start, time.Since(t0)
	// Per sweep: DONE, 2 STATUS, LIST, IDLE.
	if bound := (uint64(elapsed/sweep) + 1) * 5; used > bound {
		t.Errorf("%d commands in %v, want at most %d", used, elapsed, bound)
	}
}

func TestWatchUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	log := &syncBuffer{}
	b := NewBackend(newTestPool(t, addr, PoolOptions{}), BackendOptions{Logger: slog.New(slog.NewTextHandler(log, nil))})
	b.watch.backoffMin, b.watch.backoffMax = 50*time.Millisecond, 200*time.Millisecond
	r := newRecorder(t)
	stop := b.Watch(eas.MailAccount{Login: "alice", Password: "pw"}, []string{"INBOX"}, r.fn)
	defer stop()
	time.Sleep(time.Second)
	// 50, 100, 200, 200... ms apart, with jitter: a handful of attempts.
	if n := strings.Count(log.String(), "cannot connect"); n < 2 || n > 10 {
		t.Errorf("%d connection attempts in 1s, want 2 to 10:\n%s", n, log)
	}
	if s := b.WatchStats(); s.Users != 1 || s.Connections != 0 || s.Commands != 0 {
		t.Errorf("WatchStats %+v: want 1 user, no connection, no command", s)
	}
	start := time.Now()
	b.CloseWatchers()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("CloseWatchers took %v", d)
	}
	if s := b.WatchStats(); s.Users != 0 {
		t.Errorf("WatchStats after CloseWatchers: %+v", s)
	}
}

func TestWatchMemoryPerWatch(t *testing.T) {
	// Not parallel: it counts the bytes allocated meanwhile.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	b := NewBackend(newTestPool(t, addr, PoolOptions{}), BackendOptions{})
	b.watch.backoffMin = time.Hour // one failed attempt, then quiet
	t.Cleanup(b.CloseWatchers)
	folders := []string{"INBOX", "Work", "Sent"}
	acct := eas.MailAccount{Login: "alice", Password: "pw"}
	b.Watch(acct, folders, func(eas.MailEvent) {})() // the user's watcher exists
	const n = 10000
	stops := make([]func(), 0, n)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		stops = append(stops, b.Watch(acct, folders, func(eas.MailEvent) {}))
	}
	runtime.ReadMemStats(&after)
	per := (after.TotalAlloc - before.TotalAlloc) / n
	t.Logf("%d bytes allocated per Watch of %d folders", per, len(folders))
	if per > 512 {
		t.Errorf("%d bytes allocated per Watch, want at most 512", per)
	}
	for _, stop := range stops {
		stop()
	}
	if s := b.WatchStats(); s.Watches != 0 {
		t.Errorf("WatchStats %+v after every stop", s)
	}
}
