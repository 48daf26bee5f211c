package eas

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/easd/easd/internal/passwd"
	"github.com/easd/easd/internal/testenv"
	"github.com/easd/easd/store"
	"github.com/easd/easd/store/sqlite"
	"github.com/easd/easd/wbxml"
)

// fastHash keeps password checks quick in tests.
var fastHash = passwd.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// testServer is an ActiveSync handler over a real SQLite store, served on
// loopback.
type testServer struct {
	t     *testing.T
	st    *sqlite.Store
	h     *Handler
	srv   *httptest.Server
	clock *fakeClock
	logs  *bytes.Buffer
}

type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

// newTestServer starts a handler with users alice/alice-pw and bob/bob-pw.
// cfg tweaks the configuration before the handler is built.
func newTestServer(t *testing.T, cfg func(*Config)) *testServer {
	t.Helper()
	st, err := sqlite.Open(context.Background(), testenv.SQLitePath(t), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, u := range []string{"alice", "bob"} {
		h, err := passwd.Hash(u+"-pw", fastHash, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.CreateUser(context.Background(), u, h); err != nil {
			t.Fatal(err)
		}
	}
	c := Config{Policy: DefaultPolicy, Domain: "example.com"}
	if cfg != nil {
		cfg(&c)
	}
	ts := &testServer{t: t, st: st, clock: &fakeClock{time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}, logs: &bytes.Buffer{}}
	ts.h = NewHandler(c, Deps{
		Store: st, Auth: LocalAuth{Users: st},
		Logger: slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    ts.clock.Now,
	})
	ts.srv = httptest.NewServer(ts.h)
	t.Cleanup(ts.srv.Close)
	return ts
}

// call is one request as a phone would send it.
type call struct {
	method     string // POST when empty
	cmd        string
	user, pass string // alice / alice-pw when empty; pass "-" sends no credentials
	device     string // DEV1 when empty
	devType    string // iPhone when empty
	version    string // 14.1 when empty; "-" sends none
	policyKey  *uint32
	body       *wbxml.Node
	rawBody    []byte // sent instead of body when set
	rawQuery   string // replaces the generated query when set
	path       string // Path when empty
}

// response is a decoded reply.
type response struct {
	code   int
	header http.Header
	raw    []byte
	body   *wbxml.Node
}

func (ts *testServer) do(c call) response {
	ts.t.Helper()
	if c.method == "" {
		c.method = http.MethodPost
	}
	if c.user == "" {
		c.user = "alice"
	}
	if c.pass == "" {
		c.pass = c.user + "-pw"
	}
	if c.device == "" {
		c.device = "DEV1"
	}
	if c.devType == "" {
		c.devType = "iPhone"
	}
	if c.version == "" {
		c.version = "14.1"
	}
	if c.path == "" {
		c.path = Path
	}
	q := c.rawQuery
	if q == "" {
		q = "Cmd=" + c.cmd + "&User=" + c.user + "&DeviceId=" + c.device + "&DeviceType=" + c.devType
	}
	var body io.Reader
	switch {
	case c.rawBody != nil:
		body = bytes.NewReader(c.rawBody)
	case c.body != nil:
		var b bytes.Buffer
		if err := wbxml.Encode(&b, c.body); err != nil {
			ts.t.Fatal(err)
		}
		body = &b
	}
	req, err := http.NewRequest(c.method, ts.srv.URL+c.path+"?"+q, body)
	if err != nil {
		ts.t.Fatal(err)
	}
	if c.pass != "-" {
		req.SetBasicAuth(c.user, c.pass)
	}
	if c.version != "-" {
		req.Header.Set("MS-ASProtocolVersion", c.version)
	}
	if c.policyKey != nil {
		req.Header.Set("X-MS-PolicyKey", strconv.FormatUint(uint64(*c.policyKey), 10))
	}
	req.Header.Set("Content-Type", "application/vnd.ms-sync.wbxml")
	req.Header.Set("User-Agent", "Apple-iPhone15C2/2104.112")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	r := response{code: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 && resp.Header.Get("Content-Type") == "application/vnd.ms-sync.wbxml" {
		if r.body, err = wbxml.DecodeBytes(raw, wbxml.Limits{}); err != nil {
			ts.t.Fatalf("response does not decode: %v", err)
		}
	}
	return r
}

// provision runs the two-step Provision flow and returns the final key.
func (ts *testServer) provision(c call) uint32 {
	ts.t.Helper()
	c.cmd = "Provision"
	c.body = provisionRequest("", "")
	r := ts.do(c)
	temp := r.body.Path(wbxml.ProvisionPolicies, wbxml.ProvisionPolicy).ChildText(wbxml.ProvisionPolicyKey)
	if r.code != 200 || temp == "" {
		ts.t.Fatalf("Provision step 1: %d %v", r.code, r.body)
	}
	c.body = provisionRequest(temp, "1")
	r = ts.do(c)
	final := r.body.Path(wbxml.ProvisionPolicies, wbxml.ProvisionPolicy).ChildText(wbxml.ProvisionPolicyKey)
	k, err := strconv.ParseUint(final, 10, 32)
	if r.code != 200 || err != nil {
		ts.t.Fatalf("Provision step 2: %d %v", r.code, r.body)
	}
	return uint32(k)
}

func provisionRequest(key, status string) *wbxml.Node {
	pol := wbxml.E(wbxml.ProvisionPolicy, wbxml.T(wbxml.ProvisionPolicyType, PolicyType))
	if key != "" {
		pol.Append(wbxml.T(wbxml.ProvisionPolicyKey, key), wbxml.T(wbxml.ProvisionStatus, status))
	}
	return wbxml.E(wbxml.ProvisionProvision, wbxml.E(wbxml.ProvisionPolicies, pol))
}

func ptr[T any](v T) *T { return &v }

// device returns alice's device DEV1 from the store.
func (ts *testServer) device(user, id string) store.Device {
	ts.t.Helper()
	u, err := ts.st.User(context.Background(), user)
	if err != nil {
		ts.t.Fatal(err)
	}
	d, err := ts.st.Device(context.Background(), u.ID, id)
	if err != nil {
		ts.t.Fatal(err)
	}
	return d
}

// base64Query builds the MS-ASHTTP 2.2.1.1.1.1 base64 query.
func base64Query(version byte, cmd byte, devID []byte, policyKey []byte, devType string, params ...[]byte) string {
	b := []byte{version, cmd, 0x09, 0x04, byte(len(devID))}
	b = append(b, devID...)
	b = append(b, byte(len(policyKey)))
	b = append(b, policyKey...)
	b = append(b, byte(len(devType)))
	b = append(b, devType...)
	for _, p := range params {
		b = append(b, p...)
	}
	return base64.StdEncoding.EncodeToString(b)
}
