package wbxml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// easHeader is the header every EAS document carries (MS-ASWBXML 2.1.2):
// WBXML 1.3, public id 1 (unknown), charset 106 (UTF-8), no string table.
var easHeader = [...]byte{0x03, 0x01, 0x6A, 0x00}

const (
	encBufSize = 32 << 10
	encFlushAt = encBufSize - 64 // leave room for a few small tokens
)

// Encoder writes a WBXML document to an io.Writer. The 4-byte EAS header is
// written before the first element; SWITCH_PAGE is emitted only when the code
// page changes (MS-ASWBXML 2.1.2.1). Output is buffered: call Close (or
// Flush) at the end. Errors are sticky: after one, every method returns it.
// An Encoder is not safe for concurrent use.
type Encoder struct {
	w       io.Writer
	buf     []byte
	page    Page
	stack   []Tag
	started bool // header written
	done    bool // root element closed
	err     error
}

// NewEncoder returns an Encoder writing to w.
func NewEncoder(w io.Writer) *Encoder {
	e := &Encoder{buf: make([]byte, 0, encBufSize)}
	e.Reset(w)
	return e
}

// Reset discards any state and makes e write a new document to w.
func (e *Encoder) Reset(w io.Writer) {
	e.w = w
	e.buf = e.buf[:0]
	e.page = 0
	e.stack = e.stack[:0]
	e.started, e.done = false, false
	e.err = nil
}

func (e *Encoder) fail(err error) error {
	if e.err == nil {
		e.err = err
	}
	return e.err
}

// Depth returns the number of open elements.
func (e *Encoder) Depth() int { return len(e.stack) }

// Flush writes buffered output to the underlying writer.
func (e *Encoder) Flush() error {
	if e.err != nil {
		return e.err
	}
	if len(e.buf) > 0 {
		_, err := e.w.Write(e.buf)
		e.buf = e.buf[:0]
		if err != nil {
			return e.fail(err)
		}
	}
	return nil
}

// Close checks that the document is complete (one root element, all
// elements ended) and flushes it.
func (e *Encoder) Close() error {
	if e.err != nil {
		return e.err
	}
	if !e.done {
		if len(e.stack) > 0 {
			return e.fail(fmt.Errorf("wbxml: Close with %d unclosed element(s), innermost %v", len(e.stack), e.stack[len(e.stack)-1]))
		}
		return e.fail(errors.New("wbxml: Close before any element was written"))
	}
	return e.Flush()
}

func (e *Encoder) tag(t Tag, content bool) error {
	if e.err != nil {
		return e.err
	}
	if !t.Valid() {
		return e.fail(fmt.Errorf("wbxml: invalid tag 0x%04X (token must be 0x05-0x3F)", uint16(t)))
	}
	if e.done {
		return e.fail(fmt.Errorf("wbxml: element %v after the root element", t))
	}
	if !e.started {
		e.buf = append(e.buf, easHeader[:]...)
		e.started = true
	}
	if p := t.Page(); p != e.page {
		e.buf = append(e.buf, tokSwitchPage, byte(p))
		e.page = p
	}
	b := t.Token()
	if content {
		e.buf = append(e.buf, b|bitContent)
		e.stack = append(e.stack, t)
	} else {
		e.buf = append(e.buf, b)
		if len(e.stack) == 0 {
			e.done = true
		}
	}
	if len(e.buf) >= encFlushAt {
		return e.Flush()
	}
	return nil
}

// StartElement opens element t (tag token with the content bit); close it
// with EndElement.
func (e *Encoder) StartElement(t Tag) error { return e.tag(t, true) }

// EmptyElement writes element t without content (<t/>), as a tag token
// without the content bit.
func (e *Encoder) EmptyElement(t Tag) error { return e.tag(t, false) }

// EndElement closes the most recently opened element (END token).
func (e *Encoder) EndElement() error {
	if e.err != nil {
		return e.err
	}
	if len(e.stack) == 0 {
		return e.fail(errors.New("wbxml: EndElement with no open element"))
	}
	e.stack = e.stack[:len(e.stack)-1]
	e.buf = append(e.buf, tokEnd)
	if len(e.stack) == 0 {
		e.done = true
	}
	if len(e.buf) >= encFlushAt {
		return e.Flush()
	}
	return nil
}

func (e *Encoder) checkContent(what string) error {
	if e.err != nil {
		return e.err
	}
	if len(e.stack) == 0 {
		return e.fail(fmt.Errorf("wbxml: %s outside of any element", what))
	}
	return nil
}

// WriteText writes s as an inline string (STR_I). s must not contain a NUL
// byte (STR_I is NUL-terminated). An empty s writes nothing.
func (e *Encoder) WriteText(s string) error {
	if err := e.checkContent("text"); err != nil {
		return err
	}
	if s == "" {
		return nil
	}
	if strings.IndexByte(s, 0) >= 0 {
		return e.fail(errors.New("wbxml: text contains a NUL byte; use OPAQUE"))
	}
	if len(s) > encBufSize-len(e.buf)-2 {
		e.buf = append(e.buf, tokStrI)
		if err := e.Flush(); err != nil {
			return err
		}
		if _, err := io.WriteString(e.w, s); err != nil {
			return e.fail(err)
		}
		e.buf = append(e.buf, 0)
		return nil
	}
	e.buf = append(e.buf, tokStrI)
	e.buf = append(e.buf, s...)
	e.buf = append(e.buf, 0)
	if len(e.buf) >= encFlushAt {
		return e.Flush()
	}
	return nil
}

// WriteTextBytes is WriteText for a byte slice.
func (e *Encoder) WriteTextBytes(b []byte) error {
	if err := e.checkContent("text"); err != nil {
		return err
	}
	if len(b) == 0 {
		return nil
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return e.fail(errors.New("wbxml: text contains a NUL byte; use OPAQUE"))
	}
	if len(b) > encBufSize-len(e.buf)-2 {
		e.buf = append(e.buf, tokStrI)
		if err := e.Flush(); err != nil {
			return err
		}
		if _, err := e.w.Write(b); err != nil {
			return e.fail(err)
		}
		e.buf = append(e.buf, 0)
		return nil
	}
	e.buf = append(e.buf, tokStrI)
	e.buf = append(e.buf, b...)
	e.buf = append(e.buf, 0)
	if len(e.buf) >= encFlushAt {
		return e.Flush()
	}
	return nil
}

// WriteTextFrom writes an inline string (STR_I) copied from r, dropping
// NUL bytes (STR_I is NUL-terminated). It streams: r may be any size.
// An r that yields nothing writes an empty string.
func (e *Encoder) WriteTextFrom(r io.Reader) error {
	if err := e.checkContent("text"); err != nil {
		return err
	}
	e.buf = append(e.buf, tokStrI)
	var tmp [8 << 10]byte
	for {
		// Keep the buffer within its pooled capacity.
		if len(e.buf) > encBufSize-len(tmp) {
			if err := e.Flush(); err != nil {
				return err
			}
		}
		n, err := r.Read(tmp[:])
		for _, c := range tmp[:n] {
			if c != 0 {
				e.buf = append(e.buf, c)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return e.fail(err)
		}
	}
	e.buf = append(e.buf, 0)
	if len(e.buf) >= encFlushAt {
		return e.Flush()
	}
	return nil
}

// appendMBUint32 appends v as a WBXML mb_u_int32 (WAP-192-WBXML 5.1).
func appendMBUint32(b []byte, v uint32) []byte {
	var tmp [5]byte
	i := len(tmp) - 1
	tmp[i] = byte(v & 0x7F)
	for v >>= 7; v > 0; v >>= 7 {
		i--
		tmp[i] = byte(v&0x7F) | 0x80
	}
	return append(b, tmp[i:]...)
}

func (e *Encoder) opaqueHeader(n int64) error {
	if err := e.checkContent("OPAQUE"); err != nil {
		return err
	}
	if n < 0 || n > math.MaxUint32 {
		return e.fail(fmt.Errorf("wbxml: OPAQUE length %d out of range", n))
	}
	e.buf = append(e.buf, tokOpaque)
	e.buf = appendMBUint32(e.buf, uint32(n))
	return nil
}

// WriteOpaque writes b as an OPAQUE value (WAP-192-WBXML 5.8.4.6): the length
// as mb_u_int32, then the bytes.
func (e *Encoder) WriteOpaque(b []byte) error {
	if err := e.opaqueHeader(int64(len(b))); err != nil {
		return err
	}
	if len(b) > encBufSize-len(e.buf) {
		if err := e.Flush(); err != nil {
			return err
		}
		if _, err := e.w.Write(b); err != nil {
			return e.fail(err)
		}
		return nil
	}
	e.buf = append(e.buf, b...)
	if len(e.buf) >= encFlushAt {
		return e.Flush()
	}
	return nil
}

// WriteOpaqueFrom writes an OPAQUE value of exactly n bytes copied from r,
// without holding the value in memory. If r ends early the error wraps
// io.ErrUnexpectedEOF and the output is unusable.
func (e *Encoder) WriteOpaqueFrom(r io.Reader, n int64) error {
	if err := e.opaqueHeader(n); err != nil {
		return err
	}
	for n > 0 {
		if len(e.buf) == cap(e.buf) {
			if err := e.Flush(); err != nil {
				return err
			}
		}
		l := len(e.buf)
		k := int(min(int64(cap(e.buf)-l), n))
		m, err := io.ReadFull(r, e.buf[l:l+k])
		e.buf = e.buf[:l+m]
		n -= int64(m)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return e.fail(fmt.Errorf("wbxml: OPAQUE source short by %d bytes: %w", n, err))
		}
	}
	if len(e.buf) >= encFlushAt {
		return e.Flush()
	}
	return nil
}

// TextElement writes <t>s</t>, or <t/> when s is empty.
func (e *Encoder) TextElement(t Tag, s string) error {
	if s == "" {
		return e.EmptyElement(t)
	}
	e.StartElement(t)
	e.WriteText(s)
	return e.EndElement()
}

// OpaqueElement writes element t holding b as OPAQUE.
func (e *Encoder) OpaqueElement(t Tag, b []byte) error {
	e.StartElement(t)
	e.WriteOpaque(b)
	return e.EndElement()
}
