package main

// The reverse-proxy snippets of docs/deployment.md, run with the real
// proxies in front of a real `easd serve` (issue #9): phones' commands,
// long polls longer than the proxies' defaults, forwarded headers and
// large bodies all pass.

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/wbxml"
)

const (
	// proxyPing is the long poll's heartbeat: longer than nginx's default
	// proxy_read_timeout (60 s), which the snippet must raise.
	proxyPing = 70 * time.Second
	// proxyLoginFailures locks a client address out after this many
	// failed logins.
	proxyLoginFailures = 3
)

// easdBehind is an `easd serve` on loopback, as the docs run it behind a
// proxy, and the test certificate the proxies use.
type easdBehind struct {
	cmd               *exec.Cmd
	addr              string
	logOf             func() string // the whole log, once easd has exited
	certFile, keyFile string
	roots             *x509.CertPool
}

// startEasdBehind runs `easd serve` with the docs' --trusted-proxies
// 127.0.0.1/32, local users alice, bob and eve (password NAME-pw) in
// SQLite, and no --external-url, so that Autodiscover's answer shows which
// name the proxy passed on.
func startEasdBehind(t *testing.T) *easdBehind {
	t.Helper()
	bin := buildEasd(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	for _, u := range []string{"alice", "bob", "eve"} {
		if r := easd(t, u+"-pw\n", map[string]string{"EASD_DATA_DIR": data}, "user", "add", u); r.code != 0 {
			t.Fatal(r)
		}
	}
	e := &easdBehind{}
	e.certFile, e.keyFile, e.roots = proxyCert(t, dir)
	var l listening
	e.cmd, l, e.logOf = startServeRec(t, bin, dir, "EASD_DATA_DIR="+data, "EASD_TRUSTED_PROXIES=127.0.0.1/32",
		"EASD_DOMAIN=example.com", fmt.Sprintf("EASD_LOGIN_FAILURES=%d", proxyLoginFailures), "EASD_LOGIN_WINDOW=10m")
	e.addr = l.Addr
	return e
}

// TestBehindNginx runs the documented nginx server blocks (nginx before
// 1.25.1 with "listen ... ssl http2" as the snippet's comment says) in
// front of easd, and, as a control, the same without proxy_read_timeout.
func TestBehindNginx(t *testing.T) {
	t.Parallel()
	bin := proxyBinary(t, "nginx", "nginx")
	snippet := docSnippet(t, "### nginx", "nginx")
	e := startEasdBehind(t)
	p := startNginx(t, bin, snippet, e.addr, e.certFile, e.keyFile, nil)
	control := startNginx(t, bin, snippet, e.addr, e.certFile, e.keyFile, func(s string) string {
		return edit(t, s, `(?m)^\s*proxy_read_timeout .*\n`, "", 1)
	})
	checkBehindProxy(t, e, p, control)
}

// TestBehindCaddy runs the documented Caddyfile (with the test's
// certificate instead of Let's Encrypt) in front of easd.
func TestBehindCaddy(t *testing.T) {
	t.Parallel()
	bin := proxyBinary(t, "caddy", "caddy")
	snippet := docSnippet(t, "### Caddy", "caddy")
	e := startEasdBehind(t)
	p := startCaddy(t, bin, snippet, e.addr, e.certFile, e.keyFile)
	checkBehindProxy(t, e, p, nil)
}

// pinged is how a long poll ended.
type pinged struct {
	resp *client.PingResponse
	err  error
	took time.Duration
}

// startPing provisions a phone of alice through p, syncs its folder
// hierarchy and sends a Ping of proxyPing on every folder, in the
// background, all over HTTP/2 when h2 is set, else HTTP/1.1.
func startPing(t *testing.T, e *easdBehind, p *proxyRun, deviceID string, h2 bool) <-chan pinged {
	t.Helper()
	ctx := t.Context()
	phone := newProxyPhone(t, phoneHTTP(p, "127.0.0.2", e.roots, h2), "alice", deviceID)
	caps, err := phone.Options(ctx)
	if err != nil {
		t.Fatalf("OPTIONS through the proxy: %v", err)
	}
	if !caps.Supports("Ping") {
		t.Fatalf("OPTIONS through the proxy: no Ping in %+v", caps)
	}
	if _, _, err := phone.Provision(ctx); err != nil {
		t.Fatalf("Provision through the proxy: %v", err)
	}
	fc, err := phone.FolderSync(ctx, "0")
	if err != nil {
		t.Fatalf("FolderSync through the proxy: %v", err)
	}
	var folders []client.PingFolder
	for _, f := range fc.Added {
		if class := folderClass(f.Type); class != "" {
			folders = append(folders, client.PingFolder{ID: f.ServerID, Class: class})
		}
	}
	if len(folders) == 0 {
		t.Fatalf("FolderSync through the proxy: no folder to watch in %+v", fc.Added)
	}
	done := make(chan pinged, 1)
	go func() {
		start := time.Now()
		resp, err := phone.Ping(context.WithoutCancel(ctx), client.PingRequest{HeartbeatInterval: int(proxyPing / time.Second), Folders: folders})
		done <- pinged{resp, err, time.Since(start)}
	}()
	return done
}

// folderClass is the Ping class of a FolderSync folder type (MS-ASCMD
// 2.2.3.186.3), "" for types not watched here.
func folderClass(typ int) string {
	switch typ {
	case client.FolderInbox:
		return "Email"
	case client.FolderCalendar:
		return "Calendar"
	case client.FolderContacts:
		return "Contacts"
	case client.FolderTasks:
		return "Tasks"
	}
	return ""
}

func newProxyPhone(t *testing.T, hc *http.Client, user, deviceID string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{URL: "https://mail.example.com", User: user, Password: user + "-pw",
		DeviceID: deviceID, DeviceType: "iPhone", UserAgent: "Apple-iPhone15C2/2104.112", HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkBehindProxy drives easd through p as phones do; control, when not
// nil, is a proxy whose long polls are expected to be cut (a 504).
func checkBehindProxy(t *testing.T, e *easdBehind, p, control *proxyRun) {
	ctx := t.Context()
	hc := phoneHTTP(p, "127.0.0.2", e.roots, true)

	// The long polls, over both protocols, run while the rest is checked.
	pings := map[string]<-chan pinged{
		"HTTP/1.1": startPing(t, e, p, "PROXYPHONE1", false),
		"HTTP/2":   startPing(t, e, p, "PROXYPHONE2", true),
	}
	var cut <-chan pinged
	if control != nil {
		cut = startPing(t, e, control, "PROXYPHONE3", false)
	}

	// Autodiscover's plain-HTTP step: a 302 to the same URL on https.
	resp, err := hc.Get("http://autodiscover.example.com/autodiscover/autodiscover.xml")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "https://autodiscover.example.com/autodiscover/autodiscover.xml"; resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != want {
		t.Errorf("GET http://autodiscover.example.com/autodiscover/autodiscover.xml = %d to %q, want 302 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}

	// Autodiscover answers with the name the phone asked for: the proxy
	// passed Host (or X-Forwarded-Host) on, and easd says https.
	for _, name := range proxyNames {
		got, err := client.Autodiscover(ctx, hc, "alice@example.com", "alice-pw", "https://"+name)
		if want := "https://" + name + "/Microsoft-Server-ActiveSync"; err != nil || got != want {
			t.Errorf("Autodiscover at %s = %q, %v; want %q", name, got, err, want)
		}
	}
	req, _ := http.NewRequest("GET", "https://mail.example.com/autodiscover/autodiscover.json?Email=alice@example.com&Protocol=ActiveSync", nil)
	if resp, err := hc.Do(req); err != nil {
		t.Error(err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("autodiscover.json over %s: %d %s", resp.Proto, resp.StatusCode, body)
		if resp.ProtoMajor != 2 {
			t.Errorf("the proxy speaks %s to phones, want HTTP/2", resp.Proto)
		}
	}

	// Paths other than ActiveSync and Autodiscover are not routed.
	for _, path := range []string{"/healthz", "/metrics", "/"} {
		resp, err := hc.Get("https://mail.example.com" + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s through the proxy = %d, want 404", path, resp.StatusCode)
		}
	}

	checkProxyLockout(t, e, p)
	checkProxyBigBody(t, e, p)

	for proto, ping := range pings {
		res := <-ping
		t.Logf("Ping of %v through the proxy over %s: answered after %v, err %v", proxyPing, proto, res.took.Round(time.Millisecond), res.err)
		if res.err != nil || res.resp.Status != client.PingExpired || res.took < proxyPing {
			t.Errorf("Ping of %v through the proxy over %s: %+v, %v after %v; want status %d after the whole interval", proxyPing, proto, res.resp, res.err, res.took, client.PingExpired)
		}
	}
	if cut != nil {
		res := <-cut
		var he *client.HTTPError
		t.Logf("Ping of %v through the control proxy (no proxy_read_timeout): answered after %v, err %v", proxyPing, res.took.Round(time.Millisecond), res.err)
		if !errors.As(res.err, &he) || he.Status != http.StatusGatewayTimeout {
			t.Errorf("Ping through the control proxy: %+v, %v after %v; want its 504", res.resp, res.err, res.took)
		}
	}
	if t.Failed() {
		t.Logf("proxy log:\n%s", p.log())
	}
	stopServe(t, e.cmd)
	logs := e.logOf()
	if strings.Contains(logs, "alice-pw") || strings.Contains(logs, "bob-pw") {
		t.Error("a password is in easd's log")
	}
	// easd's log names the phone's address the proxy saw, never the
	// proxy's own nor the one the phone forged.
	if n := strings.Count(logs, `login \"eve\" from 127.0.0.5: eas: bad credentials`); n != proxyLoginFailures {
		t.Errorf("easd logged %d failed logins of eve from 127.0.0.5, want %d", n, proxyLoginFailures)
	}
	if !strings.Contains(logs, `login \"bob\" from 127.0.0.5 locked out`) {
		t.Error("easd did not log the lockout of 127.0.0.5")
	}
	if strings.Contains(logs, "198.51.100.7") || strings.Contains(logs, "from 127.0.0.1") {
		t.Errorf("easd's log names the forged or the proxy's address:\n%s", logs)
	}
}

// checkProxyLockout: failed logins through the proxy lock out the phone's
// address (from X-Forwarded-For), not the proxy's, and a phone cannot
// escape the lock by sending an X-Forwarded-For of its own.
func checkProxyLockout(t *testing.T, e *easdBehind, p *proxyRun) {
	t.Helper()
	login := func(from, user, pw, xff string) int {
		t.Helper()
		req, _ := http.NewRequest("OPTIONS", "https://mail.example.com/Microsoft-Server-ActiveSync", nil)
		req.SetBasicAuth(user, pw)
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		resp, err := phoneHTTP(p, from, e.roots, true).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// A guesser at 127.0.0.5 fails eve's password until its address (and
	// eve) are locked out.
	for i := range proxyLoginFailures {
		if code := login("127.0.0.5", "eve", fmt.Sprintf("guess-%d", i), ""); code != http.StatusUnauthorized {
			t.Errorf("wrong password %d through the proxy: %d, want 401", i, code)
		}
	}
	// Its address stays locked whatever X-Forwarded-For it sends: bob's
	// right password from there is refused without a check.
	if code := login("127.0.0.5", "bob", "bob-pw", "198.51.100.7"); code != http.StatusServiceUnavailable {
		t.Errorf("the locked address with a forged X-Forwarded-For: %d, want 503", code)
	}
	// Other phones, through the same proxy, are not locked out.
	if code := login("127.0.0.6", "bob", "bob-pw", ""); code != http.StatusOK {
		t.Errorf("another address through the proxy: %d, want 200", code)
	}
}

// proxyBigBody is the size of the note of checkProxyBigBody's contact:
// ten times nginx's default client_max_body_size (1m).
const proxyBigBody = 10 << 20

// checkProxyBigBody: a request body the size of a large attachment passes
// the proxy to easd, and comes back to another phone through it.
func checkProxyBigBody(t *testing.T, e *easdBehind, p *proxyRun) {
	t.Helper()
	ctx := t.Context()
	hc := phoneHTTP(p, "127.0.0.3", e.roots, true)
	contacts := func(phone *client.Client) (id, key string) {
		t.Helper()
		if _, _, err := phone.Provision(ctx); err != nil {
			t.Fatalf("Provision through the proxy: %v", err)
		}
		fc, err := phone.FolderSync(ctx, "0")
		if err != nil {
			t.Fatalf("FolderSync through the proxy: %v", err)
		}
		for _, f := range fc.Added {
			if f.Type == client.FolderContacts {
				id = f.ServerID
			}
		}
		if id == "" {
			t.Fatalf("FolderSync through the proxy: no Contacts folder in %+v", fc.Added)
		}
		key, err = phone.SyncAll(ctx, id, client.SyncOptions{}, func(*client.SyncCollectionResponse) error { return nil })
		if err != nil {
			t.Fatalf("Sync through the proxy: %v", err)
		}
		return id, key
	}
	a, b := newProxyPhone(t, hc, "bob", "PROXYBIG1"), newProxyPhone(t, hc, "bob", "PROXYBIG2")
	coll, key := contacts(a)
	_, keyB := contacts(b)
	note := strings.Repeat("0123456789abcdef", proxyBigBody/16)
	app := wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.ContactsFileAs, "Big, Note"),
		wbxml.E(wbxml.AirSyncBaseBody, wbxml.T(wbxml.AirSyncBaseType, "1"), wbxml.T(wbxml.AirSyncBaseData, note)))
	r, err := a.Sync(ctx, client.SyncRequest{Collections: []client.SyncCollection{{SyncKey: key, CollectionID: coll,
		Adds: []client.SyncAdd{{ClientID: "big-1", ApplicationData: app}}}}})
	if err != nil {
		t.Errorf("Sync with a %d-byte contact through the proxy: %v", len(note), err)
		return
	}
	cr := r.Collection(coll)
	if cr == nil || len(cr.Responses) != 1 || cr.Responses[0].Status != 1 {
		t.Errorf("Sync with a %d-byte contact through the proxy: %+v", len(note), r)
		return
	}

	// The other phone receives it whole: the proxy streams 10 MB back.
	r, err = b.Sync(ctx, client.SyncRequest{Collections: []client.SyncCollection{{SyncKey: keyB, CollectionID: coll,
		Options: &client.SyncOptions{BodyPreferences: []client.BodyPreference{{Type: client.BodyPlain}}}}}})
	if err != nil {
		t.Errorf("Sync of the %d-byte contact through the proxy: %v", len(note), err)
		return
	}
	var got string
	if cr := r.Collection(coll); cr != nil && len(cr.Adds) == 1 {
		got = cr.Adds[0].ApplicationData.Child(wbxml.AirSyncBaseBody).ChildText(wbxml.AirSyncBaseData)
	}
	if got != note {
		t.Errorf("the other phone got a note of %d bytes through the proxy, want the %d sent", len(got), len(note))
	}
}
