package client_test

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/easd/easd/eas"
	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/internal/passwd"
	"github.com/easd/easd/internal/testenv"
	"github.com/easd/easd/store"
	"github.com/easd/easd/store/sqlite"
	"github.com/easd/easd/wbxml"
	"github.com/google/go-cmp/cmp"
)

// fastHash keeps password checks quick in tests.
var fastHash = passwd.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// hit is one request the server answered.
type hit struct {
	Method string
	Cmd    string
	Code   int
	Base64 bool
}

// server is the real ActiveSync handler over SQLite, behind TLS on
// loopback. Its handler can be replaced (same store) to change the config.
type server struct {
	t   *testing.T
	st  *sqlite.Store
	srv *httptest.Server
	h   atomic.Pointer[eas.Handler]

	mu   sync.Mutex
	hits []hit
}

// newServer starts a server with users alice/alice-pw and bob/bob-pw.
func newServer(t *testing.T, cfg eas.Config) *server {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, testenv.SQLitePath(t), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, u := range []string{"alice", "bob"} {
		h, err := passwd.Hash(u+"-pw", fastHash, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.CreateUser(ctx, u, h); err != nil {
			t.Fatal(err)
		}
	}
	s := &server{t: t, st: st}
	s.setConfig(cfg)
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

// setConfig replaces the handler, keeping the store.
func (s *server) setConfig(cfg eas.Config) {
	s.h.Store(eas.NewHandler(cfg, eas.Deps{
		Store: s.st, Auth: eas.LocalAuth{Users: s.st},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	rec := &codeRecorder{ResponseWriter: w, code: http.StatusOK}
	if eas.IsAutodiscoverPath(r.URL.Path) {
		s.h.Load().Autodiscover(eas.AutodiscoverConfig{}).ServeHTTP(rec, r)
		return
	}
	s.h.Load().ServeHTTP(rec, r)
	cmd, b64 := commandOf(r.URL.RawQuery)
	s.mu.Lock()
	s.hits = append(s.hits, hit{Method: r.Method, Cmd: cmd, Code: rec.code, Base64: b64})
	s.mu.Unlock()
}

type codeRecorder struct {
	http.ResponseWriter
	code int
}

func (c *codeRecorder) WriteHeader(code int) {
	c.code = code
	c.ResponseWriter.WriteHeader(code)
}

var b64Commands = map[byte]string{0: "Sync", 9: "FolderSync", 17: "Settings", 18: "Ping", 20: "Provision"}

// commandOf returns the command of a request's query in either form.
func commandOf(raw string) (string, bool) {
	if raw == "" {
		return "", false
	}
	if strings.Contains(raw, "=") {
		q, _ := url.ParseQuery(raw)
		return q.Get("Cmd"), false
	}
	s, _ := url.QueryUnescape(raw)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) < 2 {
		return "?", true
	}
	return b64Commands[b[1]], true
}

// takeHits returns and forgets the requests seen so far.
func (s *server) takeHits() []hit {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hits
	s.hits = nil
	return h
}

// client returns a client for alice on this server.
func (s *server) client(cfg client.Config) *client.Client {
	s.t.Helper()
	if cfg.URL == "" {
		cfg.URL = s.srv.URL
	}
	if cfg.User == "" {
		cfg.User, cfg.Password = "alice", "alice-pw"
	}
	if cfg.DeviceID == "" {
		cfg.DeviceID = "DEV1"
	}
	cfg.HTTPClient = s.srv.Client()
	c, err := client.New(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

func (s *server) device(user, id string) store.Device {
	s.t.Helper()
	u, err := s.st.User(context.Background(), user)
	if err != nil {
		s.t.Fatal(err)
	}
	d, err := s.st.Device(context.Background(), u.ID, id)
	if err != nil {
		s.t.Fatalf("device %s/%s: %v", user, id, err)
	}
	return d
}

func userInformation() *wbxml.Node {
	return wbxml.E(wbxml.SettingsSettings, wbxml.E(wbxml.SettingsUserInformation, wbxml.E(wbxml.SettingsGet)))
}

func TestNegotiate(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		server   []string
		forced   string
		want     string
		wantFail bool
	}{
		{name: "default server", want: "14.1"},
		{name: "16.1 server", server: []string{"12.1", "14.0", "14.1", "16.0", "16.1"}, want: "16.1"},
		{name: "old server", server: []string{"2.5", "12.0"}, wantFail: true},
		{name: "forced", forced: "14.0", want: "14.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, eas.Config{Policy: eas.DefaultPolicy, Versions: tc.server})
			c := s.client(client.Config{Version: tc.forced})
			v, caps, err := c.Negotiate(ctx)
			if tc.wantFail {
				if err == nil || c.Version() != "" {
					t.Fatalf("Negotiate = %q, %v; want an error", v, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v != tc.want || c.Version() != tc.want {
				t.Errorf("version %q (client says %q), want %q", v, c.Version(), tc.want)
			}
			if !caps.Supports("Provision") || !caps.Supports("settings") || caps.Supports("Find") || caps.Server == "" {
				t.Errorf("capabilities %+v", caps)
			}
		})
	}
}

func TestOptionsWrongPassword(t *testing.T) {
	s := newServer(t, eas.Config{Policy: eas.DefaultPolicy})
	c := s.client(client.Config{Password: "nope", User: "alice"})
	_, err := c.Options(context.Background())
	var he *client.HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusUnauthorized || !strings.Contains(he.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("Options with a wrong password: %v", err)
	}
	// A command is refused the same way, before any provisioning.
	if _, err := c.Do(context.Background(), "Settings", userInformation()); !errors.As(err, &he) || he.Status != 401 {
		t.Errorf("Settings with a wrong password: %v", err)
	}
}

func TestProvisionBothQueryForms(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, deviceID, serverID string
		base64                   bool
	}{
		{"plain", "Appl1234ABCD", "Appl1234ABCD", false},
		// The base64 form sends a hex id as bytes; the server hex-encodes them.
		{"base64 hex id", "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "0A1B2C3D4E5F60718293A4B5C6D7E8F9", true},
		{"base64 text id", "WP8", "575038", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, eas.Config{Policy: eas.DefaultPolicy})
			c := s.client(client.Config{DeviceID: tc.deviceID, DeviceType: "WP8", Base64Query: tc.base64})
			key, doc, err := c.Provision(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if key == 0 || c.PolicyKey() != key {
				t.Errorf("key %d, client holds %d", key, c.PolicyKey())
			}
			if doc.Tag != wbxml.ProvisionEASProvisionDoc || doc.ChildText(wbxml.ProvisionAllowSimpleDevicePassword) != "1" {
				t.Errorf("policy document %v", doc)
			}
			d := s.device("alice", tc.serverID)
			if d.PolicyKey != key || d.PolicyHash != eas.DefaultPolicy.Hash() || d.ProtocolVersion != "14.1" {
				t.Errorf("stored device %+v, want key %d and the policy's hash", d, key)
			}
			// The key is accepted afterwards: no 449/142 round, no new Provision.
			s.takeHits()
			if _, err := c.Do(ctx, "Settings", userInformation()); err != nil {
				t.Fatal(err)
			}
			want := []hit{{Method: "POST", Cmd: "Settings", Code: 200, Base64: tc.base64}}
			if diff := cmp.Diff(want, s.takeHits()); diff != "" {
				t.Errorf("requests after provisioning (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIOSSession(t *testing.T) {
	ctx := context.Background()
	s := newServer(t, eas.Config{Policy: eas.DefaultPolicy, Domain: "example.com"})
	c := s.client(client.Config{
		User: "alice@example.com", Password: "alice-pw",
		DeviceID: "kc28f3e3o53nhduj5rmqk1sge4", DeviceType: "iPhone", UserAgent: "Apple-iPhone15C2/2104.112",
		DeviceInfo: client.DeviceInfo{Model: "iPhone15C2", OS: "iOS 17.1 21B80", OSLanguage: "en", FriendlyName: "Alice's iPhone"},
	})
	if _, _, err := c.Negotiate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	d := s.device("alice", "kc28f3e3o53nhduj5rmqk1sge4")
	got := []string{d.DeviceType, d.UserAgent, d.Model, d.OS, d.OSLanguage, d.FriendlyName, d.ProtocolVersion}
	want := []string{"iPhone", "Apple-iPhone15C2/2104.112", "iPhone15C2", "iOS 17.1 21B80", "en", "Alice's iPhone", "14.1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("device after Provision with DeviceInformation (-want +got):\n%s", diff)
	}
	info, err := c.UserInformation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantInfo := &client.UserInfo{
		Addresses: []string{"alice@example.com"},
		Accounts:  []client.Account{{DisplayName: "alice", PrimaryAddress: "alice@example.com", Addresses: []string{"alice@example.com"}}},
	}
	if diff := cmp.Diff(wantInfo, info); diff != "" {
		t.Errorf("UserInformation (-want +got):\n%s", diff)
	}
	if err := c.SetDeviceInformation(ctx, client.DeviceInfo{Model: "iPhone15C2", OS: "iOS 17.2"}); err != nil {
		t.Fatal(err)
	}
	if d := s.device("alice", "kc28f3e3o53nhduj5rmqk1sge4"); d.OS != "iOS 17.2" {
		t.Errorf("OS after Settings DeviceInformation: %q", d.OS)
	}
	for _, h := range s.takeHits() {
		if h.Code != http.StatusOK {
			t.Errorf("request %+v not answered 200", h)
		}
	}
}

func TestAndroidSession(t *testing.T) {
	ctx := context.Background()
	s := newServer(t, eas.Config{Policy: eas.DefaultPolicy, Domain: "example.com"})
	c := s.client(client.Config{DeviceID: "androidc1234567890", DeviceType: "Android", UserAgent: "Android-Mail/2023.10.29", Version: "14.0"})
	if _, _, err := c.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	d := s.device("alice", "androidc1234567890")
	if d.DeviceType != "Android" || d.ProtocolVersion != "14.0" || d.PolicyKey != c.PolicyKey() {
		t.Errorf("stored device %+v", d)
	}
	if d.Model != "" {
		t.Errorf("14.0 sent DeviceInformation in Provision: model %q", d.Model)
	}
	info, err := c.UserInformation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"alice@example.com"}, info.Addresses); diff != "" || len(info.Accounts) != 0 {
		t.Errorf("14.0 UserInformation %+v (-want +got addresses):\n%s", info, diff)
	}
	fc, err := c.FolderSync(ctx, "0")
	var se *client.StatusError
	switch {
	case errors.As(err, &se) && se.Status == client.StatusCommandNotSupported:
		t.Log("FolderSync is not implemented by the server yet")
	case err != nil:
		t.Fatal(err)
	case fc.SyncKey == "" || len(fc.Added) == 0:
		t.Errorf("FolderSync 0 = %+v", fc)
	}
	for _, h := range s.takeHits() {
		if h.Base64 || h.Code == 449 {
			t.Errorf("unexpected request %+v", h)
		}
	}
}

func TestRemoteWipe(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		version     string
		wipe        store.WipeState
		accountOnly bool
		want        []hit
	}{
		{"14.1", store.WipePending, false, []hit{
			{"POST", "Settings", 200, false},  // status 140 in the body
			{"POST", "Provision", 200, false}, // empty Provision: RemoteWipe
			{"POST", "Provision", 200, false}, // acknowledgement
		}},
		{"12.1", store.WipePending, false, []hit{
			{"POST", "Settings", 449, false},
			{"POST", "Provision", 200, false}, // policy request answered with RemoteWipe
			{"POST", "Provision", 200, false},
		}},
		{"16.1", store.WipeAccountOnly, true, []hit{
			{"POST", "Settings", 200, false},
			{"POST", "Provision", 200, false},
			{"POST", "Provision", 200, false},
		}},
	} {
		t.Run(tc.version, func(t *testing.T) {
			s := newServer(t, eas.Config{Policy: eas.DefaultPolicy, Versions: client.SupportedVersions()})
			c := s.client(client.Config{Version: tc.version})
			if _, _, err := c.Provision(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := s.st.SetDeviceWipe(ctx, s.device("alice", "DEV1").ID, tc.wipe); err != nil {
				t.Fatal(err)
			}
			s.takeHits()
			_, err := c.Do(ctx, "Settings", userInformation())
			var we *client.WipeError
			if !errors.Is(err, client.ErrWiped) || !errors.As(err, &we) || we.AccountOnly != tc.accountOnly || we.AckErr != nil {
				t.Fatalf("Settings during a pending wipe: %v", err)
			}
			if diff := cmp.Diff(tc.want, s.takeHits()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			if got := s.device("alice", "DEV1").Wipe; got != store.WipeAcknowledged {
				t.Errorf("stored wipe state %q, want %q", got, store.WipeAcknowledged)
			}
			if c.Wiped() == nil || c.PolicyKey() != 0 {
				t.Errorf("client after the wipe: wiped %v, key %d", c.Wiped(), c.PolicyKey())
			}
			// A wiped client sends nothing more.
			if _, err := c.Do(ctx, "Settings", userInformation()); !errors.Is(err, client.ErrWiped) {
				t.Errorf("request after the wipe: %v", err)
			}
			if h := s.takeHits(); len(h) != 0 {
				t.Errorf("wiped client still sent %+v", h)
			}
		})
	}
}

func TestReprovisionAfterPolicyChange(t *testing.T) {
	ctx := context.Background()
	s := newServer(t, eas.Config{Policy: eas.DefaultPolicy})
	c := s.client(client.Config{})
	old, _, err := c.Provision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stricter := eas.DefaultPolicy
	stricter.CameraBlocked = true
	s.setConfig(eas.Config{Policy: stricter})
	s.takeHits()
	if _, err := c.Do(ctx, "Settings", userInformation()); err != nil {
		t.Fatal(err)
	}
	want := []hit{
		{"POST", "Settings", 200, false}, // status 143
		{"POST", "Provision", 200, false},
		{"POST", "Provision", 200, false},
		{"POST", "Settings", 200, false},
	}
	if diff := cmp.Diff(want, s.takeHits()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	d := s.device("alice", "DEV1")
	if c.PolicyKey() == old || c.PolicyKey() != d.PolicyKey || d.PolicyHash != stricter.Hash() {
		t.Errorf("client key %d (was %d), stored %d with hash %s, want hash %s", c.PolicyKey(), old, d.PolicyKey, d.PolicyHash, stricter.Hash())
	}
}

func TestConcurrentReprovisionOnce(t *testing.T) {
	ctx := context.Background()
	s := newServer(t, eas.Config{Policy: eas.DefaultPolicy})
	c := s.client(client.Config{})
	if _, _, err := c.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	stricter := eas.DefaultPolicy
	stricter.HTMLEmailBlocked = true
	s.setConfig(eas.Config{Policy: stricter})
	s.takeHits()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if _, err := c.Do(ctx, "Settings", userInformation()); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	n := 0
	for _, h := range s.takeHits() {
		if h.Cmd == "Provision" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d Provision requests, want one exchange of 2", n)
	}
	if d := s.device("alice", "DEV1"); d.PolicyKey != c.PolicyKey() || d.PolicyHash != stricter.Hash() {
		t.Errorf("stored device %+v, client key %d", d, c.PolicyKey())
	}
}

func TestStatus449With121(t *testing.T) {
	ctx := context.Background()
	s := newServer(t, eas.Config{Policy: eas.DefaultPolicy})
	c := s.client(client.Config{Version: "12.1", DeviceType: "iPhone"})
	// No explicit Provision: the server's 449 makes the client provision.
	if _, err := c.Do(ctx, "Settings", userInformation()); err != nil {
		t.Fatal(err)
	}
	want := []hit{
		{"POST", "Settings", 449, false},
		{"POST", "Provision", 200, false},
		{"POST", "Provision", 200, false},
		{"POST", "Settings", 200, false},
	}
	if diff := cmp.Diff(want, s.takeHits()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if d := s.device("alice", "DEV1"); c.PolicyKey() == 0 || d.PolicyKey != c.PolicyKey() || d.Model != "" {
		t.Errorf("client key %d, stored device %+v (12.1 sends no DeviceInformation)", c.PolicyKey(), d)
	}
}

func TestAutodiscoverThenProvision(t *testing.T) {
	ctx := context.Background()
	s := newServer(t, eas.Config{Policy: eas.DefaultPolicy, Domain: "example.com"})
	if _, err := client.Autodiscover(ctx, s.srv.Client(), "alice@example.com", "wrong", s.srv.URL); err == nil {
		t.Error("Autodiscover with a wrong password succeeded")
	}
	u, err := client.Autodiscover(ctx, s.srv.Client(), "alice@example.com", "alice-pw", s.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if want := s.srv.URL + eas.Path; u != want {
		t.Errorf("Autodiscover = %q, want %q", u, want)
	}
	c := s.client(client.Config{URL: u, User: "alice@example.com", Password: "alice-pw"})
	if _, _, err := c.Provision(ctx); err != nil {
		t.Fatal(err)
	}
}
