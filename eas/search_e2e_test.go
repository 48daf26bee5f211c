package eas_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/wbxml"
)

// searchStore sends a Search with one Store and returns the response's
// Store, checking the top-level Status is 1.
func searchStore(t *testing.T, c *client.Client, store *wbxml.Node) *wbxml.Node {
	t.Helper()
	resp, err := c.Do(context.Background(), "Search", wbxml.E(wbxml.SearchSearch, store))
	if err != nil {
		t.Fatalf("Search %v: %v", store, err)
	}
	if st := resp.Body.ChildText(wbxml.SearchStatus); st != "1" {
		t.Fatalf("Search %v: top-level status %q", store, st)
	}
	st := resp.Body.Path(wbxml.SearchResponse, wbxml.SearchStore)
	if st == nil {
		t.Fatalf("Search %v: no Store in %v", store, resp.Body)
	}
	return st
}

// longIDs returns the LongIds of the results.
func longIDs(r *client.SearchResult) []string {
	var out []string
	for _, h := range r.Results {
		out = append(out, h.LongID)
	}
	return out
}

func TestSearchMailbox(t *testing.T) {
	e := newMailEnv(t)
	ic := e.imap("alice")
	for _, f := range []string{"Work", "Work.Projects"} {
		if err := ic.Create(f, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	day := func(d, h int) time.Time { return time.Date(2025, 3, d, h, 0, 0, 0, time.UTC) }
	appendMsg(t, ic, "INBOX", message(1, "Quarterly report", "numbers inside"), day(1, 9))
	appendMsg(t, ic, "INBOX", message(2, "lunch", "the quarterly report is delayed, and this body is long enough to truncate"), day(2, 23))
	appendMsg(t, ic, "INBOX", message(3, "unrelated", "nothing to see"), day(4, 12))
	appendMsg(t, ic, "Work", message(4, "Quarterly plan", "work"), day(5, 12))
	appendMsg(t, ic, "Work.Projects", message(5, "project", "the quarterly project"), day(6, 12))

	ctx := context.Background()
	c := e.phone("alice", "IPHONE1", "iPhone", "14.1")
	fs, _ := folders(t, c)
	inbox, work, proj := fs["Inbox"].ServerID, fs["Work"].ServerID, fs["Projects"].ServerID
	id := func(folder, uid string) string { return folder + ":" + uid }
	search := func(q client.MailboxQuery) *client.SearchResult {
		t.Helper()
		r, err := c.SearchMailbox(ctx, q)
		if err != nil {
			t.Fatalf("SearchMailbox(%+v): %v", q, err)
		}
		return r
	}

	t.Run("FreeText", func(t *testing.T) {
		r := search(client.MailboxQuery{FreeText: "quarterly", CollectionID: inbox, Class: "Email"})
		if diff := cmp.Diff([]string{id(inbox, "2"), id(inbox, "1")}, longIDs(r)); diff != "" {
			t.Errorf("subject or body, newest first (-want +got):\n%s", diff)
		}
		if r.Total != 2 || r.Range != "0-1" {
			t.Errorf("Total %d Range %q, want 2 and 0-1", r.Total, r.Range)
		}
		for _, h := range r.Results {
			if h.Class != "Email" || h.CollectionID != inbox || h.Properties == nil {
				t.Errorf("result %+v", h)
			}
		}
		if s := r.Results[1].Properties.ChildText(wbxml.EmailSubject); s != "Quarterly report" {
			t.Errorf("Subject %q", s)
		}
		if r.Results[1].Properties.ChildText(wbxml.EmailDateReceived) == "" {
			t.Errorf("no DateReceived in %v", r.Results[1].Properties)
		}
		r = search(client.MailboxQuery{FreeText: "delayed", CollectionID: inbox})
		if diff := cmp.Diff([]string{id(inbox, "2")}, longIDs(r)); diff != "" {
			t.Errorf("body only (-want +got):\n%s", diff)
		}
		r = search(client.MailboxQuery{FreeText: "zebra", CollectionID: inbox})
		if len(r.Results) != 0 || r.Total != 0 || r.Range != "" || r.Status != 1 {
			t.Errorf("no match: %+v", r)
		}
	})

	t.Run("Folders", func(t *testing.T) {
		r := search(client.MailboxQuery{FreeText: "quarterly", CollectionID: work})
		if diff := cmp.Diff([]string{id(work, "1")}, longIDs(r)); diff != "" {
			t.Errorf("folder only (-want +got):\n%s", diff)
		}
		r = search(client.MailboxQuery{FreeText: "quarterly", CollectionID: work, DeepTraversal: true})
		if diff := cmp.Diff([]string{id(work, "1"), id(proj, "1")}, longIDs(r)); diff != "" {
			t.Errorf("folder and subfolders (-want +got):\n%s", diff)
		}
		if r.Results[1].CollectionID != proj {
			t.Errorf("CollectionId %q, want %q", r.Results[1].CollectionID, proj)
		}
		r = search(client.MailboxQuery{FreeText: "quarterly", DeepTraversal: true})
		got := longIDs(r)
		slices.Sort(got)
		want := []string{id(inbox, "1"), id(inbox, "2"), id(work, "1"), id(proj, "1")}
		slices.Sort(want)
		if diff := cmp.Diff(want, got); diff != "" || r.Total != 4 {
			t.Errorf("whole mailbox, Total %d (-want +got):\n%s", r.Total, diff)
		}
	})

	t.Run("Dates", func(t *testing.T) {
		r := search(client.MailboxQuery{CollectionID: inbox, After: day(1, 12), Before: day(4, 0)})
		if diff := cmp.Diff([]string{id(inbox, "2")}, longIDs(r)); diff != "" {
			t.Errorf("window (-want +got):\n%s", diff)
		}
		r = search(client.MailboxQuery{After: day(4, 0)})
		if got := longIDs(r); len(got) != 3 || r.Total != 3 {
			t.Errorf("after 4 March: %v (Total %d), want 3", got, r.Total)
		}
	})

	t.Run("Range", func(t *testing.T) {
		r := search(client.MailboxQuery{CollectionID: inbox, Range: "0-1"})
		if diff := cmp.Diff([]string{id(inbox, "3"), id(inbox, "2")}, longIDs(r)); diff != "" || r.Total != 3 || r.Range != "0-1" {
			t.Errorf("first page: Total %d Range %q (-want +got):\n%s", r.Total, r.Range, diff)
		}
		r = search(client.MailboxQuery{CollectionID: inbox, Range: "2-5"})
		if diff := cmp.Diff([]string{id(inbox, "1")}, longIDs(r)); diff != "" || r.Total != 3 || r.Range != "2-2" {
			t.Errorf("last page: Total %d Range %q (-want +got):\n%s", r.Total, r.Range, diff)
		}
		r = search(client.MailboxQuery{CollectionID: inbox, Range: "10-19"})
		if len(r.Results) != 0 || r.Total != 3 || r.Range != "" {
			t.Errorf("past the end: %+v", r)
		}
	})

	t.Run("BodyPreference", func(t *testing.T) {
		r := search(client.MailboxQuery{FreeText: "delayed", CollectionID: inbox,
			BodyPreferences: []client.BodyPreference{{Type: client.BodyPlain, TruncationSize: 10}}})
		if len(r.Results) != 1 {
			t.Fatalf("results %+v", r.Results)
		}
		body := r.Results[0].Properties.Child(wbxml.AirSyncBaseBody)
		if body.ChildText(wbxml.AirSyncBaseType) != "1" || body.ChildText(wbxml.AirSyncBaseTruncated) != "1" ||
			len(body.ChildText(wbxml.AirSyncBaseData)) > 10 || !strings.HasPrefix("the quarterly", body.ChildText(wbxml.AirSyncBaseData)) {
			t.Errorf("body %v, want plain text truncated to 10 bytes", body)
		}
		// ItemOperations fetches a result by its LongId.
		long := r.Results[0].LongID
		resp, err := c.ItemOperations(ctx, wbxml.E(wbxml.ItemOperationsItemOperations, wbxml.E(wbxml.ItemOperationsFetch,
			wbxml.T(wbxml.ItemOperationsStore, "Mailbox"), wbxml.T(wbxml.SearchLongId, long))), false)
		if err != nil {
			t.Fatal(err)
		}
		f := resp.Body.Path(wbxml.ItemOperationsResponse, wbxml.ItemOperationsFetch)
		if f.ChildText(wbxml.ItemOperationsStatus) != "1" || f.Child(wbxml.ItemOperationsProperties).ChildText(wbxml.EmailSubject) != "lunch" {
			t.Errorf("Fetch by LongId %q: %v", long, f)
		}
	})

	t.Run("Malformed", func(t *testing.T) {
		query := func(children ...*wbxml.Node) *wbxml.Node {
			return wbxml.E(wbxml.SearchQuery, wbxml.E(wbxml.SearchAnd, children...))
		}
		mailbox := func(children ...*wbxml.Node) *wbxml.Node {
			return wbxml.E(wbxml.SearchStore, append([]*wbxml.Node{wbxml.T(wbxml.SearchName, "Mailbox")}, children...)...)
		}
		text := wbxml.T(wbxml.SearchFreeText, "quarterly")
		rng := func(r string) *wbxml.Node { return wbxml.E(wbxml.SearchOptions, wbxml.T(wbxml.SearchRange, r)) }
		for _, tc := range []struct {
			name  string
			store *wbxml.Node
			want  string
		}{
			{"reversed range", mailbox(query(text), rng("5-2")), "2"},
			{"range not numbers", mailbox(query(text), rng("a-b")), "2"},
			{"range without dash", mailbox(query(text), rng("7")), "2"},
			{"no query", mailbox(rng("0-9")), "2"},
			{"empty query", mailbox(wbxml.E(wbxml.SearchQuery)), "2"},
			{"bad date", mailbox(query(wbxml.E(wbxml.SearchGreaterThan, wbxml.E(wbxml.EmailDateReceived), wbxml.T(wbxml.SearchValue, "yesterday")))), "2"},
			{"Or", mailbox(wbxml.E(wbxml.SearchQuery, wbxml.E(wbxml.SearchOr, text))), "8"},
			{"ConversationId", mailbox(query(wbxml.E(wbxml.SearchEqualTo, wbxml.E(wbxml.SearchConversationId), wbxml.T(wbxml.SearchValue, "x")))), "8"},
			{"unknown folder", mailbox(query(wbxml.T(wbxml.AirSyncCollectionId, "999"), text)), "11"},
			{"unknown store", wbxml.E(wbxml.SearchStore, wbxml.T(wbxml.SearchName, "Elsewhere"), query(text)), "2"},
			{"document library", wbxml.E(wbxml.SearchStore, wbxml.T(wbxml.SearchName, "DocumentLibrary"), query(text)), "2"},
		} {
			st := searchStore(t, c, tc.store)
			if got := st.ChildText(wbxml.SearchStatus); got != tc.want {
				t.Errorf("%s: Store status %q, want %s (%v)", tc.name, got, tc.want, st)
			}
		}
		var se *client.StatusError
		if _, err := c.SearchMailbox(ctx, client.MailboxQuery{FreeText: "x", Range: "3-1"}); !errors.As(err, &se) || se.Status != 2 || se.Element != "Store" {
			t.Errorf("client with a bad range: %v", err)
		}
	})

	t.Run("GAL", func(t *testing.T) {
		st := searchStore(t, c, wbxml.E(wbxml.SearchStore, wbxml.T(wbxml.SearchName, "GAL"),
			wbxml.T(wbxml.SearchQuery, "bob"), wbxml.E(wbxml.SearchOptions, wbxml.T(wbxml.SearchRange, "0-9"))))
		if st.ChildText(wbxml.SearchStatus) != "1" || st.ChildText(wbxml.SearchTotal) != "0" || st.Child(wbxml.SearchResult).Child(wbxml.SearchLongId) != nil {
			t.Errorf("GAL: %v, want status 1, no results, Total 0", st)
		}
	})

	t.Run("Protocol12.1", func(t *testing.T) {
		old := e.phone("alice", "OLDPHONE", "Android", "12.1")
		folders(t, old)
		r, err := old.SearchMailbox(ctx, client.MailboxQuery{FreeText: "quarterly", CollectionID: inbox})
		if err != nil || len(r.Results) != 2 || r.Total != 2 {
			t.Errorf("12.1 search: %+v, %v", r, err)
		}
	})
}
