//go:build unix

package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/internal/testenv"
	"github.com/easd/easd/wbxml"
)

// The kill -9 test of issue #9: a phone syncs a 2,000-message Inbox in
// windows while `easd serve` is killed with SIGKILL at random points and
// started again on the same SQLite store and port; the phone retries the
// same request until answered, as phones do.
const (
	crashMessages = 2000
	crashKills    = 100
	crashWindow   = 50
	// crashKillChance is the chance that an attempt gets a kill.
	crashKillChance = 0.5
	// crashResetChance is the chance that a kill also resets the phone's
	// connection (crashProxy.reset).
	crashResetChance = 0.5
	// crashMarkEvery: every that many answered requests the next one
	// carries Changes (Read=1) for crashMarkCount held items.
	crashMarkEvery = 3
	crashMarkCount = 5
	// crashMaxAttempts and crashDeadline bound the loop.
	crashMaxAttempts = 3000
	crashDeadline    = 6 * time.Minute
	// crashMaxRetries bounds the retries of one request.
	crashMaxRetries = 30
)

// crashMessage is message i of the Inbox: a distinct subject, Message-ID
// and date, and a plain body of about 8 KB so that a response of 50 is
// several hundred KB (kills can land while it is being sent).
func crashMessage(i int) []byte {
	var body strings.Builder
	for l := 0; body.Len() < 8000; l++ {
		fmt.Fprintf(&body, "message %04d, line %03d: the quick brown fox jumps over the lazy dog\r\n", i, l)
	}
	date := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	return fmt.Appendf(nil, "From: Bob <bob@example.test>\r\nTo: Crash <crash@example.test>\r\nSubject: %s\r\n"+
		"Date: %s\r\nMessage-ID: <crash%04d@example.test>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s",
		crashSubject(i), date.Format(time.RFC1123Z), i, body.String())
}

func crashSubject(i int) string { return fmt.Sprintf("crash %04d", i) }

// crashProxy relays the phones' connections to easd. When easd is
// killed, the kernel still delivers what the process had written; reset
// drops the phones' connections too (RST, unread data lost), as when the
// host or the network dies with the process: a response saved but never
// received.
type crashProxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	conns    map[*net.TCPConn]bool
}

func newCrashProxy(t *testing.T, upstream string) *crashProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &crashProxy{ln: ln, upstream: upstream, conns: map[*net.TCPConn]bool{}}
	t.Cleanup(func() { ln.Close(); p.reset() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
				continue
			}
			pc, uc := c.(*net.TCPConn), u.(*net.TCPConn)
			p.mu.Lock()
			p.conns[pc], p.conns[uc] = true, true
			p.mu.Unlock()
			relay := func(dst, src *net.TCPConn) {
				io.Copy(dst, src)
				dst.CloseWrite() // the other side's FIN, after the data
				p.mu.Lock()
				delete(p.conns, src)
				p.mu.Unlock()
			}
			go relay(uc, pc)
			go func() { relay(pc, uc); pc.Close(); uc.Close() }()
		}
	}()
	return p
}

// reset drops every relayed connection with a RST.
func (p *crashProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.SetLinger(0)
		c.Close()
	}
	clear(p.conns)
}

// crashServer is the `easd serve` process, restarted on the same data
// directory and port after each kill.
type crashServer struct {
	t        *testing.T
	bin, dir string
	addr     string
	env      []string
	cmd      *exec.Cmd
	logOf    func() string
	// logs holds the logs of the incarnations that ended.
	logs []string
}

func (s *crashServer) start() {
	s.t.Helper()
	cmd, addr, _, logOf := startServe(s.t, s.bin, s.dir, append(slices.Clone(s.env), "EASD_LISTEN="+s.addr)...)
	if addr != s.addr {
		s.t.Fatalf("easd listens on %s, want %s", addr, s.addr)
	}
	s.cmd, s.logOf = cmd, logOf
}

// reap waits for the killed process and keeps its log.
func (s *crashServer) reap() {
	s.logs = append(s.logs, s.logOf()) // the pipe ends with the process
	s.cmd.Wait()
}

// crashTransport records how far the attempt in flight got (a response
// head, its whole body), and reads response bodies in small pieces with
// pauses through a small socket buffer, as a phone on a slow link would:
// the server is still writing while the phone reads, so kills also land
// in the middle of a response.
type crashTransport struct {
	base     *http.Transport
	headers  atomic.Bool
	bodyDone atomic.Bool
}

func (c *crashTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	c.headers.Store(true)
	resp.Body = &slowBody{rc: resp.Body, done: &c.bodyDone}
	return resp, nil
}

type slowBody struct {
	rc   io.ReadCloser
	done *atomic.Bool
}

func (b *slowBody) Read(p []byte) (int, error) {
	if len(p) > 16<<10 {
		p = p[:16<<10]
	}
	time.Sleep(time.Millisecond)
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.done.Store(true)
	}
	return n, err
}

func (b *slowBody) Close() error { return b.rc.Close() }

// crashPhone is one device syncing the Inbox.
type crashPhone struct {
	id        string
	c         *client.Client
	inbox     string
	key       string
	bySID     map[string]string // ServerId -> subject
	bySubject map[string]string // subject -> ServerId
	answered  int               // requests answered
	// inflight is the request being retried until it is answered.
	inflight *client.SyncRequest
	marking  []string // subjects marked read by inflight
	dups     int
	lost     int
	// wrongRead counts Adds whose Read differs from what was marked
	// before; echoes counts Changes sent back for the phone's own.
	wrongRead, echoes, unexpected int
	complete                      bool
	// fails counts the failed attempts of inflight.
	fails int
}

// crashStats are the figures the test reports.
type crashStats struct {
	kills, resets                         int
	killMidRequest, killMidResponse, idle int
	attempts, retries, unexpectedErrs     int
	unavailable                           int
	started, devices, itemsChecked        int
	lost, dups                            int
	wrongRead, echoes, unexpectedCommands int
	replays, marked                       int
	status3                               int
	restartTotal, restartMax              time.Duration
	firstUnexpected                       string
}

// TestCrashKill9DuringSync is issue #9's crash test: 100 SIGKILLs of
// `easd serve` at random points while devices sync a 2,000-message
// Inbox (WindowSize 50) from a real Dovecot, on the embedded SQLite store
// (WAL). After every restart the phone's retry of the same request
// completes; every device that finishes holds exactly the server's 2,000
// messages: none lost, none twice (an Add of a ServerId it holds, or a
// second ServerId for a subject). The phones also mark messages read
// along the way (Sync Change, retried like the rest): at the end exactly
// those are \Seen in the mailbox.
func TestCrashKill9DuringSync(t *testing.T) {
	if testing.Short() {
		t.Skip("100 kills of easd serve")
	}
	began := time.Now()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("EASD_CRASH_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("EASD_CRASH_SEED: %v", err)
		}
		seed = n
	}
	t.Logf("seed %d (EASD_CRASH_SEED=%d reproduces the kill schedule, not the timing)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 9))

	dc := testenv.Dovecot(t, map[string]string{"crash": "crash-pw"})
	for i := range crashMessages {
		dc.Deliver(t, "crash", "", crashMessage(i))
	}
	bin := buildEasd(t)
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	srv := &crashServer{t: t, bin: bin, dir: dir, addr: addr, env: []string{
		"EASD_DATA_DIR=" + filepath.Join(dir, "data"), "EASD_AUTH=imap", "EASD_IMAP_ADDR=" + dc.Addr, "EASD_IMAP_TLS=none",
	}}
	srv.start()
	proxy := newCrashProxy(t, addr)
	t.Logf("setup (Dovecot, %d messages, build, start) took %v", crashMessages, time.Since(began).Round(time.Millisecond))

	// A fixed 32 KiB receive buffer (no autotuning) keeps the server
	// writing while the phone reads.
	dialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 32<<10) })
		return cmp.Or(err, serr)
	}}
	tr := &crashTransport{base: &http.Transport{MaxIdleConnsPerHost: 2, DialContext: dialer.DialContext}}
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	ctx := context.Background()
	opts := &client.SyncOptions{BodyPreferences: []client.BodyPreference{{Type: client.BodyPlain}}}
	marked := map[string]bool{}
	var st crashStats
	var ph *crashPhone
	// The mean length of an answered attempt: kill delays spread over
	// it (longer attempts are killed after their answer).
	avg := 50 * time.Millisecond
	deadline := time.Now().Add(crashDeadline)

	// newPhone provisions a fresh device and lists its folders; it is not
	// killed during these two commands.
	newPhone := func() *crashPhone {
		st.started++
		id := fmt.Sprintf("CRASH%03d", st.started)
		c, err := client.New(client.Config{URL: "http://" + proxy.ln.Addr().String(), User: "crash", Password: "crash-pw", DeviceID: id,
			DeviceType: "iPhone", UserAgent: "Apple-iPhone15C2/2104.112", Version: "14.1", HTTPClient: hc})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Provision(ctx); err != nil {
			t.Fatalf("%s: Provision: %v", id, err)
		}
		fc, err := c.FolderSync(ctx, "0")
		if err != nil {
			t.Fatalf("%s: FolderSync: %v", id, err)
		}
		p := &crashPhone{id: id, c: c, key: "0", bySID: map[string]string{}, bySubject: map[string]string{}}
		for _, f := range fc.Added {
			if f.Type == client.FolderInbox {
				p.inbox = f.ServerID
			}
		}
		if p.inbox == "" {
			t.Fatalf("%s: no Inbox in %+v", id, fc.Added)
		}
		return p
	}

	for {
		if time.Now().After(deadline) || st.attempts >= crashMaxAttempts {
			t.Fatalf("not done after %d attempts, %v, %d kills", st.attempts, time.Since(began).Round(time.Second), st.kills)
		}
		if ph == nil || ph.complete {
			if ph != nil && st.kills >= crashKills {
				break
			}
			ph = newPhone()
		}
		if ph.inflight == nil {
			ph.inflight, ph.marking = ph.next(opts, marked)
		}
		st.attempts++

		var killed chan struct{}
		if st.kills < crashKills && rng.Float64() < crashKillChance {
			st.kills++
			delay := time.Duration(rng.Int64N(int64(avg) + 1))
			cut := rng.Float64() < crashResetChance
			if cut {
				st.resets++
			}
			proc := srv.cmd.Process
			killed = make(chan struct{})
			go func() {
				defer close(killed)
				time.Sleep(delay)
				proc.Signal(syscall.SIGKILL)
				if cut {
					proxy.reset()
				}
			}()
		}
		tr.headers.Store(false)
		tr.bodyDone.Store(false)
		start := time.Now()
		resp, err := ph.c.Sync(ctx, *ph.inflight)
		took := time.Since(start)
		if killed != nil {
			<-killed
			switch {
			case err == nil:
				st.idle++ // the answer was complete: the kill fell between requests
			case !tr.headers.Load():
				st.killMidRequest++
			default:
				st.killMidResponse++
			}
			srv.reap()
			rs := time.Now()
			srv.start()
			d := time.Since(rs)
			st.restartTotal += d
			st.restartMax = max(st.restartMax, d)
			tr.base.CloseIdleConnections()
		}
		if err != nil {
			var he *client.HTTPError
			switch {
			case killed != nil:
			case errors.As(err, &he) && he.Status == http.StatusServiceUnavailable:
				// Busy (e.g. the IMAP server still counts the dead
				// process's connections): a phone waits and retries.
				st.unavailable++
				time.Sleep(100 * time.Millisecond)
			default:
				// Not caused by a kill: counted, and retried like the others.
				st.unexpectedErrs++
				if st.firstUnexpected == "" {
					st.firstUnexpected = err.Error()
				}
				time.Sleep(100 * time.Millisecond)
			}
			st.retries++
			if ph.fails++; ph.fails > crashMaxRetries {
				t.Fatalf("%s: request with key %s failed %d times; last: %v", ph.id, ph.key, crashMaxRetries, err)
			}
			continue
		}
		if killed == nil {
			avg = (avg*7 + took) / 8
		}
		ph.fails = 0
		r := resp.Collection(ph.inbox)
		if r == nil {
			t.Fatalf("%s: no Inbox collection in the answer to key %s: %v", ph.id, ph.key, resp.Raw)
		}
		if r.Status == 3 {
			// A key the server forgot: its state did not survive the
			// kill. A phone starts over (dropping what it holds).
			st.status3++
			t.Errorf("BUG: %s: key %s refused (status 3) after a kill: sync state lost", ph.id, ph.key)
			ph = nil
			continue
		}
		if r.Status != 1 {
			t.Fatalf("%s: key %s: collection status %d", ph.id, ph.key, r.Status)
		}
		ph.apply(r, marked)
		for _, s := range ph.marking {
			marked[s] = true
		}
		if ph.complete {
			st.devices++
			st.itemsChecked += len(ph.bySubject)
			st.lost += ph.lost
			st.dups += ph.dups
			st.wrongRead += ph.wrongRead
			st.echoes += ph.echoes
			st.unexpectedCommands += ph.unexpected
			t.Logf("%s complete: %d messages, %d lost, %d duplicated; %d kills so far", ph.id, len(ph.bySubject), ph.lost, ph.dups, st.kills)
		}
	}

	// The mailbox: all 2,000 still there, \Seen exactly on the marked ones.
	ic, err := imapclient.DialInsecure(dc.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if err := ic.Login("crash", "crash-pw").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := ic.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	var all imap.SeqSet
	all.AddRange(1, 0)
	msgs, err := ic.Fetch(all, &imap.FetchOptions{Flags: true, Envelope: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		if slices.Contains(m.Flags, imap.FlagSeen) {
			seen[m.Envelope.Subject] = true
		}
	}
	var notApplied, extra []string
	for s := range marked {
		if !seen[s] {
			notApplied = append(notApplied, s)
		}
	}
	for s := range seen {
		if !marked[s] {
			extra = append(extra, s)
		}
	}
	if len(msgs) != crashMessages {
		t.Errorf("the Inbox holds %d messages after the run, want %d", len(msgs), crashMessages)
	}
	if len(notApplied) > 0 || len(extra) > 0 {
		slices.Sort(notApplied)
		slices.Sort(extra)
		t.Errorf("BUG: Read=1 sent for %d messages; \\Seen on %d: not applied %v, seen without being marked %v", len(marked), len(seen), notApplied, extra)
	}
	st.marked = len(marked)

	// The server logs: replayed answers, and nothing at ERROR level.
	srv.cmd.Process.Signal(syscall.SIGTERM)
	srv.logs = append(srv.logs, srv.logOf())
	if err := srv.cmd.Wait(); err != nil {
		t.Errorf("easd serve after SIGTERM, following %d kills: %v", st.kills, err)
	}
	var errorLines []string
	for _, lg := range srv.logs {
		for line := range strings.SplitSeq(lg, "\n") {
			var rec struct{ Level, Msg string }
			if json.Unmarshal([]byte(line), &rec) != nil {
				if strings.Contains(line, "panic") {
					errorLines = append(errorLines, line)
				}
				continue
			}
			if rec.Msg == "Sync retried: same answer again" {
				st.replays++
			}
			if rec.Level == "ERROR" {
				errorLines = append(errorLines, line)
			}
		}
	}
	if len(errorLines) > 0 {
		t.Errorf("BUG: %d server log lines at ERROR level or with a panic, first: %s", len(errorLines), errorLines[0])
	}

	if st.kills != crashKills {
		t.Errorf("%d kills, want %d", st.kills, crashKills)
	}
	if st.devices == 0 {
		t.Errorf("no device completed")
	}
	if st.lost != 0 || st.dups != 0 {
		t.Errorf("BUG: %d messages lost, %d duplicated over %d devices", st.lost, st.dups, st.devices)
	}
	if st.wrongRead != 0 || st.echoes != 0 || st.unexpectedCommands != 0 {
		t.Errorf("BUG: %d Adds with a wrong Read flag, %d own changes echoed, %d unexpected Deletes or failed Responses",
			st.wrongRead, st.echoes, st.unexpectedCommands)
	}
	if st.replays == 0 {
		// Not a failure: the schedule is random. The path is also covered
		// in-process (eas TestFaultClientHangsUpMidResponse).
		t.Log("note: no kill landed between a saved state and its answer reaching the phone (no replayed answer)")
	}
	if st.unexpectedErrs > 0 {
		t.Errorf("%d requests failed without a kill; first: %s", st.unexpectedErrs, st.firstUnexpected)
	}
	restarts := st.kills
	t.Logf("kills %d (%d with the phone's connection reset; landed mid-request %d, mid-response %d, after the answer %d); attempts %d, retries %d (HTTP 503 %d), answers replayed by the server %d; "+
		"devices completed %d, items checked %d, lost %d, duplicated %d; marked read %d (\\Seen on exactly those: %v); status 3 %d; "+
		"restarts avg %v max %v; wall time %v",
		st.kills, st.resets, st.killMidRequest, st.killMidResponse, st.idle, st.attempts, st.retries, st.unavailable, st.replays,
		st.devices, st.itemsChecked, st.lost, st.dups, st.marked, len(notApplied)+len(extra) == 0, st.status3,
		(st.restartTotal / time.Duration(max(restarts, 1))).Round(time.Millisecond), st.restartMax.Round(time.Millisecond),
		time.Since(began).Round(time.Second))
}

// next is the phone's next request: the next key with GetChanges (none
// with key 0), and every crashMarkEvery answers Changes marking up to
// crashMarkCount held, unmarked messages read; it returns the subjects
// it marks.
func (p *crashPhone) next(opts *client.SyncOptions, marked map[string]bool) (*client.SyncRequest, []string) {
	coll := client.SyncCollection{SyncKey: p.key, CollectionID: p.inbox, WindowSize: crashWindow, Options: opts}
	var marking []string
	if p.key != "0" {
		coll.GetChanges = new(true)
		if p.answered%crashMarkEvery == crashMarkEvery-1 {
			for _, sid := range slices.Sorted(maps.Keys(p.bySID)) {
				if s := p.bySID[sid]; !marked[s] {
					marking = append(marking, s)
					coll.Changes = append(coll.Changes, client.SyncChange{ServerID: sid,
						ApplicationData: wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.EmailRead, "1"))})
					if len(marking) == crashMarkCount {
						break
					}
				}
			}
		}
	}
	return &client.SyncRequest{Collections: []client.SyncCollection{coll}}, marking
}

// apply takes an answer: Adds are checked against what the phone holds
// (a ServerId again, or a second ServerId for a subject, is a duplicate)
// and against the messages marked read so far (marked, before this
// answer's own marks). Once the server has nothing more the phone
// counts what it lacks.
func (p *crashPhone) apply(r *client.SyncCollectionResponse, marked map[string]bool) {
	p.inflight = nil
	p.answered++
	for _, a := range r.Adds {
		subj := a.ApplicationData.ChildText(wbxml.EmailSubject)
		if _, dup := p.bySID[a.ServerID]; dup {
			p.dups++
			continue
		}
		if _, dup := p.bySubject[subj]; dup {
			p.dups++
			continue
		}
		p.bySID[a.ServerID], p.bySubject[subj] = subj, a.ServerID
		if (a.ApplicationData.ChildText(wbxml.EmailRead) == "1") != marked[subj] {
			p.wrongRead++
		}
	}
	p.echoes += len(r.Changes)
	p.unexpected += len(r.Deletes) + len(r.SoftDeletes) + len(r.Responses)
	wasZero := p.key == "0"
	p.key = r.SyncKey
	if !wasZero && !r.MoreAvailable {
		p.complete = true
		for i := range crashMessages {
			if _, ok := p.bySubject[crashSubject(i)]; !ok {
				p.lost++
			}
		}
	}
}
