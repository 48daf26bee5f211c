package push

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

// easdProc is easd running as a separate process.
type easdProc struct {
	pid        int
	url, admin string // base URLs of the public and admin listeners
	logPath    string
}

// buildBinary builds pkg into a temporary directory.
func buildBinary(t *testing.T, pkg, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startEasd runs `easd serve --auth imap` against imapAddr (no TLS) with
// extra flags, in a fresh directory (embedded SQLite), logging JSON to a
// file there, and waits for /healthz. It is stopped when the test ends;
// EASD_BENCH_LOG, if set, names a file to copy its log to (suffixed
// with tag).
func startEasd(t *testing.T, bin, imapAddr string, extra []string, tag string) *easdProc {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "easd.log")
	for attempt := range 5 {
		port, adminPort := freePort(t), freePort(t)
		p := &easdProc{url: "http://127.0.0.1:" + strconv.Itoa(port), admin: "http://127.0.0.1:" + strconv.Itoa(adminPort), logPath: logPath}
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, append([]string{"serve"}, extra...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(),
			"EASD_LISTEN=127.0.0.1:"+strconv.Itoa(port), "EASD_ADMIN_LISTEN=127.0.0.1:"+strconv.Itoa(adminPort),
			"EASD_DATA_DIR="+filepath.Join(dir, "data"), "EASD_LOG_FORMAT=json",
			"EASD_AUTH=imap", "EASD_IMAP_ADDR="+imapAddr, "EASD_IMAP_TLS=none",
			// Every simulated phone comes from 127.0.0.1, and the login
			// throttle counts logins in flight per client address.
			"EASD_LOGIN_FAILURES=100000")
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
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
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
			logFile.Close()
		}
		if err := waitHealthy(p.url, exited, &waitErr); err != nil {
			stop()
			log, _ := os.ReadFile(logPath)
			if attempt < 4 && bytes.Contains(log, []byte("address already in use")) {
				continue
			}
			t.Fatalf("easd serve: %v\n%s", err, log)
		}
		t.Cleanup(func() {
			stop()
			if keep := os.Getenv("EASD_BENCH_LOG"); keep != "" {
				if log, err := os.ReadFile(logPath); err == nil {
					_ = os.WriteFile(keep+"."+tag, log, 0o644)
				}
			}
			if t.Failed() {
				t.Logf("easd warnings and errors:\n%s", logProblems(logPath, 50))
			}
		})
		p.pid = cmd.Process.Pid
		t.Logf("easd pid %d on %s (admin %s), IMAP via counting proxy %s", p.pid, p.url, p.admin, imapAddr)
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

// logProblems returns up to n WARN and ERROR lines of easd's JSON log.
func logProblems(path string, n int) string {
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
