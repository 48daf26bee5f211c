package tasks

import (
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"time"

	"github.com/easd/easd/eas/email"
	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/eas/item/ics"
	"github.com/easd/easd/wbxml"
)

// corpusSize is the number of generated items per property test.
const corpusSize = 500

// versions are the protocol versions whose field sets differ.
var versions = []string{"12.1", "14.1", "16.1"}

var runePool = []rune("abcdefghijKLMNOPQ 0123456789 ,;:\\\"'^<>&=.-_/@\n\téüßñ日本語Ωж😀\u0301")

func randText(r *rand.Rand, max int) string {
	n := 1 + r.Intn(max)
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteRune(runePool[r.Intn(len(runePool))])
	}
	return b.String()
}

func randWord(r *rand.Rand) string {
	rs := []rune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéü日")
	out := make([]rune, 1+r.Intn(10))
	for i := range out {
		out[i] = rs[r.Intn(len(rs))]
	}
	return string(out)
}

func opts(v string) item.Options {
	n := 0
	return item.Options{
		Version: v,
		Now:     func() time.Time { return time.Date(2024, 3, 5, 14, 30, 0, 0, time.UTC) },
		NewUID:  func() string { n++; return fmt.Sprintf("test-%d@easd", n) },
	}
}

// randInstant is a whole-second time in 2000..2039.
func randInstant(r *rand.Rand) time.Time {
	return time.Unix(946684800+r.Int63n(40*365*86400), 0).UTC()
}

// offsets are client UTC offsets in minutes (UTC+14 and UTC-11 included).
var offsets = []int{0, 60, 120, -300, -240, 330, 840, -660, 545}

// randPair returns a local/UTC date pair: a local midnight (a due date
// as Outlook sets it) or any time, in a random zone.
func randPair(r *rand.Rand) (local, utc string) {
	l := randInstant(r)
	if r.Intn(2) == 0 {
		l = time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, time.UTC)
	}
	off := time.Duration(offsets[r.Intn(len(offsets))]) * time.Minute
	return easTime(l), easTime(l.Add(-off))
}

// genItem is one generated client item and how to render it back.
type genItem struct {
	app      *wbxml.Node
	bodyType int
}

func (it genItem) prefsFor() []email.BodyPreference {
	if it.bodyType == 0 {
		return nil
	}
	return []email.BodyPreference{{Type: it.bodyType}}
}

// genApp generates a task as a client sends it for version v, with the
// elements always sent (Importance, Complete, Sensitivity, ReminderSet).
func genApp(r *rand.Rand, v string) genItem {
	ad := wbxml.E(wbxml.AirSyncApplicationData)
	p := 0.2 + 0.6*r.Float64()
	maybe := func() bool { return r.Float64() < p }
	it := genItem{app: ad}
	if maybe() {
		it.bodyType = 1 + r.Intn(2)
		data := randText(r, 200)
		if it.bodyType == 2 {
			data = "<html><body><p>" + randWord(r) + "</p><div>" + randWord(r) + "<br>" + randWord(r) + "</div></body></html>"
		}
		ad.Append(wbxml.E(wbxml.AirSyncBaseBody, wbxml.T(wbxml.AirSyncBaseType, fmt.Sprint(it.bodyType)),
			wbxml.T(wbxml.AirSyncBaseData, data)))
	}
	if maybe() {
		n := wbxml.E(wbxml.TasksCategories)
		for i := 0; i < 1+r.Intn(3); i++ {
			n.Append(wbxml.T(wbxml.TasksCategory, randText(r, 10)))
		}
		ad.Append(n)
	}
	complete := r.Intn(3) == 0
	ad.Append(wbxml.T(wbxml.TasksComplete, map[bool]string{true: "1", false: "0"}[complete]))
	if complete {
		ad.Append(wbxml.T(wbxml.TasksDateCompleted, easTime(randInstant(r))))
	}
	hasStart, hasDue := maybe(), maybe()
	if hasDue {
		l, u := randPair(r)
		ad.Append(wbxml.T(wbxml.TasksDueDate, l), wbxml.T(wbxml.TasksUtcDueDate, u))
	}
	ad.Append(wbxml.T(wbxml.TasksImportance, fmt.Sprint(r.Intn(3))))
	if maybe() {
		ad.Append(genRecurrence(r, v))
	}
	reminder := maybe()
	ad.Append(wbxml.T(wbxml.TasksReminderSet, map[bool]string{true: "1", false: "0"}[reminder]))
	if reminder {
		ad.Append(wbxml.T(wbxml.TasksReminderTime, easTime(randInstant(r))))
	}
	ad.Append(wbxml.T(wbxml.TasksSensitivity, fmt.Sprint(r.Intn(4))))
	if hasStart {
		l, u := randPair(r)
		ad.Append(wbxml.T(wbxml.TasksStartDate, l), wbxml.T(wbxml.TasksUtcStartDate, u))
	}
	if maybe() {
		ad.Append(wbxml.T(wbxml.TasksSubject, randText(r, 30)))
	}
	if maybe() {
		ad.Append(wbxml.T(wbxml.TasksOrdinalDate, easTime(randInstant(r))))
		ad.Append(wbxml.T(wbxml.TasksSubOrdinalDate, fmt.Sprint(r.Intn(1000000))))
	}
	return it
}

// genRecurrence generates a valid Recurrence for version v.
func genRecurrence(r *rand.Rand, v string) *wbxml.Node {
	types := []string{"0", "1", "2", "3", "5", "6"}
	typ := types[r.Intn(len(types))]
	n := wbxml.E(wbxml.TasksRecurrence, wbxml.T(wbxml.TasksType, typ))
	start := randInstant(r)
	if r.Intn(2) == 0 {
		start = time.Date(start.Year(), start.Month(), start.Day(), 0, 0, 0, 0, time.UTC)
	}
	n.Append(wbxml.T(wbxml.TasksStart, easTime(start)))
	switch r.Intn(4) {
	case 0:
		n.Append(wbxml.T(wbxml.TasksUntil, easTime(start.AddDate(0, 1+r.Intn(24), 0))))
	case 1:
		n.Append(wbxml.T(wbxml.TasksOccurrences, fmt.Sprint(1+r.Intn(50))))
	case 2:
		n.Append(wbxml.T(wbxml.TasksOccurrences, fmt.Sprint(1+r.Intn(50))),
			wbxml.T(wbxml.TasksUntil, easTime(start.AddDate(1, 0, 0))))
	}
	if r.Intn(2) == 0 {
		n.Append(wbxml.T(wbxml.TasksInterval, fmt.Sprint(1+r.Intn(10))))
	}
	dow := func() { n.Append(wbxml.T(wbxml.TasksDayOfWeek, fmt.Sprint(1+r.Intn(127)))) }
	switch typ {
	case "1":
		dow()
	case "2":
		n.Append(wbxml.T(wbxml.TasksDayOfMonth, fmt.Sprint(1+r.Intn(31))))
	case "3":
		dow()
		if r.Intn(5) > 0 { // a Type 3 without WeekOfMonth is kept as such
			n.Append(wbxml.T(wbxml.TasksWeekOfMonth, fmt.Sprint(1+r.Intn(5))))
		}
	case "5":
		n.Append(wbxml.T(wbxml.TasksDayOfMonth, fmt.Sprint(1+r.Intn(31))),
			wbxml.T(wbxml.TasksMonthOfYear, fmt.Sprint(1+r.Intn(12))))
	case "6":
		dow()
		n.Append(wbxml.T(wbxml.TasksWeekOfMonth, fmt.Sprint(1+r.Intn(5))),
			wbxml.T(wbxml.TasksMonthOfYear, fmt.Sprint(1+r.Intn(12))))
	}
	if r.Intn(3) == 0 {
		n.Append(wbxml.T(wbxml.TasksRegenerate, fmt.Sprint(r.Intn(2))), wbxml.T(wbxml.TasksDeadOccur, fmt.Sprint(r.Intn(2))))
	}
	if versionAtLeast(v, 14, 0) && r.Intn(3) == 0 {
		n.Append(wbxml.T(wbxml.TasksCalendarType, fmt.Sprint(r.Intn(16))), wbxml.T(wbxml.TasksIsLeapMonth, fmt.Sprint(r.Intn(2))))
	}
	// The server sends FirstDayOfWeek for weekly rules (MS-ASTASK 2.2.2.20).
	if versionAtLeast(v, 14, 1) && (typ == "1" || r.Intn(3) == 0) {
		n.Append(wbxml.T(wbxml.TasksFirstDayOfWeek, fmt.Sprint(r.Intn(7))))
	}
	return n
}

// normalize lists an ApplicationData as sorted lines; containers list
// their children sorted, Body is reduced to Type and Data.
func normalize(n *wbxml.Node) []string {
	var out []string
	for _, c := range n.Children {
		switch {
		case c.Tag == wbxml.AirSyncBaseBody:
			out = append(out, fmt.Sprintf("Body type=%s data=%q", c.ChildText(wbxml.AirSyncBaseType), c.ChildText(wbxml.AirSyncBaseData)))
		case c.Tag == wbxml.TasksCategories:
			var vs []string
			for _, x := range c.Children {
				vs = append(vs, x.Text())
			}
			out = append(out, fmt.Sprintf("%s=%q", c.Tag, vs))
		case len(c.Children) > 0:
			out = append(out, fmt.Sprintf("%s=%q", c.Tag, normalize(c)))
		default:
			out = append(out, fmt.Sprintf("%s=%q", c.Tag, c.Text()))
		}
	}
	sort.Strings(out)
	return out
}

func without(app *wbxml.Node, tags ...wbxml.Tag) *wbxml.Node {
	out := wbxml.E(app.Tag)
	for _, c := range app.Children {
		drop := false
		for _, t := range tags {
			drop = drop || c.Tag == t
		}
		if !drop {
			out.Append(c)
		}
	}
	return out
}

func with(app *wbxml.Node, t wbxml.Tag, s string) *wbxml.Node {
	return without(app, t).Append(wbxml.T(t, s))
}

// foreignLines are VTODO properties and alarms other clients write; %s is
// random escaped text, %d a random date-time.
var foreignLines = []string{
	"SUMMARY:%s", "DESCRIPTION:%s", "X-ALT-DESC;FMTTYPE=text/html:<p>stale</p>", "PRIORITY:%p",
	"DTSTART;VALUE=DATE:20240301", "DTSTART:20240301T090000Z", "DTSTART;TZID=Europe/Berlin:20240301T090000",
	"DTSTART:20240301T090000", "DTSTART;TZID=Bogus Standard Time:20240301T090000",
	"DUE;VALUE=DATE:20240310", "DUE:20240310T170000Z", "DUE;TZID=America/New_York:20240310T170000", "DURATION:PT2H",
	"STATUS:NEEDS-ACTION", "STATUS:COMPLETED", "STATUS:IN-PROCESS", "STATUS:CANCELLED", "COMPLETED:20240302T100000Z",
	"PERCENT-COMPLETE:40", "CLASS:PUBLIC", "CLASS:PRIVATE", "CLASS:CONFIDENTIAL", "CLASS:X-SECRET",
	"CATEGORIES:%s,%s", "CATEGORIES:Home", "RELATED-TO;RELTYPE=PARENT:parent-uid", "X-FOO;BAR=\"a:b\":baz",
	"RRULE:FREQ=WEEKLY;BYDAY=MO,FR", "RRULE:FREQ=MONTHLY;BYDAY=2TU", "RRULE:FREQ=MONTHLY;BYDAY=-1FR;COUNT=4",
	"RRULE:FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=5", "RRULE:FREQ=DAILY;COUNT=5;INTERVAL=2", "RRULE:FREQ=HOURLY",
	"RRULE:FREQ=WEEKLY;BYHOUR=9", "RRULE:FREQ=MONTHLY;BYMONTHDAY=1,15", "RRULE:FREQ=WEEKLY;UNTIL=20240601T000000Z;WKST=SU",
	"RRULE;X-EAS-START=2024-01-01T00:00:00.000Z:FREQ=YEARLY;BYMONTH=2;BYDAY=1MO", "EXDATE:20240308T090000Z",
	"ATTACH:https://example.com/a.pdf", "URL:https://example.com/t", "SEQUENCE:3", "X-EAS-ORDINALDATE:%s",
	"BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:x\r\nTRIGGER:-PT15M\r\nEND:VALARM",
	"BEGIN:VALARM\r\nACTION:AUDIO\r\nTRIGGER;RELATED=END:PT0S\r\nEND:VALARM",
	"BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:y\r\nTRIGGER;VALUE=DATE-TIME:20240305T080000Z\r\nEND:VALARM",
	"BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:z\r\nTRIGGER:P1W\r\nX-WR-ALARMUID:a1\r\nEND:VALARM",
}

// genCalendar builds a foreign VCALENDAR with one VTODO, sometimes a
// VTIMEZONE and an override.
func genCalendar(r *rand.Rand) []byte {
	var b strings.Builder
	b.WriteString("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Other//EN\r\n")
	if r.Intn(4) == 0 {
		b.WriteString("BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n" +
			"TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n")
	}
	fmt.Fprintf(&b, "BEGIN:VTODO\r\nUID:%08x@other\r\nDTSTAMP:20240101T000000Z\r\n", r.Uint32())
	seen := map[string]bool{}
	for i, n := 0, 1+r.Intn(12); i < n; i++ {
		l := foreignLines[r.Intn(len(foreignLines))]
		name := strings.SplitN(strings.SplitN(l, ":", 2)[0], ";", 2)[0]
		if seen[name] && name != "CATEGORIES" && name != "BEGIN" && name != "EXDATE" && name != "ATTACH" {
			continue // at most one of most VTODO properties (RFC 5545 3.6.2)
		}
		if name == "DURATION" && (seen["DUE"] || !seen["DTSTART"]) || name == "DUE" && seen["DURATION"] {
			continue
		}
		seen[name] = true
		for strings.Contains(l, "%s") {
			l = strings.Replace(l, "%s", ics.EscapeText(randText(r, 10)), 1)
		}
		l = strings.Replace(l, "%p", fmt.Sprint(r.Intn(10)), 1)
		b.WriteString(l + "\r\n")
	}
	b.WriteString("END:VTODO\r\n")
	if r.Intn(5) == 0 {
		b.WriteString("BEGIN:VTODO\r\nUID:x\r\nDTSTAMP:20240101T000000Z\r\nRECURRENCE-ID:20240308T090000Z\r\nSUMMARY:override\r\nEND:VTODO\r\n")
	}
	b.WriteString("END:VCALENDAR\r\n")
	return []byte(b.String())
}
