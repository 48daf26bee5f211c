package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/acme"

	"github.com/easd/easd/internal/config"
)

func TestServeTLSUsageErrors(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM, _ := tlsTestCert(t, "mail.example.test", 1)
	_, otherKey, _ := tlsTestCert(t, "other.example.test", 2)
	certFile, keyFile, otherFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "other.pem")
	for f, b := range map[string][]byte{certFile: certPEM, keyFile: keyPEM, otherFile: otherKey} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"cert without key", []string{"--tls-cert", certFile}, 2, "--tls-cert and --tls-key go together"},
		{"acme and cert files", []string{"--acme-domains", "mail.example.test", "--tls-cert", certFile, "--tls-key", keyFile}, 2, "mutually exclusive"},
		{"acme email alone", []string{"--acme-email", "admin@example.test"}, 2, "--acme-email is set but --acme-domains is empty"},
		{"acme directory alone", []string{"--acme-directory", "https://ca.example.test/dir"}, 2, "--acme-directory is set but --acme-domains is empty"},
		{"acme http listen alone", []string{"--acme-http-listen", ":8081"}, 2, "--acme-http-listen is set but"},
		{"wildcard", []string{"--acme-domains", "*.example.test"}, 2, "wildcards need the DNS-01 challenge"},
		{"port", []string{"--acme-domains", "mail.example.test:443"}, 2, "want a bare host name"},
		{"url", []string{"--acme-domains", "https://mail.example.test"}, 2, "want a bare host name"},
		{"ip", []string{"--acme-domains", "192.0.2.1"}, 2, "not an IP address"},
		{"single label", []string{"--acme-domains", "localhost"}, 2, "fully qualified"},
		{"only commas", []string{"--acme-domains", " , "}, 2, "--acme-domains: no host name"},
		{"bad email", []string{"--acme-domains", "mail.example.test", "--acme-email", "admin"}, 2, "--acme-email \"admin\""},
		{"plain http directory", []string{"--acme-domains", "mail.example.test", "--acme-directory", "http://ca.example.test/dir"}, 2, "plain http only to a loopback address"},
		{"directory not a URL", []string{"--acme-domains", "mail.example.test", "--acme-directory", "ca.example.test"}, 2, "want the CA's https directory URL"},
		{"bad http listen", []string{"--acme-domains", "mail.example.test", "--acme-http-listen", "80"}, 2, "--acme-http-listen \"80\""},
		// Files that do not load are a failure, not a usage error, named in the message.
		{"key mismatch", []string{"--tls-cert", certFile, "--tls-key", otherFile}, 1, "TLS key file " + otherFile + " does not match the certificate in " + certFile},
		{"missing cert", []string{"--tls-cert", filepath.Join(dir, "nope.pem"), "--tls-key", keyFile}, 1, "TLS certificate file " + filepath.Join(dir, "nope.pem") + ": no such file or directory"},
		{"key as cert", []string{"--tls-cert", keyFile, "--tls-key", keyFile}, 1, "holds a private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			r := easd(t, "", map[string]string{"EASD_DATA_DIR": data, "EASD_LISTEN": "127.0.0.1:0", "EASD_ADMIN_LISTEN": ""},
				append([]string{"serve"}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, want %d with %q; stderr:\n%s", r.code, tc.code, tc.want, r.stderr)
			}
			// Refused before the store is opened.
			if _, err := os.Stat(filepath.Join(data, "easd.db")); err == nil {
				t.Error("database created before the TLS settings were checked")
			}
		})
	}
}

func TestRedirectToHTTPS(t *testing.T) {
	h := redirectToHTTPS([]string{"mail.example.test", "autodiscover.example.test"})
	for _, tc := range []struct {
		method, host, target string
		code                 int
		location             string
	}{
		{"GET", "autodiscover.example.test", "/autodiscover/autodiscover.xml", 302, "https://autodiscover.example.test/autodiscover/autodiscover.xml"},
		{"GET", "Mail.Example.Test:80", "/x?a=b", 302, "https://mail.example.test/x?a=b"},
		{"HEAD", "evil.example.org", "/", 302, "https://mail.example.test/"},
		{"POST", "mail.example.test", "/Microsoft-Server-ActiveSync", 400, ""},
	} {
		r := httptest.NewRequest(tc.method, "http://"+tc.host+tc.target, nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.code || w.Header().Get("Location") != tc.location {
			t.Errorf("%s %s%s = %d %q, want %d %q", tc.method, tc.host, tc.target, w.Code, w.Header().Get("Location"), tc.code, tc.location)
		}
	}
}

func TestACMESetup(t *testing.T) {
	parse := func(args ...string) acmeFlags {
		t.Helper()
		fs := config.NewFlagSet("easd serve", "", func(string) string { return "" }, io.Discard)
		f := addACMEFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return f
	}
	f := parse("--acme-domains", "Mail.Example.Test., bücher.example.test,mail.example.test")
	domains, err := f.check(false)
	if diff := cmp.Diff([]string{"mail.example.test", "xn--bcher-kva.example.test"}, domains); err != nil || diff != "" {
		t.Errorf("domains (-want +got), %v:\n%s", err, diff)
	}
	data := t.TempDir()
	s, err := f.setup("", "", data, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if s.config == nil || s.config.MinVersion != tls.VersionTLS12 || !slices.Contains(s.config.NextProtos, acme.ALPNProto) ||
		s.httpListen != ":80" || s.httpHandler == nil {
		t.Errorf("setup = %+v", s)
	}
	if fi, err := os.Stat(filepath.Join(data, "acme")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("cache directory: %v, %v", fi, err)
	}
	cache := filepath.Join(t.TempDir(), "certs")
	s, err = parse("--acme-domains", "mail.example.test", "--acme-http-listen", "none", "--acme-cache", cache).setup("", "", data, slog.New(slog.DiscardHandler))
	if err != nil || s.httpListen != "" || s.httpHandler != nil {
		t.Errorf("--acme-http-listen none: %+v, %v", s, err)
	}
	if _, err := os.Stat(cache); err != nil {
		t.Errorf("--acme-cache not created: %v", err)
	}
	if s, err := parse().setup("", "", data, nil); err != nil || s.config != nil || s.httpListen != "" {
		t.Errorf("no TLS settings: %+v, %v", s, err)
	}
}

// tlsTestCert returns a PEM certificate for name with the given serial, its
// PEM key and the parsed certificate.
func tlsTestCert(t *testing.T, name string, serial int64) (certPEM, keyPEM []byte, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	kder, _ := x509.MarshalECPrivateKey(key) // SEC 1, as openssl ecparam writes
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), cert
}

// listening is serve's "listening" log record.
type listening struct{ Addr, Admin, HTTP string }

// startServeRec is startServe returning the whole "listening" record (with
// the plain-HTTP listener of ACME).
func startServeRec(t *testing.T, bin, dir string, extra ...string) (*exec.Cmd, listening, func() string) {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "EASD_LISTEN=127.0.0.1:0", "EASD_ADMIN_LISTEN=127.0.0.1:0", "EASD_LOG_FORMAT=json")
	cmd.Env = append(cmd.Env, extra...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var mu sync.Mutex
	logs := &strings.Builder{}
	rec := make(chan listening, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			mu.Lock()
			logs.WriteString(sc.Text() + "\n")
			mu.Unlock()
			var l struct {
				Msg string
				listening
			}
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "listening" {
				rec <- l.listening
			}
		}
	}()
	logNow := func() string { mu.Lock(); defer mu.Unlock(); return logs.String() }
	select {
	case l := <-rec:
		return cmd, l, func() string { <-done; return logNow() }
	case <-done:
		t.Fatalf("easd serve exited before listening:\n%s", logNow())
	case <-time.After(10 * time.Second):
		t.Fatalf("easd serve did not listen within 10s:\n%s", logNow())
	}
	return nil, listening{}, nil
}

// stopServe sends SIGTERM and waits (bounded) for a clean exit.
func stopServe(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("still running 15s after SIGTERM")
	}
}

// peerCert completes a TLS handshake with addr and returns the server's
// certificate; roots nil skips verification.
func peerCert(addr, serverName string, roots *x509.CertPool) (*x509.Certificate, error) {
	conf := &tls.Config{ServerName: serverName, RootCAs: roots, InsecureSkipVerify: roots == nil}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", addr, conf)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func httpsGet(t *testing.T, addr, serverName string, roots *x509.CertPool, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: serverName, RootCAs: roots}}}
	resp, err := c.Get("https://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeReloadsCertFiles(t *testing.T) {
	bin := buildEasd(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c1, k1, x1 := tlsTestCert(t, "mail.example.test", 1)
	c2, k2, x2 := tlsTestCert(t, "mail.example.test", 2)
	os.WriteFile(certFile, c1, 0o600)
	os.WriteFile(keyFile, k1, 0o600)
	roots := x509.NewCertPool()
	roots.AddCert(x1)
	roots.AddCert(x2)

	cmd, l, logOf := startServeRec(t, bin, dir, "EASD_TLS_CERT="+certFile, "EASD_TLS_KEY="+keyFile)
	if code, body := httpsGet(t, l.Addr, "mail.example.test", roots, "/healthz"); code != 200 {
		t.Fatalf("https healthz = %d %q", code, body)
	}
	if c, err := peerCert(l.Addr, "mail.example.test", roots); err != nil || c.SerialNumber.Int64() != 1 {
		t.Fatalf("first certificate: %v, %v", c, err)
	}
	if _, err := tls.Dial("tcp", l.Addr, &tls.Config{RootCAs: roots, ServerName: "mail.example.test", MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("TLS 1.1 accepted")
	}

	// Renewal as certbot's deploy would do it: the key, then the chain.
	swapped := time.Now()
	if err := os.WriteFile(keyFile, k2, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, c2, 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second) // the check runs at most every 5s
	for {
		c, err := peerCert(l.Addr, "mail.example.test", roots)
		if err == nil && c.SerialNumber.Int64() == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still serving %v (%v) 20s after the swap", c.SerialNumber, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("new certificate served %v after the swap", time.Since(swapped).Round(time.Millisecond))
	if code, _ := httpsGet(t, l.Addr, "mail.example.test", roots, "/healthz"); code != 200 {
		t.Errorf("https healthz after the reload = %d", code)
	}
	stopServe(t, cmd)
	logs := logOf()
	for _, want := range []string{`"msg":"TLS certificate loaded"`, `"msg":"TLS certificate reloaded"`, `"tls":true`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
}

func TestServeACME(t *testing.T) {
	bin := buildEasd(t)
	ca := newFakeCA(t, map[string]string{"alpn.example.test": "tls-alpn-01", "http.example.test": "http-01"})
	dir := t.TempDir()
	env := []string{"EASD_ACME_DOMAINS=alpn.example.test, HTTP.example.test", "EASD_ACME_DIRECTORY=" + ca.srv.URL + "/dir",
		"EASD_ACME_EMAIL=admin@example.test", "EASD_ACME_HTTP_LISTEN=127.0.0.1:0"}
	cmd, l, logOf := startServeRec(t, bin, dir, env...)
	if l.HTTP == "" {
		t.Fatalf("no plain-HTTP listener in %+v", l)
	}
	ca.route(map[string]string{"alpn.example.test": l.Addr, "http.example.test": l.HTTP})

	// The first handshake for each name gets its certificate issued: by
	// TLS-ALPN-01 on the main listener, by HTTP-01 on the plain one.
	for _, name := range []string{"alpn.example.test", "http.example.test"} {
		c, err := peerCert(l.Addr, name, ca.roots)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, ca.log())
		}
		if !cmp.Equal(c.DNSNames, []string{name}) {
			t.Errorf("%s: certificate for %v", name, c.DNSNames)
		}
		if code, body := httpsGet(t, l.Addr, name, ca.roots, "/healthz"); code != 200 {
			t.Errorf("%s: https healthz = %d %q", name, code, body)
		}
	}
	if diff := cmp.Diff(map[string]string{"alpn.example.test": "tls-alpn-01", "http.example.test": "http-01"}, ca.validatedBy()); diff != "" {
		t.Errorf("challenges validated (-want +got):\n%s", diff)
	}
	if got := ca.contact(); !cmp.Equal(got, []string{"mailto:admin@example.test"}) {
		t.Errorf("account contact = %v", got)
	}
	// No SNI (a client connecting by address): the first name's certificate.
	if c, err := peerCert(l.Addr, "", nil); err != nil || !cmp.Equal(c.DNSNames, []string{"alpn.example.test"}) {
		t.Errorf("without SNI: %v, %v", c, err)
	}
	if _, err := peerCert(l.Addr, "other.example.test", nil); err == nil {
		t.Error("handshake for a name not in --acme-domains succeeded")
	}
	if _, err := tls.Dial("tcp", l.Addr, &tls.Config{RootCAs: ca.roots, ServerName: "alpn.example.test", MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("TLS 1.1 accepted")
	}

	// Plain HTTP: Autodiscover's redirect step, and no plain-text POST.
	noFollow := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct{ method, host, want string }{
		{"GET", "autodiscover.example.test", "302 https://alpn.example.test/autodiscover/autodiscover.xml"},
		{"GET", "http.example.test", "302 https://http.example.test/autodiscover/autodiscover.xml"},
		{"POST", "http.example.test", "400 "},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+l.HTTP+"/autodiscover/autodiscover.xml", nil)
		req.Host = tc.host
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("Location")); got != tc.want {
			t.Errorf("%s http://%s/autodiscover/... = %q, want %q", tc.method, tc.host, got, tc.want)
		}
	}
	for _, f := range []string{"acme_account+key", "alpn.example.test", "http.example.test"} {
		if _, err := os.Stat(filepath.Join(dir, "data", "acme", f)); err != nil {
			t.Errorf("cache under --data-dir: %v", err)
		}
	}
	stopServe(t, cmd)
	if logs := logOf(); !strings.Contains(logs, `"msg":"ACME certificates"`) || !strings.Contains(logs, `"http":"`+l.HTTP+`"`) {
		t.Errorf("log lacks the ACME setup or the http listener:\n%s", logs)
	}

	// After a restart the certificates come from the cache: no new order.
	orders := ca.orderCount()
	cmd, l, _ = startServeRec(t, bin, dir, env...)
	if c, err := peerCert(l.Addr, "http.example.test", ca.roots); err != nil || !cmp.Equal(c.DNSNames, []string{"http.example.test"}) {
		t.Errorf("after restart: %v, %v", c, err)
	}
	if n := ca.orderCount(); n != orders {
		t.Errorf("%d orders after a restart, want %d (certificates from the cache)", n, orders)
	}
	stopServe(t, cmd)
}

// fakeCA is a minimal ACME (RFC 8555) CA on loopback, enough for autocert:
// directory, nonces, one account, orders with one authorization per name
// offering one challenge type, real validation of tls-alpn-01 (RFC 8737)
// and http-01 against the addresses it is told, finalization and
// certificate download. JWS signatures are verified (ES256) and their url
// checked; EAB, key change and revocation are not implemented.
type fakeCA struct {
	t         *testing.T
	srv       *httptest.Server
	key       *ecdsa.PrivateKey
	root      *x509.Certificate
	roots     *x509.CertPool
	challenge map[string]string // name -> the one challenge type offered

	mu        sync.Mutex
	addrs     map[string]string // name -> host:port to validate against
	account   *ecdsa.PublicKey
	contacts  []string
	authzs    []*caAuthz
	orders    []*caOrder
	validated map[string]string // name -> challenge type that validated it
	events    []string
	nonce     int
}

type caAuthz struct {
	name, typ, token, status string
}

type caOrder struct {
	names  []string
	authz  []int
	status string
	cert   []byte // PEM chain once issued
}

func newFakeCA(t *testing.T, challenge map[string]string) *fakeCA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fake ACME root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(der)
	ca := &fakeCA{t: t, key: key, root: root, roots: x509.NewCertPool(), challenge: challenge,
		addrs: map[string]string{}, validated: map[string]string{}}
	ca.roots.AddCert(root)
	ca.srv = httptest.NewServer(http.HandlerFunc(ca.serve))
	t.Cleanup(ca.srv.Close)
	return ca
}

func (ca *fakeCA) route(addrs map[string]string) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	for n, a := range addrs {
		ca.addrs[n] = a
	}
}

func (ca *fakeCA) logf(format string, a ...any) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	ca.events = append(ca.events, fmt.Sprintf(format, a...))
}

func (ca *fakeCA) log() string {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return strings.Join(ca.events, "\n")
}

func (ca *fakeCA) validatedBy() map[string]string {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return maps.Clone(ca.validated)
}

func (ca *fakeCA) contact() []string {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return slices.Clone(ca.contacts)
}

func (ca *fakeCA) orderCount() int {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return len(ca.orders)
}

func (ca *fakeCA) url(format string, a ...any) string {
	return ca.srv.URL + fmt.Sprintf(format, a...)
}

// problem answers an RFC 7807 problem document.
func problem(w http.ResponseWriter, code int, typ, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"type": "urn:ietf:params:acme:error:" + typ, "detail": detail, "status": code})
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (ca *fakeCA) serve(w http.ResponseWriter, r *http.Request) {
	ca.mu.Lock()
	ca.nonce++
	w.Header().Set("Replay-Nonce", fmt.Sprintf("nonce-%d", ca.nonce))
	ca.mu.Unlock()
	ca.logf("%s %s", r.Method, r.URL.Path)
	if r.URL.Path == "/dir" {
		reply(w, 200, map[string]any{"newNonce": ca.url("/nonce"), "newAccount": ca.url("/account"), "newOrder": ca.url("/order"),
			"meta": map[string]any{"termsOfService": ca.url("/terms")}})
		return
	}
	if r.URL.Path == "/nonce" {
		w.WriteHeader(http.StatusOK)
		return
	}
	if r.Method != http.MethodPost {
		problem(w, 405, "malformed", "POST only")
		return
	}
	payload, err := ca.verify(r)
	if err != nil {
		ca.logf("bad JWS: %v", err)
		problem(w, 400, "malformed", err.Error())
		return
	}
	var id int
	switch {
	case r.URL.Path == "/account":
		var req struct {
			Contact     []string
			TermsAgreed bool `json:"termsOfServiceAgreed"`
		}
		json.Unmarshal(payload, &req)
		ca.mu.Lock()
		ca.contacts = req.Contact
		ca.mu.Unlock()
		w.Header().Set("Location", ca.url("/acct/1"))
		if !req.TermsAgreed {
			problem(w, 403, "userActionRequired", "terms not agreed")
			return
		}
		reply(w, 201, map[string]any{"status": "valid", "contact": req.Contact})
	case r.URL.Path == "/order":
		var req struct {
			Identifiers []struct{ Type, Value string }
		}
		if err := json.Unmarshal(payload, &req); err != nil {
			problem(w, 400, "malformed", err.Error())
			return
		}
		ca.mu.Lock()
		o := &caOrder{status: "pending"}
		for _, idf := range req.Identifiers {
			typ, ok := ca.challenge[idf.Value]
			if !ok || idf.Type != "dns" {
				ca.mu.Unlock()
				problem(w, 400, "rejectedIdentifier", idf.Value)
				return
			}
			o.names = append(o.names, idf.Value)
			o.authz = append(o.authz, len(ca.authzs))
			ca.authzs = append(ca.authzs, &caAuthz{name: idf.Value, typ: typ, status: "pending",
				token: base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "token-%d-%s", len(ca.authzs), idf.Value))})
		}
		ca.orders = append(ca.orders, o)
		n := len(ca.orders) - 1
		body := ca.orderJSON(n)
		ca.mu.Unlock()
		w.Header().Set("Location", ca.url("/orders/%d", n))
		reply(w, 201, body)
	case scan(r.URL.Path, "/orders/%d", &id):
		ca.mu.Lock()
		defer ca.mu.Unlock()
		if id < 0 || id >= len(ca.orders) {
			problem(w, 404, "malformed", "no order")
			return
		}
		reply(w, 200, ca.orderJSON(id))
	case scan(r.URL.Path, "/authz/%d", &id):
		var req struct{ Status string }
		json.Unmarshal(payload, &req)
		ca.mu.Lock()
		defer ca.mu.Unlock()
		if id < 0 || id >= len(ca.authzs) {
			problem(w, 404, "malformed", "no authz")
			return
		}
		z := ca.authzs[id]
		if req.Status == "deactivated" {
			z.status = "deactivated"
		}
		reply(w, 200, ca.authzJSON(id))
	case scan(r.URL.Path, "/chal/%d", &id):
		ca.mu.Lock()
		if id < 0 || id >= len(ca.authzs) {
			ca.mu.Unlock()
			problem(w, 404, "malformed", "no challenge")
			return
		}
		z := *ca.authzs[id]
		addr := ca.addrs[z.name]
		keyAuth := z.token + "." + mustThumbprint(ca.account)
		ca.mu.Unlock()
		err := validate(z.typ, z.name, addr, keyAuth)
		ca.logf("validate %s %s at %s: %v", z.typ, z.name, addr, err)
		ca.mu.Lock()
		if err != nil {
			ca.authzs[id].status = "invalid"
		} else {
			ca.authzs[id].status = "valid"
			ca.validated[z.name] = z.typ
		}
		body := ca.authzJSON(id)["challenges"].([]map[string]any)[0]
		ca.mu.Unlock()
		reply(w, 200, body)
	case scan(r.URL.Path, "/finalize/%d", &id):
		var req struct{ CSR string }
		json.Unmarshal(payload, &req)
		ca.mu.Lock()
		defer ca.mu.Unlock()
		if id < 0 || id >= len(ca.orders) || ca.orderJSON(id)["status"] != "ready" {
			problem(w, 403, "orderNotReady", "order not ready")
			return
		}
		o := ca.orders[id]
		der, _ := base64.RawURLEncoding.DecodeString(req.CSR)
		csr, err := x509.ParseCertificateRequest(der)
		if err == nil {
			err = csr.CheckSignature()
		}
		if err == nil && !slices.Equal(slices.Sorted(slices.Values(csr.DNSNames)), slices.Sorted(slices.Values(o.names))) {
			err = fmt.Errorf("CSR names %v, order %v", csr.DNSNames, o.names)
		}
		if err != nil {
			problem(w, 400, "badCSR", err.Error())
			return
		}
		leaf := &x509.Certificate{SerialNumber: big.NewInt(int64(100 + id)), Subject: pkix.Name{CommonName: o.names[0]},
			DNSNames: o.names, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(90 * 24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		cder, err := x509.CreateCertificate(rand.Reader, leaf, ca.root, csr.PublicKey, ca.key)
		if err != nil {
			problem(w, 500, "serverInternal", err.Error())
			return
		}
		o.cert = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cder}),
			pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.root.Raw})...)
		o.status = "valid"
		w.Header().Set("Location", ca.url("/orders/%d", id))
		reply(w, 200, ca.orderJSON(id))
	case scan(r.URL.Path, "/cert/%d", &id):
		ca.mu.Lock()
		defer ca.mu.Unlock()
		if id < 0 || id >= len(ca.orders) || ca.orders[id].cert == nil {
			problem(w, 404, "malformed", "no certificate")
			return
		}
		w.Header().Set("Content-Type", "application/pem-certificate-chain")
		w.Write(ca.orders[id].cert)
	default:
		problem(w, 404, "malformed", "unknown path")
	}
}

func scan(path, format string, id *int) bool {
	n, err := fmt.Sscanf(path, format, id)
	return err == nil && n == 1 && fmt.Sprintf(format, *id) == path
}

// orderJSON is order n as the client sees it; ca.mu held.
func (ca *fakeCA) orderJSON(n int) map[string]any {
	o := ca.orders[n]
	status := o.status
	var urls []string
	var ids []map[string]string
	valid := 0
	for i, a := range o.authz {
		urls = append(urls, ca.url("/authz/%d", a))
		ids = append(ids, map[string]string{"type": "dns", "value": o.names[i]})
		switch ca.authzs[a].status {
		case "valid":
			valid++
		case "invalid":
			status = "invalid"
		}
	}
	if status == "pending" && valid == len(o.authz) {
		status = "ready"
	}
	m := map[string]any{"status": status, "identifiers": ids, "authorizations": urls, "finalize": ca.url("/finalize/%d", n)}
	if o.cert != nil {
		m["certificate"] = ca.url("/cert/%d", n)
	}
	return m
}

// authzJSON is authorization n; ca.mu held.
func (ca *fakeCA) authzJSON(n int) map[string]any {
	z := ca.authzs[n]
	chal := map[string]any{"type": z.typ, "url": ca.url("/chal/%d", n), "token": z.token, "status": z.status}
	return map[string]any{"status": z.status, "identifier": map[string]string{"type": "dns", "value": z.name},
		"challenges": []map[string]any{chal}}
}

// verify checks a request's JWS (RFC 8555 6.2: ES256, url, jwk for a new
// account, the account's kid otherwise) and returns its payload.
func (ca *fakeCA) verify(r *http.Request) ([]byte, error) {
	var jws struct{ Protected, Payload, Signature string }
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&jws); err != nil {
		return nil, err
	}
	ph, err := base64.RawURLEncoding.DecodeString(jws.Protected)
	if err != nil {
		return nil, err
	}
	var hdr struct {
		Alg, Nonce, URL, Kid string
		JWK                  *struct{ Kty, Crv, X, Y string }
	}
	if err := json.Unmarshal(ph, &hdr); err != nil {
		return nil, err
	}
	if hdr.URL != ca.url("%s", r.URL.Path) || hdr.Nonce == "" || hdr.Alg != "ES256" {
		return nil, fmt.Errorf("protected header %s", ph)
	}
	ca.mu.Lock()
	pub := ca.account
	ca.mu.Unlock()
	switch {
	case r.URL.Path == "/account" && hdr.JWK != nil:
		if hdr.JWK.Kty != "EC" || hdr.JWK.Crv != "P-256" {
			return nil, fmt.Errorf("account key %s %s", hdr.JWK.Kty, hdr.JWK.Crv)
		}
		x, _ := base64.RawURLEncoding.DecodeString(hdr.JWK.X)
		y, _ := base64.RawURLEncoding.DecodeString(hdr.JWK.Y)
		if pub, err = ecdsa.ParseUncompressedPublicKey(elliptic.P256(), slices.Concat([]byte{4}, x, y)); err != nil {
			return nil, err
		}
	case hdr.Kid != ca.url("/acct/1") || pub == nil:
		return nil, fmt.Errorf("unknown kid %q", hdr.Kid)
	}
	sig, err := base64.RawURLEncoding.DecodeString(jws.Signature)
	if err != nil || len(sig) != 64 {
		return nil, fmt.Errorf("signature: %v", err)
	}
	h := sha256.Sum256([]byte(jws.Protected + "." + jws.Payload))
	if !ecdsa.Verify(pub, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return nil, fmt.Errorf("bad signature")
	}
	if r.URL.Path == "/account" {
		ca.mu.Lock()
		ca.account = pub
		ca.mu.Unlock()
	}
	return base64.RawURLEncoding.DecodeString(jws.Payload)
}

func mustThumbprint(pub *ecdsa.PublicKey) string {
	tp, err := acme.JWKThumbprint(pub)
	if err != nil {
		panic(err)
	}
	return tp
}

// validate performs a challenge as a CA would, against addr.
func validate(typ, name, addr, keyAuth string) error {
	if addr == "" {
		return fmt.Errorf("no address for %s", name)
	}
	switch typ {
	case "http-01":
		tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
		}}
		defer tr.CloseIdleConnections()
		token, _, _ := strings.Cut(keyAuth, ".")
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		resp, err := c.Get("http://" + name + "/.well-known/acme-challenge/" + token)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != keyAuth {
			return fmt.Errorf("http-01 answer %d %q, want %q", resp.StatusCode, b, keyAuth)
		}
		return nil
	case "tls-alpn-01":
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr,
			&tls.Config{ServerName: name, NextProtos: []string{acme.ALPNProto}, InsecureSkipVerify: true})
		if err != nil {
			return err
		}
		defer conn.Close()
		st := conn.ConnectionState()
		if st.NegotiatedProtocol != acme.ALPNProto || len(st.PeerCertificates) != 1 {
			return fmt.Errorf("tls-alpn-01: protocol %q, %d certificates", st.NegotiatedProtocol, len(st.PeerCertificates))
		}
		c := st.PeerCertificates[0]
		if !slices.Equal(c.DNSNames, []string{name}) {
			return fmt.Errorf("tls-alpn-01: certificate for %v", c.DNSNames)
		}
		want := sha256.Sum256([]byte(keyAuth))
		for _, e := range c.Extensions {
			if e.Id.Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}) {
				var got []byte
				if _, err := asn1.Unmarshal(e.Value, &got); err != nil || !bytes.Equal(got, want[:]) || !e.Critical {
					return fmt.Errorf("tls-alpn-01: acmeIdentifier %x (critical %v), want %x", got, e.Critical, want)
				}
				return nil
			}
		}
		return fmt.Errorf("tls-alpn-01: no acmeIdentifier extension")
	}
	return fmt.Errorf("challenge type %s", typ)
}

// TestAutodiscoverForwardedHost: behind a proxy that does not pass Host
// on, Autodiscover takes the name from X-Forwarded-Host, but only when the
// request comes from --trusted-proxies; the scheme stays https.
func TestAutodiscoverForwardedHost(t *testing.T) {
	bin := buildEasd(t)
	ask := func(addr string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+addr+"/autodiscover/autodiscover.json?Email=alice@example.test&Protocol=ActiveSync", nil)
		req.Header.Set("X-Forwarded-Host", "mail.example.test, proxy2.internal")
		req.Header.Set("X-Forwarded-Proto", "http")
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v struct{ Protocol, URL string }
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 200 {
			t.Fatalf("autodiscover.json = %d, %v", resp.StatusCode, err)
		}
		return v.URL
	}
	cmd, l, _ := startServeRec(t, bin, t.TempDir(), "EASD_TRUSTED_PROXIES=127.0.0.1/32")
	if got, want := ask(l.Addr), "https://mail.example.test/Microsoft-Server-ActiveSync"; got != want {
		t.Errorf("from a trusted proxy: %q, want %q", got, want)
	}
	stopServe(t, cmd)
	cmd, l, _ = startServeRec(t, bin, t.TempDir(), "EASD_TRUSTED_PROXIES=10.0.0.0/8")
	if got, want := ask(l.Addr), "https://"+l.Addr+"/Microsoft-Server-ActiveSync"; got != want {
		t.Errorf("from an untrusted client: %q, want %q", got, want)
	}
	stopServe(t, cmd)
}
