package eas_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/wbxml"
)

// syncAll runs a phone's initial sync of a folder and returns the items by
// ServerId, failing on a duplicate.
func syncAll(t testing.TB, c *client.Client, coll string, opts client.SyncOptions) (map[string]client.SyncItem, string) {
	t.Helper()
	items := map[string]client.SyncItem{}
	key, err := c.SyncAll(context.Background(), coll, opts, func(r *client.SyncCollectionResponse) error {
		for _, a := range r.Adds {
			if _, dup := items[a.ServerID]; dup {
				return fmt.Errorf("duplicate Add %s", a.ServerID)
			}
			items[a.ServerID] = a
		}
		if len(r.Changes)+len(r.Deletes)+len(r.SoftDeletes) > 0 {
			return fmt.Errorf("initial sync sent changes/deletes: %+v", r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return items, key
}

// syncOnce sends one Sync of one collection and checks its status.
func syncOnce(t testing.TB, c *client.Client, sc client.SyncCollection) *client.SyncCollectionResponse {
	t.Helper()
	resp, err := c.Sync(context.Background(), client.SyncRequest{Collections: []client.SyncCollection{sc}})
	if err != nil {
		t.Fatal(err)
	}
	r := resp.Collection(sc.CollectionID)
	if r == nil {
		t.Fatalf("no collection %s in %v", sc.CollectionID, resp.Raw)
	}
	return r
}

func ids(items []client.SyncItem) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.ServerID)
	}
	slices.Sort(out)
	return out
}

func TestMailSyncChanges(t *testing.T) {
	e := newMailEnv(t)
	for i := range 30 {
		e.dc.Deliver(t, "alice", "", message(i, fmt.Sprintf("msg %d", i), "body"))
	}
	c := e.phone("alice", "IPHONE1", "iPhone", "14.1")
	fs, _ := folders(t, c)
	inbox := fs["Inbox"].ServerID
	opts := client.SyncOptions{WindowSize: 7, BodyPreferences: []client.BodyPreference{{Type: 1, TruncationSize: 200}}}
	items, key := syncAll(t, c, inbox, opts)
	if len(items) != 30 {
		t.Fatalf("initial sync: %d items, want 30", len(items))
	}
	for id, it := range items {
		if !strings.HasPrefix(appText(it, wbxml.EmailSubject), "msg ") || appText(it, wbxml.EmailRead) != "0" {
			t.Errorf("item %s: subject %q read %q", id, appText(it, wbxml.EmailSubject), appText(it, wbxml.EmailRead))
		}
	}
	// Nothing changed: same key, no commands.
	r := syncOnce(t, c, client.SyncCollection{SyncKey: key, CollectionID: inbox, Options: &opts})
	if r.Status != 1 || r.ItemCount() != 0 || r.SyncKey != key {
		t.Fatalf("unchanged Sync: status %d, %d items, key %s (had %s)", r.Status, r.ItemCount(), r.SyncKey, key)
	}

	// Changes by another IMAP client: a flag, an expunge, a new message.
	ic := e.imap("alice")
	if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := ic.Store(imap.UIDSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen, imap.FlagFlagged}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := ic.Store(imap.UIDSetNum(5), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := ic.UIDExpunge(imap.UIDSetNum(5)).Close(); err != nil {
		t.Fatal(err)
	}
	newUID := appendMsg(t, ic, "INBOX", message(99, "late", "news"), time.Now())

	r = syncOnce(t, c, client.SyncCollection{SyncKey: key, CollectionID: inbox, Options: &opts})
	if r.Status != 1 {
		t.Fatalf("Sync status %d", r.Status)
	}
	if got := ids(r.Adds); !slices.Equal(got, []string{fmt.Sprintf("%s:%d", inbox, newUID)}) {
		t.Errorf("adds %v, want the new message %d", got, newUID)
	}
	if !slices.Equal(r.Deletes, []string{inbox + ":5"}) {
		t.Errorf("deletes %v, want %s:5", r.Deletes, inbox)
	}
	if len(r.Changes) != 1 || r.Changes[0].ServerID != inbox+":3" || appText(r.Changes[0], wbxml.EmailRead) != "1" ||
		r.Changes[0].ApplicationData.Path(wbxml.EmailFlag, wbxml.EmailFlagStatus).Text() != "2" {
		t.Errorf("changes %+v, want %s:3 read and flagged", r.Changes, inbox)
	}
	// A retry of the same key gets the same answer (MS-ASCMD 2.2.3.166.4).
	r2 := syncOnce(t, c, client.SyncCollection{SyncKey: key, CollectionID: inbox, Options: &opts})
	if r2.SyncKey != r.SyncKey || !slices.Equal(ids(r2.Adds), ids(r.Adds)) || !slices.Equal(r2.Deletes, r.Deletes) || !slices.Equal(ids(r2.Changes), ids(r.Changes)) {
		t.Errorf("retry answered key %s adds %v deletes %v changes %v; first: key %s adds %v deletes %v changes %v",
			r2.SyncKey, ids(r2.Adds), r2.Deletes, ids(r2.Changes), r.SyncKey, ids(r.Adds), r.Deletes, ids(r.Changes))
	}
	key = r.SyncKey

	// Client changes: mark read, flag with dates, categories, delete.
	read := wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.EmailRead, "1"))
	flag := wbxml.E(wbxml.AirSyncApplicationData, wbxml.E(wbxml.EmailFlag,
		wbxml.T(wbxml.EmailFlagStatus, "2"), wbxml.T(wbxml.EmailFlagType, "Flag for follow up"),
		wbxml.T(wbxml.TasksStartDate, "2026-11-26T00:00:00.000Z"), wbxml.T(wbxml.TasksUtcStartDate, "2026-11-26T00:00:00.000Z"),
		wbxml.T(wbxml.TasksDueDate, "2026-11-27T00:00:00.000Z"), wbxml.T(wbxml.TasksUtcDueDate, "2026-11-27T00:00:00.000Z")),
		wbxml.E(wbxml.EmailCategories, wbxml.T(wbxml.EmailCategory, "Blue category"), wbxml.T(wbxml.EmailCategory, "work")))
	r = syncOnce(t, c, client.SyncCollection{SyncKey: key, CollectionID: inbox, Options: &opts,
		Changes: []client.SyncChange{{ServerID: inbox + ":1", ApplicationData: read}, {ServerID: inbox + ":2", ApplicationData: flag}, {ServerID: inbox + ":4242", ApplicationData: read}},
		Deletes: []string{inbox + ":4"}})
	if r.Status != 1 || r.ItemCount() != 0 {
		t.Errorf("Sync with client changes: status %d, echoed %d items: %+v", r.Status, r.ItemCount(), r)
	}
	if len(r.Responses) != 1 || r.Responses[0].ServerID != inbox+":4242" || r.Responses[0].Status != 8 {
		t.Errorf("responses %+v, want status 8 for the unknown item only", r.Responses)
	}
	key = r.SyncKey
	// Upstream sees them; the delete went to Trash.
	if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	fl, err := ic.Fetch(imap.UIDSetNum(1, 2, 4), &imap.FetchOptions{Flags: true, UID: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	got := map[imap.UID][]imap.Flag{}
	for _, m := range fl {
		got[m.UID] = m.Flags
	}
	if !slices.Contains(got[1], imap.FlagSeen) || !slices.Contains(got[2], imap.FlagFlagged) || !slices.Contains(got[2], imap.Flag("work")) {
		t.Errorf("IMAP flags after client changes: %v", got)
	}
	if _, ok := got[4]; ok {
		t.Errorf("deleted message 4 still in INBOX")
	}
	trash, err := ic.Status("Trash", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *trash.NumMessages != 1 {
		t.Errorf("Trash holds %v messages (err %v), want 1", trash.NumMessages, err)
	}
	// Nothing echoed afterwards either; a second device sees the changes.
	r = syncOnce(t, c, client.SyncCollection{SyncKey: key, CollectionID: inbox, Options: &opts})
	if r.ItemCount() != 0 {
		t.Errorf("own changes echoed: %+v", r)
	}
	c2 := e.phone("alice", "ANDROID1", "Android", "14.0")
	fs2, _ := folders(t, c2)
	items2, _ := syncAll(t, c2, fs2["Inbox"].ServerID, opts)
	it := items2[inbox+":2"]
	if it.ApplicationData == nil {
		t.Fatalf("second device lacks %s:2", inbox)
	}
	if due := it.ApplicationData.Path(wbxml.EmailFlag, wbxml.TasksDueDate).Text(); due != "2026-11-27T00:00:00.000Z" {
		t.Errorf("flag due date on second device %q", due)
	}
	var cats []string
	for c := range it.ApplicationData.Child(wbxml.EmailCategories).Each(wbxml.EmailCategory) {
		cats = append(cats, c.Text())
	}
	if !slices.Equal(cats, []string{"Blue category", "work"}) {
		t.Errorf("categories on second device %v", cats)
	}
	if _, ok := items2[inbox+":4"]; ok || len(items2) != 29 {
		t.Errorf("second device has %d items (deleted one present: %v)", len(items2), ok)
	}

	// Unknown key: status 3.
	r = syncOnce(t, c, client.SyncCollection{SyncKey: "nope-7", CollectionID: inbox})
	if r.Status != 3 {
		t.Errorf("unknown key: status %d, want 3", r.Status)
	}
}

func TestMailSyncFilterAndEstimate(t *testing.T) {
	e := newMailEnv(t)
	ic := e.imap("alice")
	now := time.Now()
	for i := range 10 {
		appendMsg(t, ic, "INBOX", message(i, "old", "x"), now.Add(-60*24*time.Hour))
	}
	for i := range 5 {
		appendMsg(t, ic, "INBOX", message(i, "new", "x"), now.Add(-time.Hour))
	}
	c := e.phone("alice", "ANDROID1", "Android", "14.1")
	fs, _ := folders(t, c)
	inbox := fs["Inbox"].ServerID
	est, err := c.GetItemEstimate(context.Background(), []client.EstimateRequest{{CollectionID: inbox, SyncKey: "0", FilterType: "3"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(est) != 1 || est[0].Status != 1 || est[0].Estimate != 5 {
		t.Errorf("estimate %+v, want 5", est)
	}
	items, key := syncAll(t, c, inbox, client.SyncOptions{FilterType: "3"})
	if len(items) != 5 {
		t.Errorf("one-week window: %d items, want 5", len(items))
	}
	est, err = c.GetItemEstimate(context.Background(), []client.EstimateRequest{{CollectionID: inbox, SyncKey: key, FilterType: "3"}})
	if err != nil || est[0].Estimate != 0 {
		t.Errorf("estimate after sync: %+v %v", est, err)
	}
	// Widening the window to all adds the old ones; narrowing soft-deletes.
	r := syncOnce(t, c, client.SyncCollection{SyncKey: key, CollectionID: inbox, Options: &client.SyncOptions{FilterType: "0"}})
	if len(r.Adds) != 10 {
		t.Errorf("window widened: %d adds, want 10", len(r.Adds))
	}
	r = syncOnce(t, c, client.SyncCollection{SyncKey: r.SyncKey, CollectionID: inbox, Options: &client.SyncOptions{FilterType: "3"}})
	if len(r.SoftDeletes) != 10 || len(r.Deletes) != 0 {
		t.Errorf("window narrowed: %d soft deletes, %d deletes; want 10, 0", len(r.SoftDeletes), len(r.Deletes))
	}
	est, err = c.GetItemEstimate(context.Background(), []client.EstimateRequest{{CollectionID: "999", SyncKey: "0"}})
	if err != nil || est[0].Status != 2 {
		t.Errorf("estimate of an unknown collection: %+v %v, want status 2", est, err)
	}
}

func TestMailSyncUIDValidityReset(t *testing.T) {
	e := newMailEnv(t)
	ic := e.imap("alice")
	if err := ic.Create("Lists", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		appendMsg(t, ic, "Lists", message(i, "list", "x"), time.Now())
	}
	c := e.phone("alice", "IPHONE1", "iPhone", "14.1")
	fs, fkey := folders(t, c)
	lists := fs["Lists"].ServerID
	items, key := syncAll(t, c, lists, client.SyncOptions{})
	if len(items) != 3 {
		t.Fatalf("%d items", len(items))
	}
	// Recreated upstream with other messages: same name, new UIDVALIDITY.
	if err := ic.Delete("Lists").Wait(); err != nil {
		t.Fatal(err)
	}
	// Dovecot draws UIDVALIDITY from the clock: a new second, a new value.
	time.Sleep(1100 * time.Millisecond)
	if err := ic.Create("Lists", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		appendMsg(t, ic, "Lists", message(10+i, "other", "x"), time.Now())
	}
	fc, err := c.FolderSync(context.Background(), fkey)
	if err != nil {
		t.Fatal(err)
	}
	_ = fc
	r := syncOnce(t, c, client.SyncCollection{SyncKey: key, CollectionID: lists})
	if r.Status != 3 {
		t.Fatalf("after UIDVALIDITY change: status %d, want 3", r.Status)
	}
	items, _ = syncAll(t, c, lists, client.SyncOptions{})
	for _, it := range items {
		if appText(it, wbxml.EmailSubject) != "other" {
			t.Errorf("stale message after reset: %q", appText(it, wbxml.EmailSubject))
		}
	}
	if len(items) != 2 {
		t.Errorf("after reset: %d items, want 2", len(items))
	}
}

func TestMailSyncIMAPCut(t *testing.T) {
	e := newMailEnv(t)
	for i := range 20 {
		e.dc.Deliver(t, "alice", "", message(i, "m", strings.Repeat("x", 2000)))
	}
	c := e.phone("alice", "IPHONE1", "iPhone", "14.1")
	fs, _ := folders(t, c)
	inbox := fs["Inbox"].ServerID
	r := syncOnce(t, c, client.SyncCollection{SyncKey: "0", CollectionID: inbox})
	key := r.SyncKey
	// Cut every upstream connection and refuse new ones: the request
	// fails cleanly (503), the key stays valid, the retry succeeds.
	e.proxy.setDown(true)
	e.proxy.cut()
	_, err := c.Sync(context.Background(), client.SyncRequest{Collections: []client.SyncCollection{{SyncKey: key, CollectionID: inbox}}})
	var he *client.HTTPError
	if !errors.As(err, &he) || he.Status != 503 {
		t.Fatalf("Sync with the upstream gone: %v, want HTTP 503", err)
	}
	e.proxy.setDown(false)
	items := map[string]bool{}
	for {
		r = syncOnce(t, c, client.SyncCollection{SyncKey: key, CollectionID: inbox})
		if r.Status != 1 {
			t.Fatalf("retry: status %d", r.Status)
		}
		for _, a := range r.Adds {
			if items[a.ServerID] {
				t.Errorf("duplicate %s", a.ServerID)
			}
			items[a.ServerID] = true
		}
		key = r.SyncKey
		if !r.MoreAvailable {
			break
		}
	}
	if len(items) != 20 {
		t.Errorf("after the retry: %d items, want 20", len(items))
	}
}

// TestMailAndroid121Session replays what an older Android Exchange engine
// does on 12.1: GetItemEstimate (12.1 form) before the first Sync, Class
// in the collection, HTML bodies truncated, then GetAttachment. A message
// with broken MIME and an unknown charset still syncs.
func TestMailAndroid121Session(t *testing.T) {
	e := newMailEnv(t)
	raw, att := attachmentMessage(5000)
	e.dc.Deliver(t, "alice", "", raw)
	e.dc.Deliver(t, "alice", "", []byte("From: broken@example.test\r\nSubject: =?x-unknown?B?SGVsbG8=?=\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=x-unknown\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64\r\n"))
	ctx := context.Background()
	c := e.phone("alice", "androidc1234", "Android", "12.1")
	fs, _ := folders(t, c)
	inbox := fs["Inbox"].ServerID
	est, err := c.GetItemEstimate(ctx, []client.EstimateRequest{{CollectionID: inbox, SyncKey: "0", Class: "Email", FilterType: "0"}})
	if err != nil || len(est) != 1 || est[0].Estimate != 2 {
		t.Fatalf("12.1 estimate %+v, %v; want 2", est, err)
	}
	items, _ := syncAll(t, c, inbox, client.SyncOptions{Class: "Email", FilterType: "0", BodyPreferences: []client.BodyPreference{{Type: 2, TruncationSize: 200000}}})
	if len(items) != 2 {
		t.Fatalf("%d items, want 2", len(items))
	}
	var ref string
	var broken bool
	for _, it := range items {
		if it.ApplicationData.ChildText(wbxml.EmailFrom) == "broken@example.test" {
			broken = true
		}
		for a := range it.ApplicationData.Child(wbxml.AirSyncBaseAttachments).Each(wbxml.AirSyncBaseAttachment) {
			if a.ChildText(wbxml.AirSyncBaseDisplayName) == "data.bin" {
				ref = a.ChildText(wbxml.AirSyncBaseFileReference)
			}
		}
		if it.ApplicationData.Child(wbxml.Email2ConversationId) != nil {
			t.Errorf("12.1 item carries a 14.0 element: %v", it.ApplicationData)
		}
	}
	if !broken {
		t.Errorf("the broken message did not sync")
	}
	if _, data, err := c.GetAttachment(ctx, ref); err != nil || string(data) != string(att) {
		t.Errorf("GetAttachment: %d bytes, %v", len(data), err)
	}
}

// TestMailSyncAcrossRestart: folder and message ServerIds, and sync keys,
// survive a restart of the server: the phone goes on without a resync.
func TestMailSyncAcrossRestart(t *testing.T) {
	e := newMailEnv(t)
	e.dc.Deliver(t, "alice", "Work", message(1, "work", "x"))
	for i := range 5 {
		e.dc.Deliver(t, "alice", "", message(i, "before", "x"))
	}
	c := e.phone("alice", "IPHONE1", "iPhone", "14.1")
	fs, fkey := folders(t, c)
	inbox := fs["Inbox"].ServerID
	items, key := syncAll(t, c, inbox, client.SyncOptions{})

	e.restart()
	c = e.phone("alice", "IPHONE1", "iPhone", "14.1")
	fc, err := c.FolderSync(context.Background(), fkey)
	if err != nil || len(fc.Added)+len(fc.Updated)+len(fc.Deleted) != 0 {
		t.Fatalf("FolderSync after the restart: %+v, %v; want no change", fc, err)
	}
	r := syncOnce(t, c, client.SyncCollection{SyncKey: key, CollectionID: inbox})
	if r.Status != 1 || r.ItemCount() != 0 {
		t.Fatalf("Sync after the restart: status %d, %d items; want no change", r.Status, r.ItemCount())
	}
	e.dc.Deliver(t, "alice", "", message(9, "after", "x"))
	r = syncOnce(t, c, client.SyncCollection{SyncKey: r.SyncKey, CollectionID: inbox})
	if len(r.Adds) != 1 || appText(r.Adds[0], wbxml.EmailSubject) != "after" {
		t.Errorf("after the restart: adds %v, want only the new message", ids(r.Adds))
	}
	if _, dup := items[r.Adds[0].ServerID]; dup {
		t.Errorf("the new message got the id %s of an old one", r.Adds[0].ServerID)
	}
	// A second device, new after the restart, gets the same folder ids.
	other, _ := folders(t, e.phone("alice", "ANDROID9", "Android", "14.1"))
	if other["Work"].ServerID != fs["Work"].ServerID || other["Inbox"].ServerID != inbox {
		t.Errorf("folder ids after the restart: %v, before %v", other, fs)
	}
}
