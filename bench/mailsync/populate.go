package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Message sizes of issue #5: 2–50 KB of text, and for one message in 20
// an attachment of 20–200 KB (before base64).
const (
	minMessageSize    = 2 << 10
	maxMessageSize    = 50 << 10
	minAttachmentSize = 20 << 10
	maxAttachmentSize = 200 << 10
	attachmentEvery   = 20
)

// message is one generated message.
type message struct {
	raw        []byte
	date       time.Time
	seen       bool
	attachment bool
}

var words = strings.Fields(`alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike
november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu meeting report budget
schedule review draft final invoice project server mailbox sync device phone tablet calendar contact the of
and to in is for on with as by at from this that please thanks regards update status`)

// baseDate is the Date of message 0; later ones are older.
var baseDate = time.Date(2025, time.June, 1, 12, 0, 0, 0, time.UTC)

// genMessage returns message i of the set named by seed and tag: the same
// inputs always give the same bytes. Its size without the attachment is
// 2–50 KB; every 20th message (5 %) carries a 20–200 KB attachment.
func genMessage(seed uint64, tag string, i int) message {
	r := rand.New(rand.NewPCG(seed, uint64(i)))
	m := message{
		date:       baseDate.Add(-time.Duration(i) * 3 * time.Minute),
		seen:       r.IntN(10) < 7,
		attachment: i%attachmentEvery == attachmentEvery/2,
	}
	target := minMessageSize + r.IntN(maxMessageSize-minMessageSize+1)
	var b bytes.Buffer
	sender := r.IntN(200)
	fmt.Fprintf(&b, "From: \"Sender %d\" <sender%d@bench.example>\r\n", sender, sender)
	fmt.Fprintf(&b, "To: \"Bench User\" <bench@bench.example>\r\n")
	fmt.Fprintf(&b, "Subject: %s %d: %s %s %s\r\n", tag, i, words[r.IntN(len(words))], words[r.IntN(len(words))], words[r.IntN(len(words))])
	fmt.Fprintf(&b, "Date: %s\r\n", m.date.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s.%d.%d@bench.example>\r\n", tag, i, seed)
	b.WriteString("MIME-Version: 1.0\r\n")
	boundary := fmt.Sprintf("bench-%d-%d", seed, i)
	if m.attachment {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", boundary)
		fmt.Fprintf(&b, "--%s\r\n", boundary)
	}
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n")
	// Text lines of at most 76 characters until the target size.
	line := 0
	for b.Len() < target {
		w := words[r.IntN(len(words))]
		if line > 0 && line+1+len(w) > 76 {
			b.WriteString("\r\n")
			line = 0
		}
		if line > 0 {
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	b.WriteString("\r\n")
	if m.attachment {
		n := minAttachmentSize + r.IntN(maxAttachmentSize-minAttachmentSize+1)
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		fmt.Fprintf(&b, "--%s\r\n", boundary)
		fmt.Fprintf(&b, "Content-Type: application/octet-stream; name=\"file-%d.bin\"\r\n", i)
		fmt.Fprintf(&b, "Content-Disposition: attachment; filename=\"file-%d.bin\"\r\n", i)
		b.WriteString("Content-Transfer-Encoding: base64\r\n\r\n")
		enc := base64.StdEncoding.EncodeToString(data)
		for len(enc) > 76 {
			b.WriteString(enc[:76])
			b.WriteString("\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc)
		fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	}
	m.raw = b.Bytes()
	return m
}

// imapConn is a logged-in IMAP connection closed when its context ends.
type imapConn struct {
	*imapclient.Client
	stop func() bool
}

// dialIMAP connects to addr without TLS (loopback only) and logs in.
func dialIMAP(ctx context.Context, addr, user, password string) (*imapConn, error) {
	c, err := imapclient.DialInsecure(addr, &imapclient.Options{Dialer: &net.Dialer{Timeout: 10 * time.Second}})
	if err != nil {
		return nil, fmt.Errorf("IMAP %s: %w", addr, err)
	}
	ic := &imapConn{Client: c, stop: context.AfterFunc(ctx, func() { c.Close() })}
	if err := c.Login(user, password).Wait(); err != nil {
		ic.close()
		return nil, fmt.Errorf("IMAP LOGIN %s: %w", user, err)
	}
	return ic, nil
}

// close logs out (briefly) and closes the connection.
func (c *imapConn) close() {
	c.stop()
	done := make(chan struct{})
	go func() {
		_ = c.Logout().Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	c.Close()
}

// messageCount returns the number of messages in folder.
func (c *imapConn) messageCount(folder string) (int, error) {
	st, err := c.Status(folder, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		return 0, fmt.Errorf("IMAP STATUS %s: %w", folder, err)
	}
	if st.NumMessages == nil {
		return 0, fmt.Errorf("IMAP STATUS %s: no MESSAGES", folder)
	}
	return int(*st.NumMessages), nil
}

// appendBatch is how many APPENDs are pipelined before waiting, and
// appendConns how many connections append at once (Dovecot allows 10 per
// user and address).
const (
	appendBatch = 64
	appendConns = 4
)

// populate fills folder of user (created if missing) with generated
// messages up to n, appending only those missing, and returns how many
// the folder holds afterwards.
func populate(ctx context.Context, cfg *config, user, folder string, n int, logf func(string, ...any)) (int, error) {
	c, err := dialIMAP(ctx, cfg.IMAPAddr, user, cfg.Password)
	if err != nil {
		return 0, err
	}
	defer c.close()
	if !strings.EqualFold(folder, "INBOX") {
		_ = c.Create(folder, nil).Wait() // an existing folder is fine
	}
	have, err := c.messageCount(folder)
	if err != nil {
		return 0, err
	}
	if have >= n {
		return have, nil
	}
	start := time.Now()
	var bytes, done atomic.Int64
	conns := min(appendConns, (n-have+appendBatch-1)/appendBatch)
	per := (n - have + conns - 1) / conns
	errs := make([]error, conns)
	var wg sync.WaitGroup
	for k := range conns {
		from, to := have+k*per, min(have+(k+1)*per, n)
		wg.Go(func() {
			ac := c
			if k > 0 {
				if ac, errs[k] = dialIMAP(ctx, cfg.IMAPAddr, user, cfg.Password); errs[k] != nil {
					return
				}
				defer ac.close()
			}
			errs[k] = ac.appendRange(ctx, cfg.Seed, folder, from, to, &bytes, func(m int) {
				if d := done.Add(int64(m)); d/2048 != (d-int64(m))/2048 {
					logf("populate %s/%s: %d of %d", user, folder, int(d)+have, n)
				}
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	if n-have > 100 {
		logf("populate %s/%s: appended %d messages (%.1f MB) in %v", user, folder, n-have, float64(bytes.Load())/1e6, time.Since(start).Round(time.Millisecond))
	}
	return c.messageCount(folder)
}

// appendRange appends generated messages from to to-1 of folder, in
// pipelined batches, adding their size to bytes and reporting each batch
// to progress.
func (c *imapConn) appendRange(ctx context.Context, seed uint64, folder string, from, to int, bytes *atomic.Int64, progress func(int)) error {
	for i := from; i < to; i += appendBatch {
		var cmds []*imapclient.AppendCommand
		for j := i; j < min(i+appendBatch, to); j++ {
			m := genMessage(seed, folder, j)
			opts := &imap.AppendOptions{Time: m.date}
			if m.seen {
				opts.Flags = []imap.Flag{imap.FlagSeen}
			}
			cmd := c.Append(folder, int64(len(m.raw)), opts)
			if _, err := cmd.Write(m.raw); err != nil {
				return fmt.Errorf("IMAP APPEND: %w", err)
			}
			if err := cmd.Close(); err != nil {
				return fmt.Errorf("IMAP APPEND: %w", err)
			}
			cmds = append(cmds, cmd)
			bytes.Add(int64(len(m.raw)))
		}
		for _, cmd := range cmds {
			if _, err := cmd.Wait(); err != nil {
				return fmt.Errorf("IMAP APPEND to %s: %w", folder, err)
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		progress(len(cmds))
	}
	return nil
}
