package tz

import (
	"strings"
	"sync"
	"time"
)

// FromLocation returns the TIME_ZONE_INFORMATION of loc for year, as
// Exchange and Outlook send it: the rule in force that year, named with
// the zone's Windows id from CLDR (StandardName "W. Europe Standard Time",
// DaylightName "W. Europe Daylight Time"; empty when CLDR does not know
// the zone). Transitions are given in the local time before them (Windows
// convention: 02:00 for the European spring change, 03:00 for autumn).
//
// The blob describes one yearly rule, so some years are approximated:
//   - a year with a single offset change (a zone that stops or starts
//     daylight time for good) gets a rule that daylight time runs from the
//     year's start (or to its end); when it runs from the start, the rule
//     puts the last hour of the year in daylight time too;
//   - a year with more than two changes of the same two offsets
//     (Morocco before 2019) keeps daylight time from its first start to its
//     last end;
//   - a year with three or more distinct offsets keeps the last offset,
//     without daylight time.
func FromLocation(loc *time.Location, year int) TimeZone {
	from := time.Date(year, 1, 1, 0, 0, 0, 0, loc)
	to := time.Date(year+1, 1, 1, 0, 0, 0, 0, loc)
	_, off0 := from.Zone()
	z := fromChanges(year, off0, locChanges(loc, from, to))
	if id, ok := WindowsName(loc.String()); ok {
		z.StandardName = id
		z.DaylightName = id
		if s, ok := strings.CutSuffix(id, "Standard Time"); ok {
			z.DaylightName = s + "Daylight Time"
		}
	}
	return z
}

// fromChanges builds the one-year rule of a zone whose offset is off0
// seconds at the start of year and changes as cs (all within year).
func fromChanges(year, off0 int, cs []change) TimeZone {
	offs := map[int]bool{off0: true}
	for _, c := range cs {
		offs[c.off] = true
	}
	last := off0
	if len(cs) > 0 {
		last = cs[len(cs)-1].off
	}
	if len(offs) != 2 {
		return fixed(last)
	}
	std, dst := off0, off0
	for o := range offs {
		std, dst = min(std, o), max(dst, o)
	}
	var starts, ends []time.Time
	for _, c := range cs {
		if c.off == dst {
			starts = append(starts, c.at)
		} else {
			ends = append(ends, c.at)
		}
	}
	stdD, dstD := time.Duration(std)*time.Second, time.Duration(dst)*time.Second
	z := TimeZone{Bias: int32(-std / 60), DaylightBias: int32(-(dst - std) / 60)}
	if z.DaylightBias == 0 { // changes of less than a minute
		return fixed(last)
	}
	switch {
	case len(starts) == 0: // daylight time from the start of the year
		end := ends[0].Add(dstD)
		dec31 := time.Date(year, 12, 31, 0, 0, 0, 0, time.UTC)
		z.DaylightDate = ruleOf(dec31.Add(24*time.Hour - (dstD - stdD)))
		z.StandardDate = ruleOf(end)
	case len(ends) == 0: // daylight time to the end of the year
		z.DaylightDate = ruleOf(starts[0].Add(stdD))
		z.StandardDate = ruleOf(time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC))
	case off0 == dst: // southern hemisphere: daylight time over the new year
		z.StandardDate = ruleOf(ends[0].Add(dstD))
		z.DaylightDate = ruleOf(starts[len(starts)-1].Add(stdD))
	default:
		z.DaylightDate = ruleOf(starts[0].Add(stdD))
		z.StandardDate = ruleOf(ends[len(ends)-1].Add(dstD))
	}
	return z
}

// fixed is a zone of constant offset off seconds.
func fixed(off int) TimeZone { return TimeZone{Bias: int32(-off / 60)} }

// ruleOf returns the yearly rule that gives the wall time w (a UTC
// time.Time holding local wall clock) in w's year: the n-th weekday of the
// month, "last" (5) when no such weekday follows in the month.
func ruleOf(w time.Time) SystemTime {
	d := w.Day()
	week := (d-1)/7 + 1
	if d+7 > daysIn(w.Year(), w.Month()) {
		week = 5
	}
	return SystemTime{
		Month:        uint16(w.Month()),
		DayOfWeek:    uint16(w.Weekday()),
		Day:          uint16(week),
		Hour:         uint16(w.Hour()),
		Minute:       uint16(w.Minute()),
		Second:       uint16(w.Second()),
		Milliseconds: uint16(w.Nanosecond() / int(time.Millisecond)),
	}
}

// lookupTable returns the value of key in a table of "key<TAB>value" lines
// (the generated CLDR tables).
func lookupTable(table, key string) (string, bool) {
	if key == "" || strings.ContainsAny(key, "\t\n") {
		return "", false
	}
	i := strings.Index(table, "\n"+key+"\t")
	if i < 0 {
		return "", false
	}
	v := table[i+len(key)+2:]
	return v[:strings.IndexByte(v, '\n')], true
}

// windowsPrimary returns the IANA zone CLDR maps a Windows time zone id to
// for territory 001.
func windowsPrimary(id string) (string, bool) { return lookupTable(windowsPrimaryTable, id) }

// cldrName returns the name CLDR uses for an IANA zone with aliases
// ("Asia/Kolkata" -> "Asia/Calcutta"), or name itself.
func cldrName(name string) string {
	if c, ok := lookupTable(cldrAliasTable, name); ok {
		return c
	}
	return name
}

// WindowsName returns the Windows time zone id CLDR maps an IANA zone to
// ("Europe/Berlin" -> "W. Europe Standard Time"); aliases are accepted
// ("Asia/Kolkata" and "Asia/Calcutta").
func WindowsName(iana string) (string, bool) {
	if iana == time.UTC.String() {
		iana = "Etc/UTC"
	}
	return windowsID(cldrName(iana))
}

// IANAName returns the IANA zone CLDR maps a Windows time zone id to for
// territory 001 ("W. Europe Standard Time" -> "Europe/Berlin"). A daylight
// name ("W. Europe Daylight Time") is accepted for its standard id.
func IANAName(windows string) (string, bool) {
	w := strings.TrimSpace(windows)
	if iana, ok := windowsPrimary(w); ok {
		return iana, true
	}
	if s, ok := strings.CutSuffix(w, "Daylight Time"); ok {
		return windowsPrimary(s + "Standard Time")
	}
	return "", false
}

// IANA returns an IANA zone whose offsets in year are z's (the year
// matters: a blob describes one year's rule). It tries, in order, the
// Windows id in StandardName or DaylightName (via CLDR's territory 001
// zone), an IANA name a client put there, Etc/UTC for a zone without
// offset, and then every zone of CLDR's table, territory 001 zones first.
// A candidate is used only if its rules agree with z's. ok is false for a
// custom zone (no IANA zone has its rules): keep it as z (VTimezone).
func (z TimeZone) IANA(year int) (name string, ok bool) {
	try := func(n string) bool {
		if n == "" || n == "Local" {
			return false
		}
		loc, err := time.LoadLocation(n)
		return err == nil && z.EquivalentTo(loc, year)
	}
	for _, n := range []string{z.StandardName, z.DaylightName} {
		if iana, ok := IANAName(n); ok && try(iana) {
			return iana, true
		}
		if n = strings.TrimSpace(n); strings.Contains(n, "/") && try(n) {
			return n, true
		}
	}
	if z.StandardOffset() == 0 && !z.HasDST() && try("Etc/UTC") {
		return "Etc/UTC", true
	}
	// Cheap filter before the full comparison: the offsets in January and
	// July must match.
	jan := time.Date(year, 1, 15, 12, 0, 0, 0, time.UTC)
	jul := time.Date(year, 7, 15, 12, 0, 0, 0, time.UTC)
	for _, loc := range candidateZones() {
		_, o1 := jan.In(loc).Zone()
		_, o2 := jul.In(loc).Zone()
		if time.Duration(o1)*time.Second != z.Offset(jan) || time.Duration(o2)*time.Second != z.Offset(jul) {
			continue
		}
		if z.EquivalentTo(loc, year) {
			return loc.String(), true
		}
	}
	return "", false
}

// candidateZones are the installed zones of CLDR's table, territory 001
// zones first, loaded once: reading some 470 zoneinfo files for every
// custom blob would cost milliseconds. The slice is never modified.
var candidateZones = sync.OnceValue(func() []*time.Location {
	var out []*time.Location
	for _, list := range []string{primaryZones, otherZones} {
		for n := range strings.FieldsSeq(list) {
			if loc, err := time.LoadLocation(n); err == nil {
				out = append(out, loc)
			}
		}
	}
	return out
})
