package calendar

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/easd/easd/eas/tz"
	"github.com/easd/easd/wbxml"
)

// model is the test's own reading of an ApplicationData: every element
// with its default applied and its value in a comparable form, keyed by a
// path ("Subject", "Recurrence", "Exception/20261210T090000Z"). Comparing
// two models compares ApplicationData up to element order and defaults.
type model map[string]string

// tagName names the elements the reader knows.
func tagName(t wbxml.Tag) string { return t.Name() }

// readModel reads an ApplicationData as sent by a client or server of
// version v (16.x: all-day times are dates written as midnight UTC;
// earlier: local midnight in the Timezone's zone).
func readModel(app *wbxml.Node, v string) (model, error) {
	v16 := strings.HasPrefix(v, "16")
	v14 := !strings.HasPrefix(v, "12")
	m := model{}
	el := map[wbxml.Tag]*wbxml.Node{}
	for _, ch := range app.Children {
		el[ch.Tag] = ch
	}
	var zt tz.TimeZone
	if n := el[wbxml.CalendarTimezone]; n != nil {
		z, err := tz.Parse(n.Text())
		if err != nil {
			return nil, err
		}
		zt = z
	}
	allDay := el[wbxml.CalendarAllDayEvent].Text() == "1"
	// date reads an all-day time as its date.
	date := func(s string) (string, error) {
		t, err := parseTestTime(s)
		if err != nil {
			return "", err
		}
		if !v16 || (t.Hour() != 0 || t.Minute() != 0) {
			t = t.Add(zt.Offset(t))
		}
		return t.Format("20060102"), nil
	}
	when := func(s string, allDay bool) (string, error) {
		if allDay {
			return date(s)
		}
		t, err := parseTestTime(s)
		return compact(t), err
	}
	start, err := when(el[wbxml.CalendarStartTime].Text(), allDay)
	if err != nil {
		return nil, fmt.Errorf("StartTime: %w", err)
	}
	m["StartTime"] = start
	if m["EndTime"], err = when(el[wbxml.CalendarEndTime].Text(), allDay); err != nil {
		return nil, fmt.Errorf("EndTime: %w", err)
	}
	m["AllDayEvent"] = strconv.FormatBool(allDay)
	startT, _ := parseTestTime(el[wbxml.CalendarStartTime].Text())
	year := startT.Add(zt.Offset(startT)).Year()
	if !(allDay && v16) {
		m["Timezone"] = zoneSignature(zt, year)
	}
	def := func(t wbxml.Tag, d string) {
		if n := el[t]; n != nil {
			m[tagName(t)] = canonText(n.Text())
		} else if d != "" {
			m[tagName(t)] = d
		}
	}
	def(wbxml.CalendarSubject, "")
	def(wbxml.CalendarDtStamp, "")
	def(wbxml.CalendarBusyStatus, "2")
	def(wbxml.CalendarSensitivity, "0")
	def(wbxml.CalendarReminder, "")
	def(wbxml.CalendarMeetingStatus, "")
	def(wbxml.CalendarOrganizerEmail, "")
	if n := el[wbxml.CalendarOrganizerName]; n != nil {
		m["OrganizerName"] = n.Text()
	}
	if m["OrganizerName"] == "" && m["OrganizerEmail"] != "" {
		m["OrganizerName"] = m["OrganizerEmail"]
	}
	if n := el[wbxml.CalendarUID]; n != nil {
		m["UID"] = n.Text()
	}
	if n := el[wbxml.CalendarClientUid]; n != nil {
		m["UID"] = n.Text()
	}
	readLocation(m, el)
	if n := el[wbxml.AirSyncBaseBody]; n != nil {
		m["Body"] = n.ChildText(wbxml.AirSyncBaseType) + ":" + normText(n.ChildText(wbxml.AirSyncBaseData))
		if strings.HasSuffix(m["Body"], ":") {
			delete(m, "Body")
		}
	}
	if s := readList(el[wbxml.CalendarCategories], func(n *wbxml.Node) string { return n.Text() }); s != "" {
		m["Categories"] = s
	}
	if s := readList(el[wbxml.CalendarAttendees], readAttendeeModel); s != "" {
		m["Attendees"] = s
	}
	if v14 {
		if n := el[wbxml.CalendarResponseRequested]; n != nil && n.Text() == "1" && m["Attendees"] != "" {
			m["ResponseRequested"] = "1"
		}
		def(wbxml.CalendarResponseType, "")
		def(wbxml.CalendarAppointmentReplyTime, "")
		def(wbxml.CalendarDisallowNewTimeProposal, "")
	}
	if v14 && !strings.HasPrefix(v, "14.0") {
		def(wbxml.CalendarOnlineMeetingConfLink, "")
		def(wbxml.CalendarOnlineMeetingExternalLink, "")
	}
	if n := el[wbxml.CalendarRecurrence]; n != nil {
		m["Recurrence"] = readRecModel(n, allDay, zt, date)
	}
	if n := el[wbxml.CalendarExceptions]; n != nil {
		master := model{}
		for k, val := range m {
			master[k] = val
		}
		for x := range n.Each(wbxml.CalendarException) {
			k, val, err := readExceptionModel(x, master, allDay, v, when)
			if err != nil {
				return nil, err
			}
			m["Exception/"+k] = val
		}
	}
	return m, nil
}

func readLocation(m model, el map[wbxml.Tag]*wbxml.Node) {
	if n := el[wbxml.CalendarLocation]; n != nil && n.Text() != "" {
		m["Location"] = n.Text()
	}
	if n := el[wbxml.AirSyncBaseLocation]; n != nil {
		var parts []string
		for _, ch := range n.Children {
			if ch.Text() == "" {
				continue
			}
			if ch.Tag == wbxml.AirSyncBaseDisplayName {
				m["Location"] = ch.Text()
				continue
			}
			parts = append(parts, tagName(ch.Tag)+"="+ch.Text())
		}
		sort.Strings(parts)
		if len(parts) > 0 {
			m["LocationParts"] = strings.Join(parts, ";")
		}
	}
}

func readAttendeeModel(a *wbxml.Node) string {
	email := strings.ToLower(a.ChildText(wbxml.CalendarEmail))
	name := a.ChildText(wbxml.CalendarName)
	if name == "" {
		name = email
	}
	st := a.ChildText(wbxml.CalendarAttendeeStatus)
	if st == "" {
		st = "0"
	}
	ty := a.ChildText(wbxml.CalendarAttendeeType)
	if ty == "" {
		ty = "1"
	}
	return email + "|" + name + "|" + st + "|" + ty
}

// readList renders a list element as its sorted items; "" if absent.
func readList(n *wbxml.Node, item func(*wbxml.Node) string) string {
	if n == nil {
		return ""
	}
	var out []string
	for _, ch := range n.Children {
		out = append(out, item(ch))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func readRecModel(n *wbxml.Node, allDay bool, zt tz.TimeZone, date func(string) (string, error)) string {
	get := func(t wbxml.Tag, d string) string {
		if s := strings.TrimSpace(n.ChildText(t)); s != "" {
			return canonText(s)
		}
		return d
	}
	until := ""
	if s := n.ChildText(wbxml.CalendarUntil); s != "" {
		if allDay {
			until, _ = date(s)
		} else if t, err := parseTestTime(s); err == nil {
			until = t.Add(zt.Offset(t)).Format("20060102")
		}
	}
	return fmt.Sprintf("type=%s interval=%s count=%s until=%s dow=%s dom=%s week=%s month=%s cal=%s leap=%s wkst=%s",
		get(wbxml.CalendarType, ""), get(wbxml.CalendarInterval, "1"), get(wbxml.CalendarOccurrences, ""), until,
		get(wbxml.CalendarDayOfWeek, ""), get(wbxml.CalendarDayOfMonth, ""), get(wbxml.CalendarWeekOfMonth, ""),
		get(wbxml.CalendarMonthOfYear, ""), get(wbxml.CalendarCalendarType, "0"), get(wbxml.CalendarIsLeapMonth, "0"),
		get(wbxml.CalendarFirstDayOfWeek, "1"))
}

// readExceptionModel reads an Exception: its key (original start) and its
// elements that differ from the master's.
func readExceptionModel(x *wbxml.Node, master model, allDay bool, v string, when func(string, bool) (string, error)) (string, string, error) {
	orig := x.ChildText(wbxml.CalendarExceptionStartTime)
	if orig == "" {
		orig = x.ChildText(wbxml.AirSyncBaseInstanceId)
	}
	key, err := when(orig, allDay)
	if err != nil {
		return "", "", err
	}
	if x.ChildText(wbxml.CalendarDeleted) == "1" {
		return key, "deleted", nil
	}
	// The exception's own elements on top of the master's.
	app := wbxml.E(wbxml.AirSyncApplicationData)
	have := map[wbxml.Tag]bool{}
	for _, ch := range x.Children {
		switch ch.Tag {
		case wbxml.CalendarExceptionStartTime, wbxml.AirSyncBaseInstanceId, wbxml.CalendarDeleted:
			continue
		}
		have[ch.Tag] = true
		app.Append(ch)
	}
	if !have[wbxml.CalendarAllDayEvent] {
		app.Append(wbxml.T(wbxml.CalendarAllDayEvent, boolText(allDay)))
	}
	exAllDay := app.ChildText(wbxml.CalendarAllDayEvent) == "1"
	em := model{}
	for _, t := range []wbxml.Tag{wbxml.CalendarStartTime, wbxml.CalendarEndTime} {
		s, err := when(app.ChildText(t), exAllDay)
		if err != nil {
			return "", "", err
		}
		em[tagName(t)] = s
	}
	sub, err := readModel(app, v)
	if err != nil {
		return "", "", err
	}
	for k, val := range sub {
		switch k {
		case "StartTime", "EndTime", "Timezone", "UID":
			continue
		}
		if master[k] != val && (have[tagFor(k)] || k == "AllDayEvent") {
			em[k] = val
		}
	}
	var parts []string
	for k, val := range em {
		parts = append(parts, k+"="+val)
	}
	sort.Strings(parts)
	return key, strings.Join(parts, " "), nil
}

// tagFor maps a model key back to its element, for "was it sent".
func tagFor(k string) wbxml.Tag {
	for _, t := range []wbxml.Tag{wbxml.CalendarSubject, wbxml.CalendarBusyStatus, wbxml.CalendarSensitivity,
		wbxml.CalendarReminder, wbxml.CalendarMeetingStatus, wbxml.CalendarCategories, wbxml.CalendarAttendees,
		wbxml.CalendarDtStamp, wbxml.CalendarAllDayEvent, wbxml.CalendarAppointmentReplyTime, wbxml.CalendarResponseType,
		wbxml.CalendarOnlineMeetingConfLink, wbxml.CalendarOnlineMeetingExternalLink} {
		if tagName(t) == k {
			return t
		}
	}
	switch k {
	case "Body":
		return wbxml.AirSyncBaseBody
	case "Location":
		return wbxml.CalendarLocation
	}
	return 0
}

// zoneSignature is a canonical form of a blob's rules for year: the blob
// FromLocation makes of a Location following them.
func zoneSignature(z tz.TimeZone, year int) string {
	c := tz.FromLocation(z.Location("sig"), year)
	return c.String()
}

func parseTestTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range []string{"20060102T150405Z", "20060102"} {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bad time %q", s)
}

func canonText(s string) string {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		return strconv.Itoa(n)
	}
	return s
}

// normText normalises body text: LF line ends, no trailing white space.
func normText(s string) string {
	return strings.TrimRight(strings.ReplaceAll(s, "\r\n", "\n"), " \t\r\n")
}
