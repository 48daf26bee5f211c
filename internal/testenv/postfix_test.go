package testenv

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testMessage returns a message whose body holds a random token, and the
// token.
func testMessage(from, to string) (raw []byte, token string) {
	token = rand.Text()
	raw = fmt.Appendf(nil, "From: <%s>\r\nTo: <%s>\r\nSubject: test %s\r\nMessage-ID: <%s@easd.test>\r\n\r\nbody %s\r\n",
		from, to, token, token, token)
	return raw, token
}

// waitForMail waits up to 20 s for a message holding token in the INBOX
// Maildir of user of d, and returns it.
func waitForMail(t *testing.T, d *DovecotServer, user, token string) []byte {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if raw := findMail(t, d, user, token); raw != nil {
			return raw
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message with %s reached %s's INBOX within 20s", token, user)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// findMail returns the message holding token in the INBOX Maildir of user
// of d, or nil.
func findMail(t *testing.T, d *DovecotServer, user, token string) []byte {
	t.Helper()
	for _, sub := range []string{"new", "cur"} {
		files, _ := filepath.Glob(filepath.Join(d.Maildir(user), sub, "*"))
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				continue // moved from new to cur meanwhile
			}
			if bytes.Contains(raw, []byte(token)) {
				return raw
			}
		}
	}
	return nil
}

// inboxCount returns the number of messages in user's INBOX of d, as told
// by IMAP.
func inboxCount(t *testing.T, d *DovecotServer, user, password string) int {
	t.Helper()
	s := dialIMAP(t, d.Addr)
	if _, status := s.cmd("a1", "LOGIN "+user+" "+password); !strings.HasPrefix(status, "OK ") {
		t.Fatalf("LOGIN %s: %q", user, status)
	}
	untagged, status := s.cmd("a2", "EXAMINE INBOX")
	if !strings.HasPrefix(status, "OK ") {
		t.Fatalf("EXAMINE INBOX: %q", status)
	}
	for _, l := range untagged {
		var n int
		if _, err := fmt.Sscanf(l, "* %d EXISTS", &n); err == nil {
			return n
		}
	}
	t.Fatalf("EXAMINE INBOX: no EXISTS in %q", untagged)
	return 0
}

func TestPostfixDeliver(t *testing.T) {
	t.Parallel()
	d := Dovecot(t, map[string]string{"alice": "pw-a", "Bob": "pw-b"})
	p := Postfix(t, d)
	for _, addr := range []string{p.SMTPAddr, p.SubmissionAddr} {
		if host, _, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" {
			t.Errorf("address %q; want 127.0.0.1:port", addr)
		}
	}
	if p.SMTPAddr == p.SubmissionAddr || p.Domain != "example.test" {
		t.Errorf("SMTPAddr %q, SubmissionAddr %q, Domain %q", p.SMTPAddr, p.SubmissionAddr, p.Domain)
	}

	raw, token := testMessage("zoe@outside.test", "alice@example.test")
	p.Send(t, "zoe@outside.test", "alice@example.test", raw)
	got := waitForMail(t, d, "alice", token)
	for _, want := range []string{"Delivered-To: alice@example.test", "Return-Path: <zoe@outside.test>", "Subject: test " + token} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("delivered message lacks %q:\n%s", want, got)
		}
	}
	// Recipients are case-insensitive, like Dovecot's user names.
	raw, token = testMessage("zoe@outside.test", "BOB@Example.Test")
	p.Send(t, "zoe@outside.test", "BOB@Example.Test", raw)
	waitForMail(t, d, "bob", token)

	if n := inboxCount(t, d, "alice", "pw-a"); n != 1 {
		t.Errorf("alice's INBOX holds %d messages over IMAP; want 1", n)
	}
}

func TestPostfixRefuses(t *testing.T) {
	t.Parallel()
	d := Dovecot(t, map[string]string{"alice": "pw-a"})
	p := Postfix(t, d)
	alice := smtp.PlainAuth("", "alice", "pw-a", "127.0.0.1")
	tests := []struct {
		name, addr string
		auth       smtp.Auth
		to         string
		code       int
		msg        string
	}{
		{"outside domain", p.SMTPAddr, nil, "carol@outside.test", 554, "Relay access denied"},
		{"localhost", p.SMTPAddr, nil, "carol@localhost", 554, "Relay access denied"},
		{"unknown user", p.SMTPAddr, nil, "mallory@example.test", 550, "User unknown"},
		{"submission without auth", p.SubmissionAddr, nil, "alice@example.test", 554, "Access denied"},
		{"submission with wrong password", p.SubmissionAddr, smtp.PlainAuth("", "alice", "wrong", "127.0.0.1"), "alice@example.test", 535, "authentication failed"},
		{"submission to outside domain", p.SubmissionAddr, alice, "carol@outside.test", 550, "no outside delivery in tests"},
		{"submission to unknown user", p.SubmissionAddr, alice, "mallory@example.test", 550, "User unknown"},
	}
	var tokens []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, token := testMessage("alice@example.test", tt.to)
			tokens = append(tokens, token)
			err := smtp.SendMail(tt.addr, tt.auth, "alice@example.test", []string{tt.to}, raw)
			var perr *textproto.Error
			if !errors.As(err, &perr) || perr.Code != tt.code || !strings.Contains(perr.Msg, tt.msg) {
				t.Errorf("sending to %s: %v; want %d ... %s", tt.to, err, tt.code, tt.msg)
			}
		})
	}

	// A message that was accepted after them reaches alice, and it alone:
	// nothing bounced a refused message to her.
	raw, token := testMessage("zoe@outside.test", "alice@example.test")
	p.Send(t, "zoe@outside.test", "alice@example.test", raw)
	waitForMail(t, d, "alice", token)
	for _, token := range tokens {
		if findMail(t, d, "alice", token) != nil {
			t.Errorf("refused message %s reached alice", token)
		}
	}
	if n := inboxCount(t, d, "alice", "pw-a"); n != 1 {
		t.Errorf("alice's INBOX holds %d messages; want 1", n)
	}
}

func TestPostfixSubmission(t *testing.T) {
	t.Parallel()
	d := Dovecot(t, map[string]string{"alice": "pw-a", "bob": "pw-b"})
	p := Postfix(t, d)
	for _, auth := range []smtp.Auth{
		smtp.PlainAuth("", "alice", "pw-a", "127.0.0.1"),
		loginAuth{"Alice", "pw-a"},
	} {
		raw, token := testMessage("alice@example.test", "bob@example.test")
		if err := smtp.SendMail(p.SubmissionAddr, auth, "alice@example.test", []string{"bob@example.test"}, raw); err != nil {
			t.Fatalf("submitting as alice: %v", err)
		}
		got := waitForMail(t, d, "bob", token)
		if !bytes.Contains(got, []byte("(Authenticated sender: alice)")) {
			t.Errorf("delivered message lacks Authenticated sender: alice:\n%s", got)
		}
	}
	if n := inboxCount(t, d, "bob", "pw-b"); n != 2 {
		t.Errorf("bob's INBOX holds %d messages; want 2", n)
	}
}

// loginAuth is SASL LOGIN, which net/smtp lacks.
type loginAuth struct{ user, password string }

func (a loginAuth) Start(*smtp.ServerInfo) (string, []byte, error) { return "LOGIN", nil, nil }

func (a loginAuth) Next(challenge []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	switch strings.ToLower(string(challenge)) {
	case "username:":
		return []byte(a.user), nil
	case "password:":
		return []byte(a.password), nil
	}
	return nil, fmt.Errorf("unexpected LOGIN challenge %q", challenge)
}

// TestPostfixParallel starts two Dovecot and Postfix pairs at once: each
// must get its own ports and directories and deliver to its own Dovecot.
func TestPostfixParallel(t *testing.T) {
	t.Parallel()
	servers := make([]*PostfixServer, 2)
	t.Run("start", func(t *testing.T) {
		for i, user := range []string{"dave", "erin"} {
			t.Run(user, func(t *testing.T) {
				t.Parallel()
				d := Dovecot(t, map[string]string{user: "pw"})
				servers[i] = Postfix(t, d)
				raw, token := testMessage("zoe@outside.test", user+"@example.test")
				servers[i].Send(t, "zoe@outside.test", user+"@example.test", raw)
				waitForMail(t, d, user, token)
				other := map[string]string{"dave": "erin", "erin": "dave"}[user]
				err := smtp.SendMail(servers[i].SMTPAddr, nil, "zoe@outside.test", []string{other + "@example.test"}, raw)
				if err == nil || !strings.Contains(err.Error(), "550 ") {
					t.Errorf("sending to %s through %s's Postfix: %v; want 550", other, user, err)
				}
			})
		}
	})
	if servers[0] == nil || servers[1] == nil {
		t.Skip("a server did not start")
	}
	a, b := servers[0], servers[1]
	addrs := []string{a.SMTPAddr, a.SubmissionAddr, b.SMTPAddr, b.SubmissionAddr}
	slices.Sort(addrs)
	if len(slices.Compact(addrs)) != 4 || a.Dir == b.Dir {
		t.Errorf("servers share an address or directory: %+v %+v", a, b)
	}
	// Both were stopped and removed when their subtests ended.
	for _, p := range servers {
		for _, addr := range []string{p.SMTPAddr, p.SubmissionAddr} {
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				t.Errorf("%s still accepts connections after its test ended", addr)
			}
		}
		if _, err := os.Stat(p.Dir); !os.IsNotExist(err) {
			t.Errorf("%s still exists after its test ended: %v", p.Dir, err)
		}
	}
}
