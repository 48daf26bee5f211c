package email

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/easd/easd/eas/tz"
	"github.com/easd/easd/wbxml"
	"github.com/emersion/go-ical"
)

// This file reads the iTIP message (RFC 5546) that a meeting message
// carries in an inline text/calendar part (iMIP, RFC 6047), and reads and
// writes iCalendar for the calendar side (package eas);
// meetingrequest.go renders it as email:MeetingRequest (MS-ASEMAIL
// 2.2.2.48).

// MaxCalendarBytes bounds the decoded text/calendar part of a meeting
// message that is kept (an invitation is a few kilobytes): a larger one
// still gives the message its class, but no MeetingRequest.
const MaxCalendarBytes = 1 << 20

// Meeting is the iTIP message of a meeting message.
type Meeting struct {
	// Method is the iTIP method, upper case: "REQUEST", "CANCEL" or
	// "REPLY" (RFC 5546 section 1.4).
	Method string
	// Class is the email:MessageClass it gives the message (MS-ASEMAIL
	// 2.2.2.49): IPM.Schedule.Meeting.Request, .Canceled, .Resp.Pos ...
	Class string
	// ICS is the calendar text as UTF-8; nil when the part is larger
	// than MaxCalendarBytes.
	ICS []byte
}

// Meeting returns the meeting a converted message carries (its first
// meeting part), or nil.
func (it *Item) Meeting() *Meeting {
	if it == nil {
		return nil
	}
	return it.meeting
}

// ReadMeeting reads a whole RFC 5322 message from r and returns the
// meeting its first inline text/calendar part carries (as Convert finds
// it), or nil when it has none. It fails only when reading r fails.
func ReadMeeting(r io.Reader) (*Meeting, error) {
	cr := &countingReader{r: r}
	mr := newMIMEReader(cr)
	top := newEntity(mr.readHeader(), "", 0, "")
	c := &converter{}
	mr.walk(top, func(e *entity, body io.Reader) bool {
		disp, _ := e.disposition()
		if disp == "attachment" || e.filename() != "" || e.typ != "text/calendar" {
			return false
		}
		c.calendarPart(e, body)
		return c.invite != nil
	})
	if cr.err != nil {
		return nil, cr.err
	}
	return c.invite, nil
}

// capBuffer keeps the first max bytes written to it and notes whether
// more came.
type capBuffer struct {
	b    []byte
	max  int
	over bool
}

func (c *capBuffer) Write(p []byte) (int, error) {
	if room := c.max - len(c.b); room >= len(p) {
		c.b = append(c.b, p...)
	} else {
		c.over = true
	}
	return len(p), nil
}

// calendarPart handles an inline unnamed text/calendar part: as
// converter.calendar does (class or attachment), and for the first
// meeting part it also keeps the calendar text (at most MaxCalendarBytes
// decoded; the raw part is captured up to twice that, enough for base64).
func (c *converter) calendarPart(e *entity, body io.Reader) *attachment {
	if c.meeting != "" {
		return c.calendar(e, body) // only the first meeting part counts
	}
	raw := &capBuffer{max: 2 * MaxCalendarBytes}
	tee := io.TeeReader(body, raw)
	if a := c.calendar(e, tee); a != nil {
		return a
	}
	_, _ = io.Copy(io.Discard, tee)
	m := &Meeting{Class: c.meeting, Method: methodOf(c.meeting)}
	if !raw.over {
		dec := textDecoder(e.params["charset"], transferDecoder(e.h.Get("Content-Transfer-Encoding"), bytes.NewReader(raw.b)))
		if b, err := io.ReadAll(io.LimitReader(dec, MaxCalendarBytes+1)); err == nil && len(b) <= MaxCalendarBytes {
			m.ICS = b
		}
	}
	c.invite = m
	return nil
}

// methodOf is the iTIP method of a meeting message class.
func methodOf(class string) string {
	switch {
	case strings.HasSuffix(class, ".Request"):
		return "REQUEST"
	case strings.HasSuffix(class, ".Canceled"):
		return "CANCEL"
	case strings.Contains(class, ".Resp."):
		return "REPLY"
	}
	return ""
}

// meetingNode returns email:MeetingRequest for the message's meeting, or
// nil: only a REQUEST or CANCEL has one (MS-ASEMAIL 2.2.2.48: the
// recipient is an attendee), and only when its calendar reads. stamp
// stands in for a missing DTSTAMP.
func (c *converter) meetingNode(stamp time.Time) *wbxml.Node {
	m := c.invite
	if m == nil || m.ICS == nil || (m.Method != "REQUEST" && m.Method != "CANCEL") {
		return nil
	}
	n, err := meetingRequest(m.ICS, m.Method, c.o.Version, stamp)
	if err != nil {
		return nil
	}
	return n
}

// Limits of what ParseCalendar accepts; past them a line is dropped or
// the calendar refused (go-ical copies parameter values byte by byte and
// nests components by recursion).
const (
	maxParamSection = 1 << 10
	maxNesting      = 8
)

// ParseCalendar parses iCalendar text (RFC 5545) leniently: the first
// VCALENDAR in b, made valid UTF-8, without lines that are not content
// lines or whose parameters exceed a kilobyte. Parameter values are
// kept as written (no RFC 6868 decoding). Callers bound len(b).
func ParseCalendar(b []byte) (cal *ical.Calendar, err error) {
	clean, err := cleanCalendar(appendSanitized(nil, b))
	if err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil { // go-ical panics on some malformed input
			cal, err = nil, fmt.Errorf("email: malformed iCalendar: %v", r)
		}
	}()
	return ical.NewDecoder(bytes.NewReader(clean)).Decode()
}

// cleanCalendar unfolds b (RFC 5545 section 3.1) and keeps the content
// lines of its first VCALENDAR that go-ical reads, in linear time: lines
// it would refuse are dropped, unbalanced END lines repaired.
func cleanCalendar(b []byte) ([]byte, error) {
	var out bytes.Buffer
	var stack []string // open components
	text := strings.NewReplacer("\r\n ", "", "\r\n\t", "", "\n ", "", "\n\t", "").Replace(string(b))
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimRight(line, "\r")
		name, value, ok := contentLine(line)
		if !ok {
			continue
		}
		switch {
		case name == "BEGIN":
			value = strings.ToUpper(strings.TrimSpace(value))
			if len(stack) == 0 && value != "VCALENDAR" {
				continue
			}
			if len(stack) >= maxNesting {
				return nil, errors.New("email: iCalendar nested too deep")
			}
			stack = append(stack, value)
			out.WriteString("BEGIN:" + value + "\r\n")
			continue
		case len(stack) == 0:
			continue
		case name == "END":
			value = strings.ToUpper(strings.TrimSpace(value))
			i := len(stack) - 1
			for i >= 0 && stack[i] != value {
				i--
			}
			if i < 0 {
				continue // ends nothing open
			}
			for len(stack) > i {
				out.WriteString("END:" + stack[len(stack)-1] + "\r\n")
				stack = stack[:len(stack)-1]
			}
			if len(stack) == 0 {
				return out.Bytes(), nil
			}
			continue
		}
		out.WriteString(line)
		out.WriteString("\r\n")
	}
	if out.Len() == 0 {
		return nil, errors.New("email: no VCALENDAR")
	}
	for len(stack) > 0 {
		out.WriteString("END:" + stack[len(stack)-1] + "\r\n")
		stack = stack[:len(stack)-1]
	}
	return out.Bytes(), nil
}

// contentLine checks a content line as go-ical parses it (name up to ';'
// or ':', parameters NAME=value[,value] with quoted or unquoted values,
// then ':' and the value) with at most maxParamSection bytes before the
// value, and returns its upper-case name and its value.
func contentLine(line string) (name, value string, ok bool) {
	i := strings.IndexAny(line, ";:")
	if i <= 0 || i > maxParamSection {
		return "", "", false
	}
	name = strings.ToUpper(line[:i])
	for line[i] == ';' {
		i++
		eq := strings.IndexByte(line[i:], '=')
		if eq <= 0 {
			return "", "", false
		}
		i += eq + 1
		for {
			if i < len(line) && line[i] == '"' {
				q := strings.IndexByte(line[i+1:], '"')
				if q < 0 {
					return "", "", false
				}
				i += q + 2
			} else {
				j := strings.IndexAny(line[i:], "\";,:")
				if j < 0 || line[i+j] == '"' {
					return "", "", false
				}
				i += j
			}
			if i >= len(line) || i > maxParamSection {
				return "", "", false
			}
			if line[i] != ',' {
				break
			}
			i++
		}
		if line[i] != ';' && line[i] != ':' {
			return "", "", false
		}
	}
	return name, line[i+1:], true
}

// EncodeCalendar writes cal as iCalendar text (RFC 5545 3.1): CRLF lines
// folded at 75 octets on character boundaries, properties by name (the
// identifying ones first), parameter values quoted when they hold ';',
// ':' or ','. Values are written as they are, raw as ParseCalendar keeps
// them, so that parsing and encoding loses nothing.
func EncodeCalendar(cal *ical.Calendar) []byte {
	var b bytes.Buffer
	writeComponent(&b, cal.Component)
	return b.Bytes()
}

func writeComponent(b *bytes.Buffer, c *ical.Component) {
	writeLine(b, "BEGIN:"+c.Name)
	names := make([]string, 0, len(c.Props))
	for name := range c.Props {
		names = append(names, name)
	}
	slices.SortFunc(names, func(x, y string) int {
		rx, ry := slices.Index(firstProps, x), slices.Index(firstProps, y)
		if rx < 0 {
			rx = len(firstProps)
		}
		if ry < 0 {
			ry = len(firstProps)
		}
		if rx != ry {
			return rx - ry
		}
		return strings.Compare(x, y)
	})
	for _, name := range names {
		for _, p := range c.Props[name] {
			var line strings.Builder
			line.WriteString(name)
			keys := make([]string, 0, len(p.Params))
			for k := range p.Params {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				line.WriteString(";" + k + "=")
				for i, v := range p.Params[k] {
					if i > 0 {
						line.WriteByte(',')
					}
					v = strings.Map(func(r rune) rune {
						if r == '"' || r < 0x20 && r != '\t' || r == 0x7f {
							return -1
						}
						return r
					}, v)
					if strings.ContainsAny(v, ";:,") {
						v = `"` + v + `"`
					}
					line.WriteString(v)
				}
			}
			line.WriteString(":" + strings.NewReplacer("\r", "", "\n", "").Replace(p.Value))
			writeLine(b, line.String())
		}
	}
	for _, ch := range c.Children {
		writeComponent(b, ch)
	}
	writeLine(b, "END:"+c.Name)
}

// firstProps lead their component (identity first, as RFC 5545 examples).
var firstProps = []string{ical.PropProductID, ical.PropVersion, ical.PropTimezoneID, ical.PropUID, ical.PropRecurrenceID,
	ical.PropDateTimeStamp, ical.PropSequence, ical.PropDateTimeStart, ical.PropDateTimeEnd}

// writeLine writes one content line folded at 75 octets.
func writeLine(b *bytes.Buffer, line string) {
	limit := 75
	for len(line) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		b.WriteString(line[:cut])
		b.WriteString("\r\n ")
		line = line[cut:]
		limit = 74
	}
	b.WriteString(line)
	b.WriteString("\r\n")
}

// Date-time forms of iCalendar (RFC 5545 3.3.4, 3.3.5).
const (
	icalUTC   = "20060102T150405Z"
	icalLocal = "20060102T150405"
	icalDate  = "20060102"
)

// when is a DATE or DATE-TIME value read in its zone.
type when struct {
	t    time.Time      // the instant
	wall time.Time      // the wall clock in its zone (as UTC fields)
	date bool           // a DATE: t is midnight UTC of that day
	loc  *time.Location // the zone; UTC for dates, UTC and floating times
	zone tz.TimeZone    // the zone as TIME_ZONE_INFORMATION for wall's year
}

// EventTime reads a DATE or DATE-TIME property (DTSTART, RECURRENCE-ID
// ...) of a component of cal: the instant, and whether it is a DATE (then
// midnight UTC of that day). A TZID is resolved as an IANA zone, else by
// cal's VTIMEZONE of that TZID, else as a Windows zone id (CLDR); an
// unknown TZID and a floating time read as UTC.
func EventTime(cal *ical.Calendar, p *ical.Prop) (time.Time, bool, error) {
	w, err := readWhen(cal, p)
	return w.t, w.date, err
}

func readWhen(cal *ical.Calendar, p *ical.Prop) (when, error) {
	if p == nil {
		return when{}, errors.New("email: no date-time")
	}
	v := strings.TrimSpace(p.Value)
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i] // a list (EXDATE, RDATE): its first value
	}
	utc := tz.UTC()
	if t, err := time.Parse(icalDate, v); err == nil && (len(v) == len(icalDate) || strings.EqualFold(p.Params.Get(ical.ParamValue), "DATE")) {
		return when{t: t, wall: t, date: true, loc: time.UTC, zone: utc}, nil
	}
	if t, err := time.Parse(icalUTC, v); err == nil {
		return when{t: t, wall: t, loc: time.UTC, zone: utc}, nil
	}
	wall, err := time.Parse(icalLocal, v)
	if err != nil {
		return when{}, fmt.Errorf("email: %s: not a date-time: %q", p.Name, v)
	}
	tzid := p.Params.Get(ical.ParamTimezoneID)
	if tzid == "" {
		return when{t: wall, wall: wall, loc: time.UTC, zone: utc}, nil
	}
	loc, z := resolveZone(cal, tzid, wall.Year())
	t := time.Date(wall.Year(), wall.Month(), wall.Day(), wall.Hour(), wall.Minute(), wall.Second(), 0, loc).UTC()
	return when{t: t, wall: wall, loc: loc, zone: z}, nil
}

// resolveZone finds the zone of a TZID for year: an IANA name (also at
// the end of an Olson path "/mozilla.org/.../Europe/Berlin"), else the
// calendar's VTIMEZONE of that id (read as the blob of that year, or the
// IANA zone of its Windows id when the rules agree), else a Windows id;
// UTC when none fits.
func resolveZone(cal *ical.Calendar, tzid string, year int) (*time.Location, tz.TimeZone) {
	tzid = strings.TrimSpace(tzid)
	load := func(name string) (*time.Location, bool) {
		if name == "" || name == "Local" {
			return nil, false
		}
		loc, err := time.LoadLocation(name)
		return loc, err == nil
	}
	if loc, ok := load(tzid); ok {
		return loc, tz.FromLocation(loc, year)
	}
	parts := strings.Split(tzid, "/")
	for k := 3; k >= 2; k-- {
		if len(parts) > k {
			if loc, ok := load(strings.Join(parts[len(parts)-k:], "/")); ok {
				return loc, tz.FromLocation(loc, year)
			}
		}
	}
	for _, ch := range cal.Children {
		if ch.Name != ical.CompTimezone || ch.Props.Get(ical.PropTimezoneID) == nil || strings.TrimSpace(ch.Props.Get(ical.PropTimezoneID).Value) != tzid {
			continue
		}
		b, err := tz.FromVTimezone(ch, year)
		if err != nil {
			break
		}
		if iana, ok := tz.IANAName(tzid); ok {
			if loc, ok := load(iana); ok && b.EquivalentTo(loc, year) {
				return loc, tz.FromLocation(loc, year)
			}
		}
		return b.Location(tzid), b
	}
	if iana, ok := tz.IANAName(tzid); ok {
		if loc, ok := load(iana); ok {
			return loc, tz.FromLocation(loc, year)
		}
	}
	return time.UTC, tz.UTC()
}

// MainEvent returns the VEVENT of cal that a meeting message is about:
// the one without RECURRENCE-ID (the master), else the first; nil when
// cal has none.
func MainEvent(cal *ical.Calendar) *ical.Component {
	var first *ical.Component
	for _, ch := range cal.Children {
		if ch.Name != ical.CompEvent {
			continue
		}
		if ch.Props.Get(ical.PropRecurrenceID) == nil {
			return ch
		}
		if first == nil {
			first = ch
		}
	}
	return first
}

// propText is the unescaped TEXT value of c's first property name, as
// valid UTF-8 without line breaks.
func propText(c *ical.Component, name string) string {
	p := c.Props.Get(name)
	if p == nil {
		return ""
	}
	s, err := p.Text()
	if err != nil {
		s = p.Value
	}
	return strings.TrimSpace(sanitizeString(s))
}

// rawProp is the trimmed raw value of c's first property name.
func rawProp(c *ical.Component, name string) string {
	if p := c.Props.Get(name); p != nil {
		return strings.TrimSpace(p.Value)
	}
	return ""
}

// Address returns the e-mail address of a CAL-ADDRESS value
// ("mailto:a@b" -> "a@b").
func Address(v string) string {
	v = strings.TrimSpace(v)
	if len(v) >= 7 && strings.EqualFold(v[:7], "mailto:") {
		v = v[7:]
	}
	return strings.TrimSpace(v)
}
