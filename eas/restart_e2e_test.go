package eas_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/easd/easd/eas"
	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/imapbridge"
	"github.com/easd/easd/internal/passwd"
	"github.com/easd/easd/internal/testenv"
	"github.com/easd/easd/store"
	"github.com/easd/easd/store/postgres"
	"github.com/easd/easd/store/sqlite"
	"github.com/easd/easd/wbxml"
)

// Size and pacing of TestRestartServicesUnderLoad (issue #9); the device
// count is restartUsers × restartDevicesPerUser.
const (
	restartUsers          = 10
	restartDevicesPerUser = 10
	// restartInFlight bounds the requests in flight at once, long polls
	// (parked Ping and Sync) aside, so that two cores cope.
	restartInFlight = 8
	// restartRecover bounds how long every device may take to recover
	// after a fault, and each push step to reach every device.
	restartRecover = 60 * time.Second
	// restartOutage is how long a stopped service stays down.
	restartOutage = time.Second
	// restartPoll is the mean interval of the polling devices' Syncs.
	restartPoll = 2 * time.Second
	// restartRetries bounds the attempts of one request; backoff between
	// them grows from restartBackoffMin to restartBackoffMax.
	restartRetries                       = 60
	restartBackoffMin, restartBackoffMax = 100 * time.Millisecond, 2 * time.Second
	// restartHeartbeat is the long polls' interval, far beyond
	// restartRecover: a device that learns of a change within the bound
	// was told by push.
	restartHeartbeat = 300
)

// rsKind is how a device waits for changes.
type rsKind int

const (
	kindPoll rsKind = iota // Sync every restartPoll
	kindPing               // a parked Ping, then Sync of what it names
	kindWait               // a parked Sync (HeartbeatInterval, Wait for 12.1)
)

// restartMix is the devices of each user: device i is restartMix[i %
// len] on instance i % 2. Device 0 adds the user's contacts; those of
// the contacts devices on instance 1 hear of them through the bus.
var restartMix = []struct {
	kind     rsKind
	version  string
	contacts bool
}{
	{kindPoll, "14.1", true},
	{kindPing, "14.1", true},
	{kindPing, "14.1", false},
	{kindWait, "14.1", true},
	{kindWait, "12.1", false},
	{kindPing, "14.0", true},
	{kindPing, "12.1", false},
	{kindPoll, "12.1", false},
	{kindPing, "14.1", true},
	{kindWait, "14.1", false},
}

// rsInstance is one easd process: its own store pool, bus, IMAP pool,
// watchers and handler, wired as cmd/easd/serve.go wires them.
type rsInstance struct {
	bus *postgres.Bus
	be  *imapbridge.Backend
	h   *eas.Handler
	srv *httptest.Server
	tr  *http.Transport // the phones' connections to it
}

// rsEnv is the test's world: the services, two instances, the devices
// and what every user should hold.
type rsEnv struct {
	t     *testing.T
	pg    *testenv.PostgresServer
	dc    *testenv.DovecotServer
	inst  [2]*rsInstance
	logs  *syncBuffer
	stats *rsStats
	sem   chan struct{}
	devs  []*rsDevice
	users []string

	mu       sync.Mutex
	msgN     int
	mail     map[string][]string // user -> subjects delivered
	contacts map[string][]string // user -> contacts added (FileAs)
}

func newRestartEnv(t *testing.T) *rsEnv {
	e := &rsEnv{t: t, logs: &syncBuffer{}, stats: newRSStats(), sem: make(chan struct{}, restartInFlight),
		mail: map[string][]string{}, contacts: map[string][]string{}}
	users := map[string]string{}
	for i := range restartUsers {
		u := fmt.Sprintf("user%02d", i)
		users[u] = u + "-pw"
		e.users = append(e.users, u)
	}
	e.pg = testenv.Postgres(t)
	// Both instances connect from 127.0.0.1, so Dovecot's per-user, per
	// address limit (10) counts their pools and watchers together; in
	// production they come from different hosts.
	e.dc = testenv.DovecotWith(t, users, testenv.DovecotOptions{MaxUserIPConnections: 20})
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for i := range e.inst {
		st, err := postgres.Open(ctx, e.pg.URL(), postgres.Options{Migrate: true})
		if err != nil {
			t.Fatal(err)
		}
		up, err := imapbridge.NewIMAPAuthenticator(imapbridge.Config{Addr: e.dc.Addr, TLS: imapbridge.TLSNone})
		if err != nil {
			t.Fatal(err)
		}
		pool := imapbridge.NewPool(imapbridge.Config{Addr: e.dc.Addr, TLS: imapbridge.TLSNone}, imapbridge.PoolOptions{Logger: log})
		in := &rsInstance{be: imapbridge.NewBackend(pool, imapbridge.BackendOptions{Logger: log}), bus: st.NewBus(log),
			tr: &http.Transport{MaxIdleConnsPerHost: 256}}
		// Each phone has its own address, passed on by a reverse proxy
		// on loopback as in production (login throttling counts per
		// address).
		cfg := eas.Config{Domain: "example.test", Policy: eas.DefaultPolicy, MaxConcurrent: 500,
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
		in.h = eas.NewHandler(cfg, eas.Deps{
			Store: st, Logger: log, Mail: in.be, Items: st, Codecs: eas.DefaultCodecs(), Bus: in.bus,
			Auth: eas.PassThroughAuth{Users: st, Upstream: imapbridge.NewCachedAuthenticator(up, imapbridge.CacheOptions{}),
				IsBadCredentials: func(err error) bool { return errors.Is(err, imapbridge.ErrBadCredentials) }},
		})
		listening := make(chan struct{})
		go func() {
			defer close(listening)
			in.h.ListenBus(ctx)
		}()
		in.srv = httptest.NewServer(in.h)
		e.inst[i] = in
		// As serve.go shuts down: answer parked requests, close the
		// listener, the watchers, the pools, the bus and the store.
		t.Cleanup(func() {
			in.h.Drain()
			in.tr.CloseIdleConnections()
			in.srv.Close()
			in.be.CloseWatchers()
			pool.Close()
			cancel()
			<-listening
			st.Close()
		})
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("easd warnings and errors:\n%s", tailLevels(e.logs.String(), 200))
		}
	})
	return e
}

// tailLevels returns the last n log lines at WARN or ERROR.
func tailLevels(log string, n int) string {
	var keep []string
	for l := range strings.SplitSeq(log, "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep[max(0, len(keep)-n):], "\n")
}

// deliver puts a new message into user's INBOX.
func (e *rsEnv) deliver(user, what string) {
	e.mu.Lock()
	e.msgN++
	n := e.msgN
	subject := fmt.Sprintf("%s %s #%d", user, what, n)
	e.mail[user] = append(e.mail[user], subject)
	e.mu.Unlock()
	e.dc.Deliver(e.t, user, "INBOX", message(n, subject, "x"))
}

// addContact has the user's writer device add a contact.
func (e *rsEnv) addContact(user, what string) {
	e.mu.Lock()
	name := fmt.Sprintf("%s %s contact %d", user, what, len(e.contacts[user]))
	e.contacts[user] = append(e.contacts[user], name)
	e.mu.Unlock()
	for _, d := range e.devs {
		if d.user == user && d.writer {
			d.adds <- name
			return
		}
	}
	e.t.Fatalf("user %s has no writer device", user)
}

// parked counts the requests parked on both instances.
func (e *rsEnv) parked() int64 { return e.inst[0].h.Parked() + e.inst[1].h.Parked() }

// longPolls counts the devices that park their requests.
func (e *rsEnv) longPolls() int64 {
	n := int64(0)
	for _, d := range e.devs {
		if d.kind != kindPoll {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds, at most restartRecover; lagging
// describes what is missing for the failure message.
func (e *rsEnv) waitFor(what string, cond func() bool, lagging func() string) time.Duration {
	e.t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > restartRecover {
			e.t.Fatalf("%s: not within %v: %s\nstatuses so far: %s", what, restartRecover, lagging(), e.stats.statusList())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// recovered waits until every long poll is parked again, both buses
// listen, and each instance has an IMAP watcher logged in for every user
// with a long poll on it.
func (e *rsEnv) recovered() time.Duration {
	want := e.longPolls()
	var watched [2]map[string]bool
	for i := range watched {
		watched[i] = map[string]bool{}
	}
	for _, d := range e.devs {
		if d.kind != kindPoll {
			watched[d.inst][d.user] = true
		}
	}
	state := func() (ok bool, desc string) {
		ok = e.parked() == want
		desc = fmt.Sprintf("%d of %d parked", e.parked(), want)
		for i, in := range e.inst {
			w := in.be.WatchStats().Connections
			ok = ok && in.bus.Connected() && w >= len(watched[i])
			desc += fmt.Sprintf("; instance %d: bus connected %v, %d of %d watchers", i, in.bus.Connected(), w, len(watched[i]))
		}
		return ok, desc
	}
	return e.waitFor("every device parked again, the buses listening, the watchers logged in",
		func() bool { ok, _ := state(); return ok }, func() string { _, desc := state(); return desc })
}

// lagging lists devices missing what they should hold (at most 10).
func (e *rsEnv) lagging(contacts bool) string {
	var out []string
	for _, d := range e.devs {
		if miss := d.missing(contacts); len(miss) > 0 && len(out) < 10 {
			out = append(out, fmt.Sprintf("%s/%s (%v) lacks %q", d.user, d.id, d.kind, miss))
		}
	}
	return strings.Join(out, "; ")
}

// pushStep runs one change per user (a contact, or a message) and waits
// until every device holds it; every parked device must have been woken
// (a Ping answered 2, a parked Sync answered with items).
func (e *rsEnv) pushStep(phase string, contacts bool) time.Duration {
	e.t.Helper()
	e.recovered()
	before := map[*rsDevice]int{}
	for _, d := range e.devs {
		before[d] = d.woken()
	}
	for _, u := range e.users {
		if contacts {
			e.addContact(u, phase)
		} else {
			e.deliver(u, phase)
		}
	}
	what := "every device has the new message"
	if contacts {
		what = "every contacts device has the new contact"
	}
	took := e.waitFor(what, func() bool { return e.lagging(contacts) == "" }, func() string { return e.lagging(contacts) })
	for _, d := range e.devs {
		if d.kind != kindPoll && (!contacts || d.contacts != nil) && !d.writer && d.woken() == before[d] {
			e.t.Errorf("%s: %s/%s (%v) got the change without being woken", phase, d.user, d.id, d.kind)
		}
	}
	return took
}

// TestRestartServicesUnderLoad (issue #9): PostgreSQL restarted (fast
// shutdown), crashed (immediate shutdown, crash recovery) and Dovecot
// restarted while 100 phones sync and push, on two easd instances
// sharing the database (its change bus between them) and the IMAP
// server. Each phase starts changes (mail, contacts) just before the
// fault, so requests are in flight when it hits. After each, every phone
// must be parked again, and a new contact and then a new message per
// user must reach every phone, by push for the parked ones (their
// heartbeat is 300 s, the bound 60 s), on the same key lineage: no
// SyncKey 0 after the initial sync, no status 3, 9, 12 (Ping 7), no
// status 110 or HTTP 500 (which tell a phone not to retry). At the end
// every phone holds exactly its user's items.
func TestRestartServicesUnderLoad(t *testing.T) {
	e := newRestartEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	// Setup: three messages each, every device provisioned, its folders
	// and collections synced.
	e.stats.begin("setup")
	for _, u := range e.users {
		for i := range 3 {
			e.deliver(u, fmt.Sprintf("initial %d", i))
		}
	}
	for i := range restartUsers * restartDevicesPerUser {
		e.devs = append(e.devs, e.newDevice(e.users[i/restartDevicesPerUser], i%restartDevicesPerUser))
	}
	errs := make(chan error, len(e.devs))
	for _, d := range e.devs {
		wg.Go(func() { errs <- d.setup(ctx) })
	}
	for range e.devs {
		if err := <-errs; err != nil {
			t.Fatalf("setup: %v", err)
		}
	}
	for _, d := range e.devs {
		wg.Go(func() { d.run(ctx) })
	}
	e.recovered()
	e.stats.end()

	type phase struct {
		name  string
		fault func() error
	}
	outage := func(stop, start func() error) func() error {
		return func() error {
			if err := stop(); err != nil {
				return err
			}
			time.Sleep(restartOutage)
			return start()
		}
	}
	phases := []phase{
		{"A: PostgreSQL fast restart", outage(func() error { return e.pg.Stop(testenv.PGFast) }, e.pg.Start)},
		{"B: PostgreSQL crash (immediate) and recovery", outage(func() error { return e.pg.Stop(testenv.PGImmediate) }, e.pg.Start)},
		{"C: Dovecot restart", outage(e.dc.Stop, e.dc.Start)},
	}
	for pi, p := range phases {
		e.stats.begin(p.name)
		start := time.Now()
		// Traffic as the fault hits: new mail for half the users and a
		// contact for the others; Dovecot tells IDLE 0.5 s after a
		// change, so the pushes and Syncs are under way at 0.6 s.
		for i, u := range e.users {
			if i%2 == pi%2 {
				e.deliver(u, "in fault "+p.name[:1])
			} else {
				e.addContact(u, "in fault "+p.name[:1])
			}
		}
		time.Sleep(600 * time.Millisecond)
		ft := time.Now()
		if err := p.fault(); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		faultTook := time.Since(ft)
		rec := e.recovered()
		contactsTook := e.pushStep(p.name[:1], true)
		mailTook := e.pushStep(p.name[:1], false)
		e.stats.end()
		t.Logf("%s: fault %v, all parked and watching again %v later, contact pushed to all in %v, message in %v; phase %v",
			p.name, faultTook.Round(time.Millisecond), rec.Round(time.Millisecond), contactsTook.Round(time.Millisecond),
			mailTook.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}

	// Every device holds exactly its user's messages (and contacts).
	items, lost, dups := 0, 0, 0
	for _, d := range e.devs {
		i, l, du, detail := d.tally()
		items, lost, dups = items+i, lost+l, dups+du
		if detail != "" {
			t.Errorf("%s/%s: %s", d.user, d.id, detail)
		}
	}
	cancel()
	wg.Wait()
	t.Logf("%d devices (%d users × %d; %d parked), %d faults; items checked %d, lost %d, duplicated %d",
		len(e.devs), restartUsers, restartDevicesPerUser, e.longPolls(), len(phases), items, lost, dups)
	t.Log(e.stats.report())
	for _, v := range e.stats.violationList() {
		t.Error(v)
	}
}

// lostStates is a store whose next PutSyncState of one collection fails,
// as when the database goes away between a command's own writes and the
// save of the state that answers it.
type lostStates struct {
	*sqlite.Store
	mu   sync.Mutex
	coll string // fail the next save of this collection; "" none
}

func (s *lostStates) PutSyncState(ctx context.Context, st store.SyncState) error {
	s.mu.Lock()
	fail := s.coll != "" && st.Collection == s.coll
	if fail {
		s.coll = ""
	}
	s.mu.Unlock()
	if fail {
		return errors.New("put sync state: unexpected EOF (injected: the database went away)")
	}
	return s.Store.PutSyncState(ctx, st)
}

// TestRestartPIMAddRetriedAfterLostState: a contact Add whose item was
// written but whose state was not (the database went away in between)
// is retried by the phone with the same key and ClientId; the server must
// not make a second contact.
func TestRestartPIMAddRetriedAfterLostState(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, testenv.SQLitePath(t), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hash, err := passwd.Hash("alice-pw", passwd.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.CreateUser(ctx, "alice", hash)
	if err != nil {
		t.Fatal(err)
	}
	ls := &lostStates{Store: st}
	h := eas.NewHandler(eas.Config{Domain: "example.test"}, eas.Deps{Store: ls, Auth: eas.LocalAuth{Users: st},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Items: st, Codecs: eas.DefaultCodecs()})
	srv := httptest.NewServer(h)
	t.Cleanup(func() { h.Drain(); srv.Close() })
	phone := func(id string) (*client.Client, string, string) {
		c, err := client.New(client.Config{URL: srv.URL, User: "alice", Password: "alice-pw", DeviceID: id, DeviceType: "iPhone", Version: "14.1"})
		if err != nil {
			t.Fatal(err)
		}
		fs, _ := folders(t, c)
		coll := fs["Contacts"].ServerID
		key, err := c.SyncAll(ctx, coll, client.SyncOptions{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c, coll, key
	}
	c, coll, key := phone("PIMRETRYA")
	other, otherColl, otherKey := phone("PIMRETRYB")

	ls.mu.Lock()
	ls.coll = coll
	ls.mu.Unlock()
	add := client.SyncRequest{Collections: []client.SyncCollection{{SyncKey: key, CollectionID: coll, GetChanges: new(true),
		Adds: []client.SyncAdd{{ClientID: "c1", ApplicationData: wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.ContactsFileAs, "Once"))}}}}}
	if r, err := c.Sync(ctx, add); err == nil {
		t.Fatalf("Sync with the state's save failing: %+v, no error", r)
	}
	// The phone sends the same request again.
	r, err := c.Sync(ctx, add)
	if err != nil || r.Collection(coll) == nil || r.Collection(coll).Status != 1 || len(r.Collection(coll).Responses) != 1 {
		t.Fatalf("retried Add: %+v, %v", r, err)
	}
	cr := r.Collection(coll)
	next, err := c.Sync(ctx, client.SyncRequest{Collections: []client.SyncCollection{{SyncKey: cr.SyncKey, CollectionID: coll, GetChanges: new(true)}}})
	if err != nil {
		t.Fatal(err)
	}
	if nc := next.Collection(coll); nc != nil && len(nc.Adds) > 0 {
		t.Errorf("after the retried Add the device is sent %d Adds of its own contact (ServerIds %s, then %+v)", len(nc.Adds), cr.Responses[0].ServerID, nc.Adds)
	}
	// Another phone of the user gets the contact once.
	ob, err := other.Sync(ctx, client.SyncRequest{Collections: []client.SyncCollection{{SyncKey: otherKey, CollectionID: otherColl, GetChanges: new(true)}}})
	if err != nil || ob.Collection(otherColl) == nil {
		t.Fatalf("the other phone's Sync: %+v, %v", ob, err)
	}
	if adds := ob.Collection(otherColl).Adds; len(adds) != 1 {
		t.Errorf("the other phone got %d Adds for one contact added (and retried) by the first", len(adds))
	}
	colls, err := st.Collections(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, col := range colls {
		if col.Class == store.ClassContacts {
			chs, err := st.ItemChanges(ctx, col.ID, 0, 0)
			if err != nil || len(chs) != 1 {
				t.Errorf("contacts stored after one Add retried: %d, %v; want 1", len(chs), err)
			}
		}
	}
}
