package main

// Helpers of proxy_test.go: they take the reverse-proxy snippets out of
// docs/deployment.md, change only what a test must (ports, certificate
// paths, the upstream address, pid/log/temp paths) and run the real nginx
// or Caddy with them in front of a real `easd serve`.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proxyNames are the names the snippets serve; the test certificate
// covers both.
var proxyNames = []string{"mail.example.com", "autodiscover.example.com"}

// proxyBinary returns the path of a proxy's binary. When it is missing the
// test is skipped, or fails when $CI is set (as testenv does for Dovecot
// and PostgreSQL), so that CI never silently skips the proxy tests.
func proxyBinary(t *testing.T, name, pkg string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/usr/bin"} { // not on $PATH for non-root users
			if _, serr := os.Stat(filepath.Join(dir, name)); serr == nil {
				return filepath.Join(dir, name)
			}
		}
		if os.Getenv("CI") != "" {
			t.Fatalf("%s (package %s) is required when CI is set: %v", name, pkg, err)
		}
		t.Skipf("%s unavailable (apt-get install %s): %v", name, pkg, err)
	}
	return bin
}

// docSnippet returns the first fenced code block of language lang after
// the line heading in docs/deployment.md.
func docSnippet(t *testing.T, heading, lang string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "deployment.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(doc), "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != heading {
			continue
		}
		for j := i + 1; j < len(lines); j++ {
			if strings.HasPrefix(lines[j], "#") {
				break
			}
			if strings.TrimSpace(lines[j]) != "```"+lang {
				continue
			}
			for k := j + 1; k < len(lines); k++ {
				if strings.TrimSpace(lines[k]) == "```" {
					return strings.Join(lines[j+1:k], "\n") + "\n"
				}
			}
			t.Fatalf("docs/deployment.md: the ```%s block after %q is not closed", lang, heading)
		}
		t.Fatalf("docs/deployment.md: no ```%s block after %q", lang, heading)
	}
	t.Fatalf("docs/deployment.md: no heading %q", heading)
	return ""
}

// edit applies re's replacement to s and fails the test unless it matched
// exactly want times: a snippet that changed so that a substitution no
// longer applies must be looked at, not silently run unchanged.
func edit(t *testing.T, s, re, repl string, want int) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	if n := len(rx.FindAllStringIndex(s, -1)); n != want {
		t.Fatalf("snippet: %q matches %d times, want %d:\n%s", re, n, want, s)
	}
	return rx.ReplaceAllString(s, repl)
}

// proxyCert writes a self-signed certificate for proxyNames and its key to
// dir and returns their paths and a pool trusting it.
func proxyCert(t *testing.T, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	certFile, keyFile, cert := selfSignedCertFor(t, dir, proxyNames, nil)
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

// freeLoopbackPort returns a port of 127.0.0.1 that was free a moment ago.
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// proxyRun is a running proxy: its HTTPS and plain-HTTP listeners (what
// the snippets put on ports 443 and 80).
type proxyRun struct {
	https, http string
	log         func() string // its output and error log so far
}

// startProxy runs cmd (in its own process group) until the test ends and
// waits until it accepts connections on the https address. errLog, when
// not "", is a file the proxy logs to, shown on failure.
func startProxy(t *testing.T, cmd *exec.Cmd, https, http, errLog string) *proxyRun {
	t.Helper()
	var mu sync.Mutex
	out := &strings.Builder{}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			mu.Lock()
			out.WriteString(sc.Text() + "\n")
			mu.Unlock()
		}
	}()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	run := &proxyRun{https: https, http: http, log: func() string {
		mu.Lock()
		s := out.String()
		mu.Unlock()
		if errLog != "" {
			b, _ := os.ReadFile(errLog)
			s += string(b)
		}
		return s
	}}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // nginx: fast shutdown of master and workers
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the group we created
			<-exited
		}
		pr.Close()
		<-copied
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("%s exited before listening on %s:\n%s", cmd.Path, https, run.log())
		default:
		}
		if c, err := net.DialTimeout("tcp", https, time.Second); err == nil {
			c.Close()
			return run
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening on %s after 20s:\n%s", cmd.Path, https, run.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// nginxVersion returns nginx's version as three numbers.
func nginxVersion(t *testing.T, bin string) [3]int {
	t.Helper()
	out, err := exec.Command(bin, "-v").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -v: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`nginx/(\d+)\.(\d+)\.(\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("nginx -v: no version in %q", out)
	}
	var v [3]int
	for i := range v {
		v[i], _ = strconv.Atoi(m[i+1])
	}
	return v
}

// nginxConf turns the documented nginx snippet into a whole nginx.conf
// for prefix: the snippet's listen lines move to free ports of 127.0.0.1
// (the [::] ones go), its certificate paths become the test's, its
// upstream becomes upstream, and on nginx before 1.25.1 "http2 on;" is
// replaced as the snippet's own comment says. The main configuration
// around it keeps pid, logs and temporary files in prefix.
func nginxConf(t *testing.T, bin, snippet, prefix, upstream, certFile, keyFile, httpsPort, httpPort string) string {
	t.Helper()
	s := snippet
	if v := nginxVersion(t, bin); v[0] == 1 && (v[1] < 25 || v[1] == 25 && v[2] < 1) {
		m := regexp.MustCompile(`(?m)^\s*http2 on;.*older: "(listen 443 ssl http2;)".*\n`).FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("nginx %d.%d.%d lacks \"http2 on;\" and the snippet does not say what to use instead:\n%s", v[0], v[1], v[2], s)
		}
		s = edit(t, s, `(?m)^\s*http2 on;.*\n`, "", 1)
		s = edit(t, s, `(?m)^(\s*)listen 443 ssl;`, "${1}"+m[1], 1)
	}
	s = edit(t, s, `(?m)^\s*listen \[::\]:(80|443)\b.*\n`, "", 2)
	s = edit(t, s, `(?m)^(\s*listen )80;`, "${1}127.0.0.1:"+httpPort+";", 1)
	s = edit(t, s, `(?m)^(\s*listen )443 `, "${1}127.0.0.1:"+httpsPort+" ", 1)
	s = edit(t, s, `(?m)^(\s*ssl_certificate\s+)\S+;`, "${1}"+certFile+";", 1)
	s = edit(t, s, `(?m)^(\s*ssl_certificate_key\s+)\S+;`, "${1}"+keyFile+";", 1)
	s = edit(t, s, `(?m)^(\s*server\s+)127\.0\.0\.1:8080;`, "${1}"+upstream+";", 1)
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n" // workers would run as nobody, who cannot enter the test's 0700 temp dir
	}
	return fmt.Sprintf(`%sworker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log info;
events { worker_connections 256; }
http {
    access_log %[2]s/access.log;
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;

%[3]s}
`, user, prefix, s)
}

// startNginx runs nginx with the documented snippet in front of upstream;
// change, when not nil, edits the snippet first (the control without
// proxy_read_timeout).
func startNginx(t *testing.T, bin, snippet, upstream, certFile, keyFile string, change func(string) string) *proxyRun {
	t.Helper()
	prefix := t.TempDir()
	if change != nil {
		snippet = change(snippet)
	}
	httpsPort, httpPort := freeLoopbackPort(t), freeLoopbackPort(t)
	conf := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxConf(t, bin, snippet, prefix, upstream, certFile, keyFile, httpsPort, httpPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-p", prefix, "-e", filepath.Join(prefix, "error.log"), "-c", conf).CombinedOutput(); err != nil {
		b, _ := os.ReadFile(conf)
		t.Fatalf("nginx -t: %v\n%s\n%s", err, out, b)
	}
	cmd := exec.Command(bin, "-p", prefix, "-e", filepath.Join(prefix, "error.log"), "-c", conf, "-g", "daemon off;")
	return startProxy(t, cmd, "127.0.0.1:"+httpsPort, "127.0.0.1:"+httpPort, filepath.Join(prefix, "error.log"))
}

// caddyConf turns the documented Caddyfile into the test's: global options
// put the HTTP and HTTPS ports on free ports of 127.0.0.1 and turn the
// admin API off, the site gets the test's certificate instead of one from
// Let's Encrypt, and the upstream becomes upstream.
func caddyConf(t *testing.T, snippet, upstream, certFile, keyFile, httpsPort, httpPort string) string {
	t.Helper()
	s := edit(t, snippet, `(?m)^(mail\.example\.com, autodiscover\.example\.com \{\n)`, "${1}\ttls "+certFile+" "+keyFile+"\n", 1)
	s = edit(t, s, `(?m)^(\s*reverse_proxy )127\.0\.0\.1:8080\b`, "${1}"+upstream, 1)
	return fmt.Sprintf(`{
	admin off
	http_port %s
	https_port %s
	default_bind 127.0.0.1
}

%s`, httpPort, httpsPort, s)
}

// startCaddy runs Caddy with the documented Caddyfile in front of
// upstream, with its data and config in a fresh directory.
func startCaddy(t *testing.T, bin, snippet, upstream, certFile, keyFile string) *proxyRun {
	t.Helper()
	dir := t.TempDir()
	httpsPort, httpPort := freeLoopbackPort(t), freeLoopbackPort(t)
	conf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(conf, []byte(caddyConf(t, snippet, upstream, certFile, keyFile, httpsPort, httpPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", conf, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	return startProxy(t, cmd, "127.0.0.1:"+httpsPort, "127.0.0.1:"+httpPort, "")
}

// phoneHTTP returns an HTTP client that reaches every https:// name
// through the proxy's HTTPS listener and every http:// name through its
// plain one, connecting from the loopback address from (a phone's
// address: 127.0.0.2 and up, not the trusted 127.0.0.1), trusting roots,
// speaking HTTP/2 when h2 is set and the proxy offers it, else HTTP/1.1,
// following no redirects.
func phoneHTTP(p *proxyRun, from string, roots *x509.CertPool, h2 bool) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			if port == "443" {
				return d.DialContext(ctx, network, p.https)
			}
			return d.DialContext(ctx, network, p.http)
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: h2,
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
