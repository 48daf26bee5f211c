// Package easdproc runs easd as a separate process for the benchmarks'
// drivers (bench/mailsync, bench/push): `easd serve --auth imap` against
// an IMAP server, on loopback without TLS, in a fresh directory with the
// embedded SQLite store, logging JSON to a file there.
package easdproc

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Build builds the package pkg into a temporary directory as name and
// returns the binary's path.
func Build(t *testing.T, pkg, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Options say how to run easd.
type Options struct {
	// Bin is the easd binary.
	Bin string
	// IMAPAddr is the IMAP server's host:port (EASD_IMAP_ADDR).
	IMAPAddr string
	// Args are flags after "serve".
	Args []string
	// AdminListen is the admin listener's address (EASD_ADMIN_LISTEN);
	// "" picks a free loopback port, which Proc.Admin then names.
	AdminListen string
	// StopWait is how long easd may take to stop after SIGTERM before it
	// is killed; 30 seconds when 0.
	StopWait time.Duration
	// LogCopy, if set, names a file to copy easd's log to when the test
	// ends.
	LogCopy string
	// Setup, if set, adjusts the command before it starts (for example
	// its SysProcAttr).
	Setup func(*exec.Cmd)
}

// Proc is easd running as a separate process.
type Proc struct {
	// PID is the process id.
	PID int
	// URL is the base URL of the public listener; Admin that of the admin
	// listener, "" when Options.AdminListen named the address.
	URL, Admin string
	// LogPath is the file easd logs to.
	LogPath string
}

// Start runs easd as o says and waits for /healthz, retrying on another
// port when the one picked was taken meanwhile. easd is stopped when the
// test ends; if the test failed, its log's warnings and errors are logged.
func Start(t *testing.T, o Options) *Proc {
	t.Helper()
	if o.StopWait == 0 {
		o.StopWait = 30 * time.Second
	}
	dir := t.TempDir()
	logPath := filepath.Join(dir, "easd.log")
	for attempt := range 5 {
		port := FreePort(t)
		p := &Proc{URL: "http://127.0.0.1:" + strconv.Itoa(port), LogPath: logPath}
		admin := o.AdminListen
		if admin == "" {
			admin = "127.0.0.1:" + strconv.Itoa(FreePort(t))
			p.Admin = "http://" + admin
		}
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(o.Bin, append([]string{"serve"}, o.Args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(),
			"EASD_LISTEN=127.0.0.1:"+strconv.Itoa(port), "EASD_ADMIN_LISTEN="+admin,
			"EASD_DATA_DIR="+filepath.Join(dir, "data"), "EASD_LOG_FORMAT=json",
			"EASD_AUTH=imap", "EASD_IMAP_ADDR="+o.IMAPAddr, "EASD_IMAP_TLS=none",
			// Every simulated phone comes from 127.0.0.1, and the login
			// throttle counts logins in flight per client address.
			"EASD_LOGIN_FAILURES=100000")
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if o.Setup != nil {
			o.Setup(cmd)
		}
		if err := cmd.Start(); err != nil {
			logFile.Close()
			t.Fatal(err)
		}
		exited := make(chan struct{})
		var waitErr error
		go func() { waitErr = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(o.StopWait):
				_ = cmd.Process.Kill()
				<-exited
			}
			logFile.Close()
		}
		if err := waitHealthy(p.URL, exited, &waitErr); err != nil {
			stop()
			log, _ := os.ReadFile(logPath)
			if attempt < 4 && bytes.Contains(log, []byte("address already in use")) {
				continue
			}
			t.Fatalf("easd serve: %v\n%s", err, log)
		}
		t.Cleanup(func() {
			stop()
			if o.LogCopy != "" {
				if log, err := os.ReadFile(logPath); err == nil {
					_ = os.WriteFile(o.LogCopy, log, 0o644)
				}
			}
			if t.Failed() {
				t.Logf("easd warnings and errors:\n%s", LogProblems(logPath, 50))
			}
		})
		p.PID = cmd.Process.Pid
		if p.Admin != "" {
			t.Logf("easd pid %d on %s (admin %s), IMAP via counting proxy %s", p.PID, p.URL, p.Admin, o.IMAPAddr)
		} else {
			t.Logf("easd pid %d on %s, IMAP via counting proxy %s", p.PID, p.URL, o.IMAPAddr)
		}
		return p
	}
	panic("unreachable")
}

// waitHealthy polls url/healthz for up to 15 seconds.
func waitHealthy(url string, exited <-chan struct{}, waitErr *error) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("exited: %v", *waitErr)
		default:
		}
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no healthy /healthz on %s within 15s", url)
}

// LogProblems returns up to n lines of easd's JSON log at path that tell
// of a problem: WARN and ERROR, answers 503, and lines that are not JSON.
func LogProblems(path string, n int) string {
	log, _ := os.ReadFile(path)
	var out []string
	for line := range strings.Lines(string(log)) {
		if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) ||
			strings.Contains(line, `"status":503`) || !strings.HasPrefix(line, "{") {
			if out = append(out, line); len(out) == n {
				break
			}
		}
	}
	return strings.Join(out, "")
}
