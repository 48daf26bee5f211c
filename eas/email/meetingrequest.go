package email

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/easd/easd/eas/tz"
	"github.com/easd/easd/wbxml"
	"github.com/emersion/go-ical"
)

// This file renders the iTIP REQUEST or CANCEL of a meeting message as
// email:MeetingRequest (MS-ASEMAIL 2.2.2.48); meeting.go reads it.

// maxEventSpan bounds an event's length as rendered (a DURATION can
// overflow).
const maxEventSpan = 10 * 366 * 24 * time.Hour

// meetingRequest renders email:MeetingRequest (MS-ASEMAIL 2.2.2.48) for
// an iTIP REQUEST or CANCEL, its children in that section's order, for
// the protocol version. stamp stands in for a missing DTSTAMP.
func meetingRequest(ics []byte, method, version string, stamp time.Time) (*wbxml.Node, error) {
	cal, err := ParseCalendar(ics)
	if err != nil {
		return nil, err
	}
	ev := MainEvent(cal)
	if ev == nil {
		return nil, errors.New("email: meeting without VEVENT")
	}
	start, err := readWhen(cal, ev.Props.Get(ical.PropDateTimeStart))
	if err != nil {
		return nil, err
	}
	end := eventEnd(cal, ev, start)
	v := versionNum(version)
	allDay := start.date || strings.EqualFold(rawProp(ev, "X-MICROSOFT-CDO-ALLDAYEVENT"), "TRUE")
	if p := ev.Props.Get(ical.PropDateTimeStamp); p != nil {
		if t, err := time.Parse(icalUTC, strings.TrimSpace(p.Value)); err == nil {
			stamp = t
		}
	}
	n := wbxml.E(wbxml.EmailMeetingRequest,
		wbxml.T(wbxml.EmailAllDayEvent, boolText(allDay)),
		wbxml.T(wbxml.EmailStartTime, dateTime(start.t)),
		wbxml.T(wbxml.EmailDtStamp, dateTime(stamp)),
		wbxml.T(wbxml.EmailEndTime, dateTime(end)),
	)
	rid, hasRID := when{}, false
	if p := ev.Props.Get(ical.PropRecurrenceID); p != nil {
		if w, err := readWhen(cal, p); err == nil {
			rid, hasRID = w, true
		}
	}
	rec := recurrence(ev, start, v)
	// InstanceType, MS-ASEMAIL 2.2.2.39: 0 single, 1 recurring master,
	// 3 exception (an occurrence sent alone).
	instance := "0"
	switch {
	case hasRID:
		instance = "3"
	case rec != nil:
		instance = "1"
	}
	n.Append(wbxml.T(wbxml.EmailInstanceType, instance))
	if loc := propText(ev, ical.PropLocation); loc != "" {
		if v >= 160 {
			n.Append(wbxml.E(wbxml.AirSyncBaseLocation, wbxml.T(wbxml.AirSyncBaseDisplayName, loc)))
		} else {
			n.Append(wbxml.T(wbxml.EmailLocation, loc))
		}
	}
	if org := organizer(ev); org != "" {
		n.Append(wbxml.T(wbxml.EmailOrganizer, org))
	}
	if hasRID {
		n.Append(wbxml.T(wbxml.EmailRecurrenceId, dateTime(rid.t)))
	}
	if secs, ok := reminderSeconds(ev); ok {
		n.Append(wbxml.T(wbxml.EmailReminder, strconv.Itoa(secs)))
	}
	n.Append(wbxml.T(wbxml.EmailResponseRequested, boolText(responseRequested(ev))))
	if rec != nil {
		n.Append(wbxml.E(wbxml.EmailRecurrences, rec))
	}
	zone := start.zone
	if allDay && start.date {
		zone = tz.UTC() // a DATE has no zone: midnight UTC, said so
	}
	n.Append(
		wbxml.T(wbxml.EmailSensitivity, strconv.Itoa(sensitivityOf(ev))),
		wbxml.T(wbxml.EmailBusyStatus, strconv.Itoa(IntendedBusyStatus(ev, v >= 160))),
		wbxml.T(wbxml.EmailTimeZone, zone.Encode()),
	)
	uid := sanitizeString(rawProp(ev, ical.PropUID))
	if v >= 160 {
		n.Append(wbxml.T(wbxml.CalendarUID, uid)) // MS-ASEMAIL 2.2.2.48: 16.x sends calendar:UID
	} else {
		var inst time.Time
		if hasRID {
			inst = rid.wall
		}
		n.Append(wbxml.T(wbxml.EmailGlobalObjId, GlobalObjID(uid, inst)))
	}
	if v >= 140 {
		disallow := strings.EqualFold(rawProp(ev, "X-MICROSOFT-DISALLOW-COUNTER"), "TRUE")
		n.Append(wbxml.T(wbxml.EmailDisallowNewTimeProposal, boolText(disallow)))
	}
	if v >= 141 {
		// MS-ASEMAIL 2.2.2.47: 1 initial request, 2 full update (a
		// REQUEST with SEQUENCE above 0), 0 otherwise (a cancellation
		// offers no response).
		typ := "0"
		if method == "REQUEST" {
			typ = "1"
			if seq, _ := strconv.Atoi(rawProp(ev, ical.PropSequence)); seq > 0 {
				typ = "2"
			}
		}
		n.Append(wbxml.T(wbxml.Email2MeetingMessageType, typ))
	}
	return n, nil
}

// eventEnd is the end of ev: DTEND, else DTSTART + DURATION, else the day
// after a DATE start or the start itself (RFC 5545 3.6.1); never before
// the start nor more than maxEventSpan after it.
func eventEnd(cal *ical.Calendar, ev *ical.Component, start when) time.Time {
	end := start.t
	if start.date {
		end = start.t.AddDate(0, 0, 1)
	}
	if p := ev.Props.Get(ical.PropDateTimeEnd); p != nil {
		if w, err := readWhen(cal, p); err == nil {
			end = w.t
		}
	} else if p := ev.Props.Get(ical.PropDuration); p != nil {
		if d, err := p.Duration(); err == nil && d >= 0 && d <= maxEventSpan {
			end = start.t.Add(d)
		}
	}
	if end.Before(start.t) || end.Sub(start.t) > maxEventSpan {
		end = start.t
	}
	return end
}

// organizer renders email:Organizer: `"Name" <address>`, or the address.
func organizer(ev *ical.Component) string {
	p := ev.Props.Get(ical.PropOrganizer)
	if p == nil {
		return ""
	}
	addr := sanitizeString(Address(p.Value))
	if addr == "" {
		return ""
	}
	name := strings.TrimSpace(sanitizeString(strings.Trim(p.Params.Get(ical.ParamCommonName), `"`)))
	if name == "" || strings.EqualFold(name, addr) {
		return addr
	}
	return `"` + strings.ReplaceAll(strings.ReplaceAll(name, `\`, `\\`), `"`, `\"`) + `" <` + addr + ">"
}

// maxReminderSeconds bounds Reminder (a year).
const maxReminderSeconds = 366 * 24 * 3600

// reminderSeconds is email:Reminder (MS-ASEMAIL 2.2.2.63, seconds before
// the start): the first DISPLAY or AUDIO alarm (or one without ACTION)
// whose TRIGGER is a duration at or before the start.
func reminderSeconds(ev *ical.Component) (int, bool) {
	for _, a := range ev.Children {
		if a.Name != ical.CompAlarm {
			continue
		}
		switch strings.ToUpper(rawProp(a, ical.PropAction)) {
		case "", "DISPLAY", "AUDIO":
		default:
			continue
		}
		p := a.Props.Get(ical.PropTrigger)
		if p == nil || strings.EqualFold(p.Params.Get(ical.ParamValue), "DATE-TIME") || strings.EqualFold(p.Params.Get("RELATED"), "END") {
			continue
		}
		d, err := p.Duration()
		if err != nil || d > 0 || -d > maxReminderSeconds*time.Second {
			continue
		}
		return int(-d / time.Second), true
	}
	return 0, false
}

// responseRequested reports whether attendees are asked to reply (RSVP).
func responseRequested(ev *ical.Component) bool {
	for _, a := range ev.Props.Values(ical.PropAttendee) {
		if strings.EqualFold(a.Params.Get(ical.ParamRSVP), "TRUE") {
			return true
		}
	}
	return false
}

// sensitivityOf maps CLASS to Sensitivity (MS-ASEMAIL 2.2.2.71): PUBLIC
// 0, X-PERSONAL 1, PRIVATE 2, CONFIDENTIAL 3; an unknown class is private
// (RFC 5545 3.8.1.3).
func sensitivityOf(ev *ical.Component) int {
	switch strings.ToUpper(rawProp(ev, ical.PropClass)) {
	case "", "PUBLIC":
		return 0
	case "X-PERSONAL":
		return 1
	case "CONFIDENTIAL":
		return 3
	}
	return 2
}

// IntendedBusyStatus is the busy status an attendee takes once the
// meeting is accepted (email:BusyStatus, MS-ASEMAIL 2.2.2.14): Outlook's
// X-MICROSOFT-CDO-INTENDEDSTATUS (MS-OXCICAL), else TRANSP (TRANSPARENT
// is free, 0), else busy (2). Working elsewhere (4) exists from 16.0
// (v16); before, it is busy.
func IntendedBusyStatus(ev *ical.Component, v16 bool) int {
	b := 2
	if strings.EqualFold(rawProp(ev, ical.PropTransparency), "TRANSPARENT") {
		b = 0
	}
	switch strings.ToUpper(rawProp(ev, "X-MICROSOFT-CDO-INTENDEDSTATUS")) {
	case "FREE":
		b = 0
	case "TENTATIVE":
		b = 1
	case "BUSY":
		b = 2
	case "OOF":
		b = 3
	case "WORKINGELSEWHERE":
		b = 4
		if !v16 {
			b = 2
		}
	}
	return b
}

// globalObjClass is the CLASSID that starts a GlobalObjId (MS-ASEMAIL
// 2.2.2.37), also the hex prefix of Outlook's iCalendar UIDs.
var globalObjClass = []byte{0x04, 0x00, 0x00, 0x00, 0x82, 0x00, 0xE0, 0x00, 0x74, 0xC5, 0xB7, 0x10, 0x1A, 0x82, 0xE0, 0x08}

// GlobalObjID returns email:GlobalObjId (MS-ASEMAIL 2.2.2.37) for an
// iCalendar UID: base64 of the Outlook GlobalObjectId structure. An
// Outlook UID (the hex of such a structure) is decoded; any other UID is
// wrapped as a "vCal-Uid" (CLASSID, INSTDATE, NOW and RESERVED, the data
// length, "vCal-Uid", version 1, the UID, NUL), the form MS-ASEMAIL 4.3
// example 2 shows. NOW is left zero so the id stays the same for every
// message of the meeting. For an occurrence, INSTDATE holds its date
// (instance, zero for the whole meeting).
func GlobalObjID(uid string, instance time.Time) string {
	var b []byte
	if raw, err := hex.DecodeString(uid); err == nil && len(raw) >= 40 && bytes.HasPrefix(raw, globalObjClass) {
		b = raw
	} else {
		data := append(append([]byte("vCal-Uid"), 1, 0, 0, 0), uid...)
		data = append(data, 0)
		b = make([]byte, 40, 40+len(data))
		copy(b, globalObjClass)
		binary.LittleEndian.PutUint32(b[36:], uint32(len(data)))
		b = append(b, data...)
	}
	b[16], b[17], b[18], b[19] = 0, 0, 0, 0
	if !instance.IsZero() && instance.Year() > 0 && instance.Year() < 1<<16 {
		b[16], b[17] = byte(instance.Year()>>8), byte(instance.Year())
		b[18], b[19] = byte(instance.Month()), byte(instance.Day())
	}
	return base64.StdEncoding.EncodeToString(b)
}

// versionNum is a protocol version times ten ("14.1" is 141); "" and
// unreadable versions count as 14.1.
func versionNum(v string) int {
	major, minor, _ := strings.Cut(v, ".")
	a, err1 := strconv.Atoi(major)
	b, err2 := strconv.Atoi(minor)
	if v == "" || err1 != nil || err2 != nil || a < 0 || b < 0 || b > 9 {
		return 141
	}
	return a*10 + b
}

// weekdayBits are the BYDAY names by email:DayOfWeek bit (1 Sunday ... 64
// Saturday, MS-ASEMAIL 2.2.2.26).
var weekdayBits = map[string]int{"SU": 1, "MO": 2, "TU": 4, "WE": 8, "TH": 16, "FR": 32, "SA": 64}

// rrule is the part of an RRULE (RFC 5545 3.3.10) EAS can express.
type rrule struct {
	freq, until, wkst string
	interval, count   int
	days              []string // BYDAY weekdays
	nth               int      // BYDAY ordinal or BYSETPOS (one), 0 none
	monthDay, month   int      // BYMONTHDAY, BYMONTH (one each), 0 none
	unsupported       bool     // a part EAS cannot express
}

func parseRRule(v string) rrule {
	r := rrule{interval: 1}
	for part := range strings.SplitSeq(strings.ToUpper(strings.TrimSpace(v)), ";") {
		k, val, _ := strings.Cut(part, "=")
		num := func() int {
			n, err := strconv.Atoi(val)
			if err != nil {
				r.unsupported = true
			}
			return n
		}
		switch k {
		case "FREQ":
			r.freq = val
		case "INTERVAL":
			r.interval = num()
		case "COUNT":
			r.count = num()
		case "UNTIL":
			r.until = val
		case "WKST":
			r.wkst = val
		case "BYDAY":
			for d := range strings.SplitSeq(val, ",") {
				i := strings.IndexFunc(d, func(c rune) bool { return c >= 'A' && c <= 'Z' })
				if i < 0 || weekdayBits[d[i:]] == 0 {
					r.unsupported = true
					continue
				}
				if i > 0 {
					n, err := strconv.Atoi(d[:i])
					if err != nil || (r.nth != 0 && r.nth != n) {
						r.unsupported = true
					}
					r.nth = n
				}
				r.days = append(r.days, d[i:])
			}
		case "BYSETPOS":
			n := num()
			if r.nth != 0 && r.nth != n || strings.Contains(val, ",") {
				r.unsupported = true
			}
			r.nth = n
		case "BYMONTHDAY":
			r.monthDay = num()
		case "BYMONTH":
			r.month = num()
		case "", "RSCALE", "SKIP":
		default:
			r.unsupported = true // BYHOUR, BYWEEKNO, BYYEARDAY ...
		}
	}
	if r.interval < 1 || r.interval > 999 || r.count < 0 || r.count > 999 || r.month < 0 || r.month > 12 || r.monthDay < -1 || r.monthDay > 31 {
		r.unsupported = true
	}
	return r
}

// recurrence renders email:Recurrence (MS-ASEMAIL 2.2.2.60) of a master
// event's RRULE, its children in that section's order; nil without an
// RRULE or for one EAS cannot express. Defaults come from the start in
// its own zone, as the rule does.
func recurrence(ev *ical.Component, start when, v int) *wbxml.Node {
	p := ev.Props.Get(ical.PropRecurrenceRule)
	if p == nil || ev.Props.Get(ical.PropRecurrenceID) != nil {
		return nil
	}
	r := parseRRule(p.Value)
	if r.unsupported {
		return nil
	}
	local := start.wall
	mask := 0
	for _, d := range r.days {
		mask |= weekdayBits[d]
	}
	week := r.nth
	if week == -1 {
		week = 5 // MS-ASEMAIL 2.2.2.88: 5 is the last week
	}
	if r.nth != 0 && (week < 1 || week > 5) {
		return nil
	}
	typ, interval, dayOfMonth, month := 0, r.interval, 0, 0
	switch r.freq {
	case "DAILY":
		if mask != 0 { // every weekday and the like: weekly on those days
			if r.interval != 1 {
				return nil
			}
			typ = 1
		}
	case "WEEKLY":
		typ = 1
		if mask == 0 {
			mask = 1 << int(local.Weekday())
		}
	case "MONTHLY", "YEARLY":
		typ = 2
		if r.freq == "YEARLY" {
			typ, month = 5, int(local.Month())
			if r.month != 0 {
				month = r.month
			}
		}
		switch {
		case r.monthDay == -1 && mask == 0: // the last day of the month
			typ, week, mask = typ+1, 5, 127
		case r.nth != 0 && mask != 0:
			typ++ // 3 monthly, 6 yearly on the nth weekday
		case mask != 0 || r.monthDay < 0:
			return nil
		case r.monthDay > 0:
			dayOfMonth = r.monthDay
		default:
			dayOfMonth = local.Day()
		}
	default:
		return nil
	}
	if typ != 3 && typ != 6 {
		week = 0
	}
	if typ != 1 && typ != 3 && typ != 6 {
		mask = 0
	}
	n := wbxml.E(wbxml.EmailRecurrence,
		wbxml.T(wbxml.EmailType, strconv.Itoa(typ)),
		wbxml.T(wbxml.EmailInterval, strconv.Itoa(interval)))
	if u, ok := rruleUntil(r.until, start); ok {
		n.Append(wbxml.T(wbxml.EmailUntil, u.Format(icalUTC)))
	} else if r.count > 0 {
		n.Append(wbxml.T(wbxml.EmailOccurrences, strconv.Itoa(r.count)))
	}
	add := func(t wbxml.Tag, v int) {
		if v > 0 {
			n.Append(wbxml.T(t, strconv.Itoa(v)))
		}
	}
	add(wbxml.EmailWeekOfMonth, week)
	add(wbxml.EmailDayOfMonth, dayOfMonth)
	add(wbxml.EmailDayOfWeek, mask)
	add(wbxml.EmailMonthOfYear, month)
	if v >= 141 && typ == 1 {
		first := 1 // RFC 5545: WKST defaults to Monday
		if b := weekdayBits[r.wkst]; b != 0 {
			first = 0
			for b > 1 {
				b >>= 1
				first++
			}
		}
		n.Append(wbxml.T(wbxml.Email2FirstDayOfWeek, strconv.Itoa(first)))
	}
	return n
}

// rruleUntil reads an RRULE UNTIL as an instant (email:Until, compact
// UTC as calendar:Until): UTC as written, a local time in the start's
// zone, a DATE as midnight UTC for an all-day series and the end of that
// day in the start's zone otherwise.
func rruleUntil(v string, start when) (time.Time, bool) {
	if v == "" {
		return time.Time{}, false
	}
	if t, err := time.Parse(icalUTC, v); err == nil {
		return t, true
	}
	if t, err := time.Parse(icalLocal, v); err == nil {
		return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, start.loc).UTC(), true
	}
	d, err := time.Parse(icalDate, v)
	if err != nil {
		return time.Time{}, false
	}
	if start.date {
		return d, true
	}
	return time.Date(d.Year(), d.Month(), d.Day(), 23, 59, 59, 0, start.loc).UTC(), true
}
