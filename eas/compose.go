package eas

// This file builds the messages SendMail, SmartReply and SmartForward send
// (MS-ASCMD 2.2.1.17, 2.2.1.20, 2.2.1.19): the envelope from the client's
// MIME, the headers a phone may leave out, and, for Smart* without
// ReplaceMime, the original quoted into the text and HTML parts and, for
// forwards, the original's attachments. Bodies are streamed from a spool
// to a spool; only the text parts that are rewritten are held in memory.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"io"
	"mime"
	"mime/quotedprintable"
	"regexp"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/easd/easd/internal/spool"
)

// maxQuotedText bounds a text or HTML part that is decoded into memory to
// be rewritten or quoted; larger parts are copied as they are (the client's)
// or cut (the original's quote).
const maxQuotedText = 4 << 20

// maxMIMEDepth bounds the nesting of multiparts that are walked.
const maxMIMEDepth = 20

// composeKind says which command composes.
type composeKind int

const (
	composeSend composeKind = iota
	composeReply
	composeForward
)

// outgoing is a message ready to submit.
type outgoing struct {
	// msg is the message as sent: no Bcc field.
	msg *spool.Spool
	// bcc are the Bcc fields removed from msg, "Bcc: ...\r\n" each, which
	// the copies kept in Sent and Drafts carry again.
	bcc string
	// from is the envelope sender, rcpts the envelope recipients (To, Cc
	// and Bcc, without duplicates).
	from  string
	rcpts []string
	// messageID is the message's Message-ID, e.g. "<x@example.com>".
	messageID string
}

// Close releases the spool.
func (o *outgoing) Close() {
	if o != nil && o.msg != nil {
		o.msg.Close()
	}
}

// copyReader returns the message with its Bcc fields, for Sent or Drafts,
// and its size.
func (o *outgoing) copyReader() (io.Reader, int64, error) {
	r, err := o.msg.Reader()
	if err != nil {
		return nil, 0, err
	}
	return io.MultiReader(strings.NewReader(o.bcc), r), int64(len(o.bcc)) + o.msg.Len(), nil
}

// mailHeader gives h the methods of a mail header; changes made through
// it are made to the copy it holds.
func mailHeader(h textproto.Header) mail.Header {
	return mail.Header{Header: message.Header{Header: h}}
}

// original is what a reply or forward takes from the message it answers.
type original struct {
	header textproto.Header
	// text and html are the first text/plain and text/html parts that are
	// not attachments, decoded to UTF-8; "" when absent.
	text, html string
	// attachments are the other leaf parts (forwards only), with their
	// content header fields and still transfer-encoded bodies.
	attachments []attachmentPart
}

type attachmentPart struct {
	header textproto.Header
	body   *spool.Spool
}

// Close releases the attachments' spools.
func (o *original) Close() {
	if o == nil {
		return
	}
	for _, a := range o.attachments {
		a.body.Close()
	}
}

// composeOptions are the inputs of compose beyond the client's MIME.
type composeOptions struct {
	kind composeKind
	// orig is the message replied to or forwarded; nil for SendMail.
	orig *original
	// replace is ReplaceMime: the client's MIME is complete.
	replace bool
	// defaultFrom is the user's address, for a message without From.
	defaultFrom string
	now         time.Time
}

// errNoRecipient is returned by compose for a message without recipients.
var errNoRecipient = errors.New("message has no recipient")

// compose reads the client's message from in and returns it ready to send.
func compose(in io.Reader, o composeOptions) (*outgoing, error) {
	br := bufio.NewReaderSize(in, 64<<10)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, fmt.Errorf("reading the message header: %w", err)
	}
	out := &outgoing{msg: spool.New(0)}
	ok := false
	defer func() {
		if !ok {
			out.Close()
		}
	}()
	mh := mailHeader(h)
	hp := &mh.Header.Header // h itself is a stale copy from here on

	// The envelope.
	seen := map[string]bool{}
	for _, key := range []string{"To", "Cc", "Bcc"} {
		for _, a := range addressList(mh, key) {
			if k := strings.ToLower(a); !seen[k] {
				seen[k] = true
				out.rcpts = append(out.rcpts, a)
			}
		}
	}
	if len(out.rcpts) == 0 {
		return nil, errNoRecipient
	}
	if from := addressList(mh, "From"); len(from) > 0 {
		out.from = from[0]
	} else {
		out.from = o.defaultFrom
		mh.SetAddressList("From", []*mail.Address{{Address: o.defaultFrom}})
	}
	for _, v := range hp.Values("Bcc") {
		out.bcc += "Bcc: " + v + "\r\n"
	}
	hp.Del("Bcc")

	// Fields a phone may leave out.
	if !hp.Has("Date") {
		mh.SetDate(o.now)
	}
	if id, _ := mh.MessageID(); id == "" {
		mh.SetMessageID(newMessageID(out.from))
	}
	id, _ := mh.MessageID()
	out.messageID = "<" + id + ">"
	if !hp.Has("Mime-Version") {
		hp.Set("MIME-Version", "1.0")
	}
	if o.orig != nil && o.kind == composeReply && !hp.Has("In-Reply-To") {
		oh := mailHeader(o.orig.header)
		if oid, _ := oh.MessageID(); oid != "" {
			refs, _ := oh.MsgIDList("References")
			if len(refs) == 0 {
				refs, _ = oh.MsgIDList("In-Reply-To")
			}
			mh.SetMsgIDList("In-Reply-To", []string{oid})
			mh.SetMsgIDList("References", append(refs, oid))
		}
	}

	if o.orig == nil || o.replace {
		if err := textproto.WriteHeader(out.msg, *hp); err != nil {
			return nil, err
		}
		if _, err := io.Copy(out.msg, br); err != nil {
			return nil, err
		}
		ok = true
		return out, nil
	}
	rw := &rewriter{q: quoteFor(o.kind, o.orig)}
	if o.kind == composeForward {
		rw.attach = o.orig.attachments
	}
	if err := rw.top(out.msg, *hp, br); err != nil {
		return nil, err
	}
	ok = true
	return out, nil
}

// addressList returns the addresses of a header field; a field the
// parser refuses is read leniently (anything with an '@' between
// separators).
func addressList(h mail.Header, key string) []string {
	var out []string
	list, err := h.AddressList(key)
	if err == nil {
		for _, a := range list {
			if a.Address != "" {
				out = append(out, a.Address)
			}
		}
		return out
	}
	for _, v := range h.Values(key) {
		for tok := range strings.FieldsFuncSeq(v, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\t' }) {
			tok = strings.Trim(tok, "<>\"'")
			if strings.Count(tok, "@") == 1 && !strings.HasPrefix(tok, "@") && !strings.HasSuffix(tok, "@") {
				out = append(out, tok)
			}
		}
	}
	return out
}

// newMessageID returns a fresh Message-ID (without angle brackets) in the
// domain of addr.
func newMessageID(addr string) string {
	domain := "easd.invalid"
	if i := strings.LastIndexByte(addr, '@'); i >= 0 && i < len(addr)-1 {
		domain = addr[i+1:]
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b) + "@" + domain
}

// quote is what is added to the client's text and HTML parts.
type quote struct {
	text, html string
}

// quoteFor builds the quote of the original: a reply cites it ("On ...,
// ... wrote:" and "> " lines, a <blockquote> in HTML), a forward shows its
// header fields and then its text.
func quoteFor(kind composeKind, o *original) quote {
	oh := mailHeader(o.header)
	from := decodeField(o.header.Get("From"))
	date := o.header.Get("Date")
	if t, err := oh.Date(); err == nil {
		date = t.Format("Mon, 2 Jan 2006 at 15:04")
	}
	text := o.text
	if text == "" && o.html != "" {
		text = htmlToText(o.html)
	}
	inner := htmlBody(o.html)
	if o.html == "" {
		inner = textToHTML(o.text)
	}
	var q quote
	if kind == composeReply {
		var b strings.Builder
		fmt.Fprintf(&b, "\r\n\r\nOn %s, %s wrote:\r\n", date, from)
		for line := range strings.SplitSeq(strings.ReplaceAll(strings.TrimRight(text, "\r\n"), "\r\n", "\n"), "\n") {
			if strings.HasPrefix(line, ">") {
				b.WriteString(">" + line + "\r\n")
			} else {
				b.WriteString("> " + line + "\r\n")
			}
		}
		q.text = b.String()
		q.html = fmt.Sprintf(`<br><div>On %s, %s wrote:</div><blockquote type="cite" style="margin:0 0 0 .8ex;border-left:1px solid #ccc;padding-left:1ex">%s</blockquote>`,
			html.EscapeString(date), html.EscapeString(from), inner)
		return q
	}
	fields := [][2]string{{"From", from}, {"Date", date}, {"Subject", decodeField(o.header.Get("Subject"))}, {"To", decodeField(o.header.Get("To"))}}
	if cc := o.header.Get("Cc"); cc != "" {
		fields = append(fields, [2]string{"Cc", decodeField(cc)})
	}
	var tb, hb strings.Builder
	tb.WriteString("\r\n\r\n---------- Forwarded message ----------\r\n")
	hb.WriteString("<br><div>---------- Forwarded message ----------<br>")
	for _, f := range fields {
		fmt.Fprintf(&tb, "%s: %s\r\n", f[0], f[1])
		fmt.Fprintf(&hb, "%s: %s<br>", f[0], html.EscapeString(f[1]))
	}
	tb.WriteString("\r\n" + strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\n", "\r\n"))
	hb.WriteString("</div><br>" + inner)
	q.text, q.html = tb.String(), hb.String()
	return q
}

// decodeField decodes RFC 2047 encoded words of a header field.
func decodeField(v string) string {
	d := mime.WordDecoder{CharsetReader: charset.Reader}
	if s, err := d.DecodeHeader(v); err == nil {
		return s
	}
	return v
}

var (
	reBodyOpen  = regexp.MustCompile(`(?is)<body[^>]*>`)
	reBodyClose = regexp.MustCompile(`(?is)</body\s*>`)
	reHead      = regexp.MustCompile(`(?is)<head[^>]*>.*?</head\s*>`)
	reHTMLTag   = regexp.MustCompile(`(?is)</?html[^>]*>|<!doctype[^>]*>`)
	reScript    = regexp.MustCompile(`(?is)<(script|style)[^>]*>.*?</(script|style)\s*>`)
	reBreak     = regexp.MustCompile(`(?is)<br\s*/?>|</(p|div|tr|li|h[1-6]|blockquote)\s*>`)
	reTag       = regexp.MustCompile(`(?s)<[^>]*>`)
	reBlank     = regexp.MustCompile(`\n{3,}`)
)

// htmlBody returns what is inside the <body> of a document (the whole of
// a fragment), without head, html or doctype, to nest in another body.
func htmlBody(doc string) string {
	if loc := reBodyOpen.FindStringIndex(doc); loc != nil {
		doc = doc[loc[1]:]
		if locs := reBodyClose.FindAllStringIndex(doc, -1); len(locs) > 0 {
			doc = doc[:locs[len(locs)-1][0]]
		}
		return doc
	}
	doc = reHead.ReplaceAllString(doc, "")
	return reHTMLTag.ReplaceAllString(doc, "")
}

// htmlToText is a plain rendering of HTML for the text quote of a message
// that has only HTML.
func htmlToText(doc string) string {
	s := reScript.ReplaceAllString(htmlBody(doc), "")
	s = reBreak.ReplaceAllString(s, "\n")
	s = html.UnescapeString(reTag.ReplaceAllString(s, ""))
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.TrimSpace(reBlank.ReplaceAllString(s, "\n\n"))
}

// textToHTML renders plain text as HTML.
func textToHTML(text string) string {
	s := html.EscapeString(strings.ReplaceAll(strings.TrimRight(text, "\r\n"), "\r\n", "\n"))
	return "<div>" + strings.ReplaceAll(s, "\n", "<br>") + "</div>"
}

// insertHTML puts frag before the closing </body> of doc; without one,
// before </html>; else at the end. A quote after </html> is shown by no
// client.
func insertHTML(doc, frag string) string {
	if locs := reBodyClose.FindAllStringIndex(doc, -1); len(locs) > 0 {
		i := locs[len(locs)-1][0]
		return doc[:i] + frag + doc[i:]
	}
	if i := strings.LastIndex(strings.ToLower(doc), "</html"); i >= 0 {
		return doc[:i] + frag + doc[i:]
	}
	return doc + frag
}

// rewriter copies the client's message, adding the quote to its first
// text/plain and first text/html part (not attachments) and, for
// forwards, the attachments at the end of its top multipart/mixed, or in
// a multipart/mixed made around it.
type rewriter struct {
	q                  quote
	attach             []attachmentPart
	textDone, htmlDone bool
}

// contentFields are the header fields that belong to a MIME part rather
// than to the message.
func isContentField(k string) bool {
	return strings.HasPrefix(strings.ToLower(k), "content-")
}

// top writes the message with header h and body r to w.
func (rw *rewriter) top(w io.Writer, h textproto.Header, r io.Reader) error {
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if len(rw.attach) == 0 || mt == "multipart/mixed" {
		return rw.entity(w, h, r, 0, true)
	}
	// Wrap: the message fields stay at the top; the content fields go to
	// the first part of a new multipart/mixed.
	var msgH, partH textproto.Header
	fields := h.Fields()
	for fields.Next() {
		if isContentField(fields.Key()) {
			partH.Add(fields.Key(), fields.Value())
		} else {
			msgH.Add(fields.Key(), fields.Value())
		}
	}
	if !partH.Has("Content-Type") {
		partH.Set("Content-Type", "text/plain; charset=us-ascii")
	}
	boundary := newBoundary()
	msgH.Set("Content-Type", mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": boundary}))
	if err := textproto.WriteHeader(w, msgH); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "--%s\r\n", boundary); err != nil {
		return err
	}
	if err := rw.entity(w, partH, r, 1, false); err != nil {
		return err
	}
	return rw.closeMixed(w, boundary)
}

// closeMixed writes the attachments and the closing delimiter.
func (rw *rewriter) closeMixed(w io.Writer, boundary string) error {
	for _, a := range rw.attach {
		if _, err := fmt.Fprintf(w, "\r\n--%s\r\n", boundary); err != nil {
			return err
		}
		if err := textproto.WriteHeader(w, a.header); err != nil {
			return err
		}
		if _, err := a.body.WriteTo(w); err != nil {
			return err
		}
	}
	rw.attach = nil
	_, err := fmt.Fprintf(w, "\r\n--%s--\r\n", boundary)
	return err
}

// entityType returns an entity's media type with its parameters and its
// disposition; no Content-Type is text/plain (RFC 2045 5.2), an
// unreadable one application/octet-stream.
func entityType(h textproto.Header) (mt string, params map[string]string, disp string) {
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		mt = "text/plain"
		if h.Has("Content-Type") {
			mt = "application/octet-stream"
		}
	}
	disp, _, _ = mime.ParseMediaType(h.Get("Content-Disposition"))
	return mt, params, disp
}

// entity writes one entity: a multipart with each of its parts (with a
// fresh boundary, which the quote cannot contain), or a leaf, rewritten
// or copied. top is set for the message's own multipart/mixed, which
// takes the attachments.
func (rw *rewriter) entity(w io.Writer, h textproto.Header, r io.Reader, depth int, top bool) error {
	mt, params, disp := entityType(h)
	switch {
	case strings.HasPrefix(mt, "multipart/") && params["boundary"] != "" && depth < maxMIMEDepth:
		old := params["boundary"]
		params["boundary"] = newBoundary()
		h.Set("Content-Type", mime.FormatMediaType(mt, params))
		if err := textproto.WriteHeader(w, h); err != nil {
			return err
		}
		mr := textproto.NewMultipartReader(r, old)
		first := true
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("reading the message: %w", err)
			}
			sep := "\r\n--"
			if first {
				sep = "--"
			}
			first = false
			if _, err := io.WriteString(w, sep+params["boundary"]+"\r\n"); err != nil {
				return err
			}
			if err := rw.entity(w, p.Header, p, depth+1, false); err != nil {
				return err
			}
		}
		if top && mt == "multipart/mixed" && len(rw.attach) > 0 {
			return rw.closeMixed(w, params["boundary"])
		}
		_, err := io.WriteString(w, "\r\n--"+params["boundary"]+"--\r\n")
		return err
	case disp != "attachment" && mt == "text/plain" && !rw.textDone:
		rw.textDone = true
		return rw.rewriteText(w, h, params, r, func(s string) string { return s + rw.q.text })
	case disp != "attachment" && mt == "text/html" && !rw.htmlDone:
		rw.htmlDone = true
		return rw.rewriteText(w, h, params, r, func(s string) string { return insertHTML(s, rw.q.html) })
	}
	if err := textproto.WriteHeader(w, h); err != nil {
		return err
	}
	_, err := io.Copy(w, r)
	return err
}

// rewriteText decodes a text part, changes it with edit, and writes it
// as UTF-8 quoted-printable. A part too large to hold is copied as is.
func (rw *rewriter) rewriteText(w io.Writer, h textproto.Header, params map[string]string, r io.Reader, edit func(string) string) error {
	raw, err := io.ReadAll(io.LimitReader(r, maxQuotedText+1))
	if err != nil {
		return err
	}
	if len(raw) > maxQuotedText {
		if err := textproto.WriteHeader(w, h); err != nil {
			return err
		}
		if _, err := w.Write(raw); err != nil {
			return err
		}
		_, err := io.Copy(w, r)
		return err
	}
	text := decodeText(h.Get("Content-Transfer-Encoding"), params["charset"], raw)
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if mt == "" {
		mt = "text/plain"
	}
	np := map[string]string{"charset": "utf-8"}
	for k, v := range params {
		if k != "charset" && k != "format" && k != "delsp" {
			np[k] = v
		}
	}
	h.Set("Content-Type", mime.FormatMediaType(mt, np))
	h.Set("Content-Transfer-Encoding", "quoted-printable")
	if err := textproto.WriteHeader(w, h); err != nil {
		return err
	}
	qw := quotedprintable.NewWriter(w)
	if _, err := io.WriteString(qw, edit(text)); err != nil {
		return err
	}
	return qw.Close()
}

// decodeText undoes the transfer encoding and charset of a text part,
// leniently.
func decodeText(cte, label string, raw []byte) string {
	var r io.Reader = bytes.NewReader(raw)
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, &b64Cleaner{r: r})
	}
	if label != "" && !strings.EqualFold(label, "utf-8") && !strings.EqualFold(label, "us-ascii") {
		if cr, err := charset.Reader(label, r); err == nil && cr != nil {
			r = cr
		}
	}
	b, _ := io.ReadAll(r) // what could be decoded
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// b64Cleaner drops line breaks and spaces from base64 text.
type b64Cleaner struct{ r io.Reader }

func (c *b64Cleaner) Read(p []byte) (int, error) {
	for {
		n, err := c.r.Read(p)
		j := 0
		for _, b := range p[:n] {
			if b != '\r' && b != '\n' && b != ' ' && b != '\t' {
				p[j] = b
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

// newBoundary returns a random multipart boundary.
func newBoundary() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return "easd-" + hex.EncodeToString(b)
}

// readOriginal parses the message replied to or forwarded from r: its
// header, first text and HTML parts, and (withAttachments) the other leaf
// parts, spooled.
func readOriginal(r io.Reader, withAttachments bool) (*original, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, fmt.Errorf("reading the original's header: %w", err)
	}
	o := &original{header: h}
	if err := o.walk(h, br, 0, withAttachments); err != nil {
		o.Close()
		return nil, err
	}
	return o, nil
}

func (o *original) walk(h textproto.Header, r io.Reader, depth int, withAttachments bool) error {
	mt, params, disp := entityType(h)
	switch {
	case strings.HasPrefix(mt, "multipart/") && params["boundary"] != "" && depth < maxMIMEDepth:
		mr := textproto.NewMultipartReader(r, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading the original: %w", err)
			}
			if err := o.walk(p.Header, p, depth+1, withAttachments); err != nil {
				return err
			}
		}
	case disp != "attachment" && mt == "text/plain" && o.text == "":
		raw, err := io.ReadAll(io.LimitReader(r, maxQuotedText))
		if err != nil {
			return err
		}
		o.text = decodeText(h.Get("Content-Transfer-Encoding"), params["charset"], raw)
		return nil
	case disp != "attachment" && mt == "text/html" && o.html == "":
		raw, err := io.ReadAll(io.LimitReader(r, maxQuotedText))
		if err != nil {
			return err
		}
		o.html = decodeText(h.Get("Content-Transfer-Encoding"), params["charset"], raw)
		return nil
	case !withAttachments || strings.HasPrefix(mt, "multipart/"):
		return nil
	}
	var ch textproto.Header
	fields := h.Fields()
	for fields.Next() {
		if isContentField(fields.Key()) {
			ch.Add(fields.Key(), fields.Value())
		}
	}
	sp := spool.New(0)
	if _, err := io.Copy(sp, r); err != nil {
		sp.Close()
		return err
	}
	o.attachments = append(o.attachments, attachmentPart{header: ch, body: sp})
	return nil
}
