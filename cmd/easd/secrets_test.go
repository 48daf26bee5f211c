package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/easd/easd/eas"
	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/internal/testenv"
)

// lockedBuffer is an io.Writer safe for concurrent writes (a process's
// stdout and stderr copied by two goroutines).
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// captured is an `easd serve` whose whole stdout and stderr are kept.
type captured struct {
	cmd         *exec.Cmd
	addr, admin string
	out         *lockedBuffer
	exited      chan struct{} // closed once the process is gone
}

// startCaptured runs `easd serve` in dir with the environment extra (JSON
// logs) and waits for its "listening" line.
func startCaptured(t *testing.T, bin, dir string, extra ...string) *captured {
	t.Helper()
	c := &captured{cmd: exec.Command(bin, "serve"), out: &lockedBuffer{}, exited: make(chan struct{})}
	c.cmd.Dir = dir
	c.cmd.Env = append(os.Environ(), "EASD_LISTEN=127.0.0.1:0", "EASD_ADMIN_LISTEN=127.0.0.1:0", "EASD_LOG_FORMAT=json")
	c.cmd.Env = append(c.cmd.Env, extra...)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := c.exited
	go func() { c.cmd.Wait(); close(exited) }()
	t.Cleanup(func() { c.cmd.Process.Kill(); <-exited })
	deadline := time.After(10 * time.Second)
	for {
		for line := range strings.SplitSeq(c.out.String(), "\n") {
			var rec struct{ Msg, Addr, Admin string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				c.addr, c.admin = rec.Addr, rec.Admin
				return c
			}
		}
		select {
		case <-exited:
			t.Fatalf("easd serve exited before listening:\n%s", c.out)
		case <-deadline:
			t.Fatalf("easd serve did not listen within 10s:\n%s", c.out)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop ends the server with SIGTERM (bounded) and returns all it wrote.
func (c *captured) stop(t *testing.T) string {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(15 * time.Second):
		t.Errorf("easd serve still running 15s after SIGTERM")
	}
	return c.out.String()
}

// runBin runs the real binary once with environ (added to the process's)
// and stdin, and returns its exit code and output.
func runBin(t *testing.T, bin string, environ []string, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), environ...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("easd %v: %v", args, err)
	}
	return result{code, out.String(), errb.String()}
}

// recorder keeps every response's status, headers and body as the client
// received them.
type recorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(&r.buf, "%s %s: %s\n", req.Method, req.URL.Path, resp.Status)
	resp.Header.Write(&r.buf)
	r.buf.Write(body)
	r.buf.WriteString("\n")
	return resp, nil
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

// secretForms are the ways a password may show up: as is, URL-encoded,
// JSON-escaped, base64 alone and inside a Basic header for user.
func secretForms(user, pw string) []string {
	j, _ := json.Marshal(pw)
	return []string{pw, url.QueryEscape(pw), url.PathEscape(pw), string(j[1 : len(j)-1]),
		base64.StdEncoding.EncodeToString([]byte(pw)), base64.StdEncoding.EncodeToString([]byte(user + ":" + pw)),
		base64.RawURLEncoding.EncodeToString([]byte(pw))}
}

// sendAs sends one request with Basic credentials and returns the status.
func sendAs(t *testing.T, hc *http.Client, method, u, user, pw, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pw)
	if body != "" {
		req.Header.Set("Content-Type", "text/xml")
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// exercise sends user's right and wrong passwords every way a phone
// does: OPTIONS, GET, commands in both query forms, Autodiscover; with
// mail, FolderSync, Sync of the Inbox and a Ping held by the IMAP watcher.
func exercise(t *testing.T, hc *http.Client, base, user, right, wrong string, mail bool) {
	t.Helper()
	ctx := t.Context()
	ep := base + eas.Path
	q := "?User=" + user + "&DeviceId=SECRETS1&DeviceType=iPhone"
	ad := base + "/autodiscover/autodiscover.xml"
	adBody := `<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006"><Request><EMailAddress>` +
		user + `@example.com</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006</AcceptableResponseSchema></Request></Autodiscover>`
	for _, c := range []struct {
		method, u, pw, body string
		want                int
	}{
		{"OPTIONS", ep + q, wrong, "", 401},
		{"OPTIONS", ep + q, right, "", 200},
		{"GET", ep, wrong, "", 401},
		{"POST", ad, wrong, adBody, 401},
		{"POST", ad, right, adBody, 200},
	} {
		if got := sendAs(t, hc, c.method, c.u, user, c.pw, c.body); got != c.want {
			t.Errorf("%s %s as %s = %d, want %d", c.method, c.u, user, got, c.want)
		}
	}
	for _, b64 := range []bool{false, true} {
		dev := fmt.Sprintf("5EC2E7%d", map[bool]int{false: 0, true: 1}[b64])
		bad, err := client.New(client.Config{URL: base, User: user, Password: wrong, DeviceID: dev, DeviceType: "iPhone", HTTPClient: hc, Base64Query: b64, Version: "14.1"})
		if err != nil {
			t.Fatal(err)
		}
		var he *client.HTTPError
		if _, _, err := bad.Provision(ctx); !errors.As(err, &he) || he.Status != 401 {
			t.Errorf("Provision with a wrong password (base64 %v) = %v, want HTTP 401", b64, err)
		}
		phone, err := client.New(client.Config{URL: base, User: user, Password: right, DeviceID: dev, DeviceType: "iPhone", HTTPClient: hc, Base64Query: b64, Version: "14.1"})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := phone.Provision(ctx); err != nil {
			t.Fatalf("Provision (base64 %v): %v", b64, err)
		}
		if !mail {
			continue
		}
		fc, err := phone.FolderSync(ctx, "0")
		if err != nil {
			t.Fatalf("FolderSync (base64 %v): %v", b64, err)
		}
		inbox := ""
		for _, f := range fc.Added {
			if f.Type == client.FolderInbox {
				inbox = f.ServerID
			}
		}
		if inbox == "" {
			t.Fatalf("no Inbox in %+v", fc.Added)
		}
		if _, err := phone.SyncAll(ctx, inbox, client.SyncOptions{FilterType: "0", WindowSize: 50}, nil); err != nil {
			t.Fatalf("Sync (base64 %v): %v", b64, err)
		}
		if b64 {
			continue
		}
		// Held by the server on the IMAP watcher, which keeps the
		// password to reconnect.
		if r, err := phone.Ping(ctx, client.PingRequest{HeartbeatInterval: 2, Folders: []client.PingFolder{{ID: inbox, Class: "Email"}}}); err != nil || r.Status != client.PingExpired {
			t.Errorf("Ping = %+v, %v; want expired", r, err)
		}
	}
}

// TestSecretsNotLeaked runs real servers with debug logs, local users (with
// the IMAP service account for mail) and IMAP pass-through (real Dovecot,
// and an unreachable one), sends right and wrong passwords every way, runs
// the password commands, then looks for the passwords (as is, URL-encoded,
// JSON-escaped, base64, in a Basic header) in everything the servers
// wrote, /metrics, every HTTP response, and the commands' output. The one
// expected place is the new app password on the stdout of
// 'easd user app-password add'.
func TestSecretsNotLeaked(t *testing.T) {
	const (
		firstPW = "Lena+Sekr3t/first pw%&<1" // replaced by passwd
		localPW = "Lena+Sekr3t/local pw%&<2"
		imapPW  = "Sally+Sekr3t/imap pw%&<3"
		wrongPW = "Wrong+Sekr3t/guess pw%&<4"
		marker  = "Sekr3t" // in every password above
	)
	dc := testenv.Dovecot(t, map[string]string{"lena": "lena-unused-imap-pw", "sally": imapPW})
	for _, u := range []string{"lena", "sally"} {
		dc.Deliver(t, u, "", []byte("From: x@example.test\r\nSubject: hello\r\n\r\nhi\r\n"))
	}
	bin := buildEasd(t)
	dir := t.TempDir()
	data := []string{"EASD_DATA_DIR=" + filepath.Join(dir, "data")}
	outputs := map[string]string{} // where a password must not be -> its text
	cli := func(name, stdin string, args ...string) result {
		t.Helper()
		r := runBin(t, bin, data, stdin, args...)
		if r.code != 0 {
			t.Fatalf("easd %v: %+v", args, r)
		}
		outputs["easd "+name] = r.stdout + r.stderr
		return r
	}
	cli("user add", firstPW+"\n", "user", "add", "lena")
	cli("user passwd", localPW+"\n", "user", "passwd", "lena")
	add := cli("app-password add", "", "user", "app-password", "add", "lena", "--label", "secrets test")
	app := regexp.MustCompile(`(?m)^    ([a-z2-9]{5}(-[a-z2-9]{5}){4})$`).FindStringSubmatch(add.stdout)
	if app == nil {
		t.Fatalf("no app password in the output of app-password add:\n%s", add.stdout)
	}
	appPW := app[1]
	outputs["easd app-password add"] = add.stderr // its stdout holds appPW, by design
	if strings.Contains(add.stdout, marker) {
		t.Errorf("app-password add printed the account password:\n%s", add.stdout)
	}
	masterFile := filepath.Join(dir, "master-pw")
	if err := os.WriteFile(masterFile, []byte(dc.MasterPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	debug := []string{"EASD_LOG_LEVEL=debug", "EASD_HEARTBEAT_MIN=1s", "EASD_LOGIN_FAILURES=100", "EASD_DOMAIN=example.com"}
	local := startCaptured(t, bin, dir, append(append(debug, data...), "EASD_IMAP_ADDR="+dc.Addr, "EASD_IMAP_TLS=none",
		"EASD_IMAP_MASTER_USER="+dc.MasterUser, "EASD_IMAP_MASTER_PASSWORD_FILE="+masterFile)...)
	pass := startCaptured(t, bin, t.TempDir(), append(debug, "EASD_AUTH=imap", "EASD_IMAP_ADDR="+dc.Addr, "EASD_IMAP_TLS=none")...)
	down := startCaptured(t, bin, t.TempDir(), append(debug, "EASD_AUTH=imap", "EASD_IMAP_ADDR=127.0.0.1:1", "EASD_IMAP_TLS=none")...)

	rec := &recorder{}
	hc := &http.Client{Transport: rec, Timeout: 30 * time.Second}
	exercise(t, hc, "http://"+local.addr, "lena", localPW, wrongPW, true)
	exercise(t, hc, "http://"+local.addr, "lena", appPW, firstPW, false)
	exercise(t, hc, "http://"+pass.addr, "sally", imapPW, wrongPW, true)
	// The upstream is down: 503, and the password goes nowhere.
	if got := sendAs(t, hc, "OPTIONS", "http://"+down.addr+eas.Path, "sally", imapPW, ""); got != 503 {
		t.Errorf("OPTIONS with the upstream down = %d, want 503", got)
	}
	probe := runBin(t, bin, nil, localPW+"\n", "probe", "http://"+local.addr, "lena")
	if !strings.Contains(probe.stdout, "PASS  auth") {
		t.Errorf("probe did not log in:\n%s%s", probe.stdout, probe.stderr)
	}
	outputs["easd probe"] = probe.stdout + probe.stderr

	for name, s := range map[string]*captured{"local": local, "pass-through": pass, "upstream down": down} {
		resp, err := hc.Get("http://" + s.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s /metrics = %d", name, resp.StatusCode)
		}
		outputs[name+" server output"] = s.stop(t)
	}
	outputs["HTTP responses and /metrics"] = rec.String()

	// The flows ran: the watcher held a Ping with each server's credentials.
	for _, name := range []string{"local server output", "pass-through server output"} {
		if !strings.Contains(outputs[name], "imap watcher: connected") {
			t.Errorf("%s: the IMAP watcher never connected", name)
		}
	}
	if !strings.Contains(outputs["upstream down server output"], "127.0.0.1:1") {
		t.Errorf("the unreachable upstream was not tried")
	}

	secrets := map[string][]string{"marker " + marker: {marker}, "the service account's password": secretForms(dc.MasterUser, dc.MasterPassword),
		"the app password": append(secretForms("lena", appPW), strings.ToUpper(appPW), strings.ReplaceAll(appPW, "-", ""))}
	for _, pw := range []string{firstPW, localPW, imapPW, wrongPW} {
		secrets[pw] = append(secretForms("lena", pw), secretForms("sally", pw)...)
	}
	checked := 0
	for where, text := range outputs {
		for what, forms := range secrets {
			for _, f := range forms {
				checked++
				if i := strings.Index(text, f); i >= 0 {
					t.Errorf("%s (as %q) found in %s: …%s…", what, f, where, text[max(0, i-200):min(len(text), i+len(f)+50)])
				}
			}
		}
	}
	t.Logf("looked for %d password forms in %d outputs (%d bytes of server output, %d of HTTP responses)", checked, len(outputs),
		len(outputs["local server output"])+len(outputs["pass-through server output"])+len(outputs["upstream down server output"]),
		len(outputs["HTTP responses and /metrics"]))
	if !strings.Contains(add.stdout, appPW) {
		t.Error("app-password add did not print the app password")
	}
}
