package eas_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/wbxml"
)

// imapBodies returns the full text of the messages of folder by UID.
func imapBodies(t *testing.T, c *imapclient.Client, folder string) map[imap.UID]string {
	t.Helper()
	if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("EXAMINE %s: %v", folder, err)
	}
	section := &imap.FetchItemBodySection{Peek: true}
	var all imap.UIDSet
	all.AddRange(1, 0) // 1:*
	msgs, err := c.Fetch(all, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("UID FETCH %s: %v", folder, err)
	}
	out := map[imap.UID]string{}
	for _, m := range msgs {
		out[m.UID] = string(m.FindBodySection(section))
	}
	return out
}

func TestMailMoveItems(t *testing.T) {
	e := newMailEnv(t)
	ic := e.imap("alice")
	if err := ic.Create("Archive", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	appendMsg(t, ic, "Archive", message(50, "old archived", "x"), time.Now())
	raw := map[int][]byte{}
	for i := 1; i <= 4; i++ {
		raw[i] = message(i, fmt.Sprintf("msg %d", i), "body")
		var flags []imap.Flag
		if i == 2 {
			flags = []imap.Flag{imap.FlagSeen, "work"}
		}
		if uid := appendMsg(t, ic, "INBOX", raw[i], time.Now(), flags...); uid != imap.UID(i) {
			t.Fatalf("appended message %d as UID %d", i, uid)
		}
	}

	opts := client.SyncOptions{WindowSize: 50, BodyPreferences: []client.BodyPreference{{Type: 1, TruncationSize: 200}}}
	type device struct {
		c                 *client.Client
		inbox, archive    string
		inboxKey, archKey string
	}
	start := func(id string) *device {
		d := &device{c: e.phone("alice", id, "iPhone", "14.1")}
		fs, _ := folders(t, d.c)
		d.inbox, d.archive = fs["Inbox"].ServerID, fs["Archive"].ServerID
		if d.inbox == "" || d.archive == "" {
			t.Fatalf("folders %v lack Inbox or Archive", fs)
		}
		items, key := syncAll(t, d.c, d.inbox, opts)
		if len(items) != 4 {
			t.Fatalf("%s: Inbox has %d items, want 4", id, len(items))
		}
		d.inboxKey = key
		items, key = syncAll(t, d.c, d.archive, opts)
		if len(items) != 1 {
			t.Fatalf("%s: Archive has %d items, want 1", id, len(items))
		}
		d.archKey = key
		return d
	}
	a, b := start("MOVERA"), start("WATCHERB")
	inbox, archive := a.inbox, a.archive
	if b.inbox != inbox || b.archive != archive {
		t.Fatalf("devices see different folder ids: %+v %+v", a, b)
	}

	ctx := context.Background()
	res, err := a.c.MoveItems(ctx, []client.Move{
		{SrcMsgID: inbox + ":1", SrcFldID: inbox, DstFldID: archive},
		{SrcMsgID: inbox + ":2", SrcFldID: inbox, DstFldID: archive},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 {
		t.Fatalf("MoveItems answered %+v; want 2 responses", res)
	}
	dst := map[int]string{} // message number -> new ServerId
	for i, r := range res {
		if r.SrcMsgID != fmt.Sprintf("%s:%d", inbox, i+1) || r.Status != 3 || !strings.HasPrefix(r.DstMsgID, archive+":") {
			t.Errorf("response %d: %+v; want status 3 with a DstMsgId in %s", i, r, archive)
		}
		dst[i+1] = r.DstMsgID
	}
	if dst[1] == dst[2] {
		t.Errorf("both moved to %s", dst[1])
	}

	// Upstream: moved, byte for byte, flags kept.
	bodies := imapBodies(t, ic, "Archive")
	if len(bodies) != 3 {
		t.Errorf("Archive holds %d messages; want 3", len(bodies))
	}
	for n, id := range dst {
		var uid imap.UID
		fmt.Sscanf(strings.TrimPrefix(id, archive+":"), "%d", &uid)
		if bodies[uid] != string(raw[n]) {
			t.Errorf("Archive UID %d = %q; want message %d", uid, bodies[uid], n)
		}
	}
	if got := imapBodies(t, ic, "INBOX"); len(got) != 2 || got[3] != string(raw[3]) || got[4] != string(raw[4]) {
		t.Errorf("INBOX after the move: %d messages; want 3 and 4 only", len(got))
	}

	// The mover is told nothing: no Delete in Inbox, no Add in Archive.
	r := syncOnce(t, a.c, client.SyncCollection{SyncKey: a.inboxKey, CollectionID: inbox, Options: &opts})
	if r.Status != 1 || r.ItemCount() != 0 {
		t.Errorf("mover's Inbox Sync: status %d adds %v deletes %v changes %v; want nothing", r.Status, ids(r.Adds), r.Deletes, ids(r.Changes))
	}
	a.inboxKey = r.SyncKey
	r = syncOnce(t, a.c, client.SyncCollection{SyncKey: a.archKey, CollectionID: archive, Options: &opts})
	if r.Status != 1 || r.ItemCount() != 0 {
		t.Errorf("mover's Archive Sync: status %d adds %v deletes %v changes %v; want nothing", r.Status, ids(r.Adds), r.Deletes, ids(r.Changes))
	}
	a.archKey = r.SyncKey
	// ... and the moved messages are known in Archive: a later upstream
	// change is a Change, not an Add.
	if _, err := ic.Select("Archive", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	var uid1 imap.UID
	fmt.Sscanf(strings.TrimPrefix(dst[1], archive+":"), "%d", &uid1)
	if err := ic.Store(imap.UIDSetNum(uid1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	r = syncOnce(t, a.c, client.SyncCollection{SyncKey: a.archKey, CollectionID: archive, Options: &opts})
	if len(r.Adds) != 0 || len(r.Deletes) != 0 || !slices.Equal(ids(r.Changes), []string{dst[1]}) {
		t.Errorf("mover's Archive Sync after a flag: adds %v deletes %v changes %v; want a Change of %s", ids(r.Adds), r.Deletes, ids(r.Changes), dst[1])
	}
	r = syncOnce(t, a.c, client.SyncCollection{SyncKey: a.inboxKey, CollectionID: inbox, Options: &opts})
	if r.ItemCount() != 0 {
		t.Errorf("mover's second Inbox Sync: adds %v deletes %v", ids(r.Adds), r.Deletes)
	}

	// Another device sees the move.
	r = syncOnce(t, b.c, client.SyncCollection{SyncKey: b.inboxKey, CollectionID: inbox, Options: &opts})
	slices.Sort(r.Deletes)
	if want := []string{inbox + ":1", inbox + ":2"}; !slices.Equal(r.Deletes, want) || len(r.Adds) != 0 {
		t.Errorf("other device's Inbox Sync: deletes %v adds %v; want deletes %v", r.Deletes, ids(r.Adds), want)
	}
	r = syncOnce(t, b.c, client.SyncCollection{SyncKey: b.archKey, CollectionID: archive, Options: &opts})
	want := []string{dst[1], dst[2]}
	slices.Sort(want)
	if got := ids(r.Adds); !slices.Equal(got, want) || len(r.Deletes) != 0 {
		t.Errorf("other device's Archive Sync: adds %v deletes %v; want adds %v", got, r.Deletes, want)
	}
	for _, it := range r.Adds {
		if it.ServerID == dst[2] && appText(it, wbxml.EmailRead) != "1" {
			t.Errorf("moved message 2 arrived unread on the other device")
		}
	}
}

func TestMailMoveItemsErrors(t *testing.T) {
	e := newMailEnv(t)
	ic := e.imap("alice")
	for _, f := range []string{"Archive", "Old", "Tmp"} {
		if err := ic.Create(f, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 3; i++ {
		appendMsg(t, ic, "INBOX", message(i, fmt.Sprintf("msg %d", i), "body"), time.Now())
	}
	appendMsg(t, ic, "Tmp", message(9, "tmp", "body"), time.Now())
	c := e.phone("alice", "MOVERA", "iPhone", "14.1")
	fs, _ := folders(t, c)
	inbox, archive, old, tmp := fs["Inbox"].ServerID, fs["Archive"].ServerID, fs["Old"].ServerID, fs["Tmp"].ServerID
	outbox := fs["Outbox"].ServerID
	// Deleted upstream after the device listed them.
	for _, f := range []string{"Old", "Tmp"} {
		if err := ic.Delete(f).Wait(); err != nil {
			t.Fatal(err)
		}
	}

	ctx := context.Background()
	moves := []client.Move{
		{SrcMsgID: inbox + ":999", SrcFldID: inbox, DstFldID: archive}, // no such message: 1
		{SrcMsgID: archive + ":1", SrcFldID: inbox, DstFldID: archive}, // not of its SrcFldId: 1
		{SrcMsgID: "nope", SrcFldID: inbox, DstFldID: archive},         // not a ServerId: 1
		{SrcMsgID: "77:1", SrcFldID: "77", DstFldID: archive},          // unknown folder: 1
		{SrcMsgID: inbox + ":1", SrcFldID: inbox, DstFldID: "77"},      // unknown destination: 2
		{SrcMsgID: inbox + ":1", SrcFldID: inbox, DstFldID: outbox},    // the Outbox: 2
		{SrcMsgID: inbox + ":1", SrcFldID: inbox, DstFldID: inbox},     // same folder: 4
		{SrcMsgID: inbox + ":2", SrcFldID: inbox, DstFldID: old},       // destination gone: 2
		{SrcMsgID: tmp + ":1", SrcFldID: tmp, DstFldID: inbox},         // source gone: 1
		{SrcMsgID: inbox + ":3", SrcFldID: inbox, DstFldID: archive},   // fine: 3
		{SrcMsgID: outbox + ":1", SrcFldID: outbox, DstFldID: archive}, // from the Outbox: 1
	}
	res, err := c.MoveItems(ctx, moves)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus := []int{1, 1, 1, 1, 2, 2, 4, 2, 1, 3, 1}
	if len(res) != len(moves) {
		t.Fatalf("MoveItems answered %d responses to %d moves: %+v", len(res), len(moves), res)
	}
	for i, r := range res {
		if r.SrcMsgID != moves[i].SrcMsgID || r.Status != wantStatus[i] || (r.DstMsgID != "") != (wantStatus[i] == 3) {
			t.Errorf("move %d %+v: answered %+v; want status %d", i, moves[i], r, wantStatus[i])
		}
	}
	if res[9].DstMsgID != archive+":1" {
		t.Errorf("moved to %q; want %s:1", res[9].DstMsgID, archive)
	}
	// Nothing but message 3 moved; the failed move left message 2.
	if got := imapBodies(t, ic, "INBOX"); len(got) != 2 || got[1] == "" || got[2] == "" {
		t.Errorf("INBOX after the moves holds UIDs %v; want 1 and 2", slices.Sorted(maps.Keys(got)))
	}
	if _, err := ic.Status("Old", &imap.StatusOptions{NumMessages: true}).Wait(); err == nil {
		t.Error("the move created the deleted destination again")
	}

	// The same move again, as a phone retries when the answer was lost:
	// the same answer, nothing moved twice.
	res, err = c.MoveItems(ctx, []client.Move{{SrcMsgID: inbox + ":3", SrcFldID: inbox, DstFldID: archive}})
	if err != nil || len(res) != 1 || res[0].Status != 3 || res[0].DstMsgID != archive+":1" {
		t.Errorf("retried move: %+v, %v; want status 3 to %s:1 again", res, err, archive)
	}
	// Another device never moved it: for it, it is gone (status 1).
	other := e.phone("alice", "OTHER1", "Android", "14.1")
	folders(t, other)
	res, err = other.MoveItems(ctx, []client.Move{{SrcMsgID: inbox + ":3", SrcFldID: inbox, DstFldID: archive}})
	if err != nil || len(res) != 1 || res[0].Status != 1 {
		t.Errorf("another device moving the moved message: %+v, %v; want status 1", res, err)
	}

	// A request without Move is malformed.
	_, err = c.Do(ctx, "MoveItems", wbxml.E(wbxml.MoveMoveItems))
	var se *client.StatusError
	if !errors.As(err, &se) || se.Status != 101 {
		t.Errorf("empty MoveItems: %v; want status 101", err)
	}
}
