package email

import (
	"io"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
)

// This file undoes Content-Transfer-Encoding (RFC 2045 section 6) and
// charsets (RFC 2046 section 4.1.2) leniently: broken input yields what can
// be decoded, never an error. The readers here return only io.EOF; the
// mimeReader below them hides I/O errors of the source (Convert reports
// those itself).

// transferDecoder returns a reader undoing the transfer encoding cte
// (a Content-Transfer-Encoding value). Unknown encodings pass through.
func transferDecoder(cte string, r io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		return &b64Reader{src: r}
	case "quoted-printable":
		return &qpReader{src: r}
	}
	return r
}

// textDecoder returns a reader of r's text converted from charset label to
// valid UTF-8 without NUL bytes. Unknown charsets are taken as UTF-8 with a
// windows-1252 fallback for bytes that are not valid UTF-8, so text always
// comes out.
func textDecoder(label string, r io.Reader) io.Reader {
	label = strings.ToLower(strings.Trim(strings.TrimSpace(label), `"'`))
	switch label {
	case "", "utf-8", "utf8", "us-ascii", "ascii", "unknown-8bit", "x-unknown", "unknown", "default":
		// Labelled ASCII is very often undeclared UTF-8: the sanitizer
		// keeps valid UTF-8 and falls back to windows-1252.
	case "iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "l1":
		// Mail labelled ISO-8859-1 routinely holds windows-1252
		// punctuation in 0x80-0x9F; decode as the WHATWG encoding
		// standard does.
		if cr, err := charset.Reader("windows-1252", r); err == nil {
			r = cr
		}
	default:
		if cr, err := charset.Reader(label, r); err == nil && cr != nil {
			r = cr
		}
	}
	return &utf8Sanitizer{src: r}
}

// b64Reader decodes base64 leniently: characters outside the alphabet are
// skipped, '=' ends a quantum (so concatenated encodings still decode), and
// a trailing partial quantum yields the bytes it holds.
type b64Reader struct {
	src  io.Reader
	in   [4096]byte
	out  [3072 + 3]byte
	pend []byte // decoded bytes not yet returned
	q    [4]byte
	nq   int
	eof  bool
}

var b64Map = func() (m [256]byte) {
	for i := range m {
		m[i] = 0xFF
	}
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alpha); i++ {
		m[alpha[i]] = byte(i)
	}
	return m
}()

func (d *b64Reader) Read(p []byte) (int, error) {
	for len(d.pend) == 0 {
		if d.eof {
			return 0, io.EOF
		}
		n, err := d.src.Read(d.in[:])
		out := d.out[:0]
		for _, c := range d.in[:n] {
			v := b64Map[c]
			if v == 0xFF {
				if c == '=' {
					out = d.flush(out)
				}
				continue
			}
			d.q[d.nq] = v
			d.nq++
			if d.nq == 4 {
				out = append(out, d.q[0]<<2|d.q[1]>>4, d.q[1]<<4|d.q[2]>>2, d.q[2]<<6|d.q[3])
				d.nq = 0
			}
		}
		if err != nil {
			d.eof = true
			out = d.flush(out)
		}
		d.pend = out
	}
	n := copy(p, d.pend)
	d.pend = d.pend[n:]
	return n, nil
}

// flush emits the bytes of a partial quantum (2 chars: 1 byte, 3 chars: 2).
func (d *b64Reader) flush(out []byte) []byte {
	switch d.nq {
	case 2:
		out = append(out, d.q[0]<<2|d.q[1]>>4)
	case 3:
		out = append(out, d.q[0]<<2|d.q[1]>>4, d.q[1]<<4|d.q[2]>>2)
	}
	d.nq = 0
	return out
}

// qpReader decodes quoted-printable leniently (RFC 2045 section 6.7): "=XX"
// (either case) is a byte, "=" before the end of a line (after optional
// whitespace) is a soft line break, any other "=" is kept literally, and
// whitespace before a line break is dropped.
type qpReader struct {
	src   io.Reader
	in    [4096]byte
	out   []byte
	pend  []byte
	state int
	hex1  byte   // value of the hex digit after '='
	hexc  byte   // the digit as written
	ws    []byte // pending whitespace (normal state) or after '=' (eqWS)
	eof   bool
}

const (
	qpNormal = iota
	qpCR     // saw '\r'
	qpEq     // saw '='
	qpEqHex  // saw '=' and one hex digit
	qpEqWS   // saw '=' and whitespace
	qpEqCR   // saw '=', maybe whitespace, '\r'
)

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func (d *qpReader) Read(p []byte) (int, error) {
	for len(d.pend) == 0 {
		if d.eof {
			return 0, io.EOF
		}
		n, err := d.src.Read(d.in[:])
		d.out = d.out[:0]
		for _, c := range d.in[:n] {
			d.step(c)
		}
		if err != nil {
			d.eof = true
			d.finish()
		}
		d.pend = d.out
	}
	n := copy(p, d.pend)
	d.pend = d.pend[n:]
	return n, nil
}

func (d *qpReader) step(c byte) {
	switch d.state {
	case qpCR:
		d.state = qpNormal
		if c == '\n' {
			d.ws = d.ws[:0] // trailing whitespace is transport padding
			d.out = append(d.out, '\r', '\n')
			return
		}
		d.out = append(append(d.out, d.ws...), '\r')
		d.ws = d.ws[:0]
	case qpEq:
		if v, ok := unhex(c); ok {
			d.hex1, d.hexc, d.state = v, c, qpEqHex
			return
		}
		switch c {
		case ' ', '\t':
			d.ws = append(d.ws[:0], c)
			d.state = qpEqWS
			return
		case '\r':
			d.state = qpEqCR
			return
		case '\n':
			d.state = qpNormal // soft line break
			return
		}
		d.out = append(d.out, '=')
		d.state = qpNormal
	case qpEqHex:
		d.state = qpNormal
		if v, ok := unhex(c); ok {
			d.out = append(d.out, d.hex1<<4|v)
			return
		}
		d.out = append(d.out, '=', d.hexc)
	case qpEqWS:
		switch c {
		case ' ', '\t':
			if len(d.ws) < 256 {
				d.ws = append(d.ws, c)
			}
			return
		case '\r':
			d.state = qpEqCR
			return
		case '\n':
			d.ws = d.ws[:0]
			d.state = qpNormal
			return
		}
		d.out = append(append(d.out, '='), d.ws...)
		d.ws = d.ws[:0]
		d.state = qpNormal
	case qpEqCR:
		d.ws = d.ws[:0]
		d.state = qpNormal
		if c == '\n' {
			return // soft line break
		}
	}
	// qpNormal
	switch c {
	case ' ', '\t':
		if len(d.ws) >= 1024 {
			d.out = append(d.out, d.ws...)
			d.ws = d.ws[:0]
		}
		d.ws = append(d.ws, c)
	case '\r':
		d.state = qpCR
	case '\n':
		d.ws = d.ws[:0]
		d.out = append(d.out, '\n')
	case '=':
		d.out = append(d.out, d.ws...)
		d.ws = d.ws[:0]
		d.state = qpEq
	default:
		if len(d.ws) > 0 {
			d.out = append(d.out, d.ws...)
			d.ws = d.ws[:0]
		}
		d.out = append(d.out, c)
	}
}

func (d *qpReader) finish() {
	switch d.state {
	case qpNormal:
		d.out = append(d.out, d.ws...)
	case qpCR:
		d.out = append(append(d.out, d.ws...), '\r')
	case qpEq:
		// A final "=" is a soft line break whose line end became part of
		// the next delimiter: nothing.
	case qpEqHex:
		d.out = append(d.out, '=', d.hexc)
	}
	d.ws = d.ws[:0]
	d.state = qpNormal
}

// utf8Sanitizer passes valid UTF-8 through, maps each byte that is not part
// of a valid sequence to its windows-1252 character (Latin-1 for the five
// undefined codes), and drops NUL bytes (they cannot appear in a WBXML
// inline string). Every Read returns whole characters.
type utf8Sanitizer struct {
	src   io.Reader
	in    [4096 + utf8.UTFMax]byte
	carry int // bytes of an incomplete sequence kept at in[0:carry]
	out   []byte
	pend  []byte
	eof   bool
}

func (s *utf8Sanitizer) Read(p []byte) (int, error) {
	for len(s.pend) == 0 {
		if s.eof {
			return 0, io.EOF
		}
		n, err := s.src.Read(s.in[s.carry : s.carry+4096])
		buf := s.in[:s.carry+n]
		if err != nil {
			s.eof = true
		}
		end := len(buf)
		if !s.eof {
			// Keep an incomplete trailing sequence for the next round.
			for k := 1; k < utf8.UTFMax && k <= len(buf); k++ {
				c := buf[len(buf)-k]
				if c < utf8.RuneSelf {
					break
				}
				if utf8.RuneStart(c) {
					if !utf8.FullRune(buf[len(buf)-k:]) {
						end = len(buf) - k
					}
					break
				}
			}
		}
		s.out = appendSanitized(s.out[:0], buf[:end])
		s.carry = copy(s.in[:], buf[end:])
		s.pend = s.out
	}
	n := min(len(p), len(s.pend))
	if n < len(s.pend) {
		for n > 0 && !utf8.RuneStart(s.pend[n]) {
			n--
		}
	}
	n = copy(p, s.pend[:n])
	s.pend = s.pend[n:]
	return n, nil
}

// cp1252 maps bytes 0x80-0x9F to windows-1252 characters (0 = undefined:
// Latin-1, i.e. the C1 control of the same value).
var cp1252 = [32]rune{
	0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
	0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017D, 0,
	0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
	0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178,
}

// appendSanitized appends b to dst as valid UTF-8 without NUL bytes (see
// utf8Sanitizer).
func appendSanitized(dst, b []byte) []byte {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c != 0 {
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			r = rune(c)
			if c >= 0x80 && c < 0xA0 && cp1252[c-0x80] != 0 {
				r = cp1252[c-0x80]
			}
			dst = utf8.AppendRune(dst, r)
			i++
			continue
		}
		dst = append(dst, b[i:i+size]...)
		i += size
	}
	return dst
}

// sanitizeString returns s as valid UTF-8 (see appendSanitized) with NUL
// removed and CR, LF and TAB turned into spaces: the form of a header
// value in an element.
func sanitizeString(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 || c == '\r' || c == '\n' || c == '\t' {
			clean = false
			break
		}
	}
	if clean && utf8.ValidString(s) {
		return s
	}
	b := appendSanitized(make([]byte, 0, len(s)+8), []byte(s))
	for i, c := range b {
		if c == '\r' || c == '\n' || c == '\t' {
			b[i] = ' '
		}
	}
	return string(b)
}
