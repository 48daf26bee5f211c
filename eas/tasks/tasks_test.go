package tasks

import (
	"bytes"
	"errors"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/easd/easd/eas/email"
	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/eas/item/ics"
	"github.com/easd/easd/wbxml"
	"github.com/emersion/go-ical"
	"github.com/google/go-cmp/cmp"
)

// TestRoundTripApplicationData: ApplicationData -> Apply -> Render gives
// the same ApplicationData for 12.1, 14.1 and 16.1, and applying the
// rendering changes nothing.
func TestRoundTripApplicationData(t *testing.T) {
	for _, v := range versions {
		r := rand.New(rand.NewSource(1))
		for i := 0; i < corpusSize; i++ {
			it := genApp(r, v)
			o := opts(v)
			stored, ix, err := Codec{}.Apply(nil, it.app, o)
			if err != nil {
				t.Fatalf("%s #%d: Apply: %v\n%s", v, i, err, it.app)
			}
			if ix.UID == "" || (it.app.Child(wbxml.TasksUtcDueDate) != nil) == ix.End.IsZero() {
				t.Fatalf("%s #%d: index %+v", v, i, ix)
			}
			o.BodyPrefs = it.prefsFor()
			got, err := Codec{}.Render(stored, o)
			if err != nil {
				t.Fatalf("%s #%d: Render: %v", v, i, err)
			}
			if d := cmp.Diff(normalize(it.app), normalize(got)); d != "" {
				t.Fatalf("%s #%d: round trip (-sent +rendered):\n%s\nstored:\n%s", v, i, d, stored)
			}
			again, _, err := Codec{}.Apply(stored, got, o)
			if err != nil || !bytes.Equal(again, stored) {
				t.Fatalf("%s #%d: re-Apply changed the item (%v):\n%s\n---\n%s", v, i, err, stored, again)
			}
		}
	}
}

// TestRoundTripICalendar: a foreign task -> Render -> Apply(unchanged)
// keeps the stored text; changing the subject keeps every other property,
// alarm and component.
func TestRoundTripICalendar(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	prefs := [][]email.BodyPreference{nil, {{Type: 1}}, {{Type: 2}}}
	for i := 0; i < corpusSize; i++ {
		stored := genCalendar(r)
		o := opts(versions[i%len(versions)])
		o.BodyPrefs = prefs[i%len(prefs)]
		app, err := Codec{}.Render(stored, o)
		if err != nil {
			t.Fatalf("#%d: Render: %v\n%s", i, err, stored)
		}
		got, _, err := Codec{}.Apply(stored, app, o)
		if err != nil || !bytes.Equal(got, stored) {
			t.Fatalf("#%d: unchanged Apply changed the task (%v):\n%s\n---\n%s", i, err, stored, got)
		}
		changed, _, err := Codec{}.Apply(stored, with(app, wbxml.TasksSubject, "New subject"), o)
		if err != nil {
			t.Fatalf("#%d: Apply change: %v\n%s", i, err, stored)
		}
		before, after := semantic(t, stored), semantic(t, changed)
		ignore := map[string]bool{"SUMMARY": true, "DTSTAMP": true, "LAST-MODIFIED": true}
		for k, n := range before {
			if !ignore[strings.SplitN(k, "|", 3)[1]] && after[k] < n {
				t.Fatalf("#%d: lost %s\n%s\n---\n%s", i, k, stored, changed)
			}
		}
		if back, _ := (Codec{}).Render(changed, o); back.ChildText(wbxml.TasksSubject) != "New subject" {
			t.Fatalf("#%d: Subject not changed: %s", i, back)
		}
	}
}

// semantic counts the properties of every component as
// "path|NAME|params|value" lines.
func semantic(t *testing.T, b []byte) map[string]int {
	t.Helper()
	cal, err := ics.Decode(b)
	if err != nil {
		t.Fatalf("decode: %v\n%s", err, b)
	}
	out := map[string]int{}
	var walk func(c *ical.Component, path string)
	walk = func(c *ical.Component, path string) {
		path += "/" + c.Name
		for name, ps := range c.Props {
			for _, p := range ps {
				var params []string
				for k, vs := range p.Params {
					params = append(params, k+"="+strings.Join(vs, ","))
				}
				sort.Strings(params)
				out[path+"|"+name+"|"+strings.Join(params, ";")+"|"+p.Value]++
			}
		}
		for _, ch := range c.Children {
			walk(ch, path)
		}
	}
	walk(cal.Component, "")
	return out
}

// groups are elements that go together: a Change leaving out one of them
// leaves out the group (a date's local and UTC forms, the completion and
// its date, the reminder flag and time).
var groups = [][]wbxml.Tag{
	{wbxml.TasksStartDate, wbxml.TasksUtcStartDate}, {wbxml.TasksDueDate, wbxml.TasksUtcDueDate},
	{wbxml.TasksComplete, wbxml.TasksDateCompleted}, {wbxml.TasksReminderSet, wbxml.TasksReminderTime},
}

func groupOf(t wbxml.Tag) []wbxml.Tag {
	for _, g := range groups {
		for _, x := range g {
			if x == t {
				return g
			}
		}
	}
	return []wbxml.Tag{t}
}

// TestGhosting: leaving out ghosted elements keeps them; leaving out
// others removes them (elements always sent come back with their default).
func TestGhosting(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for i := 0; i < corpusSize; i++ {
		v := versions[i%len(versions)]
		it := genApp(r, v)
		o := opts(v)
		o.BodyPrefs = it.prefsFor()
		stored, _, err := Codec{}.Apply(nil, it.app, o)
		if err != nil {
			t.Fatal(err)
		}
		g := groupOf(it.app.Children[r.Intn(len(it.app.Children))].Tag)
		change := without(it.app, g...)
		o.Ghosted = func(t wbxml.Tag) bool {
			for _, x := range g {
				if x == t {
					return true
				}
			}
			return false
		}
		kept, _, err := Codec{}.Apply(stored, change, o)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := Codec{}.Render(kept, o)
		if d := cmp.Diff(normalize(it.app), normalize(got)); d != "" {
			t.Fatalf("#%d: ghosted %v not kept:\n%s", i, g, d)
		}
		o.Ghosted = nil
		removed, _, err := Codec{}.Apply(stored, change, o)
		if err != nil {
			t.Fatal(err)
		}
		want := change
		if def, ok := defaults[g[0]]; ok {
			want = with(change, g[0], def)
		}
		got, _ = Codec{}.Render(removed, o)
		if d := cmp.Diff(normalize(want), normalize(got)); d != "" {
			t.Fatalf("#%d: %v not removed:\n%s", i, g, d)
		}
	}
}

// TestServerZone: task dates do not depend on the server's zone
// (time.Local set as TZ would; the test must not run in parallel).
func TestServerZone(t *testing.T) {
	for _, zone := range []string{"Pacific/Kiritimati", "Pacific/Pago_Pago"} {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Skip(err)
		}
		func() {
			saved := time.Local
			time.Local = loc
			defer func() { time.Local = saved }()
			r := rand.New(rand.NewSource(4))
			for i := 0; i < 50; i++ {
				it := genApp(r, "16.1")
				stored, _, err := Codec{}.Apply(nil, it.app, opts("16.1"))
				if err != nil {
					t.Fatal(err)
				}
				o := opts("16.1")
				o.BodyPrefs = it.prefsFor()
				got, _ := Codec{}.Render(stored, o)
				if d := cmp.Diff(normalize(it.app), normalize(got)); d != "" {
					t.Fatalf("%s: %s", zone, d)
				}
			}
		}()
	}
}

// TestMalformedApplicationData: errors wrap item.ErrInvalid.
func TestMalformedApplicationData(t *testing.T) {
	ad := func(c ...*wbxml.Node) *wbxml.Node { return wbxml.E(wbxml.AirSyncApplicationData, c...) }
	rec := func(c ...*wbxml.Node) *wbxml.Node { return ad(wbxml.E(wbxml.TasksRecurrence, c...)) }
	typ, start := wbxml.T(wbxml.TasksType, "1"), wbxml.T(wbxml.TasksStart, "2024-03-01T00:00:00.000Z")
	cases := map[string]*wbxml.Node{
		"nil": nil, "wrong root": wbxml.E(wbxml.AirSyncCommands),
		"duplicate":        ad(wbxml.T(wbxml.TasksSubject, "a"), wbxml.T(wbxml.TasksSubject, "b")),
		"nested":           ad(wbxml.E(wbxml.TasksSubject, wbxml.T(wbxml.TasksType, "1"))),
		"importance":       ad(wbxml.T(wbxml.TasksImportance, "5")),
		"complete":         ad(wbxml.T(wbxml.TasksComplete, "yes")),
		"date completed":   ad(wbxml.T(wbxml.TasksComplete, "1"), wbxml.T(wbxml.TasksDateCompleted, "soon")),
		"sensitivity":      ad(wbxml.T(wbxml.TasksSensitivity, "9")),
		"reminder set":     ad(wbxml.T(wbxml.TasksReminderSet, "2")),
		"reminder time":    ad(wbxml.T(wbxml.TasksReminderSet, "1"), wbxml.T(wbxml.TasksReminderTime, "x")),
		"due":              ad(wbxml.T(wbxml.TasksDueDate, "2024-13-01T00:00:00.000Z")),
		"utc start":        ad(wbxml.T(wbxml.TasksUtcStartDate, "2024-03-01T25:00:00Z")),
		"inconsistent":     ad(wbxml.T(wbxml.TasksDueDate, "2024-03-05T00:00:00.000Z"), wbxml.T(wbxml.TasksUtcDueDate, "2024-03-08T00:00:00.000Z")),
		"categories":       ad(wbxml.E(wbxml.TasksCategories, wbxml.T(wbxml.TasksSubject, "x"))),
		"body type":        ad(wbxml.E(wbxml.AirSyncBaseBody, wbxml.T(wbxml.AirSyncBaseType, "0"))),
		"no type":          rec(start),
		"type 4":           rec(wbxml.T(wbxml.TasksType, "4"), start),
		"no start":         rec(typ),
		"bad start":        rec(typ, wbxml.T(wbxml.TasksStart, "x")),
		"bad until":        rec(typ, start, wbxml.T(wbxml.TasksUntil, "never")),
		"day of week":      rec(typ, start, wbxml.T(wbxml.TasksDayOfWeek, "200")),
		"interval":         rec(typ, start, wbxml.T(wbxml.TasksInterval, "0")),
		"week of month":    rec(typ, start, wbxml.T(wbxml.TasksWeekOfMonth, "6")),
		"first day":        rec(typ, start, wbxml.T(wbxml.TasksFirstDayOfWeek, "7")),
		"regenerate":       rec(typ, start, wbxml.T(wbxml.TasksRegenerate, "2")),
		"recurrence dup":   rec(typ, typ, start),
		"recurrence child": rec(typ, start, wbxml.E(wbxml.TasksInterval, wbxml.T(wbxml.TasksType, "1"))),
	}
	for name, app := range cases {
		for _, stored := range [][]byte{nil, []byte(sample)} {
			if _, _, err := (Codec{}).Apply(stored, app, opts("16.1")); !errors.Is(err, item.ErrInvalid) {
				t.Errorf("%s: error %v, want item.ErrInvalid", name, err)
			}
		}
	}
}

const sample = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTODO\r\nUID:u\r\nDTSTAMP:20240101T000000Z\r\n" +
	"SUMMARY:s\r\nDUE;VALUE=DATE:20240310\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"

// TestMalformedICalendar: Render and Index fail without panicking.
func TestMalformedICalendar(t *testing.T) {
	for _, s := range []string{
		"", "garbage", "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
		"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
		"BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nUID:x\r\n", "BEGIN:VCARD\r\nEND:VCARD\r\n",
		"BEGIN:VCALENDAR\r\nX;A=\"b\"\r\nEND:VCALENDAR\r\n", // go-ical panics on this
		"BEGIN:VCALENDAR\r\nX;A=\"b\"c:d\r\nEND:VCALENDAR\r\n",
		strings.Repeat("BEGIN:X\r\n", 100000),
		strings.Repeat("BEGIN:X\r\n", 10) + strings.Repeat("BEG\r\n IN:X\r\n", 10),
		strings.Repeat("x", ics.MaxStored+1),
	} {
		if _, err := (Codec{}).Render([]byte(s), opts("16.1")); err == nil {
			t.Errorf("Render(%.40q): no error", s)
		}
		if _, err := (Codec{}).Index([]byte(s)); err == nil {
			t.Errorf("Index(%.40q): no error", s)
		}
	}
}

// TestDates: a local midnight is stored as a DATE with the instant kept;
// other times in UTC with the local form; foreign zones are resolved.
func TestDates(t *testing.T) {
	app := wbxml.E(wbxml.AirSyncApplicationData,
		wbxml.T(wbxml.TasksDueDate, "2024-03-05T00:00:00.000Z"), wbxml.T(wbxml.TasksUtcDueDate, "2024-03-04T10:00:00.000Z"),
		wbxml.T(wbxml.TasksStartDate, "2024-03-01T00:00:00.000Z"), wbxml.T(wbxml.TasksUtcStartDate, "2024-02-29T10:00:00.000Z"))
	stored, ix, err := Codec{}.Apply(nil, app, opts("14.1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"DUE;VALUE=DATE;X-EAS-UTC=20240304T100000Z:20240305", "DTSTART;VALUE=DATE;X-EAS-UTC=20240229T100000Z:20240301"} {
		if !bytes.Contains(stored, []byte(want)) {
			t.Fatalf("missing %s in\n%s", want, stored)
		}
	}
	if !ix.End.Equal(time.Date(2024, 3, 4, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("End = %v", ix.End)
	}
	// Only the UTC due date is sent: the local one keeps the offset.
	moved, _, err := Codec{}.Apply(stored, with(without(app, wbxml.TasksDueDate), wbxml.TasksUtcDueDate, "2024-03-05T10:00:00.000Z"), opts("14.1"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := Codec{}.Render(moved, opts("14.1"))
	if n.ChildText(wbxml.TasksDueDate) != "2024-03-06T00:00:00.000Z" {
		t.Fatalf("DueDate = %s\n%s", n.ChildText(wbxml.TasksDueDate), moved)
	}
	foreign := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTODO\r\nUID:u\r\nDTSTAMP:20240101T000000Z\r\n" +
		"DUE;TZID=Europe/Berlin:20240705T170000\r\nCOMPLETED:20240706T080000Z\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
	n, err = Codec{}.Render([]byte(foreign), opts("14.1"))
	if err != nil || n.ChildText(wbxml.TasksDueDate) != "2024-07-05T17:00:00.000Z" ||
		n.ChildText(wbxml.TasksUtcDueDate) != "2024-07-05T15:00:00.000Z" || n.ChildText(wbxml.TasksComplete) != "1" ||
		n.ChildText(wbxml.TasksDateCompleted) != "2024-07-06T08:00:00.000Z" {
		t.Fatalf("foreign task: %s (%v)", n, err)
	}
}

// TestRepairForeign: a change to a task another client wrote with what
// go-ical's encoder rejects (a repeated PRIORITY, a CR in a value,
// DURATION beside DUE, no UID) is stored.
func TestRepairForeign(t *testing.T) {
	stored := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTODO\r\nDTSTAMP:20240101T000000Z\r\nPRIORITY:1\r\nPRIORITY:9\r\n" +
		"LOCATION:a\rb\r\nDUE:20240310T170000Z\r\nDTSTART:20240301T090000Z\r\nDURATION:PT1H\r\nX-Y;P=\"q\":v\r\n" +
		"END:VTODO\r\nEND:VCALENDAR\r\n"
	app, err := Codec{}.Render([]byte(stored), opts("16.1"))
	if err != nil {
		t.Fatal(err)
	}
	out, ix, err := Codec{}.Apply([]byte(stored), with(app, wbxml.TasksSubject, "x"), opts("16.1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PRIORITY:1\r\n", `LOCATION:a\nb`, "PRODID:", "UID:test-1@easd", "SUMMARY:x"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if bytes.Contains(out, []byte("DURATION")) || bytes.Contains(out, []byte("PRIORITY:9")) || ix.UID != "test-1@easd" {
		t.Errorf("not repaired (%+v):\n%s", ix, out)
	}
}
