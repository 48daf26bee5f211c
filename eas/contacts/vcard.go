package contacts

import (
	"bytes"
	"errors"
	"sort"
	"strings"

	"github.com/emersion/go-vcard"

	"github.com/easd/easd/eas/item/ics"
)

// The vCard text is parsed here rather than with go-vcard's Decoder and
// Encoder, whose types are reused: go-vcard unescapes values on decoding
// but cannot tell "\;" from a component separator, does not escape ';'
// when encoding (so a LastName "Smith;Jones" would corrupt N), splits
// quoted parameter values on commas, silently drops lines it cannot parse
// and does not fold long lines. Here a property keeps its value exactly as
// written (escaped, RFC 6350 section 3.4) and is unescaped by the code that
// knows its value type; a line that does not parse is kept verbatim.

// maxStored bounds the size of a stored vCard this package parses.
const maxStored = 16 << 20

// errMalformed is returned for stored text that is not one vCard.
var errMalformed = errors.New("contacts: malformed vCard")

// card is one parsed vCard: its content lines in file order, without the
// BEGIN and END lines.
type card struct {
	props []*prop
}

// prop is one content line (RFC 6350 section 3.3).
type prop struct {
	group  string
	name   string       // upper case; "" for a line kept verbatim in raw
	params vcard.Params // upper-case names; values RFC 6868-decoded
	value  string       // the value as written: still escaped
	raw    string       // the unfolded line, when it did not parse
}

// parseCard parses one vCard (2.1, 3.0 or 4.0). Only the framing is
// strict: one BEGIN:VCARD ... END:VCARD, nothing else but blank lines.
func parseCard(b []byte) (*card, error) {
	if len(b) > maxStored {
		return nil, errors.Join(errMalformed, errors.New("vCard too large"))
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	lines := unfold(b)
	c := &card{}
	state := 0 // 0 before BEGIN, 1 inside, 2 after END
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		p := parseLine(l)
		isBegin := p != nil && p.name == "BEGIN" && strings.EqualFold(p.value, "VCARD")
		isEnd := p != nil && p.name == "END" && strings.EqualFold(p.value, "VCARD")
		switch {
		case state == 0 && isBegin:
			state = 1
		case state == 0:
			return nil, errors.Join(errMalformed, errors.New("no BEGIN:VCARD"))
		case state == 1 && isEnd:
			state = 2
		case state == 1 && isBegin:
			return nil, errors.Join(errMalformed, errors.New("nested vCard"))
		case state == 1:
			if p == nil {
				p = &prop{raw: l}
			}
			c.props = append(c.props, p)
		default:
			return nil, errors.Join(errMalformed, errors.New("data after END:VCARD"))
		}
	}
	if state != 2 {
		return nil, errors.Join(errMalformed, errors.New("no END:VCARD"))
	}
	return c, nil
}

// unfold splits b into logical lines (RFC 6350 section 3.2): CRLF or LF
// ends a line, a line starting with a space or tab continues the previous.
func unfold(b []byte) []string {
	var out []string
	var cur strings.Builder
	have := false
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		var l []byte
		if i < 0 {
			l, b = b, nil
		} else {
			l, b = b[:i], b[i+1:]
		}
		l = bytes.TrimSuffix(l, []byte("\r"))
		if have && len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
			cur.Write(l[1:])
			continue
		}
		if have {
			out = append(out, cur.String())
			cur.Reset()
		}
		cur.Write(l)
		have = true
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

func isNameChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// parseLine parses "[group.]name *(;param[=value*(,value)]):value"; nil if
// the line does not have that form. A parameter without "=" (vCard 2.1)
// is a TYPE value.
func parseLine(l string) *prop {
	i := 0
	name := func() string {
		s := i
		for i < len(l) && isNameChar(l[i]) {
			i++
		}
		return l[s:i]
	}
	p := &prop{}
	n := name()
	if n == "" {
		return nil
	}
	if i < len(l) && l[i] == '.' {
		i++
		p.group = n
		if n = name(); n == "" {
			return nil
		}
	}
	p.name = strings.ToUpper(n)
	for i < len(l) && l[i] == ';' {
		i++
		pn := strings.ToUpper(name())
		if pn == "" {
			return nil
		}
		if p.params == nil {
			p.params = vcard.Params{}
		}
		if i >= len(l) || l[i] != '=' {
			p.params.Add(vcard.ParamType, pn)
			continue
		}
		i++
		for {
			var v string
			if i < len(l) && l[i] == '"' {
				end := strings.IndexByte(l[i+1:], '"')
				if end < 0 {
					return nil
				}
				v = l[i+1 : i+1+end]
				i += end + 2
			} else {
				s := i
				for i < len(l) && l[i] != ',' && l[i] != ';' && l[i] != ':' {
					if l[i] == '"' {
						return nil
					}
					i++
				}
				v = l[s:i]
			}
			p.params.Add(pn, ics.UnescapeParam(v))
			if i < len(l) && l[i] == ',' {
				i++
				continue
			}
			break
		}
	}
	if i >= len(l) || l[i] != ':' {
		return nil
	}
	p.value = l[i+1:]
	return p
}

// encodeParam applies RFC 6868 and quotes the value when needed.
func encodeParam(v string) string {
	if strings.ContainsAny(v, "^\"\n\r") {
		v = strings.NewReplacer("^", "^^", "\"", "^'", "\r\n", "^n", "\n", "^n", "\r", "^n").Replace(v)
	}
	if v == "" || strings.ContainsAny(v, ",;: \t") {
		return `"` + v + `"`
	}
	return v
}

// encode writes the card with CRLF line ends, folding lines at 75 octets
// (RFC 6350 section 3.2). VERSION is written first (section 6.7.9).
func (c *card) encode() []byte {
	var b bytes.Buffer
	b.WriteString("BEGIN:VCARD\r\n")
	for _, p := range c.props {
		if p.name == "VERSION" {
			ics.WriteFolded(&b, p.line())
			break
		}
	}
	for _, p := range c.props {
		if p.name != "VERSION" {
			ics.WriteFolded(&b, p.line())
		}
	}
	b.WriteString("END:VCARD\r\n")
	return b.Bytes()
}

// line returns the unfolded content line of p.
func (p *prop) line() string {
	if p.name == "" {
		return p.raw
	}
	var b strings.Builder
	if p.group != "" {
		b.WriteString(p.group)
		b.WriteByte('.')
	}
	b.WriteString(p.name)
	keys := make([]string, 0, len(p.params))
	for k := range p.params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vs := p.params[k]
		if len(vs) == 0 {
			continue
		}
		b.WriteByte(';')
		b.WriteString(k)
		b.WriteByte('=')
		for i, v := range vs {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(encodeParam(v))
		}
	}
	b.WriteByte(':')
	if strings.ContainsAny(p.value, "\r\n") {
		b.WriteString(strings.NewReplacer("\r\n", `\n`, "\n", `\n`, "\r", `\n`).Replace(p.value))
	} else {
		b.WriteString(p.value)
	}
	return b.String()
}

// first returns the first property named name (upper case), or nil.
func (c *card) first(name string) *prop {
	for _, p := range c.props {
		if p.name == name {
			return p
		}
	}
	return nil
}

// remove deletes p from the card.
func (c *card) remove(p *prop) {
	for i, q := range c.props {
		if q == p {
			c.props = append(c.props[:i], c.props[i+1:]...)
			return
		}
	}
}

// add appends p.
func (c *card) add(p *prop) { c.props = append(c.props, p) }

// escapeURI writes a URI-valued property: URIs are not TEXT, so only what
// a content line cannot hold (line breaks) and backslashes are escaped.
func escapeURI(s string) string {
	if !strings.ContainsAny(s, "\\\n") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// unescapeURI undoes escapeURI.
func unescapeURI(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case '\\':
				b.WriteByte('\\')
				i++
				continue
			case 'n', 'N':
				b.WriteByte('\n')
				i++
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// splitRaw splits an escaped value at the separators sep that are not
// escaped.
func splitRaw(s string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// components parses a structured value (N, ADR, ORG): components split at
// ';', each a list split at ','.
func components(raw string) [][]string {
	var out [][]string
	for _, c := range splitRaw(raw, ';') {
		var list []string
		for _, v := range splitRaw(c, ',') {
			list = append(list, ics.UnescapeText(v))
		}
		out = append(out, list)
	}
	return out
}

// component returns component i of a structured value, its list values
// joined with sep.
func component(comps [][]string, i int, sep string) string {
	if i >= len(comps) {
		return ""
	}
	return strings.Join(comps[i], sep)
}

// joinComponents writes a structured value, padded to n components.
func joinComponents(comps [][]string, n int) string {
	for len(comps) < n {
		comps = append(comps, nil)
	}
	parts := make([]string, len(comps))
	for i, list := range comps {
		vs := make([]string, len(list))
		for j, v := range list {
			vs[j] = ics.EscapeText(v)
		}
		parts[i] = strings.Join(vs, ",")
	}
	return strings.Join(parts, ";")
}

// textList parses a TEXT list value (CATEGORIES, NICKNAME).
func textList(raw string) []string {
	var out []string
	for _, v := range splitRaw(raw, ',') {
		if v = ics.UnescapeText(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// hasType reports whether p has TYPE t (case-insensitive; also inside a
// comma-joined TYPE value as vCard 3.0 writes them).
func (p *prop) hasType(t string) bool {
	for _, v := range p.params[vcard.ParamType] {
		for _, x := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(x), t) {
				return true
			}
		}
	}
	return false
}

// param returns the first value of parameter k.
func (p *prop) param(k string) string { return p.params.Get(k) }

// setParam sets parameter k to v, or deletes it when v is "".
func (p *prop) setParam(k, v string) {
	if v == "" {
		delete(p.params, k)
		return
	}
	if p.params == nil {
		p.params = vcard.Params{}
	}
	p.params.Set(k, v)
}
