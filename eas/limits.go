package eas

// This file holds the limits of issue #9 that are not a plain number in
// Config checked in one place: the per-user command slots, the bound on
// the elements of a request document, and the policy's MaxAttachmentSize
// enforced by the server on attachments going to the phone
// (ItemOperations, GetAttachment) and coming from it (SendMail,
// SmartReply, SmartForward).

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net/http"
	"strings"
	"sync"

	"github.com/emersion/go-message/textproto"

	"github.com/easd/easd/store"
)

// userSlots counts the commands each user runs, for Config.
// MaxUserConcurrent. Only users with a command running have an entry:
// memory follows the load, not the number of users.
type userSlots struct {
	max     int
	mu      sync.Mutex
	running map[int64]int
}

func newUserSlots(max int) *userSlots {
	return &userSlots{max: max, running: map[int64]int{}}
}

// acquire takes one of user's slots. It reports false, taking nothing,
// when the user already runs max commands. release is idempotent.
func (u *userSlots) acquire(user int64) (release func(), ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.running[user] >= u.max {
		return nil, false
	}
	u.running[user]++
	var once sync.Once
	return func() {
		once.Do(func() {
			u.mu.Lock()
			defer u.mu.Unlock()
			if u.running[user]--; u.running[user] <= 0 {
				delete(u.running, user)
			}
		})
	}, true
}

// users returns how many users have a command running.
func (u *userSlots) users() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.running)
}

// maxElements bounds the elements of one request document: ten times
// what a large real one holds (a Sync carrying 512 calendar items with
// attendees and exceptions), about 35 MiB of tree at most.
const maxElements = 1 << 18

// Retry-After values of the 503s that bound concurrency, in seconds.
const (
	retryOverloaded   = 10 // the whole server (Config.MaxConcurrent)
	retryUserOverload = 5  // one user (Config.MaxUserConcurrent): their own commands end soon
)

// takeSlots takes the user's slot (Config.MaxUserConcurrent), then one of
// the server's (Config.MaxConcurrent). Past either bound the answer is
// HTTP 503 with Retry-After (MS-ASHTTP 3.2.5.1), never a wait. The
// returned release gives both back and may be called more than once (a
// parked request calls it early through Session.releaseSlot).
func (h *Handler) takeSlots(user store.User) (release func(), err error) {
	var rels []func()
	release = func() {
		for _, r := range rels {
			r()
		}
	}
	if h.userBusy != nil {
		r, ok := h.userBusy.acquire(user.ID)
		if !ok {
			// Exchange's EasMaxConcurrency: "the new connection attempt
			// fails; the existing connections remain valid".
			return nil, &Error{HTTP: http.StatusServiceUnavailable, RetryAfter: retryUserOverload,
				Err: fmt.Errorf("user %s runs %d commands, the limit", user.Name, h.userBusy.max)}
		}
		rels = append(rels, r)
	}
	if h.busy != nil {
		select {
		case h.busy <- struct{}{}:
			var once sync.Once
			rels = append(rels, func() { once.Do(func() { <-h.busy }) })
		default:
			release()
			return nil, &Error{HTTP: http.StatusServiceUnavailable, RetryAfter: retryOverloaded,
				Err: fmt.Errorf("overloaded: %d commands running", cap(h.busy))}
		}
	}
	return release, nil
}

// errAttachmentTooLarge reports an attachment over the policy's
// MaxAttachmentSize.
var errAttachmentTooLarge = errors.New("attachment over the policy's MaxAttachmentSize")

// maxAttachment is the policy's MaxAttachmentSize (MS-ASPROV 2.2.2.35),
// which the server enforces too; 0 for none.
func (h *Handler) maxAttachment() int64 {
	return int64(max(h.cfg.Policy.MaxAttachmentSize, 0))
}

// oversizeAttachment reports the first attachment of the RFC 5322 message
// in r whose decoded size is over limit: its name, or the media type when
// it has none. Attachments are the leaf parts other than the message's
// text and HTML (parts with a file name or disposition attachment, any
// other type, attached messages whole). A message the walk cannot read
// is taken as it is: the check is the phone's policy applied again, not
// a parser of last resort, and compose has accepted the message already.
func oversizeAttachment(r io.Reader, limit int64, log *slog.Logger) (string, bool) {
	br := bufio.NewReaderSize(r, 32<<10)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return "", false
	}
	name, over, err := walkAttachments(h, br, 0, limit)
	if err != nil {
		log.Debug("attachment size check: message not fully readable", "err", err)
	}
	return name, over
}

func walkAttachments(h textproto.Header, r io.Reader, depth int, limit int64) (string, bool, error) {
	mt, params, disp := entityType(h)
	if strings.HasPrefix(mt, "multipart/") && params["boundary"] != "" && depth < maxMIMEDepth {
		mr := textproto.NewMultipartReader(r, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return "", false, nil
			}
			if err != nil {
				return "", false, err
			}
			if name, over, err := walkAttachments(p.Header, p, depth+1, limit); over || err != nil {
				return name, over, err
			}
		}
	}
	name := fileName(h)
	if name == "" && disp != "attachment" && (mt == "text/plain" || mt == "text/html") {
		return "", false, nil // the message's text
	}
	if name == "" {
		name = mt
	}
	n, err := decodedSize(h.Get("Content-Transfer-Encoding"), r, limit+1)
	return name, n > limit, err
}

// fileName returns the file name of a part (Content-Disposition filename,
// or the older Content-Type name), "" for none.
func fileName(h textproto.Header) string {
	if _, p, err := mime.ParseMediaType(h.Get("Content-Disposition")); err == nil && p["filename"] != "" {
		return p["filename"]
	}
	if _, p, err := mime.ParseMediaType(h.Get("Content-Type")); err == nil {
		return p["name"]
	}
	return ""
}

// decodedSize returns the size of a part's content once its transfer
// encoding is undone, reading at most until it reaches most. A body
// that does not decode counts as far as it did.
func decodedSize(cte string, r io.Reader, most int64) (int64, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, &b64Cleaner{r: r})
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	}
	n, err := io.CopyN(io.Discard, r, most)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

// attachmentTooLargeError answers a message carrying an attachment over
// the policy's MaxAttachmentSize, or one the submission server refused
// for its size: status 122 AttachmentIsTooLarge (MS-ASCMD 2.2.2, the
// common status codes SendMail, SmartReply and SmartForward take) from
// 14.0; before 14.0 the status has no place to go and HTTP 413 says the
// same (a 500 would make the phone send it again and again).
func attachmentTooLargeError(s *Session, err error) error {
	if versionAtLeast(s.Req.Version, "14.0") {
		return &Error{Status: sendStatusTooLarge, Err: err}
	}
	return &Error{HTTP: http.StatusRequestEntityTooLarge, Err: err}
}
