// Package email converts RFC 5322 messages into the EAS Email class: the
// airsync:ApplicationData of a Sync, ItemOperations or Search response
// (MS-ASEMAIL, MS-ASAIRS), and fetches attachment content for
// ItemOperations and GetAttachment.
//
// Messages are streamed: Convert reads its input once, keeps at most the
// body bytes the client asked for (in a spool.Spool, so in bounded memory)
// and only counts attachment bytes. Broken messages (unknown charsets,
// damaged MIME structure, bad base64) convert as far as they decode; only an
// I/O error of the input is an error.
package email

import (
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/easd/easd/internal/spool"
	"github.com/easd/easd/wbxml"
)

// BodyPreference is one airsyncbase:BodyPreference (MS-ASAIRS 2.2.2.12).
type BodyPreference struct {
	// Type is airsyncbase:Type (MS-ASAIRS 2.2.2.41.4): 1 plain text, 2
	// HTML, 3 RTF (answered as 1), 4 MIME.
	Type int
	// TruncationSize is airsyncbase:TruncationSize in bytes (MS-ASAIRS
	// 2.2.2.40.2); 0 means no truncation.
	TruncationSize int64
	// AllOrNone is airsyncbase:AllOrNone (MS-ASAIRS 2.2.2.3.2).
	AllOrNone bool
	// Preview is airsyncbase:Preview, characters of plain-text preview
	// (MS-ASAIRS 2.2.2.35.4, 14.0+, at most 255); 0 means none.
	Preview int
}

// Options control a conversion.
type Options struct {
	// Version is the negotiated protocol version: "12.1", "14.0", "14.1",
	// "16.0", "16.1" ("" counts as 14.1). Below 14.0 there are no
	// Categories, ConversationId/Index, LastVerbExecuted or Preview.
	Version string
	// BodyPrefs are the request's BodyPreference elements in their order;
	// empty means plain text, not truncated.
	BodyPrefs []BodyPreference
	// MIMESupport is the request's airsync:MIMESupport (MS-ASCMD
	// 2.2.3.110.3): 0 never MIME, 1 only for S/MIME messages, 2 always when
	// a Type 4 preference asks for it.
	MIMESupport int
	// FileRef returns the airsyncbase:FileReference (MS-ASAIRS 2.2.2.24.1) of
	// the attachment at a MIME part path ("2", "1.3": IMAP BODY section
	// numbering, RFC 3501 section 6.4.5). Nil: attachments are not listed.
	FileRef func(partPath string) string
	// SpoolMemory bounds the memory used to hold each body representation
	// (raw MIME, text, HTML) before it spills to a temporary file; 0 means
	// spool.DefaultMemory.
	SpoolMemory int
}

// Meta is what the mailbox knows about a message beside its text.
type Meta struct {
	// Read is email:Read (\Seen).
	Read bool
	// Flag is email:Flag; nil gives an empty <Flag/>.
	Flag *Flag
	// Categories are email:Categories (14.0+; IMAP keywords, say).
	Categories []string
	// Received is email:DateReceived (the IMAP internal date); zero falls
	// back to the Date header.
	Received time.Time
	// Size is the RFC822.SIZE (0 unknown). Informational: Convert counts
	// the bytes it reads.
	Size int64
	// Answered and Forwarded give email2:LastVerbExecuted (14.0+,
	// MS-ASEMAIL 2.2.2.44): 3 (FORWARD) if Forwarded, else 1
	// (REPLYTOSENDER) if Answered. IMAP does not record which came last;
	// forwarding is preferred as the rarer, more telling action.
	Answered, Forwarded bool
}

// Item is one converted message. Its Node may stream a large body's Data
// from temporary storage (wbxml.TStream) when encoded, so encode it once,
// before Close; Close releases that storage once the Node has been encoded
// (or dropped).
type Item struct {
	// Node is the airsync:ApplicationData element.
	Node *wbxml.Node

	sinks   []*sink
	raw     *rawSink
	meeting *Meeting // the iTIP message of a meeting message (meeting.go)
}

// Close releases the spooled data of the item. It is safe to call twice.
func (it *Item) Close() error {
	if it == nil {
		return nil
	}
	for _, s := range it.sinks {
		s.close()
	}
	it.sinks = nil
	if it.raw != nil {
		it.raw.disable()
	}
	return nil
}

// maxAttachments bounds the attachments listed for one message.
const maxAttachments = 1000

// converter is the state of one Convert.
type converter struct {
	o        Options
	v14      bool
	text     *sink // text/plain body parts
	html     *sink // text/html body parts
	h2t      *sink // the text of the HTML parts
	textPrev *previewer
	htmlPrev *previewer
	raw      *rawSink
	rawTotal int64
	hasHTML  bool
	cids     map[string]bool
	atts     []*attachment
	meeting  string // meeting message class from a text/calendar part
	invite   *Meeting
}

// countingReader counts the bytes read from r, copies them to tee, and
// remembers r's first error other than io.EOF.
type countingReader struct {
	r   io.Reader
	n   int64
	tee io.Writer
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.tee != nil && n > 0 {
		_, _ = c.tee.Write(p[:n])
	}
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// versionAtLeast14 reports whether v is 14.0 or later ("" counts as 14.1).
func versionAtLeast14(v string) bool {
	if v == "" {
		return true
	}
	major, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(major)
	return err != nil || n >= 14
}

// Convert reads a whole RFC 5322 message from r and returns its
// airsync:ApplicationData (MS-ASEMAIL section 2.2.2; elements in the order
// of the MS-ASEMAIL examples). It fails only when reading r fails (or the
// temporary storage does); an undecodable message still converts.
func Convert(r io.Reader, m Meta, o Options) (*Item, error) {
	mem := o.SpoolMemory
	if mem <= 0 {
		mem = spool.DefaultMemory
	}
	c := &converter{o: o, v14: versionAtLeast14(o.Version), cids: map[string]bool{}}
	cr := &countingReader{r: r}
	var wantMIME *BodyPreference
	for i, p := range o.BodyPrefs {
		if p.Type == 4 && o.MIMESupport > 0 {
			wantMIME = &o.BodyPrefs[i]
			break
		}
	}
	c.raw = &rawSink{memory: mem, keep: -1, off: wantMIME == nil}
	if wantMIME != nil && wantMIME.TruncationSize > 0 {
		c.raw.keep = wantMIME.TruncationSize
	}
	cr.tee = c.raw
	it := &Item{raw: c.raw}
	fail := func(err error) (*Item, error) {
		_ = it.Close()
		return nil, err
	}

	mr := newMIMEReader(cr)
	top := newEntity(mr.readHeader(), "", 0, "")
	smime := smimeClass(top)
	pl := makePlan(o, smime != "")
	if !pl.mime {
		c.raw.disable()
	}

	// Sinks keep what the applicable preferences can need.
	uses := func(kinds ...int) func(int) bool {
		return func(t int) bool {
			for _, k := range kinds {
				if t == k {
					return true
				}
			}
			return false
		}
	}
	if n := pl.maxPreviewOf(); n > 0 && c.v14 {
		c.textPrev = &previewer{max: n}
		c.htmlPrev = &previewer{max: n}
	}
	keep, truncs := pl.storage(uses(0, 1, 2))
	// The size as wrapped HTML matters only if text may be answered as
	// HTML; with MIME certain, no text body is sent at all.
	esc := false
	if !pl.mimeCertain() {
		for _, p := range pl.prefs {
			esc = esc || p.Type == 0 || p.Type == 2
		}
	}
	c.text = newSink(mem, keep, truncs, esc, c.textPrev)
	keep, truncs = pl.storage(uses(0, 2))
	c.html = newSink(mem, keep, truncs, false, nil)
	keep, truncs = pl.storage(uses(0, 1))
	c.h2t = newSink(mem, keep, truncs, false, c.htmlPrev)
	it.sinks = []*sink{c.text, c.html, c.h2t}

	mr.walk(top, c.leaf)
	mr.discard()
	_, _ = io.Copy(io.Discard, cr) // count what the parser left
	if cr.err != nil {
		return fail(cr.err)
	}
	for _, s := range it.sinks {
		if s.err != nil {
			return fail(s.err)
		}
	}
	if c.raw.err != nil {
		return fail(c.raw.err)
	}
	c.rawTotal = cr.n

	n, err := c.applicationData(top.h, m, pl, smime)
	if err != nil {
		return fail(err)
	}
	it.Node = n
	it.meeting = c.invite
	return it, nil
}

// leaf handles one leaf entity while walking.
func (c *converter) leaf(e *entity, body io.Reader) bool {
	disp, _ := e.disposition()
	name := e.filename()
	inline := disp != "attachment" && name == ""
	switch {
	case inline && (e.typ == "text/plain" || strings.HasPrefix(e.typ, "multipart/")):
		c.text.separate()
		_, _ = io.Copy(c.text, textDecoder(e.params["charset"], transferDecoder(e.h.Get("Content-Transfer-Encoding"), body)))
	case inline && e.typ == "text/html":
		c.hasHTML = true
		c.h2t.separate()
		dec := textDecoder(e.params["charset"], transferDecoder(e.h.Get("Content-Transfer-Encoding"), body))
		htmlToText(io.TeeReader(dec, c.html), c.h2t, c.cids)
	case inline && e.typ == "text/calendar":
		if a := c.calendarPart(e, body); a != nil && len(c.atts) < maxAttachments {
			c.atts = append(c.atts, a)
		}
	default:
		if len(c.atts) < maxAttachments {
			c.atts = append(c.atts, newAttachment(e, body))
		}
	}
	return false
}

// smimeClass returns the S/MIME message class of a message from its
// top-level entity (MS-ASEMAIL MessageClass; MS-OXCMAIL mapping):
// application/pkcs7-mime is IPM.Note.SMIME (encrypted or opaque-signed),
// multipart/signed with a PKCS #7 signature IPM.Note.SMIME.MultipartSigned.
func smimeClass(e *entity) string {
	switch e.typ {
	case "application/pkcs7-mime", "application/x-pkcs7-mime":
		return "IPM.Note.SMIME"
	case "multipart/signed":
		switch strings.ToLower(e.params["protocol"]) {
		case "application/pkcs7-signature", "application/x-pkcs7-signature":
			return "IPM.Note.SMIME.MultipartSigned"
		}
	}
	return ""
}

// applicationData assembles the element.
func (c *converter) applicationData(h header, m Meta, pl plan, smime string) (*wbxml.Node, error) {
	ad := wbxml.E(wbxml.AirSyncApplicationData)
	addr := func(tag wbxml.Tag, key string) []string {
		if !h.has(key) {
			return nil
		}
		list, names := addressList(h.Get(key))
		if list != "" {
			ad.Append(wbxml.T(tag, list))
		}
		return names
	}
	toNames := addr(wbxml.EmailTo, "To")
	addr(wbxml.EmailCc, "Cc")
	addr(wbxml.EmailFrom, "From")
	subject := headerText(h.Get("Subject"))
	ad.Append(wbxml.T(wbxml.EmailSubject, subject))
	addr(wbxml.EmailReplyTo, "Reply-To")
	sent := parseDate(h.Get("Date"))
	received := m.Received
	if received.IsZero() {
		received = sent
	}
	if !received.IsZero() {
		ad.Append(wbxml.T(wbxml.EmailDateReceived, dateTime(received)))
	}
	if len(toNames) > 0 {
		ad.Append(wbxml.T(wbxml.EmailDisplayTo, strings.Join(toNames, "; ")))
	}
	ad.Append(
		wbxml.T(wbxml.EmailThreadTopic, ThreadTopic(subject)),
		wbxml.T(wbxml.EmailImportance, strconv.Itoa(importance(h))),
		wbxml.T(wbxml.EmailRead, boolText(m.Read)),
	)
	if c.o.FileRef != nil && len(c.atts) > 0 {
		atts := wbxml.E(wbxml.AirSyncBaseAttachments)
		for _, a := range c.atts {
			atts.Append(a.node(c.o.FileRef, c.cids))
		}
		ad.Append(atts)
	}
	body, err := c.bodyNode(pl)
	if err != nil {
		return nil, err
	}
	ad.Append(body)

	class, content := "IPM.Note", "urn:content-classes:message"
	switch {
	case smime != "":
		class = smime
	case c.meeting != "":
		class, content = c.meeting, "urn:content-classes:calendarmessage"
	}
	native := "1"
	if c.hasHTML {
		native = "2"
	}
	ad.Append(wbxml.T(wbxml.EmailMessageClass, class))
	if class == c.meeting {
		if mr := c.meetingNode(received); mr != nil {
			ad.Append(mr) // after MessageClass, as Exchange sends it
		}
	}
	ad.Append(
		wbxml.T(wbxml.EmailInternetCPID, "65001"), // the text is UTF-8
		FlagNode(m.Flag),
		wbxml.T(wbxml.EmailContentClass, content),
		wbxml.T(wbxml.AirSyncBaseNativeBodyType, native), // MS-ASAIRS 2.2.2.32
	)
	if !c.v14 {
		return ad, nil
	}
	cid := ConversationID(h.Get("Message-ID"), h.Get("In-Reply-To"), h.Get("References"))
	if cid == nil {
		// No ids at all: a stable value for this message alone.
		cid = conversationHash("msg:" + h.Get("Date") + "\x00" + h.Get("From") + "\x00" + h.Get("Subject"))
	}
	ad.Append(wbxml.O(wbxml.Email2ConversationId, cid))
	idxTime := sent
	if idxTime.IsZero() {
		idxTime = received
	}
	if idx := ConversationIndex(idxTime); idx != nil {
		ad.Append(wbxml.O(wbxml.Email2ConversationIndex, idx))
	}
	switch {
	case m.Forwarded:
		ad.Append(wbxml.T(wbxml.Email2LastVerbExecuted, "3"))
	case m.Answered:
		ad.Append(wbxml.T(wbxml.Email2LastVerbExecuted, "1"))
	}
	cats := wbxml.E(wbxml.EmailCategories)
	for _, s := range m.Categories {
		if s = strings.TrimSpace(sanitizeString(s)); s != "" {
			cats.Append(wbxml.T(wbxml.EmailCategory, s))
		}
	}
	ad.Append(cats)
	return ad, nil
}

func boolText(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// ErrNoPart is returned by OpenPart when the message has no leaf part at
// the path.
var ErrNoPart = errors.New("email: no such MIME part")
