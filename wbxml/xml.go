package wbxml

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

const (
	xmlDecl    = `<?xml version="1.0"?>`
	xmlDoctype = `<!DOCTYPE ActiveSync PUBLIC "-//MICROSOFT//DTD ActiveSync//EN" "http://www.microsoft.com/">`
)

// XMLOptions controls ToXML and WriteXML.
type XMLOptions struct {
	// Indent is written once per nesting level at the start of each line.
	// The zero value puts one element per line without indentation, like
	// wbxml2xml's default.
	Indent string
	// Compact writes everything on one line (like wbxml2xml -m 0).
	Compact bool
	// NoProlog omits the XML declaration and the DOCTYPE.
	NoProlog bool
	// Limits bounds the decoding done by ToXML (zero fields: DefaultLimits).
	Limits Limits
}

// ToXML decodes the WBXML document read from r and writes it to w as XML
// text (see "XML text form" in the package documentation). It streams: only one
// leaf value is held in memory at a time.
func ToXML(w io.Writer, r io.Reader, opts XMLOptions) error {
	d := NewDecoder(r, opts.Limits)
	p := newXMLPrinter(w, opts)
	for {
		tok, err := d.Next()
		if err == io.EOF {
			return p.finish()
		}
		if err != nil {
			return err
		}
		switch tok.Kind {
		case KindStart:
			p.start(tok.Tag)
		case KindEnd:
			p.end()
		case KindText:
			p.value(tok.Data, false)
		case KindOpaque:
			data, err := d.OpaqueBytes()
			if err != nil {
				return err
			}
			p.value(data, true)
		}
		if p.err != nil {
			return p.err
		}
	}
}

// WriteXML writes the tree n to w as XML text, like ToXML. Nodes with a
// Stream are printed as <t opaque="stream"/> (the stream is not read).
func WriteXML(w io.Writer, n *Node, opts XMLOptions) error {
	if n == nil {
		return errors.New("wbxml: WriteXML of a nil tree")
	}
	p := newXMLPrinter(w, opts)
	p.walk(n)
	return p.finish()
}

type xmlFrame struct {
	tag      Tag
	started  bool // start tag written
	hasChild bool
}

type xmlPrinter struct {
	out       io.Writer
	buf       []byte // pending output, flushed at xmlFlushAt
	opts      XMLOptions
	stack     []xmlFrame
	val       []byte // value of the innermost element while its start tag is pending
	valOpaque bool
	lineStart bool
	err       error
}

const xmlFlushAt = 32 << 10

func newXMLPrinter(w io.Writer, opts XMLOptions) *xmlPrinter {
	p := &xmlPrinter{out: w, buf: make([]byte, 0, xmlFlushAt+1024), opts: opts, lineStart: true}
	if !opts.NoProlog {
		p.str(xmlDecl)
		p.nl()
		p.str(xmlDoctype)
		p.nl()
	}
	return p
}

func (p *xmlPrinter) str(s string) { p.buf = append(p.buf, s...) }
func (p *xmlPrinter) char(c byte)  { p.buf = append(p.buf, c) }

func (p *xmlPrinter) maybeFlush() {
	if len(p.buf) >= xmlFlushAt {
		p.flush()
	}
}

func (p *xmlPrinter) flush() {
	if len(p.buf) > 0 && p.err == nil {
		_, p.err = p.out.Write(p.buf)
	}
	p.buf = p.buf[:0]
}

func (p *xmlPrinter) nl() {
	if !p.opts.Compact {
		p.char('\n')
		p.lineStart = true
	}
}

func (p *xmlPrinter) lineFor(depth int) {
	if p.opts.Compact {
		return
	}
	if !p.lineStart {
		p.char('\n')
	}
	for range depth {
		p.str(p.opts.Indent)
	}
	p.lineStart = false
}

func (p *xmlPrinter) walk(n *Node) {
	p.start(n.Tag)
	if n.Stream != nil {
		p.openTag(len(p.stack)-1, ` opaque="stream"`)
		p.str("/>")
		p.stack = p.stack[:len(p.stack)-1]
		return
	}
	if len(n.Value) > 0 || n.Opaque {
		p.value(n.Value, n.Opaque)
	}
	for _, c := range n.Children {
		p.walk(c)
	}
	p.end()
}

func (p *xmlPrinter) start(t Tag) {
	if len(p.stack) > 0 {
		top := &p.stack[len(p.stack)-1]
		if !top.started {
			p.flushPending()
		}
		top.hasChild = true
	}
	p.stack = append(p.stack, xmlFrame{tag: t})
	p.val, p.valOpaque = p.val[:0], false
}

func (p *xmlPrinter) value(b []byte, opaque bool) {
	if len(p.stack) == 0 {
		return
	}
	if top := &p.stack[len(p.stack)-1]; !top.started {
		p.val = append(p.val, b...)
		p.valOpaque = p.valOpaque || opaque
		return
	}
	// Mixed content after a child element: print inline.
	p.writeValue(b, opaque || !xmlSafe(b))
}

// openTag writes "<Name" plus namespace and extra attributes for frame i.
func (p *xmlPrinter) openTag(i int, attrs string) {
	f := p.stack[i]
	p.lineFor(i)
	p.char('<')
	p.str(xmlName(f.tag))
	if i == 0 || p.stack[i-1].tag.Page() != f.tag.Page() {
		p.str(` xmlns="`)
		p.str(xmlNamespace(f.tag.Page()))
		p.str(`:"`)
	}
	p.str(attrs)
}

// flushPending writes the pending start tag of the innermost element and
// its value so far (the element turned out to have children).
func (p *xmlPrinter) flushPending() {
	i := len(p.stack) - 1
	b64 := p.valOpaque || !xmlSafe(p.val)
	p.openTag(i, valueAttr(p.valOpaque, b64))
	p.char('>')
	p.writeValue(p.val, b64)
	p.stack[i].started = true
	p.val, p.valOpaque = p.val[:0], false
}

func valueAttr(opaque, b64 bool) string {
	switch {
	case opaque:
		return ` opaque="base64"`
	case b64:
		return ` text="base64"`
	}
	return ""
}

func (p *xmlPrinter) writeValue(b []byte, b64 bool) {
	if b64 {
		for len(b) > 0 { // in chunks, so output is flushed as it grows
			k := min(len(b), 3*8192)
			p.buf = base64.StdEncoding.AppendEncode(p.buf, b[:k])
			b = b[k:]
			p.maybeFlush()
		}
		return
	}
	writeEscaped(p, b)
	p.maybeFlush()
}

func (p *xmlPrinter) end() {
	i := len(p.stack) - 1
	if i < 0 {
		return
	}
	f := p.stack[i]
	switch {
	case !f.started && len(p.val) == 0 && !p.valOpaque:
		p.openTag(i, "")
		p.str("/>")
	case !f.started:
		b64 := p.valOpaque || !xmlSafe(p.val)
		p.openTag(i, valueAttr(p.valOpaque, b64))
		p.char('>')
		p.writeValue(p.val, b64)
		p.closeTag(f.tag)
	default:
		if f.hasChild {
			p.lineFor(i)
		}
		p.closeTag(f.tag)
	}
	p.val, p.valOpaque = p.val[:0], false
	p.stack = p.stack[:i]
	p.maybeFlush()
}

func (p *xmlPrinter) closeTag(t Tag) {
	p.str("</")
	p.str(xmlName(t))
	p.char('>')
}

func (p *xmlPrinter) finish() error {
	if p.err == nil && len(p.stack) > 0 {
		p.err = errors.New("wbxml: incomplete document")
	}
	if p.err != nil {
		return p.err
	}
	if !p.opts.Compact {
		p.char('\n')
	}
	p.flush()
	return p.err
}

// xmlName is the element name of t: its spec name, or Tag0x3F if unknown.
func xmlName(t Tag) string {
	if n := t.Name(); n != "" {
		return n
	}
	return "Tag0x" + hex2(t.Token())
}

// xmlNamespace is the namespace name of p, or Page0x1F if unknown.
func xmlNamespace(p Page) string {
	if ns := p.Namespace(); ns != "" {
		return ns
	}
	return "Page0x" + hex2(byte(p))
}

// xmlSafe reports whether b can be written as XML 1.0 character data.
func xmlSafe(b []byte) bool {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return false
		}
		if (r >= 0xD800 && r <= 0xDFFF) || r == 0xFFFE || r == 0xFFFF {
			return false
		}
		i += size
	}
	return true
}

var escapes = [256]string{
	'&': "&amp;", '<': "&lt;", '>': "&gt;", '"': "&quot;", '\'': "&apos;", '\r': "&#13;",
}

func writeEscaped(p *xmlPrinter, b []byte) {
	last := 0
	for i, c := range b {
		if esc := escapes[c]; esc != "" {
			p.buf = append(p.buf, b[last:i]...)
			p.buf = append(p.buf, esc...)
			last = i + 1
		}
	}
	p.buf = append(p.buf, b[last:]...)
}

// FromXML reads XML text (the form written by ToXML; libwbxml's tag names
// and namespaces are accepted too) from r and writes it to w as a WBXML
// document with the EAS header. Whitespace-only text between elements is
// ignored; a leaf element's text is kept verbatim.
func FromXML(w io.Writer, r io.Reader) error {
	dec := xml.NewDecoder(r)
	enc := NewEncoder(w)
	type frame struct {
		tag          Tag
		started      bool
		opaque, b64  bool
		text         []byte
		line, column int
	}
	var stack []frame
	rootDone := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("wbxml: reading XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			line, col := dec.InputPos()
			tag, err := xmlTag(t.Name)
			if err != nil {
				return fmt.Errorf("wbxml: XML line %d: %w", line, err)
			}
			if len(stack) == 0 && rootDone {
				return fmt.Errorf("wbxml: XML line %d: second root element", line)
			}
			if len(stack) > 0 {
				top := &stack[len(stack)-1]
				if top.opaque || top.b64 {
					return fmt.Errorf("wbxml: XML line %d: element with a base64 value has children", line)
				}
				if !top.started {
					enc.StartElement(top.tag)
					top.started = true
				}
				if v := trimXMLSpace(top.text); len(v) > 0 {
					enc.WriteTextBytes(v)
				}
				top.text = top.text[:0]
			}
			f := frame{tag: tag, line: line, column: col}
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns"):
				case a.Name.Local == "opaque" && a.Value == "base64":
					f.opaque = true
				case a.Name.Local == "text" && a.Value == "base64":
					f.b64 = true
				default:
					return fmt.Errorf("wbxml: XML line %d: unsupported attribute %s=%q", line, a.Name.Local, a.Value)
				}
			}
			if len(stack) < cap(stack) {
				f.text = stack[:len(stack)+1][len(stack)].text[:0]
			}
			stack = append(stack, f)
		case xml.CharData:
			if len(stack) == 0 {
				if len(trimXMLSpace(t)) > 0 {
					return errors.New("wbxml: XML text outside of the root element")
				}
				continue
			}
			top := &stack[len(stack)-1]
			top.text = append(top.text, t...)
		case xml.EndElement:
			f := &stack[len(stack)-1]
			if f.started {
				if v := trimXMLSpace(f.text); len(v) > 0 {
					enc.WriteTextBytes(v)
				}
				enc.EndElement()
			} else {
				v := f.text
				if f.opaque || f.b64 {
					b, err := decodeBase64(v)
					if err != nil {
						return fmt.Errorf("wbxml: XML line %d: bad base64 in %v: %w", f.line, f.tag, err)
					}
					v = b
				}
				switch {
				case f.opaque:
					enc.OpaqueElement(f.tag, v)
				case len(v) == 0:
					enc.EmptyElement(f.tag)
				default:
					enc.StartElement(f.tag)
					enc.WriteTextBytes(v)
					enc.EndElement()
				}
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				rootDone = true
			}
		}
		if enc.err != nil {
			return enc.err
		}
	}
	return enc.Close()
}

func trimXMLSpace(b []byte) []byte { return bytes.Trim(b, " \t\r\n") }

func decodeBase64(b []byte) ([]byte, error) {
	clean := bytes.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, b)
	out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
	n, err := base64.StdEncoding.Decode(out, clean)
	return out[:n], err
}

// xmlTag resolves an XML element name (namespace already resolved by
// encoding/xml) to a tag, accepting aliases and the unknown-tag forms.
func xmlTag(n xml.Name) (Tag, error) {
	if n.Space == "" {
		return 0, fmt.Errorf("element <%s> has no namespace (xmlns)", n.Local)
	}
	if t, ok := LookupTag(n.Space, n.Local); ok {
		return t, nil
	}
	ns := strings.TrimSuffix(n.Space, ":")
	p, ok := LookupPage(ns)
	if !ok {
		v, ok2 := parseHexSuffix(ns, "Page0x")
		if !ok2 {
			return 0, fmt.Errorf("unknown namespace %q", n.Space)
		}
		p = Page(v)
	}
	tok, ok := parseHexSuffix(n.Local, "Tag0x")
	if !ok || tok < 5 || tok > 0x3F {
		return 0, fmt.Errorf("unknown element %s in namespace %q", n.Local, n.Space)
	}
	return NewTag(p, tok), nil
}

func parseHexSuffix(s, prefix string) (byte, bool) {
	if !strings.HasPrefix(s, prefix) || len(s) > len(prefix)+2 || len(s) == len(prefix) {
		return 0, false
	}
	v, err := strconv.ParseUint(s[len(prefix):], 16, 8)
	return byte(v), err == nil
}
