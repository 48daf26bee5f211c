package calendar

import (
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/easd/easd/eas/tz"
	"github.com/easd/easd/wbxml"
	"github.com/emersion/go-ical"
	"github.com/teambition/rrule-go"
)

// storedSeries reads the master of a stored event: its RRULE and DTSTART
// (wall time in the zone its TZID names, resolved by the test through
// time.LoadLocation or the VTIMEZONE; a date for all-day events).
func storedSeries(t *testing.T, stored []byte) (rrule string, start time.Time, loc *time.Location, allDay bool) {
	t.Helper()
	cal, err := ical.NewDecoder(strings.NewReader(string(stored))).Decode()
	if err != nil {
		t.Fatal(err)
	}
	var master *ical.Component
	for _, ch := range cal.Children {
		if ch.Name == ical.CompEvent && ch.Props.Get(ical.PropRecurrenceID) == nil {
			master = ch
		}
	}
	if master == nil {
		t.Fatalf("no master in\n%s", stored)
	}
	p := master.Props.Get(ical.PropDateTimeStart)
	loc = time.UTC
	if tzid := p.Params.Get(ical.PropTimezoneID); tzid != "" {
		if l, err := time.LoadLocation(tzid); err == nil {
			loc = l
		} else {
			for _, ch := range cal.Children {
				if ch.Name == ical.CompTimezone && ch.Props.Get(ical.PropTimezoneID).Value == tzid {
					wall, _ := time.Parse("20060102T150405", p.Value)
					b, err := tz.FromVTimezone(ch, wall.Year())
					if err != nil {
						t.Fatal(err)
					}
					loc = b.Location(tzid)
				}
			}
		}
	}
	allDay = len(p.Value) == 8
	switch {
	case allDay:
		start, err = time.Parse("20060102", p.Value)
	case strings.HasSuffix(p.Value, "Z"):
		start, err = time.Parse("20060102T150405Z", p.Value)
	default:
		start, err = time.ParseInLocation("20060102T150405", p.Value, loc)
	}
	if err != nil {
		t.Fatal(err)
	}
	if r := master.Props.Get(ical.PropRecurrenceRule); r != nil {
		rrule = r.Value
	}
	return rrule, start.In(loc), loc, allDay
}

// TestRecurrenceExpansion: the occurrences rrule-go expands from the
// stored RRULE are those the EAS recurrence means, as an independent
// day-by-day expander of MS-ASCAL's patterns finds them, in the event's
// zone (DST included) and for all-day series; and the index ends with the
// last occurrence.
func TestRecurrenceExpansion(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	const cases, limit = 1500, 80
	for i := range cases {
		v := versions[i%len(versions)]
		var loc *time.Location
		blob := customTestZone()
		custom := r.Intn(6) == 0
		if custom {
			loc = blob.Location("custom")
		} else {
			var err error
			if loc, err = time.LoadLocation(pick(r, testZoneNames...)); err != nil {
				t.Skip(err)
			}
		}
		y, m, d := 2020+r.Intn(10), time.Month(1+r.Intn(12)), 1+r.Intn(28)
		p, y, m, d := genPattern(r, v, y, m, d)
		if !custom {
			blob = tz.FromLocation(loc, y)
		}
		allDay := r.Intn(4) == 0
		h, mi := r.Intn(24), 15*r.Intn(4)
		var start, end, until time.Time
		switch {
		case allDay && v >= "16":
			start = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
			end = start.AddDate(0, 0, 1)
			until = p.until
		case allDay:
			start, end = localMidnight(y, m, d, loc), localMidnight(y, m, d+1, loc)
			until = localMidnight(p.until.Year(), p.until.Month(), p.until.Day(), loc)
		default:
			start = time.Date(y, m, d, h, mi, 0, 0, loc).UTC()
			end = start.Add(90 * time.Minute)
			until = time.Date(p.until.Year(), p.until.Month(), p.until.Day(), r.Intn(24), 0, 0, 0, loc).UTC()
		}
		app := wbxml.E(wbxml.AirSyncApplicationData,
			wbxml.T(wbxml.CalendarTimezone, blob.Encode()),
			wbxml.T(wbxml.CalendarAllDayEvent, boolText(allDay)),
			wbxml.T(wbxml.CalendarStartTime, compact(start)),
			wbxml.T(wbxml.CalendarEndTime, compact(end)),
			p.node(v, until, r))
		stored, idx, err := Codec{}.Apply(nil, app, testOptions(v, "rec"))
		if err != nil {
			t.Fatalf("case %d: %v\n%v", i, err, app)
		}
		rule, dtstart, sloc, sAllDay := storedSeries(t, stored)
		if sAllDay != allDay {
			t.Fatalf("case %d: all-day %v stored as %v", i, allDay, sAllDay)
		}
		opt, err := rrule.StrToROption(rule)
		if err != nil {
			t.Fatalf("case %d: RRULE %q: %v", i, rule, err)
		}
		// Expansion happens in local time (RFC 5545 3.3.10): in floating
		// time, each occurrence placed in the zone afterwards (rrule-go
		// puts occurrences on days whose midnight a DST change skips on
		// the day before).
		floating := func(t time.Time) time.Time {
			l := t.In(sloc)
			return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), 0, time.UTC)
		}
		opt.Dtstart = floating(dtstart)
		if !opt.Until.IsZero() && strings.Contains(rule, "UNTIL=") && strings.Contains(rule, "Z") {
			opt.Until = floating(opt.Until)
		}
		rr, err := rrule.NewRRule(*opt)
		if err != nil {
			t.Fatal(err)
		}
		first := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		horizon := first.AddDate(8, 0, 0)
		wantDates := expandEAS(p, first, horizon, limit)
		var got, want []string
		next := rr.Iterator()
		for range limit {
			o, ok := next()
			if !ok {
				break
			}
			if time.Date(o.Year(), o.Month(), o.Day(), 0, 0, 0, 0, time.UTC).After(horizon) {
				break
			}
			s := o.Format("20060102")
			if !allDay {
				s = time.Date(o.Year(), o.Month(), o.Day(), o.Hour(), o.Minute(), 0, 0, sloc).UTC().Format(time.RFC3339)
			}
			got = append(got, s)
		}
		for _, wd := range wantDates {
			if allDay {
				want = append(want, wd.Format("20060102"))
				continue
			}
			want = append(want, time.Date(wd.Year(), wd.Month(), wd.Day(), h, mi, 0, 0, loc).UTC().Format(time.RFC3339))
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("case %d (%s, %v, zone %s as %s): %v\nRRULE %s\n got %v\nwant %v", i, v, allDay, loc, sloc, p, rule, got, want)
		}
		// The index ends with the last occurrence of a finite series.
		if p.count > 0 && p.count <= limit && !allDay && len(want) == p.count {
			last, _ := time.Parse(time.RFC3339, want[len(want)-1])
			if wantEnd := last.Add(end.Sub(start)); !idx.End.Equal(wantEnd) {
				t.Fatalf("case %d: Index End %v, want %v", i, idx.End, wantEnd)
			}
		}
		if p.count == 0 && p.until.IsZero() && !idx.End.IsZero() {
			t.Fatalf("case %d: endless series with Index End %v", i, idx.End)
		}
	}
}

// String describes a pattern in failures.
func (p easPattern) String() string {
	return "type " + itoaT(p.typ) + " every " + itoaT(p.interval) + " count " + itoaT(p.count) + " until " +
		p.until.Format("2006-01-02") + " dow " + itoaT(p.dow) + " dom " + itoaT(p.dom) + " week " + itoaT(p.week) +
		" month " + itoaT(p.moy) + " wkst " + itoaT(p.wkst)
}

func itoaT(n int) string {
	return strings.TrimSpace(strings.Replace(time.Duration(n).String(), "ns", "", 1))
}

// TestParseRRULE checks RRULE forms from other clients that map to EAS
// patterns, and some that do not.
func TestParseRRULE(t *testing.T) {
	start := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC) // a Tuesday
	for _, c := range []struct {
		rule string
		ok   bool
		want string
	}{
		{"FREQ=WEEKLY", true, "type 1 every 1 count 0 until 0001-01-01 00:00:00 +0000 UTC dow 100 dom 0 week 0 month 0 cal -1 leap -1 wkst -1"},
		{"FREQ=MONTHLY;BYDAY=-1FR", true, "type 3 every 1 count 0 until 0001-01-01 00:00:00 +0000 UTC dow 100000 dom 0 week 5 month 0 cal -1 leap -1 wkst -1"},
		{"FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", true, "type 3 every 1 count 0 until 0001-01-01 00:00:00 +0000 UTC dow 111110 dom 0 week 5 month 0 cal -1 leap -1 wkst -1"},
		{"FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=28,29;BYSETPOS=-1;COUNT=3", true, "type 5 every 1 count 3 until 0001-01-01 00:00:00 +0000 UTC dow 0 dom 29 week 0 month 2 cal -1 leap -1 wkst -1"},
		{"FREQ=YEARLY;BYMONTH=11;BYDAY=4TH;INTERVAL=2;WKST=SU", true, "type 6 every 2 count 0 until 0001-01-01 00:00:00 +0000 UTC dow 10000 dom 0 week 4 month 11 cal -1 leap -1 wkst 0"},
		{"FREQ=DAILY;BYHOUR=9,17", false, ""},
		{"FREQ=HOURLY;INTERVAL=4", false, ""},
		{"FREQ=YEARLY;BYWEEKNO=20", false, ""},
		{"FREQ=MONTHLY;BYDAY=1MO,3MO", false, ""},
		{"FREQ=YEARLY;BYMONTH=1,7", false, ""},
		{"FREQ=MONTHLY;RSCALE=HEBREW", false, ""},
	} {
		r, ok := parseRRULE(c.rule, start, false)
		if ok != c.ok || (ok && r.String() != c.want) {
			t.Errorf("parseRRULE(%s) = %v, %v; want %v %s", c.rule, r, ok, c.ok, c.want)
		}
	}
}
