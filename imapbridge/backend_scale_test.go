package imapbridge

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/easd/easd/eas"
	"github.com/easd/easd/internal/testenv"
)

// TestBackendFetchLargeMessageStreams fetches a 20 MB message and checks
// that the heap does not grow by anything near its size meanwhile. It is
// not parallel, so that other tests do not disturb the heap.
func TestBackendFetchLargeMessageStreams(t *testing.T) {
	e := newBackendEnv(t, PoolOptions{}, BackendOptions{})
	const lines = 200_000 // of 100 bytes: 20 MB
	header := []byte("From: a@example.org\r\nSubject: large\r\nContent-Type: text/plain\r\n\r\n")
	size := int64(len(header) + lines*100)

	// Generate the message as it is appended, hashing it: the test holds
	// no copy of it either.
	want := sha256.New()
	cmd := e.other.Append("INBOX", size, nil)
	w := io.MultiWriter(cmd, want)
	if _, err := w.Write(header); err != nil {
		t.Fatal(err)
	}
	var chunk bytes.Buffer
	for i := range lines {
		fmt.Fprintf(&chunk, "line %08d %s\r\n", i, bytes.Repeat([]byte{byte('a' + i%26)}, 100-16))
		if chunk.Len() >= 64<<10 || i == lines-1 {
			if _, err := w.Write(chunk.Bytes()); err != nil {
				t.Fatal(err)
			}
			chunk.Reset()
		}
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatal(err)
	}
	uid := uint32(data.UID)

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapAlloc, ms.HeapAlloc
	got := sha256.New()
	var n int64
	calls := 0
	err = e.b.Fetch(ctx10s(t), e.acct, "INBOX", []uint32{uid}, func(m eas.MailMeta, body io.Reader) error {
		calls++
		if m.UID != uid || m.Size != size {
			t.Errorf("meta %+v; want UID %d, size %d", m, uid, size)
		}
		buf := make([]byte, 32<<10)
		next := int64(0)
		for {
			k, err := body.Read(buf)
			got.Write(buf[:k])
			n += int64(k)
			if n >= next {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
				next += 1 << 20
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	})
	if err != nil || calls != 1 {
		t.Fatalf("Fetch: %v after %d calls", err, calls)
	}
	if n != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Errorf("fetched %d bytes, hash %x; want %d bytes, hash %x", n, got.Sum(nil), size, want.Sum(nil))
	}
	if growth := int64(peak) - int64(base); growth > size/4 {
		t.Errorf("heap grew by %d bytes while streaming a %d byte message", growth, size)
	} else {
		t.Logf("heap grew by %d bytes while streaming a %d byte message", growth, size)
	}
}

// TestBackendManyMessages scans and fetches a folder of 10,000 messages
// in a few commands.
func TestBackendManyMessages(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("10,000 messages")
	}
	d := testenv.Dovecot(t, map[string]string{"alice": "pw"})
	x := newProxy(t, d.Addr)
	e := newBackendEnvAt(t, d, x.addr(), PoolOptions{MaxPerUser: 1}, BackendOptions{FetchBatch: 64})
	const count = 10_000
	for i := range count {
		d.Deliver(t, "alice", "Big", rawMessage(i))
	}
	// Let Dovecot index the folder before measuring.
	if _, err := e.b.Status(ctx10s(t), e.acct, "Big"); err != nil {
		t.Fatal(err)
	}

	sent := x.sent()
	s := e.scan(t, "Big", eas.ScanQuery{})
	if len(s.UIDs) != count || len(s.Changed) != count || s.Status.Messages != count {
		t.Fatalf("Scan: %d UIDs, %d changed, %d messages; want %d", len(s.UIDs), len(s.Changed), s.Status.Messages, count)
	}
	if !slices.IsSorted(s.UIDs) || s.UIDs[0] != 1 || s.UIDs[count-1] != count {
		t.Errorf("UIDs not 1..%d ascending", count)
	}
	// A few commands, not one per message.
	if n := x.sent() - sent; n > 2000 {
		t.Errorf("Scan sent %d bytes to the server", n)
	}

	// Changes by another device, and holes in the UIDs.
	changed := []uint32{17, 5000, 9999}
	for _, uid := range changed {
		store(t, e.other, "Big", uid, imap.StoreFlagsAdd, imap.FlagSeen)
	}
	var holes imap.UIDSet
	holes.AddRange(100, 199)
	if err := e.other.Store(holes, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.other.UIDExpunge(holes).Close(); err != nil {
		t.Fatal(err)
	}
	sent = x.sent()
	s2 := e.scan(t, "Big", eas.ScanQuery{ChangedSince: s.Status.HighestModSeq})
	var got []uint32
	for _, m := range sortedMetas(s2.Changed) {
		got = append(got, m.UID)
		if m.Flags != eas.FlagSeen {
			t.Errorf("message %d: flags %b", m.UID, m.Flags)
		}
	}
	if !slices.Equal(got, changed) || len(s2.UIDs) != count-100 {
		t.Errorf("Scan changed since: %v, %d UIDs; want %v, %d", got, len(s2.UIDs), changed, count-100)
	}
	if n := x.sent() - sent; n > 2000 {
		t.Errorf("Scan sent %d bytes to the server", n)
	}

	// Fetch every 7th message, holes included, in batches of 64.
	var want []uint32
	for uid := uint32(1); uid <= count; uid += 7 {
		want = append(want, uid)
	}
	sent = x.sent()
	var fetched []uint32
	seen := make(map[int]bool)
	err := e.b.Fetch(ctx10s(t), e.acct, "Big", want, func(m eas.MailMeta, body io.Reader) error {
		b, err := io.ReadAll(body)
		// Dovecot numbers delivered messages in its own order.
		var k int
		if i := bytes.Index(b, []byte("Subject: message ")); i >= 0 {
			fmt.Sscanf(string(b[i:]), "Subject: message %d", &k)
		}
		if err == nil && (!bytes.Equal(b, rawMessage(k)) || seen[k]) {
			err = fmt.Errorf("message %d: wrong body %q", m.UID, b)
		}
		seen[k] = true
		fetched = append(fetched, m.UID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want = slices.DeleteFunc(want, func(uid uint32) bool { return uid >= 100 && uid <= 199 })
	if !slices.Equal(fetched, want) {
		t.Errorf("fetched %d messages, want %d", len(fetched), len(want))
	}
	// One command per 64 UIDs.
	if n := x.sent() - sent; n > int64(len(want)/64+2)*600 {
		t.Errorf("Fetch sent %d bytes to the server", n)
	}
}

// cutProxy forwards TCP connections to an upstream and, when armed,
// cuts them after a number of bytes from the upstream.
type cutProxy struct {
	ln     net.Listener
	target string
	// budget is how many more bytes may go from the upstream to the
	// client; negative means no limit.
	budget atomic.Int64
	wg     sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	x := &cutProxy{ln: ln, target: target}
	x.budget.Store(-1)
	x.wg.Add(1)
	go func() {
		defer x.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			x.wg.Add(2)
			go func() {
				defer x.wg.Done()
				_, _ = io.Copy(up, c)
				up.Close()
				c.Close()
			}()
			go func() {
				defer x.wg.Done()
				x.down(c, up)
				up.Close()
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		x.budget.Store(0) // ends the connections at their next read
		x.wg.Wait()
	})
	return x
}

// down copies from up to c within the budget.
func (x *cutProxy) down(c, up net.Conn) {
	buf := make([]byte, 4096)
	for {
		_ = up.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := up.Read(buf)
		if n > 0 {
			if b := x.budget.Load(); b >= 0 {
				left := x.budget.Add(-int64(n))
				if left < 0 {
					n = max(0, n+int(left))
					_, _ = c.Write(buf[:n])
					return
				}
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if x.budget.Load() == 0 {
					return
				}
				continue
			}
			return
		}
	}
}

func TestBackendFetchConnectionCut(t *testing.T) {
	t.Parallel()
	d := testenv.Dovecot(t, map[string]string{"alice": "pw"})
	x := newCutProxy(t, d.Addr)
	e := newBackendEnvAt(t, d, x.ln.Addr().String(), PoolOptions{MaxPerUser: 1}, BackendOptions{})
	big := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n"), 1<<14) // 1 MiB
	raw := append([]byte("Subject: big\r\n\r\n"), big...)
	uid := appendMessage(t, e.other, "INBOX", raw, time.Time{})

	// Log in first, then cut the connection 200 kB into the body.
	if _, err := e.b.Status(ctx10s(t), e.acct, "INBOX"); err != nil {
		t.Fatal(err)
	}
	checkStats(t, e.pool, "alice", PoolStats{Open: 1, Idle: 1})
	x.budget.Store(200 << 10)
	var read int
	err := e.b.Fetch(ctx10s(t), e.acct, "INBOX", []uint32{uid}, func(m eas.MailMeta, body io.Reader) error {
		b, err := io.ReadAll(body)
		read = len(b)
		return err
	})
	if err == nil || !errors.Is(err, ErrUnavailable) {
		t.Errorf("Fetch over a cut connection: %v; want an error wrapping ErrUnavailable", err)
	}
	if read >= len(raw) {
		t.Errorf("read %d bytes of %d from a cut connection", read, len(raw))
	}
	checkStats(t, e.pool, "alice", PoolStats{})

	// A retry, on a new connection, succeeds.
	x.budget.Store(-1)
	got := e.fetchAll(t, "INBOX", []uint32{uid})
	if len(got) != 1 || got[0].Body != string(raw) {
		t.Errorf("Fetch after the cut: %d messages", len(got))
	}
	checkStats(t, e.pool, "alice", PoolStats{Open: 1, Idle: 1})

	// Cut where the callback ignores the body: Fetch still fails.
	x.budget.Store(100 << 10)
	err = e.b.Fetch(ctx10s(t), e.acct, "INBOX", []uint32{uid}, func(eas.MailMeta, io.Reader) error { return nil })
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Fetch over a cut connection, body not read: %v; want ErrUnavailable", err)
	}
	checkStats(t, e.pool, "alice", PoolStats{})
}
