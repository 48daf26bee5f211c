package eas_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/easd/easd/eas"
	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/eas/notes"
	"github.com/easd/easd/imapbridge"
	"github.com/easd/easd/store"
	"github.com/easd/easd/wbxml"
)

// brokenNotes is the notes codec, except that it panics rendering an
// item whose text holds "PANIC" and fails one holding "FAIL": a stand-in
// for a codec bug met by one stored item.
type brokenNotes struct{ notes.Codec }

func (c brokenNotes) Render(stored []byte, o item.Options) (*wbxml.Node, error) {
	switch {
	case bytes.Contains(stored, []byte("PANIC")):
		panic("brokenNotes: cannot render this one")
	case bytes.Contains(stored, []byte("FAIL")):
		return nil, errors.New("brokenNotes: cannot render this one")
	}
	return c.Codec.Render(stored, o)
}

// newQuarantineEnv is the mail environment over the real Dovecot with
// the notes class served by brokenNotes, heartbeats from 1 s.
func newQuarantineEnv(t *testing.T) *mailEnv {
	t.Helper()
	e := startMailEnvWith(t, false, eas.Config{Domain: "example.test", HeartbeatMin: time.Second}, imapbridge.BackendOptions{})
	e.deps.Items, e.deps.Codecs = e.st, map[string]item.Codec{store.ClassNotes: brokenNotes{}}
	e.serve()
	return e
}

// breakMessage makes the Inbox message with Message-ID <m{i}@...>
// unreadable to Dovecot's mail processes, once Dovecot has indexed it
// (its size is cached, as after an LMTP delivery), so that a FETCH of its
// body fails in Dovecot itself. It returns the message's UID and a
// function that repairs it.
func breakMessage(t *testing.T, e *mailEnv, i int) (uint32, func()) {
	t.Helper()
	c := e.imap("alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	sd, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: fmt.Sprintf("<m%d@example.test>", i)}}}, nil).Wait()
	if err != nil || len(sd.AllUIDs()) != 1 {
		t.Fatalf("finding message %d: %v %v", i, sd, err)
	}
	c.Logout()
	return uint32(sd.AllUIDs()[0]), breakFiles(t, e, func(raw []byte) bool {
		return bytes.Contains(raw, fmt.Appendf(nil, "Message-ID: <m%d@example.test>", i))
	})
}

// breakFiles makes the Inbox messages whose text match unreadable to
// Dovecot once it has indexed them (sizes cached), and returns a function
// that repairs them.
func breakFiles(t *testing.T, e *mailEnv, match func(raw []byte) bool) func() {
	t.Helper()
	c := e.imap("alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// Index every message (sizes cached, files moved to cur/).
	if _, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, RFC822Size: true}).Collect(); err != nil {
		t.Fatal(err)
	}
	c.Logout()
	var files []string
	for _, dir := range []string{"cur", "new"} {
		ents, _ := os.ReadDir(filepath.Join(e.dc.Maildir("alice"), dir))
		for _, ent := range ents {
			name := filepath.Join(e.dc.Maildir("alice"), dir, ent.Name())
			if raw, err := os.ReadFile(name); err == nil && match(raw) {
				files = append(files, name)
			}
		}
	}
	if len(files) == 0 {
		t.Fatal("no message file matches")
	}
	for _, f := range files {
		if err := os.Chmod(f, 0); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		for _, f := range files {
			if err := os.Chmod(f, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// entries returns the device's failed items by item ServerId.
func entries(t *testing.T, e *mailEnv, device string) map[string]eas.QuarantinedItem {
	t.Helper()
	u, err := e.st.User(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.st.Device(context.Background(), u.ID, device)
	if err != nil {
		t.Fatal(err)
	}
	l, err := eas.QuarantinedItems(context.Background(), e.st, u.ID, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]eas.QuarantinedItem{}
	for _, q := range l {
		m[q.Item] = q
	}
	return m
}

// TestQuarantineMail: one message of 20 that Dovecot cannot read does not
// stop the Inbox from syncing; after three strikes it is quarantined for
// the device and no longer fetched, announced or counted; once repaired,
// an administrator's resync of the Inbox brings it, without touching the
// device's other folder nor another device.
func TestQuarantineMail(t *testing.T) {
	e := newQuarantineEnv(t)
	ctx := context.Background()
	for i := range 20 {
		e.dc.Deliver(t, "alice", "", message(i, fmt.Sprintf("msg %d", i), "body"))
	}
	e.dc.Deliver(t, "alice", "Work", message(100, "work", "body"))
	other := e.pushPhone("IPHONE2", "iPhone", "14.1") // holds all 20 before the breakage
	badUID, repair := breakMessage(t, e, 7)

	c := e.phone("alice", "IPHONE1", "iPhone", "14.1")
	fs, _ := folders(t, c)
	inbox, work := fs["Inbox"].ServerID, fs["Work"].ServerID
	bad := fmt.Sprintf("%s:%d", inbox, badUID)
	key := syncOnce(t, c, client.SyncCollection{SyncKey: "0", CollectionID: inbox}).SyncKey
	workItems, workKey := syncAll(t, c, work, client.SyncOptions{})
	if len(workItems) != 1 {
		t.Fatalf("Work: %d items, want 1", len(workItems))
	}

	// The first Sync brings the 19 others; the key advances.
	r := syncOnce(t, c, client.SyncCollection{SyncKey: key, CollectionID: inbox})
	if r.Status != 1 || len(r.Adds) != 19 || r.MoreAvailable || r.SyncKey == key {
		t.Fatalf("first Sync: status %d, %d adds, more %v, key %s (was %s); want 1, 19, false, a new key", r.Status, len(r.Adds), r.MoreAvailable, r.SyncKey, key)
	}
	for _, a := range r.Adds {
		if a.ServerID == bad {
			t.Fatalf("the unreadable message %s was sent", bad)
		}
	}
	key = r.SyncKey
	q := entries(t, e, "IPHONE1")[bad]
	if q.Strikes != 1 || q.Quarantined() || !strings.Contains(q.Reason, "without the message") || q.Folder != "INBOX" || q.Collection != inbox {
		t.Fatalf("after the first Sync: %+v; want 1 strike with Dovecot's refusal as the reason", q)
	}
	// Two more Syncs try it again (strikes 2 and 3), with nothing to send.
	for strike := 2; strike <= 3; strike++ {
		r = syncOnce(t, c, client.SyncCollection{SyncKey: key, CollectionID: inbox})
		if r.Status != 1 || len(r.Adds) != 0 || r.MoreAvailable {
			t.Fatalf("Sync %d: status %d, %d adds, more %v", strike, r.Status, len(r.Adds), r.MoreAvailable)
		}
		key = r.SyncKey
		if q := entries(t, e, "IPHONE1")[bad]; q.Strikes != strike {
			t.Fatalf("after Sync %d: %+v", strike, q)
		}
	}
	q = entries(t, e, "IPHONE1")[bad]
	if !q.Quarantined() || q.First.After(q.Last) {
		t.Fatalf("after three strikes: %+v; want quarantined", q)
	}
	if !strings.Contains(e.logs.String(), "item quarantined for this device") {
		t.Error("the quarantine was not logged")
	}
	fetchFailures := strings.Count(e.dc.Log(), "FETCH failed")
	if fetchFailures == 0 {
		t.Fatalf("Dovecot logged no FETCH failure: the test does not break what it means to:\n%s", e.dc.Log())
	}

	// Quarantined: not tried again, not counted, on an unchanged folder
	// and on a changed one (a new message arrives and is sent alone).
	r = syncOnce(t, c, client.SyncCollection{SyncKey: key, CollectionID: inbox})
	if r.Status != 1 || r.SyncKey != key || len(r.Adds) != 0 || r.MoreAvailable {
		t.Fatalf("Sync after the quarantine: %+v; want the same key and nothing", r)
	}
	e.dc.Deliver(t, "alice", "", message(30, "new", "body"))
	r = syncOnce(t, c, client.SyncCollection{SyncKey: key, CollectionID: inbox})
	if r.Status != 1 || len(r.Adds) != 1 || r.Adds[0].ServerID == bad || r.MoreAvailable {
		t.Fatalf("Sync of a new message: %d adds, more %v; want the new one alone", len(r.Adds), r.MoreAvailable)
	}
	key = r.SyncKey
	if n := strings.Count(e.dc.Log(), "FETCH failed"); n != fetchFailures {
		t.Errorf("the quarantined message was fetched again: %d FETCH failures, then %d", fetchFailures, n)
	}
	if q := entries(t, e, "IPHONE1")[bad]; q.Strikes != 3 {
		t.Errorf("strikes after the quarantine: %+v", q)
	}

	// A change no Sync would show (another client's $Junk on a message
	// the device has) moves the folder's counters: Ping looks, and the
	// quarantined message does not make it answer "changed".
	ic := e.imap("alice")
	if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := ic.Store(imap.UIDSetNum(imap.UID(badUID+1)), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{"$Junk"}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	pr, err := c.Ping(ctx, client.PingRequest{HeartbeatInterval: 2, Folders: []client.PingFolder{{ID: inbox, Class: "Email"}}})
	if err != nil || pr.Status != 1 {
		t.Fatalf("Ping: %+v, %v; want status 1 (nothing changed)", pr, err)
	}

	// GetItemEstimate does not count it (an estimate that never reaches
	// 0 keeps a phone syncing); ItemOperations of it answers status 14
	// for that item (MS-ASCMD 2.2.3.177.8) instead of a 503 retried for
	// ever.
	est, err := c.GetItemEstimate(ctx, []client.EstimateRequest{{SyncKey: key, CollectionID: inbox, Class: "Email"}})
	if err != nil || len(est) != 1 || est[0].Status != 1 || est[0].Estimate != 0 {
		t.Errorf("GetItemEstimate with the message quarantined: %+v, %v; want status 1, estimate 0", est, err)
	}
	_, err = c.FetchItem(ctx, inbox, bad, client.FetchOptions{})
	if se := (*client.StatusError)(nil); !errors.As(err, &se) || se.Status != 14 {
		t.Errorf("ItemOperations Fetch of the unreadable message: %v; want status 14", err)
	}

	// Repaired and resynced: the Inbox starts over and brings it; the
	// device's Work key and the other device are untouched.
	repair()
	u, _ := e.st.User(ctx, "alice")
	dev, _ := e.st.Device(ctx, u.ID, "IPHONE1")
	res, err := eas.ResyncFolder(ctx, e.st, u, dev, "Inbox")
	if err != nil || res.ServerID != inbox || res.Key != key || res.Cleared != 1 {
		t.Fatalf("ResyncFolder: %+v, %v; want Inbox %s, key %s, 1 cleared", res, err, inbox, key)
	}
	if r := syncOnce(t, c, client.SyncCollection{SyncKey: key, CollectionID: inbox}); r.Status != 3 {
		t.Fatalf("Sync with the old key after the resync: status %d, want 3", r.Status)
	}
	if got := entries(t, e, "IPHONE1"); len(got) != 0 {
		t.Errorf("failed items after the resync: %+v", got)
	}
	syncOnce(t, c, client.SyncCollection{SyncKey: "0", CollectionID: inbox})
	items, _ := syncAll(t, c, inbox, client.SyncOptions{})
	if _, ok := items[bad]; !ok || len(items) != 21 {
		t.Errorf("after the resync: %d items, the repaired one there: %v; want 21 with it", len(items), ok)
	}
	if r := syncOnce(t, c, client.SyncCollection{SyncKey: workKey, CollectionID: work}); r.Status != 1 {
		t.Errorf("Work with its key after the Inbox's resync: status %d, want 1", r.Status)
	}
	if r := other.sync(t); len(r.Adds) != 1 {
		t.Errorf("the other device: %d adds, want the one new message", len(r.Adds))
	}
	if got := entries(t, e, "IPHONE2"); len(got) != 0 {
		t.Errorf("the other device has failed items: %+v", got)
	}
}

// TestQuarantineResyncCachedRequest: after a resync, a device that sends
// the empty Sync request (its cached one) hears of the reset too.
func TestQuarantineResyncCachedRequest(t *testing.T) {
	e := newQuarantineEnv(t)
	ctx := context.Background()
	e.dc.Deliver(t, "alice", "", message(1, "one", "body"))
	p := e.pushPhone("IPHONE1", "iPhone", "14.1")
	u, _ := e.st.User(ctx, "alice")
	dev, _ := e.st.Device(ctx, u.ID, "IPHONE1")
	res, err := eas.ResyncFolder(ctx, e.st, u, dev, p.inbox)
	if err != nil || res.Key != p.key || res.Name != "INBOX" {
		t.Fatalf("ResyncFolder by ServerId: %+v, %v", res, err)
	}
	r, err := p.c.Sync(ctx, client.SyncRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if cr := r.Collection(p.inbox); cr == nil || cr.Status != 3 {
		t.Fatalf("empty Sync after the resync: %+v; want the Inbox with status 3", r)
	}
	if _, err := eas.ResyncFolder(ctx, e.st, u, dev, "Nowhere"); !errors.Is(err, eas.ErrUnknownFolder) || !strings.Contains(err.Error(), "Inbox") {
		t.Errorf("unknown folder: %v; want ErrUnknownFolder listing the folders", err)
	}
}

// TestQuarantinePIM: a notes item whose codec panics and one whose codec
// fails are left out while the others sync, quarantined at the third
// strike, then neither tried nor counted (Ping) even when changed; a
// third one, repaired after its first failure, goes out at the next Sync.
func TestQuarantinePIM(t *testing.T) {
	e := newQuarantineEnv(t)
	ctx := context.Background()
	c := e.phone("alice", "IPHONE1", "iPhone", "14.1")
	fs, _ := folders(t, c)
	nf, ok := fs["Notes"]
	if !ok {
		t.Fatalf("no Notes folder: %+v", fs)
	}
	u, _ := e.st.User(ctx, "alice")
	cs, err := e.st.Collections(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	var coll int64
	for _, cl := range cs {
		if fmt.Sprintf("c%d", cl.ID) == nf.ServerID {
			coll = cl.ID
		}
	}
	put := func(id int64, uid, summary string) store.Item {
		data := []byte("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VJOURNAL\r\nUID:" + uid +
			"\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:" + summary + "\r\nDESCRIPTION:text\r\nEND:VJOURNAL\r\nEND:VCALENDAR\r\n")
		idx, err := notes.Codec{}.Index(data)
		if err != nil {
			t.Fatal(err)
		}
		it, err := e.st.PutItem(ctx, store.Item{ID: id, CollectionID: coll, UID: idx.UID, Data: data, Summary: idx.Summary})
		if err != nil {
			t.Fatal(err)
		}
		return it
	}
	put(0, "good1", "fine")
	panics := put(0, "bad1", "PANIC")
	fails := put(0, "bad2", "FAIL")
	put(0, "good2", "fine too")
	transient := put(0, "bad3", "FAIL for now")
	bad := []string{fmt.Sprintf("%s:%d", nf.ServerID, panics.ID), fmt.Sprintf("%s:%d", nf.ServerID, fails.ID)}

	key := syncOnce(t, c, client.SyncCollection{SyncKey: "0", CollectionID: nf.ServerID}).SyncKey
	r := syncOnce(t, c, client.SyncCollection{SyncKey: key, CollectionID: nf.ServerID})
	if r.Status != 1 || len(r.Adds) != 2 || r.MoreAvailable {
		t.Fatalf("first Sync: status %d, %d adds, more %v; want 1, the 2 good notes, no more", r.Status, len(r.Adds), r.MoreAvailable)
	}
	key = r.SyncKey
	// One of the three failed is repaired: the next Sync tries it again
	// and it goes out, its failure forgotten.
	put(transient.ID, "bad3", "repaired")
	for strike := 2; strike <= 4; strike++ {
		r = syncOnce(t, c, client.SyncCollection{SyncKey: key, CollectionID: nf.ServerID})
		wantAdds := 0
		if strike == 2 {
			wantAdds = 1
		}
		if r.Status != 1 || len(r.Adds) != wantAdds || r.MoreAvailable {
			t.Fatalf("Sync %d: status %d, %d adds, more %v; want 1, %d, false", strike, r.Status, len(r.Adds), r.MoreAvailable, wantAdds)
		}
		if wantAdds == 1 && r.Adds[0].ServerID != fmt.Sprintf("%s:%d", nf.ServerID, transient.ID) {
			t.Errorf("Sync 2 sent %s, want the repaired note", r.Adds[0].ServerID)
		}
		key = r.SyncKey
	}
	got := entries(t, e, "IPHONE1")
	if len(got) != 2 {
		t.Errorf("failed items: %+v; want the 2 broken notes only", got)
	}
	for _, id := range bad {
		if q := got[id]; !q.Quarantined() || q.Strikes != 3 || q.Folder != "Notes" {
			t.Errorf("%s: %+v; want quarantined after 3 strikes", id, q)
		}
	}
	if !strings.Contains(got[bad[0]].Reason, "panic") || !strings.Contains(got[bad[1]].Reason, "brokenNotes") {
		t.Errorf("reasons: %q, %q", got[bad[0]].Reason, got[bad[1]].Reason)
	}
	// Changed again, still broken: no Ping, no Sync command, no strike.
	put(panics.ID, "bad1", "PANIC again")
	pr, err := c.Ping(ctx, client.PingRequest{HeartbeatInterval: 1, Folders: []client.PingFolder{{ID: nf.ServerID, Class: "Notes"}}})
	if err != nil || pr.Status != 1 {
		t.Fatalf("Ping: %+v, %v; want status 1 (nothing changed)", pr, err)
	}
	r = syncOnce(t, c, client.SyncCollection{SyncKey: key, CollectionID: nf.ServerID})
	if r.Status != 1 || len(r.Adds)+len(r.Changes) != 0 || r.MoreAvailable {
		t.Fatalf("Sync after the change: %+v", r)
	}
	if q := entries(t, e, "IPHONE1")[bad[0]]; q.Strikes != 3 {
		t.Errorf("the quarantined item was tried again: %+v", q)
	}
	// Resync by ServerId: both forgotten, tried again from 0.
	dev, _ := e.st.Device(ctx, u.ID, "IPHONE1")
	res, err := eas.ResyncFolder(ctx, e.st, u, dev, nf.ServerID)
	if err != nil || res.Cleared != 2 || res.Name != "Notes" {
		t.Fatalf("ResyncFolder: %+v, %v", res, err)
	}
	if r := syncOnce(t, c, client.SyncCollection{SyncKey: key, CollectionID: nf.ServerID}); r.Status != 3 {
		t.Errorf("old key after the resync: status %d, want 3", r.Status)
	}
}

// TestQuarantineUpstreamFailing: when Dovecot refuses every message, new
// and old, the upstream is failing, not the messages: the Sync fails
// (503, retried by the phone) and no message gets a strike.
func TestQuarantineUpstreamFailing(t *testing.T) {
	e := newQuarantineEnv(t)
	for i := range 3 {
		e.dc.Deliver(t, "alice", "", message(i, "old", "body"))
	}
	p := e.pushPhone("IPHONE1", "iPhone", "14.1")
	for i := 10; i < 12; i++ {
		e.dc.Deliver(t, "alice", "", message(i, "new", "body"))
	}
	repair := breakFiles(t, e, func([]byte) bool { return true })
	_, err := p.c.Sync(context.Background(), client.SyncRequest{Collections: []client.SyncCollection{{SyncKey: p.key, CollectionID: p.inbox}}})
	var he *client.HTTPError
	if !errors.As(err, &he) || he.Status != 503 {
		t.Fatalf("Sync with every message unreadable: %v; want HTTP 503", err)
	}
	if got := entries(t, e, "IPHONE1"); len(got) != 0 {
		t.Errorf("strikes against messages while the upstream fails: %+v", got)
	}
	repair()
	if r := p.sync(t); len(r.Adds) != 2 {
		t.Errorf("after the repair: %d adds, want the 2 new messages", len(r.Adds))
	}
}

// readerBackend is the real backend whose message bodies, for chosen
// UIDs, panic when read (a conversion that panics) or fail (a read that
// fails, the connection's fault).
type readerBackend struct {
	eas.MailBackend
	panicUID, failUID atomic.Uint32
}

type panicReader struct{}

func (panicReader) Read([]byte) (int, error) { panic("conversion bug") }

func (b *readerBackend) Fetch(ctx context.Context, a eas.MailAccount, folder string, uids []uint32, fn func(eas.MailMeta, io.Reader) error) error {
	return b.MailBackend.Fetch(ctx, a, folder, uids, func(m eas.MailMeta, body io.Reader) error {
		switch m.UID {
		case b.panicUID.Load():
			return fn(m, panicReader{})
		case b.failUID.Load():
			return fn(m, iotest.ErrReader(errors.New("connection reset")))
		}
		return fn(m, body)
	})
}

// TestQuarantineConversionPanic: a conversion that panics is the
// message's failure (left out, a strike); a body that cannot be read is
// not (the Sync fails and is retried, no strike).
func TestQuarantineConversionPanic(t *testing.T) {
	e := newQuarantineEnv(t)
	for i := range 3 {
		e.dc.Deliver(t, "alice", "", message(i, "m", "body"))
	}
	rb := &readerBackend{MailBackend: e.deps.Mail}
	rb.panicUID.Store(2)
	e.deps.Mail = rb
	e.serve()
	c := e.phone("alice", "IPHONE1", "iPhone", "14.1")
	fs, _ := folders(t, c)
	inbox := fs["Inbox"].ServerID
	key := syncOnce(t, c, client.SyncCollection{SyncKey: "0", CollectionID: inbox}).SyncKey
	r := syncOnce(t, c, client.SyncCollection{SyncKey: key, CollectionID: inbox})
	if r.Status != 1 || len(r.Adds) != 2 || r.MoreAvailable {
		t.Fatalf("Sync: status %d, %d adds, more %v; want 1, 2, false", r.Status, len(r.Adds), r.MoreAvailable)
	}
	q := entries(t, e, "IPHONE1")[inbox+":2"]
	if q.Strikes != 1 || !strings.Contains(q.Reason, "panic converting message") {
		t.Fatalf("after the panic: %+v", q)
	}
	// Now message 2's body cannot be read: that is no conversion's fault.
	rb.panicUID.Store(0)
	rb.failUID.Store(2)
	_, err := c.Sync(context.Background(), client.SyncRequest{Collections: []client.SyncCollection{{SyncKey: r.SyncKey, CollectionID: inbox}}})
	var he *client.HTTPError
	if !errors.As(err, &he) || he.Status != 503 {
		t.Fatalf("Sync with an unreadable body: %v; want HTTP 503", err)
	}
	if q := entries(t, e, "IPHONE1")[inbox+":2"]; q.Strikes != 1 {
		t.Errorf("a failed read counted a strike: %+v", q)
	}
	rb.failUID.Store(0)
	if r := syncOnce(t, c, client.SyncCollection{SyncKey: r.SyncKey, CollectionID: inbox}); len(r.Adds) != 1 || r.Adds[0].ServerID != inbox+":2" {
		t.Errorf("once readable: %+v; want message 2", r.Adds)
	}
	if got := entries(t, e, "IPHONE1"); len(got) != 0 {
		t.Errorf("failed items after the message went out: %+v", got)
	}
}
