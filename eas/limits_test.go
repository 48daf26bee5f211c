package eas_test

// Tests of issue #9's limits: per-user concurrency, WBXML depth and size,
// the Sync window, attachment size from the policy and the request body
// size. Each excess gets the protocol's status, 413, or 503 with
// Retry-After, never a 500.

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/easd/easd/eas"
	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/imapbridge"
	"github.com/easd/easd/internal/passwd"
	"github.com/easd/easd/internal/testenv"
	"github.com/easd/easd/store"
	"github.com/easd/easd/store/sqlite"
	"github.com/easd/easd/wbxml"
)

// gateStore holds the requests of devices whose id starts with "HOLD" in
// Device (which runs once the command slots are taken) until gate is
// closed, reporting each on arrived.
type gateStore struct {
	*sqlite.Store
	gate    chan struct{}
	open    func() // closes gate, once
	arrived chan string
}

func (g *gateStore) Device(ctx context.Context, userID int64, deviceID string) (store.Device, error) {
	if strings.HasPrefix(deviceID, "HOLD") {
		g.arrived <- deviceID
		select {
		case <-g.gate:
		case <-ctx.Done():
		}
	}
	return g.Store.Device(ctx, userID, deviceID)
}

// limitsEnv is easd with users alice and bob and the store-backed contacts
// class (wbxmlCodec), no mailbox.
type limitsEnv struct {
	st   *sqlite.Store
	gs   *gateStore
	h    *eas.Handler
	srv  *httptest.Server
	logs *syncBuffer
}

func newLimitsEnv(t *testing.T, cfg eas.Config) *limitsEnv {
	t.Helper()
	st, err := sqlite.Open(context.Background(), testenv.SQLitePath(t), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, u := range []string{"alice", "bob"} {
		h, err := passwd.Hash(u+"-pw", passwd.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.CreateUser(context.Background(), u, h); err != nil {
			t.Fatal(err)
		}
	}
	e := &limitsEnv{st: st, gs: &gateStore{Store: st, gate: make(chan struct{}), arrived: make(chan string, 64)}, logs: &syncBuffer{}}
	e.gs.open = sync.OnceFunc(func() { close(e.gs.gate) })
	cfg.Domain = "example.test"
	e.h = eas.NewHandler(cfg, eas.Deps{
		Store: e.gs, Auth: eas.LocalAuth{Users: st}, Logger: slog.New(slog.NewTextHandler(e.logs, nil)),
		Items: st, Codecs: map[string]item.Codec{store.ClassContacts: wbxmlCodec{}},
	})
	e.srv = httptest.NewServer(e.h)
	// Held requests are let go before the server closes, which waits
	// for them.
	t.Cleanup(func() { e.gs.open(); e.h.Drain(); e.srv.Close() })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("easd log:\n%s", e.logs.String())
		}
	})
	return e
}

// rawReq is one request sent without the client's negotiation.
type rawReq struct {
	user, device, version, cmd string
	body                       []byte
	contentType                string // WBXML when empty
	chunked                    bool   // send without Content-Length
	query                      string // appended to the request line
}

// rawResp is a decoded answer; body is nil unless it is WBXML.
type rawResp struct {
	code   int
	header http.Header
	body   *wbxml.Node
}

// post sends r to base and returns the answer; it reports errors instead
// of failing, so goroutines may call it.
func post(base string, r rawReq) (rawResp, error) {
	if r.version == "" {
		r.version = "14.1"
	}
	var body io.Reader = bytes.NewReader(r.body)
	if r.chunked {
		body = io.MultiReader(body) // hides the length: sent chunked
	}
	q := "?Cmd=" + r.cmd + "&User=" + r.user + "&DeviceId=" + r.device + "&DeviceType=iPhone" + r.query
	req, err := http.NewRequest(http.MethodPost, base+eas.Path+q, body)
	if err != nil {
		return rawResp{}, err
	}
	req.SetBasicAuth(r.user, r.user+"-pw")
	req.Header.Set("MS-ASProtocolVersion", r.version)
	ct := r.contentType
	if ct == "" {
		ct = "application/vnd.ms-sync.wbxml"
	}
	req.Header.Set("Content-Type", ct)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return rawResp{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return rawResp{}, err
	}
	out := rawResp{code: resp.StatusCode, header: resp.Header}
	if len(raw) > 0 && resp.Header.Get("Content-Type") == "application/vnd.ms-sync.wbxml" {
		if out.body, err = wbxml.DecodeBytes(raw, wbxml.Limits{}); err != nil {
			return out, fmt.Errorf("answer does not decode: %w", err)
		}
	}
	return out, nil
}

// status returns the top-level Status of an answer, "" for none.
func (r rawResp) status() string {
	if r.body == nil {
		return ""
	}
	if t, ok := wbxml.LookupTag(r.body.Tag.Namespace(), "Status"); ok {
		return r.body.ChildText(t)
	}
	return ""
}

func encode(t *testing.T, n *wbxml.Node) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := wbxml.Encode(&b, n); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestUserConcurrencyLimit holds ten commands of alice (the default
// --max-user-concurrent, after Exchange's EasMaxConcurrency): the
// eleventh gets 503 with Retry-After while bob is served; parked Ping and
// Sync requests of alice hold no slot; once the ten end she is served
// again.
func TestUserConcurrencyLimit(t *testing.T) {
	const limit = 10
	e := newLimitsEnv(t, eas.Config{MaxUserConcurrent: limit, HeartbeatMin: time.Second})
	ctx := context.Background()
	// Three of alice's phones wait for changes: two Pings and a Sync with
	// HeartbeatInterval.
	type longPoll struct {
		name string
		err  error
	}
	polls := make(chan longPoll, 3)
	for i := range 2 {
		p := (&itemsEnv{t: t, st: e.st, h: e.h, srv: e.srv}).phone(fmt.Sprintf("PING%d", i))
		go func() {
			_, err := p.c.Ping(ctx, client.PingRequest{HeartbeatInterval: 600, Folders: []client.PingFolder{{ID: p.coll, Class: "Contacts"}}})
			polls <- longPoll{"Ping", err}
		}()
	}
	sp := (&itemsEnv{t: t, st: e.st, h: e.h, srv: e.srv}).phone("SYNCWAIT")
	go func() {
		_, err := sp.c.Sync(ctx, client.SyncRequest{HeartbeatInterval: 600, Collections: []client.SyncCollection{{SyncKey: sp.key, CollectionID: sp.coll}}})
		polls <- longPoll{"Sync", err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for e.h.Parked() != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests parked, want 3", e.h.Parked())
		}
		time.Sleep(10 * time.Millisecond)
	}

	folderSync := encode(t, wbxml.E(wbxml.FolderHierarchyFolderSync, wbxml.T(wbxml.FolderHierarchySyncKey, "0")))
	type result struct {
		r   rawResp
		err error
	}
	held := make(chan result, limit)
	for i := range limit {
		go func() {
			r, err := post(e.srv.URL, rawReq{user: "alice", device: fmt.Sprintf("HOLD%02d", i), cmd: "FolderSync", body: folderSync})
			held <- result{r, err}
		}()
	}
	for range limit {
		select {
		case <-e.gs.arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("the held requests did not all start")
		}
	}
	// Ten running, three parked: the eleventh is refused.
	r, err := post(e.srv.URL, rawReq{user: "alice", device: "ELEVENTH", cmd: "FolderSync", body: folderSync})
	if err != nil {
		t.Fatal(err)
	}
	if r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "5" {
		t.Errorf("eleventh command of alice: HTTP %d Retry-After %q, want 503 with Retry-After 5", r.code, r.header.Get("Retry-After"))
	}
	// 12.1 and OPTIONS are the same: the limit is HTTP, whatever the version.
	if r, err := post(e.srv.URL, rawReq{user: "alice", device: "ELEVENTH", version: "12.1", cmd: "FolderSync", body: folderSync}); err != nil || r.code != 503 {
		t.Errorf("eleventh command of alice in 12.1: %d %v, want 503", r.code, err)
	}
	// Another user is served.
	if r, err := post(e.srv.URL, rawReq{user: "bob", device: "BOB1", cmd: "FolderSync", body: folderSync}); err != nil || r.code != 200 || r.status() != "1" {
		t.Errorf("bob while alice is at her limit: %d %q %v", r.code, r.status(), err)
	}
	if n := e.h.Parked(); n != 3 {
		t.Errorf("%d requests parked, want the 3 still", n)
	}
	e.gs.open()
	for range limit {
		select {
		case res := <-held:
			if res.err != nil || res.r.code != 200 || res.r.status() != "1" {
				t.Errorf("held FolderSync: %d %q %v", res.r.code, res.r.status(), res.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("held requests did not end")
		}
	}
	if r, err := post(e.srv.URL, rawReq{user: "alice", device: "ELEVENTH", cmd: "FolderSync", body: folderSync}); err != nil || r.code != 200 {
		t.Errorf("alice after her commands ended: %d %v, want 200", r.code, err)
	}
	// The long polls end with the server, as on a shutdown.
	e.h.Drain()
	for range 3 {
		select {
		case p := <-polls:
			if p.err != nil {
				t.Errorf("%s answered at shutdown: %v", p.name, p.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("long polls were not answered at shutdown")
		}
	}
}

// WBXML building blocks: header (1.3, public id 1, UTF-8, no string
// table) and tokens.
var (
	wbxmlHeader   = []byte{0x03, 0x01, 0x6a, 0x00}
	toProvision   = []byte{0x00, 0x0e} // SWITCH_PAGE to Provision
	provisionOpen = byte(0x45)         // Provision, with content
	provisionNone = byte(0x05)         // Provision, empty
	syncOpen      = byte(0x45)         // AirSync Sync, with content (page 0)
	syncNone      = byte(0x05)         // AirSync Sync, empty
)

// doc joins WBXML pieces.
func doc(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func rep(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

// TestWBXMLLimits sends hostile WBXML: each gets HTTP 400 (12.1) or status
// 102 InvalidWBXML in the command's Status (14.0+, MS-ASCMD 2.2.2), or
// 413 for a body over the limit, and costs bounded memory.
func TestWBXMLLimits(t *testing.T) {
	const maxBody = 4 << 20 // Sync's limit here; Provision's is 1 MiB
	e := newLimitsEnv(t, eas.Config{MaxBodyBytes: maxBody})
	provision := func(p ...[]byte) []byte { return doc(append([][]byte{wbxmlHeader, toProvision}, p...)...) }
	sync := func(p ...[]byte) []byte { return doc(append([][]byte{wbxmlHeader}, p...)...) }
	const deep = 100_000
	for _, tc := range []struct {
		name     string
		cmd      string
		body     []byte
		chunked  bool
		version  string
		wantHTTP int
		want     string // Status; "" for none
	}{
		{"100k nested elements", "Provision", provision(rep(provisionOpen, deep), rep(0x01, deep)), false, "", 200, "102"},
		{"100k nested elements 12.1", "Provision", provision(rep(provisionOpen, deep), rep(0x01, deep)), false, "12.1", 400, ""},
		{"300k elements in 1 MiB", "Provision", provision([]byte{provisionOpen}, rep(provisionNone, 300_000), []byte{0x01}), false, "", 200, "102"},
		{"1.1M elements in 4 MiB", "Sync", sync([]byte{syncOpen}, rep(syncNone, 1_100_000), []byte{0x01}), false, "", 200, "102"},
		{"1.1M elements in 4 MiB 12.1", "Sync", sync([]byte{syncOpen}, rep(syncNone, 1_100_000), []byte{0x01}), false, "12.1", 400, ""},
		// An OPAQUE declaring more than the body limit is refused unread.
		{"OPAQUE declaring 2 GiB", "Provision", provision([]byte{provisionOpen, 0xc3, 0x87, 0xff, 0xff, 0xff, 0x7f}, []byte("abc"), []byte{0x01}), false, "", 413, ""},
		{"OPAQUE declaring 2 GiB 12.1", "Provision", provision([]byte{provisionOpen, 0xc3, 0x87, 0xff, 0xff, 0xff, 0x7f}, []byte("abc"), []byte{0x01}), false, "12.1", 413, ""},
		{"OPAQUE cut short", "Provision", provision([]byte{provisionOpen, 0xc3, 0x87, 0x68}, []byte("0123456789")), false, "", 200, "102"},
		{"unterminated 2 MiB string", "Sync", sync([]byte{syncOpen, 0x03}, rep('a', 2<<20)), false, "", 200, "102"},
		{"5 MiB string, chunked", "Sync", sync([]byte{syncOpen, 0x03}, rep('a', 5<<20), []byte{0, 0x01}), true, "", 413, ""},
		{"5 MiB OPAQUE", "Sync", sync([]byte{syncOpen, 0xc3, 0x82, 0xc0, 0x80, 0x00}, rep('a', 5<<20), []byte{0x01}), false, "", 413, ""},
		{"5 MiB OPAQUE, chunked", "Sync", sync([]byte{syncOpen, 0xc3, 0x82, 0xc0, 0x80, 0x00}, rep('a', 5<<20), []byte{0x01}), true, "", 413, ""},
		{"Provision over 1 MiB", "Provision", provision([]byte{provisionOpen, 0x03}, rep('a', 1<<20), []byte{0, 0x01}), false, "", 413, ""},
		{"Provision over 1 MiB, chunked", "Provision", provision([]byte{provisionOpen, 0x03}, rep('a', 1<<20), []byte{0, 0x01}), true, "", 413, ""},
		{"Provision over 1 MiB, chunked 12.1", "Provision", provision([]byte{provisionOpen, 0x03}, rep('a', 1<<20), []byte{0, 0x01}), true, "12.1", 413, ""},
		{"header only", "Provision", []byte{0x03, 0x01}, false, "", 200, "102"},
		{"element never closed", "Provision", provision([]byte{provisionOpen}), false, "", 200, "102"},
		{"element never closed 12.1", "Provision", provision([]byte{provisionOpen}), false, "12.1", 400, ""},
		{"bad mb_u_int32", "Provision", provision([]byte{provisionOpen, 0xc3}, rep(0xff, 16)), false, "", 200, "102"},
		{"XML instead of WBXML", "Provision", []byte(`<?xml version="1.0"?><Provision xmlns="Provision"/>`), false, "", 200, "102"},
		{"data after the root", "Provision", provision([]byte{provisionNone}, rep(provisionNone, 10)), false, "", 200, "102"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			r, err := post(e.srv.URL, rawReq{user: "alice", device: "HOSTILE", version: tc.version, cmd: tc.cmd, body: tc.body, chunked: tc.chunked})
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			if r.code != tc.wantHTTP || r.status() != tc.want {
				t.Errorf("HTTP %d status %q, want %d %q", r.code, r.status(), tc.wantHTTP, tc.want)
			}
			// Allocated by the client and the server together: a bound,
			// not a measurement. The tree layer costs ~64 bytes an
			// element, and at most a quarter of the body's bytes are
			// elements.
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d-byte request: %.1f MiB allocated (client and server)", len(tc.body), float64(alloc)/(1<<20))
			if alloc > 64<<20 {
				t.Errorf("%d MiB allocated for a %d-byte request", alloc>>20, len(tc.body))
			}
		})
	}
	// The server still answers: nothing above took it down.
	if r, err := post(e.srv.URL, rawReq{user: "alice", device: "HOSTILE", cmd: "FolderSync",
		body: encode(t, wbxml.E(wbxml.FolderHierarchyFolderSync, wbxml.T(wbxml.FolderHierarchySyncKey, "0")))}); err != nil || r.code != 200 || r.status() != "1" {
		t.Errorf("FolderSync after the hostile requests: %d %q %v", r.code, r.status(), err)
	}
	if strings.Contains(e.logs.String(), "level=ERROR") {
		t.Errorf("server errors logged:\n%s", e.logs.String())
	}
}

// TestSyncWindowCap asks for windows over 512 (MS-ASCMD 2.2.3.199: larger
// values are taken as 512) in a PIM collection, per collection and
// globally, and in a mail folder.
func TestSyncWindowCap(t *testing.T) {
	const total, maxWindow = 600, 512
	t.Run("Contacts", func(t *testing.T) {
		e := newItemsEnv(t)
		a := e.phone("DEVA")
		adds := make([]client.SyncAdd, total)
		for i := range adds {
			adds[i] = client.SyncAdd{ClientID: fmt.Sprint(i), ApplicationData: contact(fmt.Sprintf("Person %03d", i), "")}
		}
		if r := a.sync(maxWindow, adds, nil, nil); len(r.Responses) != total {
			t.Fatalf("%d Add responses, want %d", len(r.Responses), total)
		}
		// Per collection.
		b := e.phone("DEVB")
		r := b.sync(1000, nil, nil, nil)
		if len(r.Adds) != maxWindow || !r.MoreAvailable {
			t.Errorf("WindowSize 1000: %d adds, MoreAvailable %v; want %d and true", len(r.Adds), r.MoreAvailable, maxWindow)
		}
		if r = b.sync(1000, nil, nil, nil); len(r.Adds) != total-maxWindow || r.MoreAvailable {
			t.Errorf("second window: %d adds, MoreAvailable %v; want %d and false", len(r.Adds), r.MoreAvailable, total-maxWindow)
		}
		// Global WindowSize (Sync > WindowSize).
		c := e.phone("DEVC")
		resp, err := c.c.Sync(context.Background(), client.SyncRequest{WindowSize: 100_000,
			Collections: []client.SyncCollection{{SyncKey: c.key, CollectionID: c.coll, GetChanges: new(true)}}})
		if err != nil {
			t.Fatal(err)
		}
		if cr := resp.Collection(c.coll); cr == nil || len(cr.Adds) != maxWindow || !cr.MoreAvailable {
			t.Errorf("global WindowSize 100000: %+v, want %d adds and MoreAvailable", cr, maxWindow)
		}
	})
	t.Run("Mail", func(t *testing.T) {
		e := newMailEnv(t)
		for i := range total {
			e.dc.Deliver(t, "alice", "", message(i, fmt.Sprintf("window %d", i), "x"))
		}
		c := e.phone("alice", "WINDOW1", "iPhone", "14.1")
		fs, _ := folders(t, c)
		inbox := fs["Inbox"].ServerID
		r := syncOnce(t, c, client.SyncCollection{SyncKey: "0", CollectionID: inbox})
		r = syncOnce(t, c, client.SyncCollection{SyncKey: r.SyncKey, CollectionID: inbox, WindowSize: 1000})
		if len(r.Adds) != maxWindow || !r.MoreAvailable {
			t.Errorf("WindowSize 1000: %d adds, MoreAvailable %v; want %d and true", len(r.Adds), r.MoreAvailable, maxWindow)
		}
		r = syncOnce(t, c, client.SyncCollection{SyncKey: r.SyncKey, CollectionID: inbox, WindowSize: 1000})
		if len(r.Adds) != total-maxWindow || r.MoreAvailable {
			t.Errorf("second window: %d adds, MoreAvailable %v; want %d and false", len(r.Adds), r.MoreAvailable, total-maxWindow)
		}
	})
}

// attachmentMail is a message from bob with a small and a large
// attachment (base64), for the MaxAttachmentSize tests.
func attachmentMail(small, large []byte) []byte {
	b64 := func(b []byte) string {
		s := base64.StdEncoding.EncodeToString(b)
		var out strings.Builder
		for len(s) > 76 {
			out.WriteString(s[:76] + "\r\n")
			s = s[76:]
		}
		return out.String() + s + "\r\n"
	}
	return []byte("From: Bob <bob@example.test>\r\nTo: Alice <alice@example.test>\r\nSubject: files\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <files@example.test>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nTwo files.\r\n" +
		"--b\r\nContent-Type: application/octet-stream; name=small.bin\r\nContent-Disposition: attachment; filename=small.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(small) +
		"--b\r\nContent-Type: application/octet-stream; name=large.bin\r\nContent-Disposition: attachment; filename=large.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(large) +
		"--b--\r\n")
}

// TestAttachmentLimit enforces the policy's MaxAttachmentSize on the
// server: ItemOperations Fetch answers status 11 (MS-ASCMD 2.2.3.177.8),
// GetAttachment HTTP 403, SendMail, SmartReply and SmartForward status
// 122 AttachmentIsTooLarge (MS-ASCMD 2.2.2; HTTP 413 in 12.1); nothing
// is sent. Attachments within the limit pass.
func TestAttachmentLimit(t *testing.T) {
	const limit = 4096
	e := startMailEnvWith(t, true, eas.Config{Domain: "example.test", Policy: eas.Policy{MaxAttachmentSize: limit}}, imapbridge.BackendOptions{})
	ctx := context.Background()
	small, large := bytes.Repeat([]byte("s"), limit), bytes.Repeat([]byte("L"), limit+1)
	e.dc.Deliver(t, "alice", "", attachmentMail(small, large))
	phone := e.phone("alice", "ATTACH1", "iPhone", "14.1")
	fs, _ := folders(t, phone)
	inbox := fs["Inbox"].ServerID
	items, _ := syncAll(t, phone, inbox, client.SyncOptions{})
	if len(items) != 1 {
		t.Fatalf("%d items in Inbox", len(items))
	}
	refs := map[string]string{}
	var serverID string
	for id, it := range items {
		serverID = id
		for a := range it.ApplicationData.Child(wbxml.AirSyncBaseAttachments).Each(wbxml.AirSyncBaseAttachment) {
			refs[a.ChildText(wbxml.AirSyncBaseDisplayName)] = a.ChildText(wbxml.AirSyncBaseFileReference)
		}
	}
	if refs["small.bin"] == "" || refs["large.bin"] == "" {
		t.Fatalf("attachments: %v", refs)
	}

	t.Run("ItemOperations", func(t *testing.T) {
		for _, multipart := range []bool{false, true} {
			_, data, err := phone.FetchAttachment(ctx, refs["small.bin"], multipart)
			if err != nil || !bytes.Equal(data, small) {
				t.Errorf("multipart %v: attachment of exactly the limit: %d bytes, %v", multipart, len(data), err)
			}
			_, _, err = phone.FetchAttachment(ctx, refs["large.bin"], multipart)
			var se *client.StatusError
			if !errors.As(err, &se) || se.Element != "Fetch" || se.Status != 11 {
				t.Errorf("multipart %v: attachment over the limit: %v, want Fetch status 11", multipart, err)
			}
		}
	})
	t.Run("GetAttachment", func(t *testing.T) {
		old := e.phone("alice", "ATTACH1", "iPhone", "12.1")
		if _, data, err := old.GetAttachment(ctx, refs["small.bin"]); err != nil || !bytes.Equal(data, small) {
			t.Errorf("attachment of exactly the limit: %d bytes, %v", len(data), err)
		}
		_, _, err := old.GetAttachment(ctx, refs["large.bin"])
		var he *client.HTTPError
		if !errors.As(err, &he) || he.Status != http.StatusForbidden {
			t.Errorf("attachment over the limit: %v, want HTTP 403", err)
		}
	})

	withFile := func(subject string, data []byte) []byte {
		return []byte("From: alice@example.test\r\nTo: bob@example.test\r\nSubject: " + subject + "\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=s\r\n\r\n" +
			"--s\r\nContent-Type: text/plain\r\n\r\nAttached.\r\n" +
			"--s\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"f.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			base64.StdEncoding.EncodeToString(data) + "\r\n--s--\r\n")
	}
	wantStatus := func(t *testing.T, what string, err error, status int) {
		t.Helper()
		var se *client.StatusError
		if !errors.As(err, &se) || se.Status != status {
			t.Errorf("%s: %v, want status %d", what, err, status)
		}
	}
	t.Run("Send", func(t *testing.T) {
		wantStatus(t, "SendMail over the limit", phone.SendMail(ctx, withFile("too big", large), client.ComposeOptions{ClientID: "big1"}), 122)
		// A text body larger than the limit is not an attachment.
		long := []byte("To: bob@example.test\r\nSubject: long text\r\n\r\n" + strings.Repeat("words ", 2*limit) + "\r\n")
		if err := phone.SendMail(ctx, long, client.ComposeOptions{ClientID: "long1"}); err != nil {
			t.Errorf("long text body: %v", err)
		}
		if err := phone.SendMail(ctx, withFile("fits", small), client.ComposeOptions{ClientID: "fits1"}); err != nil {
			t.Errorf("SendMail within the limit: %v", err)
		}
		wantStatus(t, "SmartReply carrying a large file", phone.SmartReply(ctx, withFile("Re: files", large),
			client.ComposeOptions{ClientID: "re1", FolderID: inbox, ItemID: serverID}), 122)
		// A forward adds the original's attachments: the large one is over.
		fwd := []byte("From: alice@example.test\r\nTo: bob@example.test\r\nSubject: Fwd: files\r\n\r\nSee below.\r\n")
		wantStatus(t, "SmartForward of the large attachment", phone.SmartForward(ctx, fwd,
			client.ComposeOptions{ClientID: "fw1", FolderID: inbox, ItemID: serverID}), 122)
		// 12.1 (MIME as the body): HTTP 413.
		old := e.phone("alice", "ATTACH121", "iPhone", "12.1")
		err := old.SendMail(ctx, withFile("too big 12.1", large), client.ComposeOptions{})
		var he *client.HTTPError
		if !errors.As(err, &he) || he.Status != http.StatusRequestEntityTooLarge {
			t.Errorf("12.1 SendMail over the limit: %v, want HTTP 413", err)
		}
		// Sent last, waited for: what was refused before it would be there.
		if err := phone.SendMail(ctx, []byte("To: bob@example.test\r\nSubject: marker\r\n\r\nx\r\n"), client.ComposeOptions{ClientID: "marker1"}); err != nil {
			t.Fatal(err)
		}
		got := e.folderMessages("bob", "INBOX", "marker")
		for _, subject := range []string{"too big", "Re: files", "Fwd: files", "too big 12.1"} {
			if n := len(withSubject(got, subject)); n != 0 {
				t.Errorf("%q was sent %d times", subject, n)
			}
		}
		if len(withSubject(got, "long text")) != 1 || len(withSubject(got, "fits")) != 1 {
			t.Errorf("the messages within the limit did not all arrive")
		}
	})
}

// TestBodyLimit checks the 413 paths of the request body limit: WBXML
// and the raw MIME of 12.1 SendMail (message/rfc822), with and without
// Content-Length. Nothing over the limit is sent.
func TestBodyLimit(t *testing.T) {
	const maxBody = 64 << 10
	e := startMailEnvWith(t, true, eas.Config{Domain: "example.test", MaxBodyBytes: maxBody}, imapbridge.BackendOptions{})
	phone := e.phone("alice", "BODY1", "iPhone", "14.1")
	folders(t, phone) // the device is registered, the hierarchy known
	big := []byte("To: bob@example.test\r\nSubject: huge\r\n\r\n" + strings.Repeat("x", maxBody) + "\r\n")
	fits := []byte("To: bob@example.test\r\nSubject: fits\r\n\r\nsmall\r\n")
	sendMail := func(mime []byte) []byte {
		return encode(t, wbxml.E(wbxml.ComposeMailSendMail, wbxml.T(wbxml.ComposeMailClientId, "b1"), wbxml.O(wbxml.ComposeMailMime, mime)))
	}
	for _, tc := range []struct {
		name     string
		r        rawReq
		wantHTTP int
	}{
		{"WBXML", rawReq{cmd: "SendMail", body: sendMail(big)}, 413},
		{"WBXML chunked", rawReq{cmd: "SendMail", body: sendMail(big), chunked: true}, 413},
		{"12.1 MIME", rawReq{cmd: "SendMail", version: "12.1", body: big, contentType: "message/rfc822"}, 413},
		{"12.1 MIME chunked", rawReq{cmd: "SendMail", version: "12.1", body: big, contentType: "message/rfc822", chunked: true}, 413},
		{"12.1 MIME within the limit", rawReq{cmd: "SendMail", version: "12.1", body: fits, contentType: "message/rfc822", chunked: true}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.user, tc.r.device = "alice", "BODY1"
			r, err := post(e.srv.URL, tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if r.code != tc.wantHTTP {
				t.Errorf("HTTP %d, want %d", r.code, tc.wantHTTP)
			}
		})
	}
	// "fits" went after the others: had they been sent, they would be there.
	if got := withSubject(e.folderMessages("bob", "INBOX", "fits"), "huge"); len(got) != 0 {
		t.Errorf("a message over the body limit was sent")
	}
}
