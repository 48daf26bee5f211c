package calendar

import (
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/easd/easd/eas/item/ics"
	"github.com/easd/easd/wbxml"
	"github.com/emersion/go-ical"
)

// propLocation keeps the parts of a 16.x airsyncbase:Location (MS-ASAIRS
// 2.2.2.28) that LOCATION and GEO cannot: its parameters hold them, its
// value is the LocationUri.
const propLocation = "X-EAS-LOCATION"

// locationParts are the children of airsyncbase:Location in schema order
// with their X-EAS-LOCATION parameter ("" for DisplayName, which is
// LOCATION, and LocationUri, which is the value).
func locationParts() []struct {
	tag   wbxml.Tag
	param string
} {
	return []struct {
		tag   wbxml.Tag
		param string
	}{
		{wbxml.AirSyncBaseDisplayName, ""}, {wbxml.AirSyncBaseAnnotation, "X-ANNOTATION"},
		{wbxml.AirSyncBaseStreet, "X-STREET"}, {wbxml.AirSyncBaseCity, "X-CITY"},
		{wbxml.AirSyncBaseState, "X-STATE"}, {wbxml.AirSyncBaseCountry, "X-COUNTRY"},
		{wbxml.AirSyncBasePostalCode, "X-POSTALCODE"}, {wbxml.AirSyncBaseLatitude, "X-LATITUDE"},
		{wbxml.AirSyncBaseLongitude, "X-LONGITUDE"}, {wbxml.AirSyncBaseAccuracy, "X-ACCURACY"},
		{wbxml.AirSyncBaseAltitude, "X-ALTITUDE"}, {wbxml.AirSyncBaseAltitudeAccuracy, "X-ALTITUDEACCURACY"},
		{wbxml.AirSyncBaseLocationUri, ""},
	}
}

// renderLocation renders calendar:Location (up to 14.1) or
// airsyncbase:Location (16.x): DisplayName from LOCATION, Latitude and
// Longitude from GEO unless X-EAS-LOCATION has them, the rest from
// X-EAS-LOCATION.
func (c *ctx) renderLocation(ev *ical.Component, f fields) {
	name, hasName := getText(ev, ical.PropLocation)
	if c.v < v160 {
		if hasName {
			f.text(wbxml.CalendarLocation, name)
		}
		return
	}
	x := ev.Props.Get(propLocation)
	lat, lon := "", ""
	if g := rawValue(ev, ical.PropGeo); g != "" {
		lat, lon, _ = strings.Cut(g, ";")
	}
	n := wbxml.E(wbxml.AirSyncBaseLocation)
	for _, p := range locationParts() {
		v := ""
		switch {
		case p.tag == wbxml.AirSyncBaseDisplayName:
			v = name
		case p.tag == wbxml.AirSyncBaseLocationUri && x != nil:
			v = ics.UnescapeText(x.Value)
		case x != nil && x.Params.Get(p.param) != "":
			v = x.Params.Get(p.param)
		case p.tag == wbxml.AirSyncBaseLatitude:
			v = lat
		case p.tag == wbxml.AirSyncBaseLongitude:
			v = lon
		}
		if v != "" {
			n.Append(wbxml.T(p.tag, v))
		}
	}
	if len(n.Children) > 0 {
		f[wbxml.AirSyncBaseLocation] = n
	}
}

// setLocation stores a client's calendar:Location (text; a changed text
// drops the structured parts, which described the old place) or
// airsyncbase:Location.
func setLocation(ev *ical.Component, n *wbxml.Node) {
	if n.Tag == wbxml.CalendarLocation {
		if cur, _ := getText(ev, ical.PropLocation); cur == n.Text() {
			return
		}
		clearLocation(ev)
		setText(ev, ical.PropLocation, n.Text())
		return
	}
	clearLocation(ev)
	x := ical.NewProp(propLocation)
	for _, p := range locationParts() {
		v := strings.TrimSpace(n.ChildText(p.tag))
		switch {
		case v == "":
		case p.tag == wbxml.AirSyncBaseDisplayName:
			setText(ev, ical.PropLocation, n.ChildText(p.tag))
		case p.tag == wbxml.AirSyncBaseLocationUri:
			x.Value = textEscape(v)
		default:
			x.Params.Set(p.param, v)
		}
	}
	if len(x.Params) > 0 || x.Value != "" {
		ev.Props.Set(x)
	}
	lat, err1 := strconv.ParseFloat(strings.TrimSpace(n.ChildText(wbxml.AirSyncBaseLatitude)), 64)
	lon, err2 := strconv.ParseFloat(strings.TrimSpace(n.ChildText(wbxml.AirSyncBaseLongitude)), 64)
	if err1 == nil && err2 == nil && math.Abs(lat) <= 90 && math.Abs(lon) <= 180 {
		setRaw(ev, ical.PropGeo, strconv.FormatFloat(lat, 'f', -1, 64)+";"+strconv.FormatFloat(lon, 'f', -1, 64))
	}
}

func clearLocation(ev *ical.Component) {
	for _, n := range []string{ical.PropLocation, ical.PropGeo, propLocation} {
		ev.Props.Del(n)
	}
}

// field is an element shared by the master and exceptions.
type field struct {
	tag, alt wbxml.Tag // the element, and another accepted for it
	props    []string  // the properties it owns
	alarms   bool      // it owns the reminder alarms
	same     func(ev *ical.Component, old, n *wbxml.Node) bool
	set      func(ev *ical.Component, n *wbxml.Node) error
	clear    func(ev *ical.Component)
}

func sameCanon(_ *ical.Component, old, n *wbxml.Node) bool { return canon(old) == canon(n) }

// commonFields are the elements of MS-ASCAL 2.2.2 an Exception (2.2.2.21)
// can also carry, with their properties.
func (c *ctx) commonFields(in fields) []field {
	intField := func(t wbxml.Tag, hi int, props []string, set func(*ical.Component, int)) field {
		return field{tag: t, props: props, same: sameCanon, set: func(ev *ical.Component, n *wbxml.Node) error {
			v, err := parseInt(n, 0, hi)
			if err == nil {
				set(ev, v)
			}
			return err
		}, clear: func(ev *ical.Component) {
			for _, p := range props {
				ev.Props.Del(p)
			}
		}}
	}
	textField := func(t wbxml.Tag, prop string) field {
		return field{tag: t, props: []string{prop}, same: sameCanon,
			set:   func(ev *ical.Component, n *wbxml.Node) error { setText(ev, prop, n.Text()); return nil },
			clear: func(ev *ical.Component) { ev.Props.Del(prop) }}
	}
	locTag, locAlt := wbxml.CalendarLocation, wbxml.AirSyncBaseLocation
	if c.v >= v160 {
		locTag, locAlt = locAlt, locTag
	}
	var rsvp *bool
	if n := in[wbxml.CalendarResponseRequested]; n != nil {
		if b, err := parseBool(n); err == nil {
			rsvp = &b
		}
	}
	return []field{
		textField(wbxml.CalendarSubject, ical.PropSummary),
		{tag: locTag, alt: locAlt, props: []string{ical.PropLocation, ical.PropGeo, propLocation},
			same: func(ev *ical.Component, old, n *wbxml.Node) bool {
				if n.Tag == wbxml.CalendarLocation {
					cur, _ := getText(ev, ical.PropLocation)
					return cur == n.Text()
				}
				return canon(old) == canon(n)
			},
			set:   func(ev *ical.Component, n *wbxml.Node) error { setLocation(ev, n); return nil },
			clear: clearLocation},
		{tag: wbxml.AirSyncBaseBody, alt: wbxml.CalendarBody, props: []string{ical.PropDescription, propAltDesc},
			same:  func(ev *ical.Component, _, n *wbxml.Node) bool { return sameBody(ev, n) },
			set:   func(ev *ical.Component, n *wbxml.Node) error { setBody(ev, n); return nil },
			clear: clearBody},
		intField(wbxml.CalendarBusyStatus, 5, []string{ical.PropTransparency, propBusyStatus}, setBusyStatus),
		intField(wbxml.CalendarSensitivity, 3, []string{ical.PropClass}, setSensitivity),
		{tag: wbxml.CalendarReminder, alarms: true, same: sameCanon,
			set: func(ev *ical.Component, n *wbxml.Node) error {
				if strings.TrimSpace(n.Text()) == "" { // EmptyTag: no reminder
					clearReminder(ev)
					return nil
				}
				m, err := parseInt(n, 0, maxReminder)
				if err == nil {
					setReminder(ev, m)
				}
				return err
			}, clear: clearReminder},
		{tag: wbxml.CalendarCategories, props: []string{ical.PropCategories}, same: sameCanon,
			set: func(ev *ical.Component, n *wbxml.Node) error {
				var cats []string
				for x := range n.Each(wbxml.CalendarCategory) {
					if s := strings.TrimSpace(x.Text()); s != "" {
						cats = append(cats, s)
					}
				}
				setCategories(ev, cats)
				return nil
			}, clear: func(ev *ical.Component) { ev.Props.Del(ical.PropCategories) }},
		{tag: wbxml.CalendarAttendees, props: []string{ical.PropAttendee}, same: sameCanon,
			set: func(ev *ical.Component, n *wbxml.Node) error {
				list, err := parseAttendees(n)
				if err == nil {
					setAttendees(ev, list, rsvp)
				}
				return err
			}, clear: func(ev *ical.Component) { ev.Props.Del(ical.PropAttendee) }},
		{tag: wbxml.CalendarMeetingStatus, props: []string{propMeetingStatus, ical.PropStatus}, same: sameCanon,
			set: func(ev *ical.Component, n *wbxml.Node) error {
				v, err := parseInt(n, 0, 15)
				if err == nil {
					setMeetingStatus(ev, v)
				}
				return err
			}, clear: func(ev *ical.Component) { ev.Props.Del(propMeetingStatus) }},
		{tag: wbxml.CalendarAppointmentReplyTime, props: []string{propReplyTime}, same: sameCanon,
			set: func(ev *ical.Component, n *wbxml.Node) error {
				t, err := parseEASTime(n.Text())
				if err != nil {
					return invalid("AppointmentReplyTime: %v", err)
				}
				setRaw(ev, propReplyTime, compact(t))
				return nil
			}, clear: func(ev *ical.Component) { ev.Props.Del(propReplyTime) }},
		intField(wbxml.CalendarResponseType, 5, []string{propResponseType}, func(ev *ical.Component, v int) {
			setRaw(ev, propResponseType, strconv.Itoa(v))
		}),
		textField(wbxml.CalendarOnlineMeetingConfLink, propConfLink),
		textField(wbxml.CalendarOnlineMeetingExternalLink, propExternalLink),
	}
}

// applyCommon applies the shared elements to ev. For the master (master
// nil) an absent element is removed unless kept (ghosted or not in this
// version); for an exception it is the master's value. old are the
// elements rendered from ev before; an element equal to its old value
// changes nothing.
func (c *ctx) applyCommon(ev *ical.Component, in, old fields, master *ical.Component, masterFields fields) error {
	for _, f := range c.commonFields(in) {
		n := in[f.tag]
		if n == nil && f.alt != 0 {
			n = in[f.alt]
		}
		switch {
		case n != nil:
			if old != nil && f.same(ev, old[f.tag], n) {
				continue
			}
			if err := f.set(ev, n); err != nil {
				return err
			}
		case master != nil:
			if canon(old[f.tag]) == canon(masterFields[f.tag]) {
				continue
			}
			copyProps(ev, master, f.props...)
			if f.alarms {
				copyReminder(ev, master)
			}
		case c.keeps(f.tag):
		case old[f.tag] != nil || c.add:
			f.clear(ev)
		}
	}
	return nil
}

// applyTopOnly applies the elements only the master has: organizer,
// ResponseRequested, DisallowNewTimeProposal (UID, times, Recurrence and
// Exceptions are applied elsewhere).
func (c *ctx) applyTopOnly(in, old fields) error {
	ev := c.master
	curName, curEmail, _ := organizer(ev)
	name, email := "", ""
	if n := in[wbxml.CalendarOrganizerName]; n != nil {
		name = strings.TrimSpace(n.Text())
	} else if c.keeps(wbxml.CalendarOrganizerName) {
		name = curName
	}
	if n := in[wbxml.CalendarOrganizerEmail]; n != nil {
		email = cleanAddress(n.Text())
	} else if c.keeps(wbxml.CalendarOrganizerEmail) {
		email = curEmail
	}
	if name == "" {
		name = email
	}
	switch {
	case name == curName && strings.EqualFold(email, curEmail):
	case email == "" && curEmail != "" && in[wbxml.CalendarOrganizerEmail] == nil && name != "":
		setOrganizer(ev, name, curEmail) // a name without address: rename
	default:
		setOrganizer(ev, name, email)
	}
	if n := in[wbxml.CalendarResponseRequested]; n != nil {
		b, err := parseBool(n)
		if err != nil {
			return err
		}
		if canon(old[wbxml.CalendarResponseRequested]) != canon(n) {
			setRSVP(ev, b)
		}
	} else if !c.keeps(wbxml.CalendarResponseRequested) && canon(old[wbxml.CalendarResponseRequested]) == "1" {
		setRSVP(ev, false)
	}
	if n := in[wbxml.CalendarDisallowNewTimeProposal]; n != nil {
		b, err := parseBool(n)
		if err != nil {
			return err
		}
		if canon(old[wbxml.CalendarDisallowNewTimeProposal]) != canon(n) {
			setRaw(ev, propDisallowCounter, strings.ToUpper(strconv.FormatBool(b)))
		}
	} else if !c.keeps(wbxml.CalendarDisallowNewTimeProposal) {
		ev.Props.Del(propDisallowCounter)
	}
	return nil
}

// canon is a comparable form of an element: values trimmed, numbers and
// date-times normalised, e-mail addresses folded, children sorted (so the
// order of attendees or categories does not matter); "" for nil.
func canon(n *wbxml.Node) string {
	if n == nil {
		return ""
	}
	v := strings.TrimSpace(string(n.Value))
	switch {
	case n.Tag == wbxml.CalendarEmail:
		v = strings.ToLower(cleanAddress(v))
	case v != "":
		if i, err := strconv.Atoi(v); err == nil {
			v = strconv.Itoa(i)
		} else if len(v) >= 8 && v[0] >= '0' && v[0] <= '9' {
			if t, err := parseEASTime(v); err == nil {
				v = compact(t)
			}
		}
	}
	if len(n.Children) == 0 {
		return v
	}
	kids := make([]string, 0, len(n.Children))
	for _, ch := range n.Children {
		kids = append(kids, strconv.Itoa(int(ch.Tag))+"="+canon(ch))
	}
	sort.Strings(kids)
	return v + "{" + strings.Join(kids, ";") + "}"
}
