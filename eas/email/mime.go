package email

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"strconv"
	"strings"

	"github.com/emersion/go-message/charset"
)

// This file is a lenient, streaming MIME (RFC 2045/2046) parser. It reads
// the message line by line and recognises the delimiter lines of every
// enclosing multipart, innermost first, so a multipart whose close delimiter
// is missing ends at its parent's next delimiter or at the end of the
// message. Nothing in it fails: broken structure yields fewer or odd parts.

const (
	maxHeaderBytes = 256 << 10 // header bytes kept per entity; the rest is read and dropped
	maxDepth       = 32        // multipart nesting walked; deeper ones are single parts
	readBufSize    = 32 << 10
)

// field is one header field, unfolded.
type field struct{ key, value string }

// header is an entity's header fields in order.
type header []field

// Get returns the value of the first field named key (case-insensitive).
func (h header) Get(key string) string {
	for _, f := range h {
		if strings.EqualFold(f.key, key) {
			return f.value
		}
	}
	return ""
}

// has reports whether a field named key exists.
func (h header) has(key string) bool {
	for _, f := range h {
		if strings.EqualFold(f.key, key) {
			return true
		}
	}
	return false
}

// mimeReader reads a message's lines. As an io.Reader it returns the body of
// the current entity, ending (io.EOF) at a delimiter line of an enclosing
// multipart or at the end of the input.
type mimeReader struct {
	br      *bufio.Reader
	bounds  [][]byte // "--" + boundary of the open multiparts, outermost first
	buf     []byte   // body bytes to return
	off     int
	term    []byte // line terminator held back: it belongs to a following delimiter
	termBuf [2]byte
	midLine bool // the last fragment did not end its line
	hit     int  // index in bounds of the delimiter line just read, -1 if none
	hitEnd  bool // that delimiter closes its multipart
	eof     bool
	lines   int // lines read (to recognise an mbox "From " line)
}

func newMIMEReader(r io.Reader) *mimeReader {
	return &mimeReader{br: bufio.NewReaderSize(r, readBufSize), hit: -1}
}

// fragment returns the next line, or part of a line longer than the buffer.
// The slice is valid until the next read.
func (m *mimeReader) fragment() ([]byte, bool) {
	if m.eof {
		return nil, false
	}
	b, err := m.br.ReadSlice('\n')
	if err != nil && err != bufio.ErrBufferFull {
		// io.EOF or a read error (the caller's counting reader keeps it).
		m.eof = true
		if len(b) == 0 {
			return nil, false
		}
	}
	m.lines++
	return b, true
}

// delimiter reports whether line (a whole line) is a delimiter line of an
// open multipart and records which.
func (m *mimeReader) delimiter(line []byte) bool {
	if len(line) < 3 || line[0] != '-' || line[1] != '-' || len(m.bounds) == 0 {
		return false
	}
	line = bytes.TrimRight(line, " \t\r\n")
	for i := len(m.bounds) - 1; i >= 0; i-- {
		b := m.bounds[i]
		if !bytes.HasPrefix(line, b) {
			continue
		}
		rest := line[len(b):]
		switch {
		case len(rest) == 0:
			m.hit, m.hitEnd = i, false
			return true
		case bytes.HasPrefix(rest, []byte("--")):
			m.hit, m.hitEnd = i, true
			return true
		}
	}
	return false
}

// splitTerm splits a fragment into content and line terminator.
func splitTerm(b []byte) (content, term []byte) {
	n := len(b)
	if n > 0 && b[n-1] == '\n' {
		if n > 1 && b[n-2] == '\r' {
			return b[:n-2], b[n-2:]
		}
		return b[:n-1], b[n-1:]
	}
	return b, nil
}

// setBody makes fragment b the next body bytes to return (after the held
// terminator) and holds back its own terminator.
func (m *mimeReader) setBody(b []byte) {
	content, term := splitTerm(b)
	m.buf = append(append(m.buf[:0], m.term...), content...)
	m.term = append(m.termBuf[:0], term...)
	m.off = 0
}

// fill reads the next body fragment; false at the end of the body.
func (m *mimeReader) fill() bool {
	for m.hit < 0 {
		atStart := !m.midLine
		b, ok := m.fragment()
		if !ok {
			if len(m.term) > 0 {
				// The last line's terminator is content: no delimiter follows.
				m.buf = append(m.buf[:0], m.term...)
				m.term, m.off = m.term[:0], 0
				return true
			}
			return false
		}
		m.midLine = b[len(b)-1] != '\n'
		if atStart && m.delimiter(b) {
			m.term = m.term[:0]
			return false
		}
		m.setBody(b)
		if len(m.buf) > 0 {
			return true
		}
	}
	return false
}

// Read returns body bytes of the current entity.
func (m *mimeReader) Read(p []byte) (int, error) {
	for m.off >= len(m.buf) {
		if !m.fill() {
			return 0, io.EOF
		}
	}
	n := copy(p, m.buf[m.off:])
	m.off += n
	return n, nil
}

// discard skips the rest of the current body.
func (m *mimeReader) discard() {
	m.off = len(m.buf)
	for m.fill() {
		m.off = len(m.buf)
	}
}

// readHeader reads an entity header up to the blank line. A line that
// cannot be a header field ends the header and is kept as the first body
// line; a delimiter line ends it too (an entity without body).
func (m *mimeReader) readHeader() header {
	var (
		h     header
		cur   []byte // field being unfolded
		total int
		have  bool
	)
	flush := func() {
		if !have {
			return
		}
		have = false
		if i := bytes.IndexByte(cur, ':'); i > 0 && total < maxHeaderBytes {
			total += len(cur)
			h = append(h, field{
				key:   string(bytes.TrimRight(cur[:i], " \t")),
				value: string(bytes.TrimSpace(cur[i+1:])),
			})
		}
	}
	m.term = m.term[:0]
	for m.hit < 0 {
		atStart := !m.midLine
		b, ok := m.fragment()
		if !ok {
			break
		}
		m.midLine = b[len(b)-1] != '\n'
		if !atStart {
			if have && len(cur) < maxHeaderBytes {
				content, _ := splitTerm(b)
				cur = append(cur, content...)
			}
			continue
		}
		if m.delimiter(b) {
			break
		}
		line, _ := splitTerm(b)
		if len(line) == 0 {
			break // end of header
		}
		if line[0] == ' ' || line[0] == '\t' {
			if have && len(cur) < maxHeaderBytes {
				cur = append(cur, line...)
			}
			continue
		}
		if m.lines == 1 && bytes.HasPrefix(line, []byte("From ")) {
			continue // mbox separator
		}
		flush()
		if !isFieldLine(line) {
			m.setBody(b) // no blank line before the body
			break
		}
		cur, have = append(cur[:0], line...), true
	}
	flush()
	return h
}

// isFieldLine reports whether line starts with a field name and a colon.
func isFieldLine(line []byte) bool {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return false
	}
	name := bytes.TrimRight(line[:i], " \t")
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c <= ' ' || c >= 0x7F {
			return false
		}
	}
	return true
}

// entity is one MIME entity met while walking.
type entity struct {
	h      header
	path   string // IMAP BODY section number ("" for a top-level multipart)
	typ    string // lower-case media type, defaulted per RFC 2045/2046
	params map[string]string
	depth  int
}

// newEntity parses h's Content-Type. parent is the enclosing multipart's
// media type ("" at the top).
func newEntity(h header, path string, depth int, parent string) *entity {
	e := &entity{h: h, path: path, depth: depth}
	e.typ, e.params = parseParams(h.Get("Content-Type"))
	if !strings.Contains(e.typ, "/") {
		e.typ = "text/plain"
		if parent == "multipart/digest" && h.Get("Content-Type") == "" {
			e.typ = "message/rfc822" // RFC 2046 section 5.1.5
		}
	}
	return e
}

// disposition returns the lower-case Content-Disposition and its params.
func (e *entity) disposition() (string, map[string]string) {
	return parseParams(e.h.Get("Content-Disposition"))
}

// filename returns the attachment file name (Content-Disposition filename,
// else Content-Type name), RFC 2047/2231 decoded; "" if none.
func (e *entity) filename() string {
	_, dp := e.disposition()
	name := dp["filename"]
	if name == "" {
		name = e.params["name"]
	}
	if name == "" {
		return ""
	}
	return sanitizeString(decodeWords(name))
}

// parseParams parses a Content-Type or Content-Disposition value (RFC 2045
// section 5.1, RFC 2231). The value is lower-cased; on a syntax error the
// parameters are parsed leniently.
func parseParams(v string) (string, map[string]string) {
	if v == "" {
		return "", map[string]string{}
	}
	t, params, err := mime.ParseMediaType(v)
	if err == nil {
		return strings.ToLower(t), params
	}
	params = map[string]string{}
	parts := strings.Split(v, ";")
	for _, p := range parts[1:] {
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		k = strings.TrimSuffix(k, "*")
		val = strings.Trim(strings.TrimSpace(val), `"`)
		if k != "" {
			if _, dup := params[k]; !dup {
				params[k] = val
			}
		}
	}
	return strings.ToLower(strings.TrimSpace(parts[0])), params
}

// leafFunc handles a leaf entity; body reads its raw (still transfer-
// encoded) content. It returns true to stop the walk.
type leafFunc func(e *entity, body io.Reader) bool

// childPath returns the section number of the n-th child of path.
func childPath(path string, n int) string {
	if path == "" {
		return strconv.Itoa(n)
	}
	return path + "." + strconv.Itoa(n)
}

// walk visits e and, for a multipart, its parts in order (IMAP section
// numbering: RFC 3501 section 6.4.5). A message/rfc822 part is a leaf. It
// returns true if leaf asked to stop.
func (m *mimeReader) walk(e *entity, leaf leafFunc) bool {
	boundary := e.params["boundary"]
	if !strings.HasPrefix(e.typ, "multipart/") || boundary == "" || e.depth >= maxDepth {
		if e.path == "" {
			e.path = "1"
		}
		return leaf(e, m)
	}
	m.bounds = append(m.bounds, []byte("--"+boundary))
	my := len(m.bounds) - 1
	m.discard() // preamble
	n := 0
	for m.hit == my && !m.hitEnd {
		m.hit = -1
		n++
		child := newEntity(m.readHeader(), childPath(e.path, n), e.depth+1, e.typ)
		if m.walk(child, leaf) {
			return true
		}
		m.discard()
	}
	if m.hit == my {
		m.hit = -1 // close delimiter; the epilogue is the parent's body
	}
	m.bounds = m.bounds[:my]
	return false
}

// decodeWords decodes RFC 2047 encoded words in s; s is returned unchanged
// if that fails.
func decodeWords(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	d := mime.WordDecoder{CharsetReader: charset.Reader}
	if out, err := d.DecodeHeader(s); err == nil {
		return out
	}
	return s
}
