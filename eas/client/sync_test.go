package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"

	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/wbxml"
	"github.com/google/go-cmp/cmp"
)

// seen is one request a canned server received.
type seen struct {
	Query  url.Values
	Header http.Header
	// Body is the request's WBXML as compact XML; "" when there was none.
	Body string
}

// canned serves answer for every request, recording what it got. answer
// receives the decoded body (nil when empty) and the request number.
type canned struct {
	t      *testing.T
	mu     sync.Mutex
	got    []seen
	answer func(w http.ResponseWriter, r *http.Request, body *wbxml.Node, n int)
}

func (c *canned) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		c.t.Error(err)
	}
	var body *wbxml.Node
	s := seen{Query: r.URL.Query(), Header: r.Header.Clone()}
	if len(raw) > 0 {
		if body, err = wbxml.DecodeBytes(raw, wbxml.Limits{}); err != nil {
			c.t.Errorf("request body: %v", err)
		} else {
			s.Body = body.String()
		}
	}
	c.mu.Lock()
	c.got = append(c.got, s)
	n := len(c.got) - 1
	c.mu.Unlock()
	c.answer(w, r, body, n)
}

// requests returns the requests received so far.
func (c *canned) requests() []seen {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]seen(nil), c.got...)
}

// cannedClient starts a canned server and returns a client speaking
// version to it.
func cannedClient(t *testing.T, version string, answer func(w http.ResponseWriter, r *http.Request, body *wbxml.Node, n int)) (*client.Client, *canned) {
	t.Helper()
	cs := &canned{t: t, answer: answer}
	srv := httptest.NewTLSServer(cs)
	t.Cleanup(srv.Close)
	c, err := client.New(client.Config{URL: srv.URL, User: "alice", Password: "pw", DeviceID: "DEV1",
		Version: version, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	c.SetPolicyKey(1)
	return c, cs
}

// xmlOf renders a tree as the canned server records bodies.
func xmlOf(n *wbxml.Node) string { return n.String() }

// itemView is a comparable view of a SyncItem.
type itemView struct{ ServerID, Class, Data string }

func items(in []client.SyncItem) []itemView {
	var out []itemView
	for _, it := range in {
		out = append(out, itemView{it.ServerID, it.Class, it.ApplicationData.String()})
	}
	return out
}

func appData(subject string) *wbxml.Node {
	return wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.EmailSubject, subject), wbxml.T(wbxml.EmailRead, "0"))
}

func TestSyncRequestAndResponse(t *testing.T) {
	resp := wbxml.E(wbxml.AirSyncSync, wbxml.E(wbxml.AirSyncCollections,
		wbxml.E(wbxml.AirSyncCollection,
			wbxml.T(wbxml.AirSyncSyncKey, "K2"),
			wbxml.T(wbxml.AirSyncCollectionId, "5"),
			wbxml.T(wbxml.AirSyncStatus, "1"),
			wbxml.E(wbxml.AirSyncMoreAvailable),
			wbxml.E(wbxml.AirSyncCommands,
				wbxml.E(wbxml.AirSyncAdd, wbxml.T(wbxml.AirSyncServerId, "5:10"), appData("hello")),
				wbxml.E(wbxml.AirSyncChange, wbxml.T(wbxml.AirSyncServerId, "5:3"),
					wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.EmailRead, "1"))),
				wbxml.E(wbxml.AirSyncDelete, wbxml.T(wbxml.AirSyncServerId, "5:1")),
				wbxml.E(wbxml.AirSyncSoftDelete, wbxml.T(wbxml.AirSyncServerId, "5:2")),
				wbxml.E(wbxml.AirSyncAdd, wbxml.T(wbxml.AirSyncServerId, "5:11"), appData("again"))),
			wbxml.E(wbxml.AirSyncResponses,
				wbxml.E(wbxml.AirSyncChange, wbxml.T(wbxml.AirSyncServerId, "5:4"), wbxml.T(wbxml.AirSyncStatus, "8")),
				wbxml.E(wbxml.AirSyncFetch, wbxml.T(wbxml.AirSyncServerId, "5:5"), wbxml.T(wbxml.AirSyncStatus, "1"), appData("fetched")))),
		wbxml.E(wbxml.AirSyncCollection,
			wbxml.T(wbxml.AirSyncSyncKey, "0"),
			wbxml.T(wbxml.AirSyncCollectionId, "9"),
			wbxml.T(wbxml.AirSyncStatus, "3"))))
	c, cs := cannedClient(t, "14.1", func(w http.ResponseWriter, r *http.Request, _ *wbxml.Node, _ int) {
		writeWBXML(t, w, resp)
	})
	got, err := c.Sync(context.Background(), client.SyncRequest{
		Collections: []client.SyncCollection{{
			SyncKey: "K1", CollectionID: "5", GetChanges: new(true), WindowSize: 100, DeletesAsMoves: new(false),
			Options: &client.SyncOptions{FilterType: "3", Class: "Email", MIMESupport: 2, Conflict: "1",
				BodyPreferences: []client.BodyPreference{{Type: client.BodyMIME, TruncationSize: 200000, AllOrNone: true}, {Type: client.BodyHTML, Preview: 255}}},
			Changes: []client.SyncChange{
				{ServerID: "5:3", ApplicationData: wbxml.T(wbxml.EmailRead, "1")}, // wrapped
				{ServerID: "5:4", ApplicationData: wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.EmailRead, "0"))},
			},
			Deletes: []string{"5:6"},
			Fetches: []string{"5:5"},
		}, {
			SyncKey: "K7", CollectionID: "9", Adds: []client.SyncAdd{{ClientID: "c1", ApplicationData: appData("new")}},
		}},
		WindowSize: 150,
	})
	if err != nil {
		t.Fatal(err)
	}
	wantReq := wbxml.E(wbxml.AirSyncSync,
		wbxml.E(wbxml.AirSyncCollections,
			wbxml.E(wbxml.AirSyncCollection,
				wbxml.T(wbxml.AirSyncSyncKey, "K1"),
				wbxml.T(wbxml.AirSyncCollectionId, "5"),
				wbxml.T(wbxml.AirSyncDeletesAsMoves, "0"),
				wbxml.T(wbxml.AirSyncGetChanges, "1"),
				wbxml.T(wbxml.AirSyncWindowSize, "100"),
				wbxml.E(wbxml.AirSyncOptions,
					wbxml.T(wbxml.AirSyncFilterType, "3"),
					wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, "4"),
						wbxml.T(wbxml.AirSyncBaseTruncationSize, "200000"), wbxml.T(wbxml.AirSyncBaseAllOrNone, "1")),
					wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, "2"),
						wbxml.T(wbxml.AirSyncBasePreview, "255")),
					wbxml.T(wbxml.AirSyncConflict, "1"),
					wbxml.T(wbxml.AirSyncMIMESupport, "2")),
				wbxml.E(wbxml.AirSyncCommands,
					wbxml.E(wbxml.AirSyncChange, wbxml.T(wbxml.AirSyncServerId, "5:3"),
						wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.EmailRead, "1"))),
					wbxml.E(wbxml.AirSyncChange, wbxml.T(wbxml.AirSyncServerId, "5:4"),
						wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.EmailRead, "0"))),
					wbxml.E(wbxml.AirSyncDelete, wbxml.T(wbxml.AirSyncServerId, "5:6")),
					wbxml.E(wbxml.AirSyncFetch, wbxml.T(wbxml.AirSyncServerId, "5:5")))),
			wbxml.E(wbxml.AirSyncCollection,
				wbxml.T(wbxml.AirSyncSyncKey, "K7"),
				wbxml.T(wbxml.AirSyncCollectionId, "9"),
				wbxml.E(wbxml.AirSyncCommands,
					wbxml.E(wbxml.AirSyncAdd, wbxml.T(wbxml.AirSyncClientId, "c1"), appData("new"))))),
		wbxml.T(wbxml.AirSyncWindowSize, "150"))
	reqs := cs.requests()
	if diff := cmp.Diff(xmlOf(wantReq), reqs[0].Body); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	if reqs[0].Query.Get("Cmd") != "Sync" || reqs[0].Header.Get("Content-Type") != "application/vnd.ms-sync.wbxml" {
		t.Errorf("request line %v, headers %v", reqs[0].Query, reqs[0].Header)
	}

	if got.Empty || got.Raw == nil || len(got.Collections) != 2 {
		t.Fatalf("response %+v", got)
	}
	inbox := got.Collection("5")
	if inbox.SyncKey != "K2" || inbox.Status != 1 || !inbox.MoreAvailable || inbox.Err() != nil || inbox.ItemCount() != 5 {
		t.Errorf("collection 5: %+v", inbox)
	}
	wantAdds := []itemView{{"5:10", "", appData("hello").String()}, {"5:11", "", appData("again").String()}}
	if diff := cmp.Diff(wantAdds, items(inbox.Adds)); diff != "" {
		t.Errorf("adds (-want +got):\n%s", diff)
	}
	wantChanges := []itemView{{"5:3", "", wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.EmailRead, "1")).String()}}
	if diff := cmp.Diff(wantChanges, items(inbox.Changes)); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"5:1"}, inbox.Deletes); diff != "" {
		t.Errorf("deletes: %s", diff)
	}
	if diff := cmp.Diff([]string{"5:2"}, inbox.SoftDeletes); diff != "" {
		t.Errorf("soft deletes: %s", diff)
	}
	if len(inbox.Responses) != 2 {
		t.Fatalf("responses %+v", inbox.Responses)
	}
	if r := inbox.Responses[0]; r.Command != "Change" || r.ServerID != "5:4" || r.Status != 8 || r.ApplicationData != nil {
		t.Errorf("change response %+v", r)
	}
	if r := inbox.Responses[1]; r.Command != "Fetch" || r.ServerID != "5:5" || r.Status != 1 || r.ApplicationData.ChildText(wbxml.EmailSubject) != "fetched" {
		t.Errorf("fetch response %+v", r)
	}
	if inbox.Raw == nil || inbox.Raw.Tag != wbxml.AirSyncCollection {
		t.Errorf("raw collection %v", inbox.Raw)
	}
	other := got.Collection("9")
	var se *client.StatusError
	if err := other.Err(); !errors.As(err, &se) || se.Status != 3 || se.Element != "Collection" {
		t.Errorf("collection 9 status 3: %v", err)
	}
	if got.Collection("nope") != nil {
		t.Error("Collection of an unknown id")
	}
}

func TestSync121(t *testing.T) {
	c, cs := cannedClient(t, "12.1", func(w http.ResponseWriter, r *http.Request, _ *wbxml.Node, _ int) {
		writeWBXML(t, w, wbxml.E(wbxml.AirSyncSync, wbxml.E(wbxml.AirSyncCollections, wbxml.E(wbxml.AirSyncCollection,
			wbxml.T(wbxml.AirSyncClass, "Email"), wbxml.T(wbxml.AirSyncSyncKey, "1"),
			wbxml.T(wbxml.AirSyncCollectionId, "5"), wbxml.T(wbxml.AirSyncStatus, "1")))))
	})
	got, err := c.Sync(context.Background(), client.SyncRequest{Collections: []client.SyncCollection{{
		SyncKey: "0", CollectionID: "5", Options: &client.SyncOptions{Class: "Email", FilterType: "0", WindowSize: 25},
	}}, Wait: 5})
	if err != nil {
		t.Fatal(err)
	}
	want := wbxml.E(wbxml.AirSyncSync, wbxml.E(wbxml.AirSyncCollections, wbxml.E(wbxml.AirSyncCollection,
		wbxml.T(wbxml.AirSyncClass, "Email"),
		wbxml.T(wbxml.AirSyncSyncKey, "0"),
		wbxml.T(wbxml.AirSyncCollectionId, "5"),
		wbxml.T(wbxml.AirSyncWindowSize, "25"),
		wbxml.E(wbxml.AirSyncOptions, wbxml.T(wbxml.AirSyncFilterType, "0")))),
		wbxml.T(wbxml.AirSyncWait, "5"))
	if diff := cmp.Diff(xmlOf(want), cs.requests()[0].Body); diff != "" {
		t.Errorf("12.1 request (-want +got):\n%s", diff)
	}
	if h := cs.requests()[0].Header.Get("MS-ASProtocolVersion"); h != "12.1" {
		t.Errorf("version header %q", h)
	}
	if col := got.Collection("5"); col == nil || col.Class != "Email" || col.SyncKey != "1" {
		t.Errorf("response %+v", got)
	}
}

func TestSyncEmpty(t *testing.T) {
	c, cs := cannedClient(t, "14.1", func(w http.ResponseWriter, r *http.Request, body *wbxml.Node, n int) {
		switch n {
		case 0, 1: // nothing changed: empty 200
		case 2:
			writeWBXML(t, w, wbxml.E(wbxml.AirSyncSync, wbxml.T(wbxml.AirSyncStatus, "14"), wbxml.T(wbxml.AirSyncLimit, "3540")))
		}
	})
	ctx := context.Background()
	got, err := c.Sync(ctx, client.SyncRequest{Collections: []client.SyncCollection{{SyncKey: "K", CollectionID: "5"}}, HeartbeatInterval: 600})
	if err != nil || !got.Empty || got.Raw != nil || len(got.Collections) != 0 {
		t.Errorf("empty 200: %+v, %v", got, err)
	}
	// The empty request: no body at all.
	if got, err = c.Sync(ctx, client.SyncRequest{}); err != nil || !got.Empty {
		t.Errorf("empty request: %+v, %v", got, err)
	}
	got, err = c.Sync(ctx, client.SyncRequest{HeartbeatInterval: 9999})
	var se *client.StatusError
	if !errors.As(err, &se) || se.Status != 14 || got == nil || got.Limit != "3540" {
		t.Errorf("status 14: %+v, %v", got, err)
	}
	reqs := cs.requests()
	if reqs[1].Body != "" || reqs[1].Header.Get("Content-Type") != "" {
		t.Errorf("empty request sent a body %q (%q)", reqs[1].Body, reqs[1].Header.Get("Content-Type"))
	}
	want := wbxml.E(wbxml.AirSyncSync, wbxml.T(wbxml.AirSyncHeartbeatInterval, "9999"))
	if reqs[2].Body != xmlOf(want) {
		t.Errorf("heartbeat-only request %s", reqs[2].Body)
	}
}

// syncAllServer pages total messages of collection "5" in windows, with
// keys "K<n>", answering status 3 to a key it did not hand out.
func syncAllServer(t *testing.T, total int) func(w http.ResponseWriter, r *http.Request, body *wbxml.Node, n int) {
	sent := 0
	return func(w http.ResponseWriter, r *http.Request, body *wbxml.Node, n int) {
		coll := body.Path(wbxml.AirSyncCollections, wbxml.AirSyncCollection)
		key := coll.ChildText(wbxml.AirSyncSyncKey)
		out := wbxml.E(wbxml.AirSyncCollection)
		if key != "K"+strconv.Itoa(n) && key != "0" {
			writeWBXML(t, w, wbxml.E(wbxml.AirSyncSync, wbxml.E(wbxml.AirSyncCollections, out.Append(
				wbxml.T(wbxml.AirSyncSyncKey, "0"), wbxml.T(wbxml.AirSyncCollectionId, "5"), wbxml.T(wbxml.AirSyncStatus, "3")))))
			return
		}
		out.Append(wbxml.T(wbxml.AirSyncSyncKey, "K"+strconv.Itoa(n+1)), wbxml.T(wbxml.AirSyncCollectionId, "5"), wbxml.T(wbxml.AirSyncStatus, "1"))
		if key != "0" {
			ws, _ := strconv.Atoi(coll.ChildText(wbxml.AirSyncWindowSize))
			cmds := wbxml.E(wbxml.AirSyncCommands)
			for ; sent < total && len(cmds.Children) < ws; sent++ {
				cmds.Append(wbxml.E(wbxml.AirSyncAdd, wbxml.T(wbxml.AirSyncServerId, "5:"+strconv.Itoa(sent+1)), appData("m")))
			}
			if sent < total {
				out.Append(wbxml.E(wbxml.AirSyncMoreAvailable))
			}
			if len(cmds.Children) > 0 {
				out.Append(cmds)
			}
		}
		writeWBXML(t, w, wbxml.E(wbxml.AirSyncSync, wbxml.E(wbxml.AirSyncCollections, out)))
	}
}

func TestSyncAll(t *testing.T) {
	c, cs := cannedClient(t, "14.1", syncAllServer(t, 7))
	var ids []string
	calls := 0
	key, err := c.SyncAll(context.Background(), "5", client.SyncOptions{WindowSize: 3, BodyPreferences: []client.BodyPreference{{Type: client.BodyMIME}}, MIMESupport: 2},
		func(r *client.SyncCollectionResponse) error {
			calls++
			for _, a := range r.Adds {
				ids = append(ids, a.ServerID)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	// Key 0, then 3 + 3 + 1 messages.
	if key != "K4" || calls != 4 || len(ids) != 7 || ids[6] != "5:7" {
		t.Errorf("SyncAll = %q after %d calls, ids %v", key, calls, ids)
	}
	reqs := cs.requests()
	opts := wbxml.E(wbxml.AirSyncOptions, wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, "4")),
		wbxml.T(wbxml.AirSyncMIMESupport, "2"))
	first := wbxml.E(wbxml.AirSyncSync, wbxml.E(wbxml.AirSyncCollections, wbxml.E(wbxml.AirSyncCollection,
		wbxml.T(wbxml.AirSyncSyncKey, "0"), wbxml.T(wbxml.AirSyncCollectionId, "5"), wbxml.T(wbxml.AirSyncWindowSize, "3"), opts)))
	second := wbxml.E(wbxml.AirSyncSync, wbxml.E(wbxml.AirSyncCollections, wbxml.E(wbxml.AirSyncCollection,
		wbxml.T(wbxml.AirSyncSyncKey, "K1"), wbxml.T(wbxml.AirSyncCollectionId, "5"), wbxml.T(wbxml.AirSyncGetChanges, "1"),
		wbxml.T(wbxml.AirSyncWindowSize, "3"), opts)))
	if diff := cmp.Diff([]string{xmlOf(first), xmlOf(second)}, []string{reqs[0].Body, reqs[1].Body}); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}

	// fn's error stops the loop.
	c, _ = cannedClient(t, "14.1", syncAllServer(t, 7))
	stop := errors.New("stop")
	if _, err := c.SyncAll(context.Background(), "5", client.SyncOptions{WindowSize: 3}, func(*client.SyncCollectionResponse) error { return stop }); err != stop {
		t.Errorf("fn error: %v", err)
	}
}

func TestSyncAllInvalidKey(t *testing.T) {
	// A server that forgets its keys: every Sync after key 0 gets status 3.
	c, _ := cannedClient(t, "14.1", func(w http.ResponseWriter, r *http.Request, body *wbxml.Node, n int) {
		st := "1"
		if n > 0 {
			st = "3"
		}
		writeWBXML(t, w, wbxml.E(wbxml.AirSyncSync, wbxml.E(wbxml.AirSyncCollections, wbxml.E(wbxml.AirSyncCollection,
			wbxml.T(wbxml.AirSyncSyncKey, "K"), wbxml.T(wbxml.AirSyncCollectionId, "5"), wbxml.T(wbxml.AirSyncStatus, st)))))
	})
	_, err := c.SyncAll(context.Background(), "5", client.SyncOptions{}, nil)
	var se *client.StatusError
	if !errors.As(err, &se) || se.Status != 3 {
		t.Errorf("SyncAll with a refused key: %v", err)
	}

	// A server that always says MoreAvailable but sends nothing.
	c, _ = cannedClient(t, "14.1", func(w http.ResponseWriter, r *http.Request, body *wbxml.Node, n int) {
		writeWBXML(t, w, wbxml.E(wbxml.AirSyncSync, wbxml.E(wbxml.AirSyncCollections, wbxml.E(wbxml.AirSyncCollection,
			wbxml.T(wbxml.AirSyncSyncKey, "K"+strconv.Itoa(n)), wbxml.T(wbxml.AirSyncCollectionId, "5"),
			wbxml.T(wbxml.AirSyncStatus, "1"), wbxml.E(wbxml.AirSyncMoreAvailable)))))
	})
	if _, err := c.SyncAll(context.Background(), "5", client.SyncOptions{}, nil); err == nil {
		t.Error("SyncAll looped on MoreAvailable without items and returned no error")
	}
}

func TestGetItemEstimate(t *testing.T) {
	answer := func(w http.ResponseWriter, r *http.Request, body *wbxml.Node, n int) {
		writeWBXML(t, w, wbxml.E(wbxml.GetItemEstimateGetItemEstimate,
			wbxml.E(wbxml.GetItemEstimateResponse, wbxml.T(wbxml.GetItemEstimateStatus, "1"),
				wbxml.E(wbxml.GetItemEstimateCollection, wbxml.T(wbxml.GetItemEstimateCollectionId, "5"), wbxml.T(wbxml.GetItemEstimateEstimate, "42"))),
			wbxml.E(wbxml.GetItemEstimateResponse, wbxml.T(wbxml.GetItemEstimateStatus, "3"),
				wbxml.E(wbxml.GetItemEstimateCollection, wbxml.T(wbxml.GetItemEstimateCollectionId, "9")))))
	}
	reqs := []client.EstimateRequest{{SyncKey: "K1", CollectionID: "5", Class: "Email", FilterType: "0"}, {SyncKey: "K2", CollectionID: "9"}}
	wantResp := []client.EstimateResponse{{Status: 1, CollectionID: "5", Estimate: 42}, {Status: 3, CollectionID: "9", Estimate: -1}}
	for _, tc := range []struct {
		version string
		want    *wbxml.Node
	}{
		{"14.1", wbxml.E(wbxml.GetItemEstimateGetItemEstimate, wbxml.E(wbxml.GetItemEstimateCollections,
			wbxml.E(wbxml.GetItemEstimateCollection, wbxml.T(wbxml.AirSyncSyncKey, "K1"), wbxml.T(wbxml.GetItemEstimateCollectionId, "5"),
				wbxml.E(wbxml.AirSyncOptions, wbxml.T(wbxml.AirSyncFilterType, "0"), wbxml.T(wbxml.AirSyncClass, "Email"))),
			wbxml.E(wbxml.GetItemEstimateCollection, wbxml.T(wbxml.AirSyncSyncKey, "K2"), wbxml.T(wbxml.GetItemEstimateCollectionId, "9"))))},
		{"12.1", wbxml.E(wbxml.GetItemEstimateGetItemEstimate, wbxml.E(wbxml.GetItemEstimateCollections,
			wbxml.E(wbxml.GetItemEstimateCollection, wbxml.T(wbxml.GetItemEstimateClass, "Email"), wbxml.T(wbxml.AirSyncSyncKey, "K1"),
				wbxml.T(wbxml.GetItemEstimateCollectionId, "5"), wbxml.T(wbxml.AirSyncFilterType, "0")),
			wbxml.E(wbxml.GetItemEstimateCollection, wbxml.T(wbxml.AirSyncSyncKey, "K2"), wbxml.T(wbxml.GetItemEstimateCollectionId, "9"))))},
	} {
		t.Run(tc.version, func(t *testing.T) {
			c, cs := cannedClient(t, tc.version, answer)
			got, err := c.GetItemEstimate(context.Background(), reqs)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(wantResp, got); diff != "" {
				t.Errorf("responses (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(xmlOf(tc.want), cs.requests()[0].Body); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
			if got[0].Err() != nil || got[1].Err() == nil {
				t.Errorf("Err: %v, %v", got[0].Err(), got[1].Err())
			}
		})
	}
}
