package testenv

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// imapSession is a raw IMAP connection for tests.
type imapSession struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialIMAP(t *testing.T, addr string) *imapSession {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	s := &imapSession{t: t, c: c, r: bufio.NewReader(c)}
	if g := s.line(); !strings.HasPrefix(g, "* OK ") {
		t.Fatalf("greeting %q; want * OK", g)
	}
	return s
}

func (s *imapSession) line() string {
	s.t.Helper()
	l, err := s.r.ReadString('\n')
	if err != nil {
		s.t.Fatalf("reading from IMAP server: %v (so far %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// cmd sends "tag command" and returns the untagged lines and the tagged
// status line.
func (s *imapSession) cmd(tag, command string) (untagged []string, status string) {
	s.t.Helper()
	if _, err := s.c.Write([]byte(tag + " " + command + "\r\n")); err != nil {
		s.t.Fatal(err)
	}
	for {
		l := s.line()
		if strings.HasPrefix(l, tag+" ") {
			return untagged, strings.TrimPrefix(l, tag+" ")
		}
		untagged = append(untagged, l)
	}
}

func TestDovecotLogin(t *testing.T) {
	t.Parallel()
	d := Dovecot(t, map[string]string{"alice": "s3cret", "Bob": `p"a:ss word`})
	if host, _, err := net.SplitHostPort(d.Addr); err != nil || host != "127.0.0.1" {
		t.Fatalf("Addr = %q; want 127.0.0.1:port", d.Addr)
	}

	tests := []struct {
		name, login string
		ok          bool
	}{
		{"right password", `alice s3cret`, true},
		{"wrong password", `alice s3creT`, false},
		{"unknown user", `mallory s3cret`, false},
		{"quoted password, case-insensitive user", `BOB "p\"a:ss word"`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := dialIMAP(t, d.Addr)
			_, status := s.cmd("a1", "LOGIN "+tt.login)
			if got := strings.HasPrefix(status, "OK "); got != tt.ok {
				t.Errorf("LOGIN %s: %q; want OK = %v", tt.login, status, tt.ok)
			}
			if !tt.ok && !strings.HasPrefix(status, "NO ") {
				t.Errorf("LOGIN %s: %q; want NO", tt.login, status)
			}
			if _, status := s.cmd("a2", "LOGOUT"); !strings.HasPrefix(status, "OK ") {
				t.Errorf("LOGOUT: %q", status)
			}
		})
	}
}

func TestDovecotDeliver(t *testing.T) {
	t.Parallel()
	d := Dovecot(t, map[string]string{"carol": "pw"})
	d.Deliver(t, "carol", "", []byte("Subject: one\r\n\r\nhello\r\n"))
	d.Deliver(t, "Carol", "Work", []byte("Subject: two\r\n\r\nhello\r\n"))
	if _, err := os.Stat(d.Maildir("carol") + "/.Work/maildirfolder"); err != nil {
		t.Error(err)
	}

	s := dialIMAP(t, d.Addr)
	if _, status := s.cmd("a1", "LOGIN carol pw"); !strings.HasPrefix(status, "OK ") {
		t.Fatalf("LOGIN: %q", status)
	}
	for _, mbox := range []string{"INBOX", "Work"} {
		untagged, status := s.cmd("a2", "EXAMINE "+mbox)
		if !strings.HasPrefix(status, "OK ") {
			t.Fatalf("EXAMINE %s: %q", mbox, status)
		}
		if !slices.Contains(untagged, "* 1 EXISTS") {
			t.Errorf("EXAMINE %s: %q; want * 1 EXISTS", mbox, untagged)
		}
	}
}

// TestDovecotParallel starts two servers at once: each must get its own
// port and directory and know only its own users.
func TestDovecotParallel(t *testing.T) {
	t.Parallel()
	servers := make([]*DovecotServer, 2)
	t.Run("start", func(t *testing.T) {
		for i, user := range []string{"dave", "erin"} {
			t.Run(user, func(t *testing.T) {
				t.Parallel()
				servers[i] = Dovecot(t, map[string]string{user: "pw"})
				s := dialIMAP(t, servers[i].Addr)
				if _, status := s.cmd("a1", "LOGIN "+user+" pw"); !strings.HasPrefix(status, "OK ") {
					t.Errorf("LOGIN: %q", status)
				}
				other := map[string]string{"dave": "erin", "erin": "dave"}[user]
				s = dialIMAP(t, servers[i].Addr)
				if _, status := s.cmd("a1", "LOGIN "+other+" pw"); !strings.HasPrefix(status, "NO ") {
					t.Errorf("LOGIN %s on %s's server: %q; want NO", other, user, status)
				}
			})
		}
	})
	if t.Skipped() || servers[0] == nil || servers[1] == nil {
		return
	}
	if servers[0].Addr == servers[1].Addr || servers[0].Dir == servers[1].Dir {
		t.Errorf("servers share an address or directory: %+v %+v", servers[0], servers[1])
	}
	// Both were stopped and removed when their subtests ended.
	for _, d := range servers {
		if c, err := net.DialTimeout("tcp", d.Addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after its test ended", d.Addr)
		}
		if _, err := os.Stat(d.Dir); !os.IsNotExist(err) {
			t.Errorf("%s still exists after its test ended: %v", d.Dir, err)
		}
	}
}

// TestDovecotCondstore checks that IMAP CONDSTORE and QRESYNC are there:
// advertised after login, and SELECT (CONDSTORE) reports HIGHESTMODSEQ.
func TestDovecotCondstore(t *testing.T) {
	t.Parallel()
	d := Dovecot(t, map[string]string{"frank": "pw"})
	d.Deliver(t, "frank", "", []byte("Subject: one\r\n\r\nhello\r\n"))
	s := dialIMAP(t, d.Addr)
	if _, status := s.cmd("a1", "LOGIN frank pw"); !strings.HasPrefix(status, "OK ") {
		t.Fatalf("LOGIN: %q", status)
	}
	untagged, status := s.cmd("a2", "CAPABILITY")
	if !strings.HasPrefix(status, "OK ") || len(untagged) != 1 {
		t.Fatalf("CAPABILITY: %q %q", untagged, status)
	}
	caps := strings.Fields(untagged[0])
	for _, want := range []string{"CONDSTORE", "QRESYNC", "ENABLE"} {
		if !slices.Contains(caps, want) {
			t.Errorf("CAPABILITY %q lacks %s", untagged[0], want)
		}
	}
	untagged, status = s.cmd("a3", "SELECT INBOX (CONDSTORE)")
	if !strings.HasPrefix(status, "OK ") {
		t.Fatalf("SELECT INBOX (CONDSTORE): %q", status)
	}
	if !slices.ContainsFunc(untagged, func(l string) bool { return strings.HasPrefix(l, "* OK [HIGHESTMODSEQ ") }) {
		t.Errorf("SELECT INBOX (CONDSTORE): %q; want * OK [HIGHESTMODSEQ n]", untagged)
	}
	untagged, status = s.cmd("a4", "FETCH 1 (MODSEQ)")
	if !strings.HasPrefix(status, "OK ") || len(untagged) != 1 || !strings.Contains(untagged[0], "MODSEQ (") {
		t.Errorf("FETCH 1 (MODSEQ): %q %q", untagged, status)
	}
}

// TestDovecotLMTP delivers over LMTPSocket by hand, as an MTA would.
func TestDovecotLMTP(t *testing.T) {
	t.Parallel()
	d := Dovecot(t, map[string]string{"grace": "pw"})
	if d.LMTPSocket == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("Dovecot has no LMTP server (apt-get install dovecot-lmtpd)")
		}
		t.Skip("Dovecot has no LMTP server (apt-get install dovecot-lmtpd)")
	}
	c, err := net.DialTimeout("unix", d.LMTPSocket, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	// reply reads a reply and returns its last line.
	reply := func() string {
		t.Helper()
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading LMTP reply: %v (%q)", err, l)
			}
			if len(l) < 4 || l[3] != '-' {
				return strings.TrimRight(l, "\r\n")
			}
		}
	}
	if g := reply(); !strings.HasPrefix(g, "220 ") {
		t.Fatalf("LMTP greeting %q", g)
	}
	for _, step := range []struct{ send, want string }{
		{"LHLO test.example\r\n", "250 "},
		{"MAIL FROM:<zoe@outside.test>\r\n", "250 "},
		{"RCPT TO:<Grace@example.test>\r\n", "250 "},
		{"RCPT TO:<mallory@example.test>\r\n", "550 "},
		{"DATA\r\n", "354 "},
		{"Subject: via LMTP\r\n\r\nhello\r\n.\r\n", "250 "},
		{"QUIT\r\n", "221 "},
	} {
		if _, err := c.Write([]byte(step.send)); err != nil {
			t.Fatal(err)
		}
		if got := reply(); !strings.HasPrefix(got, step.want) {
			t.Fatalf("LMTP %q: %q; want %s", step.send, got, step.want)
		}
	}
	files, _ := filepath.Glob(filepath.Join(d.Maildir("grace"), "new", "*"))
	if len(files) != 1 {
		t.Fatalf("grace's Maildir new/ holds %q; want one message", files)
	}
	if raw, err := os.ReadFile(files[0]); err != nil || !strings.Contains(string(raw), "Subject: via LMTP") {
		t.Errorf("delivered message %q: %v", raw, err)
	}
}

func TestDovecotMasterUser(t *testing.T) {
	d := Dovecot(t, map[string]string{"alice": "pw"})
	s := dialIMAP(t, d.Addr)
	if _, st := s.cmd("a1", `LOGIN "alice*`+d.MasterUser+`" "`+d.MasterPassword+`"`); !strings.HasPrefix(st, "OK") {
		t.Fatalf("master login: %s", st)
	}
	s = dialIMAP(t, d.Addr)
	if _, st := s.cmd("a1", `LOGIN "alice*`+d.MasterUser+`" "wrong"`); strings.HasPrefix(st, "OK") {
		t.Fatalf("master login with a wrong password: %s", st)
	}
}
