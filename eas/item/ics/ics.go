// Package ics holds the go-ical helpers that eas/tasks (VTODO) and
// eas/notes (VJOURNAL) share: decoding stored iCalendar text safely
// (size and nesting bounds, go-ical's panics made errors), encoding with
// line folding after repairing what go-ical's encoder rejects, TEXT
// values, CATEGORIES, the DESCRIPTION/X-ALT-DESC body, and the EAS and
// iCalendar date-time forms. The TEXT escaping and line folding are those
// of vCard too (RFC 6350 3.2, 3.4), which eas/contacts uses.
package ics

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/easd/easd/eas/item"
	"github.com/emersion/go-ical"
)

// MaxStored bounds the size of a stored iCalendar object parsed here.
const MaxStored = 16 << 20

// maxNesting bounds the component nesting of stored text (VCALENDAR >
// VTODO > VALARM is 3).
const maxNesting = 16

// ErrMalformed marks stored text that is not an iCalendar object.
var ErrMalformed = errors.New("malformed iCalendar")

// Decode parses stored iCalendar text with go-ical. Its decoder
// recurses once per nested BEGIN and panics on some malformed parameter
// syntax (a quoted value ending the line), so nesting is checked first and
// a panic becomes an error.
func Decode(b []byte) (cal *ical.Calendar, err error) {
	if len(b) > MaxStored {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	if err := checkNesting(b); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			cal, err = nil, fmt.Errorf("%w: %v", ErrMalformed, r)
		}
	}()
	cal, err = ical.NewDecoder(bytes.NewReader(b)).Decode()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return cal, nil
}

// checkNesting rejects text whose BEGIN/END nesting exceeds maxNesting,
// looking at unfolded lines.
func checkNesting(b []byte) error {
	depth := 0
	var head []byte // start of the current logical line
	flush := func() error {
		switch {
		case len(head) >= 6 && bytes.EqualFold(head[:6], []byte("BEGIN:")):
			if depth++; depth > maxNesting {
				return fmt.Errorf("%w: components nested deeper than %d", ErrMalformed, maxNesting)
			}
		case len(head) >= 4 && bytes.EqualFold(head[:4], []byte("END:")):
			depth--
		}
		head = head[:0]
		return nil
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		l := b
		if i >= 0 {
			l, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		l = bytes.TrimSuffix(l, []byte("\r"))
		if len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
			l = l[1:]
		} else if err := flush(); err != nil {
			return err
		}
		if n := 6 - len(head); n > 0 {
			head = append(head, l[:min(n, len(l))]...)
		}
	}
	return flush()
}

// Encode writes cal with go-ical and folds its lines at 75
// octets (RFC 5545 section 3.1), which go-ical does not do.
func Encode(cal *ical.Calendar) ([]byte, error) {
	repair(cal.Component)
	var buf bytes.Buffer
	if err := ical.NewEncoder(&buf).Encode(cal); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Grow(buf.Len() + buf.Len()/64)
	for _, l := range strings.SplitAfter(buf.String(), "\r\n") {
		l = strings.TrimSuffix(l, "\r\n")
		if l == "" {
			continue
		}
		WriteFolded(&out, l)
	}
	return out.Bytes(), nil
}

// WriteFolded writes one content line l folded at 75 octets without
// splitting a UTF-8 sequence (RFC 5545 3.1, RFC 6350 3.2), then CRLF.
func WriteFolded(b *bytes.Buffer, l string) {
	limit := 75
	for len(l) > limit {
		cut := limit
		for cut > 1 && !utf8.RuneStart(l[cut]) {
			cut--
		}
		b.WriteString(l[:cut])
		b.WriteString("\r\n ")
		l = l[cut:]
		limit = 74
	}
	b.WriteString(l)
	b.WriteString("\r\n")
}

// atMostOnce lists, per component, the properties RFC 5545 (3.6.1, 3.6.2,
// 3.6.3, 3.6) allows once, which go-ical's encoder enforces.
var atMostOnce = map[string]string{
	ical.CompCalendar: " PRODID VERSION CALSCALE METHOD UID LAST-MODIFIED URL REFRESH-INTERVAL SOURCE COLOR ",
	ical.CompToDo: " DTSTAMP UID CLASS COMPLETED CREATED DESCRIPTION DTSTART GEO LAST-MODIFIED LOCATION ORGANIZER " +
		"PERCENT-COMPLETE PRIORITY RECURRENCE-ID SEQUENCE STATUS SUMMARY URL DUE DURATION COLOR ",
	ical.CompJournal: " DTSTAMP UID CLASS CREATED DTSTART LAST-MODIFIED ORGANIZER RECURRENCE-ID SEQUENCE STATUS SUMMARY URL COLOR ",
	ical.CompEvent: " DTSTAMP UID DTSTART CLASS CREATED DESCRIPTION GEO LAST-MODIFIED LOCATION ORGANIZER PRIORITY " +
		"SEQUENCE STATUS SUMMARY TRANSP URL RECURRENCE-ID DTEND DURATION COLOR ",
}

// repair fixes what go-ical's encoder rejects in objects other clients
// wrote, so that a change to such an object can be stored: a line break
// in a value (escaped), a double quote in a parameter value (made a
// single quote), a repeated property that may occur once (the first is
// kept), a VTODO DURATION beside DUE or without DTSTART (dropped).
func repair(c *ical.Component) {
	for name, ps := range c.Props {
		for i := range ps {
			if strings.ContainsAny(ps[i].Value, "\r\n") {
				ps[i].Value = strings.NewReplacer("\r\n", `\n`, "\n", `\n`, "\r", `\n`).Replace(ps[i].Value)
			}
			for _, vs := range ps[i].Params {
				for j, v := range vs {
					vs[j] = strings.ReplaceAll(v, `"`, "'")
				}
			}
		}
		if len(ps) > 1 && strings.Contains(atMostOnce[c.Name], " "+name+" ") {
			c.Props[name] = ps[:1]
		}
	}
	if c.Name == ical.CompToDo && (c.Props.Get(ical.PropDue) != nil || c.Props.Get(ical.PropDateTimeStart) == nil) {
		c.Props.Del(ical.PropDuration)
	}
	for _, ch := range c.Children {
		repair(ch)
	}
}

// EscapeText escapes a TEXT value (RFC 5545 section 3.3.11, RFC 6350
// section 3.4).
func EscapeText(s string) string {
	if !strings.ContainsAny(s, "\\\n,;") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', ',', ';':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// UnescapeText undoes EscapeText; an unknown escape stands for the
// character after the backslash.
func UnescapeText(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			if s[i] == 'n' || s[i] == 'N' {
				b.WriteByte('\n')
			} else {
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// UnescapeParam undoes RFC 6868's caret encoding of a parameter value
// (^n or ^N newline, ^' double quote, ^^ caret); any other caret stays.
func UnescapeParam(v string) string {
	if !strings.Contains(v, "^") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '^' && i+1 < len(v) {
			switch v[i+1] {
			case 'n', 'N':
				b.WriteByte('\n')
				i++
				continue
			case '\'':
				b.WriteByte('"')
				i++
				continue
			case '^':
				b.WriteByte('^')
				i++
				continue
			}
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// textList parses a TEXT list (CATEGORIES): values split at unescaped
// commas.
func textList(raw string) []string {
	var out []string
	start := 0
	add := func(v string) {
		if v = item.Clean(UnescapeText(v)); v != "" {
			out = append(out, v)
		}
	}
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '\\':
			i++
		case ',':
			add(raw[start:i])
			start = i + 1
		}
	}
	add(raw[start:])
	return out
}

// Categories returns the values of every CATEGORIES property.
func Categories(c *ical.Component) []string {
	var out []string
	for _, p := range c.Props[ical.PropCategories] {
		out = append(out, textList(p.Value)...)
	}
	return out
}

// SetCategories replaces the CATEGORIES properties.
func SetCategories(c *ical.Component, cats []string) {
	c.Props.Del(ical.PropCategories)
	if len(cats) == 0 {
		return
	}
	vs := make([]string, len(cats))
	for i, s := range cats {
		vs[i] = EscapeText(s)
	}
	p := ical.NewProp(ical.PropCategories)
	p.Value = strings.Join(vs, ",")
	c.Props.Set(p)
}

// Text returns the unescaped TEXT value of property name ("" if none).
func Text(c *ical.Component, name string) string {
	if p := c.Props.Get(name); p != nil {
		return item.Clean(UnescapeText(p.Value))
	}
	return ""
}

// SetText sets TEXT property name, or deletes it when s is "".
func SetText(c *ical.Component, name, s string) {
	if s == "" {
		c.Props.Del(name)
		return
	}
	if p := c.Props.Get(name); p != nil {
		p.Value = EscapeText(s)
		return
	}
	p := ical.NewProp(name)
	p.Value = EscapeText(s)
	c.Props.Set(p)
}

// altDescHTML is the X-ALT-DESC;FMTTYPE=text/html property holding the
// HTML form of DESCRIPTION (as Outlook and Thunderbird write it).
func altDescHTML(c *ical.Component) *ical.Prop {
	for i, p := range c.Props["X-ALT-DESC"] {
		if strings.EqualFold(p.Params.Get("FMTTYPE"), "text/html") {
			return &c.Props["X-ALT-DESC"][i]
		}
	}
	return nil
}

// Body reads DESCRIPTION and, while DESCRIPTION is still its text, the
// HTML it came from.
func Body(c *ical.Component) item.Body {
	b := item.Body{Text: Text(c, ical.PropDescription)}
	if p := altDescHTML(c); p != nil {
		if h := item.Clean(UnescapeText(p.Value)); item.HTMLToText(h) == b.Text {
			b.HTML = h
		}
	}
	return b
}

// SetBody stores b as DESCRIPTION and X-ALT-DESC.
func SetBody(c *ical.Component, b item.Body) {
	SetText(c, ical.PropDescription, b.Text)
	var keep []ical.Prop
	for _, p := range c.Props["X-ALT-DESC"] {
		if !strings.EqualFold(p.Params.Get("FMTTYPE"), "text/html") {
			keep = append(keep, p)
		}
	}
	c.Props["X-ALT-DESC"] = keep
	if b.HTML != "" {
		p := ical.NewProp("X-ALT-DESC")
		p.Params.Set("FMTTYPE", "text/html")
		p.Value = EscapeText(b.HTML)
		c.Props.Add(p)
	}
	if len(c.Props["X-ALT-DESC"]) == 0 {
		delete(c.Props, "X-ALT-DESC")
	}
}

// Date-time forms.
const (
	// EASLayout is the MS-ASDTYPE 2.3 dateTime this server sends.
	EASLayout = "2006-01-02T15:04:05.000Z"
	// CompactUTC is the MS-ASDTYPE 2.7.2 compact dateTime, which is
	// also RFC 5545's UTC DATE-TIME.
	CompactUTC = "20060102T150405Z"
	// LocalLayout is an RFC 5545 floating or TZID DATE-TIME.
	LocalLayout = "20060102T150405"
	// DateLayout is an RFC 5545 DATE.
	DateLayout = "20060102"
	// MaxZoneSkew is the largest plausible |local - UTC|.
	MaxZoneSkew = 18 * time.Hour
)

// easLayouts are the dateTime forms accepted from clients.
var easLayouts = []string{
	"2006-01-02T15:04:05.000Z07:00", "2006-01-02T15:04:05Z07:00", "2006-01-02T15:04Z07:00",
	"20060102T150405Z07:00", "20060102T150405Z0700", "2006-01-02", "20060102",
}

// ParseEASTime parses an EAS dateTime (extended or compact) as an
// instant; an offset other than Z is applied.
func ParseEASTime(s string) (time.Time, bool) {
	t, ok := ParseEASTimeKeepZone(s)
	return t.UTC(), ok
}

// ParseEASTimeKeepZone is ParseEASTime keeping the offset the value was
// written with.
func ParseEASTimeKeepZone(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, l := range easLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// PropTime reads a DATE or DATE-TIME property: its wall clock as written
// and the instant. A DATE is midnight; a floating time is taken as UTC; a
// TZID that is not an IANA zone name is taken as UTC.
func PropTime(p *ical.Prop) (wall, utc time.Time, isDate, ok bool) {
	v := strings.TrimSpace(p.Value)
	if strings.EqualFold(p.Params.Get(ical.ParamValue), "DATE") || len(v) == len(DateLayout) {
		t, err := time.Parse(DateLayout, v)
		return t, t, true, err == nil
	}
	if strings.HasSuffix(v, "Z") || strings.HasSuffix(v, "z") {
		t, err := time.Parse(CompactUTC, strings.ToUpper(v))
		return t, t, false, err == nil
	}
	t, err := time.Parse(LocalLayout, v)
	if err != nil {
		return time.Time{}, time.Time{}, false, false
	}
	utc = t
	if tz := strings.TrimPrefix(p.Params.Get(ical.PropTimezoneID), "/"); tz != "" {
		if loc, err := time.LoadLocation(tz); err == nil {
			utc = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, loc).UTC()
		}
	}
	return t, utc, false, true
}

// NewCalendar returns an empty VCALENDAR 2.0 (RFC 5545 3.7.3, 3.7.4).
func NewCalendar() *ical.Calendar {
	cal := ical.NewCalendar()
	cal.Props.SetText(ical.PropVersion, "2.0")
	cal.Props.SetText(ical.PropProductID, "-//easd//EAS//EN")
	return cal
}

// Stamp sets a UTC DATE-TIME property.
func Stamp(c *ical.Component, name string, t time.Time) {
	p := ical.NewProp(name)
	p.Value = t.UTC().Format(CompactUTC)
	c.Props.Set(p)
}

// EnsureCalendarProps adds what go-ical's encoder requires of a stored
// calendar another client wrote without it.
func EnsureCalendarProps(cal *ical.Calendar) {
	if cal.Props.Get(ical.PropVersion) == nil {
		cal.Props.SetText(ical.PropVersion, "2.0")
	}
	if cal.Props.Get(ical.PropProductID) == nil {
		cal.Props.SetText(ical.PropProductID, "-//easd//EAS//EN")
	}
}

// Master returns the first component named name that is not an override
// (no RECURRENCE-ID).
func Master(cal *ical.Calendar, name string) *ical.Component {
	for _, c := range cal.Children {
		if c.Name == name && c.Props.Get(ical.PropRecurrenceID) == nil {
			return c
		}
	}
	return nil
}
