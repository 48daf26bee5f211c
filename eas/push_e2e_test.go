package eas_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/easd/easd/eas"
	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/imapbridge"
	"github.com/easd/easd/internal/testenv"
	"github.com/easd/easd/store/postgres"
	"github.com/easd/easd/wbxml"
)

// newPushEnv is the mail environment with a real Postfix, heartbeats
// allowed from 1 s and a fast watcher sweep, so tests stay short.
func newPushEnv(t *testing.T, cfg eas.Config) *mailEnv {
	t.Helper()
	cfg.Domain = "example.test"
	if cfg.HeartbeatMin == 0 {
		cfg.HeartbeatMin = time.Second
	}
	return startMailEnvWith(t, true, cfg, imapbridge.BackendOptions{WatchSweep: 300 * time.Millisecond, WatchLinger: time.Second})
}

// pushPhone is a device of alice that ran FolderSync and synced its
// Inbox to the end.
type pushPhone struct {
	c       *client.Client
	folders map[string]client.Folder
	fkey    string // FolderSync key
	inbox   string
	key     string // Inbox sync key
	class   string // "Email" for 12.1, which names the class in Sync
}

func (e *mailEnv) pushPhone(device, devType, version string) *pushPhone {
	e.t.Helper()
	p := &pushPhone{c: e.phone("alice", device, devType, version)}
	p.folders, p.fkey = folders(e.t, p.c)
	p.inbox = p.folders["Inbox"].ServerID
	if version == "12.1" {
		p.class = "Email"
	}
	var err error
	p.key, err = p.c.SyncAll(context.Background(), p.inbox, client.SyncOptions{Class: p.class}, func(*client.SyncCollectionResponse) error { return nil })
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// sync takes the Inbox's changes and returns the collection response.
func (p *pushPhone) sync(t *testing.T) *client.SyncCollectionResponse {
	t.Helper()
	r, err := p.c.Sync(context.Background(), client.SyncRequest{Collections: []client.SyncCollection{{SyncKey: p.key, CollectionID: p.inbox, GetChanges: new(true), Options: &client.SyncOptions{Class: p.class}}}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Empty {
		return &client.SyncCollectionResponse{SyncKey: p.key, Status: 1}
	}
	cr := r.Collection(p.inbox)
	if cr == nil || cr.Status != 1 {
		t.Fatalf("Sync: %+v", r)
	}
	p.key = cr.SyncKey
	return cr
}

type pingResult struct {
	r   *client.PingResponse
	err error
}

// ping starts a Ping of the Inbox and returns its answer's channel.
func (p *pushPhone) ping(hb int) <-chan pingResult {
	ch := make(chan pingResult, 1)
	req := client.PingRequest{HeartbeatInterval: hb, Folders: []client.PingFolder{{ID: p.inbox, Class: "Email"}}}
	if hb == 0 {
		req = client.PingRequest{}
	}
	go func() {
		r, err := p.c.Ping(context.Background(), req)
		ch <- pingResult{r, err}
	}()
	return ch
}

// waitParked waits until n requests are parked.
func (e *mailEnv) waitParked(n int64) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.h.Parked() != n {
		if time.Now().After(deadline) {
			e.t.Fatalf("%d requests parked, want %d", e.h.Parked(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// answer waits for a Ping's answer, bounded.
func answer(t *testing.T, ch <-chan pingResult, within time.Duration) *client.PingResponse {
	t.Helper()
	select {
	case res := <-ch:
		var se *client.StatusError
		if res.err != nil && (res.r == nil || !errors.As(res.err, &se)) {
			t.Fatalf("Ping: %v", res.err)
		}
		return res.r
	case <-time.After(within):
		t.Fatalf("no Ping answer within %v", within)
	}
	return nil
}

func TestPushPingWakesDevices(t *testing.T) {
	e := newPushEnv(t, eas.Config{})
	a := e.pushPhone("IPHONEPUSH1", "iPhone", "14.1")
	b := e.pushPhone("ANDROIDPUSH2", "Android", "12.1")

	// A message delivered through the MTA wakes both, for the Inbox.
	pa, pb := a.ping(300), b.ping(300)
	e.waitParked(2)
	e.pf.Send(t, "bob@example.test", "alice@example.test", message(1, "pushed", "hello"))
	for _, c := range []struct {
		p  *pushPhone
		ch <-chan pingResult
	}{{a, pa}, {b, pb}} {
		r := answer(t, c.ch, 15*time.Second)
		if r.Status != client.PingChanges || !slices.Equal(r.Folders, []string{c.p.inbox}) {
			t.Fatalf("Ping after delivery: %+v, want status 2 for %s", r, c.p.inbox)
		}
		// What Ping reported is what Sync returns: the one message.
		if cr := c.p.sync(t); len(cr.Adds) != 1 || len(cr.Changes)+len(cr.Deletes) != 0 {
			t.Fatalf("Sync after the push: %d adds, %d changes, %d deletes; want 1 add", len(cr.Adds), len(cr.Changes), len(cr.Deletes))
		}
	}

	// A flag set by another IMAP client wakes both.
	pa, pb = a.ping(300), b.ping(300)
	e.waitParked(2)
	ic := e.imap("alice")
	if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := ic.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		p  *pushPhone
		ch <-chan pingResult
	}{{a, pa}, {b, pb}} {
		r := answer(t, c.ch, 15*time.Second)
		if r.Status != client.PingChanges {
			t.Fatalf("Ping after a flag change: %+v", r)
		}
		if cr := c.p.sync(t); len(cr.Changes) != 1 || len(cr.Adds) != 0 {
			t.Fatalf("Sync after the flag push: %d changes, %d adds; want 1 change", len(cr.Changes), len(cr.Adds))
		}
	}

	// A change that Sync would not show (a keyword of another client)
	// wakes nobody: no phantom push.
	pa = a.ping(2)
	e.waitParked(1)
	if err := ic.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{"$Junk"}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if r := answer(t, pa, 10*time.Second); r.Status != client.PingExpired {
		t.Fatalf("Ping after an invisible change: %+v, want status 1", r)
	}

	// A folder created elsewhere: status 7.
	pa, pb = a.ping(300), b.ping(300)
	e.waitParked(2)
	if err := ic.Create("Receipts", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan pingResult{pa, pb} {
		if r := answer(t, ch, 15*time.Second); r.Status != client.PingFolderSyncRequired {
			t.Fatalf("Ping after CREATE: %+v, want 7", r)
		}
	}
	// Until FolderSync catches up, Ping says 7 at once.
	if r := answer(t, a.ping(300), 5*time.Second); r.Status != client.PingFolderSyncRequired {
		t.Fatalf("Ping before FolderSync: %+v, want 7", r)
	}
	for _, p := range []*pushPhone{a, b} {
		if _, err := p.c.FolderSync(context.Background(), p.fkey); err != nil {
			t.Fatal(err)
		}
	}

	// A device changing a flag through Sync wakes the other device, not
	// itself.
	pb = b.ping(300)
	e.waitParked(1)
	unread := wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.EmailRead, "1"))
	r, err := a.c.Sync(context.Background(), client.SyncRequest{Collections: []client.SyncCollection{{SyncKey: a.key, CollectionID: a.inbox,
		Changes: []client.SyncChange{{ServerID: a.inbox + ":1", ApplicationData: unread}}}}})
	if err != nil || r.Collection(a.inbox) == nil || r.Collection(a.inbox).Status != 1 {
		t.Fatalf("Sync with a change: %+v, %v", r, err)
	}
	a.key = r.Collection(a.inbox).SyncKey
	if r := answer(t, pb, 15*time.Second); r.Status != client.PingChanges {
		t.Fatalf("the other device after a Sync change: %+v", r)
	}
	if cr := b.sync(t); len(cr.Changes) != 1 {
		t.Fatalf("the other device's Sync: %d changes, want 1", len(cr.Changes))
	}
	// The device that made the change has nothing new.
	if r := answer(t, a.ping(2), 10*time.Second); r.Status != client.PingExpired {
		t.Fatalf("the changing device's Ping: %+v, want 1", r)
	}
}

func TestPushPingParameters(t *testing.T) {
	e := newPushEnv(t, eas.Config{MaxPingFolders: 2, HoldLimits: map[string]time.Duration{"slowproxy": time.Second}})
	a := e.pushPhone("IPHONEPARAM", "iPhone", "14.1")
	ctx := context.Background()
	ping := func(c *client.Client, req client.PingRequest) *client.PingResponse {
		t.Helper()
		r, err := c.Ping(ctx, req)
		var se *client.StatusError
		if err != nil && !errors.As(err, &se) {
			t.Fatal(err)
		}
		return r
	}
	inbox := []client.PingFolder{{ID: a.inbox, Class: "Email"}}

	// No cached parameters yet: an empty Ping gets 3.
	if r := ping(a.c, client.PingRequest{}); r.Status != client.PingMissingParameters {
		t.Errorf("empty first Ping: %+v, want 3", r)
	}
	// Intervals out of bounds: 5 with the bound.
	if r := ping(a.c, client.PingRequest{HeartbeatInterval: 4000, Folders: inbox}); r.Status != client.PingBadHeartbeat || r.HeartbeatInterval != 3540 {
		t.Errorf("Ping 4000 s: %+v, want 5 with 3540", r)
	}
	// Too many folders: 6 with the limit.
	three := []client.PingFolder{{ID: a.inbox, Class: "Email"}, {ID: a.folders["Sent"].ServerID, Class: "Email"}, {ID: a.folders["Trash"].ServerID, Class: "Email"}}
	if r := ping(a.c, client.PingRequest{HeartbeatInterval: 60, Folders: three}); r.Status != client.PingTooManyFolders || r.MaxFolders != 2 {
		t.Errorf("Ping of 3 folders: %+v, want 6 with 2", r)
	}
	// An unknown class: 4.
	if r := ping(a.c, client.PingRequest{HeartbeatInterval: 60, Folders: []client.PingFolder{{ID: a.inbox, Class: "Fax"}}}); r.Status != client.PingSyntaxError {
		t.Errorf("Ping of class Fax: %+v, want 4", r)
	}
	// An unknown folder: 7.
	if r := ping(a.c, client.PingRequest{HeartbeatInterval: 60, Folders: []client.PingFolder{{ID: "999", Class: "Email"}}}); r.Status != client.PingFolderSyncRequired {
		t.Errorf("Ping of folder 999: %+v, want 7", r)
	}
	// The heartbeat runs out: 1.
	start := time.Now()
	if r := ping(a.c, client.PingRequest{HeartbeatInterval: 1, Folders: inbox}); r.Status != client.PingExpired || time.Since(start) < 900*time.Millisecond {
		t.Errorf("Ping of 1 s: %+v after %v, want 1 after 1 s", r, time.Since(start))
	}
	// An empty Ping reuses them: it parks, and a second Ping from the
	// same device ends the first.
	first := a.ping(0)
	e.waitParked(1)
	second := a.ping(300)
	if r := answer(t, first, 5*time.Second); r.Status != client.PingExpired {
		t.Errorf("superseded Ping: %+v, want 1", r)
	}
	e.waitParked(1)
	// Shutdown answers the parked Ping.
	e.h.Drain()
	if r := answer(t, second, 5*time.Second); r.Status != client.PingExpired {
		t.Errorf("Ping at shutdown: %+v, want 1", r)
	}

	// A device type with a hold limit is answered within it.
	e2 := newPushEnv(t, eas.Config{MaxParked: 1, HoldLimits: map[string]time.Duration{"slowproxy": time.Second}})
	slow := e2.pushPhone("SLOW1", "SlowProxy", "14.1")
	start = time.Now()
	if r := answer(t, slow.ping(300), 10*time.Second); r.Status != client.PingExpired || time.Since(start) > 5*time.Second {
		t.Errorf("held Ping of a capped device type: %+v after %v", r, time.Since(start))
	}
	// Past MaxParked: 503 with Retry-After.
	other := e2.pushPhone("OTHER1", "iPhone", "14.1")
	held := other.ping(300)
	e2.waitParked(1)
	_, err := slow.c.Ping(ctx, client.PingRequest{HeartbeatInterval: 300, Folders: []client.PingFolder{{ID: slow.inbox, Class: "Email"}}})
	var he *client.HTTPError
	if !errors.As(err, &he) || he.Status != 503 || he.Header.Get("Retry-After") == "" {
		t.Errorf("Ping past MaxParked: %v, want HTTP 503 with Retry-After", err)
	}
	e2.h.Drain()
	answer(t, held, 5*time.Second)
}

func TestPushPingAcrossRestart(t *testing.T) {
	e := newPushEnv(t, eas.Config{})
	a := e.pushPhone("IPHONERESTART", "iPhone", "14.1")
	p := a.ping(300)
	e.waitParked(1)
	e.restart() // drains: the parked Ping is answered
	if r := answer(t, p, 5*time.Second); r.Status != client.PingExpired {
		t.Fatalf("Ping at shutdown: %+v", r)
	}
	// The new server knows the parameters (an empty Ping parks) and the
	// keys: a new message wakes it, and Sync continues from the old key.
	a.c = e.phone("alice", "IPHONERESTART", "iPhone", "14.1") // the new address
	p = a.ping(0)
	e.waitParked(1)
	e.dc.Deliver(t, "alice", "INBOX", message(2, "after restart", "x"))
	if r := answer(t, p, 15*time.Second); r.Status != client.PingChanges {
		t.Fatalf("Ping after restart: %+v", r)
	}
	if cr := a.sync(t); len(cr.Adds) != 1 {
		t.Fatalf("Sync after restart: %d adds, want 1", len(cr.Adds))
	}
}

func TestPushSyncWait(t *testing.T) {
	e := newPushEnv(t, eas.Config{})
	a := e.pushPhone("IPHONEWAIT", "iPhone", "14.1")
	ctx := context.Background()
	coll := func() []client.SyncCollection {
		return []client.SyncCollection{{SyncKey: a.key, CollectionID: a.inbox, GetChanges: new(true)}}
	}
	// Out of bounds: 14 with the limit; both Wait and HeartbeatInterval: 4.
	r, err := a.c.Sync(ctx, client.SyncRequest{Collections: coll(), Wait: 60})
	if r == nil || r.Limit != "59" {
		t.Errorf("Wait 60: %+v, %v; want status 14, Limit 59", r, err)
	}
	r, err = a.c.Sync(ctx, client.SyncRequest{Collections: coll(), Wait: 1, HeartbeatInterval: 60})
	var se *client.StatusError
	if !errors.As(err, &se) || se.Status != 4 {
		t.Errorf("Wait and HeartbeatInterval: %+v, %v; want status 4", r, err)
	}

	// Nothing changes: an empty response once the interval ends.
	start := time.Now()
	r, err = a.c.Sync(ctx, client.SyncRequest{Collections: coll(), HeartbeatInterval: 1})
	if err != nil || !r.Empty || time.Since(start) < 900*time.Millisecond {
		t.Fatalf("held Sync without changes: %+v, %v after %v; want empty after 1 s", r, err, time.Since(start))
	}
	// A message arriving while held is answered at once, in full.
	done := make(chan *client.SyncResponse, 1)
	go func() {
		r, err := a.c.Sync(ctx, client.SyncRequest{Collections: coll(), HeartbeatInterval: 300})
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	e.waitParked(1)
	e.dc.Deliver(t, "alice", "INBOX", message(3, "while held", "x"))
	select {
	case r := <-done:
		cr := r.Collection(a.inbox)
		if cr == nil || len(cr.Adds) != 1 {
			t.Fatalf("held Sync after a delivery: %+v", r)
		}
		a.key = cr.SyncKey
	case <-time.After(15 * time.Second):
		t.Fatal("held Sync not answered after a delivery")
	}

	// An empty request is the last one again (held 300 s, so it parks):
	// the device's new message answers it from the newest key.
	done = make(chan *client.SyncResponse, 1)
	go func() {
		r, err := a.c.Sync(ctx, client.SyncRequest{})
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	e.waitParked(1)
	e.dc.Deliver(t, "alice", "INBOX", message(4, "empty request", "x"))
	select {
	case r := <-done:
		cr := r.Collection(a.inbox)
		if cr == nil || len(cr.Adds) != 1 {
			t.Fatalf("empty Sync after a delivery: %+v", r)
		}
		a.key = cr.SyncKey
	case <-time.After(15 * time.Second):
		t.Fatal("empty Sync not answered after a delivery")
	}
	// A partial request with a short interval: the cached collection,
	// nothing new, an empty answer.
	r, err = a.c.Sync(ctx, client.SyncRequest{Partial: true, HeartbeatInterval: 1})
	if err != nil || !r.Empty {
		t.Fatalf("partial Sync: %+v, %v; want empty", r, err)
	}
	// Another device without a cached request: 13.
	b := e.phone("alice", "FRESHDEV", "iPhone", "14.1")
	if _, err := b.Sync(ctx, client.SyncRequest{}); !errors.As(err, &se) || se.Status != 13 {
		t.Errorf("empty Sync without a cached one: %v, want status 13", err)
	}
}

// noWatch hides the mail backend's MailWatcher: an instance built on it
// hears of changes only through the bus (and a slow poll).
type noWatch struct{ eas.MailBackend }

func TestPushTwoInstances(t *testing.T) {
	e := newPushEnv(t, eas.Config{})
	ctx := t.Context()
	pg, err := postgres.Open(ctx, testenv.PostgresURL(t), postgres.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	// Two instances on one database, each with its own bus; the second
	// does not watch IMAP, so only the first's notices can wake it.
	start := func(mail eas.MailBackend) (*eas.Handler, *httptest.Server) {
		deps := e.deps
		deps.Store, deps.Mail = pg, mail
		auth := deps.Auth.(eas.PassThroughAuth)
		auth.Users = pg
		deps.Auth = auth
		bus := pg.NewBus(deps.Logger)
		deps.Bus = bus
		h := eas.NewHandler(eas.Config{Domain: "example.test", HeartbeatMin: time.Second}, deps)
		lctx, cancel := context.WithCancel(ctx)
		go h.ListenBus(lctx)
		srv := httptest.NewServer(h)
		t.Cleanup(func() { h.Drain(); srv.Close(); cancel() })
		deadline := time.Now().Add(10 * time.Second)
		for !bus.Connected() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		return h, srv
	}
	_, srv1 := start(e.deps.Mail)
	h2, srv2 := start(noWatch{e.deps.Mail})
	phoneAt := func(srv *httptest.Server, device string) *pushPhone {
		c, err := client.New(client.Config{URL: srv.URL, User: "alice", Password: mailUsers["alice"], DeviceID: device, DeviceType: "iPhone", Version: "14.1"})
		if err != nil {
			t.Fatal(err)
		}
		p := &pushPhone{c: c}
		p.folders, p.fkey = folders(t, c)
		p.inbox = p.folders["Inbox"].ServerID
		if p.key, err = c.SyncAll(ctx, p.inbox, client.SyncOptions{}, func(*client.SyncCollectionResponse) error { return nil }); err != nil {
			t.Fatal(err)
		}
		return p
	}
	e.dc.Deliver(t, "alice", "INBOX", message(1, "one", "x"))
	a := phoneAt(srv1, "DEVONE")
	b := phoneAt(srv2, "DEVTWO")
	parked := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for h2.Parked() != 1 {
			if time.Now().After(deadline) {
				t.Fatal("the device on instance 2 is not parked")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// A change written through instance 1 wakes the device on instance 2.
	pb := b.ping(300)
	parked()
	read := wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.EmailRead, "1"))
	r, err := a.c.Sync(ctx, client.SyncRequest{Collections: []client.SyncCollection{{SyncKey: a.key, CollectionID: a.inbox,
		Changes: []client.SyncChange{{ServerID: a.inbox + ":1", ApplicationData: read}}}}})
	if err != nil || r.Collection(a.inbox) == nil || r.Collection(a.inbox).Status != 1 {
		t.Fatalf("Sync with a change on instance 1: %+v, %v", r, err)
	}
	if r := answer(t, pb, 10*time.Second); r.Status != client.PingChanges || !slices.Equal(r.Folders, []string{b.inbox}) {
		t.Fatalf("Ping on instance 2: %+v, want 2 for the Inbox", r)
	}
	if cr := b.sync(t); len(cr.Changes) != 1 {
		t.Fatalf("Sync on instance 2: %d changes, want 1", len(cr.Changes))
	}

	// A folder created through instance 1: status 7 on instance 2.
	pb = b.ping(300)
	parked()
	if _, _, err := a.c.FolderCreate(ctx, a.fkey, "0", "Projects", 12); err != nil {
		t.Fatal(err)
	}
	if r := answer(t, pb, 10*time.Second); r.Status != client.PingFolderSyncRequired {
		t.Fatalf("Ping on instance 2 after FolderCreate: %+v, want 7", r)
	}
}
