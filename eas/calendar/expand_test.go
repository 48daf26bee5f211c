package calendar

import (
	"time"
)

// easPattern is an EAS recurrence as this test reads MS-ASCAL 2.2.2.37,
// independently of the codec: an RRULE is not involved.
type easPattern struct {
	typ, interval, count int
	until                time.Time // last date (inclusive); zero: none
	dow, dom, week, moy  int
	wkst                 int // first day of the week, -1: absent (Monday)
}

// expandEAS lists the dates of the pattern's occurrences from the start
// date on, at most limit of them and none after horizon, by testing every
// day: the dumbest expander that can be right.
//
// Semantics (Outlook's): DayOfMonth 29 to 31 falls on the last day of
// shorter months; WeekOfMonth 5 is the last matching day; with several
// days in DayOfWeek, WeekOfMonth counts days of the mask; Interval counts
// days, weeks (from FirstDayOfWeek, Monday by default), months or years
// from the start; Until includes its date.
func expandEAS(p easPattern, start, horizon time.Time, limit int) []time.Time {
	var out []time.Time
	for d := start; !d.After(horizon) && len(out) < limit; d = d.AddDate(0, 0, 1) {
		if !p.until.IsZero() && d.After(p.until) {
			break
		}
		if !p.matches(d, start) {
			continue
		}
		out = append(out, d)
		if p.count > 0 && len(out) == p.count {
			break
		}
	}
	return out
}

func (p easPattern) matches(d, start time.Time) bool {
	bit := 1 << int(d.Weekday())
	interval := max(p.interval, 1)
	days := int(d.Sub(start).Hours()+0.5) / 24
	months := (d.Year()-start.Year())*12 + int(d.Month()) - int(start.Month())
	years := d.Year() - start.Year()
	clamp := func() int { return min(p.dom, daysInMonth(d.Year(), d.Month())) }
	switch p.typ {
	case 0:
		return days%interval == 0 && (p.dow == 0 || p.dow&bit != 0)
	case 1:
		wkst := p.wkst
		if wkst < 0 {
			wkst = 1
		}
		week := func(t time.Time) int {
			// Days since an epoch that starts a week on wkst.
			epoch := time.Date(1970, 1, 4+wkst, 0, 0, 0, 0, time.UTC) // 4 Jan 1970 was a Sunday
			n := int(t.Sub(epoch).Hours()+0.5) / 24
			if n < 0 {
				return (n - 6) / 7
			}
			return n / 7
		}
		return p.dow&bit != 0 && (week(d)-week(start))%interval == 0
	case 2:
		return months%interval == 0 && d.Day() == clamp()
	case 3:
		return months%interval == 0 && d.Day() == nthInMonth(d.Year(), d.Month(), p.week, p.dow)
	case 5:
		return years%interval == 0 && int(d.Month()) == p.moy && d.Day() == clamp()
	case 6:
		return years%interval == 0 && int(d.Month()) == p.moy && d.Day() == nthInMonth(d.Year(), d.Month(), p.week, p.dow)
	}
	return false
}
