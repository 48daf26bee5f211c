package imapproxy

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestScanCountsCommands(t *testing.T) {
	lit := "From: a\r\n\r\nA001 NOT A COMMAND\r\n" // inside a literal
	in := "a1 LOGIN bench pw\r\n" +
		"a2 SELECT INBOX (CONDSTORE)\r\n" +
		"a3 uid fetch 1:* (FLAGS)\r\n" +
		"a4 APPEND INBOX (\\Seen) {" + strconv.Itoa(len(lit)) + "+}\r\n" + lit + "\r\n" +
		"a5 IDLE\r\nDONE\r\n" +
		"a6 LOGIN {5}\r\nbench {2}\r\npw\r\n" +
		"a7 AUTHENTICATE PLAIN\r\nAGJlbmNoAHB3\r\n" +
		"a8 UID STORE 4 +FLAGS (\\Seen)\r\n" +
		"a9 NOOP " + strings.Repeat("x", 100_000) + "\r\n" +
		"b1 COMPRESS DEFLATE\r\nb2 garbage after compression\r\n"
	p := newProxy("", Options{})
	p.scan(bufio.NewReaderSize(strings.NewReader(in), 16), &connState{})
	want := map[string]int64{"LOGIN": 2, "SELECT": 1, "UID FETCH": 1, "APPEND": 1, "IDLE": 1, "AUTHENTICATE": 1,
		"UID STORE": 1, "NOOP": 1, "COMPRESS": 1}
	got := p.Snapshot()
	if diff := cmp.Diff(want, got.ByName); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
	if got.Total != 10 || got.Opaque != 1 {
		t.Errorf("total %d, opaque %d", got.Total, got.Opaque)
	}
	if s := got.Top(2); s != "LOGIN 2, APPEND 1, …" {
		t.Errorf("Top = %q", s)
	}
}

func TestScanCountsCommandsAndUsers(t *testing.T) {
	lit := "From: a\r\n\r\nA001 NOT A COMMAND\r\n" // inside a literal
	in := "a1 LOGIN \"Push1\" pw\r\n" +
		"a2 SELECT INBOX (CONDSTORE)\r\n" +
		"a3 uid fetch 1:* (FLAGS)\r\n" +
		"a4 APPEND INBOX (\\Seen) {" + strconv.Itoa(len(lit)) + "+}\r\n" + lit + "\r\n" +
		"a5 IDLE\r\nDONE\r\n" +
		"a6 NOOP " + strings.Repeat("x", 100_000) + "\r\n" +
		"a7 IDLE\r\n"
	p := newProxy("", Options{})
	st := &connState{}
	p.scan(bufio.NewReaderSize(strings.NewReader(in), 16), st)
	want := map[string]int64{"LOGIN": 1, "SELECT": 1, "UID FETCH": 1, "APPEND": 1, "IDLE": 2, "NOOP": 1}
	got := p.Snapshot()
	if diff := cmp.Diff(want, got.ByName); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
	if got.Total != 7 {
		t.Errorf("total %d", got.Total)
	}
	if st.user != "push1" || st.last != "IDLE" {
		t.Errorf("user %q, last %q", st.user, st.last)
	}
	if s := got.Top(2); s != "IDLE 2, APPEND 1, …" {
		t.Errorf("Top = %q", s)
	}
}

func TestSnapshotOfNoProxy(t *testing.T) {
	var p *Proxy
	if got := p.Snapshot(); !cmp.Equal(got, Counts{}) {
		t.Errorf("nil proxy: %+v", got)
	}
	if s := (Counts{}).Top(3); s != "none" {
		t.Errorf("Top = %q", s)
	}
}

func TestLoginUser(t *testing.T) {
	for line, want := range map[string]string{
		"a LOGIN alice pw\r\n":                  "alice",
		"a LOGIN \"b\\\"ob\" \"pw\"\r\n":        "b\"ob",
		"a LOGIN {5}\r\n":                       "",
		"a AUTHENTICATE PLAIN AGFsaWNlAHB3\r\n": "alice",
		"a AUTHENTICATE PLAIN\r\n":              "",
	} {
		name, _ := commandName([]byte(line))
		if got := loginUser(name, []byte(line)); got != want {
			t.Errorf("%q: %q, want %q", line, got, want)
		}
	}
}

// fakeIMAP starts an "IMAP server" that greets, then answers each line
// with OK; it returns its address.
func fakeIMAP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, "* OK hi\r\n")
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					tag, _, _ := strings.Cut(sc.Text(), " ")
					io.WriteString(c, tag+" OK done\r\n")
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestProxyForwardsAndCounts(t *testing.T) {
	p, err := Start("127.0.0.1:0", fakeIMAP(t), Options{CountBytes: true, ReadBuffer: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	greeting, _ := r.ReadString('\n')
	io.WriteString(c, "a1 NOOP\r\na2 UID FETCH 1:* FLAGS\r\n")
	l1, _ := r.ReadString('\n')
	l2, _ := r.ReadString('\n')
	if greeting != "* OK hi\r\n" || l1 != "a1 OK done\r\n" || l2 != "a2 OK done\r\n" {
		t.Fatalf("through the proxy: %q %q %q", greeting, l1, l2)
	}
	// The proxy counts a command after forwarding it, so the count may
	// trail the answer by a moment.
	got := p.Snapshot()
	for deadline := time.Now().Add(5 * time.Second); got.Total < 2 && time.Now().Before(deadline); got = p.Snapshot() {
		time.Sleep(5 * time.Millisecond)
	}
	if got.Total != 2 || got.ByName["UID FETCH"] != 1 || got.Opened != 1 || got.Up != 33 || got.Down == 0 {
		t.Errorf("counts %+v", got)
	}
}

func TestProxyOpenConns(t *testing.T) {
	p, err := Start("127.0.0.1:0", fakeIMAP(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i, cmd := range []string{"a LOGIN u1 pw\r\nb IDLE\r\n", "a LOGIN u1 pw\r\nb STATUS x\r\n", "a LOGIN u2 pw\r\n"} {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		rw := bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c))
		if _, err := rw.ReadString('\n'); err != nil {
			t.Fatalf("conn %d greeting: %v", i, err)
		}
		rw.WriteString(cmd)
		rw.Flush()
		for range strings.Count(cmd, "\n") {
			if _, err := rw.ReadString('\n'); err != nil {
				t.Fatalf("conn %d: %v", i, err)
			}
		}
	}
	want := Conns{Open: 3, Users: 2, MaxPerUser: 2, ByLast: map[string]int{"IDLE": 1, "STATUS": 1, "LOGIN": 1}}
	var got Conns
	for range 100 { // the proxy may not have counted the last line yet
		if got = p.OpenConns(); cmp.Equal(want, got) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("open connections (-want +got):\n%s", diff)
	}
	if s := p.Snapshot(); s.Opened != 3 || s.Total != 5 || s.Up != 0 || s.Down != 0 {
		t.Errorf("snapshot %+v", s)
	}
}
