// Package tasks converts the EAS Tasks class (MS-ASTASK) to and from an
// iCalendar object (RFC 5545) holding one VTODO, the form tasks are stored
// in so that CalDAV can serve them too.
//
// Mapping:
//
//	Subject                     SUMMARY
//	Body                        DESCRIPTION (+ X-ALT-DESC;FMTTYPE=text/html)
//	Importance 0/1/2            PRIORITY 9 / none / 1 (RFC 5545 3.8.1.9:
//	                              1-4 high, 5 medium, 6-9 low)
//	StartDate, UtcStartDate     DTSTART
//	DueDate, UtcDueDate         DUE (see below)
//	Complete, DateCompleted     STATUS:COMPLETED, COMPLETED
//	Sensitivity 0/1/2/3         CLASS none / X-PERSONAL / PRIVATE /
//	                              CONFIDENTIAL
//	ReminderSet, ReminderTime   VALARM with an absolute TRIGGER
//	Categories                  CATEGORIES
//	Recurrence                  RRULE (recur.go)
//	OrdinalDate, SubOrdinalDate X-EAS-ORDINALDATE, X-EAS-SUBORDINALDATE
//
// Task dates come in pairs: StartDate/DueDate are the user's local time
// written with Z, UtcStartDate/UtcDueDate the instant (MS-ASTASK 2.2.2.12,
// 2.2.2.26, 2.2.2.31, 2.2.2.32); their difference is the client's UTC
// offset. A local midnight (Outlook's due dates are dates, MS-OXOTASK
// 2.2.2.2.5) is stored as a DATE, so CalDAV clients see the day, with the
// instant in X-EAS-UTC; another time is stored in UTC with the local
// form in X-EAS-LOCAL. Both forms come back exactly, and a pair with one
// half missing (ghosted) keeps the stored offset. DTSTART and DUE share
// their value type (RFC 5545 3.8.2.3).
//
// Everything else in the stored object (other components, VTIMEZONE,
// RELATED-TO, PERCENT-COMPLETE, other alarms' properties...) is kept.
package tasks

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/eas/item/ics"
	"github.com/easd/easd/wbxml"
	"github.com/emersion/go-ical"
)

// Codec is the item.Codec of the Tasks class. The zero value is ready; it
// is stateless and safe for concurrent use.
type Codec struct{}

var _ item.Codec = Codec{}

// Parameters this package keeps on DTSTART/DUE (see the package comment).
const (
	utcParam   = "X-EAS-UTC"
	localParam = "X-EAS-LOCAL"
)

// single are the single-valued elements read from a client.
var single = []wbxml.Tag{
	wbxml.TasksSubject, wbxml.TasksImportance, wbxml.TasksStartDate, wbxml.TasksUtcStartDate,
	wbxml.TasksDueDate, wbxml.TasksUtcDueDate, wbxml.TasksComplete, wbxml.TasksDateCompleted,
	wbxml.TasksSensitivity, wbxml.TasksReminderSet, wbxml.TasksReminderTime,
	wbxml.TasksOrdinalDate, wbxml.TasksSubOrdinalDate,
}

// defaults are the values of elements that are always sent.
var defaults = map[wbxml.Tag]string{
	wbxml.TasksImportance: "1", wbxml.TasksComplete: "0", wbxml.TasksSensitivity: "0", wbxml.TasksReminderSet: "0",
}

// xProps are elements kept in X- properties.
var xProps = map[wbxml.Tag]string{
	wbxml.TasksOrdinalDate: "X-EAS-ORDINALDATE", wbxml.TasksSubOrdinalDate: "X-EAS-SUBORDINALDATE",
}

// appData is a client's ApplicationData.
type appData struct {
	vals          map[wbxml.Tag]string
	categories    []string
	hasCategories bool
	body          item.BodyIn
	rec           recurrence
	hasRec        bool
}

func parseApp(n *wbxml.Node) (*appData, error) {
	if n == nil || n.Tag != wbxml.AirSyncApplicationData {
		return nil, item.Invalidf("not an ApplicationData element")
	}
	in := &appData{vals: map[wbxml.Tag]string{}}
	seen := map[wbxml.Tag]bool{}
	legacyTruncated := false
	for _, c := range n.Children {
		if seen[c.Tag] {
			return nil, item.Invalidf("duplicate %s", c.Tag)
		}
		seen[c.Tag] = true
		var err error
		switch c.Tag {
		case wbxml.TasksCategories:
			in.hasCategories = true
			for _, x := range c.Children {
				if x.Tag != wbxml.TasksCategory || len(x.Children) > 0 {
					return nil, item.Invalidf("Categories holds %s", x.Tag)
				}
				if s := item.Clean(x.Text()); s != "" {
					in.categories = append(in.categories, s)
				}
			}
		case wbxml.AirSyncBaseBody:
			in.body, err = item.ParseBody(c)
		case wbxml.TasksBody: // 2.5
			in.body = item.BodyIn{Present: true, Type: 1, Data: item.Clean(c.Text())}
		case wbxml.TasksBodyTruncated:
			legacyTruncated = strings.TrimSpace(c.Text()) == "1"
		case wbxml.TasksRecurrence:
			in.hasRec = true
			in.rec, err = parseRecurrence(c)
		default:
			for _, t := range single {
				if c.Tag == t {
					if len(c.Children) > 0 {
						return nil, item.Invalidf("%s has child elements", c.Tag)
					}
					in.vals[t] = item.Clean(c.Text())
				}
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if legacyTruncated && seen[wbxml.TasksBody] {
		in.body.Keep = true
	}
	return in, nil
}

// view is what a stored VTODO shows EAS.
type view struct {
	vals       map[wbxml.Tag]string
	categories []string
	body       item.Body
	rec        recurrence // nil: none, or not expressible
	due        time.Time  // UtcDueDate, for the index
}

// pair is a task date: its local and UTC forms and whether it is stored
// as a DATE.
type pair struct {
	local, utc time.Time
	isDate, ok bool
}

// readPair reads DTSTART or DUE.
func readPair(p *ical.Prop) pair {
	if p == nil {
		return pair{}
	}
	wall, utc, isDate, ok := ics.PropTime(p)
	if !ok {
		return pair{}
	}
	within := func(d time.Duration) bool { return d <= ics.MaxZoneSkew && d >= -ics.MaxZoneSkew }
	if p.Params.Get(ical.PropTimezoneID) == "" {
		if isDate {
			if t, err := time.Parse(ics.CompactUTC, p.Params.Get(utcParam)); err == nil && within(t.Sub(wall)) {
				utc = t
			}
		} else if t, err := time.Parse(ics.LocalLayout, p.Params.Get(localParam)); err == nil && within(t.Sub(utc)) {
			wall = t
		}
	}
	return pair{local: wall, utc: utc, isDate: isDate, ok: true}
}

func buildView(todo *ical.Component, ver string) *view {
	v := &view{vals: map[wbxml.Tag]string{}}
	set := func(t wbxml.Tag, s string) {
		if s != "" {
			v.vals[t] = s
		}
	}
	set(wbxml.TasksSubject, ics.Text(todo, ical.PropSummary))
	v.body = ics.Body(todo)
	v.categories = ics.Categories(todo)
	imp := "1"
	if p := todo.Props.Get(ical.PropPriority); p != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(p.Value)); err == nil && n >= 1 && n <= 9 {
			imp = map[bool]string{true: "2", false: "0"}[n <= 4]
			if n == 5 {
				imp = "1"
			}
		}
	}
	set(wbxml.TasksImportance, imp)
	start := readPair(todo.Props.Get(ical.PropDateTimeStart))
	due := readPair(todo.Props.Get(ical.PropDue))
	if !due.ok && start.ok {
		if p := todo.Props.Get(ical.PropDuration); p != nil {
			if d, err := p.Duration(); err == nil {
				due = pair{local: start.local.Add(d), utc: start.utc.Add(d), ok: true}
			}
		}
	}
	if start.ok {
		set(wbxml.TasksStartDate, easTime(start.local))
		set(wbxml.TasksUtcStartDate, easTime(start.utc))
	}
	if due.ok {
		set(wbxml.TasksDueDate, easTime(due.local))
		set(wbxml.TasksUtcDueDate, easTime(due.utc))
		v.due = due.utc
	}
	status := strings.ToUpper(strings.TrimSpace(ics.Text(todo, ical.PropStatus)))
	done := status == "COMPLETED" || status == "" && todo.Props.Get(ical.PropCompleted) != nil
	set(wbxml.TasksComplete, map[bool]string{true: "1", false: "0"}[done])
	if done {
		for _, name := range []string{ical.PropCompleted, ical.PropLastModified, ical.PropDateTimeStamp} {
			if p := todo.Props.Get(name); p != nil {
				if _, utc, _, ok := ics.PropTime(p); ok {
					set(wbxml.TasksDateCompleted, easTime(utc))
					break
				}
			}
		}
	}
	sens := "0"
	switch strings.ToUpper(strings.TrimSpace(ics.Text(todo, ical.PropClass))) {
	case "", "PUBLIC":
	case "X-PERSONAL":
		sens = "1"
	case "CONFIDENTIAL":
		sens = "3"
	default: // PRIVATE, and unknown classes (RFC 5545 3.8.1.3)
		sens = "2"
	}
	set(wbxml.TasksSensitivity, sens)
	set(wbxml.TasksReminderSet, "0")
	if _, at := reminder(todo, start, due); !at.IsZero() {
		set(wbxml.TasksReminderSet, "1")
		set(wbxml.TasksReminderTime, easTime(at))
	}
	for t, name := range xProps {
		set(t, ics.Text(todo, name))
	}
	if p := todo.Props.Get(ical.PropRecurrenceRule); p != nil {
		if r, ok := fromRRULE(p, defaultStart(start, due)); ok {
			v.rec = r.forVersion(ver)
		}
	}
	return v
}

// defaultStart is the Recurrence Start the task's dates imply: its local
// start, else its local due date.
func defaultStart(start, due pair) string {
	switch {
	case start.ok:
		return easTime(start.local)
	case due.ok:
		return easTime(due.local)
	}
	return ""
}

// reminder returns the VALARM that is the task's reminder and its time:
// the first alarm whose trigger can be resolved (absolute, or relative to
// a DTSTART/DUE the task has).
func reminder(todo *ical.Component, start, due pair) (*ical.Component, time.Time) {
	for _, a := range todo.Children {
		if a.Name != ical.CompAlarm {
			continue
		}
		p := a.Props.Get(ical.PropTrigger)
		if p == nil {
			continue
		}
		if strings.EqualFold(p.Params.Get(ical.ParamValue), "DATE-TIME") {
			if _, utc, _, ok := ics.PropTime(p); ok {
				return a, utc
			}
			continue
		}
		d, err := p.Duration()
		if err != nil {
			continue
		}
		anchor := start
		if strings.EqualFold(p.Params.Get(ical.ParamRelated), "END") || !start.ok {
			anchor = due
		}
		if anchor.ok {
			return a, anchor.utc.Add(d)
		}
	}
	return nil, time.Time{}
}

// decode parses a stored task.
func decode(stored []byte) (*ical.Calendar, *ical.Component, error) {
	cal, err := ics.Decode(stored)
	if err != nil {
		return nil, nil, fmt.Errorf("tasks: %w", err)
	}
	todo := ics.Master(cal, ical.CompToDo)
	if todo == nil {
		return nil, nil, fmt.Errorf("tasks: %w: no VTODO", ics.ErrMalformed)
	}
	return cal, todo, nil
}

// Index implements item.Codec: UID, the due instant as End, SUMMARY.
func (Codec) Index(stored []byte) (item.Index, error) {
	_, todo, err := decode(stored)
	if err != nil {
		return item.Index{}, err
	}
	return index(todo, buildView(todo, "")), nil
}

func index(todo *ical.Component, v *view) item.Index {
	return item.Index{UID: ics.Text(todo, ical.PropUID), End: v.due, Summary: v.vals[wbxml.TasksSubject]}
}

// Render implements item.Codec.
func (Codec) Render(stored []byte, o item.Options) (*wbxml.Node, error) {
	_, todo, err := decode(stored)
	if err != nil {
		return nil, err
	}
	v := buildView(todo, o.Version)
	ad := wbxml.E(wbxml.AirSyncApplicationData)
	if b := item.RenderBody(v.body, o.BodyPrefs, versionAtLeast(o.Version, 14, 0)); b != nil {
		ad.Append(b)
	}
	if len(v.categories) > 0 {
		n := wbxml.E(wbxml.TasksCategories)
		for _, s := range v.categories {
			n.Append(wbxml.T(wbxml.TasksCategory, s))
		}
		ad.Append(n)
	}
	for _, t := range []wbxml.Tag{wbxml.TasksComplete, wbxml.TasksDateCompleted, wbxml.TasksDueDate,
		wbxml.TasksUtcDueDate, wbxml.TasksImportance} {
		if s := v.vals[t]; s != "" {
			ad.Append(wbxml.T(t, s))
		}
	}
	if v.rec != nil {
		ad.Append(v.rec.node())
	}
	for _, t := range []wbxml.Tag{wbxml.TasksReminderSet, wbxml.TasksReminderTime, wbxml.TasksSensitivity,
		wbxml.TasksStartDate, wbxml.TasksUtcStartDate, wbxml.TasksSubject, wbxml.TasksOrdinalDate,
		wbxml.TasksSubOrdinalDate} {
		if s := v.vals[t]; s != "" {
			ad.Append(wbxml.T(t, s))
		}
	}
	return ad, nil
}

// Apply implements item.Codec. An ApplicationData equal to what Render
// sends returns stored byte for byte.
func (Codec) Apply(stored []byte, app *wbxml.Node, o item.Options) ([]byte, item.Index, error) {
	in, err := parseApp(app)
	if err != nil {
		return nil, item.Index{}, err
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	var cal *ical.Calendar
	var todo *ical.Component
	if stored == nil {
		if o.NewUID == nil {
			return nil, item.Index{}, errors.New("tasks: Apply of an Add needs Options.NewUID")
		}
		cal = ics.NewCalendar()
		todo = ical.NewComponent(ical.CompToDo)
		todo.Props.SetText(ical.PropUID, o.NewUID())
		ics.Stamp(todo, ical.PropCreated, now())
		cal.Children = append(cal.Children, todo)
	} else if cal, todo, err = decode(stored); err != nil {
		return nil, item.Index{}, err
	}
	a := &applier{todo: todo, in: in, old: buildView(todo, o.Version), oldFull: buildView(todo, "99.0").rec, o: o, now: now()}
	if err := a.run(); err != nil {
		return nil, item.Index{}, err
	}
	if !a.changed && stored != nil {
		return stored, index(todo, a.old), nil
	}
	ics.Stamp(todo, ical.PropDateTimeStamp, a.now)
	ics.Stamp(todo, ical.PropLastModified, a.now)
	if todo.Props.Get(ical.PropUID) == nil && o.NewUID != nil {
		todo.Props.SetText(ical.PropUID, o.NewUID()) // RFC 5545 3.6.2 requires one
	}
	ics.EnsureCalendarProps(cal)
	out, err := ics.Encode(cal)
	if err != nil {
		return nil, item.Index{}, fmt.Errorf("tasks: encoding: %w", err)
	}
	return out, index(todo, buildView(todo, "")), nil
}
