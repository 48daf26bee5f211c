package client_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/wbxml"
)

func TestSearchMailbox(t *testing.T) {
	c, cs := cannedClient(t, "14.1", func(w http.ResponseWriter, r *http.Request, body *wbxml.Node, n int) {
		store := []*wbxml.Node{
			wbxml.E(wbxml.SearchStore, wbxml.T(wbxml.SearchStatus, "1"),
				wbxml.E(wbxml.SearchResult,
					wbxml.T(wbxml.AirSyncClass, "Email"),
					wbxml.T(wbxml.SearchLongId, "5:7"),
					wbxml.T(wbxml.AirSyncCollectionId, "5"),
					wbxml.E(wbxml.SearchProperties, wbxml.T(wbxml.EmailSubject, "hi"))),
				wbxml.E(wbxml.SearchResult,
					wbxml.T(wbxml.AirSyncClass, "Email"),
					wbxml.T(wbxml.SearchLongId, "6:2"),
					wbxml.T(wbxml.AirSyncCollectionId, "6"),
					wbxml.E(wbxml.SearchProperties, wbxml.T(wbxml.EmailSubject, "hello"))),
				wbxml.T(wbxml.SearchRange, "0-1"),
				wbxml.T(wbxml.SearchTotal, "12")),
			wbxml.E(wbxml.SearchStore, wbxml.T(wbxml.SearchStatus, "1"), wbxml.E(wbxml.SearchResult), wbxml.T(wbxml.SearchTotal, "0")),
			wbxml.E(wbxml.SearchStore, wbxml.T(wbxml.SearchStatus, "2")),
		}[n]
		writeWBXML(t, w, wbxml.E(wbxml.SearchSearch, wbxml.T(wbxml.SearchStatus, "1"), wbxml.E(wbxml.SearchResponse, store)))
	})
	ctx := context.Background()
	after := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	res, err := c.SearchMailbox(ctx, client.MailboxQuery{
		FreeText: "hi", CollectionID: "5", Class: "Email", After: after, Before: after.Add(48 * time.Hour),
		Range: "0-1", DeepTraversal: true, RebuildResults: true,
		BodyPreferences: []client.BodyPreference{{Type: client.BodyPlain, TruncationSize: 100}}, MIMESupport: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	type hit struct{ Class, LongID, CollectionID, Subject string }
	var got []hit
	for _, h := range res.Results {
		got = append(got, hit{h.Class, h.LongID, h.CollectionID, h.Properties.ChildText(wbxml.EmailSubject)})
	}
	if diff := cmp.Diff([]hit{{"Email", "5:7", "5", "hi"}, {"Email", "6:2", "6", "hello"}}, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if res.Status != 1 || res.Range != "0-1" || res.Total != 12 || res.Raw == nil {
		t.Errorf("result %+v", res)
	}

	res, err = c.SearchMailbox(ctx, client.MailboxQuery{FreeText: "nothing"})
	if err != nil || len(res.Results) != 0 || res.Total != 0 || res.Range != "" {
		t.Errorf("no matches: %+v, %v", res, err)
	}

	var se *client.StatusError
	res, err = c.SearchMailbox(ctx, client.MailboxQuery{Range: "5-2"})
	if !errors.As(err, &se) || se.Status != 2 || se.Element != "Store" || res == nil || res.Status != 2 {
		t.Errorf("store status 2: %+v, %v", res, err)
	}

	date := func(tm time.Time) string { return tm.Format("2006-01-02T15:04:05.000Z") }
	want := []string{
		xmlOf(wbxml.E(wbxml.SearchSearch, wbxml.E(wbxml.SearchStore,
			wbxml.T(wbxml.SearchName, "Mailbox"),
			wbxml.E(wbxml.SearchQuery, wbxml.E(wbxml.SearchAnd,
				wbxml.T(wbxml.AirSyncClass, "Email"),
				wbxml.T(wbxml.AirSyncCollectionId, "5"),
				wbxml.T(wbxml.SearchFreeText, "hi"),
				wbxml.E(wbxml.SearchGreaterThan, wbxml.E(wbxml.EmailDateReceived), wbxml.T(wbxml.SearchValue, date(after))),
				wbxml.E(wbxml.SearchLessThan, wbxml.E(wbxml.EmailDateReceived), wbxml.T(wbxml.SearchValue, date(after.Add(48*time.Hour)))))),
			wbxml.E(wbxml.SearchOptions,
				wbxml.T(wbxml.SearchRange, "0-1"),
				wbxml.E(wbxml.SearchDeepTraversal),
				wbxml.E(wbxml.SearchRebuildResults),
				wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, "1"), wbxml.T(wbxml.AirSyncBaseTruncationSize, "100")),
				wbxml.T(wbxml.AirSyncMIMESupport, "1"))))),
		xmlOf(wbxml.E(wbxml.SearchSearch, wbxml.E(wbxml.SearchStore,
			wbxml.T(wbxml.SearchName, "Mailbox"),
			wbxml.E(wbxml.SearchQuery, wbxml.E(wbxml.SearchAnd, wbxml.T(wbxml.SearchFreeText, "nothing")))))),
	}
	reqs := cs.requests()
	if diff := cmp.Diff(want, []string{reqs[0].Body, reqs[1].Body}); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}
