package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/easd/easd/eas"
	"github.com/easd/easd/internal/config"
	"github.com/easd/easd/internal/testenv"
	"github.com/easd/easd/store/sqlite"
)

// TestPassThroughAuthDovecot checks --auth imap end to end: a phone's
// password is verified by a real Dovecot, the user record is created on
// first login without any password, and a wrong password is a 401.
func TestPassThroughAuthDovecot(t *testing.T) {
	dc := testenv.Dovecot(t, map[string]string{"carol": "carol-imap-pw"})
	fs := config.NewFlagSet("t", "t", func(k string) string {
		return map[string]string{"EASD_AUTH": "imap", "EASD_IMAP_ADDR": dc.Addr, "EASD_IMAP_TLS": "none"}[k]
	}, &bytes.Buffer{})
	ef := addEASFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), testenv.SQLitePath(t), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	auth, err := ef.authenticator(st)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ef.config()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(eas.NewHandler(cfg, eas.Deps{Store: st, Auth: auth, Logger: slog.New(slog.DiscardHandler)}))
	defer srv.Close()

	options := func(user, pw string) int {
		req, _ := http.NewRequest(http.MethodOptions, srv.URL+eas.Path, nil)
		req.SetBasicAuth(user, pw)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := options("carol", "wrong"); code != 401 {
		t.Errorf("wrong password = %d, want 401", code)
	}
	if _, err := st.User(context.Background(), "carol"); err == nil {
		t.Error("a failed login created the user")
	}
	for range 2 { // the second answer comes from the cache
		if code := options("carol", "carol-imap-pw"); code != 200 {
			t.Fatalf("right password = %d, want 200", code)
		}
	}
	u, err := st.User(context.Background(), "carol")
	if err != nil {
		t.Fatalf("user not created on first login: %v", err)
	}
	if u.PasswordHash != "" {
		t.Errorf("pass-through user has a stored hash %q", u.PasswordHash)
	}
	if code := options(`EXAMPLE\carol`, "carol-imap-pw"); code != 200 {
		t.Errorf("DOMAIN\\user form = %d", code)
	}
}

func TestPassThroughUnreachable(t *testing.T) {
	fs := config.NewFlagSet("t", "t", func(k string) string {
		return map[string]string{"EASD_AUTH": "imap", "EASD_IMAP_ADDR": "127.0.0.1:1", "EASD_IMAP_TLS": "none"}[k]
	}, &bytes.Buffer{})
	ef := addEASFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), testenv.SQLitePath(t), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	auth, _ := ef.authenticator(st)
	srv := httptest.NewServer(eas.NewHandler(eas.Config{}, eas.Deps{Store: st, Auth: auth, Logger: slog.New(slog.DiscardHandler)}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodOptions, srv.URL+eas.Path, nil)
	req.SetBasicAuth("carol", "pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The upstream being down must not make the phone ask for a new password.
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("upstream down = %d (Retry-After %q), want 503", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestEASFlagChecks(t *testing.T) {
	parse := func(env map[string]string) *easFlags {
		fs := config.NewFlagSet("t", "t", func(k string) string { return env[k] }, &bytes.Buffer{})
		ef := addEASFlags(fs)
		if err := fs.Parse(nil); err != nil {
			t.Fatal(err)
		}
		return ef
	}
	ef := parse(map[string]string{"EASD_AUTH": "imap", "EASD_IMAP_ADDR": "mail.example.com:143", "EASD_IMAP_TLS": "none"})
	if _, err := ef.authenticator(nil); err == nil || !strings.Contains(err.Error(), "in clear") {
		t.Errorf("clear-text IMAP to a remote host: %v", err)
	}
	ef = parse(map[string]string{"EASD_AUTH": "imap", "EASD_IMAP_ADDR": "mail.example.com:143", "EASD_IMAP_TLS": "none", "EASD_IMAP_INSECURE": "true"})
	if _, err := ef.authenticator(nil); err != nil {
		t.Errorf("clear-text IMAP with --imap-insecure: %v", err)
	}
	ef = parse(map[string]string{"EASD_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8,::1"})
	cfg, err := ef.config()
	if err != nil || len(cfg.TrustedProxies) != 3 || cfg.TrustedProxies[0].String() != "127.0.0.1/32" {
		t.Errorf("trusted proxies = %v, %v", cfg.TrustedProxies, err)
	}
	if _, err := parse(map[string]string{"EASD_TRUSTED_PROXIES": "nonsense"}).config(); err == nil {
		t.Error("bad --trusted-proxies accepted")
	}
	if _, err := parse(map[string]string{"EASD_MAX_VERSION": "16.1"}).config(); err == nil {
		t.Error("--max-version beyond what is implemented accepted")
	}
}
