package tasks

import (
	"strconv"
	"strings"
	"time"

	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/eas/item/ics"
	"github.com/easd/easd/wbxml"
	"github.com/emersion/go-ical"
)

// tasks:Recurrence (MS-ASTASK 2.2.2.20) <-> RRULE (RFC 5545 3.3.10).
//
//	Type            FREQ: 0 DAILY, 1 WEEKLY, 2/3 MONTHLY, 5/6 YEARLY; 3 and
//	                6 ("nth weekday") have BYSETPOS
//	Interval        INTERVAL
//	Occurrences     COUNT
//	Until           UNTIL (a DATE when DTSTART is a DATE, RFC 5545
//	                3.3.10; the client's string then in X-EAS-UNTIL)
//	DayOfWeek       BYDAY (bit 1 SU, 2 MO ... 64 SA)
//	DayOfMonth      BYMONTHDAY
//	WeekOfMonth     BYSETPOS (5 = last = -1)
//	MonthOfYear     BYMONTH
//	FirstDayOfWeek  WKST (0 SU ... 6 SA; 14.1, sent for weekly rules,
//	                RFC 5545's default MO when WKST is absent)
//	Start           X-EAS-START parameter, unless it is the task's local
//	                start (or due) date
//	Regenerate, DeadOccur, CalendarType, IsLeapMonth
//	                X-EAS-REGENERATE, X-EAS-DEADOCCUR, X-EAS-CALENDARTYPE,
//	                X-EAS-ISLEAPMONTH parameters (iCalendar has no
//	                regenerating tasks; RSCALE of RFC 7529 is not used)
//	Type            X-EAS-TYPE parameter when it is not what FREQ and
//	                BYSETPOS say (a Type 3 without WeekOfMonth)
//
// An RRULE that EAS cannot express (BYHOUR, several BYMONTHDAY values,
// HOURLY...) is not sent and is kept.

// recurTags are the Recurrence children, in the order they are sent.
var recurTags = []wbxml.Tag{
	wbxml.TasksType, wbxml.TasksStart, wbxml.TasksUntil, wbxml.TasksOccurrences, wbxml.TasksInterval,
	wbxml.TasksDayOfWeek, wbxml.TasksDayOfMonth, wbxml.TasksWeekOfMonth, wbxml.TasksMonthOfYear,
	wbxml.TasksRegenerate, wbxml.TasksDeadOccur, wbxml.TasksCalendarType, wbxml.TasksIsLeapMonth,
	wbxml.TasksFirstDayOfWeek,
}

// recurrence is a Recurrence as its elements' strings.
type recurrence map[wbxml.Tag]string

// recurSince reports whether Recurrence child t exists in version v
// (CalendarType, IsLeapMonth 14.0; FirstDayOfWeek 14.1).
func recurSince(t wbxml.Tag, v string) bool {
	switch t {
	case wbxml.TasksCalendarType, wbxml.TasksIsLeapMonth:
		return versionAtLeast(v, 14, 0)
	case wbxml.TasksFirstDayOfWeek:
		return versionAtLeast(v, 14, 1)
	}
	return true
}

// forVersion keeps the elements version v has.
func (r recurrence) forVersion(v string) recurrence {
	if r == nil {
		return nil
	}
	out := recurrence{}
	for t, s := range r {
		if recurSince(t, v) {
			out[t] = s
		}
	}
	return out
}

func (r recurrence) equal(o recurrence) bool {
	if len(r) != len(o) || (r == nil) != (o == nil) {
		return false
	}
	for t, s := range r {
		if o[t] != s {
			return false
		}
	}
	return true
}

// node renders the Recurrence element.
func (r recurrence) node() *wbxml.Node {
	n := wbxml.E(wbxml.TasksRecurrence)
	for _, t := range recurTags {
		if s, ok := r[t]; ok {
			n.Append(wbxml.T(t, s))
		}
	}
	return n
}

// parseRecurrence reads a client's Recurrence, checking every value.
func parseRecurrence(n *wbxml.Node) (recurrence, error) {
	r := recurrence{}
	for _, c := range n.Children {
		known := false
		for _, t := range recurTags {
			known = known || c.Tag == t
		}
		if !known {
			continue
		}
		if _, dup := r[c.Tag]; dup || len(c.Children) > 0 {
			return nil, item.Invalidf("Recurrence %s repeated or nested", c.Tag)
		}
		r[c.Tag] = item.Clean(strings.TrimSpace(c.Text()))
	}
	ranges := map[wbxml.Tag][2]int{
		wbxml.TasksOccurrences: {1, 9999}, wbxml.TasksInterval: {1, 9999}, wbxml.TasksDayOfWeek: {1, 127},
		wbxml.TasksDayOfMonth: {1, 31}, wbxml.TasksWeekOfMonth: {1, 5}, wbxml.TasksMonthOfYear: {1, 12},
		wbxml.TasksRegenerate: {0, 1}, wbxml.TasksDeadOccur: {0, 1}, wbxml.TasksCalendarType: {0, 99},
		wbxml.TasksIsLeapMonth: {0, 1}, wbxml.TasksFirstDayOfWeek: {0, 6},
	}
	for t, lim := range ranges {
		if s, ok := r[t]; ok {
			if v, err := strconv.Atoi(s); err != nil || v < lim[0] || v > lim[1] {
				return nil, item.Invalidf("Recurrence %s %q", t, s)
			}
		}
	}
	switch r[wbxml.TasksType] {
	case "0", "1", "2", "3", "5", "6":
	default:
		return nil, item.Invalidf("Recurrence Type %q (MS-ASTASK 2.2.2.29)", r[wbxml.TasksType])
	}
	if _, ok := ics.ParseEASTime(r[wbxml.TasksStart]); !ok {
		return nil, item.Invalidf("Recurrence Start %q (required, MS-ASTASK 2.2.2.25)", r[wbxml.TasksStart])
	}
	if s, ok := r[wbxml.TasksUntil]; ok {
		if _, ok := ics.ParseEASTime(s); !ok {
			return nil, item.Invalidf("Recurrence Until %q", s)
		}
	}
	return r, nil
}

var weekdays = []string{"SU", "MO", "TU", "WE", "TH", "FR", "SA"}

// derivedType is the Type an RRULE's FREQ and BYSETPOS say.
func derivedType(freq string, nth bool) string {
	switch freq {
	case "DAILY":
		return "0"
	case "WEEKLY":
		return "1"
	case "MONTHLY":
		if nth {
			return "3"
		}
		return "2"
	case "YEARLY":
		if nth {
			return "6"
		}
		return "5"
	}
	return ""
}

// toRRULE builds the RRULE property of r; dateAnchor says the task's
// DTSTART (or DUE) is a DATE; defStart is the Start the task's dates
// imply.
func (r recurrence) toRRULE(dateAnchor bool, defStart string) *ical.Prop {
	p := ical.NewProp(ical.PropRecurrenceRule)
	typ := r[wbxml.TasksType]
	freq := map[string]string{"0": "DAILY", "1": "WEEKLY", "2": "MONTHLY", "3": "MONTHLY", "5": "YEARLY", "6": "YEARLY"}[typ]
	parts := []string{"FREQ=" + freq}
	add := func(k, v string) { parts = append(parts, k+"="+v) }
	if s, ok := r[wbxml.TasksInterval]; ok {
		add("INTERVAL", s)
	}
	if s, ok := r[wbxml.TasksOccurrences]; ok {
		add("COUNT", s)
		if u, ok := r[wbxml.TasksUntil]; ok {
			p.Params.Set("X-EAS-UNTIL", u) // COUNT and UNTIL exclude each other
		}
	} else if u, ok := r[wbxml.TasksUntil]; ok {
		t, _ := ics.ParseEASTime(u)
		canon := easTime(t)
		if dateAnchor {
			add("UNTIL", t.Format(ics.DateLayout))
			canon = easTime(time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC))
		} else {
			add("UNTIL", t.Format(ics.CompactUTC))
		}
		if u != canon {
			p.Params.Set("X-EAS-UNTIL", u)
		}
	}
	if s, ok := r[wbxml.TasksDayOfWeek]; ok {
		mask, _ := strconv.Atoi(s)
		var days []string
		for i, d := range weekdays {
			if mask&(1<<i) != 0 {
				days = append(days, d)
			}
		}
		add("BYDAY", strings.Join(days, ","))
	}
	if s, ok := r[wbxml.TasksDayOfMonth]; ok {
		add("BYMONTHDAY", s)
	}
	if s, ok := r[wbxml.TasksMonthOfYear]; ok {
		add("BYMONTH", s)
	}
	_, nth := r[wbxml.TasksWeekOfMonth]
	if nth {
		if s := r[wbxml.TasksWeekOfMonth]; s == "5" {
			add("BYSETPOS", "-1")
		} else {
			add("BYSETPOS", s)
		}
	}
	if s, ok := r[wbxml.TasksFirstDayOfWeek]; ok {
		n, _ := strconv.Atoi(s)
		add("WKST", weekdays[n])
	}
	p.Value = strings.Join(parts, ";")
	if derivedType(freq, nth) != typ {
		p.Params.Set("X-EAS-TYPE", typ)
	}
	if s := r[wbxml.TasksStart]; s != defStart {
		p.Params.Set("X-EAS-START", s)
	}
	for t, name := range recurParams {
		if s, ok := r[t]; ok {
			p.Params.Set(name, s)
		}
	}
	return p
}

// recurParams are the Recurrence elements kept as RRULE parameters.
var recurParams = map[wbxml.Tag]string{
	wbxml.TasksRegenerate: "X-EAS-REGENERATE", wbxml.TasksDeadOccur: "X-EAS-DEADOCCUR",
	wbxml.TasksCalendarType: "X-EAS-CALENDARTYPE", wbxml.TasksIsLeapMonth: "X-EAS-ISLEAPMONTH",
}

// fromRRULE reads an RRULE as a Recurrence; false when EAS cannot
// express it. defStart is the Start the task's dates imply.
func fromRRULE(p *ical.Prop, defStart string) (recurrence, bool) {
	rule := map[string]string{}
	for _, part := range strings.Split(strings.TrimSpace(p.Value), ";") {
		k, v, ok := strings.Cut(part, "=")
		k = strings.ToUpper(strings.TrimSpace(k))
		if _, dup := rule[k]; !ok || dup {
			return nil, false
		}
		rule[k] = strings.ToUpper(strings.TrimSpace(v))
	}
	r := recurrence{}
	num := func(key string, t wbxml.Tag, lo, hi int) bool {
		s, ok := rule[key]
		if !ok {
			return true
		}
		delete(rule, key)
		n, err := strconv.Atoi(s)
		if err != nil || n < lo || n > hi {
			return false
		}
		r[t] = strconv.Itoa(n)
		return true
	}
	freq := rule["FREQ"]
	delete(rule, "FREQ")
	if derivedType(freq, false) == "" ||
		!num("INTERVAL", wbxml.TasksInterval, 1, 9999) || !num("COUNT", wbxml.TasksOccurrences, 1, 9999) ||
		!num("BYMONTHDAY", wbxml.TasksDayOfMonth, 1, 31) || !num("BYMONTH", wbxml.TasksMonthOfYear, 1, 12) {
		return nil, false
	}
	week := 0
	if s, ok := rule["BYSETPOS"]; ok {
		delete(rule, "BYSETPOS")
		n, err := strconv.Atoi(s)
		if err != nil || n == 0 || n < -1 || n > 4 {
			return nil, false
		}
		week = n
	}
	if s, ok := rule["BYDAY"]; ok {
		delete(rule, "BYDAY")
		mask, ord := 0, 0
		for i, d := range strings.Split(s, ",") {
			if len(d) < 2 {
				return nil, false
			}
			o := 0
			if pre := d[:len(d)-2]; pre != "" {
				n, err := strconv.Atoi(strings.TrimPrefix(pre, "+"))
				if err != nil || n == 0 || n < -1 || n > 4 {
					return nil, false
				}
				o = n
			}
			if i > 0 && o != ord {
				return nil, false
			}
			ord = o
			idx := strings.Index(strings.Join(weekdays, ""), d[len(d)-2:])
			if idx < 0 || idx%2 != 0 {
				return nil, false
			}
			mask |= 1 << (idx / 2)
		}
		if ord != 0 {
			if week != 0 {
				return nil, false
			}
			week = ord
		}
		r[wbxml.TasksDayOfWeek] = strconv.Itoa(mask)
	}
	if week != 0 {
		if week == -1 {
			week = 5
		}
		r[wbxml.TasksWeekOfMonth] = strconv.Itoa(week)
	}
	if s, ok := rule["WKST"]; ok {
		delete(rule, "WKST")
		idx := strings.Index(strings.Join(weekdays, ""), s)
		if len(s) != 2 || idx < 0 || idx%2 != 0 {
			return nil, false
		}
		r[wbxml.TasksFirstDayOfWeek] = strconv.Itoa(idx / 2)
	} else if freq == "WEEKLY" {
		r[wbxml.TasksFirstDayOfWeek] = "1" // RFC 5545: WKST defaults to MO
	}
	untilDate := false
	if s, ok := rule["UNTIL"]; ok {
		delete(rule, "UNTIL")
		_, u, isDate, ok := ics.PropTime(&ical.Prop{Name: "UNTIL", Params: ical.Params{}, Value: s})
		if !ok {
			return nil, false
		}
		untilDate = isDate
		r[wbxml.TasksUntil] = easTime(u)
	}
	if len(rule) > 0 {
		return nil, false // BYHOUR, BYWEEKNO, RSCALE...
	}
	// The client's own Until string, while it still names the UNTIL.
	if u := item.Clean(p.Params.Get("X-EAS-UNTIL")); u != "" {
		if t, ok := ics.ParseEASTime(u); ok {
			cur, has := r[wbxml.TasksUntil]
			ct, _ := ics.ParseEASTime(cur)
			if !has || untilDate && ct.Format(ics.DateLayout) == t.Format(ics.DateLayout) || !untilDate && ct.Equal(t.Truncate(time.Second)) {
				r[wbxml.TasksUntil] = u
			}
		}
	}
	r[wbxml.TasksType] = derivedType(freq, week != 0)
	if t := p.Params.Get("X-EAS-TYPE"); t != "" && derivedType(freq, t == "3" || t == "6") == t {
		r[wbxml.TasksType] = t
	}
	r[wbxml.TasksStart] = defStart
	if s := item.Clean(p.Params.Get("X-EAS-START")); s != "" {
		if _, ok := ics.ParseEASTime(s); ok {
			r[wbxml.TasksStart] = s
		}
	}
	if r[wbxml.TasksStart] == "" {
		return nil, false // nothing to anchor the rule to
	}
	for t, name := range recurParams {
		if s := p.Params.Get(name); s != "" {
			if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 99 {
				r[t] = strconv.Itoa(n)
			}
		}
	}
	for _, t := range []wbxml.Tag{wbxml.TasksRegenerate, wbxml.TasksDeadOccur, wbxml.TasksIsLeapMonth} {
		if s, ok := r[t]; ok && s != "0" && s != "1" {
			delete(r, t)
		}
	}
	return r, true
}

// versionAtLeast reports whether protocol version v is at least
// major.minor ("" is taken as 14.1).
func versionAtLeast(v string, major, minor int) bool {
	if v == "" {
		v = "14.1"
	}
	ms, ns, _ := strings.Cut(v, ".")
	m, err1 := strconv.Atoi(ms)
	n, err2 := strconv.Atoi(ns)
	if err1 != nil || err2 != nil {
		return true
	}
	return m > major || m == major && n >= minor
}
