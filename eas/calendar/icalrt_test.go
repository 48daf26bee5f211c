package calendar

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/easd/easd/eas/tz"
	"github.com/easd/easd/wbxml"
	"github.com/emersion/go-ical"
	"github.com/google/go-cmp/cmp"
)

// foreignICS are events as CalDAV clients and servers write them, with
// what EAS cannot express: X- properties and parameters, DURATION, RDATE,
// rules EAS has no pattern for, alarms relative to the end or by e-mail,
// Windows TZIDs, floating times, HTML descriptions, attendee parameters.
var foreignICS = []string{
	// Apple: structured location, alarm UID, attendee scheduling status.
	`BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Apple Inc.//macOS 14.0//EN
CALSCALE:GREGORIAN
BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
DTSTART:19810329T020000
TZNAME:CEST
TZOFFSETTO:+0200
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
DTSTART:19961027T030000
TZNAME:CET
TZOFFSETTO:+0100
END:STANDARD
END:VTIMEZONE
BEGIN:VEVENT
CREATED:20260101T100000Z
DTEND;TZID=Europe/Berlin:20260310T110000
DTSTAMP:20260102T100000Z
DTSTART;TZID=Europe/Berlin:20260310T100000
LAST-MODIFIED:20260102T100000Z
LOCATION:Alexanderplatz\nBerlin
SEQUENCE:3
SUMMARY:Planning
UID:2B1C3D4E-1111-2222-3333-444455556666
X-APPLE-STRUCTURED-LOCATION;VALUE=URI;X-ADDRESS=Alexanderplatz\, Berlin;X-APPLE-RADIUS=70;X-TITLE=Alexanderplatz:geo:52.521918,13.413215
GEO:52.521918;13.413215
ORGANIZER;CN=Jane Doe;SCHEDULE-STATUS=1.2:mailto:jane@example.org
ATTENDEE;CN=Jane Doe;CUTYPE=INDIVIDUAL;PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:jane@example.org
ATTENDEE;CN="Doe, John";CUTYPE=INDIVIDUAL;EMAIL=john@example.org;PARTSTAT=DELEGATED;DELEGATED-TO="mailto:x@example.org";SCHEDULE-STATUS=2.0:mailto:john@example.org
ATTENDEE;CUTYPE=ROOM;X-NUM-GUESTS=0;PARTSTAT=NEEDS-ACTION:mailto:room1@example.org
TRANSP:OPAQUE
BEGIN:VALARM
X-WR-ALARMUID:0A1B2C3D
UID:0A1B2C3D
TRIGGER:-PT15M
ATTACH;VALUE=URI:Chord
ACTION:AUDIO
X-APPLE-DEFAULT-ALARM:TRUE
END:VALARM
BEGIN:VALARM
ACTION:EMAIL
TRIGGER;RELATED=END:PT0S
DESCRIPTION:done
SUMMARY:done
ATTENDEE:mailto:jane@example.org
END:VALARM
END:VEVENT
END:VCALENDAR
`,
	// Google: UTC times, a daily rule with an EXDATE list, an override,
	// HTML-ish description, conference data.
	`BEGIN:VCALENDAR
PRODID:-//Google Inc//Google Calendar 70.9054//EN
VERSION:2.0
BEGIN:VEVENT
DTSTART:20260105T080000Z
DTEND:20260105T083000Z
RRULE:FREQ=DAILY;COUNT=20
EXDATE:20260107T080000Z,20260108T080000Z
DTSTAMP:20260101T000000Z
UID:abc123@google.com
CREATED:20251201T000000Z
DESCRIPTION:Join: https://meet.example.com/abc-defg-hij\n\nAgenda;\, notes
LAST-MODIFIED:20251202T000000Z
STATUS:CONFIRMED
SUMMARY:Standup
TRANSP:OPAQUE
X-GOOGLE-CONFERENCE:https://meet.example.com/abc-defg-hij
CONFERENCE;VALUE=URI;FEATURE=VIDEO;LABEL=Meet:https://meet.example.com/abc-defg-hij
END:VEVENT
BEGIN:VEVENT
DTSTART:20260112T090000Z
DTEND:20260112T093000Z
DTSTAMP:20260101T000000Z
UID:abc123@google.com
RECURRENCE-ID:20260112T080000Z
SUMMARY:Standup (late)
SEQUENCE:1
STATUS:CONFIRMED
X-GOOGLE-OVERRIDE:1
END:VEVENT
END:VCALENDAR
`,
	// Thunderbird: Mozilla TZID prefix, X-MOZ properties, DURATION, rule EAS
	// cannot express, alarm acknowledged.
	`BEGIN:VCALENDAR
PRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN
VERSION:2.0
BEGIN:VTIMEZONE
TZID:/mozilla.org/20050126_1/America/New_York
BEGIN:STANDARD
DTSTART:19701101T020000
RRULE:FREQ=YEARLY;BYDAY=1SU;BYMONTH=11
TZOFFSETFROM:-0400
TZOFFSETTO:-0500
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700308T020000
RRULE:FREQ=YEARLY;BYDAY=2SU;BYMONTH=3
TZOFFSETFROM:-0500
TZOFFSETTO:-0400
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
CREATED:20260101T000000Z
LAST-MODIFIED:20260101T000000Z
DTSTAMP:20260101T000000Z
UID:moz-1
SUMMARY:Weekly review (odd weeks)
RRULE:FREQ=YEARLY;BYWEEKNO=1,3,5,7;BYDAY=MO
DTSTART;TZID=/mozilla.org/20050126_1/America/New_York:20260105T140000
DURATION:PT1H30M
X-MOZ-GENERATION:4
X-MOZ-LASTACK:20260105T185000Z
CLASS:X-SECRET
CATEGORIES:Business
CATEGORIES:Review,Q1
BEGIN:VALARM
ACTION:DISPLAY
TRIGGER;VALUE=DURATION:-PT10M
DESCRIPTION:Default Mozilla Description
END:VALARM
END:VEVENT
END:VCALENDAR
`,
	// Outlook export: Windows TZID with its VTIMEZONE, HTML body,
	// busy status, all-day event in another entry below.
	`BEGIN:VCALENDAR
PRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN
VERSION:2.0
METHOD:PUBLISH
X-MS-OLK-FORCEINSPECTOROPEN:TRUE
BEGIN:VTIMEZONE
TZID:W. Europe Standard Time
BEGIN:STANDARD
DTSTART:16011028T030000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010325T020000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
CLASS:PUBLIC
CREATED:20260101T000000Z
DESCRIPTION:Quarterly plan\n
DTEND;TZID="W. Europe Standard Time":20260402T170000
DTSTAMP:20260101T000000Z
DTSTART;TZID="W. Europe Standard Time":20260402T160000
LAST-MODIFIED:20260101T000000Z
LOCATION:Room 4
PRIORITY:5
SEQUENCE:0
SUMMARY;LANGUAGE=de-de:Quartalsplanung
TRANSP:OPAQUE
UID:040000008200E00074C5B7101A82E00800000000B0C0A4D0F1D1D901000000000000000010000000AB
X-ALT-DESC;FMTTYPE=text/html:<html><body><p><b>Quarterly</b> plan</p></body></html>
X-MICROSOFT-CDO-BUSYSTATUS:OOF
X-MICROSOFT-CDO-IMPORTANCE:1
X-MICROSOFT-DISALLOW-COUNTER:FALSE
X-MS-OLK-AUTOFILLLOCATION:FALSE
RRULE:FREQ=MONTHLY;INTERVAL=3;BYDAY=1TH;UNTIL=20271231T150000Z
END:VEVENT
END:VCALENDAR
`,
	// All-day with DURATION, floating timed override, RDATE, unknown
	// component inside, X- parameter on SUMMARY.
	`BEGIN:VCALENDAR
PRODID:-//Example Corp//Planner//EN
VERSION:2.0
X-WR-CALNAME:Family
BEGIN:VEVENT
UID:birthday-1
DTSTAMP:20260101T000000Z
DTSTART;VALUE=DATE:19800229
DURATION:P1D
RRULE:FREQ=YEARLY
RDATE;VALUE=DATE:19800301
SUMMARY;X-PRIVATE=1:Birthday
BEGIN:X-CUSTOM
X-KEY:value
END:X-CUSTOM
END:VEVENT
END:VCALENDAR
`,
	`BEGIN:VCALENDAR
PRODID:-//Example Corp//Planner//EN
VERSION:2.0
BEGIN:VEVENT
UID:floating-1
DTSTAMP:20260101T000000Z
DTSTART:20260601T090000
DTEND:20260601T100000
SUMMARY:Floating
STATUS:TENTATIVE
ATTENDEE;RSVP=TRUE;PARTSTAT=TENTATIVE;ROLE=OPT-PARTICIPANT:mailto:MixedCase@Example.org
ORGANIZER:mailto:boss@example.org
RELATED-TO;RELTYPE=PARENT:parent-uid
URL:https://example.org/e/1
ATTACH;FMTTYPE=application/pdf:https://example.org/a.pdf
END:VEVENT
END:VCALENDAR
`,
}

// injectForeign adds to a stored event what another client could write:
// X- properties, parameters, an e-mail alarm, a related-to link.
func injectForeign(t *testing.T, stored []byte, r *rand.Rand) []byte {
	t.Helper()
	cal, err := decodeCalendar(stored)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range cal.Children {
		if ev.Name != ical.CompEvent {
			continue
		}
		setRaw(ev, "X-FOREIGN-"+fmt.Sprint(r.Intn(3)), "kept; really, "+fmt.Sprint(r.Intn(100)))
		setRaw(ev, ical.PropSequence, fmt.Sprint(r.Intn(5)))
		if atts := ev.Props[ical.PropAttendee]; len(atts) > 0 {
			atts[0].Params.Set("SCHEDULE-STATUS", "1.1")
			atts[0].Params.Set("X-NUM-GUESTS", "2")
		}
		if p := ev.Props.Get(ical.PropSummary); p != nil {
			p.Params.Set(ical.ParamLanguage, "en")
		}
		a := ical.NewComponent(ical.CompAlarm)
		setRaw(a, ical.PropAction, "EMAIL")
		setRaw(a, ical.PropTrigger, "-P1D")
		setText(a, ical.PropSummary, "tomorrow")
		ev.Children = append(ev.Children, a)
	}
	return encodeCalendar(cal)
}

// TestICalRoundTrip: iCalendar -> Render -> Apply keeps the iCalendar as it
// was (only LAST-MODIFIED moves), for stored events with foreign data
// injected and for events as CalDAV clients write them, in every version.
func TestICalRoundTrip(t *testing.T) {
	var corpus [][]byte
	for _, s := range foreignICS {
		corpus = append(corpus, []byte(strings.ReplaceAll(s, "\n", "\r\n")))
	}
	r := rand.New(rand.NewSource(2))
	for i := range propertyCases / 5 {
		v := versions[i%len(versions)]
		g := genEvent(r, v, i)
		stored, _, err := Codec{}.Apply(nil, g.app, testOptions(v, g.uid))
		if err != nil {
			t.Fatal(err)
		}
		corpus = append(corpus, injectForeign(t, stored, r))
	}
	for i, stored := range corpus {
		for _, v := range versions {
			for _, prefs := range []bool{false, true} {
				o := testOptions(v, "unused")
				if !prefs {
					o.BodyPrefs = nil // plain text: HTML bodies are converted
				}
				app, err := Codec{}.Render(stored, o)
				if err != nil {
					t.Fatalf("case %d (%s): Render: %v\n%s", i, v, err, stored)
				}
				after, _, err := Codec{}.Apply(stored, app, o)
				if err != nil {
					t.Fatalf("case %d (%s): Apply: %v\n%v", i, v, err, app)
				}
				if diff := cmp.Diff(icalView(t, stored), icalView(t, after)); diff != "" {
					t.Fatalf("case %d (%s): Render -> Apply changed the iCalendar (-before +after):\n%s\nrendered: %v", i, v, diff, app)
				}
			}
		}
	}
}

// icalView is a comparable view of an iCalendar object: each component
// (by kind, UID and RECURRENCE-ID) as sorted property lines, nested
// components inline; LAST-MODIFIED left out.
func icalView(t *testing.T, b []byte) map[string][]string {
	t.Helper()
	cal, err := decodeCalendar(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	out := map[string][]string{}
	var lines func(prefix string, c *ical.Component) []string
	lines = func(prefix string, c *ical.Component) []string {
		var ls []string
		for name, props := range c.Props {
			if name == ical.PropLastModified {
				continue
			}
			for _, p := range props {
				ls = append(ls, prefix+propLine(&p))
			}
		}
		for i, ch := range c.Children {
			ls = append(ls, lines(fmt.Sprintf("%s%s#%d/", prefix, ch.Name, i), ch)...)
		}
		sort.Strings(ls)
		return ls
	}
	out["VCALENDAR"] = lines("", &ical.Component{Props: cal.Props})
	for _, ch := range cal.Children {
		key := ch.Name + " " + rawValue(ch, ical.PropUID) + " " + rawValue(ch, ical.PropRecurrenceID) + " " + rawValue(ch, ical.PropTimezoneID)
		out[key] = lines("", ch)
	}
	return out
}

// TestEncodeFolding: long lines fold at 75 octets on character boundaries
// and decode to the same values; parameter values survive RFC 6868.
func TestEncodeFolding(t *testing.T) {
	cal := ical.NewCalendar()
	cal.Props.SetText(ical.PropProductID, ProdID)
	cal.Props.SetText(ical.PropVersion, "2.0")
	ev := ical.NewComponent(ical.CompEvent)
	long := strings.Repeat("日本語のテキスト, ", 20) + "end"
	setText(ev, ical.PropSummary, long)
	p := ical.NewProp(ical.PropAttendee)
	p.Value = "mailto:a@example.org"
	p.Params.Set(ical.ParamCommonName, "Say \"hi\"; ^caret^\nnext")
	ev.Props.Add(p)
	cal.Children = append(cal.Children, ev)
	b := encodeCalendar(cal)
	for _, l := range bytes.Split(b, []byte("\r\n")) {
		if len(l) > 75 {
			t.Fatalf("line of %d octets: %q", len(l), l)
		}
	}
	back, err := decodeCalendar(b)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := getText(back.Children[0], ical.PropSummary)
	if got != long {
		t.Fatalf("SUMMARY %q", got)
	}
	if cn := back.Children[0].Props.Get(ical.PropAttendee).Params.Get(ical.ParamCommonName); cn != "Say \"hi\"; ^caret^\nnext" {
		t.Fatalf("CN %q", cn)
	}
}

// TestDecodeMalformed: stored text go-ical cannot parse (or panics on) is
// an error, not a crash.
func TestDecodeMalformed(t *testing.T) {
	for _, s := range []string{
		"", "BEGIN:VCALENDAR\r\n", "BEGIN:VEVENT\r\nEND:VEVENT\r\n",
		"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nATTENDEE;CN=\"a\"b:mailto:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
		"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nX;A=b",
		"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n",
	} {
		if _, err := (Codec{}).Render([]byte(s), testOptions("14.1", "x")); err == nil {
			t.Errorf("Render(%q) succeeded", s)
		}
		if _, err := (Codec{}).Index([]byte(s)); err == nil {
			t.Errorf("Index(%q) succeeded", s)
		}
	}
}

// TestRenderOddStored: stored events other software could write render
// without error and encode as WBXML: a NUL byte in a value, no DTEND, a
// week-long DURATION, an unknown TZID (read as UTC), an RRULE rrule-go
// rejects, an override without DTSTART (left out), a bad EXDATE.
func TestRenderOddStored(t *testing.T) {
	ics := "BEGIN:VCALENDAR\r\nPRODID:x\r\nVERSION:2.0\r\n" +
		"BEGIN:VEVENT\r\nUID:odd\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Mars/Olympus_Mons:20260301T100000\r\n" +
		"DURATION:P1W\r\nSUMMARY:nul\x00byte\r\nRRULE:FREQ=FOO\r\nEXDATE:garbage\r\nEND:VEVENT\r\n" +
		"BEGIN:VEVENT\r\nUID:odd\r\nRECURRENCE-ID:20260308T100000Z\r\nSUMMARY:no start\r\nEND:VEVENT\r\n" +
		"END:VCALENDAR\r\n"
	for _, v := range versions {
		out, err := Codec{}.Render([]byte(ics), testOptions(v, "x"))
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if err := wbxml.Encode(io.Discard, out); err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if s, e := out.ChildText(wbxml.CalendarStartTime), out.ChildText(wbxml.CalendarEndTime); s != "20260301T100000Z" || e != "20260308T100000Z" {
			t.Fatalf("%s: %s..%s", v, s, e)
		}
		if out.ChildText(wbxml.CalendarSubject) != "nulbyte" {
			t.Fatalf("%s: Subject %q", v, out.ChildText(wbxml.CalendarSubject))
		}
	}
}

// TestAllDayOddTimes: all-day times that are not midnight in the client's
// zone are moved to the midnight before (start) and after (end), as
// Exchange does; a 16.x client's literal date wins over its blob.
func TestAllDayOddTimes(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	blob := tz.FromLocation(berlin, 2026).Encode()
	for _, c := range []struct {
		v, start, end, want string
	}{
		{"14.1", "20260310T080000Z", "20260310T170000Z", "20260310/20260311"},
		{"14.1", "20260309T230000Z", "20260310T230000Z", "20260310/20260311"},
		{"14.1", "20260310T000000Z", "20260311T000000Z", "20260310/20260311"}, // Z-Push style
		{"16.1", "20260310T000000Z", "20260312T000000Z", "20260310/20260312"},
		{"16.1", "20260309T230000Z", "20260310T230000Z", "20260310/20260311"},
	} {
		app := wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.CalendarTimezone, blob),
			wbxml.T(wbxml.CalendarAllDayEvent, "1"), wbxml.T(wbxml.CalendarStartTime, c.start), wbxml.T(wbxml.CalendarEndTime, c.end))
		stored, _, err := Codec{}.Apply(nil, app, testOptions(c.v, "x"))
		if err != nil {
			t.Fatal(err)
		}
		d := strings.Split(c.want, "/")
		if !strings.Contains(string(stored), "DTSTART;VALUE=DATE:"+d[0]) || !strings.Contains(string(stored), "DTEND;VALUE=DATE:"+d[1]) {
			t.Errorf("%s %s..%s: stored\n%s\nwant %s", c.v, c.start, c.end, stored, c.want)
		}
	}
}
