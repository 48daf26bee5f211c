package tz

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-ical"
	"github.com/teambition/rrule-go"
)

// PropBlob is the VTIMEZONE property that keeps the exact blob a VTIMEZONE
// was made from (VTimezone), so that FromVTimezone gives it back with its
// names and details while the STANDARD/DAYLIGHT rules still agree.
const PropBlob = "X-EAS-TIMEZONE"

// vtimezoneEpoch is the year of the DTSTART of the observances VTimezone
// writes (a common choice; RRULEs carry them to any later year).
const vtimezoneEpoch = 1970

// byDay returns the RRULE BYDAY name of a weekday (0 = Sunday).
func byDay(d uint16) string { return [7]string{"SU", "MO", "TU", "WE", "TH", "FR", "SA"}[d%7] }

// VTimezone returns z as an iCalendar VTIMEZONE (RFC 5545 3.6.5) with
// TZID tzid: a STANDARD observance and, with daylight time, a DAYLIGHT
// one, each with a yearly RRULE (BYMONTH and BYDAY, -1 for "last";
// BYMONTHDAY for absolute dates), DTSTART in 1970, TZNAME from the blob's
// names, and the blob itself in X-EAS-TIMEZONE. Milliseconds of the
// transition times are dropped from the rules.
func (z TimeZone) VTimezone(tzid string) *ical.Component {
	c := ical.NewComponent(ical.CompTimezone)
	c.Props.SetText(ical.PropTimezoneID, tzid)
	blob := ical.NewProp(PropBlob)
	blob.Value = z.Encode()
	c.Props.Set(blob)
	obs := func(name string, t SystemTime, from, to time.Duration, tzname string) *ical.Component {
		o := ical.NewComponent(name)
		start := time.Date(vtimezoneEpoch, 1, 1, 0, 0, 0, 0, time.UTC)
		if t.Month != 0 {
			start = t.wall(vtimezoneEpoch).Truncate(time.Second)
			rule := fmt.Sprintf("FREQ=YEARLY;BYMONTH=%d;BYDAY=%d%s", t.Month, weekNumber(t.Day), byDay(t.DayOfWeek))
			if t.Year != 0 {
				rule = fmt.Sprintf("FREQ=YEARLY;BYMONTH=%d;BYMONTHDAY=%d", t.Month, t.Day)
			}
			r := ical.NewProp(ical.PropRecurrenceRule)
			r.Value = rule
			o.Props.Set(r)
		}
		dt := ical.NewProp(ical.PropDateTimeStart)
		dt.Value = start.Format("20060102T150405")
		o.Props.Set(dt)
		for _, p := range []struct {
			name string
			off  time.Duration
		}{{ical.PropTimezoneOffsetFrom, from}, {ical.PropTimezoneOffsetTo, to}} {
			pr := ical.NewProp(p.name)
			pr.Value = icalOffset(p.off)
			o.Props.Set(pr)
		}
		if tzname != "" {
			o.Props.SetText(ical.PropTimezoneName, tzname)
		}
		return o
	}
	std, dst := z.StandardOffset(), z.DaylightOffset()
	if !z.HasDST() {
		c.Children = append(c.Children, obs(ical.CompTimezoneStandard, SystemTime{}, std, std, z.StandardName))
		return c
	}
	c.Children = append(c.Children,
		obs(ical.CompTimezoneStandard, z.StandardDate, dst, std, z.StandardName),
		obs(ical.CompTimezoneDaylight, z.DaylightDate, std, dst, z.DaylightName))
	return c
}

// weekNumber is the BYDAY ordinal of a SYSTEMTIME Day: 1 to 4, -1 for 5.
func weekNumber(day uint16) int {
	if day >= 5 {
		return -1
	}
	return int(day)
}

// icalOffset renders a UTC offset as RFC 5545 UTC-OFFSET (+hhmm[ss]).
func icalOffset(d time.Duration) string {
	sign := "+"
	if d < 0 {
		sign, d = "-", -d
	}
	s := int(d / time.Second)
	if s%60 != 0 {
		return fmt.Sprintf("%s%02d%02d%02d", sign, s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%s%02d%02d", sign, s/3600, s/60%60)
}

// parseICalOffset reads a UTC-OFFSET value (+hhmm or +hhmmss); the
// result is in seconds.
func parseICalOffset(v string) (int, error) {
	v = strings.TrimSpace(v)
	bad := fmt.Errorf("tz: bad UTC offset %q", v)
	if (len(v) != 5 && len(v) != 7) || (v[0] != '+' && v[0] != '-') {
		return 0, bad
	}
	for _, c := range v[1:] {
		if c < '0' || c > '9' {
			return 0, bad
		}
	}
	h, _ := strconv.Atoi(v[1:3])
	m, _ := strconv.Atoi(v[3:5])
	s := 0
	if len(v) == 7 {
		s, _ = strconv.Atoi(v[5:7])
	}
	if m > 59 || s > 59 || h*60+m > maxBiasMinutes {
		return 0, bad
	}
	n := h*3600 + m*60 + s
	if v[0] == '-' {
		n = -n
	}
	return n, nil
}

// onset is the start of an observance: from at (UTC) on, offset to
// seconds, named name.
type onset struct {
	at   time.Time
	from int
	to   int
	name string
	dst  bool
}

// maxOnsets bounds the observance starts FromVTimezone looks at.
const maxOnsets = 4096

// FromVTimezone returns the TIME_ZONE_INFORMATION of an iCalendar
// VTIMEZONE for year: the observances (STANDARD and DAYLIGHT, their
// DTSTART, RRULE and RDATE) in force that year, reduced to one yearly rule
// as FromLocation does; names from their TZNAME. If the VTIMEZONE carries
// the blob it was made from (X-EAS-TIMEZONE) and its observances still
// agree with it, that blob is returned exactly.
func FromVTimezone(c *ical.Component, year int) (TimeZone, error) {
	if c == nil || c.Name != ical.CompTimezone {
		return TimeZone{}, errors.New("tz: not a VTIMEZONE")
	}
	var ons []onset
	winFrom := time.Date(year-1, 1, 1, 0, 0, 0, 0, time.UTC)
	winTo := time.Date(year+2, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, o := range c.Children {
		if o.Name != ical.CompTimezoneStandard && o.Name != ical.CompTimezoneDaylight {
			continue
		}
		got, err := observanceOnsets(o, winFrom, winTo)
		if err != nil {
			return TimeZone{}, err
		}
		ons = append(ons, got...)
		if len(ons) > maxOnsets {
			return TimeZone{}, errors.New("tz: VTIMEZONE has too many observances")
		}
	}
	if len(ons) == 0 {
		return TimeZone{}, errors.New("tz: VTIMEZONE without usable observance")
	}
	sort.SliceStable(ons, func(i, j int) bool { return ons[i].at.Before(ons[j].at) })
	// The offset at a UTC instant: TZOFFSETTO of the latest onset at or
	// before it; before the first onset, its TZOFFSETFROM.
	offAt := func(t time.Time) (int, int) {
		i := sort.Search(len(ons), func(i int) bool { return ons[i].at.After(t) })
		if i == 0 {
			return ons[0].from, -1
		}
		return ons[i-1].to, i - 1
	}
	off0, _ := offAt(time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC))
	from := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Duration(off0) * time.Second)
	off0, _ = offAt(from)
	from = time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Duration(off0) * time.Second)
	offEnd, _ := offAt(time.Date(year+1, 1, 1, 0, 0, 0, 0, time.UTC))
	to := time.Date(year+1, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Duration(offEnd) * time.Second)
	var cs []change
	prev := off0
	var stdName, dstName string
	for _, on := range ons {
		if on.at.Before(from) || !on.at.Before(to) {
			continue
		}
		if on.to != prev {
			cs = append(cs, change{on.at, on.to})
			prev = on.to
		}
	}
	// Names: of the observances in force during the year.
	for _, on := range ons {
		if on.at.Before(to) && on.name != "" {
			if on.dst {
				dstName = on.name
			} else {
				stdName = on.name
			}
		}
	}
	z := fromChanges(year, off0, cs)
	z.StandardName = stdName
	z.DaylightName = dstName
	if !z.HasDST() && z.DaylightName == "" {
		z.DaylightName = z.StandardName
	}
	if p := c.Props.Get(PropBlob); p != nil {
		if zx, err := Parse(p.Value); err == nil && agrees(zx, year, offAt, ons) {
			return zx, nil
		}
	}
	return z, nil
}

// agrees reports whether z gives the offsets of the observances ons (as
// offAt reads them) throughout year, to the second.
func agrees(z TimeZone, year int, offAt func(time.Time) (int, int), ons []onset) bool {
	from, to := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(year+1, 1, 1, 0, 0, 0, 0, time.UTC)
	points := []time.Time{from}
	for _, on := range ons {
		if !on.at.Before(from) && on.at.Before(to) {
			points = append(points, on.at)
		}
	}
	for _, tr := range z.transitionsBetween(from, to) {
		points = append(points, tr.at)
	}
	for _, p := range points {
		p = p.Truncate(time.Second).Add(time.Second)
		if off, _ := offAt(p); time.Duration(off)*time.Second != z.Offset(p) {
			return false
		}
	}
	return true
}

// observanceOnsets returns the starts of a STANDARD or DAYLIGHT
// observance within [winFrom, winTo), plus the last one before winFrom.
func observanceOnsets(o *ical.Component, winFrom, winTo time.Time) ([]onset, error) {
	get := func(name string) string {
		if p := o.Props.Get(name); p != nil {
			return p.Value
		}
		return ""
	}
	fromOff, err := parseICalOffset(get(ical.PropTimezoneOffsetFrom))
	if err != nil {
		return nil, err
	}
	toOff, err := parseICalOffset(get(ical.PropTimezoneOffsetTo))
	if err != nil {
		return nil, err
	}
	name := ""
	if p := o.Props.Get(ical.PropTimezoneName); p != nil {
		name, _ = p.Text()
	}
	start, err := parseWall(get(ical.PropDateTimeStart))
	if err != nil {
		return nil, err
	}
	base := onset{from: fromOff, to: toOff, name: name, dst: o.Name == ical.CompTimezoneDaylight}
	mk := func(wall time.Time) onset {
		b := base
		b.at = wall.Add(-time.Duration(fromOff) * time.Second)
		return b
	}
	// Onsets are wall times; widen the window by a day for the offset.
	lo, hi := winFrom.Add(-48*time.Hour), winTo.Add(48*time.Hour)
	var out []onset
	var before *onset
	add := func(w time.Time) {
		on := mk(w)
		switch {
		case on.at.Before(lo):
			if before == nil || on.at.After(before.at) {
				before = &on
			}
		case on.at.Before(hi):
			out = append(out, on)
		}
	}
	add(start)
	for _, p := range o.Props.Values(ical.PropRecurrenceDates) {
		for v := range strings.SplitSeq(p.Value, ",") {
			if w, err := parseWall(v); err == nil {
				add(w)
			}
		}
	}
	if p := o.Props.Get(ical.PropRecurrenceRule); p != nil {
		opt, err := rrule.StrToROption(strings.TrimSpace(p.Value))
		if err != nil {
			return nil, fmt.Errorf("tz: VTIMEZONE RRULE: %w", err)
		}
		if opt.Freq != rrule.YEARLY && opt.Freq != rrule.MONTHLY {
			return nil, fmt.Errorf("tz: VTIMEZONE RRULE of frequency %v", opt.Freq)
		}
		opt.Dtstart = start
		// rrule-go stops about 292 years after DTSTART without UNTIL or
		// COUNT; an unbounded rule is moved forward by whole years.
		if opt.Count == 0 && opt.Until.IsZero() && start.Year() < lo.Year()-2 {
			opt.Dtstart = start.AddDate(lo.Year()-2-start.Year(), 0, 0)
		}
		r, err := rrule.NewRRule(*opt)
		if err != nil {
			return nil, fmt.Errorf("tz: VTIMEZONE RRULE: %w", err)
		}
		if w := r.Before(lo, false); !w.IsZero() && !w.Before(start) {
			add(w)
		}
		for _, w := range r.Between(lo.Add(-24*time.Hour), hi.Add(24*time.Hour), true) {
			add(w)
		}
	}
	if before != nil {
		out = append(out, *before)
	}
	return out, nil
}

// parseWall reads a DATE-TIME (local or UTC) or DATE as a wall time.
func parseWall(v string) (time.Time, error) {
	v = strings.TrimSuffix(strings.TrimSpace(v), "Z")
	for _, f := range []string{"20060102T150405", "20060102"} {
		if t, err := time.Parse(f, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("tz: bad date-time %q", v)
}
