package calendar

import (
	"strings"
	"testing"
	"time"

	"github.com/easd/easd/eas/tz"
	"github.com/easd/easd/wbxml"
	"github.com/emersion/go-ical"
)

// weeklyAt9 is a weekly Monday event at 09:00 in the zone of blob whose
// first occurrence is start, for 52 weeks (across both DST changes).
func weeklyAt9(blob tz.TimeZone, start time.Time) *wbxml.Node {
	return wbxml.E(wbxml.AirSyncApplicationData,
		wbxml.T(wbxml.CalendarTimezone, blob.Encode()),
		wbxml.T(wbxml.CalendarAllDayEvent, "0"),
		wbxml.T(wbxml.CalendarStartTime, compact(start)),
		wbxml.T(wbxml.CalendarEndTime, compact(start.Add(time.Hour))),
		wbxml.T(wbxml.CalendarSubject, "09:00"),
		wbxml.E(wbxml.CalendarRecurrence, wbxml.T(wbxml.CalendarType, "1"), wbxml.T(wbxml.CalendarInterval, "1"),
			wbxml.T(wbxml.CalendarDayOfWeek, "2"), wbxml.T(wbxml.CalendarOccurrences, "52")))
}

// TestLocalTimeAcrossZones: in each test zone (and a custom one), an event
// at 09:00 local stays at 09:00 local: its stored occurrences fall at
// 09:00 in the zone all year (both sides of DST), it renders to the same
// StartTime and an equivalent Timezone, and a custom zone keeps its rules.
func TestLocalTimeAcrossZones(t *testing.T) {
	type zc struct {
		name string
		loc  *time.Location
		blob tz.TimeZone
	}
	var zones []zc
	for _, n := range testZoneNames {
		loc, err := time.LoadLocation(n)
		if err != nil {
			t.Skipf("zone %s: %v", n, err)
		}
		zones = append(zones, zc{n, loc, tz.FromLocation(loc, 2026)})
	}
	custom := customTestZone()
	zones = append(zones, zc{"custom", custom.Location("custom"), custom})
	iosStyle := zones[1]
	iosStyle.name, iosStyle.blob.StandardName, iosStyle.blob.DaylightName = "Europe/Berlin without names", "", ""
	zones = append(zones, iosStyle)
	if len(zones) < 31 {
		t.Fatalf("%d zones", len(zones))
	}
	for _, z := range zones {
		for _, v := range []string{"12.1", "14.1", "16.1"} {
			start := time.Date(2026, 1, 5, 9, 0, 0, 0, z.loc) // a Monday
			stored, _, err := Codec{}.Apply(nil, weeklyAt9(z.blob, start.UTC()), testOptions(v, "u"))
			if err != nil {
				t.Fatalf("%s %s: %v", z.name, v, err)
			}
			c, err := decodeCalendar(stored)
			if err != nil {
				t.Fatal(err)
			}
			cx := newCtx(c, testOptions(v, "u"))
			s, ok := cx.seriesRule()
			if !ok {
				t.Fatalf("%s: no series in\n%s", z.name, stored)
			}
			next := s.rule.Iterator()
			for n := 0; n < 52; n++ {
				o, ok := next()
				if !ok {
					t.Fatalf("%s %s: %d occurrences", z.name, v, n)
				}
				at := s.at(o).In(z.loc)
				if at.Hour() != 9 || at.Minute() != 0 || at.Weekday() != time.Monday {
					t.Fatalf("%s %s: occurrence %v is not Monday 09:00 local (stored zone %s)\n%s", z.name, v, at, s.loc, stored)
				}
			}
			out, err := Codec{}.Render(stored, testOptions(v, "u"))
			if err != nil {
				t.Fatal(err)
			}
			if got := out.ChildText(wbxml.CalendarStartTime); got != compact(start) {
				t.Fatalf("%s %s: StartTime %s, want %s", z.name, v, got, compact(start))
			}
			back, err := tz.Parse(out.ChildText(wbxml.CalendarTimezone))
			if err != nil || !back.Equivalent(z.blob, 2026) {
				t.Fatalf("%s %s: Timezone %v, want %v (%v)", z.name, v, back, z.blob, err)
			}
			if z.name == "custom" && !strings.Contains(string(stored), "BEGIN:VTIMEZONE") {
				t.Fatalf("custom zone without VTIMEZONE:\n%s", stored)
			}
			// A single event in summer: 09:00 local after a round trip.
			summer := time.Date(2026, 7, 15, 9, 0, 0, 0, z.loc)
			one := weeklyAt9(z.blob, summer.UTC())
			one.Children = one.Children[:len(one.Children)-1]
			stored, _, err = Codec{}.Apply(nil, one, testOptions(v, "u"))
			if err != nil {
				t.Fatal(err)
			}
			out, _ = Codec{}.Render(stored, testOptions(v, "u"))
			st, _ := parseEASTime(out.ChildText(wbxml.CalendarStartTime))
			if l := st.In(z.loc); l.Hour() != 9 || l.Day() != 15 {
				t.Fatalf("%s %s: summer event at %v local", z.name, v, l)
			}
		}
	}
}

// TestAllDayKeepsDate: an all-day event keeps its date in every zone, the
// date line's included (UTC+14, UTC-11, UTC-12), whichever way the client
// writes it: local midnight in its zone (12.x/14.x), the date as midnight
// UTC (16.x, with or without Timezone).
func TestAllDayKeepsDate(t *testing.T) {
	zones := append([]string{"Pacific/Kiritimati", "Pacific/Pago_Pago", "Etc/GMT+12", "Pacific/Tongatapu", "Asia/Kathmandu"}, testZoneNames...)
	for _, n := range zones {
		loc, err := time.LoadLocation(n)
		if err != nil {
			t.Skipf("zone %s: %v", n, err)
		}
		for _, d := range []time.Time{time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)} {
			blob := tz.FromLocation(loc, 2026)
			local := localMidnight(d.Year(), d.Month(), d.Day(), loc)
			localEnd := localMidnight(d.Year(), d.Month(), d.Day()+1, loc)
			for _, in := range []struct {
				v          string
				start, end time.Time
				withTZ     bool
			}{
				{"12.1", local, localEnd, true},
				{"14.1", local, localEnd, true},
				{"16.1", d, d.AddDate(0, 0, 1), true},
				{"16.1", d, d.AddDate(0, 0, 1), false},
			} {
				app := wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.CalendarAllDayEvent, "1"),
					wbxml.T(wbxml.CalendarStartTime, compact(in.start)), wbxml.T(wbxml.CalendarEndTime, compact(in.end)),
					wbxml.T(wbxml.CalendarSubject, "holiday"))
				if in.withTZ {
					app.Append(wbxml.T(wbxml.CalendarTimezone, blob.Encode()))
				}
				stored, idx, err := Codec{}.Apply(nil, app, testOptions(in.v, "u"))
				if err != nil {
					t.Fatal(err)
				}
				want := "DTSTART;VALUE=DATE:" + d.Format("20060102")
				if !strings.Contains(string(stored), want) || !strings.Contains(string(stored), "DTEND;VALUE=DATE:"+d.AddDate(0, 0, 1).Format("20060102")) {
					t.Fatalf("%s %s (%s, tz %v): stored\n%s\nwant %s", n, d.Format("2006-01-02"), in.v, in.withTZ, stored, want)
				}
				if !idx.Start.Before(local.Add(time.Second)) || !idx.End.After(localEnd.Add(-time.Second)) {
					t.Fatalf("%s: index %v..%v does not cover %v..%v", n, idx.Start, idx.End, local, localEnd)
				}
				// Every version reads back the same date.
				for _, v := range []string{"12.1", "14.1", "16.1"} {
					out, err := Codec{}.Render(stored, testOptions(v, "u"))
					if err != nil {
						t.Fatal(err)
					}
					z, err := tz.Parse(out.ChildText(wbxml.CalendarTimezone))
					if err != nil {
						t.Fatal(err)
					}
					st, _ := parseEASTime(out.ChildText(wbxml.CalendarStartTime))
					got := st.Add(z.Offset(st))
					if v == "16.1" {
						got = st
					}
					if got.Format("20060102") != d.Format("20060102") || got.Hour() != 0 {
						t.Fatalf("%s: stored by %s, rendered to %s as %v with %v", n, in.v, v, st, z)
					}
					if v != "16.1" && in.withTZ && !z.Equivalent(blob, 2026) {
						t.Fatalf("%s: %s client gets zone %v, sent %v", n, v, z, blob)
					}
				}
			}
		}
	}
}

// TestZoneKeptOnEcho: an event stored with a TZID (as a CalDAV client
// wrote it) keeps that TZID when a phone sends the event back with an
// equivalent blob, and moves to the phone's zone when the blob differs.
func TestZoneKeptOnEcho(t *testing.T) {
	stored := []byte(strings.ReplaceAll(`BEGIN:VCALENDAR
PRODID:x
VERSION:2.0
BEGIN:VEVENT
UID:zone-1
DTSTAMP:20260101T000000Z
DTSTART;TZID=Europe/Zurich:20260310T100000
DTEND;TZID=Europe/Zurich:20260310T110000
SUMMARY:Zurich
END:VEVENT
END:VCALENDAR
`, "\n", "\r\n"))
	o := testOptions("14.1", "u")
	app, err := Codec{}.Render(stored, o)
	if err != nil {
		t.Fatal(err)
	}
	// The phone changes the subject only: Zurich stays, though the blob
	// names W. Europe Standard Time (Berlin).
	for _, ch := range app.Children {
		if ch.Tag == wbxml.CalendarSubject {
			ch.Value = []byte("Zürich")
		}
	}
	after, _, err := Codec{}.Apply(stored, app, o)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(after), "DTSTART;TZID=Europe/Zurich:20260310T100000") {
		t.Fatalf("zone not kept:\n%s", after)
	}
	// A phone in New York moves it: same instant, its zone.
	ny, _ := time.LoadLocation("America/New_York")
	for _, ch := range app.Children {
		if ch.Tag == wbxml.CalendarTimezone {
			ch.Value = []byte(tz.FromLocation(ny, 2026).Encode())
		}
	}
	after, _, err = Codec{}.Apply(after, app, o)
	if err != nil {
		t.Fatal(err)
	}
	cal, _ := decodeCalendar(after)
	p := masterEvent(cal).Props.Get(ical.PropDateTimeStart)
	if p.Params.Get(ical.PropTimezoneID) != "America/New_York" || p.Value != "20260310T050000" {
		t.Fatalf("DTSTART %v:\n%s", p, after)
	}
}
