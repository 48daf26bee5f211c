package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/internal/testenv"
)

// selfSignedCert writes a certificate for 127.0.0.1 and its key to dir and
// returns the paths.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile, _ = selfSignedCertFor(t, dir, []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
	return certFile, keyFile
}

// selfSignedCertFor writes a self-signed certificate (its own root) for
// the names and addresses, and its key, to dir; it returns their paths and
// the certificate, for a pool that trusts it.
func selfSignedCertFor(t *testing.T, dir string, names []string, ips []net.IP) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		IPAddresses: ips, DNSNames: names,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

// TestServeProbeAndWipe runs a real `easd serve` over HTTPS and checks the
// issue's acceptance: `easd probe` passes every step, and a wipe asked for
// with `easd device wipe` reaches the phone on its next request, whose
// acknowledgement `easd device show` then reports.
func TestServeProbeAndWipe(t *testing.T) {
	bin := buildEasd(t)
	dir := t.TempDir()
	environ := map[string]string{"EASD_DATA_DIR": filepath.Join(dir, "data")}
	if r := easd(t, "alice-pw\n", environ, "user", "add", "alice"); r.code != 0 {
		t.Fatal(r)
	}
	certFile, keyFile := selfSignedCert(t, dir)
	cmd, addr, admin, logOf := startServe(t, bin, dir, "EASD_TLS_CERT="+certFile, "EASD_TLS_KEY="+keyFile, "EASD_DOMAIN=example.com")
	url := "https://" + addr

	// The connectivity doctor, trusting our certificate as a private CA.
	r := easd(t, "alice-pw\n", nil, "probe", "--ca-file", certFile, url, "alice")
	if r.code != 0 {
		t.Fatalf("probe failed (exit %d):\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, step := range []string{"tls", "options", "auth", "provision"} {
		if !strings.Contains(r.stdout, "PASS  "+step) {
			t.Errorf("probe step %s did not pass:\n%s", step, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "FAIL") || strings.Contains(r.stdout+r.stderr, "alice-pw") {
		t.Errorf("probe output has a failure or the password:\n%s", r.stdout)
	}

	// A phone provisions, then the administrator asks for a wipe.
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(certFile)
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
	phone, err := client.New(client.Config{URL: url, User: "alice", Password: "alice-pw", DeviceID: "IPHONE0042",
		DeviceType: "iPhone", UserAgent: "Apple-iPhone15C2/2104.112", HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := phone.Provision(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := phone.UserInformation(t.Context()); err != nil {
		t.Fatalf("UserInformation before the wipe: %v", err)
	}
	if r := easd(t, "", environ, "device", "wipe", "alice", "IPHONE0042"); r.code != 0 {
		t.Fatalf("device wipe: %+v", r)
	}
	if r := easd(t, "", environ, "device", "show", "alice", "IPHONE0042"); !strings.Contains(r.stdout, "pending") {
		t.Errorf("show before the phone's next request:\n%s", r.stdout)
	}
	_, err = phone.UserInformation(t.Context())
	if !errors.Is(err, client.ErrWiped) {
		t.Fatalf("next request after wipe = %v, want the wipe", err)
	}
	if r := easd(t, "", environ, "device", "show", "alice", "IPHONE0042"); !strings.Contains(r.stdout, "acknowledged") {
		t.Errorf("wipe acknowledgement not recorded:\n%s", r.stdout)
	}
	// The wiped phone is refused from now on.
	again, _ := client.New(client.Config{URL: url, User: "alice", Password: "alice-pw", DeviceID: "IPHONE0042",
		DeviceType: "iPhone", HTTPClient: hc})
	if _, _, err := again.Provision(t.Context()); err == nil {
		t.Error("wiped device provisioned again")
	}

	// The admin listener counts ActiveSync commands by name and result.
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, series := range []string{`easd_eas_commands_total{cmd="Provision",result="ok"}`, `easd_eas_commands_total{cmd="Settings",result="status_140"}`} {
		if !strings.Contains(string(metrics), series) {
			t.Errorf("metrics lack %s", series)
		}
	}

	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("serve exit: %v\n%s", err, logOf())
	}
}

// TestServeProbeMail runs a real `easd serve` with the IMAP bridge over a
// real Dovecot: `easd probe` passes FolderSync and the Inbox Sync too.
func TestServeProbeMail(t *testing.T) {
	dc := testenv.Dovecot(t, map[string]string{"dora": "dora-imap-pw"})
	for i := range 3 {
		dc.Deliver(t, "dora", "", fmt.Appendf(nil, "From: x@example.test\r\nSubject: probe %d\r\n\r\nhello\r\n", i))
	}
	bin := buildEasd(t)
	dir := t.TempDir()
	certFile, keyFile := selfSignedCert(t, dir)
	cmd, addr, _, logOf := startServe(t, bin, dir, "EASD_TLS_CERT="+certFile, "EASD_TLS_KEY="+keyFile,
		"EASD_AUTH=imap", "EASD_IMAP_ADDR="+dc.Addr, "EASD_IMAP_TLS=none")
	r := easd(t, "dora-imap-pw\n", nil, "probe", "--ca-file", certFile, "https://"+addr, "dora")
	cmd.Process.Signal(syscall.SIGTERM) // logOf waits for the server's end
	if r.code != 0 {
		t.Fatalf("probe failed (exit %d):\n%s%s\nserver log:\n%s", r.code, r.stdout, r.stderr, logOf())
	}
	// Until calendar, contacts and tasks are served (#8) FolderSync warns
	// that their folders are missing, and only that.
	if !strings.Contains(r.stdout, "PASS  foldersync") && !strings.Contains(r.stdout, "missing Tasks (type 7), Calendar (type 8), Contacts (type 9)") {
		t.Errorf("probe step foldersync:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "PASS  sync") || !strings.Contains(r.stdout, "3 items") {
		t.Errorf("probe step sync did not pass with the 3 messages:\n%s", r.stdout)
	}
}

// TestServeMailServiceAccount: a local user (password checked by easd)
// gets the mailbox through an IMAP master user.
func TestServeMailServiceAccount(t *testing.T) {
	dc := testenv.Dovecot(t, map[string]string{"dora": "dora-imap-pw"})
	for i := range 3 {
		dc.Deliver(t, "dora", "", fmt.Appendf(nil, "From: x@example.test\r\nSubject: probe %d\r\n\r\nhello\r\n", i))
	}
	bin := buildEasd(t)
	dir := t.TempDir()
	environ := map[string]string{"EASD_DATA_DIR": filepath.Join(dir, "data")}
	if r := easd(t, "dora-local-pw\n", environ, "user", "add", "dora"); r.code != 0 {
		t.Fatal(r)
	}
	pwFile := filepath.Join(dir, "master-pw")
	if err := os.WriteFile(pwFile, []byte(dc.MasterPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := selfSignedCert(t, dir)
	cmd, addr, _, logOf := startServe(t, bin, dir, "EASD_TLS_CERT="+certFile, "EASD_TLS_KEY="+keyFile,
		"EASD_IMAP_ADDR="+dc.Addr, "EASD_IMAP_TLS=none", "EASD_IMAP_MASTER_USER="+dc.MasterUser, "EASD_IMAP_MASTER_PASSWORD_FILE="+pwFile)
	r := easd(t, "dora-local-pw\n", nil, "probe", "--ca-file", certFile, "https://"+addr, "dora")
	cmd.Process.Signal(syscall.SIGTERM) // logOf waits for the server's end
	if r.code != 0 || !strings.Contains(r.stdout, "PASS  sync") || !strings.Contains(r.stdout, "3 items") {
		t.Fatalf("probe (exit %d):\n%s%s\nserver log:\n%s", r.code, r.stdout, r.stderr, logOf())
	}
	if strings.Contains(logOf(), dc.MasterPassword) {
		t.Errorf("the service account's password is in the log")
	}
}
