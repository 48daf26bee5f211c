package imapbridge

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/easd/easd/eas"
)

// TestBackendFetchBodyBeforeFlags checks Fetch against a server that
// sends a message's body before its other items (Dovecot does not): the
// body is fetched again once the flags, date and size are known.
func TestBackendFetchBodyBeforeFlags(t *testing.T) {
	t.Parallel()
	const body = "Subject: early\r\n\r\nhello\r\n"
	var (
		mu      sync.Mutex
		fetches []string
	)
	addr := scriptedServer(t, "IMAP4rev1 UIDPLUS", func(c net.Conn, _ *bufio.Reader, tag, cmd string) bool {
		switch {
		case strings.HasPrefix(cmd, "EXAMINE"):
			fmt.Fprintf(c, "* 2 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 9] n\r\n%s OK [READ-ONLY] done\r\n", tag)
		case strings.HasPrefix(cmd, "UID FETCH"):
			mu.Lock()
			fetches = append(fetches, cmd)
			mu.Unlock()
			if strings.Contains(cmd, "FLAGS") {
				// UID 5 with its body first; UID 8 in order.
				fmt.Fprintf(c, "* 1 FETCH (UID 5 BODY[] {%d}\r\n%s FLAGS (\\Seen Work) INTERNALDATE \"04-May-2025 03:02:01 +0000\" RFC822.SIZE %d)\r\n", len(body), body, len(body))
				fmt.Fprintf(c, "* 2 FETCH (UID 8 FLAGS () INTERNALDATE \"04-May-2025 03:02:01 +0000\" RFC822.SIZE %d BODY[] {%d}\r\n%s)\r\n", len(body), len(body), body)
			} else {
				fmt.Fprintf(c, "* 1 FETCH (UID 5 BODY[] {%d}\r\n%s)\r\n", len(body), body)
			}
			fmt.Fprintf(c, "%s OK done\r\n", tag)
		default:
			fmt.Fprintf(c, "%s BAD unexpected\r\n", tag)
		}
		return true
	})

	p := newTestPool(t, addr, PoolOptions{})
	b := NewBackend(p, BackendOptions{})
	var got []fetched
	err := b.Fetch(ctx10s(t), eas.MailAccount{Login: "alice", Password: "pw"}, "INBOX", []uint32{5, 8}, func(m eas.MailMeta, r io.Reader) error {
		data, err := io.ReadAll(r)
		got = append(got, fetched{m, string(data)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	date := time.Date(2025, 5, 4, 3, 2, 1, 0, time.UTC)
	want := []fetched{
		{eas.MailMeta{UID: 8, Date: date, Size: int64(len(body))}, body},
		{eas.MailMeta{UID: 5, Flags: eas.FlagSeen, Keywords: []string{"Work"}, Date: date, Size: int64(len(body))}, body},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("Fetch (-want +got):\n%s", diff)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(fetches) != 2 || !strings.HasPrefix(fetches[1], "UID FETCH 5 (UID BODY.PEEK[])") {
		t.Errorf("FETCH commands: %q; want a second one for UID 5's body", fetches)
	}
}
