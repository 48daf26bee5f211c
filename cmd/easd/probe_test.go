package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/easd/easd/eas"
	"github.com/easd/easd/internal/passwd"
	"github.com/easd/easd/internal/testenv"
	"github.com/easd/easd/store/sqlite"
	"github.com/easd/easd/wbxml"
	"github.com/google/go-cmp/cmp"
)

// runProbeCmd runs `easd probe ARGS...` in-process.
func runProbeCmd(t *testing.T, stdin string, environ map[string]string, args ...string) result {
	t.Helper()
	return easd(t, stdin, environ, append([]string{"probe"}, args...)...)
}

// steps parses the probe's output into step → status and step → line.
func steps(t *testing.T, out string) (map[string]string, map[string]string) {
	t.Helper()
	status, lines := map[string]string{}, map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 {
			t.Fatalf("malformed line %q", l)
		}
		status[f[1]], lines[f[1]] = f[0], l
	}
	return status, lines
}

type probeServerOpts struct {
	cert *tls.Certificate                // served instead of httptest's
	wrap func(http.Handler) http.Handler // around the ActiveSync handler
}

// probeServer serves easd's ActiveSync handler over SQLite (user alice,
// password alice-pw) and its Autodiscover on loopback HTTPS.
func probeServer(t *testing.T, o probeServerOpts) *httptest.Server {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, testenv.SQLitePath(t), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hash, err := passwd.Hash("alice-pw", passwd.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(ctx, "alice", hash); err != nil {
		t.Fatal(err)
	}
	h := eas.NewHandler(eas.Config{Policy: eas.DefaultPolicy, Domain: "example.com"},
		eas.Deps{Store: st, Auth: eas.LocalAuth{Users: st}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	var app http.Handler = h
	if o.wrap != nil {
		app = o.wrap(app)
	}
	mux := http.NewServeMux()
	mux.Handle("/", app)
	mux.Handle("/autodiscover/autodiscover.xml", h.Autodiscover(eas.AutodiscoverConfig{}))
	srv := httptest.NewUnstartedServer(mux)
	if o.cert != nil {
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{*o.cert}}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// writeCA writes the server's certificate as a PEM file to trust.
func writeCA(t *testing.T, der []byte) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// selfSigned returns a certificate for 127.0.0.1 valid until notAfter.
func selfSigned(t *testing.T, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "probe.test"},
		NotBefore: notAfter.Add(-30 * 24 * time.Hour), NotAfter: notAfter,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"probe.test"},
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

var probePw = map[string]string{"EASD_PROBE_PASSWORD": "alice-pw"}

func TestProbeAllPass(t *testing.T) {
	srv := probeServer(t, probeServerOpts{})
	r := runProbeCmd(t, "", probePw, "--insecure", srv.URL, "alice")
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	status, lines := steps(t, r.stdout)
	want := map[string]string{"dns": "PASS", "autodiscover": "SKIP", "tls": "WARN", "options": "PASS", "auth": "PASS", "provision": "PASS"}
	for step, st := range status {
		if step == "foldersync" || step == "sync" {
			// Skipped while the server does not advertise them.
			if st != "PASS" && !(st == "SKIP" && strings.Contains(lines[step], "not advertised")) {
				t.Errorf("%s", lines[step])
			}
			continue
		}
		if want[step] != st {
			t.Errorf("step %s = %s, want %s: %s", step, st, want[step], lines[step])
		}
	}
	if len(status) != 8 {
		t.Errorf("%d steps, want 8:\n%s", len(status), r.stdout)
	}
	for step, frag := range map[string]string{
		"tls": "NOT trusted", "options": "versions 12.1,14.0,14.1 (using 14.1)", "provision": "no device password",
	} {
		if !strings.Contains(lines[step], frag) {
			t.Errorf("%s line lacks %q: %s", step, frag, lines[step])
		}
	}
	if strings.Contains(r.stdout+r.stderr, "alice-pw") {
		t.Error("password printed")
	}
}

func TestProbeTrustedCertificateAutodiscoverBase64(t *testing.T) {
	srv := probeServer(t, probeServerOpts{})
	ca := writeCA(t, srv.Certificate().Raw)
	// Password on stdin; flags after the arguments.
	r := runProbeCmd(t, "alice-pw\n", nil, srv.URL, "alice", "--ca-file", ca, "--autodiscover", "--email", "alice@example.com", "--base64-query", "--version", "14.0")
	status, lines := steps(t, r.stdout)
	if r.code != 0 || status["tls"] != "PASS" || status["autodiscover"] != "PASS" || status["provision"] != "PASS" {
		t.Fatalf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(lines["tls"], "valid until") || !strings.Contains(lines["autodiscover"], srv.URL+"/Microsoft-Server-ActiveSync") ||
		!strings.Contains(lines["options"], "using 14.0") {
		t.Errorf("output:\n%s", r.stdout)
	}
}

func TestProbeWrongPassword(t *testing.T) {
	srv := probeServer(t, probeServerOpts{})
	r := runProbeCmd(t, "", map[string]string{"EASD_PROBE_PASSWORD": "guess"}, "--insecure", srv.URL, "alice")
	status, lines := steps(t, r.stdout)
	if r.code != 1 || status["auth"] != "FAIL" || status["options"] != "PASS" || status["provision"] != "SKIP" {
		t.Fatalf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(lines["auth"], "HTTP 401: wrong user name or password") || !strings.Contains(r.stderr, "1 of 8 steps failed: auth") {
		t.Errorf("output:\n%s%s", r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, "guess") {
		t.Error("password printed")
	}
}

func TestProbeUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r := runProbeCmd(t, "", probePw, "--timeout", "5s", "https://"+addr, "alice")
	status, lines := steps(t, r.stdout)
	want := map[string]string{"dns": "PASS", "autodiscover": "SKIP", "tls": "FAIL", "options": "SKIP", "auth": "SKIP",
		"provision": "SKIP", "foldersync": "SKIP", "sync": "SKIP"}
	if diff := cmp.Diff(want, status); diff != "" || r.code != 1 {
		t.Fatalf("exit %d (-want +got):\n%s\n%s", r.code, diff, r.stdout)
	}
	if !strings.Contains(lines["tls"], "connection refused") {
		t.Errorf("tls line: %s", lines["tls"])
	}
}

func TestProbeCertificateExpiry(t *testing.T) {
	for _, tc := range []struct {
		name     string
		notAfter time.Time
		status   string
		frag     string
		code     int
	}{
		{"expiring", time.Now().Add(5*24*time.Hour + time.Hour), "WARN", "(5 days)", 0},
		{"expired", time.Now().Add(-24 * time.Hour), "FAIL", "expired on", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert := selfSigned(t, tc.notAfter)
			srv := probeServer(t, probeServerOpts{cert: &cert})
			r := runProbeCmd(t, "", probePw, "--ca-file", writeCA(t, cert.Certificate[0]), srv.URL, "alice")
			status, lines := steps(t, r.stdout)
			if r.code != tc.code || status["tls"] != tc.status || !strings.Contains(lines["tls"], tc.frag) {
				t.Fatalf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}

// advertiseSync makes the server advertise FolderSync and Sync and answer
// them with a fixed hierarchy and Inbox.
func advertiseSync(t *testing.T) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cmd := r.URL.Query().Get("Cmd")
			switch {
			case r.Method == http.MethodOptions:
				next.ServeHTTP(&addCommands{ResponseWriter: w}, r)
				return
			case cmd != "FolderSync" && cmd != "Sync":
				next.ServeHTTP(w, r)
				return
			}
			body, err := wbxml.Decode(r.Body, wbxml.Limits{})
			if err != nil {
				t.Errorf("%s body: %v", cmd, err)
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			var resp *wbxml.Node
			if cmd == "FolderSync" {
				changes := wbxml.E(wbxml.FolderHierarchyChanges, wbxml.T(wbxml.FolderHierarchyCount, "8"))
				for i, name := range []string{"Inbox", "Drafts", "Deleted Items", "Sent Items", "Outbox", "Tasks", "Calendar", "Contacts"} {
					changes.Append(wbxml.E(wbxml.FolderHierarchyAdd, wbxml.T(wbxml.FolderHierarchyServerId, fmt.Sprint(i+5)),
						wbxml.T(wbxml.FolderHierarchyParentId, "0"), wbxml.T(wbxml.FolderHierarchyDisplayName, name),
						wbxml.T(wbxml.FolderHierarchyType, fmt.Sprint(i+2))))
				}
				resp = wbxml.E(wbxml.FolderHierarchyFolderSync, wbxml.T(wbxml.FolderHierarchyStatus, "1"),
					wbxml.T(wbxml.FolderHierarchySyncKey, "1"), changes)
			} else {
				col := body.Path(wbxml.AirSyncCollections, wbxml.AirSyncCollection)
				if col.ChildText(wbxml.AirSyncCollectionId) != "5" {
					t.Errorf("Sync of collection %q, want the Inbox 5", col.ChildText(wbxml.AirSyncCollectionId))
				}
				out := wbxml.E(wbxml.AirSyncCollection, wbxml.T(wbxml.AirSyncSyncKey, col.ChildText(wbxml.AirSyncSyncKey)+"+"),
					wbxml.T(wbxml.AirSyncCollectionId, "5"), wbxml.T(wbxml.AirSyncStatus, "1"))
				if col.ChildText(wbxml.AirSyncSyncKey) != "0" {
					out.Append(wbxml.E(wbxml.AirSyncMoreAvailable), wbxml.E(wbxml.AirSyncCommands,
						wbxml.E(wbxml.AirSyncAdd, wbxml.T(wbxml.AirSyncServerId, "5:1"), wbxml.E(wbxml.AirSyncApplicationData)),
						wbxml.E(wbxml.AirSyncAdd, wbxml.T(wbxml.AirSyncServerId, "5:2"), wbxml.E(wbxml.AirSyncApplicationData))))
				}
				resp = wbxml.E(wbxml.AirSyncSync, wbxml.E(wbxml.AirSyncCollections, out))
			}
			var b bytes.Buffer
			if err := wbxml.Encode(&b, resp); err != nil {
				t.Error(err)
			}
			w.Header().Set("Content-Type", "application/vnd.ms-sync.wbxml")
			w.Write(b.Bytes())
		})
	}
}

type addCommands struct{ http.ResponseWriter }

func (a *addCommands) WriteHeader(code int) {
	if c := a.Header().Get("MS-ASProtocolCommands"); c != "" {
		a.Header().Set("MS-ASProtocolCommands", c+",FolderSync,Sync")
	}
	a.ResponseWriter.WriteHeader(code)
}

func TestProbeFolderSyncAndSync(t *testing.T) {
	srv := probeServer(t, probeServerOpts{wrap: advertiseSync(t)})
	r := runProbeCmd(t, "", probePw, "--insecure", srv.URL, "alice")
	status, lines := steps(t, r.stdout)
	if r.code != 0 || status["foldersync"] != "PASS" || status["sync"] != "PASS" {
		t.Fatalf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(lines["foldersync"], "8 folders, Inbox has id 5") ||
		!strings.Contains(lines["sync"], "2 items in the first window, more available") {
		t.Errorf("output:\n%s", r.stdout)
	}
}

func TestProbeUsage(t *testing.T) {
	for _, tc := range []struct {
		stdin string
		env   map[string]string
		args  []string
		code  int
		want  string
	}{
		{"", probePw, nil, 2, "want URL and USER"},
		{"", probePw, []string{"https://127.0.0.1:1"}, 2, "want URL and USER"},
		{"", probePw, []string{"--version", "9.9", "https://127.0.0.1:1", "alice"}, 2, "--version"},
		{"", probePw, []string{"ftp://127.0.0.1", "alice"}, 2, "scheme"},
		{"", nil, []string{"https://127.0.0.1:1", "alice"}, 1, "no password"},
		{"", probePw, []string{"-h"}, 0, "EASD_PROBE_INSECURE"},
	} {
		r := runProbeCmd(t, tc.stdin, tc.env, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.want) {
			t.Errorf("probe %q = exit %d:\n%s%s\nwant exit %d containing %q", tc.args, r.code, r.stdout, r.stderr, tc.code, tc.want)
		}
	}
}
