package calendar

import (
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/easd/easd/wbxml"
	"github.com/emersion/go-ical"
)

// Properties that keep EAS values iCalendar has no standard property for.
const (
	propBusyStatus      = "X-MICROSOFT-CDO-BUSYSTATUS"
	propDisallowCounter = "X-MICROSOFT-DISALLOW-COUNTER"
	propReplyTime       = "X-MICROSOFT-CDO-REPLYTIME"
	propConfLink        = "X-MICROSOFT-ONLINEMEETINGCONFLINK"
	propExternalLink    = "X-MICROSOFT-ONLINEMEETINGEXTERNALLINK"
	propMeetingStatus   = "X-EAS-MEETINGSTATUS"
	propResponseType    = "X-EAS-RESPONSETYPE"
)

// onlineMeetingProps maps the 14.1 online meeting elements to properties.
func onlineMeetingProps() map[wbxml.Tag]string {
	return map[wbxml.Tag]string{
		wbxml.CalendarOnlineMeetingConfLink:     propConfLink,
		wbxml.CalendarOnlineMeetingExternalLink: propExternalLink,
	}
}

// busyNames are the X-MICROSOFT-CDO-BUSYSTATUS values of BusyStatus 0 to 4
// (MS-ASCAL 2.2.2.9: free, tentative, busy, out of office, working
// elsewhere).
func busyNames() [5]string { return [5]string{"FREE", "TENTATIVE", "BUSY", "OOF", "WORKINGELSEWHERE"} }

// busyStatus renders BusyStatus: X-MICROSOFT-CDO-BUSYSTATUS, else TRANSP
// (TRANSPARENT is free), else busy. Working elsewhere (4) is 16.x; older
// versions get busy.
func (c *ctx) busyStatus(ev *ical.Component) int {
	b := 2
	if strings.EqualFold(rawValue(ev, ical.PropTransparency), "TRANSPARENT") {
		b = 0
	}
	v := strings.ToUpper(rawValue(ev, propBusyStatus))
	for i, n := range busyNames() {
		if v == n {
			b = i
		}
	}
	if b == 4 && c.v < v160 {
		b = 2
	}
	return b
}

func setBusyStatus(ev *ical.Component, b int) {
	names := busyNames()
	if b < 0 || b >= len(names) {
		b = 2 // MS-ASCAL's schema allows 5, which it does not define
	}
	transp := "OPAQUE"
	if b == 0 {
		transp = "TRANSPARENT"
	}
	setRaw(ev, ical.PropTransparency, transp)
	setRaw(ev, propBusyStatus, names[b])
}

// sensitivity renders Sensitivity (MS-ASCAL 2.2.2.41) from CLASS: PUBLIC
// 0, X-PERSONAL 1, PRIVATE 2, CONFIDENTIAL 3; an unknown class is private
// (RFC 5545 3.8.1.3).
func sensitivity(ev *ical.Component) int {
	switch strings.ToUpper(rawValue(ev, ical.PropClass)) {
	case "", "PUBLIC":
		return 0
	case "X-PERSONAL":
		return 1
	case "CONFIDENTIAL":
		return 3
	}
	return 2
}

func setSensitivity(ev *ical.Component, s int) {
	classes := [...]string{"", "X-PERSONAL", "PRIVATE", "CONFIDENTIAL"}
	if s <= 0 || s >= len(classes) {
		ev.Props.Del(ical.PropClass)
		return
	}
	setRaw(ev, ical.PropClass, classes[s])
}

// organizer returns the ORGANIZER's name (CN, else the address) and
// address.
func organizer(ev *ical.Component) (name, email string, ok bool) {
	p := ev.Props.Get(ical.PropOrganizer)
	if p == nil {
		return "", "", false
	}
	email = addressOf(p.Value)
	if email == "" {
		return "", "", false
	}
	name = p.Params.Get(ical.ParamCommonName)
	if name == "" {
		name = email
	}
	return name, email, true
}

// addressOf strips mailto: from a CAL-ADDRESS.
func addressOf(v string) string {
	v = strings.TrimSpace(v)
	if len(v) >= 7 && strings.EqualFold(v[:7], "mailto:") {
		v = v[7:]
	}
	return strings.TrimSpace(v)
}

// cleanAddress returns the bare address of what a client sent as an e-mail
// address ("Jane <j@x>" -> "j@x").
func cleanAddress(s string) string {
	s = strings.TrimSpace(strings.ToValidUTF8(s, ""))
	if strings.ContainsAny(s, "<\"") {
		if a, err := mail.ParseAddress(s); err == nil {
			return a.Address
		}
	}
	return s
}

// reminderAlarm returns the VALARM that calendar:Reminder is: the first
// DISPLAY or AUDIO alarm (or one without ACTION) whose TRIGGER is a
// duration at or before the start. Its minutes before the start.
func reminderAlarm(ev *ical.Component) (*ical.Component, int) {
	for _, ch := range ev.Children {
		if ch.Name != ical.CompAlarm || !easAlarmAction(ch) {
			continue
		}
		p := ch.Props.Get(ical.PropTrigger)
		if p == nil || strings.EqualFold(p.Params.Get(ical.ParamValue), "DATE-TIME") ||
			strings.EqualFold(p.Params.Get("RELATED"), "END") {
			continue
		}
		d, err := parseDuration(p.Value)
		if err != nil || d > 0 {
			continue
		}
		return ch, int(-d / time.Minute)
	}
	return nil, 0
}

func easAlarmAction(a *ical.Component) bool {
	switch strings.ToUpper(rawValue(a, ical.PropAction)) {
	case "", "DISPLAY", "AUDIO":
		return true
	}
	return false
}

// reminder renders Reminder (MS-ASCAL 2.2.2.38): minutes before start.
func reminder(ev *ical.Component) (int, bool) {
	a, m := reminderAlarm(ev)
	return m, a != nil
}

// maxReminder bounds Reminder minutes (a little over 19 years).
const maxReminder = 10_000_000

// setReminder makes the Reminder alarm trigger m minutes before the start
// (adding a DISPLAY alarm if there is none); other alarms stay.
func setReminder(ev *ical.Component, m int) {
	trig := "-PT" + strconv.Itoa(m) + "M"
	if m == 0 {
		trig = "PT0S"
	}
	if a, cur := reminderAlarm(ev); a != nil {
		if cur != m {
			p := a.Props.Get(ical.PropTrigger)
			p.Value = trig
			p.Params.Del(ical.ParamValue)
			p.Params.Del("RELATED")
		}
		return
	}
	a := ical.NewComponent(ical.CompAlarm)
	setRaw(a, ical.PropAction, "DISPLAY")
	setText(a, ical.PropDescription, "Reminder")
	setRaw(a, ical.PropTrigger, trig)
	ev.Children = append(ev.Children, a)
}

// clearReminder removes the DISPLAY and AUDIO alarms; EMAIL and other
// alarms stay.
func clearReminder(ev *ical.Component) {
	kept := ev.Children[:0]
	for _, ch := range ev.Children {
		if ch.Name == ical.CompAlarm && easAlarmAction(ch) {
			continue
		}
		kept = append(kept, ch)
	}
	ev.Children = kept
}

// copyReminder gives dst the DISPLAY/AUDIO alarms of src.
func copyReminder(dst, src *ical.Component) {
	clearReminder(dst)
	for _, ch := range src.Children {
		if ch.Name == ical.CompAlarm && easAlarmAction(ch) {
			dst.Children = append(dst.Children, cloneComponent(ch))
		}
	}
}

// parseDuration reads an RFC 5545 DURATION ([+-]P[nW][nD][T[nH][nM][nS]]).
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(strings.ToUpper(s))
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	if !strings.HasPrefix(s, "P") || len(s) < 2 {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	var d time.Duration
	inTime := false
	num := ""
	for _, r := range s[1:] {
		switch {
		case r >= '0' && r <= '9':
			num += string(r)
			continue
		case r == 'T' && num == "":
			inTime = true
			continue
		}
		n, err := strconv.ParseInt(num, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		unit := map[rune]time.Duration{'W': 7 * 24 * time.Hour, 'D': 24 * time.Hour, 'H': time.Hour, 'M': time.Minute, 'S': time.Second}[r]
		if unit == 0 || (inTime && (r == 'W' || r == 'D')) || (!inTime && (r == 'H' || r == 'M' || r == 'S')) {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		d += time.Duration(n) * unit
		num = ""
	}
	if num != "" {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	if neg {
		d = -d
	}
	return d, nil
}

// categories renders Categories: every CATEGORIES property, split.
func categories(ev *ical.Component) []string {
	var out []string
	for _, p := range ev.Props.Values(ical.PropCategories) {
		for _, s := range textList(p.Value) {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

func setCategories(ev *ical.Component, cats []string) {
	if len(cats) == 0 {
		ev.Props.Del(ical.PropCategories)
		return
	}
	esc := make([]string, len(cats))
	for i, s := range cats {
		esc[i] = textEscape(s)
	}
	setRaw(ev, ical.PropCategories, strings.Join(esc, ","))
}

// meetingStatus renders MeetingStatus (MS-ASCAL 2.2.2.28): the value a
// client set (X-EAS-MEETINGSTATUS), else 1 (organizer) for an event with
// ORGANIZER or ATTENDEE and 0 otherwise; the cancelled bit (4) follows
// STATUS:CANCELLED for meetings.
func meetingStatus(ev *ical.Component) int {
	m := 0
	if n, ok := intProp(ev, propMeetingStatus, 0, 15); ok {
		m = n
	} else if ev.Props.Get(ical.PropOrganizer) != nil || ev.Props.Get(ical.PropAttendee) != nil {
		m = 1
	}
	if m&1 != 0 {
		if strings.EqualFold(rawValue(ev, ical.PropStatus), "CANCELLED") {
			m |= 4
		} else {
			m &^= 4
		}
	}
	return m
}

func setMeetingStatus(ev *ical.Component, m int) {
	setRaw(ev, propMeetingStatus, strconv.Itoa(m))
	cancelled := strings.EqualFold(rawValue(ev, ical.PropStatus), "CANCELLED")
	switch {
	case m&5 == 5 && !cancelled:
		setRaw(ev, ical.PropStatus, "CANCELLED")
	case m&4 == 0 && cancelled:
		ev.Props.Del(ical.PropStatus)
	}
}

// responseRequested renders ResponseRequested (14.0+): whether an
// attendee is asked to reply (RSVP=TRUE); absent without attendees.
func responseRequested(ev *ical.Component) (bool, bool) {
	atts := ev.Props.Values(ical.PropAttendee)
	if len(atts) == 0 {
		return false, false
	}
	for _, a := range atts {
		if strings.EqualFold(a.Params.Get(ical.ParamRSVP), "TRUE") {
			return true, true
		}
	}
	return false, true
}

// setRSVP sets RSVP on every attendee.
func setRSVP(ev *ical.Component, b bool) {
	atts := ev.Props[ical.PropAttendee]
	for i := range atts {
		if b {
			atts[i].Params.Set(ical.ParamRSVP, "TRUE")
		} else {
			atts[i].Params.Del(ical.ParamRSVP)
		}
	}
}

// intProp reads an integer property within [lo, hi].
func intProp(ev *ical.Component, name string, lo, hi int) (int, bool) {
	n, err := strconv.Atoi(rawValue(ev, name))
	if err != nil || n < lo || n > hi {
		return 0, false
	}
	return n, true
}

// boolProp reads a TRUE/FALSE property.
func boolProp(ev *ical.Component, name string) (bool, bool) {
	switch strings.ToUpper(rawValue(ev, name)) {
	case "TRUE", "1":
		return true, true
	case "FALSE", "0":
		return false, true
	}
	return false, false
}

// cloneComponent deep-copies a component.
func cloneComponent(c *ical.Component) *ical.Component {
	out := &ical.Component{Name: c.Name, Props: make(ical.Props, len(c.Props))}
	for name, props := range c.Props {
		cp := make([]ical.Prop, len(props))
		for i, p := range props {
			cp[i] = cloneProp(p)
		}
		out.Props[name] = cp
	}
	for _, ch := range c.Children {
		out.Children = append(out.Children, cloneComponent(ch))
	}
	return out
}

func cloneProp(p ical.Prop) ical.Prop {
	q := ical.Prop{Name: p.Name, Value: p.Value, Params: make(ical.Params, len(p.Params))}
	for k, v := range p.Params {
		q.Params[k] = append([]string(nil), v...)
	}
	return q
}

// copyProps gives dst src's properties of the given names (or none).
func copyProps(dst, src *ical.Component, names ...string) {
	for _, n := range names {
		dst.Props.Del(n)
		for _, p := range src.Props.Values(n) {
			dst.Props.Add(ptr(cloneProp(p)))
		}
	}
}

func ptr[T any](v T) *T { return &v }
