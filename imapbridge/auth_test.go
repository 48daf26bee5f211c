package imapbridge_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/easd/easd/imapbridge"
	"github.com/easd/easd/internal/testenv"
)

func newAuth(t *testing.T, cfg imapbridge.Config) *imapbridge.IMAPAuthenticator {
	t.Helper()
	if cfg.TLS == "" {
		cfg.TLS = imapbridge.TLSNone
	}
	a, err := imapbridge.NewIMAPAuthenticator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// closedPort returns a loopback address that refuses connections.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// outcome names which of the documented results err is.
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, imapbridge.ErrBadCredentials) && errors.Is(err, imapbridge.ErrUnavailable):
		return "both sentinels: " + err.Error()
	case errors.Is(err, imapbridge.ErrBadCredentials):
		return "bad credentials"
	case errors.Is(err, imapbridge.ErrUnavailable):
		return "unavailable"
	}
	return "unclassified: " + err.Error()
}

func TestIMAPAuthenticatorDovecot(t *testing.T) {
	t.Parallel()
	users := map[string]string{
		"alice": "correct horse",
		"bob":   `qu"o\te`,
		"chloe": "pässwörd ✓", // sent as an IMAP literal
	}
	d := testenv.Dovecot(t, users)
	a := newAuth(t, imapbridge.Config{Addr: d.Addr})

	tests := []struct {
		name, user, password, want string
	}{
		{"right password", "alice", "correct horse", "ok"},
		{"quote and backslash", "bob", `qu"o\te`, "ok"},
		{"UTF-8 password", "chloe", "pässwörd ✓", "ok"},
		{"UTF-8 user name", "chloé", "pässwörd ✓", "bad credentials"},
		{"wrong password", "alice", "correct horsE", "bad credentials"},
		{"password of another user", "alice", `qu"o\te`, "bad credentials"},
		{"unknown user", "mallory", "correct horse", "bad credentials"},
		{"empty password", "alice", "", "bad credentials"},
		{"NUL in password", "alice", "correct\x00horse", "bad credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := a.Verify(t.Context(), tt.user, tt.password)
			if got := outcome(err); got != tt.want {
				t.Errorf("Verify(%q) = %v (%s); want %s", tt.user, err, got, tt.want)
			}
			if err != nil && tt.password != "" && strings.Contains(err.Error(), tt.password) {
				t.Errorf("error %q reveals the password", err)
			}
		})
	}

	t.Run("concurrent", func(t *testing.T) {
		t.Parallel()
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() {
				pw := "correct horse"
				if i%2 == 1 {
					pw = "wrong"
				}
				errs[i] = a.Verify(t.Context(), "alice", pw)
			})
		}
		wg.Wait()
		for i, err := range errs {
			want := "ok"
			if i%2 == 1 {
				want = "bad credentials"
			}
			if got := outcome(err); got != want {
				t.Errorf("call %d: %v (%s); want %s", i, err, got, want)
			}
		}
	})
}

func TestIMAPAuthenticatorLogsOut(t *testing.T) {
	t.Parallel()
	for _, reply := range []string{"OK [CAPABILITY IMAP4rev1] logged in", "NO [AUTHENTICATIONFAILED] nope"} {
		f := &fakeIMAP{Greeting: "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi", LoginReply: reply}
		a := newAuth(t, imapbridge.Config{Addr: f.start(t)})
		_ = a.Verify(t.Context(), "alice", "pw")
		if diff := cmp.Diff([]string{"LOGIN", "LOGOUT"}, f.commands()); diff != "" {
			t.Errorf("LOGIN answered %q: commands (-want +got):\n%s", reply, diff)
		}
	}
}

func TestIMAPAuthenticatorUnreachable(t *testing.T) {
	t.Parallel()
	a := newAuth(t, imapbridge.Config{Addr: closedPort(t)})
	err := a.Verify(t.Context(), "alice", "pw")
	if got := outcome(err); got != "unavailable" {
		t.Errorf("Verify at a closed port = %v (%s); want unavailable", err, got)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("error %v does not wrap the dial error", err)
	}
}

func TestIMAPAuthenticatorTimeouts(t *testing.T) {
	t.Parallel()
	silent := (&fakeIMAP{}).start(t) // accepts, never greets

	t.Run("context deadline", func(t *testing.T) {
		t.Parallel()
		a := newAuth(t, imapbridge.Config{Addr: silent})
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := a.Verify(ctx, "alice", "pw")
		checkTimedOut(t, err, start, context.DeadlineExceeded)
	})
	t.Run("context cancelled", func(t *testing.T) {
		t.Parallel()
		a := newAuth(t, imapbridge.Config{Addr: silent})
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(200*time.Millisecond, cancel)
		start := time.Now()
		err := a.Verify(ctx, "alice", "pw")
		checkTimedOut(t, err, start, context.Canceled)
	})
	t.Run("Config.Timeout", func(t *testing.T) {
		t.Parallel()
		a := newAuth(t, imapbridge.Config{Addr: silent, Timeout: 200 * time.Millisecond})
		start := time.Now()
		err := a.Verify(t.Context(), "alice", "pw")
		checkTimedOut(t, err, start, context.DeadlineExceeded)
	})
}

func checkTimedOut(t *testing.T, err error, start time.Time, want error) {
	t.Helper()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Verify took %v; want about 200ms", d)
	}
	if got := outcome(err); got != "unavailable" {
		t.Errorf("Verify = %v (%s); want unavailable", err, got)
	}
	if !errors.Is(err, want) {
		t.Errorf("Verify = %v; want it to wrap %v", err, want)
	}
}

func TestIMAPAuthenticatorUpstreams(t *testing.T) {
	t.Parallel()
	const caps = "IMAP4rev1 AUTH=PLAIN"
	tests := []struct {
		name   string
		server *fakeIMAP
		cfg    imapbridge.Config // Addr is filled in; RootCAs when trustCert
		trust  bool
		want   string
		cmds   []string
	}{
		{
			name:   "implicit TLS, trusted certificate",
			server: &fakeIMAP{ImplicitTLS: true, Greeting: "* OK [CAPABILITY " + caps + "] hi", LoginReply: "OK [CAPABILITY IMAP4rev1] in"},
			cfg:    imapbridge.Config{TLS: imapbridge.TLSImplicit},
			trust:  true,
			want:   "ok",
			cmds:   []string{"LOGIN over TLS", "LOGOUT"},
		},
		{
			name:   "implicit TLS, self-signed certificate, InsecureSkipVerify",
			server: &fakeIMAP{ImplicitTLS: true, Greeting: "* OK [CAPABILITY " + caps + "] hi", LoginReply: "OK [CAPABILITY IMAP4rev1] in"},
			cfg:    imapbridge.Config{TLS: imapbridge.TLSImplicit, InsecureSkipVerify: true},
			want:   "ok",
			cmds:   []string{"LOGIN over TLS", "LOGOUT"},
		},
		{
			name:   "implicit TLS, untrusted certificate",
			server: &fakeIMAP{ImplicitTLS: true, Greeting: "* OK [CAPABILITY " + caps + "] hi", LoginReply: "OK [CAPABILITY IMAP4rev1] in"},
			cfg:    imapbridge.Config{TLS: imapbridge.TLSImplicit},
			want:   "unavailable",
		},
		{
			name:   "implicit TLS, certificate for another name",
			server: &fakeIMAP{ImplicitTLS: true, Greeting: "* OK [CAPABILITY " + caps + "] hi", LoginReply: "OK [CAPABILITY IMAP4rev1] in"},
			cfg:    imapbridge.Config{TLS: imapbridge.TLSImplicit, ServerName: "imap.example.com"},
			trust:  true,
			want:   "unavailable",
		},
		{
			name:   "STARTTLS",
			server: &fakeIMAP{StartTLS: true, Greeting: "* OK [CAPABILITY " + caps + " STARTTLS LOGINDISABLED] hi", Caps: caps, LoginReply: "OK [CAPABILITY IMAP4rev1] in"},
			cfg:    imapbridge.Config{TLS: imapbridge.TLSStartTLS},
			trust:  true,
			want:   "ok",
			cmds:   []string{"STARTTLS", "CAPABILITY", "LOGIN over TLS", "LOGOUT"},
		},
		{
			name:   "STARTTLS, wrong password",
			server: &fakeIMAP{StartTLS: true, Greeting: "* OK [CAPABILITY " + caps + " STARTTLS] hi", Caps: caps, LoginReply: "NO [AUTHENTICATIONFAILED] no"},
			cfg:    imapbridge.Config{TLS: imapbridge.TLSStartTLS},
			trust:  true,
			want:   "bad credentials",
			cmds:   []string{"STARTTLS", "CAPABILITY", "LOGIN over TLS", "LOGOUT"},
		},
		{
			name:   "STARTTLS refused",
			server: &fakeIMAP{Greeting: "* OK [CAPABILITY " + caps + "] hi", LoginReply: "OK [CAPABILITY IMAP4rev1] in"},
			cfg:    imapbridge.Config{TLS: imapbridge.TLSStartTLS},
			trust:  true,
			want:   "unavailable",
			cmds:   []string{"STARTTLS"},
		},
		{
			name:   "LOGINDISABLED without TLS: the password is not sent",
			server: &fakeIMAP{Greeting: "* OK [CAPABILITY " + caps + " STARTTLS LOGINDISABLED] hi", LoginReply: "OK [CAPABILITY IMAP4rev1] in"},
			want:   "unavailable",
		},
		{
			name:   "greeting without capabilities",
			server: &fakeIMAP{Greeting: "* OK hi", Caps: caps, LoginReply: "OK [CAPABILITY IMAP4rev1] in"},
			want:   "ok",
			cmds:   []string{"CAPABILITY", "LOGIN", "LOGOUT"},
		},
		{
			name:   "PREAUTH: the server cannot check passwords",
			server: &fakeIMAP{Greeting: "* PREAUTH [CAPABILITY " + caps + "] welcome", LoginReply: "OK [CAPABILITY IMAP4rev1] in"},
			want:   "unavailable",
		},
		{
			name:   "BYE greeting",
			server: &fakeIMAP{Greeting: "* BYE too busy", LoginReply: "OK [CAPABILITY IMAP4rev1] in"},
			want:   "unavailable",
		},
		{
			name:   "NO without code",
			server: &fakeIMAP{Greeting: "* OK [CAPABILITY " + caps + "] hi", LoginReply: "NO wrong"},
			want:   "bad credentials",
			cmds:   []string{"LOGIN", "LOGOUT"},
		},
		{
			name:   "NO [UNAVAILABLE]",
			server: &fakeIMAP{Greeting: "* OK [CAPABILITY " + caps + "] hi", LoginReply: "NO [UNAVAILABLE] auth backend down"},
			want:   "unavailable",
			cmds:   []string{"LOGIN", "LOGOUT"},
		},
		{
			name:   "BAD",
			server: &fakeIMAP{Greeting: "* OK [CAPABILITY " + caps + "] hi", LoginReply: "BAD what?"},
			want:   "unavailable",
			cmds:   []string{"LOGIN", "LOGOUT"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := tt.server
			cfg := tt.cfg
			cfg.Addr = f.start(t)
			if tt.trust {
				cfg.RootCAs = f.pool
			}
			const password = "s3cret-pw"
			err := newAuth(t, cfg).Verify(t.Context(), "alice", password)
			if got := outcome(err); got != tt.want {
				t.Errorf("Verify = %v (%s); want %s", err, got, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), password) {
				t.Errorf("error %q reveals the password", err)
			}
			if diff := cmp.Diff(tt.cmds, f.commands()); diff != "" {
				t.Errorf("commands the server saw (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewIMAPAuthenticatorRejectsBadConfig(t *testing.T) {
	for _, cfg := range []imapbridge.Config{
		{Addr: "imap.example.com", TLS: imapbridge.TLSImplicit},
		{Addr: ":993", TLS: imapbridge.TLSImplicit},
		{Addr: "imap.example.com:993"},
		{Addr: "imap.example.com:993", TLS: "ssl"},
		{Addr: "imap.example.com:993", TLS: imapbridge.TLSImplicit, Timeout: -time.Second},
	} {
		if _, err := imapbridge.NewIMAPAuthenticator(cfg); err == nil {
			t.Errorf("NewIMAPAuthenticator(%+v) succeeded; want an error", cfg)
		}
	}
}

// countingAuth counts the calls that reach the wrapped Authenticator.
type countingAuth struct {
	next imapbridge.Authenticator
	mu   sync.Mutex
	n    int
}

func (c *countingAuth) Verify(ctx context.Context, user, password string) error {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.next.Verify(ctx, user, password)
}

func (c *countingAuth) calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestCachedAuthenticatorDovecot runs the cache in front of a real
// upstream.
func TestCachedAuthenticatorDovecot(t *testing.T) {
	t.Parallel()
	d := testenv.Dovecot(t, map[string]string{"alice": "pw1"})
	upstream := &countingAuth{next: newAuth(t, imapbridge.Config{Addr: d.Addr})}
	c := imapbridge.NewCachedAuthenticator(upstream, imapbridge.CacheOptions{})

	steps := []struct {
		password, want string
		calls          int // upstream calls so far
	}{
		{"pw1", "ok", 1},
		{"pw1", "ok", 1}, // cached
		{"pw2", "bad credentials", 2},
		{"pw2", "bad credentials", 3}, // failures are never cached
		{"pw1", "ok", 3},
	}
	for i, s := range steps {
		err := c.Verify(t.Context(), "alice", s.password)
		if got := outcome(err); got != s.want {
			t.Errorf("step %d: Verify(%q) = %v (%s); want %s", i, s.password, err, got, s.want)
		}
		if got := upstream.calls(); got != s.calls {
			t.Errorf("step %d: %d upstream calls; want %d", i, got, s.calls)
		}
	}
}
