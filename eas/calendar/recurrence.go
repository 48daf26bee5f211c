package calendar

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/easd/easd/wbxml"
	"github.com/emersion/go-ical"
	"github.com/teambition/rrule-go"
)

// RRULE parameters that keep Recurrence elements RRULE has no part for.
const (
	paramCalendarType = "X-EAS-CALENDARTYPE"
	paramIsLeapMonth  = "X-EAS-ISLEAPMONTH"
)

// Limits on what a client may ask for.
const (
	maxInterval    = 999
	maxOccurrences = 9999
)

// rec is a calendar:Recurrence (MS-ASCAL 2.2.2.37). Until is an instant
// for a timed series and a civil date (midnight UTC) for an all-day one.
type rec struct {
	typ, interval, occurrences          int
	until                               time.Time
	dayOfWeek, dayOfMonth, weekOfMonth  int
	monthOfYear                         int
	calendarType, isLeapMonth, firstDay int // -1: absent
}

// weekdays are the BYDAY names by DayOfWeek bit (1 Sunday ... 64
// Saturday, MS-ASCAL 2.2.2.15).
func weekdays() [7]string { return [7]string{"SU", "MO", "TU", "WE", "TH", "FR", "SA"} }

// parseRec reads a client's Recurrence for a series starting at start
// (wall clock in its zone, or a date). Absent parts the type needs come
// from the start, as Exchange derives them.
func (c *ctx) parseRec(n *wbxml.Node, start time.Time, allDay bool, z zone) (rec, error) {
	r := rec{interval: 1, calendarType: -1, isLeapMonth: -1, firstDay: -1}
	get := func(t wbxml.Tag, lo, hi int, dst *int) error {
		if x := n.Child(t); x != nil && strings.TrimSpace(x.Text()) != "" {
			v, err := parseInt(x, lo, hi)
			if err != nil {
				return err
			}
			*dst = v
		}
		return nil
	}
	r.typ = -1
	for _, g := range []struct {
		t      wbxml.Tag
		lo, hi int
		dst    *int
	}{
		{wbxml.CalendarType, 0, 6, &r.typ}, {wbxml.CalendarInterval, 0, maxInterval, &r.interval},
		{wbxml.CalendarOccurrences, 0, maxOccurrences, &r.occurrences}, {wbxml.CalendarDayOfWeek, 0, 127, &r.dayOfWeek},
		{wbxml.CalendarDayOfMonth, 1, 31, &r.dayOfMonth}, {wbxml.CalendarWeekOfMonth, 1, 5, &r.weekOfMonth},
		{wbxml.CalendarMonthOfYear, 1, 12, &r.monthOfYear}, {wbxml.CalendarCalendarType, 0, 20, &r.calendarType},
		{wbxml.CalendarIsLeapMonth, 0, 1, &r.isLeapMonth}, {wbxml.CalendarFirstDayOfWeek, 0, 6, &r.firstDay},
	} {
		if err := get(g.t, g.lo, g.hi, g.dst); err != nil {
			return rec{}, err
		}
	}
	if r.typ < 0 || r.typ == 4 {
		return rec{}, invalid("Recurrence: Type %d", r.typ)
	}
	r.interval = max(r.interval, 1)
	if u := n.Child(wbxml.CalendarUntil); u != nil && strings.TrimSpace(u.Text()) != "" {
		t, err := parseEASTime(u.Text())
		if err != nil {
			return rec{}, invalid("Until: %v", err)
		}
		if allDay {
			r.until = c.allDayDate(t, z, false)
		} else {
			// Until covers its whole local day: EAS patterns have at most
			// one occurrence a day, and clients write Until as the last
			// start, local midnight or the end of that day.
			l := t.In(z.loc)
			r.until = time.Date(l.Year(), l.Month(), l.Day(), 23, 59, 59, 0, z.loc).UTC()
		}
		r.occurrences = 0 // MS-ASCAL 2.2.2.37: Until and Occurrences exclude each other
	}
	wd := 1 << int(start.Weekday())
	if r.typ == 0 && r.dayOfWeek&127 != 0 && r.interval%7 == 0 && r.dayOfWeek&wd == 0 {
		// Every 7n days is always the start's weekday.
		return rec{}, invalid("Recurrence: every %d days on days other than the start's never occurs", r.interval)
	}
	switch r.typ {
	case 1:
		if r.dayOfWeek == 0 {
			r.dayOfWeek = wd
		}
	case 2, 5:
		if r.dayOfMonth == 0 {
			r.dayOfMonth = start.Day()
		}
	case 3, 6:
		if r.dayOfWeek == 0 {
			r.dayOfWeek = wd
		}
		if r.weekOfMonth == 0 {
			r.weekOfMonth = min((start.Day()-1)/7+1, 5)
		}
	}
	if (r.typ == 5 || r.typ == 6) && r.monthOfYear == 0 {
		r.monthOfYear = int(start.Month())
	}
	if r.typ != 5 && r.typ != 6 {
		r.monthOfYear = 0
	}
	if r.typ != 2 && r.typ != 5 {
		r.dayOfMonth = 0
	}
	if r.typ != 3 && r.typ != 6 {
		r.weekOfMonth = 0
	}
	if r.typ == 2 || r.typ == 5 {
		r.dayOfWeek = 0
	}
	return r, nil
}

// days renders a DayOfWeek mask as BYDAY days.
func days(mask int) []string {
	var out []string
	for i, d := range weekdays() {
		if mask&(1<<i) != 0 {
			out = append(out, d)
		}
	}
	return out
}

// monthDay renders DayOfMonth. Outlook and Exchange put day 29 to 31 on
// the last day of shorter months; RFC 5545 would skip those months, so
// such days become the last of 28..d (BYSETPOS=-1), and 31 the last day.
func monthDay(d int) []string {
	switch {
	case d <= 28:
		return []string{"BYMONTHDAY=" + strconv.Itoa(d)}
	case d == 29:
		return []string{"BYMONTHDAY=28,29", "BYSETPOS=-1"}
	case d == 30:
		return []string{"BYMONTHDAY=28,29,30", "BYSETPOS=-1"}
	}
	return []string{"BYMONTHDAY=-1"}
}

// nthDay renders WeekOfMonth and DayOfWeek (5 is the last).
func nthDay(week, mask int) []string {
	n := strconv.Itoa(week)
	if week == 5 {
		n = "-1"
	}
	ds := days(mask)
	if len(ds) == 1 {
		return []string{"BYDAY=" + n + ds[0]}
	}
	return []string{"BYDAY=" + strings.Join(ds, ","), "BYSETPOS=" + n}
}

// rrule renders r as an RRULE value.
func (r rec) rrule(allDay bool) string {
	freq := [...]string{0: "DAILY", 1: "WEEKLY", 2: "MONTHLY", 3: "MONTHLY", 5: "YEARLY", 6: "YEARLY"}[r.typ]
	parts := []string{"FREQ=" + freq}
	if r.interval > 1 {
		parts = append(parts, "INTERVAL="+strconv.Itoa(r.interval))
	}
	if r.monthOfYear > 0 {
		parts = append(parts, "BYMONTH="+strconv.Itoa(r.monthOfYear))
	}
	switch r.typ {
	case 0, 1:
		if ds := days(r.dayOfWeek); len(ds) > 0 {
			parts = append(parts, "BYDAY="+strings.Join(ds, ","))
		}
	case 2, 5:
		parts = append(parts, monthDay(r.dayOfMonth)...)
	case 3, 6:
		parts = append(parts, nthDay(r.weekOfMonth, r.dayOfWeek)...)
	}
	switch {
	case !r.until.IsZero() && allDay:
		parts = append(parts, "UNTIL="+r.until.Format(dateLayout))
	case !r.until.IsZero():
		parts = append(parts, "UNTIL="+compact(r.until))
	case r.occurrences > 0:
		parts = append(parts, "COUNT="+strconv.Itoa(r.occurrences))
	}
	if r.firstDay >= 0 {
		parts = append(parts, "WKST="+weekdays()[r.firstDay])
	}
	return strings.Join(parts, ";")
}

// parseRRULE reads an RRULE value into the EAS recurrence it is, for a
// series starting at start (wall clock or date). ok is false for rules EAS
// cannot express (hourly, BYWEEKNO, several months, ...). BYMONTHDAY 29 to
// 31 alone reads as that day, which EAS clients put on the last day of
// shorter months where RFC 5545 skips them.
func parseRRULE(v string, start time.Time, allDay bool) (rec, bool) {
	r := rec{interval: 1, calendarType: -1, isLeapMonth: -1, firstDay: -1}
	kv := map[string]string{}
	for part := range strings.SplitSeq(strings.TrimSpace(v), ";") {
		k, val, ok := strings.Cut(part, "=")
		if !ok {
			return rec{}, false
		}
		kv[strings.ToUpper(strings.TrimSpace(k))] = strings.ToUpper(strings.TrimSpace(val))
	}
	for k := range kv {
		switch k {
		case "FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "WKST":
		default:
			return rec{}, false
		}
	}
	atoi := func(s string) (int, bool) { n, err := strconv.Atoi(s); return n, err == nil }
	if s, ok := kv["INTERVAL"]; ok {
		n, ok := atoi(s)
		if !ok || n < 1 || n > maxInterval {
			return rec{}, false
		}
		r.interval = n
	}
	if s, ok := kv["COUNT"]; ok {
		n, ok := atoi(s)
		if !ok || n < 1 || n > maxOccurrences {
			return rec{}, false
		}
		r.occurrences = n
	}
	if s, ok := kv["UNTIL"]; ok {
		var err error
		if len(s) == len(dateLayout) {
			r.until, err = time.Parse(dateLayout, s)
			if !allDay {
				r.until = r.until.Add(24*time.Hour - time.Second)
			}
		} else {
			r.until, err = time.Parse(localLayout, strings.TrimSuffix(s, "Z"))
			if allDay {
				r.until = time.Date(r.until.Year(), r.until.Month(), r.until.Day(), 0, 0, 0, 0, time.UTC)
			}
		}
		if err != nil {
			return rec{}, false
		}
	}
	if s, ok := kv["WKST"]; ok {
		r.firstDay = dayIndex(s)
		if r.firstDay < 0 {
			return rec{}, false
		}
	}
	// BYDAY: plain days, or one day with an ordinal.
	mask, ord := 0, 0
	if s, ok := kv["BYDAY"]; ok {
		for d := range strings.SplitSeq(s, ",") {
			i := strings.IndexFunc(d, func(r rune) bool { return r >= 'A' && r <= 'Z' })
			if i < 0 || dayIndex(d[i:]) < 0 {
				return rec{}, false
			}
			if i > 0 {
				n, ok := atoi(d[:i])
				if !ok || ord != 0 || n == 0 || n < -1 || n > 4 {
					return rec{}, false
				}
				ord = n
			}
			mask |= 1 << dayIndex(d[i:])
		}
		if ord != 0 && mask&(mask-1) != 0 {
			return rec{}, false
		}
	}
	setpos := 0
	if s, ok := kv["BYSETPOS"]; ok {
		n, ok := atoi(s)
		if !ok || n == 0 || n < -1 || n > 4 {
			return rec{}, false
		}
		setpos = n
	}
	mday := 0
	if s, ok := kv["BYMONTHDAY"]; ok {
		switch {
		case s == "-1":
			mday = 31
		case s == "28,29" && setpos == -1:
			mday, setpos = 29, 0
		case s == "28,29,30" && setpos == -1:
			mday, setpos = 30, 0
		default:
			n, ok := atoi(s)
			if !ok || n < 1 || n > 31 {
				return rec{}, false
			}
			mday = n
		}
	}
	month := 0
	if s, ok := kv["BYMONTH"]; ok {
		n, ok := atoi(s)
		if !ok || n < 1 || n > 12 {
			return rec{}, false
		}
		month = n
	}
	week := func() int {
		n := ord
		if n == 0 {
			n = setpos
		}
		if n == -1 {
			return 5
		}
		return n
	}
	switch kv["FREQ"] {
	case "DAILY":
		if mday != 0 || month != 0 || ord != 0 || setpos != 0 {
			return rec{}, false
		}
		r.typ, r.dayOfWeek = 0, mask
	case "WEEKLY":
		if mday != 0 || month != 0 || ord != 0 || setpos != 0 {
			return rec{}, false
		}
		if mask == 0 {
			mask = 1 << int(start.Weekday())
		}
		r.typ, r.dayOfWeek = 1, mask
	case "MONTHLY", "YEARLY":
		yearly := kv["FREQ"] == "YEARLY"
		if !yearly && month != 0 {
			return rec{}, false
		}
		switch {
		case mask != 0 && mday == 0 && (ord != 0 || setpos != 0):
			r.typ, r.dayOfWeek, r.weekOfMonth = 3, mask, week()
		case mask == 0 && setpos == 0:
			r.typ, r.dayOfMonth = 2, mday
			if mday == 0 {
				r.dayOfMonth = start.Day()
			}
		default:
			return rec{}, false
		}
		if yearly {
			r.typ += 3
			r.monthOfYear = month
			if month == 0 {
				if r.typ == 6 {
					return rec{}, false // nth weekday of every month of the year
				}
				r.monthOfYear = int(start.Month())
			}
		}
	default:
		return rec{}, false
	}
	return r, true
}

// dayIndex returns 0 (SU) to 6 (SA), -1 for anything else.
func dayIndex(s string) int {
	for i, d := range weekdays() {
		if s == d {
			return i
		}
	}
	return -1
}

// node renders r as calendar:Recurrence, children in schema order
// (MS-ASCAL 6). untilEAS is Until as the client reads it.
func (c *ctx) recNode(r rec, untilEAS time.Time) *wbxml.Node {
	n := wbxml.E(wbxml.CalendarRecurrence, wbxml.T(wbxml.CalendarType, strconv.Itoa(r.typ)))
	add := func(t wbxml.Tag, v int) { n.Append(wbxml.T(t, strconv.Itoa(v))) }
	if r.occurrences > 0 {
		add(wbxml.CalendarOccurrences, r.occurrences)
	}
	add(wbxml.CalendarInterval, r.interval)
	if r.weekOfMonth > 0 {
		add(wbxml.CalendarWeekOfMonth, r.weekOfMonth)
	}
	if r.dayOfWeek > 0 {
		add(wbxml.CalendarDayOfWeek, r.dayOfWeek)
	}
	if r.monthOfYear > 0 {
		add(wbxml.CalendarMonthOfYear, r.monthOfYear)
	}
	if !r.until.IsZero() {
		n.Append(wbxml.T(wbxml.CalendarUntil, compact(untilEAS)))
	}
	if r.dayOfMonth > 0 {
		add(wbxml.CalendarDayOfMonth, r.dayOfMonth)
	}
	if c.v >= v140 && r.calendarType >= 0 {
		add(wbxml.CalendarCalendarType, r.calendarType)
	}
	if c.v >= v140 && r.isLeapMonth >= 0 {
		add(wbxml.CalendarIsLeapMonth, r.isLeapMonth)
	}
	if c.v >= v141 && r.firstDay >= 0 {
		add(wbxml.CalendarFirstDayOfWeek, r.firstDay)
	}
	return n
}

// storedRec reads the master's RRULE as an EAS recurrence.
func (c *ctx) storedRec() (rec, times, bool) {
	p := c.master.Props.Get(ical.PropRecurrenceRule)
	if p == nil {
		return rec{}, times{}, false
	}
	w, err := c.eventTimes(c.master)
	if err != nil {
		return rec{}, times{}, false
	}
	wall := w.start
	if !w.allDay {
		wall = w.start.In(w.zone.loc)
	}
	r, ok := parseRRULE(p.Value, wall, w.allDay)
	if !ok {
		return rec{}, w, false
	}
	if n, err := strconv.Atoi(p.Params.Get(paramCalendarType)); err == nil && n >= 0 && n <= 20 {
		r.calendarType = n
	}
	if n, err := strconv.Atoi(p.Params.Get(paramIsLeapMonth)); err == nil && (n == 0 || n == 1) {
		r.isLeapMonth = n
	}
	if !r.until.IsZero() && !w.allDay && len(strings.TrimSuffix(rawUntil(p.Value), "Z")) == len(localLayout) && !strings.HasSuffix(rawUntil(p.Value), "Z") {
		// A floating UNTIL is in the series zone.
		r.until = inZone(r.until, w.zone.loc)
	}
	return r, w, true
}

// rawUntil returns the UNTIL part of an RRULE value.
func rawUntil(v string) string {
	for part := range strings.SplitSeq(strings.ToUpper(v), ";") {
		if s, ok := strings.CutPrefix(part, "UNTIL="); ok {
			return s
		}
	}
	return ""
}

// renderRecurrence renders the master's RRULE; nil without one or for a
// rule EAS cannot express (the client then sees the first occurrence).
func (c *ctx) renderRecurrence() (*wbxml.Node, error) {
	r, w, ok := c.storedRec()
	if !ok {
		return nil, nil
	}
	until := r.until
	if w.allDay && !until.IsZero() && c.v < v160 {
		until = inZone(until, c.displayZone().loc)
	}
	return c.recNode(r, until), nil
}

// applyRecurrence applies calendar:Recurrence. A recurrence equal to the
// stored one (Until compared by date) keeps the stored RRULE; a removed
// one takes the exceptions with it. It reports whether the rule changed.
func (c *ctx) applyRecurrence(in, old fields, whenChanged bool) (bool, error) {
	n := in[wbxml.CalendarRecurrence]
	if n == nil {
		if c.keeps(wbxml.CalendarRecurrence) || c.master.Props.Get(ical.PropRecurrenceRule) == nil {
			return false, nil
		}
		if old[wbxml.CalendarRecurrence] == nil && !whenChanged {
			return false, nil // a rule EAS cannot show stays
		}
		c.master.Props.Del(ical.PropRecurrenceRule)
		c.master.Props.Del(ical.PropRecurrenceDates)
		c.dropExceptions()
		return true, nil
	}
	w, err := c.eventTimes(c.master)
	if err != nil {
		return false, err
	}
	wall := w.start
	z := c.displayZone()
	if !w.allDay {
		wall, z = w.start.In(w.zone.loc), w.zone
	}
	r, err := c.parseRec(n, wall, w.allDay, z)
	if err != nil {
		return false, err
	}
	cur, _, hasCur := c.storedRec()
	if hasCur {
		// Parts the client did not send (older versions do not have them)
		// stay as stored.
		if r.calendarType < 0 {
			r.calendarType = cur.calendarType
		}
		if r.isLeapMonth < 0 {
			r.isLeapMonth = cur.isLeapMonth
		}
		if r.firstDay < 0 {
			r.firstDay = cur.firstDay
		}
	}
	if hasCur && !whenChanged && sameRec(cur, r, w.allDay, z) {
		return false, nil
	}
	p := ical.NewProp(ical.PropRecurrenceRule)
	p.Value = r.rrule(w.allDay)
	if r.calendarType >= 0 {
		p.Params.Set(paramCalendarType, strconv.Itoa(r.calendarType))
	}
	if r.isLeapMonth >= 0 {
		p.Params.Set(paramIsLeapMonth, strconv.Itoa(r.isLeapMonth))
	}
	c.master.Props.Set(p)
	c.alignStart()
	return true, nil
}

// sameRec compares recurrences, Until by its local date.
func sameRec(a, b rec, allDay bool, z zone) bool {
	day := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		if allDay {
			return t.Format(dateLayout)
		}
		return t.In(z.loc).Format(dateLayout)
	}
	if day(a.until) != day(b.until) {
		return false
	}
	a.until, b.until = time.Time{}, time.Time{}
	// Absent parts mean their defaults: Gregorian, no leap month, weeks
	// from Monday (RFC 5545 WKST).
	for _, r := range []*rec{&a, &b} {
		r.calendarType = max(r.calendarType, 0)
		r.isLeapMonth = max(r.isLeapMonth, 0)
		if r.firstDay < 0 {
			r.firstDay = 1
		}
		if r.typ == 0 && r.dayOfWeek == 127 {
			r.dayOfWeek = 0
		}
	}
	return a == b
}

// series is the master's RRULE ready for expansion. rrule-go misplaces
// occurrences on days whose midnight a DST change skips, so the rule is
// expanded in floating time (wall clock as UTC) and each occurrence is
// placed in the zone afterwards.
type series struct {
	rule  *rrule.RRule
	w     times          // the master's times
	loc   *time.Location // zone of the wall clock (UTC for all-day)
	limit time.Time      // expansion stops here (wall clock)
}

// wall returns the wall clock of an instant in the series zone, as UTC.
func (s series) wall(t time.Time) time.Time {
	l := t.In(s.loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), 0, time.UTC)
}

// at returns the occurrence with wall clock o: an instant, or the date.
func (s series) at(o time.Time) time.Time {
	if s.w.allDay {
		return time.Date(o.Year(), o.Month(), o.Day(), 0, 0, 0, 0, time.UTC)
	}
	return inZone(o, s.loc)
}

// seriesRule returns the master's RRULE for expansion; ok is false
// without a rule rrule-go can expand (or a sub-daily one).
func (c *ctx) seriesRule() (series, bool) {
	p := c.master.Props.Get(ical.PropRecurrenceRule)
	if p == nil {
		return series{}, false
	}
	w, err := c.eventTimes(c.master)
	if err != nil {
		return series{}, false
	}
	opt, err := rrule.StrToROption(strings.TrimSpace(p.Value))
	if err != nil || opt.Freq > rrule.DAILY {
		return series{}, false
	}
	s := series{w: w, loc: time.UTC}
	if !w.allDay {
		s.loc = w.zone.loc
	}
	opt.Dtstart = s.wall(w.start)
	if opt.Dtstart.Year() < 1 {
		// rrule-go panics on a series starting in year 0 (found by
		// FuzzImport): such a rule is treated as no rule.
		return series{}, false
	}
	if !opt.Until.IsZero() {
		raw := rawUntil(p.Value)
		switch {
		case len(raw) == len(dateLayout):
			u := opt.Until
			opt.Until = time.Date(u.Year(), u.Month(), u.Day(), 23, 59, 59, 0, time.UTC)
		case strings.HasSuffix(raw, "Z"):
			opt.Until = s.wall(opt.Until)
		}
	}
	// rrule-go looks for the next occurrence up to year 9999; a pattern
	// with none (daily every 7th day on another weekday) would take
	// seconds. Expansion stops after maxSeriesYears.
	s.limit = opt.Dtstart.AddDate(maxSeriesYears, 0, 0)
	if opt.Until.IsZero() || opt.Until.After(s.limit) {
		opt.Until = s.limit
	}
	r, err := rrule.NewRRule(*opt)
	if err != nil {
		return series{}, false
	}
	s.rule = r
	return s, true
}

// maxSeriesYears bounds how far a series is expanded.
const maxSeriesYears = 100

// alignStart moves DTSTART (and DTEND with it) to the first occurrence of
// the rule when it is not one: Exchange keeps the series start on the
// pattern, and in iCalendar DTSTART is always an occurrence.
func (c *ctx) alignStart() {
	s, ok := c.seriesRule()
	if !ok {
		return
	}
	dt := s.rule.GetDTStart()
	first := s.rule.After(dt, true)
	if first.IsZero() || first.Equal(dt) {
		return
	}
	w := s.w
	start := s.at(first)
	end := start.Add(w.end.Sub(w.start))
	if w.allDay {
		c.master.Props.Set(dateProp(ical.PropDateTimeStart, start))
		c.master.Props.Set(dateProp(ical.PropDateTimeEnd, end))
		return
	}
	c.master.Props.Set(dateTimeProp(ical.PropDateTimeStart, start, w.zone))
	c.master.Props.Set(dateTimeProp(ical.PropDateTimeEnd, end, w.zone))
}

// String describes r for test failures.
func (r rec) String() string {
	return fmt.Sprintf("type %d every %d count %d until %v dow %b dom %d week %d month %d cal %d leap %d wkst %d",
		r.typ, r.interval, r.occurrences, r.until, r.dayOfWeek, r.dayOfMonth, r.weekOfMonth, r.monthOfYear,
		r.calendarType, r.isLeapMonth, r.firstDay)
}
