package email

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/easd/easd/eas/tz"
	"github.com/easd/easd/wbxml"
	"github.com/google/go-cmp/cmp"
)

// flatten lists the leaves of n as "Page:Tag=value", children of a
// container prefixed with its name.
func flatten(n *wbxml.Node) []string {
	var out []string
	var walk func(prefix string, n *wbxml.Node)
	walk = func(prefix string, n *wbxml.Node) {
		for _, c := range n.Children {
			name := prefix + c.Tag.String()
			if len(c.Children) > 0 {
				walk(name+"/", c)
				continue
			}
			out = append(out, name+"="+c.Text())
		}
	}
	walk("", n)
	return out
}

// ics joins iCalendar lines with CRLF.
func ics(lines ...string) []byte { return []byte(strings.Join(lines, "\r\n") + "\r\n") }

var berlinZone = []string{
	"BEGIN:VTIMEZONE", "TZID:Europe/Berlin",
	"BEGIN:DAYLIGHT", "DTSTART:19810329T020000", "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
	"TZOFFSETFROM:+0100", "TZOFFSETTO:+0200", "END:DAYLIGHT",
	"BEGIN:STANDARD", "DTSTART:19961027T030000", "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
	"TZOFFSETFROM:+0200", "TZOFFSETTO:+0100", "END:STANDARD",
	"END:VTIMEZONE",
}

// weekly is an iOS-style invitation: a weekly series in Europe/Berlin.
func weekly(method string, extra ...string) []byte {
	lines := append([]string{"BEGIN:VCALENDAR", "METHOD:" + method, "PRODID:-//Apple Inc.//iPhone//EN", "VERSION:2.0"}, berlinZone...)
	lines = append(lines,
		"BEGIN:VEVENT",
		"UID:4F1C0E4B-8A3C-4E8E-9D0B-2C1A6E5B7F01",
		"DTSTAMP:20260301T090000Z",
		"DTSTART;TZID=Europe/Berlin:20260310T100000",
		"DTEND;TZID=Europe/Berlin:20260310T110000",
		"RRULE:FREQ=WEEKLY;COUNT=4;BYDAY=TU",
		"SUMMARY:Weekly sync",
		`LOCATION:Room 1\, 2nd floor`,
		"ORGANIZER;CN=Alice:mailto:alice@example.test",
		"ATTENDEE;CN=Bob;PARTSTAT=NEEDS-ACTION;ROLE=REQ-PARTICIPANT;RSVP=TRUE:mailto:bob@example.test",
		"CLASS:PRIVATE",
		"TRANSP:OPAQUE")
	lines = append(lines, extra...)
	lines = append(lines,
		"BEGIN:VALARM", "ACTION:DISPLAY", "TRIGGER:-PT15M", "DESCRIPTION:Reminder", "END:VALARM",
		"END:VEVENT", "END:VCALENDAR")
	return ics(lines...)
}

func berlinBlob(t *testing.T, year int) string {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	z := tz.FromLocation(loc, year)
	if z.Bias != -60 {
		t.Fatalf("Berlin bias %d", z.Bias)
	}
	return z.Encode()
}

func TestMeetingRequestRender(t *testing.T) {
	berlin := berlinBlob(t, 2026)
	utc := tz.UTC().Encode()
	uid := "4F1C0E4B-8A3C-4E8E-9D0B-2C1A6E5B7F01"
	stamp := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name, method, version string
		ics                   []byte
		want                  []string
	}{{
		name: "recurring in a time zone", method: "REQUEST", version: "14.1", ics: weekly("REQUEST"),
		want: []string{
			"Email:AllDayEvent=0", "Email:StartTime=2026-03-10T09:00:00.000Z", "Email:DtStamp=2026-03-01T09:00:00.000Z",
			"Email:EndTime=2026-03-10T10:00:00.000Z", "Email:InstanceType=1", "Email:Location=Room 1, 2nd floor",
			`Email:Organizer="Alice" <alice@example.test>`, "Email:Reminder=900", "Email:ResponseRequested=1",
			"Email:Recurrences/Email:Recurrence/Email:Type=1", "Email:Recurrences/Email:Recurrence/Email:Interval=1",
			"Email:Recurrences/Email:Recurrence/Email:Occurrences=4", "Email:Recurrences/Email:Recurrence/Email:DayOfWeek=4",
			"Email:Recurrences/Email:Recurrence/Email2:FirstDayOfWeek=1",
			"Email:Sensitivity=2", "Email:BusyStatus=2", "Email:TimeZone=" + berlin,
			"Email:GlobalObjId=" + GlobalObjID(uid, time.Time{}), "Email:DisallowNewTimeProposal=0", "Email2:MeetingMessageType=1",
		},
	}, {
		name: "12.1: no 14.x elements", method: "REQUEST", version: "12.1",
		ics: weekly("REQUEST", "SEQUENCE:2", "X-MICROSOFT-CDO-INTENDEDSTATUS:FREE"),
		want: []string{
			"Email:AllDayEvent=0", "Email:StartTime=2026-03-10T09:00:00.000Z", "Email:DtStamp=2026-03-01T09:00:00.000Z",
			"Email:EndTime=2026-03-10T10:00:00.000Z", "Email:InstanceType=1", "Email:Location=Room 1, 2nd floor",
			`Email:Organizer="Alice" <alice@example.test>`, "Email:Reminder=900", "Email:ResponseRequested=1",
			"Email:Recurrences/Email:Recurrence/Email:Type=1", "Email:Recurrences/Email:Recurrence/Email:Interval=1",
			"Email:Recurrences/Email:Recurrence/Email:Occurrences=4", "Email:Recurrences/Email:Recurrence/Email:DayOfWeek=4",
			"Email:Sensitivity=2", "Email:BusyStatus=0", "Email:TimeZone=" + berlin,
			"Email:GlobalObjId=" + GlobalObjID(uid, time.Time{}),
		},
	}, {
		name: "all-day, no DTSTAMP", method: "REQUEST", version: "14.1",
		ics: ics("BEGIN:VCALENDAR", "VERSION:2.0", "METHOD:REQUEST", "BEGIN:VEVENT", "UID:day@example.test",
			"DTSTART;VALUE=DATE:20260704", "DTEND;VALUE=DATE:20260706", "SEQUENCE:1", "TRANSP:TRANSPARENT",
			"ORGANIZER:mailto:org@example.test", "END:VEVENT", "END:VCALENDAR"),
		want: []string{
			"Email:AllDayEvent=1", "Email:StartTime=2026-07-04T00:00:00.000Z", "Email:DtStamp=2026-02-01T00:00:00.000Z",
			"Email:EndTime=2026-07-06T00:00:00.000Z", "Email:InstanceType=0", "Email:Organizer=org@example.test",
			"Email:ResponseRequested=0", "Email:Sensitivity=0", "Email:BusyStatus=0", "Email:TimeZone=" + utc,
			"Email:GlobalObjId=" + GlobalObjID("day@example.test", time.Time{}), "Email:DisallowNewTimeProposal=0",
			"Email2:MeetingMessageType=2",
		},
	}, {
		name: "cancelled occurrence, Outlook time zone", method: "CANCEL", version: "14.1",
		ics: ics("BEGIN:VCALENDAR", "METHOD:CANCEL", "VERSION:2.0",
			"BEGIN:VTIMEZONE", "TZID:W. Europe Standard Time",
			"BEGIN:STANDARD", "DTSTART:16010101T030000", "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100",
			"RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10", "END:STANDARD",
			"BEGIN:DAYLIGHT", "DTSTART:16010101T020000", "TZOFFSETFROM:+0100", "TZOFFSETTO:+0200",
			"RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3", "END:DAYLIGHT", "END:VTIMEZONE",
			"BEGIN:VEVENT", "UID:040000008200E00074C5B7101A82E00800000000E040C9C12685C4010000000000000000100000000BF0ED4B6E4EE94E9E39E3867B378EF3",
			"RECURRENCE-ID;TZID=W. Europe Standard Time:20260317T100000",
			"DTSTART;TZID=W. Europe Standard Time:20260317T100000", "DTEND;TZID=W. Europe Standard Time:20260317T103000",
			"DTSTAMP:20260302T080000Z", "STATUS:CANCELLED", "SEQUENCE:3", "X-MICROSOFT-DISALLOW-COUNTER:TRUE",
			"END:VEVENT", "END:VCALENDAR"),
		want: []string{
			"Email:AllDayEvent=0", "Email:StartTime=2026-03-17T09:00:00.000Z", "Email:DtStamp=2026-03-02T08:00:00.000Z",
			"Email:EndTime=2026-03-17T09:30:00.000Z", "Email:InstanceType=3", "Email:RecurrenceId=2026-03-17T09:00:00.000Z",
			"Email:ResponseRequested=0", "Email:Sensitivity=0", "Email:BusyStatus=2", "Email:TimeZone=" + berlin,
			// MS-ASEMAIL 4.3 example 1 with the occurrence's date in INSTDATE.
			"Email:GlobalObjId=BAAAAIIA4AB0xbcQGoLgCAfqAxHgQMnBJoXEAQAAAAAAAAAAEAAAAAvw7UtuTulOnjnjhns3jvM=",
			"Email:DisallowNewTimeProposal=1", "Email2:MeetingMessageType=0",
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := meetingRequest(tc.ics, tc.method, tc.version, stamp)
			if err != nil {
				t.Fatal(err)
			}
			got := flatten(n)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("MeetingRequest (-want +got):\n%s", diff)
			}
			if _, err := tz.Parse(n.ChildText(wbxml.EmailTimeZone)); err != nil {
				t.Errorf("TimeZone: %v", err)
			}
		})
	}
}

func TestMeetingRecurrence(t *testing.T) {
	start := func(s string) when {
		w, _ := time.Parse(icalLocal, s)
		return when{t: w, wall: w, loc: time.UTC}
	}
	tue := start("20260310T100000") // Tuesday 10 March 2026
	tests := []struct {
		rrule string
		want  []string // nil: no Recurrence
	}{
		{"FREQ=DAILY;INTERVAL=2;UNTIL=20260401T090000Z", []string{"Type=0", "Interval=2", "Until=20260401T090000Z"}},
		{"FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR", []string{"Type=1", "Interval=1", "DayOfWeek=62", "FirstDayOfWeek=1"}},
		{"FREQ=WEEKLY;INTERVAL=2;WKST=SU", []string{"Type=1", "Interval=2", "DayOfWeek=4", "FirstDayOfWeek=0"}},
		{"FREQ=MONTHLY", []string{"Type=2", "Interval=1", "DayOfMonth=10"}},
		{"FREQ=MONTHLY;BYMONTHDAY=15;COUNT=6", []string{"Type=2", "Interval=1", "Occurrences=6", "DayOfMonth=15"}},
		{"FREQ=MONTHLY;BYDAY=2TU", []string{"Type=3", "Interval=1", "WeekOfMonth=2", "DayOfWeek=4"}},
		{"FREQ=MONTHLY;BYDAY=-1FR", []string{"Type=3", "Interval=1", "WeekOfMonth=5", "DayOfWeek=32"}},
		{"FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", []string{"Type=3", "Interval=1", "WeekOfMonth=5", "DayOfWeek=62"}},
		{"FREQ=MONTHLY;BYMONTHDAY=-1", []string{"Type=3", "Interval=1", "WeekOfMonth=5", "DayOfWeek=127"}},
		{"FREQ=YEARLY", []string{"Type=5", "Interval=1", "DayOfMonth=10", "MonthOfYear=3"}},
		{"FREQ=YEARLY;BYMONTH=11;BYDAY=4TH", []string{"Type=6", "Interval=1", "WeekOfMonth=4", "DayOfWeek=16", "MonthOfYear=11"}},
		{"FREQ=WEEKLY;UNTIL=20260331", []string{"Type=1", "Interval=1", "Until=20260331T235959Z", "DayOfWeek=4", "FirstDayOfWeek=1"}},
		{"FREQ=HOURLY", nil},
		{"FREQ=DAILY;BYHOUR=9,17", nil},
		{"FREQ=MONTHLY;BYMONTHDAY=1,15", nil},
		{"FREQ=MONTHLY;BYDAY=1MO,3MO", nil},
		{"FREQ=DAILY;INTERVAL=0", nil},
	}
	for _, tc := range tests {
		cal, err := ParseCalendar(ics("BEGIN:VCALENDAR", "BEGIN:VEVENT", "RRULE:"+tc.rrule, "END:VEVENT", "END:VCALENDAR"))
		if err != nil {
			t.Fatal(err)
		}
		n := recurrence(MainEvent(cal), tue, 141)
		var got []string
		if n != nil {
			for _, c := range n.Children {
				name := c.Tag.String()
				got = append(got, name[strings.IndexByte(name, ':')+1:]+"="+c.Text())
			}
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.rrule, diff)
		}
	}
	// An all-day series ends on its UNTIL date.
	day := when{t: time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), date: true, loc: time.UTC}
	day.wall = day.t
	if u, ok := rruleUntil("20260331", day); !ok || !u.Equal(time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("all-day UNTIL: %v %v", u, ok)
	}
}

func TestGlobalObjID(t *testing.T) {
	// MS-ASEMAIL 4.3, example 2: a vCal-Uid.
	const vcal = "BAAAAIIA4AB0xbcQGoLgCAAAAAAAAAAAAAAAAAAAAAAAAAAAMwAAAHZDYWwtVWlkAQAAAHs4MTQxMkQzQy0yQTI0LTRFOUQtQjIwRS0xMUY3QkJFOTI3OTl9AA=="
	if got := GlobalObjID("{81412D3C-2A24-4E9D-B20E-11F7BBE92799}", time.Time{}); got != vcal {
		t.Errorf("vCal-Uid: %s, want %s", got, vcal)
	}
	// Example 1: an Outlook UID, for the whole meeting and for the
	// occurrence of 16 September 2004.
	const outlook = "040000008200E00074C5B7101A82E00800000000E040C9C12685C4010000000000000000100000000BF0ED4B6E4EE94E9E39E3867B378EF3"
	if got, want := GlobalObjID(outlook, time.Time{}), "BAAAAIIA4AB0xbcQGoLgCAAAAADgQMnBJoXEAQAAAAAAAAAAEAAAAAvw7UtuTulOnjnjhns3jvM="; got != want {
		t.Errorf("Outlook UID: %s, want %s", got, want)
	}
	if got, want := GlobalObjID(outlook, time.Date(2004, 9, 16, 10, 0, 0, 0, time.UTC)), "BAAAAIIA4AB0xbcQGoLgCAfUCRDgQMnBJoXEAQAAAAAAAAAAEAAAAAvw7UtuTulOnjnjhns3jvM="; got != want {
		t.Errorf("Outlook UID, occurrence: %s, want %s", got, want)
	}
	// A vCal-Uid occurrence carries its date too.
	b, _ := base64.StdEncoding.DecodeString(GlobalObjID("x", time.Date(2026, 3, 17, 0, 0, 0, 0, time.UTC)))
	if !bytes.Equal(b[16:20], []byte{0x07, 0xEA, 3, 17}) || string(b[40:48]) != "vCal-Uid" || string(b[52:]) != "x\x00" {
		t.Errorf("vCal-Uid occurrence: % x", b)
	}
}

// invitation is a meeting message as iOS sends it: text and a base64
// text/calendar part with the method parameter.
func invitation(cal []byte) []byte {
	return []byte("From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\nSubject: Weekly sync\r\n" +
		"Date: Sun, 01 Mar 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/alternative; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYou are invited.\r\n" +
		"--b\r\nContent-Type: text/calendar; charset=utf-8; method=REQUEST\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(cal) + "\r\n--b--\r\n")
}

func TestConvertMeeting(t *testing.T) {
	cal := weekly("REQUEST")
	msg := invitation(cal)
	it, err := Convert(bytes.NewReader(msg), Meta{}, Options{Version: "14.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	m := it.Meeting()
	if m == nil || m.Method != "REQUEST" || m.Class != "IPM.Schedule.Meeting.Request" || !bytes.Equal(m.ICS, cal) {
		t.Fatalf("Meeting() = %+v", m)
	}
	n := encodeDecode(t, it.Node)
	if got := n.ChildText(wbxml.EmailMessageClass); got != m.Class {
		t.Errorf("MessageClass %q", got)
	}
	mr := n.Child(wbxml.EmailMeetingRequest)
	if mr == nil || mr.ChildText(wbxml.EmailStartTime) != "2026-03-10T09:00:00.000Z" {
		t.Fatalf("MeetingRequest: %v", mr)
	}
	// MeetingRequest follows MessageClass.
	for i, c := range n.Children {
		if c.Tag == wbxml.EmailMessageClass && (i+1 >= len(n.Children) || n.Children[i+1] != mr) {
			t.Errorf("MeetingRequest not after MessageClass")
		}
	}
	got, err := ReadMeeting(bytes.NewReader(msg))
	if err != nil || got == nil || !bytes.Equal(got.ICS, cal) || got.Method != "REQUEST" {
		t.Errorf("ReadMeeting: %+v, %v", got, err)
	}
	if got, err := ReadMeeting(strings.NewReader("Subject: plain\r\n\r\nhello\r\n")); got != nil || err != nil {
		t.Errorf("ReadMeeting of a plain message: %+v, %v", got, err)
	}

	// A reply: its class from the attendee's PARTSTAT, no MeetingRequest
	// (the recipient is the organizer).
	reply := ics("BEGIN:VCALENDAR", "METHOD:REPLY", "BEGIN:VEVENT", "UID:x", "DTSTART:20260310T090000Z",
		"ATTENDEE;PARTSTAT=TENTATIVE:mailto:bob@example.test", "END:VEVENT", "END:VCALENDAR")
	it2, err := Convert(bytes.NewReader(append([]byte("Content-Type: text/calendar; method=REPLY\r\n\r\n"), reply...)), Meta{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer it2.Close()
	if m := it2.Meeting(); m == nil || m.Method != "REPLY" || m.Class != "IPM.Schedule.Meeting.Resp.Tent" {
		t.Errorf("reply: %+v", m)
	}
	if it2.Node.Child(wbxml.EmailMeetingRequest) != nil {
		t.Errorf("reply has a MeetingRequest")
	}

	// A calendar over the cap: the class, no calendar, no MeetingRequest.
	big := append([]byte("BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nX-PAD:"), bytes.Repeat([]byte("x"), MaxCalendarBytes)...)
	big = append(big, "\r\nEND:VCALENDAR\r\n"...)
	it3, err := Convert(bytes.NewReader(invitation(big)), Meta{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer it3.Close()
	if m := it3.Meeting(); m == nil || m.ICS != nil || it3.Node.Child(wbxml.EmailMeetingRequest) != nil ||
		it3.Node.ChildText(wbxml.EmailMessageClass) != "IPM.Schedule.Meeting.Request" {
		t.Errorf("large calendar: %+v", m)
	}
}

func TestParseCalendarLenient(t *testing.T) {
	cal, err := ParseCalendar([]byte("junk before\nBEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\n" +
		"ATTENDEE;CN=\"Doe: Jane\";PARTSTAT=ACCEPTED:mailto:j@example.test\n" +
		"BROKEN LINE\nX-BAD;P=a\"b:v\nDESCRIPTION:folded\n  text\nEND:VCALENDAR\nBEGIN:VCALENDAR\n"))
	if err != nil {
		t.Fatal(err)
	}
	ev := MainEvent(cal)
	if ev == nil || rawProp(ev, "UID") != "a" || propText(ev, "DESCRIPTION") != "folded text" {
		t.Fatalf("event %+v", ev)
	}
	if a := ev.Props.Get("ATTENDEE"); a == nil || a.Params.Get("CN") != "Doe: Jane" || Address(a.Value) != "j@example.test" {
		t.Errorf("attendee %+v", a)
	}
	for _, bad := range []string{"", "BEGIN:VEVENT\r\nEND:VEVENT\r\n", strings.Repeat("BEGIN:VCALENDAR\r\n", 20)} {
		if _, err := ParseCalendar([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// FuzzMeetingRequest renders arbitrary text/calendar bytes: no panic, and
// whatever renders encodes as WBXML with valid text.
func FuzzMeetingRequest(f *testing.F) {
	f.Add(weekly("REQUEST"), uint8(0))
	f.Add(weekly("CANCEL", "RECURRENCE-ID;TZID=Europe/Berlin:20260317T100000"), uint8(1))
	f.Add(ics("BEGIN:VCALENDAR", "BEGIN:VEVENT", "DTSTART;VALUE=DATE:20260704", "DURATION:P2D", "RRULE:FREQ=YEARLY;BYMONTH=7", "END:VEVENT", "END:VCALENDAR"), uint8(2))
	f.Add([]byte("BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;TZID=\"a:b\":20260101T000000\nDTEND:x\nEND:VCALENDAR"), uint8(3))
	f.Add([]byte("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:20260101T000000Z\r\nDURATION:P99999999999999W\r\nBEGIN:VALARM\r\nTRIGGER:-P99999999999D\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"), uint8(4))
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		if len(data) > MaxCalendarBytes {
			return
		}
		method := []string{"REQUEST", "CANCEL"}[mode&1]
		version := []string{"12.1", "14.0", "14.1", "16.1"}[mode>>1&3]
		n, err := meetingRequest(data, method, version, time.Unix(int64(mode)<<20, 0))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := wbxml.Encode(&buf, wbxml.E(wbxml.AirSyncApplicationData, n)); err != nil {
			t.Fatalf("Encode: %v", err)
		}
		for _, s := range flatten(n) {
			if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
				t.Fatalf("invalid text %q", s)
			}
		}
		if n.ChildText(wbxml.EmailDtStamp) == "" || n.ChildText(wbxml.EmailTimeZone) == "" {
			t.Fatalf("required element missing: %v", flatten(n))
		}
	})
}

func TestEncodeCalendar(t *testing.T) {
	in := "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nATTENDEE;CN=\"Doe, Jane\";X-A=a,b:mailto:j@example.test\r\n" +
		"DESCRIPTION:" + strings.Repeat("é", 60) + "\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
	cal, err := ParseCalendar([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out := EncodeCalendar(cal)
	for line := range strings.SplitSeq(string(out), "\r\n") {
		if len(line) > 75 {
			t.Errorf("line of %d octets: %q", len(line), line)
		}
	}
	again, err := ParseCalendar(out)
	if err != nil {
		t.Fatal(err)
	}
	ev := MainEvent(again)
	a := ev.Props.Get("ATTENDEE")
	if diff := cmp.Diff([]string{"Doe, Jane", "a,b"}, []string{a.Params.Get("CN"), strings.Join(a.Params.Values("X-A"), ",")}); diff != "" {
		t.Errorf("params (-want +got):\n%s", diff)
	}
	if d := ev.Props.Get("DESCRIPTION").Value; d != strings.Repeat("é", 60) {
		t.Errorf("DESCRIPTION %q", d)
	}
}
