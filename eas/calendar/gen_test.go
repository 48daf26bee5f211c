package calendar

import (
	"fmt"
	"html"
	"math/rand"
	"strconv"
	"strings"
	"time"

	"github.com/easd/easd/eas/tz"
	"github.com/easd/easd/wbxml"
)

// testZoneNames are the zones of the tz package's tests: both hemispheres,
// odd offsets, the date line, zones with and without DST.
var testZoneNames = []string{
	"UTC", "Europe/Berlin", "Europe/London", "Europe/Dublin", "Europe/Lisbon", "Europe/Moscow",
	"Europe/Helsinki", "Atlantic/Azores", "America/New_York", "America/Chicago", "America/Denver",
	"America/Phoenix", "America/Los_Angeles", "America/Anchorage", "America/Halifax", "America/St_Johns",
	"America/Havana", "America/Santiago", "America/Sao_Paulo", "America/Bogota", "Australia/Sydney",
	"Australia/Adelaide", "Australia/Brisbane", "Australia/Lord_Howe", "Pacific/Auckland", "Pacific/Chatham",
	"Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Tokyo", "Asia/Kolkata", "Asia/Kathmandu",
	"Asia/Tehran", "Asia/Jerusalem", "Africa/Cairo", "Africa/Johannesburg",
}

// versions are the protocol versions the property tests cover.
var versions = []string{"12.1", "14.0", "14.1", "16.0", "16.1"}

// customTestZone has rules no IANA zone has (UTC+03:17, +45 minutes of DST
// from the first Sunday of June to the last Friday of August).
func customTestZone() tz.TimeZone {
	return tz.TimeZone{Bias: -197, StandardName: "Custom Standard", DaylightName: "Custom Daylight",
		DaylightDate: tz.SystemTime{Month: 6, DayOfWeek: 0, Day: 1, Hour: 1, Minute: 30},
		StandardDate: tz.SystemTime{Month: 8, DayOfWeek: 5, Day: 5, Hour: 23, Minute: 59, Second: 59},
		DaylightBias: -45}
}

// genCase is a generated ApplicationData.
type genCase struct {
	app  *wbxml.Node
	v    string
	uid  string // the UID the event must get
	loc  *time.Location
	blob tz.TimeZone
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.Intn(len(xs))] }

func genText(r *rand.Rand) string {
	words := []string{"Meeting", "Réunion", "会議", "a,b;c\\d", "Q&A <draft>", "plan", "\"quoted\"", "ünïcödé", "x"}
	n := 1 + r.Intn(4)
	var b []string
	for range n {
		b = append(b, pick(r, words...))
	}
	return strings.Join(b, " ")
}

func genBody(r *rand.Rand) (int, string) {
	var lines []string
	for range 1 + r.Intn(4) {
		lines = append(lines, genText(r))
	}
	if r.Intn(3) == 0 {
		var b strings.Builder
		b.WriteString("<html><body>")
		for _, l := range lines {
			b.WriteString("<p>" + html.EscapeString(l) + "</p>")
		}
		b.WriteString("</body></html>")
		return 2, b.String()
	}
	return 1, strings.Join(lines, "\r\n")
}

// localDay returns midnight of the date d in loc, as UTC.
func localMidnight(y int, m time.Month, d int, loc *time.Location) time.Time {
	return time.Date(y, m, d, 0, 0, 0, 0, loc).UTC()
}

// nthInMonth returns the day of the week-th (5 = last) day of month whose
// weekday is in mask; 0 if none.
func nthInMonth(y int, m time.Month, week, mask int) int {
	var days []int
	for d := 1; d <= daysInMonth(y, m); d++ {
		if mask&(1<<int(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Weekday())) != 0 {
			days = append(days, d)
		}
	}
	switch {
	case len(days) == 0:
		return 0
	case week == 5:
		return days[len(days)-1]
	case week-1 < len(days):
		return days[week-1]
	}
	return 0
}

func daysInMonth(y int, m time.Month) int { return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day() }

// genPattern picks a recurrence and a start date (y, m, d) that is its
// first occurrence.
func genPattern(r *rand.Rand, v string, y int, m time.Month, d int) (easPattern, int, time.Month, int) {
	p := easPattern{interval: 1 + r.Intn(3), wkst: -1}
	p.typ = pick(r, 0, 1, 2, 3, 5, 6)
	wd := func() int { return 1 << int(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Weekday()) }
	masks := []int{62, 65, 127, 42, 20}
	switch p.typ {
	case 0:
		if r.Intn(3) == 0 {
			p.dow = 62 | wd()
		}
	case 1:
		p.dow = wd() | r.Intn(128)
		if v >= "14.1" && r.Intn(2) == 0 {
			p.wkst = r.Intn(7)
		}
	case 2, 5:
		p.dom = 1 + r.Intn(31)
		if p.typ == 5 {
			p.moy = int(m)
		}
		d = min(p.dom, daysInMonth(y, m))
	case 3, 6:
		p.week = 1 + r.Intn(5)
		p.dow = wd()
		if r.Intn(3) == 0 {
			p.dow = pick(r, masks...)
		}
		if p.typ == 6 {
			p.moy = int(m)
		}
		d = nthInMonth(y, m, p.week, p.dow)
	}
	switch r.Intn(3) {
	case 0:
		p.count = 1 + r.Intn(30)
	case 1:
		p.until = time.Date(y, m, d, 0, 0, 0, 0, time.UTC).AddDate(0, 0, 1+r.Intn(900))
	}
	return p, y, m, d
}

// node renders a pattern as the client sends it (Until as the client's
// zone writes it: ut).
func (p easPattern) node(v string, ut time.Time, r *rand.Rand) *wbxml.Node {
	n := wbxml.E(wbxml.CalendarRecurrence, wbxml.T(wbxml.CalendarType, strconv.Itoa(p.typ)),
		wbxml.T(wbxml.CalendarInterval, strconv.Itoa(p.interval)))
	add := func(t wbxml.Tag, x int) {
		if x > 0 {
			n.Append(wbxml.T(t, strconv.Itoa(x)))
		}
	}
	add(wbxml.CalendarOccurrences, p.count)
	add(wbxml.CalendarDayOfWeek, p.dow)
	add(wbxml.CalendarDayOfMonth, p.dom)
	add(wbxml.CalendarWeekOfMonth, p.week)
	add(wbxml.CalendarMonthOfYear, p.moy)
	if !p.until.IsZero() {
		n.Append(wbxml.T(wbxml.CalendarUntil, compact(ut)))
	}
	if v >= "14.0" && r.Intn(4) == 0 {
		n.Append(wbxml.T(wbxml.CalendarCalendarType, pick(r, "0", "1")))
	}
	if v >= "14.1" && p.wkst >= 0 {
		n.Append(wbxml.T(wbxml.CalendarFirstDayOfWeek, strconv.Itoa(p.wkst)))
	}
	return n
}

// genEvent generates a client's ApplicationData for version v.
func genEvent(r *rand.Rand, v string, i int) genCase {
	g := genCase{v: v, uid: fmt.Sprintf("gen-%d@easd", i)}
	v16 := v >= "16"
	if r.Intn(8) == 0 {
		g.blob = customTestZone()
		g.loc = g.blob.Location("custom")
	} else {
		loc, err := time.LoadLocation(pick(r, testZoneNames...))
		if err != nil {
			loc = time.UTC
		}
		g.loc = loc
	}
	y, m, d := 2024+r.Intn(6), time.Month(1+r.Intn(12)), 1+r.Intn(28)
	var pat *easPattern
	if r.Intn(5) < 2 {
		p, yy, mm, dd := genPattern(r, v, y, m, d)
		pat, y, m, d = &p, yy, mm, dd
	}
	if g.blob.StandardName == "" {
		g.blob = tz.FromLocation(g.loc, y)
	}
	allDay := r.Intn(5) == 0
	app := wbxml.E(wbxml.AirSyncApplicationData)
	add := func(t wbxml.Tag, s string) { app.Append(wbxml.T(t, s)) }
	var start, end time.Time
	if allDay {
		days := 1 + r.Intn(3)
		if v16 {
			start = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
			end = start.AddDate(0, 0, days)
		} else {
			start = localMidnight(y, m, d, g.loc)
			end = localMidnight(y, m, d+days, g.loc)
		}
		if !v16 || r.Intn(2) == 0 {
			add(wbxml.CalendarTimezone, g.blob.Encode())
		}
	} else {
		start = time.Date(y, m, d, r.Intn(24), 15*r.Intn(4), 0, 0, g.loc).UTC()
		end = start.Add(time.Duration(1+r.Intn(200)) * 15 * time.Minute)
		add(wbxml.CalendarTimezone, g.blob.Encode())
	}
	add(wbxml.CalendarAllDayEvent, boolText(allDay))
	add(wbxml.CalendarStartTime, compact(start))
	add(wbxml.CalendarEndTime, compact(end))
	add(wbxml.CalendarDtStamp, compact(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Intn(1e6))*time.Minute)))
	if r.Intn(5) > 0 {
		add(wbxml.CalendarSubject, genText(r))
	}
	if r.Intn(2) == 0 {
		if v16 {
			loc := wbxml.E(wbxml.AirSyncBaseLocation, wbxml.T(wbxml.AirSyncBaseDisplayName, genText(r)))
			for _, t := range []wbxml.Tag{wbxml.AirSyncBaseStreet, wbxml.AirSyncBaseCity, wbxml.AirSyncBaseCountry, wbxml.AirSyncBaseAnnotation} {
				if r.Intn(2) == 0 {
					loc.Append(wbxml.T(t, genText(r)))
				}
			}
			if r.Intn(2) == 0 {
				loc.Append(wbxml.T(wbxml.AirSyncBaseLatitude, "52.52"), wbxml.T(wbxml.AirSyncBaseLongitude, "-13.405"))
			}
			app.Append(loc)
		} else {
			add(wbxml.CalendarLocation, genText(r))
		}
	}
	if r.Intn(5) < 3 {
		typ, data := genBody(r)
		app.Append(wbxml.E(wbxml.AirSyncBaseBody, wbxml.T(wbxml.AirSyncBaseType, strconv.Itoa(typ)), wbxml.T(wbxml.AirSyncBaseData, data)))
	}
	busy := 4
	if v16 {
		busy = 5
	}
	add(wbxml.CalendarBusyStatus, strconv.Itoa(r.Intn(busy)))
	add(wbxml.CalendarSensitivity, strconv.Itoa(r.Intn(4)))
	if r.Intn(10) < 7 {
		add(wbxml.CalendarReminder, strconv.Itoa(pick(r, 0, 5, 15, 30, 60, 1440, r.Intn(5000))))
	}
	if r.Intn(2) == 0 {
		cats := wbxml.E(wbxml.CalendarCategories)
		for j := range 1 + r.Intn(3) {
			cats.Append(wbxml.T(wbxml.CalendarCategory, fmt.Sprintf("%s %d", genText(r), j)))
		}
		app.Append(cats)
	}
	meeting := r.Intn(2) == 0
	if meeting {
		add(wbxml.CalendarOrganizerName, genText(r))
		add(wbxml.CalendarOrganizerEmail, fmt.Sprintf("boss%d@example.org", r.Intn(100)))
		atts := wbxml.E(wbxml.CalendarAttendees)
		for j := range 1 + r.Intn(4) {
			atts.Append(wbxml.E(wbxml.CalendarAttendee,
				wbxml.T(wbxml.CalendarEmail, fmt.Sprintf("user%d.%d@example.org", j, r.Intn(100))),
				wbxml.T(wbxml.CalendarName, genText(r)),
				wbxml.T(wbxml.CalendarAttendeeStatus, pick(r, "0", "2", "3", "4", "5")),
				wbxml.T(wbxml.CalendarAttendeeType, pick(r, "1", "2", "3"))))
		}
		app.Append(atts)
		add(wbxml.CalendarMeetingStatus, pick(r, "1", "3", "5", "7", "9", "11", "13", "15"))
		if v >= "14.0" {
			add(wbxml.CalendarResponseRequested, pick(r, "0", "1"))
		}
	} else {
		add(wbxml.CalendarMeetingStatus, "0")
	}
	if v >= "14.0" {
		if r.Intn(3) == 0 {
			add(wbxml.CalendarResponseType, strconv.Itoa(r.Intn(6)))
		}
		if r.Intn(3) == 0 {
			add(wbxml.CalendarAppointmentReplyTime, compact(start.Add(-time.Hour)))
		}
		if r.Intn(2) == 0 {
			add(wbxml.CalendarDisallowNewTimeProposal, pick(r, "0", "1"))
		}
	}
	if v >= "14.1" && r.Intn(5) == 0 {
		add(wbxml.CalendarOnlineMeetingConfLink, "conf:sip:user@example.org;gruu;opaque=app:conf:focus:id:X1")
		add(wbxml.CalendarOnlineMeetingExternalLink, "https://meet.example.org/x?a=1&b=2")
	}
	switch {
	case r.Intn(2) == 0:
	case v16:
		g.uid = fmt.Sprintf("client-%d", i)
		add(wbxml.CalendarClientUid, g.uid)
	default:
		g.uid = fmt.Sprintf("040000008200E00074C5B7101A82E008%08X", i)
		add(wbxml.CalendarUID, g.uid)
	}
	if pat != nil {
		ut := pat.until
		if !pat.until.IsZero() {
			switch {
			case allDay && v16:
			case allDay:
				ut = localMidnight(ut.Year(), ut.Month(), ut.Day(), g.loc)
			default:
				ut = time.Date(ut.Year(), ut.Month(), ut.Day(), r.Intn(24), 0, 0, 0, g.loc).UTC()
			}
		}
		app.Append(pat.node(v, ut, r))
		if !v16 && r.Intn(2) == 0 {
			if exc := genExceptions(r, g, *pat, start, end, allDay); exc != nil {
				app.Append(exc)
			}
		}
	}
	g.app = app
	return g
}

// genExceptions deletes or changes some occurrences of the series.
func genExceptions(r *rand.Rand, g genCase, p easPattern, start, end time.Time, allDay bool) *wbxml.Node {
	first := start.In(g.loc)
	if allDay && g.v >= "16" {
		first = start
	}
	date := time.Date(first.Year(), first.Month(), first.Day(), 0, 0, 0, 0, time.UTC)
	occ := expandEAS(p, date, date.AddDate(5, 0, 0), 40)
	if len(occ) < 2 {
		return nil
	}
	n := wbxml.E(wbxml.CalendarExceptions)
	seen := map[int]bool{}
	for range 1 + r.Intn(3) {
		k := 1 + r.Intn(len(occ)-1)
		if seen[k] {
			continue
		}
		seen[k] = true
		o := occ[k]
		var orig time.Time
		if allDay {
			orig = localMidnight(o.Year(), o.Month(), o.Day(), g.loc)
		} else {
			orig = time.Date(o.Year(), o.Month(), o.Day(), first.Hour(), first.Minute(), 0, 0, g.loc).UTC()
		}
		x := wbxml.E(wbxml.CalendarException, wbxml.T(wbxml.CalendarExceptionStartTime, compact(orig)))
		if r.Intn(2) == 0 {
			x.Append(wbxml.T(wbxml.CalendarDeleted, "1"))
			n.Append(x)
			continue
		}
		s, e := orig.Add(time.Hour), orig.Add(time.Hour+end.Sub(start))
		if allDay {
			s, e = orig, localMidnight(o.Year(), o.Month(), o.Day()+1, g.loc)
		}
		x.Append(wbxml.T(wbxml.CalendarStartTime, compact(s)), wbxml.T(wbxml.CalendarEndTime, compact(e)))
		if r.Intn(2) == 0 {
			x.Append(wbxml.T(wbxml.CalendarSubject, "changed "+genText(r)))
		}
		if r.Intn(3) == 0 {
			x.Append(wbxml.T(wbxml.CalendarLocation, "elsewhere"))
		}
		if r.Intn(3) == 0 {
			x.Append(wbxml.T(wbxml.CalendarReminder, "99"))
		}
		if r.Intn(3) == 0 {
			x.Append(wbxml.E(wbxml.CalendarCategories, wbxml.T(wbxml.CalendarCategory, "exception only")))
		}
		n.Append(x)
	}
	return n
}
