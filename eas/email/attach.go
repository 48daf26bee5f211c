package email

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"strings"

	"github.com/easd/easd/wbxml"
)

// attachment is a part listed in airsyncbase:Attachments (MS-ASAIRS
// 2.2.2.8). Which parts are listed: every leaf part except
//
//   - the body: text/plain and text/html parts that are neither
//     Content-Disposition attachment nor named (all of them, also inside
//     multipart/alternative, make up the text and HTML bodies);
//   - a text/calendar part that is neither attachment nor named and whose
//     METHOD makes the message a meeting message (it is the meeting, not a
//     file); a named or attached .ics is listed;
//   - parts inside a message/rfc822 part, which is listed as one
//     attachment (Method 5).
type attachment struct {
	path     string
	name     string
	typ      string
	size     int64 // decoded bytes
	cid      string
	location string
	disp     string
}

// peekSize is how much of a part is looked at before it is counted: the
// header of an embedded message, the start of a calendar.
const peekSize = 32 << 10

// partName returns the attachment display name of e: its file name, else
// the Subject of an embedded message with ".eml", else a name made of the
// media type. head is the start of the decoded content.
func partName(e *entity, head []byte) string {
	if name := e.filename(); name != "" {
		return name
	}
	if e.typ == "message/rfc822" || e.typ == "message/global" {
		h := newMIMEReader(bytes.NewReader(head)).readHeader()
		if s := headerText(h.Get("Subject")); s != "" {
			return s + ".eml"
		}
		return "message.eml"
	}
	ext := map[string]string{
		"text/plain": ".txt", "text/html": ".html", "text/calendar": ".ics",
		"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif",
		"application/pdf": ".pdf", "application/pkcs7-signature": ".p7s",
		"application/x-pkcs7-signature": ".p7s", "application/pkcs7-mime": ".p7m",
		"application/x-pkcs7-mime": ".p7m", "application/ics": ".ics",
	}[e.typ]
	if e.typ == "text/calendar" || e.typ == "application/ics" {
		return "invite" + ext
	}
	return "attachment" + ext
}

// needsHead reports whether naming e needs the start of its content.
func needsHead(e *entity) bool {
	return (e.typ == "message/rfc822" || e.typ == "message/global") && e.filename() == ""
}

// newAttachment reads the part body (to its end, counting the decoded
// bytes) and describes it.
func newAttachment(e *entity, body io.Reader) *attachment {
	var r io.Reader = transferDecoder(e.h.Get("Content-Transfer-Encoding"), body)
	var head []byte
	if needsHead(e) {
		br := bufio.NewReaderSize(r, peekSize)
		head, _ = br.Peek(peekSize)
		r = br
	}
	a := describe(e, head)
	a.size, _ = io.Copy(io.Discard, r)
	return a
}

// describe returns e's attachment record without a size.
func describe(e *entity, head []byte) *attachment {
	disp, _ := e.disposition()
	return &attachment{
		path:     e.path,
		name:     partName(e, head),
		typ:      e.typ,
		cid:      strings.Trim(strings.TrimSpace(e.h.Get("Content-ID")), "<>"),
		location: sanitizeString(strings.TrimSpace(e.h.Get("Content-Location"))),
		disp:     disp,
	}
}

// node returns airsyncbase:Attachment (MS-ASAIRS 2.2.2.7) with its children
// in the spec's order. IsInline (MS-ASAIRS 2.2.2.26.2) is 1 when the part
// has a Content-ID that the HTML body references (cid: URL, RFC 2392) and
// is not Content-Disposition attachment: the client shows it in the body,
// not as a file. Method (Attachment) (MS-ASAIRS 2.2.2.31) is 5 for an embedded
// message, else 1. EstimatedDataSize (MS-ASAIRS 2.2.2.23) is the decoded
// size.
func (a *attachment) node(fileRef func(string) string, cids map[string]bool) *wbxml.Node {
	method := "1"
	if a.typ == "message/rfc822" || a.typ == "message/global" {
		method = "5"
	}
	n := wbxml.E(wbxml.AirSyncBaseAttachment,
		wbxml.T(wbxml.AirSyncBaseDisplayName, a.name),
		wbxml.T(wbxml.AirSyncBaseFileReference, sanitizeString(fileRef(a.path))),
		wbxml.T(wbxml.AirSyncBaseMethod, method),
		wbxml.T(wbxml.AirSyncBaseEstimatedDataSize, strconv.FormatInt(a.size, 10)),
	)
	cid := sanitizeString(a.cid)
	if cid != "" {
		n.Append(wbxml.T(wbxml.AirSyncBaseContentId, cid))
	}
	if a.location != "" {
		n.Append(wbxml.T(wbxml.AirSyncBaseContentLocation, a.location))
	}
	if cid != "" && a.disp != "attachment" && cids[strings.ToLower(strings.TrimSpace(cid))] {
		n.Append(wbxml.T(wbxml.AirSyncBaseIsInline, "1"))
	}
	return n
}

// calendar handles an unnamed inline text/calendar part: if its iTIP
// METHOD (the Content-Type method parameter, RFC 6047 section 2.4, else
// the calendar's METHOD property) makes the message a meeting message, it
// records the class and returns nil; otherwise it returns the part as an
// attachment.
func (c *converter) calendar(e *entity, body io.Reader) *attachment {
	br := bufio.NewReaderSize(transferDecoder(e.h.Get("Content-Transfer-Encoding"), body), peekSize)
	head, _ := br.Peek(peekSize)
	if class := meetingClass(e.params["method"], head); class != "" {
		if c.meeting == "" {
			c.meeting = class
		}
		return nil
	}
	a := describe(e, nil)
	a.size, _ = io.Copy(io.Discard, br)
	return a
}

// meetingClass maps an iTIP method (RFC 5546) to the email:MessageClass of
// the message carrying it: REQUEST is IPM.Schedule.Meeting.Request, CANCEL
// IPM.Schedule.Meeting.Canceled, REPLY IPM.Schedule.Meeting.Resp.Pos, .Neg
// or .Tent by the attendee's PARTSTAT. Other methods (PUBLISH, COUNTER,
// ...) give "". method is the Content-Type parameter; head is the start of
// the calendar, searched when method is empty.
func meetingClass(method string, head []byte) string {
	// Unfold (RFC 5545 section 3.1) so property values are whole.
	text := strings.ToUpper(strings.NewReplacer("\r\n ", "", "\r\n\t", "", "\n ", "", "\n\t", "").Replace(string(head)))
	method = strings.ToUpper(strings.TrimSpace(method))
	if method == "" {
		for _, line := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "METHOD:"); ok {
				method = strings.TrimSpace(v)
				break
			}
		}
	}
	switch method {
	case "REQUEST":
		return "IPM.Schedule.Meeting.Request"
	case "CANCEL":
		return "IPM.Schedule.Meeting.Canceled"
	case "REPLY":
		switch {
		case strings.Contains(text, "PARTSTAT=ACCEPTED"):
			return "IPM.Schedule.Meeting.Resp.Pos"
		case strings.Contains(text, "PARTSTAT=DECLINED"):
			return "IPM.Schedule.Meeting.Resp.Neg"
		case strings.Contains(text, "PARTSTAT=TENTATIVE"):
			return "IPM.Schedule.Meeting.Resp.Tent"
		}
	}
	return ""
}

// PartInfo describes the part OpenPart found.
type PartInfo struct {
	// ContentType is the part's lower-case media type, e.g.
	// "application/pdf" (airsyncbase:ContentType in ItemOperations).
	ContentType string
	// Name is the part's display name, the same as Convert's
	// airsyncbase:DisplayName for it.
	Name string
}

// OpenPart reads the message from r, finds the leaf MIME part at path (the
// numbering of Options.FileRef: IMAP BODY sections, "1" for the single part
// of a non-multipart message), and calls fn with the part's decoded content
// (base64 or quoted-printable undone, no charset conversion) as a stream; it
// returns fn's error. It returns ErrNoPart if there is no leaf part at path
// (a multipart container, or a part inside an embedded message, is not
// one), and an error if reading r fails before the part is found.
func OpenPart(r io.Reader, path string, fn func(p PartInfo, content io.Reader) error) error {
	cr := &countingReader{r: r}
	mr := newMIMEReader(cr)
	top := newEntity(mr.readHeader(), "", 0, "")
	found := false
	var ferr error
	mr.walk(top, func(e *entity, body io.Reader) bool {
		if e.path != path {
			return false
		}
		found = true
		var content io.Reader = transferDecoder(e.h.Get("Content-Transfer-Encoding"), body)
		var head []byte
		if needsHead(e) {
			br := bufio.NewReaderSize(content, peekSize)
			head, _ = br.Peek(peekSize)
			content = br
		}
		ferr = fn(PartInfo{ContentType: e.typ, Name: partName(e, head)}, content)
		return true
	})
	if !found {
		if cr.err != nil {
			return cr.err
		}
		return ErrNoPart
	}
	if ferr == nil && cr.err != nil {
		return cr.err
	}
	return ferr
}
