package tz

import (
	"encoding/binary"
	"fmt"
	"sort"
	"time"
)

// transition is a change of z's offset: from at (UTC) on, daylight time
// (dst) or standard time.
type transition struct {
	at  time.Time
	dst bool
}

// wall returns the local wall-clock time (as a UTC time.Time) at which t
// happens in year. A yearly rule picks the Day-th DayOfWeek of Month (5 =
// last, MS-ASDTYPE 2.6.4); an absolute date keeps its Month and Day (29
// February becomes the 28th in other years).
func (t SystemTime) wall(year int) time.Time {
	m := time.Month(t.Month)
	n := daysIn(year, m)
	var day int
	if t.Year != 0 {
		day = min(int(t.Day), n)
	} else {
		first := time.Date(year, m, 1, 0, 0, 0, 0, time.UTC).Weekday()
		day = 1 + (int(t.DayOfWeek)-int(first)+7)%7 + 7*(int(t.Day)-1)
		for day > n {
			day -= 7
		}
	}
	return time.Date(year, m, day, int(t.Hour), int(t.Minute), int(t.Second), int(t.Milliseconds)*int(time.Millisecond), time.UTC)
}

// transitionsIn returns z's two transitions of year in UTC: the start of
// daylight time (DaylightDate, given in standard local time) and its end
// (StandardDate, given in daylight local time). z must have DST.
func (z TimeZone) transitionsIn(year int) [2]transition {
	return [2]transition{
		{z.DaylightDate.wall(year).Add(-z.StandardOffset()), true},
		{z.StandardDate.wall(year).Add(-z.DaylightOffset()), false},
	}
}

// inDST reports whether daylight time is in force at utc: the latest
// transition at or before utc (of the surrounding years) starts it.
func (z TimeZone) inDST(utc time.Time) bool {
	y := utc.Add(z.StandardOffset()).Year()
	var last transition
	found := false
	for yy := y - 1; yy <= y+1; yy++ {
		for _, tr := range z.transitionsIn(yy) {
			if !tr.at.After(utc) && (!found || !tr.at.Before(last.at)) {
				last, found = tr, true
			}
		}
	}
	return found && last.dst
}

// Offset returns z's UTC offset at the instant utc, by z's own rules
// (applied to every year).
func (z TimeZone) Offset(utc time.Time) time.Duration {
	if z.HasDST() && z.inDST(utc) {
		return z.DaylightOffset()
	}
	return z.StandardOffset()
}

// ToUTC returns the instant at which the wall clock of z shows local's
// date and time (local's location is ignored). A time that occurs twice
// (the hour daylight time ends) is the first of the two; one that does
// not occur (the hour it starts) is read in standard time, as Go's
// time.Date does.
func (z TimeZone) ToUTC(local time.Time) time.Time {
	y, mo, d := local.Date()
	h, mi, s := local.Clock()
	wall := time.Date(y, mo, d, h, mi, s, local.Nanosecond(), time.UTC)
	if !z.HasDST() {
		return wall.Add(-z.StandardOffset())
	}
	var best time.Time
	for _, off := range []time.Duration{z.DaylightOffset(), z.StandardOffset()} {
		u := wall.Add(-off)
		if z.Offset(u) == off && (best.IsZero() || u.Before(best)) {
			best = u
		}
	}
	if best.IsZero() {
		return wall.Add(-z.StandardOffset())
	}
	return best
}

// transitionsBetween returns z's transitions in [from, to), in order.
func (z TimeZone) transitionsBetween(from, to time.Time) []transition {
	if !z.HasDST() {
		return nil
	}
	var out []transition
	for y := from.Year() - 1; y <= to.Year()+1; y++ {
		for _, tr := range z.transitionsIn(y) {
			if !tr.at.Before(from) && tr.at.Before(to) {
				out = append(out, tr)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

// compareRange is the part of year in which two descriptions of a zone
// are compared: the year without its first and last two days, where a
// one-year rule (FromLocation) may not hold (its synthetic transitions sit
// at local midnight of 1 January or before it on 31 December, up to a day
// from the UTC year's ends).
func compareRange(year int) (from, to time.Time) {
	return time.Date(year, 1, 3, 0, 0, 0, 0, time.UTC), time.Date(year, 12, 29, 0, 0, 0, 0, time.UTC)
}

// Equivalent reports whether z and o give the same UTC offset at every
// instant of year (names and representation aside).
func (z TimeZone) Equivalent(o TimeZone, year int) bool {
	from, to := compareRange(year)
	points := []time.Time{from}
	for _, tr := range z.transitionsBetween(from, to) {
		points = append(points, tr.at)
	}
	for _, tr := range o.transitionsBetween(from, to) {
		points = append(points, tr.at)
	}
	for _, p := range points {
		p = p.Truncate(time.Second).Add(time.Second) // equal to the second
		if z.Offset(p) != o.Offset(p) {
			return false
		}
	}
	return true
}

// EquivalentTo reports whether z gives the same UTC offsets as loc at every
// instant of year.
func (z TimeZone) EquivalentTo(loc *time.Location, year int) bool {
	from, to := compareRange(year)
	points := []time.Time{from}
	for _, tr := range z.transitionsBetween(from, to) {
		points = append(points, tr.at)
	}
	for _, c := range locChanges(loc, from, to) {
		points = append(points, c.at)
	}
	for _, p := range points {
		p = p.Truncate(time.Second).Add(time.Second) // equal to the second
		_, off := p.In(loc).Zone()
		if z.Offset(p) != time.Duration(off)*time.Second {
			return false
		}
	}
	return true
}

// Location returns a *time.Location named name that follows z's rules:
// explicit transitions for the years 1900 to 2200 and, for yearly rules,
// a POSIX TZ rule beyond. It lets the time package and RRULE expansion
// work in a zone known only from a blob.
func (z TimeZone) Location(name string) *time.Location {
	loc, err := time.LoadLocationFromTZData(name, z.tzif())
	if err != nil { // cannot happen for data built here; stay usable
		return time.FixedZone(name, int(z.StandardOffset()/time.Second))
	}
	return loc
}

// tzif builds TZif version 2 data (RFC 8536) for z.
func (z TimeZone) tzif() []byte {
	stdName, dstName := abbrev(z.StandardOffset()), abbrev(z.DaylightOffset())
	chars := []byte(stdName + "\x00" + dstName + "\x00")
	type ttinfo struct {
		off int32
		dst byte
		idx byte
	}
	types := []ttinfo{{int32(z.StandardOffset() / time.Second), 0, 0}}
	var tx []transition
	footer := ""
	if z.HasDST() {
		types = append(types, ttinfo{int32(z.DaylightOffset() / time.Second), 1, byte(len(stdName) + 1)})
		from := time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
		to := time.Date(2201, 1, 1, 0, 0, 0, 0, time.UTC)
		for _, tr := range z.transitionsBetween(from, to) {
			if n := len(tx); n > 0 && tx[n-1].at.Equal(tr.at) {
				tx[n-1] = tr
				continue
			}
			tx = append(tx, tr)
		}
		if z.StandardDate.Year == 0 && z.DaylightDate.Year == 0 {
			footer = fmt.Sprintf("<%s>%s<%s>%s,%s,%s", stdName, posixOffset(z.StandardOffset()), dstName,
				posixOffset(z.DaylightOffset()), posixRule(z.DaylightDate), posixRule(z.StandardDate))
		}
	} else {
		footer = fmt.Sprintf("<%s>%s", stdName, posixOffset(z.StandardOffset()))
	}
	be := binary.BigEndian
	header := func(b []byte, ntx, ntypes, nchars int) []byte {
		b = append(b, "TZif2"...)
		b = append(b, make([]byte, 15)...)
		for _, n := range []int{0, 0, 0, ntx, ntypes, nchars} {
			b = be.AppendUint32(b, uint32(n))
		}
		return b
	}
	b := header(nil, 0, 1, len(chars)) // version 1 part: one type only
	b = be.AppendUint32(b, uint32(types[0].off))
	b = append(b, types[0].dst, types[0].idx)
	b = append(b, chars...)
	b = header(b, len(tx), len(types), len(chars))
	for _, tr := range tx {
		sec := tr.at.Unix()
		if tr.at.Nanosecond() != 0 {
			sec++ // a whole second is in the new state only from the next one
		}
		b = be.AppendUint64(b, uint64(sec))
	}
	for _, tr := range tx {
		if tr.dst {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	for _, t := range types {
		b = be.AppendUint32(b, uint32(t.off))
		b = append(b, t.dst, t.idx)
	}
	b = append(b, chars...)
	return append(b, "\n"+footer+"\n"...)
}

// abbrev is a zone abbreviation for an offset: "+01", "-0330".
func abbrev(d time.Duration) string {
	sign := "+"
	if d < 0 {
		sign, d = "-", -d
	}
	m := int(d / time.Minute)
	if m%60 == 0 {
		return fmt.Sprintf("%s%02d", sign, m/60)
	}
	return fmt.Sprintf("%s%02d%02d", sign, m/60, m%60)
}

// posixOffset renders an offset in POSIX TZ form (hours west of UTC).
func posixOffset(d time.Duration) string {
	west := -int(d / time.Second)
	sign := ""
	if west < 0 {
		sign, west = "-", -west
	}
	return fmt.Sprintf("%s%d:%02d:%02d", sign, west/3600, west/60%60, west%60)
}

// posixRule renders a yearly SYSTEMTIME rule as POSIX "Mm.w.d/hh:mm:ss"
// (week 5 is "last" in both).
func posixRule(t SystemTime) string {
	return fmt.Sprintf("M%d.%d.%d/%d:%02d:%02d", t.Month, t.Day, t.DayOfWeek, t.Hour, t.Minute, t.Second)
}

// change is a change of a zone's offset at an instant, to off seconds.
type change struct {
	at  time.Time
	off int
}

// locChanges returns the offset changes of loc in [from, to).
func locChanges(loc *time.Location, from, to time.Time) []change {
	var out []change
	t := from.In(loc)
	_, prev := t.Zone()
	for range 64 {
		_, end := t.ZoneBounds()
		if end.IsZero() || !end.Before(to) {
			break
		}
		t = end
		if _, off := t.Zone(); off != prev {
			out = append(out, change{end.UTC(), off})
			prev = off
		}
	}
	return out
}
