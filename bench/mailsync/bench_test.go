package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
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

	"github.com/easd/easd/internal/testenv"
)

// TestBench runs the whole benchmark against a throwaway Dovecot (from
// internal/testenv) and easd started as a separate process with
// pass-through IMAP authentication through the counting proxy. It only
// runs with EASD_BENCH=1 (see run.sh). EASD_BENCH_ARGS holds extra
// mailsync flags (e.g. "-messages 2000 -duration 10s"), EASD_BENCH_BIN an
// easd binary to use instead of building one, and EASD_BENCH_OUT a file
// to write the Markdown to as well as stdout, EASD_BENCH_LOG a file to
// copy easd's log to.
func TestBench(t *testing.T) {
	if os.Getenv("EASD_BENCH") == "" {
		t.Skip("set EASD_BENCH=1 to run the mail sync benchmark (bench/mailsync/run.sh)")
	}
	cfg, set, err := parseFlags(strings.Fields(os.Getenv("EASD_BENCH_ARGS")), os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if !set["ka-users"] {
		cfg.KAUsers = cfg.Clients // one account per phone
	}
	cfg.User, cfg.Password, cfg.Populate = "bench", "bench-pw", true
	users := map[string]string{cfg.User: cfg.Password}
	for i := range cfg.KAUsers {
		users[cfg.kaUser(i)] = cfg.Password
	}
	dc := testenv.Dovecot(t, users)
	cfg.IMAPAddr = dc.Addr
	proxy, err := startProxy("127.0.0.1:0", dc.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	cfg.Proxy = "" // running already, in this process

	bin := os.Getenv("EASD_BENCH_BIN")
	if bin == "" {
		bin = buildEasd(t)
	}
	cfg.PID, cfg.URL = startEasd(t, bin, proxy.Addr())
	if err := cfg.check(); err != nil {
		t.Fatal(err)
	}

	var md bytes.Buffer
	err = run(context.Background(), cfg, proxy.counter, io.MultiWriter(os.Stdout, &md), t.Logf)
	if out := os.Getenv("EASD_BENCH_OUT"); out != "" {
		if werr := os.WriteFile(out, md.Bytes(), 0o644); werr != nil {
			t.Error(werr)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}

// buildEasd builds cmd/easd into a temporary directory.
func buildEasd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "easd")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/easd/easd/cmd/easd")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build easd: %v\n%s", err, out)
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

// startEasd runs `easd serve` with --auth imap against imapAddr, in a
// fresh directory (embedded SQLite), logging to a file there, and waits
// for /healthz. It returns the process id and base URL; the process is
// stopped when the test ends.
func startEasd(t *testing.T, bin, imapAddr string) (pid int, url string) {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "easd.log")
	for attempt := range 5 {
		port := freePort(t)
		url = "http://127.0.0.1:" + strconv.Itoa(port)
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "serve")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(),
			"EASD_LISTEN=127.0.0.1:"+strconv.Itoa(port), "EASD_ADMIN_LISTEN="+cmp.Or(os.Getenv("EASD_BENCH_ADMIN"), "127.0.0.1:0"),
			"EASD_DATA_DIR="+filepath.Join(dir, "data"), "EASD_LOG_FORMAT=json",
			"EASD_AUTH=imap", "EASD_IMAP_ADDR="+imapAddr, "EASD_IMAP_TLS=none",
			// Every simulated phone comes from 127.0.0.1, and the login
			// throttle counts logins in flight per client address.
			"EASD_LOGIN_FAILURES=100000")
		cmd.Stdout, cmd.Stderr = logFile, logFile
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
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
			logFile.Close()
		}
		if err := waitHealthy(url, exited, &waitErr); err != nil {
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
					_ = os.WriteFile(keep, log, 0o644)
				}
			}
			if t.Failed() {
				t.Logf("easd warnings and errors:\n%s", logProblems(logPath, 50))
			}
		})
		t.Logf("easd pid %d on %s, IMAP via counting proxy %s", cmd.Process.Pid, url, imapAddr)
		return cmd.Process.Pid, url
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
