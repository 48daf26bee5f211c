package email

import (
	"bufio"
	"bytes"
	"io"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// maxTokenBytes bounds the memory the HTML tokenizer may buffer for one
// token; a longer token (megabytes of text without markup) ends the
// conversion to text there.
const maxTokenBytes = 1 << 20

// maxCIDs bounds the cid: references remembered from HTML.
const maxCIDs = 1024

// htmlToText streams HTML from r and writes its text to w: script, style,
// head and similar content is dropped, whitespace collapses as a browser
// would (except in <pre>), block elements and <br> start lines, entities are
// decoded. It records cid: URLs (RFC 2392) found in attributes into cids.
// It reads r to its end even when conversion stops early.
func htmlToText(r io.Reader, w io.Writer, cids map[string]bool) {
	bw := bufio.NewWriterSize(w, 4096)
	c := &h2t{w: bw}
	z := html.NewTokenizer(r)
	z.SetMaxBuf(maxTokenBytes)
loop:
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			break loop
		case html.TextToken:
			if c.skip == 0 {
				c.text(z.Text())
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			for hasAttr {
				var val []byte
				_, val, hasAttr = z.TagAttr()
				if len(val) > 4 && len(cids) < maxCIDs && bytes.EqualFold(val[:4], []byte("cid:")) {
					id := string(val[4:])
					if u, err := url.PathUnescape(id); err == nil {
						id = u
					}
					cids[strings.ToLower(strings.TrimSpace(id))] = true
				}
			}
			c.start(atom.Lookup(name), tt == html.SelfClosingTagToken)
		case html.EndTagToken:
			name, _ := z.TagName()
			c.end(atom.Lookup(name))
		}
	}
	_ = bw.Flush()
	_, _ = io.Copy(io.Discard, r) // ErrBufferExceeded: drain the rest
}

// h2t is htmlToText's state.
type h2t struct {
	w       *bufio.Writer
	skip    int  // depth inside elements whose content is not text
	pre     int  // depth inside <pre>
	nl      int  // line breaks owed before the next text
	space   bool // a collapsed space is owed before the next text
	started bool // text was written
	bullet  bool // a list item marker is owed
}

// skipped are elements whose content is not shown as text.
func skipped(a atom.Atom) bool {
	switch a {
	case atom.Script, atom.Style, atom.Head, atom.Title, atom.Template,
		atom.Noscript, atom.Iframe, atom.Noembed, atom.Noframes, atom.Object:
		return true
	}
	return false
}

// breakBefore returns the line breaks a start or end tag of a implies: 2 for
// paragraph-like blocks, 1 for other blocks, 0 for inline elements.
func breakBefore(a atom.Atom) int {
	switch a {
	case atom.P, atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6,
		atom.Blockquote, atom.Pre, atom.Table, atom.Hr, atom.Ul, atom.Ol, atom.Dl:
		return 2
	case atom.Div, atom.Tr, atom.Li, atom.Dt, atom.Dd, atom.Section, atom.Article,
		atom.Header, atom.Footer, atom.Address, atom.Center, atom.Form, atom.Fieldset,
		atom.Nav, atom.Aside, atom.Main, atom.Figure, atom.Caption, atom.Tbody,
		atom.Thead, atom.Tfoot, atom.Body, atom.Html:
		return 1
	}
	return 0
}

func (c *h2t) start(a atom.Atom, selfClosing bool) {
	switch {
	case a == atom.Body:
		c.skip = 0 // a <head> that never closed
	case skipped(a):
		if !selfClosing {
			c.skip++
		}
		return
	case a == atom.Br:
		if c.started && c.nl < 2 {
			c.nl++ // each <br> breaks once more, up to a blank line
		}
		c.space = false
		return
	case a == atom.Td || a == atom.Th:
		c.space = c.started
		return
	case a == atom.Pre && !selfClosing:
		c.pre++
	}
	if a == atom.Li {
		c.lineBreak(1)
		c.bullet = true
		return
	}
	c.lineBreak(breakBefore(a))
}

func (c *h2t) end(a atom.Atom) {
	if skipped(a) {
		if c.skip > 0 {
			c.skip--
		}
		return
	}
	if a == atom.Pre && c.pre > 0 {
		c.pre--
	}
	c.lineBreak(breakBefore(a))
}

// lineBreak owes n line breaks (the maximum of those owed), dropping a
// pending space.
func (c *h2t) lineBreak(n int) {
	if n == 0 || !c.started {
		return
	}
	if n > c.nl {
		c.nl = n
	}
	c.space = false
}

// flushBreaks writes what is owed before text.
func (c *h2t) flushBreaks() {
	if c.started {
		// nl counts breaks from the current line: 1 ends it, 2 leaves a
		// blank line.
		for i := 0; i < c.nl; i++ {
			c.w.WriteString("\r\n")
		}
		if c.nl == 0 && c.space {
			c.w.WriteByte(' ')
		}
	}
	c.nl, c.space = 0, false
	if c.bullet {
		c.w.WriteString("- ")
		c.bullet = false
	}
}

// text writes a text token.
func (c *h2t) text(b []byte) {
	if c.pre > 0 {
		if len(b) > 0 {
			c.flushBreaks()
			c.w.Write(b)
			c.started = true
		}
		return
	}
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		switch r {
		case ' ', '\t', '\n', '\r', '\f':
			if c.started && c.nl == 0 {
				c.space = true
			}
			continue
		case 0xA0: // &nbsp; is a space that does not collapse
			r = ' '
		}
		if !c.started || c.nl > 0 || c.space || c.bullet {
			c.flushBreaks()
		}
		c.w.WriteRune(r)
		c.started = true
	}
}

// wrapPrefix and wrapSuffix enclose a plain text body sent as HTML.
const (
	wrapPrefix = `<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"></head><body>`
	wrapSuffix = "</body></html>"
)

// escWidth is the length of byte c in escapeText's output.
func escWidth(c byte) int64 {
	switch c {
	case '&':
		return 5 // &amp;
	case '<', '>':
		return 4 // &lt; &gt;
	case '"':
		return 6 // &quot;
	case '\r':
		return 0
	case '\n':
		return 5 // <br>\n
	}
	return 1
}

// escapeReader escapes plain text for HTML: markup characters as entities,
// line breaks as <br>.
type escapeReader struct {
	src  io.Reader
	in   [4096]byte
	out  []byte
	pend []byte
	eof  bool
}

func (e *escapeReader) Read(p []byte) (int, error) {
	for len(e.pend) == 0 {
		if e.eof {
			return 0, io.EOF
		}
		n, err := e.src.Read(e.in[:])
		if err != nil {
			e.eof = true
		}
		e.out = e.out[:0]
		for _, c := range e.in[:n] {
			switch c {
			case '&':
				e.out = append(e.out, "&amp;"...)
			case '<':
				e.out = append(e.out, "&lt;"...)
			case '>':
				e.out = append(e.out, "&gt;"...)
			case '"':
				e.out = append(e.out, "&quot;"...)
			case '\r':
			case '\n':
				e.out = append(e.out, "<br>\n"...)
			default:
				e.out = append(e.out, c)
			}
		}
		e.pend = e.out
	}
	n := copy(p, e.pend)
	e.pend = e.pend[n:]
	return n, nil
}

// maxPreview is the longest airsyncbase:Preview (MS-ASAIRS 2.2.2.35.4).
const maxPreview = 255

// previewer keeps the first max characters of a text with whitespace runs
// collapsed to one space (airsyncbase:Preview, MS-ASAIRS 2.2.2.35.1).
type previewer struct {
	max   int
	b     []byte
	n     int  // characters in b
	space bool // a space is owed
	carry [utf8.UTFMax]byte
	nc    int
}

func (p *previewer) full() bool { return p.n >= p.max }

// write adds text (whole characters or not).
func (p *previewer) write(b []byte) {
	if p.full() {
		return
	}
	if p.nc > 0 {
		// Complete a character split across writes.
		for len(b) > 0 && p.nc < utf8.UTFMax && !utf8.FullRune(p.carry[:p.nc]) {
			p.carry[p.nc] = b[0]
			p.nc++
			b = b[1:]
		}
		if !utf8.FullRune(p.carry[:p.nc]) {
			return
		}
		r, _ := utf8.DecodeRune(p.carry[:p.nc])
		p.nc = 0
		p.rune(r)
	}
	for len(b) > 0 && !p.full() {
		if !utf8.FullRune(b) {
			p.nc = copy(p.carry[:], b)
			return
		}
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		p.rune(r)
	}
}

func (p *previewer) rune(r rune) {
	if unicode.IsSpace(r) {
		p.space = p.n > 0
		return
	}
	if p.space {
		p.space = false
		if p.n+1 >= p.max {
			p.n = p.max
			return
		}
		p.b = append(p.b, ' ')
		p.n++
	}
	if p.n >= p.max {
		return
	}
	p.b = utf8.AppendRune(p.b, r)
	p.n++
}

// String returns the preview.
func (p *previewer) String() string { return string(p.b) }
