package calendar

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/easd/easd/eas/item/ics"
	"sort"
	"strings"

	"github.com/emersion/go-ical"
)

// maxStored bounds the stored iCalendar text a codec reads (a calendar
// item is a few kilobytes; a large body still fits).
const maxStored = 8 << 20

// decodeCalendar parses stored iCalendar text. go-ical panics on some
// malformed parameter syntax; that is an error here. Parameter values are
// unescaped as RFC 6868 says (^n, ^', ^^).
func decodeCalendar(b []byte) (cal *ical.Calendar, err error) {
	if len(b) > maxStored {
		return nil, fmt.Errorf("calendar: stored item of %d bytes", len(b))
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	defer func() {
		if r := recover(); r != nil {
			cal, err = nil, fmt.Errorf("calendar: malformed iCalendar: %v", r)
		}
	}()
	cal, err = ical.NewDecoder(bytes.NewReader(b)).Decode()
	if err != nil {
		return nil, fmt.Errorf("calendar: %w", err)
	}
	walk(cal.Component, func(c *ical.Component) {
		for name, props := range c.Props {
			for i := range props {
				for k, vs := range props[i].Params {
					for j, v := range vs {
						vs[j] = ics.UnescapeParam(v)
					}
					props[i].Params[k] = vs
				}
			}
			c.Props[name] = props
		}
	})
	return cal, nil
}

// walk calls fn for c and every component below it.
func walk(c *ical.Component, fn func(*ical.Component)) {
	fn(c)
	for _, ch := range c.Children {
		walk(ch, fn)
	}
}

// escapeParam applies RFC 6868 and quotes the value when it holds ';',
// ':' or ',' (RFC 5545 3.2); control characters are dropped.
func escapeParam(v string) string {
	v = strings.ToValidUTF8(v, "\uFFFD")
	var b strings.Builder
	quote := strings.ContainsAny(v, ";:,")
	if quote {
		b.WriteByte('"')
	}
	for _, r := range v {
		switch {
		case r == '^':
			b.WriteString("^^")
		case r == '"':
			b.WriteString("^'")
		case r == '\n':
			b.WriteString("^n")
		case r < 0x20 && r != '\t', r == 0x7f:
		default:
			b.WriteRune(r)
		}
	}
	if quote {
		b.WriteByte('"')
	}
	return b.String()
}

// propRank puts the identifying properties of a component first when
// encoding; the rest follow by name.
func propRank(name string) int {
	order := [...]string{
		"PRODID", "VERSION", "CALSCALE", "METHOD", "TZID",
		"UID", "RECURRENCE-ID", "DTSTAMP", "CREATED", "LAST-MODIFIED", "SEQUENCE",
		"DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE",
		"SUMMARY", "LOCATION", "DESCRIPTION",
	}
	for i, n := range order {
		if n == name {
			return i
		}
	}
	return len(order)
}

// encodeCalendar writes cal as iCalendar text (RFC 5545 3.1): CRLF lines
// folded at 75 octets on character boundaries, properties in a stable
// order, parameters escaped. Unlike go-ical's encoder it accepts any
// component nesting and any parameter text, so that whatever another
// client stored is written back.
func encodeCalendar(cal *ical.Calendar) []byte {
	var b bytes.Buffer
	encodeComponent(&b, cal.Component)
	return b.Bytes()
}

func encodeComponent(b *bytes.Buffer, c *ical.Component) {
	ics.WriteFolded(b, "BEGIN:"+c.Name)
	names := make([]string, 0, len(c.Props))
	for n := range c.Props {
		names = append(names, n)
	}
	rank := propRank
	sort.Slice(names, func(i, j int) bool {
		ri, rj := rank(names[i]), rank(names[j])
		if ri != rj {
			return ri < rj
		}
		return names[i] < names[j]
	})
	for _, n := range names {
		for _, p := range c.Props[n] {
			ics.WriteFolded(b, propLine(&p))
		}
	}
	for _, ch := range c.Children {
		encodeComponent(b, ch)
	}
	ics.WriteFolded(b, "END:"+c.Name)
}

// propLine renders one property as an unfolded content line.
func propLine(p *ical.Prop) string {
	var b strings.Builder
	b.WriteString(p.Name)
	keys := make([]string, 0, len(p.Params))
	for k := range p.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteString(";" + k + "=")
		for i, v := range p.Params[k] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(escapeParam(v))
		}
	}
	b.WriteByte(':')
	for i := 0; i < len(p.Value); i++ { // bytes as they are, but line breaks
		if c := p.Value[i]; c != '\r' && c != '\n' {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// textEscape escapes a TEXT value: backslash, ';', ',' and newlines
// (CRLF and CR become one newline); other control characters but TAB are
// dropped.
func textEscape(s string) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\r\n", "\n")
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\\', ';', ',':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n', '\r':
			b.WriteString(`\n`)
		default:
			if (r < 0x20 && r != '\t') || r == 0x7f {
				continue
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

// textList splits a multi-valued TEXT value (CATEGORIES) on unescaped
// commas.
func textList(v string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && i+1 < len(v):
			cur.WriteByte(v[i])
			cur.WriteByte(v[i+1])
			i++
		case v[i] == ',':
			out = append(out, ics.UnescapeText(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(v[i])
		}
	}
	return append(out, ics.UnescapeText(cur.String()))
}

// getText returns the unescaped value of c's first property name.
func getText(c *ical.Component, name string) (string, bool) {
	p := c.Props.Get(name)
	if p == nil {
		return "", false
	}
	return ics.UnescapeText(p.Value), true
}

// setText replaces c's properties name by one TEXT property s; "" removes
// them.
func setText(c *ical.Component, name, s string) {
	if s == "" {
		c.Props.Del(name)
		return
	}
	p := ical.NewProp(name)
	p.Value = textEscape(s)
	c.Props.Set(p)
}

// setRaw replaces c's properties name by one with the raw value v.
func setRaw(c *ical.Component, name, v string) {
	p := ical.NewProp(name)
	p.Value = v
	c.Props.Set(p)
}

// rawValue returns the raw value of c's first property name.
func rawValue(c *ical.Component, name string) string {
	if p := c.Props.Get(name); p != nil {
		return strings.TrimSpace(p.Value)
	}
	return ""
}

// errNoEvent is returned for stored iCalendar without a VEVENT.
var errNoEvent = errors.New("calendar: stored iCalendar has no VEVENT")
