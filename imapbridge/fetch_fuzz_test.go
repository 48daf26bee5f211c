package imapbridge

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/easd/easd/eas"
)

// The bridge has no parser of its own: go-imap reads the server's
// responses and the bridge reads the items it hands over (readMeta,
// mailFlags, the folder list, the bodyReader of a literal cut short). This
// fuzz target answers one command of each operation with arbitrary bytes
// from a scripted server on loopback, so that all of it meets malformed,
// truncated and hostile responses.

// fuzzOps are the operations a fuzz input's mode picks, with the command
// whose answer is the input. Scan's UID SEARCH found that go-imap's
// SearchData.AllUIDs panics on "* SEARCH 0", loops for ever on UID
// 4294967295 and allocates whatever range is claimed: Scan now walks the
// set itself (searchUIDs).
var fuzzOps = []struct{ op, cmd string }{
	{"Fetch", "UID FETCH"},
	{"Scan", "UID FETCH"},
	{"Scan", "EXAMINE"},
	{"Folders", "LIST"},
	{"Status", "STATUS"},
	{"Scan", "UID SEARCH"},
}

// fuzzIMAP is a scripted IMAP server: it answers every command as a
// Dovecot with five messages would, but the one command named by the
// current script, which gets the script's bytes and a tagged OK; then it
// ends the connection (half-close, so the client reads all of it).
type fuzzIMAP struct {
	mu     sync.Mutex
	cmd    string
	answer []byte
}

func (f *fuzzIMAP) script(cmd string, answer []byte) {
	f.mu.Lock()
	f.cmd, f.answer = cmd, answer
	f.mu.Unlock()
}

// fuzzCaps are the capabilities fuzzIMAP announces.
const fuzzCaps = "IMAP4rev1 UIDPLUS ESEARCH CONDSTORE SPECIAL-USE LIST-STATUS MOVE"

// handle answers one command for scriptedServer.
func (f *fuzzIMAP) handle(c net.Conn, r *bufio.Reader, tag, cmd string) bool {
	f.mu.Lock()
	fuzzCmd, answer := f.cmd, f.answer
	f.mu.Unlock()
	upper := strings.ToUpper(cmd)
	if strings.HasPrefix(upper, fuzzCmd) {
		_, _ = c.Write(answer)
		fmt.Fprintf(c, "\r\n%s OK done\r\n", tag)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, r)
		return false
	}
	switch {
	case strings.HasPrefix(upper, "EXAMINE"), strings.HasPrefix(upper, "SELECT"):
		fmt.Fprintf(c, "* 5 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 9] n\r\n* OK [HIGHESTMODSEQ 12] m\r\n%s OK [READ-ONLY] done\r\n", tag)
	case strings.HasPrefix(upper, "UID SEARCH"):
		fmt.Fprintf(c, "* ESEARCH (TAG \"%s\") UID ALL 1:3,5,8\r\n%s OK done\r\n", tag, tag)
	case strings.HasPrefix(upper, "UNSELECT"), strings.HasPrefix(upper, "CLOSE"):
		fmt.Fprintf(c, "%s OK done\r\n", tag)
	default:
		fmt.Fprintf(c, "%s BAD unexpected\r\n", tag)
	}
	return true
}

// FuzzIMAPResponses runs a Backend operation (Fetch, Scan, Folders or
// Status, by mode) against a server that answers one of its commands with
// arbitrary bytes. Whatever the bytes: no panic, the call returns (within
// its 5 s context), and Fetch hands over bodies no longer than the bytes
// sent.
func FuzzIMAPResponses(f *testing.F) {
	const body = "Subject: s\r\n\r\nhello\r\n"
	for mode, seed := range []string{
		fmt.Sprintf("* 1 FETCH (UID 1 FLAGS (\\Seen $Forwarded Work) INTERNALDATE \"04-May-2025 03:02:01 +0000\" RFC822.SIZE %d BODY[] {%d}\r\n%s)\r\n"+
			"* 2 FETCH (UID 2 BODY[] {%d}\r\n%s FLAGS () INTERNALDATE \"04-May-2025 03:02:01 +0000\" RFC822.SIZE %d)", len(body), len(body), body, len(body), body, len(body)),
		"* 1 FETCH (UID 1 FLAGS (\\Seen) INTERNALDATE \"04-May-2025 03:02:01 +0000\" RFC822.SIZE 10 MODSEQ (12))\r\n* 2 FETCH (UID 5 FLAGS (\\Flagged \\Answered $label1))",
		"* 3 EXISTS\r\n* FLAGS (\\Seen)\r\n* OK [UIDVALIDITY 4294967295] v\r\n* OK [UIDNEXT 1] n\r\n* OK [HIGHESTMODSEQ 18446744073709551615] m",
		"* LIST (\\HasNoChildren) \"/\" INBOX\r\n* LIST (\\Sent \\HasNoChildren) \"/\" \"Sent Items\"\r\n* LIST (\\Noselect) \".\" \"&AOQ-rger\"\r\n* LIST () NIL \"x\"",
		"* STATUS INBOX (MESSAGES 5 UIDNEXT 9 UIDVALIDITY 7 HIGHESTMODSEQ 12)",
	} {
		f.Add([]byte(seed), uint8(mode))
	}
	f.Add([]byte("* 1 FETCH (UID 1 BODY[] {100}\r\nshort"), uint8(0))
	f.Add([]byte("* 1 FETCH (UID 1 BODY[] {4294967295}\r\n"), uint8(0))
	srv := &fuzzIMAP{}
	addr := scriptedServer(f, fuzzCaps, srv.handle)
	f.Fuzz(func(t *testing.T, answer []byte, mode uint8) {
		op := fuzzOps[int(mode)%len(fuzzOps)]
		srv.script(op.cmd, answer)
		p := NewPool(Config{Addr: addr, TLS: TLSNone}, PoolOptions{})
		defer p.Close()
		b := NewBackend(p, BackendOptions{})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a := eas.MailAccount{Login: "alice", Password: "pw"}
		done := make(chan struct{})
		go func() {
			defer close(done)
			switch op.op {
			case "Fetch":
				_ = b.Fetch(ctx, a, "INBOX", []uint32{1, 2, 5}, func(m eas.MailMeta, r io.Reader) error {
					n, err := io.Copy(io.Discard, r)
					if n > int64(len(answer)) {
						t.Errorf("a body of %d bytes from an answer of %d", n, len(answer))
					}
					return err
				})
			case "Scan":
				_, _ = b.Scan(ctx, a, "INBOX", eas.ScanQuery{ChangedSince: 3})
			case "Folders":
				_, _ = b.Folders(ctx, a)
			case "Status":
				_, _ = b.Status(ctx, a, "INBOX")
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s still running 5 s past its context", op.op)
		}
	})
}
