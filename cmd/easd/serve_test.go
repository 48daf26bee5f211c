package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/easd/easd/internal/testenv"
)

// buildEasd compiles the binary once per test binary run.
func buildEasd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "easd")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startServe runs `easd serve` in dir with the environment extra, waits for
// its "listening" log line and returns the process, its addresses and a
// function that returns the whole log once the process has exited.
func startServe(t *testing.T, bin, dir string, extra ...string) (cmd *exec.Cmd, addr, admin string, logOf func() string) {
	t.Helper()
	cmd = exec.Command(bin, "serve")
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

	logs := &strings.Builder{}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(10 * time.Second) // the bound for a fresh start
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("easd serve exited before listening:\n%s", logs)
			}
			logs.WriteString(line + "\n")
			var rec struct{ Msg, Addr, Admin string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				done := make(chan struct{})
				go func() { // keep reading so the server never blocks on a full pipe
					defer close(done)
					for l := range lines {
						logs.WriteString(l + "\n")
					}
				}()
				return cmd, rec.Addr, rec.Admin, func() string { <-done; return logs.String() }
			}
		case <-deadline:
			t.Fatalf("easd serve did not listen within 10s:\n%s", logs)
		}
	}
}

func TestServeFreshDirectory(t *testing.T) {
	bin := buildEasd(t)
	dir := t.TempDir() // no config, no database: everything defaults
	cmd, addr, admin, logOf := startServe(t, bin, dir)

	for _, u := range []string{"http://" + addr + "/healthz", "http://" + admin + "/healthz", "http://" + admin + "/metrics"} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s = %d %s", u, resp.StatusCode, body)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "easd.db")); err != nil {
		t.Errorf("embedded database not created in ./data: %v", err)
	}

	// A request carrying credentials must not leave them in the log.
	req, _ := http.NewRequest("GET", "http://"+addr+"/Microsoft-Server-ActiveSync?Cmd=Sync", nil)
	req.SetBasicAuth("alice", "hunter2-secret")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGINT: %v", err)
		}
	case <-time.After(5 * time.Second): // the bound for Ctrl-C
		t.Fatalf("still running 5s after SIGINT")
	}
	t.Logf("exited %v after SIGINT", time.Since(start).Round(time.Millisecond))
	if logs := logOf(); strings.Contains(logs, "hunter2") || strings.Contains(logs, "YWxpY2U6") {
		t.Errorf("credentials in the log:\n%s", logs)
	}
}

func TestServePostgres(t *testing.T) {
	bin := buildEasd(t)
	url := testenv.PostgresURL(t)
	cmd, addr, _, _ := startServe(t, bin, t.TempDir(), "EASD_DATABASE="+url)
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("healthz on postgres = %d", resp.StatusCode)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}
