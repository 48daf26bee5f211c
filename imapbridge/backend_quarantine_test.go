package imapbridge

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/easd/easd/eas"
)

// TestFetchQuarantineDovecot: a message whose file Dovecot cannot read
// makes Dovecot answer its FETCH without the body and drop the connection
// ("* BYE FETCH failed"). Fetch gives the other messages and names that
// one in an *eas.MailItemError; fetched alone, it is named again.
func TestFetchQuarantineDovecot(t *testing.T) {
	t.Parallel()
	e := newBackendEnv(t, PoolOptions{}, BackendOptions{})
	date := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var uids []uint32
	for i := range 5 {
		uids = append(uids, appendMessage(t, e.other, "INBOX", rawMessage(i), date))
	}
	// The third message's file (named by the UID Dovecot gave it) becomes
	// unreadable to Dovecot's mail processes.
	if _, err := e.other.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.other.Fetch(imap.UIDSetNum(imap.UID(uids[2])), &imap.FetchOptions{RFC822Size: true}).Collect(); err != nil {
		t.Fatal(err)
	}
	var file string
	for _, dir := range []string{"cur", "new"} {
		ents, _ := os.ReadDir(filepath.Join(e.d.Maildir("alice"), dir))
		for _, ent := range ents {
			raw, _ := os.ReadFile(filepath.Join(e.d.Maildir("alice"), dir, ent.Name()))
			if strings.Contains(string(raw), "Message-ID: <2@example.org>") {
				file = filepath.Join(e.d.Maildir("alice"), dir, ent.Name())
			}
		}
	}
	if file == "" {
		t.Fatal("no file for message 2")
	}
	if err := os.Chmod(file, 0); err != nil {
		t.Fatal(err)
	}
	fetch := func(uids []uint32) ([]uint32, error) {
		var got []uint32
		err := e.b.Fetch(ctx10s(t), e.acct, "INBOX", uids, func(m eas.MailMeta, body io.Reader) error {
			b, err := io.ReadAll(body)
			if err == nil && !strings.Contains(string(b), "body of message") {
				err = fmt.Errorf("message %d: body %q", m.UID, b)
			}
			got = append(got, m.UID)
			return err
		})
		slices.Sort(got)
		return got, err
	}
	got, err := fetch(uids)
	var ie *eas.MailItemError
	if !errors.As(err, &ie) || len(ie.Failed) != 1 || ie.Failed[uids[2]] == nil {
		t.Fatalf("Fetch with an unreadable message: %v; want a MailItemError naming UID %d", err, uids[2])
	}
	want := []uint32{uids[0], uids[1], uids[3], uids[4]}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("messages given (-want +got):\n%s", diff)
	}
	if _, err := fetch(uids[2:3]); !errors.As(err, &ie) || ie.Failed[uids[2]] == nil {
		t.Errorf("Fetch of the unreadable message alone: %v", err)
	}
	if !strings.Contains(e.d.Log(), "FETCH failed") {
		t.Errorf("Dovecot did not fail the FETCH itself:\n%s", e.d.Log())
	}
	// Readable again: an ordinary Fetch.
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := fetch(uids); err != nil || len(got) != 5 {
		t.Errorf("after the repair: %v, %v", got, err)
	}
}

// scriptedFetch is an IMAP server on loopback whose answer to UID FETCH
// is scripted per requested UID set; it records the FETCH commands.
type scriptedFetch struct {
	// answer writes the untagged responses and returns the tagged status
	// ("OK done", "NO ...") or "" to close the connection instead.
	answer func(w io.Writer, uids []uint32) string

	mu      sync.Mutex
	fetches [][]uint32
}

func (f *scriptedFetch) start(t *testing.T) string {
	t.Helper()
	return scriptedServer(t, "IMAP4rev1 UIDPLUS", func(c net.Conn, _ *bufio.Reader, tag, cmd string) bool {
		switch {
		case strings.HasPrefix(cmd, "EXAMINE"):
			fmt.Fprintf(c, "* 9 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 20] n\r\n%s OK [READ-ONLY] done\r\n", tag)
		case strings.HasPrefix(cmd, "UID FETCH "):
			set, _, _ := strings.Cut(strings.TrimPrefix(cmd, "UID FETCH "), " ")
			uids := parseSet(set)
			f.mu.Lock()
			f.fetches = append(f.fetches, uids)
			f.mu.Unlock()
			status := f.answer(c, uids)
			if status == "" {
				return false
			}
			fmt.Fprintf(c, "%s %s\r\n", tag, status)
		default:
			fmt.Fprintf(c, "%s BAD unexpected\r\n", tag)
		}
		return true
	})
}

// parseSet reads a UID set such as "3,5:7".
func parseSet(s string) []uint32 {
	var out []uint32
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, _ := strconv.Atoi(lo)
		b := a
		if isRange {
			b, _ = strconv.Atoi(hi)
		}
		for u := a; u <= b; u++ {
			out = append(out, uint32(u))
		}
	}
	return out
}

// writeMessage writes the full FETCH response of message uid.
func writeMessage(w io.Writer, uid uint32) {
	body := fmt.Sprintf("Subject: m%d\r\n\r\nbody\r\n", uid)
	fmt.Fprintf(w, "* %d FETCH (UID %d FLAGS () INTERNALDATE \"04-May-2025 03:02:01 +0000\" RFC822.SIZE %d BODY[] {%d}\r\n%s)\r\n", uid, uid, len(body), len(body), body)
}

func (f *scriptedFetch) fetchAll(t *testing.T, uids []uint32) ([]uint32, error) {
	t.Helper()
	addr := f.start(t)
	b := NewBackend(newTestPool(t, addr, PoolOptions{}), BackendOptions{})
	var got []uint32
	err := b.Fetch(ctx10s(t), eas.MailAccount{Login: "alice", Password: "pw"}, "INBOX", uids, func(m eas.MailMeta, body io.Reader) error {
		got = append(got, m.UID)
		_, err := io.ReadAll(body)
		return err
	})
	slices.Sort(got)
	return got, err
}

// TestFetchQuarantineNO: a server that answers NO to every FETCH naming
// one message: Fetch narrows the refusal down (halves, then that message
// alone), gives the others and names it.
func TestFetchQuarantineNO(t *testing.T) {
	t.Parallel()
	f := &scriptedFetch{answer: func(w io.Writer, uids []uint32) string {
		for _, u := range uids {
			if u == 7 {
				return "NO [SERVERBUG] Internal error occurred"
			}
			writeMessage(w, u)
		}
		return "OK done"
	}}
	got, err := f.fetchAll(t, []uint32{3, 5, 7, 9, 11, 13})
	var ie *eas.MailItemError
	if !errors.As(err, &ie) || len(ie.Failed) != 1 || !strings.Contains(ie.Failed[7].Error(), "Internal error") {
		t.Fatalf("Fetch: %v; want a MailItemError naming UID 7", err)
	}
	if diff := cmp.Diff([]uint32{3, 5, 9, 11, 13}, got); diff != "" {
		t.Errorf("messages given (-want +got):\n%s", diff)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.fetches); n > 6 || !slices.ContainsFunc(f.fetches, func(s []uint32) bool { return slices.Equal(s, []uint32{7}) }) {
		t.Errorf("FETCH commands %v: want at most 6, one of UID 7 alone", f.fetches)
	}
}

// TestFetchQuarantineCut: a connection closed after a complete message,
// without a word about the next one, is a failed connection, not a
// message's fault: the error is returned as before and nothing is
// refetched.
func TestFetchQuarantineCut(t *testing.T) {
	t.Parallel()
	f := &scriptedFetch{answer: func(w io.Writer, uids []uint32) string {
		writeMessage(w, uids[0])
		return ""
	}}
	got, err := f.fetchAll(t, []uint32{1, 2, 3})
	var ie *eas.MailItemError
	if err == nil || errors.As(err, &ie) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Fetch over a cut connection: %v; want ErrUnavailable", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(got) != 1 || len(f.fetches) != 1 {
		t.Errorf("given %v after %d FETCH commands; want 1 message, 1 command", got, len(f.fetches))
	}
}

// TestFetchQuarantineBodiless: a server that answers one message without
// its body and then closes the connection (as Dovecot does) has that
// message fetched alone, the others fetched on.
func TestFetchQuarantineBodiless(t *testing.T) {
	t.Parallel()
	f := &scriptedFetch{answer: func(w io.Writer, uids []uint32) string {
		for _, u := range uids {
			if u == 2 {
				fmt.Fprintf(w, "* 2 FETCH (UID 2 FLAGS () RFC822.SIZE 30)\r\n* BYE FETCH failed: Internal error occurred.\r\n")
				return ""
			}
			writeMessage(w, u)
		}
		return "OK done"
	}}
	got, err := f.fetchAll(t, []uint32{1, 2, 3, 4})
	var ie *eas.MailItemError
	if !errors.As(err, &ie) || len(ie.Failed) != 1 || ie.Failed[2] == nil {
		t.Fatalf("Fetch: %v; want a MailItemError naming UID 2", err)
	}
	if diff := cmp.Diff([]uint32{1, 3, 4}, got); diff != "" {
		t.Errorf("messages given (-want +got):\n%s", diff)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if diff := cmp.Diff([][]uint32{{1, 2, 3, 4}, {2}, {3, 4}}, f.fetches); diff != "" {
		t.Errorf("FETCH commands (-want +got):\n%s", diff)
	}
}
