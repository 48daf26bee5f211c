package eas

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/eas/tz"
	"github.com/easd/easd/internal/testenv"
	"github.com/easd/easd/store"
	"github.com/easd/easd/store/postgres"
	"github.com/easd/easd/store/sqlite"
	"github.com/easd/easd/wbxml"
)

// This file fuzzes whole requests through Handler.ServeHTTP: structured
// (method, query, headers, body) in FuzzHandler, raw HTTP/1.1 bytes read
// by net/http in FuzzHandlerRawHTTP. Both share one handler per fuzz
// process over a real SQLite store, or PostgreSQL with
// EASD_FUZZ_STORE=postgres (calendar, contacts, tasks and notes
// served by the real codecs; no mailbox), seeded with the requests a
// phone-like client (eas/client) sends through a whole session.

// fuzzAllowedCodes are the HTTP codes a request may get, whatever its
// bytes: none of them is a server fault. 500 (and any other 5xx but 501,
// which answers an unknown command, MS-ASHTTP 3.2.5.1) means the server
// failed on input it should have refused.
var fuzzAllowedCodes = []int{
	http.StatusOK,                    // including protocol errors as a Status in the body (14.0+, MS-ASCMD 2.2.2)
	http.StatusBadRequest,            // malformed request line, version, WBXML (MS-ASHTTP 3.2.5.1)
	http.StatusUnauthorized,          // credentials (MS-ASHTTP 3.2.5.1)
	http.StatusForbidden,             // disabled user, blocked device (MS-ASHTTP 3.2.5.1)
	http.StatusNotFound,              // another path
	http.StatusMethodNotAllowed,      // neither OPTIONS, POST nor GET
	http.StatusRequestEntityTooLarge, // body over the limit
	449,                              // Retry after sending a Provision command (MS-ASHTTP 3.2.5.1)
	http.StatusNotImplemented,        // command not served (MS-ASHTTP 3.2.5.1)
}

// fuzzMaxBody is the fuzz handler's request body limit; fuzzMaxResponse
// bounds any response (a Sync window of items the earlier inputs stored
// is the largest there is).
const (
	fuzzMaxBody     = 1 << 20
	fuzzMaxResponse = 16 << 20
)

// fuzzPasswords are the fuzz store's users; dave is disabled.
var fuzzPasswords = map[string]string{"alice": "alice-pw", "bob": "bob-pw", "dave": "dave-pw"}

// fuzzStoreAuth checks logins against the store's users with plain
// passwords (fuzzPasswords): argon2id per input would slow the fuzzer a
// thousandfold and is not what is under test.
type fuzzStoreAuth struct{ users UserStore }

func (a fuzzStoreAuth) Authenticate(ctx context.Context, login, pw string) (store.User, error) {
	u, err := lookupUser(ctx, a.users, login)
	if errors.Is(err, store.ErrNotFound) || (err == nil && fuzzPasswords[u.Name] != pw) {
		return store.User{}, ErrBadCredentials
	}
	return u, err
}

// newFuzzHandler returns a handler over a new SQLite store (PostgreSQL
// with EASD_FUZZ_STORE=postgres: it refuses text SQLite takes) with users
// alice, bob and dave (disabled), taking request bodies up to maxBody
// bytes. It does not enforce the policy (so that fuzzed requests reach
// the commands without guessing a policy key) and is drained (so that
// Ping and Sync with Wait answer at once).
func newFuzzHandler(tb testing.TB, maxBody int64) *Handler {
	tb.Helper()
	ctx := context.Background()
	var st store.Store
	var err error
	if os.Getenv("EASD_FUZZ_STORE") == "postgres" {
		st, err = postgres.Open(ctx, testenv.PostgresURL(tb), postgres.Options{Migrate: true})
	} else {
		st, err = sqlite.Open(ctx, testenv.SQLitePath(tb), sqlite.Options{Migrate: true})
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	for _, u := range []string{"alice", "bob", "dave"} {
		if _, err := st.CreateUser(ctx, u, "x"); err != nil {
			tb.Fatal(err)
		}
	}
	if err := st.SetDisabled(ctx, "dave", true); err != nil {
		tb.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	h := NewHandler(Config{
		Domain:        "example.com",
		MaxBodyBytes:  maxBody,
		LoginFailures: 1 << 30, // no lockout: it would answer 503 to every later input
		AccessRules:   []AccessRule{{DeviceType: "blocked*", Access: store.DeviceBlocked}},
	}, Deps{
		Store: st, Auth: fuzzStoreAuth{st}, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return now },
		// Keys from a fixed sequence: every fuzz process (the coordinator
		// and its workers each run the seeding session on their own
		// store) hands out the same sync and policy keys, so the seeds'
		// keys are valid in the workers too.
		Rand:  rand.NewChaCha8([32]byte{'e', 'a', 's', 'd'}),
		Items: st, Codecs: DefaultCodecs(),
	})
	h.Drain()
	return h
}

// fuzzCheck checks one response: an allowed code, a bounded body, a
// Content-Length that is the body's, a WBXML body that decodes and is no
// server error, a challenge with every 401.
func fuzzCheck(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	if !slices.Contains(fuzzAllowedCodes, w.Code) {
		t.Fatalf("HTTP %d (headers %v, body %q)", w.Code, w.Header(), w.Body.Bytes()[:min(w.Body.Len(), 200)])
	}
	if w.Body.Len() > fuzzMaxResponse {
		t.Fatalf("response of %d bytes", w.Body.Len())
	}
	if cl := w.Header().Get("Content-Length"); cl != "" && cl != strconv.Itoa(w.Body.Len()) {
		t.Fatalf("Content-Length %s for %d bytes", cl, w.Body.Len())
	}
	if w.Code == http.StatusUnauthorized && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic ") {
		t.Fatalf("401 without a Basic challenge: %v", w.Header())
	}
	if w.Header().Get("Content-Type") == "application/vnd.ms-sync.wbxml" {
		n, err := wbxml.DecodeBytes(w.Body.Bytes(), wbxml.Limits{})
		if err != nil {
			t.Fatalf("response does not decode: %v", err)
		}
		// A server error answered in the body (14.0+): 110 ServerError,
		// 111 ServerErrorRetryLater (MS-ASCMD 2.2.2); nothing here is
		// unavailable, so it is a fault like a 500.
		if st := n.ChildText(statusTag(n.Tag)); st == strconv.Itoa(StatusServerError) || st == strconv.Itoa(StatusServerErrorRetryLater) {
			t.Fatalf("Status %s: %v", st, n)
		}
	}
}

// fuzzHeaders are the request headers a recorded seed keeps.
var fuzzHeaders = []string{"MS-ASProtocolVersion", "X-MS-PolicyKey", "Content-Type", "MS-ASAcceptMultiPart", "User-Agent"}

// recordedRequest is one request of the seeding session.
type recordedRequest struct {
	method, query, headers string
	body                   []byte
	wire                   []byte // the whole request as sent on the wire
}

// recorder is an http.RoundTripper that serves requests with a handler
// directly and keeps them.
type recorder struct {
	h    http.Handler
	reqs []recordedRequest
}

func (rt *recorder) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			return nil, err
		}
		r.Body.Close()
	}
	var hs []string
	for _, k := range fuzzHeaders {
		if v := r.Header.Get(k); v != "" {
			hs = append(hs, k+": "+v)
		}
	}
	in := r.Clone(r.Context())
	in.Body = io.NopCloser(bytes.NewReader(body))
	in.ContentLength = int64(len(body))
	var wire bytes.Buffer
	if err := in.Write(&wire); err != nil {
		return nil, err
	}
	rt.reqs = append(rt.reqs, recordedRequest{method: r.Method, query: r.URL.RawQuery,
		headers: strings.Join(hs, "\n"), body: body, wire: wire.Bytes()})
	in.Body = io.NopCloser(bytes.NewReader(body))
	in.RequestURI = r.URL.RequestURI()
	w := httptest.NewRecorder()
	rt.h.ServeHTTP(w, in)
	return w.Result(), nil
}

// fuzzSession drives h through a phone's session (OPTIONS, Provision,
// FolderSync, Sync with an Add in each class, GetItemEstimate,
// ItemOperations, MoveItems, Ping, Settings, ResolveRecipients, Search,
// FolderCreate/Update/Delete) in the plain query form at 14.1 and in the
// base64 form at 12.1, and returns the requests sent. Errors are not
// checked: the requests are only seeds.
func fuzzSession(h http.Handler) []recordedRequest {
	rt := &recorder{h: h}
	ctx := context.Background()
	for _, cfg := range []client.Config{
		{User: "alice", Password: "alice-pw", DeviceID: "FUZZ1", DeviceType: "iPhone"},
		{User: "alice@example.com", Password: "alice-pw", DeviceID: "0a0b0c0d", DeviceType: "Android", Version: "12.1", Base64Query: true},
	} {
		cfg.URL = "http://easd.test"
		cfg.HTTPClient = &http.Client{Transport: rt}
		c, err := client.New(cfg)
		if err != nil {
			panic(err)
		}
		_, _, _ = c.Provision(ctx)
		fc, err := c.FolderSync(ctx, "0")
		if err != nil {
			continue
		}
		ids := map[int]string{}
		for _, f := range fc.Added {
			ids[f.Type] = f.ServerID
		}
		var items []client.Move
		class := map[int]string{8: "Calendar", 9: "Contacts", 7: "Tasks", 10: "Notes"}
		apps := fuzzApps()
		for _, typ := range []int{8, 9, 7, 10} { // in a fixed order: the same keys in every process
			app := apps[typ]
			coll := ids[typ]
			r, err := c.Sync(ctx, client.SyncRequest{Collections: []client.SyncCollection{{SyncKey: "0", CollectionID: coll}}})
			if err != nil || len(r.Collections) == 0 {
				continue
			}
			key := r.Collections[0].SyncKey
			r, err = c.Sync(ctx, client.SyncRequest{Collections: []client.SyncCollection{{SyncKey: key, CollectionID: coll,
				Adds: []client.SyncAdd{{ClientID: "c1", ApplicationData: app}}}}})
			if err != nil || len(r.Collections) == 0 {
				continue
			}
			key = r.Collections[0].SyncKey
			for _, ir := range r.Collections[0].Responses {
				items = append(items, client.Move{SrcMsgID: ir.ServerID, SrcFldID: coll, DstFldID: ids[typ]})
				_, _ = c.FetchItem(ctx, coll, ir.ServerID, client.FetchOptions{BodyPreferences: []client.BodyPreference{{Type: client.BodyPlain, TruncationSize: 100}}})
			}
			_, _ = c.GetItemEstimate(ctx, []client.EstimateRequest{{SyncKey: key, CollectionID: coll}})
			_, _ = c.Ping(ctx, client.PingRequest{HeartbeatInterval: 60, Folders: []client.PingFolder{{ID: coll, Class: class[typ]}}})
			_, _ = c.Sync(ctx, client.SyncRequest{Wait: 1, Collections: []client.SyncCollection{{SyncKey: key, CollectionID: coll}}})
		}
		key, trip, _ := c.FolderCreate(ctx, fc.SyncKey, "0", "Trips", 13)
		if trip != "" && len(items) > 0 {
			items[0].DstFldID = trip
			_, _ = c.MoveItems(ctx, items[:1])
		}
		key, _ = c.FolderUpdate(ctx, key, trip, "0", "Journeys")
		_, _ = c.FolderDelete(ctx, key, trip)
		_, _ = c.UserInformation(ctx)
		_, _ = c.ResolveRecipients(ctx, []string{"bob", "alice@example.com"}, client.ResolveOptions{CertificateRetrieval: 2})
		_, _ = c.SearchGAL(ctx, client.GALQuery{Query: "b", Range: "0-4"})
	}
	return rt.reqs
}

// fuzzApps are a small item of each store-backed class, by folder type.
func fuzzApps() map[int]*wbxml.Node {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		berlin = time.UTC
	}
	return map[int]*wbxml.Node{
		8: wbxml.E(wbxml.AirSyncApplicationData,
			wbxml.T(wbxml.CalendarTimezone, tz.FromLocation(berlin, 2026).Encode()),
			wbxml.T(wbxml.CalendarStartTime, "20261201T090000Z"), wbxml.T(wbxml.CalendarEndTime, "20261201T100000Z"),
			wbxml.T(wbxml.CalendarSubject, "Standup"), wbxml.T(wbxml.CalendarBusyStatus, "2"),
			wbxml.E(wbxml.CalendarRecurrence, wbxml.T(wbxml.CalendarType, "1"), wbxml.T(wbxml.CalendarDayOfWeek, "62"), wbxml.T(wbxml.CalendarOccurrences, "10")),
			wbxml.E(wbxml.CalendarAttendees, wbxml.E(wbxml.CalendarAttendee, wbxml.T(wbxml.CalendarEmail, "bob@example.com"), wbxml.T(wbxml.CalendarName, "Bob")))),
		9: wbxml.E(wbxml.AirSyncApplicationData,
			wbxml.T(wbxml.ContactsFirstName, "Jane"), wbxml.T(wbxml.ContactsLastName, "Doe"),
			wbxml.T(wbxml.ContactsEmail1Address, "jane@example.org"), wbxml.T(wbxml.ContactsMobilePhoneNumber, "+1 555 0100")),
		7: wbxml.E(wbxml.AirSyncApplicationData,
			wbxml.T(wbxml.TasksSubject, "Report"), wbxml.T(wbxml.TasksImportance, "2"),
			wbxml.T(wbxml.TasksUtcDueDate, "2026-12-05T17:00:00.000Z"), wbxml.T(wbxml.TasksDueDate, "2026-12-05T17:00:00.000Z"),
			wbxml.T(wbxml.TasksComplete, "0")),
		10: wbxml.E(wbxml.AirSyncApplicationData,
			wbxml.T(wbxml.NotesSubject, "Ideas"),
			wbxml.E(wbxml.AirSyncBaseBody, wbxml.T(wbxml.AirSyncBaseType, "1"), wbxml.T(wbxml.AirSyncBaseData, "Push."))),
	}
}

// FuzzHandler posts arbitrary requests to the handler: a mode byte picks
// the method (bits 0-1: POST, POST, OPTIONS, GET or, with bit 5, PUT), the
// credentials (bits 2-3: alice, alice@example.com, disabled dave, none)
// and a chunked body (bit 4); then the raw query, header lines
// ("Name: value", one a line) and the body. Every answer passes
// fuzzCheck: no panic, no server error, a bounded, well-formed response.
func FuzzHandler(f *testing.F) {
	h := newFuzzHandler(f, fuzzMaxBody)
	seeds := fuzzSession(h)
	if len(seeds) < 20 {
		f.Fatalf("the seeding session sent %d requests", len(seeds))
	}
	for _, s := range seeds {
		mode := uint8(0)
		if s.method == http.MethodOptions {
			mode = 2
		}
		f.Add(mode, s.query, s.headers, s.body)
	}
	f.Add(uint8(0b1101), "Cmd=Sync&User=dave&DeviceId=D&DeviceType=x", "MS-ASProtocolVersion: 12.1", []byte{})
	f.Add(uint8(0b10000), "Cmd=Provision&DeviceId=D&DeviceType=blocked1", "MS-ASProtocolVersion: 14.0\nContent-Type: application/vnd.ms-sync.wbxml", []byte{3, 1, 106, 0, 0, 14, 69, 70, 71, 72, 3, 'M', 'S', '-', 'E', 'A', 'S', '-', 'P', 'r', 'o', 'v', 'i', 's', 'i', 'o', 'n', 'i', 'n', 'g', '-', 'W', 'B', 'X', 'M', 'L', 0, 1, 1, 1, 1})
	f.Add(uint8(0b100011), "", "", []byte(nil))
	f.Fuzz(func(t *testing.T, mode uint8, query, headers string, body []byte) {
		method := []string{http.MethodPost, http.MethodPost, http.MethodOptions, http.MethodGet}[mode&3]
		if mode&3 == 3 && mode&32 != 0 {
			method = http.MethodPut
		}
		r := httptest.NewRequest(method, "http://easd.test"+Path, bytes.NewReader(body))
		r.URL.RawQuery = query
		r.RequestURI = r.URL.RequestURI()
		for line := range strings.SplitSeq(headers, "\n") {
			k, v, ok := strings.Cut(line, ":")
			if k = strings.TrimSpace(k); ok && validFieldName(k) {
				r.Header.Add(k, strings.TrimSpace(strings.Map(headerRune, v)))
			}
		}
		switch mode >> 2 & 3 {
		case 0:
			r.SetBasicAuth("alice", "alice-pw")
		case 1:
			r.SetBasicAuth("alice@example.com", "alice-pw")
		case 2:
			r.SetBasicAuth("dave", "dave-pw")
		}
		if mode&16 != 0 {
			r.ContentLength = -1
			r.TransferEncoding = []string{"chunked"}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fuzzCheck(t, w)
	})
}

// validFieldName reports whether s is an HTTP header name (RFC 9110
// token), as net/http requires of a request's headers.
func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// FuzzHandlerRawHTTP reads arbitrary bytes as an HTTP/1.1 request with
// net/http's own parser (what the server does with a connection's bytes)
// and serves what parses: every answer passes fuzzCheck. Seeded with the
// wire form of the seeding session's requests.
func FuzzHandlerRawHTTP(f *testing.F) {
	h := newFuzzHandler(f, fuzzMaxBody)
	for _, s := range fuzzSession(h) {
		f.Add(s.wire)
	}
	f.Add([]byte("POST /Microsoft-Server-ActiveSync?Cmd=Ping&User=alice&DeviceId=R1&DeviceType=x HTTP/1.1\r\nHost: h\r\n" +
		"Authorization: Basic YWxpY2U6YWxpY2UtcHc=\r\nMS-ASProtocolVersion: 14.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n\x03\x01\x6a\x00\x00\r\n0\r\n\r\n"))
	f.Add([]byte("OPTIONS /microsoft-server-activesync HTTP/1.0\r\nAuthorization: Basic YWxpY2U6YWxpY2UtcHc=\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			return // net/http answers 400 itself
		}
		r.RemoteAddr = "192.0.2.1:1234"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fuzzCheck(t, w)
	})
}

// TestFuzzSessionRepeats: the seeding session sends the same requests on
// a fresh store every time (the fixed key sequence), so the keys in the
// seeds that one fuzz process records are valid in the others.
func TestFuzzSessionRepeats(t *testing.T) {
	a, b := fuzzSession(newFuzzHandler(t, fuzzMaxBody)), fuzzSession(newFuzzHandler(t, fuzzMaxBody))
	if len(a) != len(b) {
		t.Fatalf("%d requests, then %d", len(a), len(b))
	}
	for i := range a {
		if !bytes.Equal(a[i].wire, b[i].wire) {
			t.Fatalf("request %d differs:\n%q\n%q", i, a[i].wire, b[i].wire)
		}
	}
}
