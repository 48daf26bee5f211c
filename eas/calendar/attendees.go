package calendar

import (
	"strconv"
	"strings"

	"github.com/easd/easd/wbxml"
	"github.com/emersion/go-ical"
)

// attendee is one calendar:Attendee (MS-ASCAL 2.2.2.3).
type attendee struct {
	email, name  string
	status, kind int
}

// partstats are the PARTSTAT values of AttendeeStatus (MS-ASCAL 2.2.2.5):
// 0 unknown (no PARTSTAT), 2 tentative, 3 accept, 4 decline, 5 not
// responded (NEEDS-ACTION); others read as 0.
func partstat(status int) string {
	switch status {
	case 2:
		return "TENTATIVE"
	case 3:
		return "ACCEPTED"
	case 4:
		return "DECLINED"
	case 5:
		return "NEEDS-ACTION"
	}
	return ""
}

func attendeeStatus(p *ical.Prop) int {
	switch strings.ToUpper(p.Params.Get(ical.ParamParticipationStatus)) {
	case "TENTATIVE":
		return 2
	case "ACCEPTED":
		return 3
	case "DECLINED":
		return 4
	case "NEEDS-ACTION":
		return 5
	}
	return 0
}

// attendeeType renders AttendeeType (MS-ASCAL 2.2.2.6): 3 resource for
// CUTYPE RESOURCE or ROOM, 2 optional for ROLE OPT- or NON-PARTICIPANT,
// else 1 required.
func attendeeType(p *ical.Prop) int {
	switch strings.ToUpper(p.Params.Get(ical.ParamCalendarUserType)) {
	case "RESOURCE", "ROOM":
		return 3
	}
	switch strings.ToUpper(p.Params.Get(ical.ParamRole)) {
	case "OPT-PARTICIPANT", "NON-PARTICIPANT":
		return 2
	}
	return 1
}

func readAttendee(p *ical.Prop) (attendee, bool) {
	a := attendee{email: addressOf(p.Value), name: p.Params.Get(ical.ParamCommonName), status: attendeeStatus(p), kind: attendeeType(p)}
	if a.name == "" {
		a.name = a.email
	}
	return a, a.email != ""
}

// renderAttendees renders calendar:Attendees; nil without attendees.
func renderAttendees(ev *ical.Component) *wbxml.Node {
	var n *wbxml.Node
	for _, p := range ev.Props.Values(ical.PropAttendee) {
		a, ok := readAttendee(&p)
		if !ok {
			continue
		}
		if n == nil {
			n = wbxml.E(wbxml.CalendarAttendees)
		}
		n.Append(wbxml.E(wbxml.CalendarAttendee,
			wbxml.T(wbxml.CalendarEmail, a.email),
			wbxml.T(wbxml.CalendarName, a.name),
			wbxml.T(wbxml.CalendarAttendeeStatus, strconv.Itoa(a.status)),
			wbxml.T(wbxml.CalendarAttendeeType, strconv.Itoa(a.kind))))
	}
	return n
}

// parseAttendees reads calendar:Attendees. An Attendee without Email has
// no iCalendar form and is skipped.
func parseAttendees(n *wbxml.Node) ([]attendee, error) {
	var out []attendee
	for x := range n.Each(wbxml.CalendarAttendee) {
		a := attendee{email: cleanAddress(x.ChildText(wbxml.CalendarEmail)), name: strings.TrimSpace(x.ChildText(wbxml.CalendarName)), kind: 1}
		if s := x.Child(wbxml.CalendarAttendeeStatus); s != nil {
			v, err := parseInt(s, 0, 5)
			if err != nil {
				return nil, err
			}
			a.status = v
		}
		if t := x.Child(wbxml.CalendarAttendeeType); t != nil {
			v, err := parseInt(t, 1, 3)
			if err != nil {
				return nil, err
			}
			a.kind = v
		}
		if a.email == "" {
			continue
		}
		out = append(out, a)
	}
	return out, nil
}

// setAttendees replaces the ATTENDEE properties by list. An attendee whose
// address is already there keeps its property, parameters the client
// cannot see included (SCHEDULE-STATUS, DELEGATED-FROM, X- ...); only the
// values that render differently change. rsvp, when set, is the RSVP of
// new attendees.
func setAttendees(ev *ical.Component, list []attendee, rsvp *bool) {
	old := ev.Props.Values(ical.PropAttendee)
	used := make([]bool, len(old))
	var out []ical.Prop
	for _, a := range list {
		var p ical.Prop
		found := false
		for i := range old {
			if !used[i] && strings.EqualFold(addressOf(old[i].Value), a.email) {
				used[i], found = true, true
				p = cloneProp(old[i])
				break
			}
		}
		if !found {
			p = *ical.NewProp(ical.PropAttendee)
			p.Value = "mailto:" + a.email
			if rsvp != nil && *rsvp {
				p.Params.Set(ical.ParamRSVP, "TRUE")
			}
		}
		cur, _ := readAttendee(&p)
		if a.name != cur.name && !(a.name == "" && cur.name == a.email) {
			if a.name == "" || a.name == a.email {
				p.Params.Del(ical.ParamCommonName)
			} else {
				p.Params.Set(ical.ParamCommonName, a.name)
			}
		}
		if a.status != cur.status {
			if ps := partstat(a.status); ps != "" {
				p.Params.Set(ical.ParamParticipationStatus, ps)
			} else {
				p.Params.Del(ical.ParamParticipationStatus)
			}
		}
		if a.kind != cur.kind {
			switch a.kind {
			case 3:
				p.Params.Set(ical.ParamCalendarUserType, "RESOURCE")
				p.Params.Set(ical.ParamRole, "NON-PARTICIPANT")
			case 2:
				p.Params.Del(ical.ParamCalendarUserType)
				p.Params.Set(ical.ParamRole, "OPT-PARTICIPANT")
			default:
				p.Params.Del(ical.ParamCalendarUserType)
				p.Params.Set(ical.ParamRole, "REQ-PARTICIPANT")
			}
		}
		out = append(out, p)
	}
	ev.Props.Del(ical.PropAttendee)
	if len(out) > 0 {
		ev.Props[ical.PropAttendee] = out
	}
}

// setOrganizer sets ORGANIZER; an unchanged address keeps its other
// parameters. An empty address removes it.
func setOrganizer(ev *ical.Component, name, email string) {
	if email == "" {
		ev.Props.Del(ical.PropOrganizer)
		return
	}
	p := ical.NewProp(ical.PropOrganizer)
	if old := ev.Props.Get(ical.PropOrganizer); old != nil && strings.EqualFold(addressOf(old.Value), email) {
		cp := cloneProp(*old)
		p = &cp
	} else {
		p.Value = "mailto:" + email
	}
	if name == "" || name == email {
		p.Params.Del(ical.ParamCommonName)
	} else {
		p.Params.Set(ical.ParamCommonName, name)
	}
	ev.Props.Set(p)
}
