package eas_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/wbxml"
)

// TestMailSyncEdgeCases covers cases a review found: commands against a
// recreated folder, the same request twice at once, other clients'
// keywords, options carried over, a folder gone upstream.
func TestMailSyncEdgeCases(t *testing.T) {
	e := newMailEnv(t)
	ic := e.imap("alice")
	now := time.Now()
	if err := ic.Create("Lists", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		appendMsg(t, ic, "Lists", message(i, "list", "x"), now)
	}
	for i := range 4 {
		appendMsg(t, ic, "INBOX", message(i, "old", "x"), now.Add(-60*24*time.Hour))
	}
	for i := range 6 {
		appendMsg(t, ic, "INBOX", message(10+i, "new", "x"), now)
	}
	c := e.phone("alice", "IPHONE1", "iPhone", "14.1")
	fs, _ := folders(t, c)
	inbox, lists := fs["Inbox"].ServerID, fs["Lists"].ServerID
	ctx := context.Background()

	t.Run("same request twice at once", func(t *testing.T) {
		r := syncOnce(t, c, client.SyncCollection{SyncKey: "0", CollectionID: inbox, Options: &client.SyncOptions{FilterType: "3"}})
		key := r.SyncKey
		var wg sync.WaitGroup
		res := make([]*client.SyncCollectionResponse, 2)
		for i := range res {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := c.Sync(ctx, client.SyncRequest{Collections: []client.SyncCollection{{SyncKey: key, CollectionID: inbox, Options: &client.SyncOptions{FilterType: "3"}}}})
				if err != nil {
					t.Error(err)
					return
				}
				res[i] = resp.Collection(inbox)
			}()
		}
		wg.Wait()
		if res[0] == nil || res[1] == nil {
			t.FailNow()
		}
		if res[0].SyncKey != res[1].SyncKey || !slices.Equal(ids(res[0].Adds), ids(res[1].Adds)) || len(res[0].Adds) != 6 {
			t.Errorf("concurrent answers differ: %s %v / %s %v", res[0].SyncKey, ids(res[0].Adds), res[1].SyncKey, ids(res[1].Adds))
		}
		// Options left out: the one-week window stands, nothing old arrives.
		r = syncOnce(t, c, client.SyncCollection{SyncKey: res[0].SyncKey, CollectionID: inbox})
		if r.Status != 1 || r.ItemCount() != 0 {
			t.Errorf("Sync without Options: %d items (%v), want none", r.ItemCount(), ids(r.Adds))
		}
		est, err := c.GetItemEstimate(ctx, []client.EstimateRequest{{CollectionID: inbox, SyncKey: r.SyncKey}})
		if err != nil || est[0].Estimate != 0 {
			t.Errorf("estimate without a filter: %+v %v, want 0", est, err)
		}

		// A category set on the phone keeps other clients' keywords.
		if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		uid := res[0].Adds[0].ServerID
		var n uint32
		fmt.Sscanf(uid[len(inbox)+1:], "%d", &n)
		if err := ic.Store(imap.UIDSetNum(imap.UID(n)), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{"$label1", "$MailFlagBit0"}, Silent: true}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		r = syncOnce(t, c, client.SyncCollection{SyncKey: r.SyncKey, CollectionID: inbox, Changes: []client.SyncChange{{ServerID: uid,
			ApplicationData: wbxml.E(wbxml.AirSyncApplicationData, wbxml.E(wbxml.EmailCategories, wbxml.T(wbxml.EmailCategory, "Work")))}}})
		if r.Status != 1 {
			t.Fatalf("status %d", r.Status)
		}
		msgs, err := ic.Fetch(imap.UIDSetNum(imap.UID(n)), &imap.FetchOptions{Flags: true}).Collect()
		if err != nil || len(msgs) != 1 {
			t.Fatal(err)
		}
		for _, want := range []imap.Flag{"$label1", "$MailFlagBit0", "Work"} {
			if !slices.Contains(msgs[0].Flags, want) {
				t.Errorf("flags %v lack %s", msgs[0].Flags, want)
			}
		}
	})

	t.Run("commands against a recreated folder", func(t *testing.T) {
		items, key := syncAll(t, c, lists, client.SyncOptions{})
		if len(items) != 3 {
			t.Fatalf("%d items", len(items))
		}
		if err := ic.Unselect().Wait(); err != nil {
			t.Fatal(err)
		}
		if err := ic.Delete("Lists").Wait(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // a new UIDVALIDITY
		if err := ic.Create("Lists", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			appendMsg(t, ic, "Lists", message(20+i, "fresh", "x"), now)
		}
		r := syncOnce(t, c, client.SyncCollection{SyncKey: key, CollectionID: lists, Deletes: []string{lists + ":2"}})
		if r.Status != 3 {
			t.Errorf("delete against a recreated folder: status %d, want 3", r.Status)
		}
		st, err := ic.Status("Lists", &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil || *st.NumMessages != 3 {
			t.Errorf("the recreated folder holds %v messages (%v), want its 3", st.NumMessages, err)
		}
	})

	t.Run("folder gone upstream", func(t *testing.T) {
		_, key := syncAll(t, c, lists, client.SyncOptions{})
		if err := ic.Delete("Lists").Wait(); err != nil {
			t.Fatal(err)
		}
		resp, err := c.Sync(ctx, client.SyncRequest{Collections: []client.SyncCollection{{SyncKey: key, CollectionID: lists}, {SyncKey: "0", CollectionID: fs["Sent"].ServerID}}})
		if err != nil {
			t.Fatal(err)
		}
		if r := resp.Collection(lists); r == nil || r.Status != 12 {
			t.Errorf("collection of a deleted folder: %+v, want status 12", r)
		}
		if r := resp.Collection(fs["Sent"].ServerID); r == nil || r.Status != 1 {
			t.Errorf("the other collection: %+v, want status 1", r)
		}
	})
}
