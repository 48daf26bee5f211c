package calendar

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/easd/easd/eas/tz"
	"github.com/easd/easd/wbxml"
	"github.com/emersion/go-ical"
)

// propAllDayZone keeps the time zone an all-day event was created in
// (its TZID): iCalendar dates have none, but an EAS 12.x/14.x client gets
// an all-day event as midnight in a zone (MS-ASCAL 2.2.2.1) and should get
// back the zone it used.
const propAllDayZone = "X-EAS-ALLDAY-TZID"

const (
	compactLayout = "20060102T150405Z"
	localLayout   = "20060102T150405"
	dateLayout    = "20060102"
)

// compact renders t in the compact UTC form of MS-ASDTYPE 2.7.2.
func compact(t time.Time) string { return t.UTC().Format(compactLayout) }

// parseEASTime reads a date-time a client sent: the compact form
// (MS-ASDTYPE 2.7.2), the extended one (2.3), or a bare date (iOS sends
// exception dates that way); all are UTC.
func parseEASTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{compactLayout, "2006-01-02T15:04:05.000Z", "2006-01-02T15:04:05Z",
		localLayout, "2006-01-02T15:04:05", dateLayout, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not a date-time: %q", s)
}

// zone is how an event's local date-times are written and read.
type zone struct {
	tzid     string         // TZID parameter; "" for UTC ("Z" form) and floating
	loc      *time.Location // for computing
	custom   *tz.TimeZone   // a zone known only from a blob or VTIMEZONE
	floating bool           // stored without zone; read as UTC
}

func utcZone() zone { return zone{loc: time.UTC} }

// blob returns the calendar:Timezone of z for year.
func (z zone) blob(year int) tz.TimeZone {
	if z.custom != nil {
		return *z.custom
	}
	return tz.FromLocation(z.loc, year)
}

// isUTCName reports whether an IANA name is UTC.
func isUTCName(n string) bool {
	switch n {
	case "UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu",
		"Etc/GMT", "GMT", "Etc/GMT0", "GMT0", "Etc/GMT+0", "Etc/GMT-0", "Etc/Greenwich", "Greenwich":
		return true
	}
	return false
}

// loadIANA loads an IANA zone by name; Olson paths with a vendor prefix
// ("/mozilla.org/20050126_1/Europe/Berlin") are tried by their last parts.
func loadIANA(name string) (*time.Location, string, bool) {
	name = strings.TrimSpace(name)
	if name == "" || name == "Local" {
		return nil, "", false
	}
	if loc, err := time.LoadLocation(name); err == nil {
		return loc, name, true
	}
	parts := strings.Split(name, "/")
	for k := 3; k >= 2; k-- {
		if len(parts) > k {
			n := strings.Join(parts[len(parts)-k:], "/")
			if loc, err := time.LoadLocation(n); err == nil {
				return loc, n, true
			}
		}
	}
	return nil, "", false
}

// vtimezone returns the calendar's VTIMEZONE with TZID tzid.
func (c *ctx) vtimezone(tzid string) *ical.Component {
	for _, ch := range c.cal.Children {
		if ch.Name == ical.CompTimezone {
			if id, _ := getText(ch, ical.PropTimezoneID); id == tzid {
				return ch
			}
		}
	}
	return nil
}

// resolveTZID finds the zone of a TZID: an IANA name, else the calendar's
// VTIMEZONE of that TZID (read for year), else a Windows zone id (CLDR).
// An unknown TZID reads as UTC but is kept as written.
func (c *ctx) resolveTZID(tzid string, year int) zone {
	key := tzid + "\x00" + strconv.Itoa(year)
	if z, ok := c.zones[key]; ok {
		return z
	}
	z := c.lookupTZID(tzid, year)
	if c.zones == nil {
		c.zones = map[string]zone{}
	}
	c.zones[key] = z
	return z
}

func (c *ctx) lookupTZID(tzid string, year int) zone {
	if isUTCName(tzid) {
		return zone{tzid: tzid, loc: time.UTC}
	}
	if loc, _, ok := loadIANA(tzid); ok {
		return zone{tzid: tzid, loc: loc}
	}
	if v := c.vtimezone(tzid); v != nil {
		if b, err := tz.FromVTimezone(v, year); err == nil {
			// A Windows id (Outlook's TZIDs) whose zone has these rules is
			// that zone.
			if iana, ok := tz.IANAName(tzid); ok {
				if loc, err := time.LoadLocation(iana); err == nil && b.EquivalentTo(loc, year) {
					return zone{tzid: tzid, loc: loc}
				}
			}
			return zone{tzid: tzid, loc: b.Location(tzid), custom: &b}
		}
	}
	if iana, ok := tz.IANAName(tzid); ok {
		if loc, err := time.LoadLocation(iana); err == nil {
			return zone{tzid: tzid, loc: loc}
		}
	}
	return zone{tzid: tzid, loc: time.UTC}
}

// zoneFromBlob turns a client's calendar:Timezone into a zone: the IANA
// zone with the same rules in year, else a custom zone with a TZID derived
// from the blob (its VTIMEZONE is written by syncTimezones).
func zoneFromBlob(b tz.TimeZone, year int) zone {
	if name, ok := b.IANA(year); ok {
		if isUTCName(name) {
			return utcZone()
		}
		if loc, err := time.LoadLocation(name); err == nil {
			return zone{tzid: name, loc: loc}
		}
	}
	h := fnv.New32a()
	h.Write(b.Bytes())
	tzid := fmt.Sprintf("easd-custom-%08x", h.Sum32())
	return zone{tzid: tzid, loc: b.Location(tzid), custom: &b}
}

// readTime reads a DATE or DATE-TIME property: an instant, or for a DATE
// the civil date at midnight UTC.
func (c *ctx) readTime(p *ical.Prop) (t time.Time, date bool, z zone, err error) {
	v := strings.TrimSpace(p.Value)
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i] // first of a list (EXDATE, RDATE)
	}
	if strings.EqualFold(p.Params.Get(ical.ParamValue), "DATE") || len(v) == len(dateLayout) {
		t, err = time.Parse(dateLayout, v)
		return t, true, utcZone(), err
	}
	if strings.HasSuffix(v, "Z") {
		t, err = time.Parse(compactLayout, v)
		return t, false, utcZone(), err
	}
	wall, err := time.Parse(localLayout, v)
	if err != nil {
		return time.Time{}, false, zone{}, err
	}
	if tzid := p.Params.Get(ical.PropTimezoneID); tzid != "" {
		z = c.resolveTZID(tzid, wall.Year())
	} else {
		z = zone{loc: time.UTC, floating: true}
	}
	return inZone(wall, z.loc), false, z, nil
}

// inZone returns the instant at which loc's wall clock shows wall.
func inZone(wall time.Time, loc *time.Location) time.Time {
	return time.Date(wall.Year(), wall.Month(), wall.Day(), wall.Hour(), wall.Minute(), wall.Second(), 0, loc).UTC()
}

// dateTimeProp renders an instant as a DATE-TIME property in zone z.
func dateTimeProp(name string, t time.Time, z zone) *ical.Prop {
	p := ical.NewProp(name)
	switch {
	case z.tzid == "" && !z.floating:
		p.Value = compact(t)
	case z.tzid == "":
		p.Value = t.UTC().Format(localLayout)
	default:
		p.Params.Set(ical.PropTimezoneID, z.tzid)
		p.Value = t.In(z.loc).Format(localLayout)
	}
	return p
}

// dateProp renders a civil date as a DATE property.
func dateProp(name string, d time.Time) *ical.Prop {
	p := ical.NewProp(name)
	p.Params.Set(ical.ParamValue, "DATE")
	p.Value = d.Format(dateLayout)
	return p
}

// times are an event's start and end: instants, or civil dates (midnight
// UTC) for an all-day event.
type times struct {
	start, end time.Time
	allDay     bool
	zone       zone // of DTSTART (UTC for dates)
}

// eventTimes reads DTSTART and DTEND (or DURATION; RFC 5545 3.6.1: without
// either, a DATE lasts a day and a DATE-TIME no time).
func (c *ctx) eventTimes(ev *ical.Component) (times, error) {
	p := ev.Props.Get(ical.PropDateTimeStart)
	if p == nil {
		return times{}, fmt.Errorf("calendar: VEVENT without DTSTART")
	}
	start, date, z, err := c.readTime(p)
	if err != nil {
		return times{}, fmt.Errorf("calendar: DTSTART: %v", err)
	}
	w := times{start: start, end: start, allDay: date, zone: z}
	if date {
		w.end = start.AddDate(0, 0, 1)
	}
	if e := ev.Props.Get(ical.PropDateTimeEnd); e != nil {
		if end, edate, _, err := c.readTime(e); err == nil {
			if date && !edate {
				end = time.Date(end.Year(), end.Month(), end.Day(), 0, 0, 0, 0, time.UTC)
			}
			w.end = end
		}
	} else if d := ev.Props.Get(ical.PropDuration); d != nil {
		if dur, err := d.Duration(); err == nil {
			if date {
				w.end = start.AddDate(0, 0, int(dur/(24*time.Hour)))
			} else {
				w.end = start.Add(dur)
			}
		}
	}
	if !w.end.After(w.start) {
		w.end = w.start
		if date {
			w.end = start.AddDate(0, 0, 1)
		}
	}
	return w, nil
}

// displayZone is the zone of the top-level calendar:Timezone: the zone of
// a timed master, or for an all-day master the zone it was created in
// (12.x/14.x; UTC when unknown) or UTC (16.x, where all-day times are
// dates written as midnight UTC).
func (c *ctx) displayZone() zone {
	w, err := c.eventTimes(c.master)
	if err != nil {
		return utcZone()
	}
	if !w.allDay {
		if w.zone.floating {
			return utcZone()
		}
		return w.zone
	}
	if c.v >= v160 {
		return utcZone()
	}
	if id, ok := getText(c.master, propAllDayZone); ok {
		return c.resolveTZID(id, w.start.Year())
	}
	return utcZone()
}

// easTimes returns what StartTime and EndTime say of w for this version:
// instants; for an all-day event local midnight in the display zone
// (12.x/14.x, MS-ASCAL 2.2.2.1) or the date as midnight UTC (16.x).
func (c *ctx) easTimes(w times, dz zone) (time.Time, time.Time) {
	if !w.allDay {
		return w.start, w.end
	}
	if c.v >= v160 {
		return w.start, w.end
	}
	return inZone(w.start, dz.loc), inZone(w.end, dz.loc)
}

// renderWhen renders Timezone, AllDayEvent, StartTime and EndTime.
func (c *ctx) renderWhen(ev *ical.Component, f fields) error {
	w, err := c.eventTimes(ev)
	if err != nil {
		return err
	}
	dz := c.displayZone()
	start, end := c.easTimes(w, dz)
	year := start.In(dz.loc).Year()
	f.text(wbxml.CalendarTimezone, dz.blob(year).Encode())
	f.text(wbxml.CalendarAllDayEvent, boolText(w.allDay))
	f.text(wbxml.CalendarStartTime, compact(start))
	f.text(wbxml.CalendarEndTime, compact(end))
	return nil
}

// allDayDate turns the StartTime or EndTime of an all-day event into a
// date. 16.x clients write the date as midnight UTC ("fake local"); 12.x
// and 14.x clients write local midnight of their zone in UTC (MS-ASCAL
// 2.2.2.1). Whichever reading gives a midnight wins (16.x tries the UTC
// one first); a time that is midnight in neither is moved to the midnight
// before (a start) or after (an end) in the zone, as Exchange does.
func (c *ctx) allDayDate(t time.Time, z zone, isEnd bool) time.Time {
	utc := t.UTC()
	local := t.In(z.loc)
	midnight := func(x time.Time) bool { return x.Hour() == 0 && x.Minute() == 0 && x.Second() == 0 }
	date := func(x time.Time) time.Time { return time.Date(x.Year(), x.Month(), x.Day(), 0, 0, 0, 0, time.UTC) }
	switch {
	case c.v >= v160 && midnight(utc):
		return date(utc)
	case midnight(local):
		return date(local)
	case midnight(utc):
		return date(utc)
	case isEnd:
		return date(local).AddDate(0, 0, 1)
	}
	return date(local)
}

// roundedNow is the current time rounded up to the next half hour
// (MS-ASCAL 3.2.4.4).
func (c *ctx) roundedNow() time.Time {
	r := c.now.Truncate(30 * time.Minute)
	if r.Before(c.now) {
		r = r.Add(30 * time.Minute)
	}
	return r
}

// applyWhen applies Timezone, AllDayEvent, StartTime and EndTime to the
// master. Missing times of an Add follow MS-ASCAL 3.2.4.4; of a Change
// they stay. A Timezone with the rules of the zone in force keeps that
// zone (and its TZID). It reports whether DTSTART/DTEND changed.
func (c *ctx) applyWhen(in, old fields) (bool, error) {
	ev := c.master
	var stored times
	dz := utcZone()
	storedZoneID := ""
	if !c.add {
		var err error
		if stored, err = c.eventTimes(ev); err != nil {
			return false, err
		}
		dz = c.displayZone()
		storedZoneID = stored.zone.tzid
		if stored.allDay {
			storedZoneID, _ = getText(ev, propAllDayZone)
		}
	}
	newZone, newZoneID, blobGiven := dz, storedZoneID, false
	if n := in[wbxml.CalendarTimezone]; n != nil {
		b, err := tz.Parse(n.Text())
		if err != nil {
			return false, invalid("Timezone: %v", err)
		}
		blobGiven = true
		year := c.now.Year()
		if s := in[wbxml.CalendarStartTime]; s != nil {
			if t, err := parseEASTime(s.Text()); err == nil {
				year = t.Add(b.Offset(t)).Year()
			}
		}
		if c.add || !dz.blob(year).Equivalent(b, year) {
			newZone = zoneFromBlob(b, year)
			newZoneID = newZone.tzid
		}
	}
	allDay := false
	if n := in[wbxml.CalendarAllDayEvent]; n != nil {
		var err error
		if allDay, err = parseBool(n); err != nil {
			return false, err
		}
	} else if c.keeps(wbxml.CalendarAllDayEvent) {
		allDay = stored.allDay
	}
	if !allDay && !blobGiven && stored.allDay {
		// An all-day event becoming timed without a Timezone: the zone it
		// was created in, if any.
		newZone = c.seriesZone()
		newZoneID = newZone.tzid
	}
	start, end, err := c.requestedTimes(in, old, allDay)
	if err != nil {
		return false, err
	}
	w := times{allDay: allDay, zone: newZone}
	if allDay {
		w.start = c.allDayDate(start, newZone, false)
		w.end = c.allDayDate(end, newZone, true)
		if !w.end.After(w.start) {
			w.end = w.start.AddDate(0, 0, 1)
		}
	} else {
		w.start, w.end = start, end
		if w.end.Before(w.start) {
			return false, invalid("EndTime before StartTime")
		}
	}
	if !c.add && w.allDay == stored.allDay && w.start.Equal(stored.start) && w.end.Equal(stored.end) && newZoneID == storedZoneID {
		return false, nil
	}
	if allDay {
		ev.Props.Set(dateProp(ical.PropDateTimeStart, w.start))
		ev.Props.Set(dateProp(ical.PropDateTimeEnd, w.end))
		if newZoneID != "" {
			setText(ev, propAllDayZone, newZoneID)
		} else {
			ev.Props.Del(propAllDayZone)
		}
	} else {
		ev.Props.Set(dateTimeProp(ical.PropDateTimeStart, w.start, newZone))
		ev.Props.Set(dateTimeProp(ical.PropDateTimeEnd, w.end, newZone))
		ev.Props.Del(propAllDayZone)
	}
	ev.Props.Del(ical.PropDuration)
	c.rememberZone(newZone)
	return true, nil
}

// requestedTimes returns the StartTime and EndTime a client asked for,
// falling back to the rendered ones (Change) or MS-ASCAL 3.2.4.4 (Add).
func (c *ctx) requestedTimes(in, old fields, allDay bool) (time.Time, time.Time, error) {
	get := func(t wbxml.Tag) (time.Time, bool, error) {
		n := in[t]
		if n == nil {
			n = old[t]
		}
		if n == nil {
			return time.Time{}, false, nil
		}
		v, err := parseEASTime(n.Text())
		if err != nil {
			return time.Time{}, false, invalid("%s: %v", t, err)
		}
		return v, true, nil
	}
	start, hasStart, err := get(wbxml.CalendarStartTime)
	if err != nil {
		return start, start, err
	}
	end, hasEnd, err := get(wbxml.CalendarEndTime)
	if err != nil {
		return start, end, err
	}
	r := c.roundedNow()
	switch {
	case hasStart && hasEnd:
	case !hasStart && !hasEnd:
		start, end = r, r.Add(30*time.Minute)
		if allDay {
			end = start.AddDate(0, 0, 1)
		}
	case !hasStart:
		if end.Before(c.now) || r.After(end) {
			return start, end, invalid("no StartTime and EndTime %v not after the current time", end)
		}
		start = r
	default: // no EndTime
		switch {
		case allDay:
			end = start.AddDate(0, 0, 1)
		case start.After(c.now):
			return start, end, invalid("StartTime in the future without EndTime")
		default:
			end = r.Add(30 * time.Minute)
		}
	}
	return start, end, nil
}

// seriesZone is the zone timed occurrences and overrides are written in:
// the master's DTSTART zone, or for an all-day master the zone it was
// created in (UTC when unknown).
func (c *ctx) seriesZone() zone {
	w, err := c.eventTimes(c.master)
	if err == nil && !w.allDay {
		if w.zone.floating {
			return utcZone()
		}
		return w.zone
	}
	if id, ok := getText(c.master, propAllDayZone); ok {
		return c.resolveTZID(id, w.start.Year())
	}
	return utcZone()
}

// rememberZone records a custom zone so that syncTimezones can write its
// VTIMEZONE.
func (c *ctx) rememberZone(z zone) {
	if z.custom == nil || z.tzid == "" || c.vtimezone(z.tzid) != nil {
		return
	}
	c.cal.Children = append(c.cal.Children, z.custom.VTimezone(z.tzid))
}

// syncTimezones makes the VTIMEZONEs match the TZIDs in use: one for each
// TZID referenced (generated for IANA zones from their rule of the event's
// year), none unreferenced.
func (c *ctx) syncTimezones() {
	used := map[string]bool{}
	for _, ch := range c.cal.Children {
		if ch.Name == ical.CompTimezone {
			continue
		}
		walk(ch, func(x *ical.Component) {
			for _, props := range x.Props {
				for _, p := range props {
					if id := p.Params.Get(ical.PropTimezoneID); id != "" {
						used[id] = true
					}
				}
			}
			if id, ok := getText(x, propAllDayZone); ok {
				used[id] = true
			}
		})
	}
	kept := c.cal.Children[:0]
	have := map[string]bool{}
	for _, ch := range c.cal.Children {
		if ch.Name == ical.CompTimezone {
			id, _ := getText(ch, ical.PropTimezoneID)
			if !used[id] || have[id] {
				continue
			}
			have[id] = true
		}
		kept = append(kept, ch)
	}
	c.cal.Children = kept
	year := c.now.Year()
	if w, err := c.eventTimes(c.master); err == nil {
		year = w.start.Year()
	}
	ids := make([]string, 0, len(used))
	for id := range used {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if have[id] || isUTCName(id) {
			continue
		}
		if loc, _, ok := loadIANA(id); ok {
			v := tz.FromLocation(loc, year).VTimezone(id)
			v.Props.Del(tz.PropBlob)
			c.cal.Children = append(c.cal.Children, v)
		}
	}
}

// orderComponents puts VTIMEZONEs first, then the master, then the
// overrides by RECURRENCE-ID, then anything else as it was.
func (c *ctx) orderComponents() {
	rank := func(ch *ical.Component) int {
		switch {
		case ch.Name == ical.CompTimezone:
			return 0
		case ch == c.master:
			return 1
		case ch.Name == ical.CompEvent && ch.Props.Get(ical.PropRecurrenceID) != nil:
			return 2
		}
		return 3
	}
	sort.SliceStable(c.cal.Children, func(i, j int) bool {
		a, b := c.cal.Children[i], c.cal.Children[j]
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra < rb
		}
		if rank(a) == 2 {
			return rawValue(a, ical.PropRecurrenceID) < rawValue(b, ical.PropRecurrenceID)
		}
		return false
	})
}

// utcValue reads a UTC DATE-TIME property (DTSTAMP and the like); a local
// value is read as UTC.
func utcValue(p *ical.Prop) (time.Time, error) {
	if p == nil {
		return time.Time{}, fmt.Errorf("missing")
	}
	v := strings.TrimSuffix(strings.TrimSpace(p.Value), "Z")
	if t, err := time.Parse(localLayout, v); err == nil {
		return t, nil
	}
	return time.Parse(dateLayout, v)
}
