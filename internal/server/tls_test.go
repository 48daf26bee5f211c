package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testCert returns a self-signed certificate for name with the given
// serial, PEM encoded, and its key.
func testCert(t *testing.T, name string, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadCertFilesErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	certA, keyA := testCert(t, "a.example.com", 1)
	_, keyB := testCert(t, "b.example.com", 2)
	encKey := []byte("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n")
	files := map[string][]byte{
		"cert.pem": certA, "key.pem": keyA, "other-key.pem": keyB, "empty.pem": []byte("not pem\n"),
		"garbage-cert.pem":      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}),
		"garbage-key.pem":       pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}),
		"enc-key.pem":           encKey,
		"chain-wrong-order.pem": append(append([]byte{}, testCertOnly(t, "ca.example.com")...), certA...),
	}
	for n, b := range files {
		writeFile(t, filepath.Join(dir, n), b)
	}
	p := func(n string) string { return filepath.Join(dir, n) }
	for _, tc := range []struct {
		name, cert, key string
		want            []string // substrings of the error
	}{
		{"missing cert", "nope.pem", "key.pem", []string{p("nope.pem"), "no such file"}},
		{"cert not PEM", "empty.pem", "key.pem", []string{p("empty.pem"), "no PEM CERTIFICATE block"}},
		{"key given as cert", "key.pem", "key.pem", []string{p("key.pem"), "holds a private key"}},
		{"cert does not parse", "garbage-cert.pem", "key.pem", []string{p("garbage-cert.pem"), "certificate 1 does not parse"}},
		{"missing key", "cert.pem", "nope.pem", []string{"TLS key file " + p("nope.pem"), "no such file"}},
		{"key not PEM", "cert.pem", "empty.pem", []string{"TLS key file " + p("empty.pem"), "no PEM PRIVATE KEY block"}},
		{"key does not parse", "cert.pem", "garbage-key.pem", []string{p("garbage-key.pem"), "does not parse"}},
		{"encrypted key", "cert.pem", "enc-key.pem", []string{p("enc-key.pem"), "encrypted"}},
		{"key mismatch", "cert.pem", "other-key.pem", []string{p("other-key.pem"), "does not match the certificate in " + p("cert.pem")}},
		{"chain in the wrong order", "chain-wrong-order.pem", "key.pem", []string{p("key.pem"), "does not match", "must come first"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadCertFiles(p(tc.cert), p(tc.key), 0, nil)
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	cf, err := LoadCertFiles(p("cert.pem"), p("key.pem"), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.Certificate().Leaf.DNSNames; !cmp.Equal(got, []string{"a.example.com"}) {
		t.Errorf("leaf names = %v", got)
	}
}

// testCertOnly returns just a PEM certificate for name.
func testCertOnly(t *testing.T, name string) []byte {
	c, _ := testCert(t, name, 99)
	return c
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestCertFilesReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c1, k1 := testCert(t, "mail.example.com", 1)
	writeFile(t, certFile, c1)
	writeFile(t, keyFile, k1)
	var logs syncBuffer
	cf, err := LoadCertFiles(certFile, keyFile, time.Minute, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cf.now = func() time.Time { return now }
	serial := func() int64 {
		t.Helper()
		c, err := cf.GetCertificate(&tls.ClientHelloInfo{ServerName: "mail.example.com"})
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.SerialNumber.Int64()
	}
	if s := serial(); s != 1 {
		t.Fatalf("serial %d, want 1", s)
	}

	// A renewal: the cert is written first, the key a moment later.
	c2, k2 := testCert(t, "mail.example.com", 2)
	writeFile(t, certFile, c2)
	if s := serial(); s != 1 {
		t.Errorf("reloaded before Every passed: serial %d", s)
	}
	now = now.Add(time.Minute)
	if s := serial(); s != 1 {
		t.Errorf("half-written pair: serial %d, want the old 1", s)
	}
	if n := strings.Count(logs.String(), "do not load"); n != 1 {
		t.Errorf("%d warnings about the half-written pair, want 1:\n%s", n, logs.String())
	}
	now = now.Add(time.Minute)
	serial() // unchanged files: no retry, no second warning
	if n := strings.Count(logs.String(), "do not load"); n != 1 {
		t.Errorf("%d warnings for unchanged files, want 1", n)
	}
	writeFile(t, keyFile, k2)
	now = now.Add(time.Minute)
	if s := serial(); s != 2 {
		t.Errorf("after the key: serial %d, want 2", s)
	}
	if !strings.Contains(logs.String(), "TLS certificate reloaded") {
		t.Errorf("no reload logged:\n%s", logs.String())
	}

	// Files gone (a botched deploy): keep serving.
	os.Remove(certFile)
	now = now.Add(time.Minute)
	if s := serial(); s != 2 {
		t.Errorf("cert file removed: serial %d, want 2", s)
	}
	if !strings.Contains(logs.String(), "unreadable") {
		t.Errorf("removed file not logged:\n%s", logs.String())
	}
	c3, k3 := testCert(t, "mail.example.com", 3)
	writeFile(t, keyFile, k3)
	writeFile(t, certFile, c3)
	now = now.Add(time.Minute)
	if s := serial(); s != 3 {
		t.Errorf("files back: serial %d, want 3", s)
	}
}

func TestServeTLSAndHTTPListener(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := testCert(t, "mail.example.com", 7)
	writeFile(t, filepath.Join(dir, "c.pem"), certPEM)
	writeFile(t, filepath.Join(dir, "k.pem"), keyPEM)
	cf, err := LoadCertFiles(filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") })
	plain := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "plain") })
	// MinVersion 0 in the given config must still mean TLS 1.2 at least.
	addrs, _ := start(t, Deps{Logger: slog.New(slog.DiscardHandler), Store: &fakeStore{}, App: app},
		Config{TLS: &tls.Config{GetCertificate: cf.GetCertificate}, HTTPListen: "127.0.0.1:0", HTTPHandler: plain})
	if len(addrs) != 3 {
		t.Fatalf("addrs = %v, want public, admin, http", addrs)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "mail.example.com"}}}
	resp, err := client.Get("https://" + addrs[0] + "/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "app" || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("https = %q, tls %+v", b, resp.TLS)
	}
	if _, err := tls.Dial("tcp", addrs[0], &tls.Config{RootCAs: roots, ServerName: "mail.example.com", MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("TLS 1.1 accepted")
	}
	if code, _, body := get(t, "http://"+addrs[2]+"/y"); code != 200 || body != "plain" {
		t.Errorf("plain listener = %d %q", code, body)
	}
	_, _, metrics := get(t, "http://"+addrs[1]+"/metrics")
	for _, want := range []string{`listener="main"`, `listener="http"`} {
		if !strings.Contains(metrics, "easd_http_requests_total{code=\"200\","+want) {
			t.Errorf("metrics lack %s:\n%s", want, metrics)
		}
	}
}
