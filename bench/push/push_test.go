package push

import (
	"bufio"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestScanCountsCommandsAndUsers(t *testing.T) {
	lit := "From: a\r\n\r\nA001 NOT A COMMAND\r\n" // inside a literal
	in := "a1 LOGIN \"Push1\" pw\r\n" +
		"a2 SELECT INBOX (CONDSTORE)\r\n" +
		"a3 uid fetch 1:* (FLAGS)\r\n" +
		"a4 APPEND INBOX (\\Seen) {" + strconv.Itoa(len(lit)) + "+}\r\n" + lit + "\r\n" +
		"a5 IDLE\r\nDONE\r\n" +
		"a6 NOOP " + strings.Repeat("x", 100_000) + "\r\n" +
		"a7 IDLE\r\n"
	p := &Proxy{byName: map[string]int64{}}
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

func TestProxyOpenConns(t *testing.T) {
	// An "IMAP server" that greets, then answers each line with OK.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte("* OK hi\r\n"))
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					tag, _, _ := strings.Cut(line, " ")
					c.Write([]byte(tag + " OK done\r\n"))
				}
			}()
		}
	}()
	p, err := StartProxy("127.0.0.1:0", ln.Addr().String())
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
	if s := p.Snapshot(); s.Opened != 3 || s.Total != 5 {
		t.Errorf("snapshot %+v", s)
	}
}

func TestSummarize(t *testing.T) {
	var xs []float64
	for i := 100; i >= 1; i-- {
		xs = append(xs, float64(i))
	}
	got := Summarize(xs)
	want := Summary{Count: 100, Min: 1, P50: 50, P90: 90, P99: 99, Max: 100, Mean: 50.5}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if (Summarize(nil) != Summary{}) {
		t.Error("empty sample")
	}
}

func TestMetricsValue(t *testing.T) {
	m := &Metrics{Lines: []string{
		`easd_push_parked 200`,
		`easd_imap_watch_commands_total{command="LIST"} 3`,
		`easd_imap_watch_commands_total{command="STATUS"} 4`,
		`easd_push_wake_seconds_bucket{le="0.1"} 7`,
		`go_goroutines 12`,
	}}
	if v, ok := m.Value("easd_imap_watch_commands_total"); !ok || v != 7 {
		t.Errorf("sum over labels: %v %v", v, ok)
	}
	if _, ok := m.Value("easd_missing"); ok {
		t.Error("missing metric found")
	}
	got := m.WithPrefix("easd_push_", "easd_imap_")
	want := []string{`easd_push_parked 200`, `easd_imap_watch_commands_total{command="LIST"} 3`, `easd_imap_watch_commands_total{command="STATUS"} 4`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("WithPrefix (-want +got):\n%s", diff)
	}
}

func TestParseBenchFlags(t *testing.T) {
	cfg, err := parseBenchFlags(strings.Fields("-rss 1000,10000 -latency 1000 -idle 0 -easd-arg --imap-watch-sweep=1m -easd-arg --max-parked=0"))
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(cfg.RSS, []int{1000, 10000}) || !cmp.Equal(cfg.Latency, []int{1000}) || cfg.Idle != nil ||
		!cmp.Equal(cfg.EasdArgs, []string{"--imap-watch-sweep=1m", "--max-parked=0"}) {
		t.Errorf("%+v", cfg)
	}
	if cfg, err = parseBenchFlags([]string{"-smoke"}); err != nil || cfg.Appends != 30 || !cmp.Equal(cfg.Idle, []int{200}) {
		t.Errorf("smoke: %+v, %v", cfg, err)
	}
	if _, err := parseBenchFlags([]string{"-rss", "x"}); err == nil {
		t.Error("bad count accepted")
	}
}
