package eas

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/easd/easd/internal/spool"
	"github.com/easd/easd/store"
	"github.com/easd/easd/wbxml"
)

// Errors a Submitter returns (wrapped) besides ErrRecipientRefused.
var (
	// ErrMessageRefused reports a message the submission server refused
	// for good (an SMTP 5xx reply to MAIL or DATA): sending it again as
	// it is would fail again.
	ErrMessageRefused = errors.New("eas: message refused by the submission server")
	// ErrMessageTooLarge reports a message refused for its size (SMTP 552,
	// 5.3.4).
	ErrMessageTooLarge = errors.New("eas: message too large for the submission server")
	// ErrMailboxFull reports a mailbox over its quota (IMAP OVERQUOTA),
	// from MailAppender.Append.
	ErrMailboxFull = errors.New("eas: mailbox over quota")
)

// SendMail, SmartReply and SmartForward status values: the command's own
// Status (MS-ASCMD 2.2.3.177.14 SendMail, 2.2.3.177.16 SmartForward and
// SmartReply) takes the common status codes of MS-ASCMD 2.2.2.
// Not used: 113 MailboxQuotaExceeded, 115 SendQuotaExceeded (the
// submission server's quota replies are not told apart from other
// refusals), and 118 MessagePreviouslySent: a retry with a ClientId
// already sent is answered with success instead, as the phone retries
// only because it missed the first answer.
const (
	sendStatusNoRecipient      = 119 // MessageHasNoRecipient
	sendStatusSubmissionFailed = 120 // MailSubmissionFailed
	sendStatusTooLarge         = 122 // AttachmentIsTooLarge (the message is)
	sendStatusItemNotFound     = 150 // ItemNotFound: the source of a Smart* command
)

// sentPrefix prefixes the user settings that remember ClientIds.
const sentPrefix = "sent/"

// sendingStale is how long a "sending" record stands for a submission
// in progress (in another easd process; within one process the device's
// lock serialises retries); past it, the attempt is taken to have died
// without a verdict and the message is sent again.
const sendingStale = 15 * time.Minute

// sentRecord is the value of a "sent/<ClientId>" setting.
type sentRecord struct {
	// State is "sending" (submission started), "sent" (accepted by the
	// submission server), "refused" (refused for good: answered with
	// Status, kept in Drafts; a retry submits again, which cannot
	// deliver twice as nothing was delivered) or "failed" (may be tried
	// again).
	State  string    `json:"s"`
	Status int       `json:"st,omitempty"`
	At     time.Time `json:"t"`
	// Sum is a hash of the client's MIME: a ClientId reused for another
	// message (clients may count from 1 again) is not taken as a retry.
	Sum string `json:"h,omitempty"`
}

// sentRecordTTL is how long a ClientId is remembered: retries come within
// minutes or hours, not days.
const sentRecordTTL = 72 * time.Hour

// sendTimeout bounds the work done once submission starts, which goes on
// even if the phone hangs up (the outcome must be recorded).
const sendTimeout = 10 * time.Minute

// sendRequest is a SendMail, SmartReply or SmartForward request in either
// form.
type sendRequest struct {
	kind        composeKind
	clientID    string
	saveInSent  bool
	replaceMime bool
	// folderID and serverID name the source of Smart* (a collection and a
	// "folderId:uid" ServerId); longID is a Search result's LongId.
	folderID, serverID, longID string
	mime                       io.Reader
}

// sendMail runs SendMail, MS-ASCMD 2.2.1.17.
func (h *Handler) sendMail(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error) {
	return h.send(ctx, s, body, composeSend)
}

// smartReply runs SmartReply, MS-ASCMD 2.2.1.20.
func (h *Handler) smartReply(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error) {
	return h.send(ctx, s, body, composeReply)
}

// smartForward runs SmartForward, MS-ASCMD 2.2.1.19.
func (h *Handler) smartForward(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error) {
	return h.send(ctx, s, body, composeForward)
}

// parseSend reads the request: WBXML (14.0+: ClientId, Source, flags and
// Mime as OPAQUE) or the 12.1 form (the MIME as the body, the rest in the
// query).
func parseSend(s *Session, body *wbxml.Node, kind composeKind) (*sendRequest, error) {
	r := &sendRequest{kind: kind}
	if body == nil {
		if s.Body == nil {
			return nil, &Error{Status: StatusInvalidContent, HTTP: http.StatusBadRequest, Err: errors.New("empty request")}
		}
		r.mime = s.Body
		r.saveInSent = s.Req.SaveInSent
		r.folderID, r.serverID, r.longID = s.Req.CollectionID, s.Req.ItemID, s.Req.LongID
		return r, nil
	}
	m := body.Child(wbxml.ComposeMailMime)
	if m == nil {
		return nil, Errorf(StatusInvalidContent, "%v without Mime", body.Tag)
	}
	r.mime = bytes.NewReader(m.Value)
	r.clientID = strings.TrimSpace(body.ChildText(wbxml.ComposeMailClientId))
	r.saveInSent = body.Child(wbxml.ComposeMailSaveInSentItems) != nil
	r.replaceMime = body.Child(wbxml.ComposeMailReplaceMime) != nil
	if src := body.Child(wbxml.ComposeMailSource); src != nil {
		r.folderID = src.ChildText(wbxml.ComposeMailFolderId)
		r.serverID = src.ChildText(wbxml.ComposeMailItemId)
		r.longID = src.ChildText(wbxml.ComposeMailLongId)
		if r.serverID == "" && r.longID == "" && src.Child(wbxml.ComposeMailInstanceId) != nil {
			// A calendar occurrence: easd serves no calendar.
			return nil, Errorf(sendStatusItemNotFound, "Source with only InstanceId")
		}
	}
	if kind != composeSend && r.serverID == "" && r.longID == "" {
		return nil, Errorf(StatusInvalidContent, "%v without Source", body.Tag)
	}
	return r, nil
}

// send runs the three commands:
//
//  1. The client's MIME is spooled (bounded by the body limit).
//  2. Retries are recognised by the ClientId (14.0+; for 12.1 the phone's
//     Message-ID; neither: no de-duplication), remembered in the user
//     setting "sent/<id>": "sent" answers success and "refused" the same
//     status again, without sending; "sending" younger than sendingStale
//     is a submission in progress in another process (within one, the
//     device's lock serialises retries): status 111, retry later. An
//     older "sending" is an attempt that died without a verdict (a crash
//     between the server's acceptance and the "sent" record): the
//     message is sent again, a duplicate rather than a loss.
//  3. For Smart* the original is fetched (status 150 if it is gone); the
//     message is composed (compose.go); no recipient is status 119.
//  4. "sending" is recorded, the message submitted, then "sent",
//     "refused" or "failed" (a temporary failure: the retry sends).
//  5. Success is an empty 200 (MS-ASCMD 2.2.1.17.2); the message is then
//     appended to Sent (\Seen) when asked, and the original of Smart*
//     flagged \Answered or $Forwarded. A failure of those is logged only:
//     the message went out, and a retry would send it twice.
//  6. A refusal for good (recipient, message, size) keeps the message in
//     Drafts and answers 120 (122 for size, HTTP 413 before 14.0); a
//     temporary failure answers 111 (HTTP 503): the phone keeps the
//     message in its Outbox and retries.
//
// An attachment over the policy's MaxAttachmentSize is answered 122 (HTTP
// 413 before 14.0) after composing, before anything is recorded or sent.
func (h *Handler) send(ctx context.Context, s *Session, body *wbxml.Node, kind composeKind) (*wbxml.Node, error) {
	req, err := parseSend(s, body, kind)
	if err != nil {
		return nil, err
	}
	in := spool.New(0)
	defer in.Close()
	if _, err := io.Copy(in, req.mime); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, HTTPError(http.StatusRequestEntityTooLarge, "message over the %d byte limit", mb.Limit)
		}
		return nil, HTTPError(http.StatusBadRequest, "reading the message: %v", err)
	}
	if in.Len() == 0 {
		return nil, Errorf(StatusInvalidContent, "empty message")
	}

	// Retries are recognised before anything else is done: the original
	// of a reply may be gone by the time the phone retries.
	inr, err := in.Reader()
	if err != nil {
		return nil, err
	}
	key := req.clientID
	if key == "" {
		// 12.1 has no ClientId: the phone's Message-ID stands in for it.
		if hd, err := textproto.ReadHeader(bufio.NewReader(inr)); err == nil {
			mh := mailHeader(hd)
			if id, _ := mh.MessageID(); id != "" {
				key = "mid:" + id
			}
		}
	}
	var setting, sum string
	drafted := false
	if key != "" {
		unlock := h.locks.lock(s.Device.ID, []string{"send/" + key})
		defer unlock()
		setting = sentKey(s.Device.ID, key)
		if sum, err = spoolSum(in); err != nil {
			return nil, err
		}
		rec, err := h.sentRecord(ctx, s, setting)
		if err != nil {
			return nil, err
		}
		if rec.State != "" && (rec.Sum != sum || h.deps.Now().Sub(rec.At) > sentRecordTTL) {
			rec = sentRecord{} // another message under a reused id, or long ago
		}
		switch {
		case rec.State == "sent":
			s.Log.Info("message already sent: not sending again", "clientid", req.clientID, "key", key)
			return nil, nil
		case rec.State == "refused":
			drafted = true // submitted again below, not copied to Drafts again
		case rec.State == "sending" && h.deps.Now().Sub(rec.At) < sendingStale:
			return nil, &Error{Status: StatusServerErrorRetryLater, HTTP: http.StatusServiceUnavailable, RetryAfter: 60,
				Err: fmt.Errorf("message %s is being sent since %v", key, rec.At)}
		case rec.State == "sending":
			s.Log.Warn("an earlier attempt to send this message ended without a verdict: sending again", "clientid", req.clientID, "key", key)
		}
	}

	var orig *original
	var folder string
	var uid uint32
	if kind != composeSend {
		folder, uid, orig, err = h.sendSource(ctx, s, req)
		if err != nil {
			return nil, err
		}
		defer orig.Close()
	}
	if inr, err = in.Reader(); err != nil {
		return nil, err
	}
	out, err := compose(inr, composeOptions{kind: kind, orig: orig, replace: req.replaceMime,
		defaultFrom: primaryAddress(s.User.Name, h.cfg.Domain), now: h.deps.Now()})
	switch {
	case errors.Is(err, errNoRecipient):
		return nil, Errorf(sendStatusNoRecipient, "no recipient in To, Cc or Bcc")
	case err != nil:
		return nil, &Error{Status: StatusInvalidContent, HTTP: http.StatusBadRequest, Err: err}
	}
	defer out.Close()
	// The policy's MaxAttachmentSize holds for what phones send too, the
	// original's attachments a forward adds included.
	if limit := h.maxAttachment(); limit > 0 {
		msg, err := out.msg.Reader()
		if err != nil {
			return nil, err
		}
		if name, over := oversizeAttachment(msg, limit, s.Log); over {
			return nil, attachmentTooLargeError(s, fmt.Errorf("attachment %q: %w (%d bytes)", name, errAttachmentTooLarge, limit))
		}
	}
	// From here on the outcome must be recorded even if the phone hangs
	// up: work on a context that its leaving does not cancel.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
	defer cancel()
	if err := h.putSentRecord(ctx, s, setting, sentRecord{State: "sending", At: h.deps.Now(), Sum: sum}); err != nil {
		return nil, err
	}

	msg, err := out.msg.Reader()
	if err == nil {
		err = h.deps.Submit.Submit(ctx, s.Account, out.from, out.rcpts, msg)
	}
	if err != nil {
		return nil, h.sendFailed(ctx, s, setting, sum, drafted, out, err)
	}
	s.Log.Info("message sent", "messageid", out.messageID, "rcpts", len(out.rcpts), "bytes", out.msg.Len())
	// From here on the message is out: nothing may fail the command.
	if err := h.putSentRecord(ctx, s, setting, sentRecord{State: "sent", At: h.deps.Now(), Sum: sum}); err != nil {
		s.Log.Error("recording a sent message (a retry would send it again)", "err", err)
	}
	if req.saveInSent {
		h.saveCopy(ctx, s, folderSent, FlagSeen, out)
	}
	if orig != nil {
		var ch FlagChange
		if kind == composeReply {
			ch.Answered = new(true)
		} else {
			ch.Forwarded = new(true)
		}
		if err := h.deps.Mail.SetFlags(ctx, s.Account, folder, uid, ch); err != nil {
			s.Log.Warn("flagging the original", "folder", folder, "uid", uid, "err", err)
		}
	}
	return nil, nil
}

// sendFailed records and answers a failed submission.
func (h *Handler) sendFailed(ctx context.Context, s *Session, setting, sum string, drafted bool, out *outgoing, err error) error {
	status := 0
	switch {
	case errors.Is(err, ErrMessageTooLarge):
		status = sendStatusTooLarge
	case errors.Is(err, ErrRecipientRefused), errors.Is(err, ErrMessageRefused):
		status = sendStatusSubmissionFailed
	}
	if status == 0 {
		// Temporary, or the credentials: the phone keeps the message and
		// tries again, which must send it.
		if perr := h.putSentRecord(ctx, s, setting, sentRecord{State: "failed", At: h.deps.Now(), Sum: sum}); perr != nil {
			s.Log.Error("recording a failed submission", "err", perr)
		}
		if errors.Is(err, ErrBadCredentials) {
			return mailError(err)
		}
		return &Error{Status: StatusServerErrorRetryLater, HTTP: http.StatusServiceUnavailable, RetryAfter: 30, Err: fmt.Errorf("submitting: %w", err)}
	}
	// Refused for good: the message is kept in Drafts for the user to fix
	// and send again, and the ClientId answers the same from now on.
	s.Log.Info("message refused by the submission server: kept in Drafts", "status", status, "err", err)
	if !drafted {
		h.saveCopy(ctx, s, folderDrafts, FlagSeen, out)
	}
	if perr := h.putSentRecord(ctx, s, setting, sentRecord{State: "refused", Status: status, At: h.deps.Now(), Sum: sum}); perr != nil {
		s.Log.Error("recording a refused submission", "err", perr)
	}
	if status == sendStatusTooLarge {
		return attachmentTooLargeError(s, fmt.Errorf("submitting: %w", err))
	}
	return &Error{Status: status, Err: fmt.Errorf("submitting: %w", err)}
}

// saveCopy appends the message, with its Bcc fields, to the user's folder
// of type typ, when the backend can append and the folder is known. A
// failure is logged.
func (h *Handler) saveCopy(ctx context.Context, s *Session, typ int, flags MailFlags, out *outgoing) {
	ap, ok := h.deps.Mail.(MailAppender)
	if !ok {
		s.Log.Warn("mail backend cannot append: no copy kept", "folder_type", typ)
		return
	}
	if err := h.appendCopy(ctx, s, ap, typ, flags, out); err != nil {
		s.Log.Error("keeping a copy of a message", "folder_type", typ, "messageid", out.messageID, "err", err)
	}
}

func (h *Handler) appendCopy(ctx context.Context, s *Session, ap MailAppender, typ int, flags MailFlags, out *outgoing) error {
	hr, err := h.knownHierarchy(ctx, s)
	if err != nil {
		return err
	}
	f := hr.ofType(typ)
	if f == nil || f.name == "" {
		return fmt.Errorf("no folder of type %d", typ)
	}
	r, size, err := out.copyReader()
	if err != nil {
		return err
	}
	uid, err := ap.Append(ctx, s.Account, f.name, flags, r, size)
	if err != nil {
		return err
	}
	s.Log.Info("message copied", "folder", f.name, "uid", uid)
	return nil
}

// sendSource finds and reads the message a Smart* command answers.
func (h *Handler) sendSource(ctx context.Context, s *Session, req *sendRequest) (folder string, uid uint32, orig *original, err error) {
	id := req.serverID
	if id == "" {
		id = req.longID
	}
	fid, uid, ok := parseServerID(id)
	if !ok {
		return "", 0, nil, Errorf(sendStatusItemNotFound, "source item %q: not a message id", id)
	}
	if req.folderID != "" && req.serverID != "" && req.folderID != fid {
		return "", 0, nil, Errorf(sendStatusItemNotFound, "source item %q is not in folder %q", id, req.folderID)
	}
	hr, err := h.knownHierarchy(ctx, s, fid)
	if err != nil {
		return "", 0, nil, mailError(err)
	}
	f := hr.byID[fid]
	if f == nil || f.name == "" {
		return "", 0, nil, Errorf(sendStatusItemNotFound, "source folder %q unknown", fid)
	}
	// Attachments are spooled only when they go into the message.
	withAttachments := req.kind == composeForward && !req.replaceMime
	err = h.deps.Mail.Fetch(ctx, s.Account, f.name, []uint32{uid}, func(_ MailMeta, body io.Reader) error {
		var err error
		if req.replaceMime {
			// Only the header is needed (In-Reply-To, References).
			h, herr := textproto.ReadHeader(bufio.NewReader(body))
			if herr != nil {
				return herr
			}
			orig = &original{header: h}
			return nil
		}
		orig, err = readOriginal(body, withAttachments)
		return err
	})
	switch {
	case errors.Is(err, ErrMailFolderGone):
		orig.Close()
		return "", 0, nil, Errorf(sendStatusItemNotFound, "source folder %q gone", f.name)
	case err != nil:
		orig.Close()
		return "", 0, nil, mailError(err)
	case orig == nil:
		return "", 0, nil, Errorf(sendStatusItemNotFound, "source message %d of %q gone", uid, f.name)
	}
	return f.name, uid, orig, nil
}

// sentKey is the user setting remembering a ClientId (or Message-ID);
// long or odd ids are hashed.
func sentKey(device int64, id string) string {
	// Per device: ClientIds are the device's own (often a counter).
	p := sentPrefix + strconv.FormatInt(device, 10) + "/"
	if len(id) <= 64 && !strings.ContainsFunc(id, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return p + id
	}
	sum := sha256.Sum256([]byte(id))
	return p + "h:" + hex.EncodeToString(sum[:16])
}

// spoolSum hashes a spooled message.
func spoolSum(sp *spool.Spool) (string, error) {
	r, err := sp.Reader()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)[:16]), nil
}

func (h *Handler) sentRecord(ctx context.Context, s *Session, key string) (sentRecord, error) {
	var rec sentRecord
	raw, err := h.deps.Store.UserSetting(ctx, s.User.ID, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return rec, nil
	case err != nil:
		return rec, err
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		s.Log.Warn("unreadable sent record: ignored", "key", key, "err", err)
		return sentRecord{}, nil
	}
	return rec, nil
}

// putSentRecord stores rec under key; nothing when key is "" (a message
// without ClientId or Message-ID, whose retries cannot be recognised).
func (h *Handler) putSentRecord(ctx context.Context, s *Session, key string, rec sentRecord) error {
	if key == "" {
		return nil
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return h.deps.Store.PutUserSetting(ctx, s.User.ID, key, raw)
}
