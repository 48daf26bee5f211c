package calendar

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/easd/easd/eas/email"
	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/eas/tz"
	"github.com/easd/easd/wbxml"
	"github.com/google/go-cmp/cmp"
)

// richEvent is a stored event with every element set, from a 14.1 client.
func richEvent(t *testing.T) []byte {
	t.Helper()
	loc, _ := time.LoadLocation("Europe/Berlin")
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, loc).UTC()
	app := wbxml.E(wbxml.AirSyncApplicationData,
		wbxml.T(wbxml.CalendarTimezone, tz.FromLocation(loc, 2026).Encode()),
		wbxml.T(wbxml.CalendarAllDayEvent, "0"),
		wbxml.E(wbxml.AirSyncBaseBody, wbxml.T(wbxml.AirSyncBaseType, "1"), wbxml.T(wbxml.AirSyncBaseData, "notes")),
		wbxml.T(wbxml.CalendarBusyStatus, "3"),
		wbxml.T(wbxml.CalendarOrganizerName, "Boss"), wbxml.T(wbxml.CalendarOrganizerEmail, "boss@example.org"),
		wbxml.T(wbxml.CalendarDtStamp, "20260101T000000Z"),
		wbxml.T(wbxml.CalendarStartTime, compact(start)), wbxml.T(wbxml.CalendarEndTime, compact(start.Add(time.Hour))),
		wbxml.T(wbxml.CalendarLocation, "Room"), wbxml.T(wbxml.CalendarReminder, "10"),
		wbxml.T(wbxml.CalendarSensitivity, "2"), wbxml.T(wbxml.CalendarSubject, "Weekly"),
		wbxml.T(wbxml.CalendarMeetingStatus, "1"),
		wbxml.E(wbxml.CalendarAttendees, wbxml.E(wbxml.CalendarAttendee, wbxml.T(wbxml.CalendarEmail, "a@example.org"),
			wbxml.T(wbxml.CalendarName, "A"), wbxml.T(wbxml.CalendarAttendeeStatus, "3"), wbxml.T(wbxml.CalendarAttendeeType, "1"))),
		wbxml.E(wbxml.CalendarCategories, wbxml.T(wbxml.CalendarCategory, "Work")),
		wbxml.E(wbxml.CalendarRecurrence, wbxml.T(wbxml.CalendarType, "1"), wbxml.T(wbxml.CalendarInterval, "1"), wbxml.T(wbxml.CalendarDayOfWeek, "2")),
		wbxml.E(wbxml.CalendarExceptions, wbxml.E(wbxml.CalendarException,
			wbxml.T(wbxml.CalendarExceptionStartTime, compact(start.AddDate(0, 0, 7))), wbxml.T(wbxml.CalendarDeleted, "1"))),
		wbxml.T(wbxml.CalendarResponseRequested, "1"),
		wbxml.T(wbxml.CalendarResponseType, "1"),
		wbxml.T(wbxml.CalendarDisallowNewTimeProposal, "1"),
		wbxml.T(wbxml.CalendarOnlineMeetingExternalLink, "https://meet.example.org/1"),
	)
	stored, _, err := Codec{}.Apply(nil, app, testOptions("14.1", "rich"))
	if err != nil {
		t.Fatal(err)
	}
	return stored
}

func onlySubject(s string) *wbxml.Node {
	return wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.CalendarSubject, s))
}

func renderedModel(t *testing.T, stored []byte, v string) model {
	t.Helper()
	out, err := Codec{}.Render(stored, testOptions(v, "x"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := readModel(out, v)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestGhosting: a Change without an element the client ghosts (not in its
// Supported list, MS-ASCMD 2.2.3.168) keeps the stored value; without
// ghosting the element is removed; elements the version does not have are
// never removed.
func TestGhosting(t *testing.T) {
	stored := richEvent(t)
	before := renderedModel(t, stored, "14.1")

	o := testOptions("14.1", "x")
	o.Ghosted = func(tag wbxml.Tag) bool { return tag != wbxml.CalendarSubject }
	kept, _, err := Codec{}.Apply(stored, onlySubject("Renamed"), o)
	if err != nil {
		t.Fatal(err)
	}
	after := renderedModel(t, kept, "14.1")
	want := model{}
	for k, v := range before {
		want[k] = v
	}
	want["Subject"] = "Renamed"
	want["DtStamp"] = compact(testNow) // a Change is a modification
	if diff := cmp.Diff(want, after); diff != "" {
		t.Fatalf("ghosted elements changed (-want +got):\n%s", diff)
	}

	// Supported lists only some elements: the others are ghosted.
	supported := map[wbxml.Tag]bool{wbxml.CalendarSubject: true, wbxml.CalendarLocation: true, wbxml.CalendarCategories: true}
	o.Ghosted = func(tag wbxml.Tag) bool { return !supported[tag] }
	partly, _, err := Codec{}.Apply(stored, onlySubject("Renamed"), o)
	if err != nil {
		t.Fatal(err)
	}
	after = renderedModel(t, partly, "14.1")
	delete(want, "Location")
	delete(want, "Categories")
	if diff := cmp.Diff(want, after); diff != "" {
		t.Fatalf("Supported subset (-want +got):\n%s", diff)
	}

	// Nothing ghosted: what the Change lacks goes (times and zone stay).
	o.Ghosted = nil
	bare, _, err := Codec{}.Apply(stored, onlySubject("Bare"), o)
	if err != nil {
		t.Fatal(err)
	}
	after = renderedModel(t, bare, "14.1")
	want = model{"Subject": "Bare", "StartTime": before["StartTime"], "EndTime": before["EndTime"],
		"AllDayEvent": "false", "Timezone": before["Timezone"], "UID": before["UID"], "DtStamp": compact(testNow),
		"BusyStatus": "2", "Sensitivity": "0", "MeetingStatus": "0"}
	if diff := cmp.Diff(want, after); diff != "" {
		t.Fatalf("ungosted Change (-want +got):\n%s", diff)
	}

	// A 12.1 client knows nothing of the 14.x elements: they stay.
	old, _, err := Codec{}.Apply(stored, onlySubject("Old client"), testOptions("12.1", "x"))
	if err != nil {
		t.Fatal(err)
	}
	after = renderedModel(t, old, "14.1")
	for _, k := range []string{"ResponseType", "DisallowNewTimeProposal", "OnlineMeetingExternalLink"} {
		if after[k] != before[k] || after[k] == "" {
			t.Errorf("12.1 Change: %s = %q, was %q", k, after[k], before[k])
		}
	}
	if after["Categories"] != "" {
		t.Errorf("12.1 Change kept Categories without ghosting")
	}
}

// TestMalformed: ApplicationData that cannot be applied is an error
// wrapping item.ErrInvalid.
func TestMalformed(t *testing.T) {
	base := func(extra ...*wbxml.Node) *wbxml.Node {
		n := wbxml.E(wbxml.AirSyncApplicationData,
			wbxml.T(wbxml.CalendarStartTime, "20261126T100000Z"), wbxml.T(wbxml.CalendarEndTime, "20261126T110000Z"))
		return n.Append(extra...)
	}
	rec := func(kids ...*wbxml.Node) *wbxml.Node { return wbxml.E(wbxml.CalendarRecurrence, kids...) }
	cases := map[string]*wbxml.Node{
		"nil":             nil,
		"bad timezone":    base(wbxml.T(wbxml.CalendarTimezone, "not base64!")),
		"short timezone":  base(wbxml.T(wbxml.CalendarTimezone, "AAAA")),
		"bad start":       wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.CalendarStartTime, "tomorrow"), wbxml.T(wbxml.CalendarEndTime, "20261126T110000Z")),
		"end before":      wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.CalendarStartTime, "20261126T100000Z"), wbxml.T(wbxml.CalendarEndTime, "20261126T090000Z")),
		"no start, past":  wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.CalendarEndTime, "20200101T000000Z")),
		"future, no end":  wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.CalendarStartTime, "20300101T000000Z")),
		"all-day flag":    base(wbxml.T(wbxml.CalendarAllDayEvent, "yes")),
		"busy":            base(wbxml.T(wbxml.CalendarBusyStatus, "x")),
		"sensitivity":     base(wbxml.T(wbxml.CalendarSensitivity, "9")),
		"reminder":        base(wbxml.T(wbxml.CalendarReminder, "-5")),
		"meeting status":  base(wbxml.T(wbxml.CalendarMeetingStatus, "99")),
		"attendee status": base(wbxml.E(wbxml.CalendarAttendees, wbxml.E(wbxml.CalendarAttendee, wbxml.T(wbxml.CalendarEmail, "a@b"), wbxml.T(wbxml.CalendarAttendeeStatus, "8")))),
		"attendee type":   base(wbxml.E(wbxml.CalendarAttendees, wbxml.E(wbxml.CalendarAttendee, wbxml.T(wbxml.CalendarEmail, "a@b"), wbxml.T(wbxml.CalendarAttendeeType, "0")))),
		"rec no type":     base(rec(wbxml.T(wbxml.CalendarInterval, "1"))),
		"rec type 4":      base(rec(wbxml.T(wbxml.CalendarType, "4"))),
		"rec type 7":      base(rec(wbxml.T(wbxml.CalendarType, "7"))),
		"rec day":         base(rec(wbxml.T(wbxml.CalendarType, "2"), wbxml.T(wbxml.CalendarDayOfMonth, "32"))),
		"rec week":        base(rec(wbxml.T(wbxml.CalendarType, "3"), wbxml.T(wbxml.CalendarWeekOfMonth, "6"))),
		"rec month":       base(rec(wbxml.T(wbxml.CalendarType, "5"), wbxml.T(wbxml.CalendarMonthOfYear, "13"))),
		"rec dow":         base(rec(wbxml.T(wbxml.CalendarType, "1"), wbxml.T(wbxml.CalendarDayOfWeek, "128"))),
		"rec until":       base(rec(wbxml.T(wbxml.CalendarType, "0"), wbxml.T(wbxml.CalendarUntil, "soon"))),
		"rec interval":    base(rec(wbxml.T(wbxml.CalendarType, "0"), wbxml.T(wbxml.CalendarInterval, "100000"))),
		"exception time": base(rec(wbxml.T(wbxml.CalendarType, "0")), wbxml.E(wbxml.CalendarExceptions,
			wbxml.E(wbxml.CalendarException, wbxml.T(wbxml.CalendarDeleted, "1")))),
		"exception deleted": base(rec(wbxml.T(wbxml.CalendarType, "0")), wbxml.E(wbxml.CalendarExceptions,
			wbxml.E(wbxml.CalendarException, wbxml.T(wbxml.CalendarExceptionStartTime, "20261127T100000Z"), wbxml.T(wbxml.CalendarDeleted, "2")))),
		"reply time": base(wbxml.T(wbxml.CalendarAppointmentReplyTime, "x")),
	}
	for name, app := range cases {
		o := testOptions("14.1", "u")
		o.Now = func() time.Time { return time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC) }
		if _, _, err := (Codec{}).Apply(nil, app, o); !errors.Is(err, item.ErrInvalid) {
			t.Errorf("%s: error %v, want item.ErrInvalid", name, err)
		}
	}
	// Stored data that is not iCalendar is an error, but not ErrInvalid.
	if _, _, err := (Codec{}).Apply([]byte("garbage"), base(), testOptions("14.1", "u")); err == nil || errors.Is(err, item.ErrInvalid) {
		t.Errorf("Apply on garbage: %v", err)
	}
}

// TestMissingTimes follows MS-ASCAL 3.2.4.4 for an Add without StartTime or
// EndTime.
func TestMissingTimes(t *testing.T) {
	o := testOptions("14.1", "u")
	o.Now = func() time.Time { return time.Date(2026, 6, 1, 18, 3, 0, 0, time.UTC) }
	for _, c := range []struct {
		in         []*wbxml.Node
		start, end string
	}{
		{nil, "20260601T183000Z", "20260601T190000Z"},
		{[]*wbxml.Node{wbxml.T(wbxml.CalendarEndTime, "20260602T000000Z")}, "20260601T183000Z", "20260602T000000Z"},
		{[]*wbxml.Node{wbxml.T(wbxml.CalendarStartTime, "20260501T100000Z")}, "20260501T100000Z", "20260601T190000Z"},
	} {
		stored, _, err := Codec{}.Apply(nil, wbxml.E(wbxml.AirSyncApplicationData, c.in...), o)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := Codec{}.Render(stored, o)
		if s, e := out.ChildText(wbxml.CalendarStartTime), out.ChildText(wbxml.CalendarEndTime); s != c.start || e != c.end {
			t.Errorf("%v: %s..%s, want %s..%s", c.in, s, e, c.start, c.end)
		}
	}
}

// TestInstances: 16.x edits and deletes one occurrence through
// ApplyInstance and DeleteInstance; the series renders them as Exceptions
// (InstanceId in 16.x, ExceptionStartTime in 14.1); changing the series'
// times in 16.x drops them (MS-ASCAL 2.2.2.22).
func TestInstances(t *testing.T) {
	loc, _ := time.LoadLocation("America/New_York")
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, loc).UTC()
	o := testOptions("16.1", "inst")
	stored, _, err := Codec{}.Apply(nil, weeklyAt9(tz.FromLocation(loc, 2026), start), o)
	if err != nil {
		t.Fatal(err)
	}
	// The second Monday (after the DST change: 13:00Z, not 14:00Z).
	second := time.Date(2026, 3, 9, 9, 0, 0, 0, loc).UTC()
	third := time.Date(2026, 3, 16, 9, 0, 0, 0, loc).UTC()
	stored, _, err = Codec{}.ApplyInstance(stored, compact(second), wbxml.E(wbxml.AirSyncApplicationData,
		wbxml.T(wbxml.CalendarSubject, "moved"), wbxml.T(wbxml.CalendarStartTime, compact(second.Add(2*time.Hour))),
		wbxml.T(wbxml.CalendarEndTime, compact(second.Add(3*time.Hour)))), o)
	if err != nil {
		t.Fatal(err)
	}
	// A date-only InstanceId still finds the occurrence of that day.
	stored, _, err = Codec{}.DeleteInstance(stored, third.Format("20060102"), o)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Codec{}.Render(stored, o)
	if err != nil {
		t.Fatal(err)
	}
	exc := out.Child(wbxml.CalendarExceptions)
	want := []string{
		"<Exception><InstanceId xmlns=\"AirSyncBase:\">" + compact(second) + "</InstanceId><Subject>moved</Subject><StartTime>" +
			compact(second.Add(2*time.Hour)) + "</StartTime><EndTime>" + compact(second.Add(3*time.Hour)) + "</EndTime></Exception>",
		"<Exception><Deleted>1</Deleted><InstanceId xmlns=\"AirSyncBase:\">" + compact(third) + "</InstanceId></Exception>",
	}
	got := exc.String()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Fatalf("Exceptions %s\nlack %s", got, w)
		}
	}
	// 14.1 sees the same exceptions by ExceptionStartTime.
	out14, _ := Codec{}.Render(stored, testOptions("14.1", "x"))
	if s := out14.Child(wbxml.CalendarExceptions).String(); !strings.Contains(s, "<ExceptionStartTime>"+compact(second)+"</ExceptionStartTime><Subject>moved</Subject>") {
		t.Fatalf("14.1 exceptions: %s", s)
	}
	// A second edit of the instance keeps the first one's changes.
	stored, _, err = Codec{}.ApplyInstance(stored, compact(second), wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.CalendarLocation, "there")), testOptions("14.1", "x"))
	if err != nil {
		t.Fatal(err)
	}
	out14, _ = Codec{}.Render(stored, testOptions("14.1", "x"))
	if s := out14.Child(wbxml.CalendarExceptions).String(); !strings.Contains(s, "<Subject>moved</Subject>") || !strings.Contains(s, "<Location>there</Location>") {
		t.Fatalf("second instance edit: %s", s)
	}
	// Moving the series in 16.x deletes the exceptions.
	app, _ := Codec{}.Render(stored, o)
	for _, ch := range app.Children {
		switch ch.Tag {
		case wbxml.CalendarStartTime:
			ch.Value = []byte(compact(start.Add(time.Hour)))
		case wbxml.CalendarEndTime:
			ch.Value = []byte(compact(start.Add(2 * time.Hour)))
		}
	}
	moved, _, err := Codec{}.Apply(stored, app, o)
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := (Codec{}).Render(moved, o); out.Child(wbxml.CalendarExceptions) != nil {
		t.Fatalf("exceptions survived a 16.x series move: %v", out)
	}
	if _, _, err := (Codec{}).DeleteInstance(richEventSingle(t), "20260302T080000Z", o); !errors.Is(err, item.ErrInvalid) {
		t.Fatalf("instance of a single event: %v", err)
	}
}

func richEventSingle(t *testing.T) []byte {
	stored, _, err := Codec{}.Apply(nil, onlySubject("single"), testOptions("16.1", "single"))
	if err != nil {
		t.Fatal(err)
	}
	return stored
}

// TestBodyPreferences: airsyncbase:Body follows BodyPreference: native
// type first, truncation on a character boundary with the full size,
// AllOrNone, Preview, RTF asked as text.
func TestBodyPreferences(t *testing.T) {
	htmlApp := wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.CalendarStartTime, "20261126T100000Z"),
		wbxml.T(wbxml.CalendarEndTime, "20261126T110000Z"),
		wbxml.E(wbxml.AirSyncBaseBody, wbxml.T(wbxml.AirSyncBaseType, "2"),
			wbxml.T(wbxml.AirSyncBaseData, "<html><head><style>p{}</style></head><body><p>Grüße aus Köln</p><p>zweite Zeile</p></body></html>")))
	stored, _, err := Codec{}.Apply(nil, htmlApp, testOptions("14.1", "b"))
	if err != nil {
		t.Fatal(err)
	}
	render := func(prefs ...email.BodyPreference) string {
		o := testOptions("14.1", "b")
		o.BodyPrefs = prefs
		out, err := Codec{}.Render(stored, o)
		if err != nil {
			t.Fatal(err)
		}
		s := out.Child(wbxml.AirSyncBaseBody).String() + out.Child(wbxml.AirSyncBaseNativeBodyType).String()
		return strings.ReplaceAll(s, ` xmlns="AirSyncBase:"`, "")
	}
	const text = "Grüße aus Köln\nzweite Zeile"
	html := "<html><head><style>p{}</style></head><body><p>Grüße aus Köln</p><p>zweite Zeile</p></body></html>"
	for _, c := range []struct {
		prefs []email.BodyPreference
		want  string
	}{
		{nil, "<Body><Type>1</Type><EstimatedDataSize>30</EstimatedDataSize><Data>" + text + "</Data></Body><NativeBodyType>2</NativeBodyType>"},
		{[]email.BodyPreference{{Type: 1}, {Type: 2}}, "<Body><Type>2</Type><EstimatedDataSize>" + itoaLen(html) + "</EstimatedDataSize><Data>&lt;html&gt;"},
		{[]email.BodyPreference{{Type: 1, TruncationSize: 5}}, "<Body><Type>1</Type><EstimatedDataSize>30</EstimatedDataSize><Truncated>1</Truncated><Data>Grü</Data></Body>"},
		{[]email.BodyPreference{{Type: 3}}, "<Body><Type>1</Type>"},
		{[]email.BodyPreference{{Type: 2, TruncationSize: 10, AllOrNone: true}, {Type: 1}}, "<Body><Type>1</Type><EstimatedDataSize>30</EstimatedDataSize><Data>Grü"},
		{[]email.BodyPreference{{Type: 2, TruncationSize: 10, AllOrNone: true}}, "<Body><Type>2</Type><EstimatedDataSize>" + itoaLen(html) + "</EstimatedDataSize><Truncated>1</Truncated></Body>"},
		{[]email.BodyPreference{{Type: 2, TruncationSize: 10, Preview: 9}}, "<Truncated>1</Truncated><Data>&lt;html&gt;&lt;hea</Data><Preview>Grüße aus</Preview></Body>"},
	} {
		if got := render(c.prefs...); !strings.Contains(got, c.want) {
			t.Errorf("prefs %+v:\n got %s\nwant %s", c.prefs, got, c.want)
		}
	}
}

func itoaLen(s string) string { return strings.TrimSuffix(time.Duration(len(s)).String(), "ns") }

// TestExceptionChanges: a 14.1 Change carries the whole exception list:
// a new Deleted exception adds an EXDATE, a changed exception updates its
// override (keeping what another client put there), an exception left out
// goes, and without Exceptions (not ghosted) all go.
func TestExceptionChanges(t *testing.T) {
	loc, _ := time.LoadLocation("Europe/Berlin")
	start := time.Date(2026, 1, 5, 9, 0, 0, 0, loc).UTC()
	o := testOptions("14.1", "exc")
	app := weeklyAt9(tz.FromLocation(loc, 2026), start)
	occ := func(week int) time.Time { return time.Date(2026, 1, 5+7*week, 9, 0, 0, 0, loc).UTC() }
	exception := func(week int, kids ...*wbxml.Node) *wbxml.Node {
		return wbxml.E(wbxml.CalendarException, append([]*wbxml.Node{wbxml.T(wbxml.CalendarExceptionStartTime, compact(occ(week)))}, kids...)...)
	}
	app.Append(wbxml.E(wbxml.CalendarExceptions,
		exception(1, wbxml.T(wbxml.CalendarDeleted, "1")),
		exception(2, wbxml.T(wbxml.CalendarSubject, "first"), wbxml.T(wbxml.CalendarStartTime, compact(occ(2))), wbxml.T(wbxml.CalendarEndTime, compact(occ(2).Add(time.Hour)))),
		exception(3, wbxml.T(wbxml.CalendarSubject, "third"), wbxml.T(wbxml.CalendarStartTime, compact(occ(3))), wbxml.T(wbxml.CalendarEndTime, compact(occ(3).Add(time.Hour))))))
	stored, _, err := Codec{}.Apply(nil, app, o)
	if err != nil {
		t.Fatal(err)
	}
	// Another client adds a property to the override of week 2.
	stored = []byte(strings.Replace(string(stored), "SUMMARY:first", "SUMMARY:first\r\nX-OTHER-CLIENT:yes", 1))
	change, err := Codec{}.Render(stored, o)
	if err != nil {
		t.Fatal(err)
	}
	exc := change.Child(wbxml.CalendarExceptions)
	exc.Children = []*wbxml.Node{
		exception(1, wbxml.T(wbxml.CalendarDeleted, "1")),
		exception(4, wbxml.T(wbxml.CalendarDeleted, "1")),
		exception(2, wbxml.T(wbxml.CalendarSubject, "second"), wbxml.T(wbxml.CalendarStartTime, compact(occ(2))), wbxml.T(wbxml.CalendarEndTime, compact(occ(2).Add(time.Hour)))),
	}
	after, _, err := Codec{}.Apply(stored, change, o)
	if err != nil {
		t.Fatal(err)
	}
	s := string(after)
	for _, want := range []string{"EXDATE;TZID=Europe/Berlin:20260112T090000", "EXDATE;TZID=Europe/Berlin:20260202T090000",
		"SUMMARY:second", "X-OTHER-CLIENT:yes", "RECURRENCE-ID;TZID=Europe/Berlin:20260119T090000"} {
		if !strings.Contains(s, want) {
			t.Fatalf("missing %s in\n%s", want, s)
		}
	}
	if strings.Contains(s, "third") {
		t.Fatalf("exception left out of the list survived:\n%s", s)
	}
	// Ghosted Exceptions stay; not ghosted and absent, they all go.
	change.Children = slicesDelete(change.Children, wbxml.CalendarExceptions)
	o.Ghosted = func(tag wbxml.Tag) bool { return tag == wbxml.CalendarExceptions }
	kept, _, err := Codec{}.Apply(after, change, o)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(kept), "RECURRENCE-ID") || !strings.Contains(string(kept), "EXDATE") {
		t.Fatalf("ghosted exceptions lost:\n%s", kept)
	}
	o.Ghosted = nil
	gone, _, err := Codec{}.Apply(after, change, o)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(gone), "RECURRENCE-ID") || strings.Contains(string(gone), "EXDATE") {
		t.Fatalf("exceptions kept:\n%s", gone)
	}
}

func slicesDelete(ns []*wbxml.Node, tag wbxml.Tag) []*wbxml.Node {
	var out []*wbxml.Node
	for _, n := range ns {
		if n.Tag != tag {
			out = append(out, n)
		}
	}
	return out
}
