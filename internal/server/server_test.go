package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type fakeStore struct{ err atomic.Value }

func (f *fakeStore) Ping(context.Context) error {
	if e, ok := f.err.Load().(error); ok && e != nil {
		return e
	}
	return nil
}

// start runs a Server on loopback and returns its addresses and a stop
// function that cancels it and returns Run's error.
func start(t *testing.T, deps Deps, cfg Config) ([]string, func() error) {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.AdminListen == "" {
		cfg.AdminListen = "127.0.0.1:0"
	}
	s := New(cfg, deps)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan []string, 1)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(a []string) { ready <- a }) }()
	var addrs []string
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start")
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			return errors.New("Run did not return")
		}
	}
	t.Cleanup(func() { stop() })
	return addrs, stop
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestHealthzAndMetrics(t *testing.T) {
	var logs bytes.Buffer
	st := &fakeStore{}
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/boom" {
			panic("boom")
		}
		io.WriteString(w, "app")
	})
	addrs, _ := start(t, Deps{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Store: st, App: app,
		NewID: func() string { return "rid1" }}, Config{})

	code, h, body := get(t, "http://"+addrs[0]+"/healthz")
	if code != 200 || strings.TrimSpace(body) != "ok" || h.Get("X-Request-Id") != "rid1" {
		t.Errorf("healthz = %d %q id=%q", code, body, h.Get("X-Request-Id"))
	}
	code, _, _ = get(t, "http://"+addrs[1]+"/healthz")
	if code != 200 {
		t.Errorf("admin healthz = %d", code)
	}
	st.err.Store(errors.New("db down"))
	if code, _, _ = get(t, "http://"+addrs[0]+"/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("healthz with failing store = %d, want 503", code)
	}
	if code, _, body = get(t, "http://"+addrs[0]+"/x"); code != 200 || body != "app" {
		t.Errorf("app = %d %q", code, body)
	}
	if code, _, _ = get(t, "http://"+addrs[0]+"/boom"); code != 500 {
		t.Errorf("panicking handler = %d, want 500", code)
	}
	if _, _, body = get(t, "http://"+addrs[0]+"/metrics"); strings.Contains(body, "easd_http") {
		t.Error("/metrics is served on the public listener")
	}
	code, _, body = get(t, "http://"+addrs[1]+"/metrics")
	if code != 200 || !strings.Contains(body, `easd_http_requests_total{code="500",listener="main",route="app"} 1`) ||
		!strings.Contains(body, "go_goroutines") {
		t.Errorf("metrics = %d, missing series:\n%s", code, body)
	}
	if !strings.Contains(logs.String(), `"panic":"boom"`) || !strings.Contains(logs.String(), `"req":"rid1"`) {
		t.Errorf("log lacks panic or request id:\n%s", logs.String())
	}
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	drained := make(chan struct{})
	parked := make(chan struct{})
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			close(entered)
			<-release
			io.WriteString(w, "finished")
		case "/park": // a long poll that answers when draining starts
			close(parked)
			<-Draining(r.Context())
			close(drained)
			io.WriteString(w, "drained")
		}
	})
	addrs, stop := start(t, Deps{Logger: slog.New(slog.DiscardHandler), Store: &fakeStore{}, App: app},
		Config{ShutdownTimeout: 10 * time.Second})

	type result struct {
		body string
		err  error
	}
	fetch := func(path string) <-chan result {
		c := make(chan result, 1)
		go func() {
			resp, err := http.Get("http://" + addrs[0] + path)
			if err != nil {
				c <- result{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			c <- result{string(b), err}
		}()
		return c
	}
	slow := fetch("/slow")
	park := fetch("/park")
	<-entered
	<-parked
	stopErr := make(chan error, 1)
	go func() { stopErr <- stop() }()
	<-drained // draining signal reached the parked request
	close(release)
	if r := <-slow; r.err != nil || r.body != "finished" {
		t.Errorf("in-flight request: %q, %v", r.body, r.err)
	}
	if r := <-park; r.err != nil || r.body != "drained" {
		t.Errorf("parked request: %q, %v", r.body, r.err)
	}
	if err := <-stopErr; err != nil {
		t.Errorf("Run returned %v", err)
	}
	if _, err := http.Get("http://" + addrs[0] + "/healthz"); err == nil {
		t.Error("server still accepts after shutdown")
	}
}

func TestListenError(t *testing.T) {
	s := New(Config{Listen: "127.0.0.1:-1"}, Deps{Logger: slog.New(slog.DiscardHandler), Store: &fakeStore{}})
	if err := s.Run(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("Run = %v, want listen error", err)
	}
}

func TestLoggerRedactsAndFormats(t *testing.T) {
	var b bytes.Buffer
	l, err := NewLogger(&b, "json", "info", true)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("x", "password", "hunter2", "Authorization", "Basic Zm9v")
	if strings.Contains(b.String(), "hunter2") || strings.Contains(b.String(), "Zm9v") {
		t.Errorf("secret logged: %s", b.String())
	}
	b.Reset()
	l, _ = NewLogger(&b, "auto", "info", true)
	l.Info("hello")
	if !strings.HasPrefix(b.String(), "time=") {
		t.Errorf("auto on a terminal should be text: %q", b.String())
	}
	b.Reset()
	l, _ = NewLogger(&b, "auto", "debug", false)
	l.Debug("hello")
	if !strings.HasPrefix(b.String(), "{") {
		t.Errorf("auto off a terminal should be JSON: %q", b.String())
	}
	if _, err := NewLogger(&b, "xml", "info", false); err == nil {
		t.Error("bad format accepted")
	}
	if _, err := NewLogger(&b, "json", "loud", false); err == nil {
		t.Error("bad level accepted")
	}
}
