package wbxml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Global tokens (WAP-192-WBXML section 7.1, as used by MS-ASWBXML section 2.1.2).
const (
	tokSwitchPage = 0x00
	tokEnd        = 0x01
	tokStrI       = 0x03
	tokOpaque     = 0xC3

	bitContent   = 0x40 // tag has content and is closed by END
	bitAttribute = 0x80 // tag has attributes (never used by EAS)
)

// globalTokenNames names the global tokens EAS does not use, for errors.
var globalTokenNames = map[byte]string{
	0x02: "ENTITY", 0x04: "LITERAL", 0x40: "EXT_I_0", 0x41: "EXT_I_1", 0x42: "EXT_I_2",
	0x43: "PI", 0x44: "LITERAL_C", 0x80: "EXT_T_0", 0x81: "EXT_T_1", 0x82: "EXT_T_2",
	0x83: "STR_T", 0x84: "LITERAL_A", 0xC0: "EXT_0", 0xC1: "EXT_1", 0xC2: "EXT_2",
	0xC4: "LITERAL_AC",
}

// Kind says what a Token is.
type Kind uint8

// Token kinds.
const (
	// KindStart starts an element (a tag token, MS-ASWBXML 2.1.2.1).
	KindStart Kind = iota + 1
	// KindEnd ends the most recently started element (END, or synthesized
	// after a tag without the content bit).
	KindEnd
	// KindText is an inline string (STR_I) inside an element.
	KindText
	// KindOpaque is an OPAQUE value inside an element; its payload is read
	// with Decoder.OpaqueBytes or Decoder.OpaqueReader.
	KindOpaque
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case KindStart:
		return "Start"
	case KindEnd:
		return "End"
	case KindText:
		return "Text"
	case KindOpaque:
		return "Opaque"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Token is one WBXML token as returned by Decoder.Next. It is kept to four
// fields and 32 bytes so that the compiler holds it in registers, which
// halves the cost of a Next loop; Decoder.TokenOffset gives its offset.
type Token struct {
	// Kind says which of the other fields are meaningful.
	Kind Kind
	// Tag is the element's tag for KindStart and KindEnd.
	Tag Tag
	// Len is the payload length of a KindOpaque token (an mb_u_int32). For
	// KindStart it is 1 for an empty element (see Empty) and 0 otherwise.
	Len uint32
	// Data holds the string of a KindText token (without its NUL). It points
	// into the decoder's buffer and is valid only until the next call on the
	// Decoder; copy it to keep it.
	Data []byte
}

// Empty reports whether t starts an empty element: a tag token without the
// content bit. The decoder returns the element's KindEnd right after it.
func (t Token) Empty() bool { return t.Kind == KindStart && t.Len == 1 }

// Header is the WBXML document header (WAP-192-WBXML section 5.3, MS-ASWBXML
// section 2.1.2). EAS always
// sends 03 01 6A 00: version 1.3, public id 1 (unknown), charset 106 (UTF-8)
// and an empty string table.
type Header struct {
	Version        byte   // WBXML version byte; 0x03 is WBXML 1.3
	PublicID       uint32 // public identifier; 0 means "string table index" (PublicIDIndex)
	PublicIDIndex  uint32 // string table index of the public id when PublicID is 0
	Charset        uint32 // IANA MIBenum; 106 is UTF-8
	StringTableLen uint32 // length of the string table, skipped by the decoder
}

// Decoder states.
const (
	stHeader    = iota // header not read yet
	stBody             // inside the body
	stAfterRoot        // root element closed; only end of input may follow
	stEOF              // io.EOF returned
)

const decBufSize = 32 << 10

// Decoder reads WBXML tokens from an input stream. Create one with NewDecoder
// or NewDecoderBytes. A Decoder is not safe for concurrent use.
//
// Next returns one token per call. Token.Data for text tokens aliases an
// internal buffer valid until the next call on the Decoder, so the streaming
// layer allocates nothing per token once its buffers have grown to the
// document's needs (Reset keeps them).
type Decoder struct {
	r     io.Reader
	buf   []byte // buf[pos:end] is unread input; len(buf) is its capacity
	own   []byte // the decoder's own buffer (buf unless fixed)
	pos   int
	end   int
	base  int64 // input offset of buf[0]
	rerr  error // sticky read error (io.EOF at end of input)
	fixed bool  // buf is the caller's whole input (NewDecoderBytes)

	lim        Limits
	hdr        Header
	state      int
	err        error // sticky decoding error
	page       Page
	stack      []Tag
	elements   int
	pendingEnd bool
	pendingTag Tag
	slow       bool  // err, pendingEnd, opPending or state != stBody: take nextSlow
	tokOff     int64 // input offset of the last token
	opPending  bool  // an OPAQUE token was returned; its payload is unread
	opLeft     int64 // unread payload bytes of that OPAQUE value
	opr        opaqueReader
	scratch    []byte
	marks      []int // ReadElement's stack of child-list starts
}

// NewDecoder returns a Decoder reading from r with the given limits (zero
// fields take DefaultLimits). The decoder buffers its input, so it may read
// beyond the end of the document.
func NewDecoder(r io.Reader, lim Limits) *Decoder {
	d := &Decoder{}
	d.opr.d = d
	d.lim = lim.resolved()
	d.Reset(r)
	return d
}

// NewDecoderBytes returns a Decoder reading the document in b without
// copying it. b must not be modified while the decoder is in use.
func NewDecoderBytes(b []byte, lim Limits) *Decoder {
	d := &Decoder{}
	d.opr.d = d
	d.lim = lim.resolved()
	d.ResetBytes(b)
	return d
}

// Reset makes d read a new document from r, keeping its buffers and limits.
func (d *Decoder) Reset(r io.Reader) {
	if cap(d.own) < decBufSize {
		d.own = make([]byte, decBufSize)
	}
	d.buf = d.own[:cap(d.own)]
	d.reset()
	d.r = r
	d.fixed = false
}

// ResetBytes makes d read the document in b, keeping its limits.
func (d *Decoder) ResetBytes(b []byte) {
	d.reset()
	d.r = nil
	d.buf = b
	d.end = len(b)
	d.fixed = true
}

func (d *Decoder) reset() {
	d.pos, d.end, d.base = 0, 0, 0
	d.rerr, d.err = nil, nil
	d.hdr = Header{}
	d.state = stHeader
	d.slow = true
	d.page = 0
	d.stack = d.stack[:0]
	d.elements = 0
	d.pendingEnd = false
	d.opPending, d.opLeft = false, 0
}

// SetLimits replaces the decoder's limits (zero fields take DefaultLimits).
func (d *Decoder) SetLimits(lim Limits) { d.lim = lim.resolved() }

// InputOffset returns the input offset of the next unread byte.
func (d *Decoder) InputOffset() int64 { return d.base + int64(d.pos) }

// Depth returns the number of open elements.
func (d *Decoder) Depth() int { return len(d.stack) }

// Header reads the document header if needed and returns it.
func (d *Decoder) Header() (Header, error) {
	if d.state == stHeader && d.err == nil {
		if err := d.readHeader(); err != nil {
			return Header{}, d.fail(err)
		}
	}
	return d.hdr, d.err
}

func (d *Decoder) fail(err error) error {
	if d.err == nil {
		d.err = err
	}
	d.slow = true
	return d.err
}

// TokenOffset returns the input offset of the first byte of the token most
// recently returned by Next.
func (d *Decoder) TokenOffset() int64 { return d.tokOff }

func (d *Decoder) syntax(off int64, format string, args ...any) error {
	return &SyntaxError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func (d *Decoder) limit(off int64, name string, v int64) error {
	return &LimitError{Offset: off, Limit: name, Value: v}
}

// eof turns the error of more() into the error to report: a SyntaxError
// wrapping io.ErrUnexpectedEOF at end of input, the error itself otherwise.
func (d *Decoder) eof(err error, what string) error {
	if err == io.EOF {
		return &SyntaxError{Offset: d.InputOffset(), Msg: "unexpected end of input in " + what, Err: io.ErrUnexpectedEOF}
	}
	return err
}

// more reads at least one more byte into the buffer, compacting or growing
// it as needed. It returns io.EOF at end of input, a *LimitError when the
// input already exceeds MaxTotal, or the reader's error.
func (d *Decoder) more() error { return d.fill(true) }

// fill implements more; capped=false skips the MaxTotal check (used to peek
// for data after the root element).
func (d *Decoder) fill(capped bool) error {
	over := d.base+int64(d.end) > d.lim.MaxTotal
	if d.fixed {
		if over && capped {
			return d.limit(d.lim.MaxTotal, "MaxTotal", d.lim.MaxTotal)
		}
		return io.EOF
	}
	if d.rerr != nil {
		return d.rerr
	}
	if over && capped {
		return d.limit(d.lim.MaxTotal, "MaxTotal", d.lim.MaxTotal)
	}
	if d.end == len(d.buf) {
		if d.pos > 0 {
			n := copy(d.buf, d.buf[d.pos:d.end])
			d.base += int64(d.pos)
			d.pos, d.end = 0, n
		} else {
			nb := make([]byte, 2*len(d.buf))
			copy(nb, d.buf[:d.end])
			d.buf, d.own = nb, nb
		}
	}
	// Never buffer more than one byte beyond MaxTotal.
	room := d.buf[d.end:]
	if most := d.lim.MaxTotal + 1 - (d.base + int64(d.end)); capped && int64(len(room)) > most {
		room = room[:most]
	}
	for range 100 {
		n, err := d.r.Read(room)
		d.end += n
		if err != nil {
			d.rerr = err
			if n > 0 {
				return nil
			}
			return err
		}
		if n > 0 {
			return nil
		}
	}
	d.rerr = io.ErrNoProgress
	return d.rerr
}

// readByte returns the next input byte.
func (d *Decoder) readByte(what string) (byte, error) {
	if d.pos >= d.end {
		if err := d.more(); err != nil {
			return 0, d.eof(err, what)
		}
	}
	b := d.buf[d.pos]
	d.pos++
	return b, nil
}

// readMBUint32 reads a WBXML multi-byte unsigned integer (WAP-192-WBXML 5.1):
// big-endian groups of 7 bits, the high bit set on all but the last byte. It
// accepts at most 5 bytes and values that fit in 32 bits.
func (d *Decoder) readMBUint32(what string) (uint32, error) {
	off := d.InputOffset()
	var v uint32
	for i := range 5 {
		b, err := d.readByte(what)
		if err != nil {
			return 0, err
		}
		if i == 4 && v > 0x1FFFFFF {
			return 0, d.syntax(off, "mb_u_int32 in %s overflows 32 bits", what)
		}
		v = v<<7 | uint32(b&0x7F)
		if b&0x80 == 0 {
			return v, nil
		}
	}
	return 0, d.syntax(off, "mb_u_int32 in %s longer than 5 bytes", what)
}

// readHeader parses version, publicid, charset and strtbl (WAP-192-WBXML 5.3).
func (d *Decoder) readHeader() error {
	var err error
	if d.hdr.Version, err = d.readByte("header"); err != nil {
		return err
	}
	if d.hdr.PublicID, err = d.readMBUint32("header public id"); err != nil {
		return err
	}
	if d.hdr.PublicID == 0 {
		if d.hdr.PublicIDIndex, err = d.readMBUint32("header public id index"); err != nil {
			return err
		}
	}
	if d.hdr.Charset, err = d.readMBUint32("header charset"); err != nil {
		return err
	}
	if d.hdr.StringTableLen, err = d.readMBUint32("header string table length"); err != nil {
		return err
	}
	// EAS never uses a string table; skip one if present.
	if err := d.skip(int64(d.hdr.StringTableLen), "string table"); err != nil {
		return err
	}
	d.state = stBody
	return nil
}

// skip discards n input bytes.
func (d *Decoder) skip(n int64, what string) error {
	if d.base+int64(d.pos)+n > d.lim.MaxTotal {
		return d.limit(d.InputOffset(), "MaxTotal", d.lim.MaxTotal)
	}
	for n > 0 {
		if d.pos >= d.end {
			if err := d.more(); err != nil {
				return d.eof(err, what)
			}
		}
		k := int64(d.end - d.pos)
		k = min(k, n)
		d.pos += int(k)
		n -= k
	}
	return nil
}

// Next returns the next token of the document. After the root element's
// KindEnd it returns io.EOF, once it has checked that no data follows.
// Malformed input returns a *SyntaxError, an exceeded limit a *LimitError;
// both are sticky. If the previous token was KindOpaque and its payload was
// not read completely, Next discards the rest.
func (d *Decoder) Next() (Token, error) {
	if d.slow {
		tok, done, err := d.nextSlow()
		if done || err != nil {
			return tok, err
		}
	}
	for {
		if d.pos >= d.end {
			if err := d.more(); err != nil {
				return Token{}, d.fail(d.eof(err, "body"))
			}
		}
		off := d.base + int64(d.pos)
		if off >= d.lim.MaxTotal {
			return Token{}, d.fail(d.limit(off, "MaxTotal", d.lim.MaxTotal))
		}
		b := d.buf[d.pos]
		d.tokOff = off
		if b&0x3F >= 0x05 { // a tag
			if b&bitAttribute != 0 {
				return Token{}, d.fail(d.syntax(off, "tag byte 0x%02X has attributes, which EAS does not use", b))
			}
			d.pos++
			t := Tag(d.page)<<8 | Tag(b&0x3F)
			if hasTokenAlias(d.page) {
				t = canonicalTag(t)
			}
			d.elements++
			if d.elements > d.lim.MaxElements {
				return Token{}, d.fail(d.limit(off, "MaxElements", int64(d.lim.MaxElements)))
			}
			if len(d.stack) >= d.lim.MaxDepth {
				return Token{}, d.fail(d.limit(off, "MaxDepth", int64(d.lim.MaxDepth)))
			}
			if b&bitContent != 0 {
				d.stack = append(d.stack, t)
				return Token{Kind: KindStart, Tag: t}, nil
			}
			d.pendingEnd, d.pendingTag, d.slow = true, t, true
			return Token{Kind: KindStart, Tag: t, Len: 1}, nil
		}
		switch b {
		case tokEnd:
			if len(d.stack) == 0 {
				return Token{}, d.fail(d.syntax(off, "END with no open element"))
			}
			d.pos++
			t := d.stack[len(d.stack)-1]
			d.stack = d.stack[:len(d.stack)-1]
			if len(d.stack) == 0 {
				d.state, d.slow = stAfterRoot, true
			}
			return Token{Kind: KindEnd, Tag: t}, nil
		case tokStrI:
			if len(d.stack) == 0 {
				return Token{}, d.fail(d.syntax(off, "STR_I outside of any element"))
			}
			d.pos++
			// Fast path: the whole string is buffered.
			if n := bytes.IndexByte(d.buf[d.pos:d.end], 0); n >= 0 && n <= d.lim.MaxStringLen {
				data := d.buf[d.pos : d.pos+n : d.pos+n]
				d.pos += n + 1
				return Token{Kind: KindText, Data: data}, nil
			}
			return d.strI(off)
		case tokSwitchPage:
			d.pos++
			p, err := d.readByte("SWITCH_PAGE")
			if err != nil {
				return Token{}, d.fail(err)
			}
			d.page = Page(p)
			continue
		case tokOpaque:
			if len(d.stack) == 0 {
				return Token{}, d.fail(d.syntax(off, "OPAQUE outside of any element"))
			}
			d.pos++
			return d.opaque(off)
		}
		return Token{}, d.fail(d.syntax(off, "unsupported global token 0x%02X (%s)", b, globalTokenNames[b]))
	}
}

// nextSlow handles the uncommon states before a token is parsed: a sticky
// error, the synthesized End of an empty element, an unread OPAQUE payload,
// the header and the end of the document. done reports that tok/err is the
// result; otherwise Next parses a token.
func (d *Decoder) nextSlow() (tok Token, done bool, err error) {
	if d.err != nil {
		return Token{}, true, d.err
	}
	if d.pendingEnd {
		d.pendingEnd = false
		if len(d.stack) == 0 {
			d.state = stAfterRoot
		}
		d.slow = d.state != stBody
		return Token{Kind: KindEnd, Tag: d.pendingTag}, true, nil
	}
	if d.opPending {
		d.opPending = false
		if d.opLeft > 0 {
			n := d.opLeft
			d.opLeft = 0
			if err := d.skip(n, "OPAQUE"); err != nil {
				return Token{}, true, d.fail(err)
			}
		}
	}
	switch d.state {
	case stHeader:
		if err := d.readHeader(); err != nil {
			return Token{}, true, d.fail(err)
		}
	case stAfterRoot:
		return Token{}, true, d.finish()
	case stEOF:
		return Token{}, true, io.EOF
	}
	d.slow = false
	return Token{}, false, nil
}

// strI reads an inline string up to its NUL terminator.
func (d *Decoder) strI(off int64) (Token, error) {
	scanned := 0
	for {
		if i := bytes.IndexByte(d.buf[d.pos+scanned:d.end], 0); i >= 0 {
			n := scanned + i
			if n > d.lim.MaxStringLen {
				return Token{}, d.fail(d.limit(off, "MaxStringLen", int64(d.lim.MaxStringLen)))
			}
			data := d.buf[d.pos : d.pos+n : d.pos+n]
			d.pos += n + 1
			return Token{Kind: KindText, Data: data}, nil
		}
		scanned = d.end - d.pos
		if scanned > d.lim.MaxStringLen {
			return Token{}, d.fail(d.limit(off, "MaxStringLen", int64(d.lim.MaxStringLen)))
		}
		if err := d.more(); err != nil {
			if err == io.EOF {
				return Token{}, d.fail(&SyntaxError{Offset: off, Msg: "STR_I without NUL terminator", Err: io.ErrUnexpectedEOF})
			}
			return Token{}, d.fail(err)
		}
	}
}

// opaque reads the length of an OPAQUE value; the payload stays unread.
func (d *Decoder) opaque(off int64) (Token, error) {
	n, err := d.readMBUint32("OPAQUE length")
	if err != nil {
		return Token{}, d.fail(err)
	}
	if int64(n) > d.lim.MaxOpaqueLen {
		return Token{}, d.fail(d.limit(off, "MaxOpaqueLen", d.lim.MaxOpaqueLen))
	}
	if d.InputOffset()+int64(n) > d.lim.MaxTotal {
		return Token{}, d.fail(d.limit(off, "MaxTotal", d.lim.MaxTotal))
	}
	d.opPending, d.opLeft, d.slow = true, int64(n), true
	return Token{Kind: KindOpaque, Len: n}, nil
}

// finish checks that nothing follows the root element.
func (d *Decoder) finish() error {
	if d.pos >= d.end {
		// Peek without the MaxTotal cap: a document of exactly MaxTotal
		// bytes is allowed.
		if err := d.fill(false); err != nil && err != io.EOF {
			return d.fail(err)
		}
	}
	if d.pos < d.end {
		return d.fail(d.syntax(d.InputOffset(), "data after the root element"))
	}
	d.state = stEOF
	return io.EOF
}

var errNoOpaque = errors.New("wbxml: no OPAQUE value pending")

// OpaqueBytes reads the (rest of the) payload of the OPAQUE token just
// returned by Next. The result aliases an internal buffer valid until the
// next call on the Decoder. Memory grows with the bytes actually received,
// never with the declared length alone.
func (d *Decoder) OpaqueBytes() ([]byte, error) {
	if !d.opPending {
		return nil, errNoOpaque
	}
	if int64(d.end-d.pos) >= d.opLeft {
		n := int(d.opLeft)
		data := d.buf[d.pos : d.pos+n : d.pos+n]
		d.pos += n
		d.opLeft = 0
		return data, nil
	}
	var err error
	d.scratch, err = d.appendOpaque(d.scratch[:0])
	return d.scratch, err
}

// appendOpaque appends the rest of the pending OPAQUE payload to dst,
// growing dst as data arrives.
func (d *Decoder) appendOpaque(dst []byte) ([]byte, error) {
	if !d.opPending {
		return dst, errNoOpaque
	}
	for d.opLeft > 0 {
		if d.pos < d.end {
			k := int(min(int64(d.end-d.pos), d.opLeft))
			dst = append(dst, d.buf[d.pos:d.pos+k]...)
			d.pos += k
			d.opLeft -= int64(k)
			continue
		}
		if cap(dst)-len(dst) < int(min(d.opLeft, decBufSize)) {
			// Grow by doubling, capped by the declared remaining length.
			grow := int(min(int64(max(cap(dst), 256<<10)), d.opLeft))
			nd := make([]byte, len(dst), len(dst)+grow)
			copy(nd, dst)
			dst = nd
		}
		n, err := d.readDirect(dst[len(dst):min(cap(dst), len(dst)+int(min(d.opLeft, 1<<30)))])
		dst = dst[:len(dst)+n]
		if err != nil {
			return dst, d.fail(d.eof(err, "OPAQUE"))
		}
	}
	return dst, nil
}

// readDirect reads OPAQUE payload bytes into p bypassing the buffer, which
// must be empty. len(p) must not exceed d.opLeft.
func (d *Decoder) readDirect(p []byte) (int, error) {
	if d.fixed || d.rerr != nil || len(p) < 4096 {
		if err := d.more(); err != nil {
			return 0, err
		}
		k := copy(p, d.buf[d.pos:d.end])
		d.pos += k
		d.opLeft -= int64(k)
		return k, nil
	}
	for range 100 {
		n, err := d.r.Read(p)
		d.base += int64(n) // the bytes sit logically before buf[pos] (== buf[end])
		d.opLeft -= int64(n)
		if err != nil {
			d.rerr = err
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		if n > 0 {
			return n, nil
		}
	}
	d.rerr = io.ErrNoProgress
	return 0, d.rerr
}

// OpaqueReader returns a reader for the (rest of the) payload of the OPAQUE
// token just returned by Next; it reports io.EOF after Token.Len bytes. It
// is valid until the next call to Next. Use it to stream large values (MIME,
// attachments) without holding them in memory.
func (d *Decoder) OpaqueReader() io.Reader { return &d.opr }

type opaqueReader struct{ d *Decoder }

// Read implements io.Reader over the pending OPAQUE payload.
func (o *opaqueReader) Read(p []byte) (int, error) {
	d := o.d
	if d.err != nil {
		return 0, d.err
	}
	if !d.opPending || d.opLeft == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > d.opLeft {
		p = p[:d.opLeft]
	}
	if d.pos < d.end {
		k := copy(p, d.buf[d.pos:d.end])
		d.pos += k
		d.opLeft -= int64(k)
		return k, nil
	}
	n, err := d.readDirect(p)
	if err != nil {
		return n, d.fail(d.eof(err, "OPAQUE"))
	}
	return n, nil
}
