package calendar

import (
	"sort"
	"strings"
	"time"

	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/wbxml"
	"github.com/emersion/go-ical"
)

// maxExceptions is the most Exception elements one Exceptions holds
// (MS-ASCAL 2.2.2.21).
const maxExceptions = 256

// rid is the original start of an occurrence (RECURRENCE-ID, EXDATE): an
// instant, or a civil date for an all-day series.
type rid struct {
	t    time.Time
	date bool
}

func (r rid) key() string {
	if r.date {
		return r.t.Format(dateLayout)
	}
	return compact(r.t)
}

// prop renders r as a property in the master's form (DATE, or DATE-TIME
// in the series zone: RFC 5545 3.8.4.4 and 3.8.5.1 want DTSTART's type).
func (c *ctx) ridProp(name string, r rid) *ical.Prop {
	if r.date {
		return dateProp(name, r.t)
	}
	return dateTimeProp(name, r.t, c.seriesZone())
}

// easRID is r as the client reads ExceptionStartTime / InstanceId: the
// instant, or for a date midnight in the display zone (12.x/14.x) or UTC
// (16.x).
func (c *ctx) easRID(r rid) time.Time {
	if r.date && c.v < v160 {
		return inZone(r.t, c.displayZone().loc)
	}
	return r.t
}

// ridTag is the element that names the occurrence of an Exception:
// ExceptionStartTime (MS-ASCAL 2.2.2.23), InstanceId in 16.x (MS-ASAIRS
// 2.2.2.25).
func (c *ctx) ridTag() wbxml.Tag {
	if c.v >= v160 {
		return wbxml.AirSyncBaseInstanceId
	}
	return wbxml.CalendarExceptionStartTime
}

// exdates returns the master's EXDATE values.
func (c *ctx) exdates() []rid {
	var out []rid
	for _, p := range c.master.Props.Values(ical.PropExceptionDates) {
		for v := range strings.SplitSeq(p.Value, ",") {
			q := cloneProp(p)
			q.Value = v
			if t, date, _, err := c.readTime(&q); err == nil {
				out = append(out, rid{t, date})
			}
		}
	}
	return out
}

func (c *ctx) setExdates(list []rid) {
	c.master.Props.Del(ical.PropExceptionDates)
	sort.Slice(list, func(i, j int) bool { return list[i].t.Before(list[j].t) })
	for _, r := range list {
		c.master.Props.Add(c.ridProp(ical.PropExceptionDates, r))
	}
}

// overrideRID reads an override's RECURRENCE-ID.
func (c *ctx) overrideRID(ov *ical.Component) (rid, bool) {
	p := ov.Props.Get(ical.PropRecurrenceID)
	if p == nil {
		return rid{}, false
	}
	t, date, _, err := c.readTime(p)
	return rid{t, date}, err == nil
}

// dropExceptions removes every EXDATE and override.
func (c *ctx) dropExceptions() {
	c.master.Props.Del(ical.PropExceptionDates)
	ovs := map[*ical.Component]bool{}
	for _, ov := range c.overrides() {
		ovs[ov] = true
	}
	kept := c.cal.Children[:0]
	for _, ch := range c.cal.Children {
		if !ovs[ch] {
			kept = append(kept, ch)
		}
	}
	c.cal.Children = kept
}

// exceptionOrder is the order of an Exception's children (MS-ASCAL 6).
func exceptionOrder() []wbxml.Tag {
	return []wbxml.Tag{
		wbxml.CalendarDeleted, wbxml.CalendarExceptionStartTime, wbxml.AirSyncBaseInstanceId,
		wbxml.CalendarSubject, wbxml.CalendarStartTime, wbxml.CalendarEndTime, wbxml.AirSyncBaseBody,
		wbxml.CalendarLocation, wbxml.AirSyncBaseLocation, wbxml.CalendarCategories, wbxml.CalendarSensitivity,
		wbxml.CalendarBusyStatus, wbxml.CalendarAllDayEvent, wbxml.CalendarReminder, wbxml.CalendarDtStamp,
		wbxml.CalendarMeetingStatus, wbxml.CalendarAttendees, wbxml.CalendarAppointmentReplyTime,
		wbxml.CalendarResponseType, wbxml.CalendarOnlineMeetingConfLink, wbxml.CalendarOnlineMeetingExternalLink,
	}
}

// renderExceptions renders calendar:Exceptions of a series: a Deleted
// Exception per EXDATE, and per override the elements in which it differs
// from the master (StartTime and EndTime always). nil without any.
func (c *ctx) renderExceptions(master fields) (*wbxml.Node, error) {
	if c.master.Props.Get(ical.PropRecurrenceRule) == nil {
		return nil, nil
	}
	type entry struct {
		r rid
		n *wbxml.Node
	}
	var list []entry
	for _, r := range c.exdates() {
		list = append(list, entry{r, wbxml.E(wbxml.CalendarException,
			wbxml.T(wbxml.CalendarDeleted, "1"), wbxml.T(c.ridTag(), compact(c.easRID(r))))})
	}
	mtext, mhtml := bodyOf(c.master)
	for _, ov := range c.overrides() {
		r, ok := c.overrideRID(ov)
		if !ok {
			continue
		}
		f, err := c.renderFields(ov)
		if err != nil {
			continue // an override without usable times is not shown
		}
		out := fields{c.ridTag(): wbxml.T(c.ridTag(), compact(c.easRID(r)))}
		for _, t := range exceptionOrder() {
			switch t {
			case wbxml.CalendarDeleted, wbxml.CalendarExceptionStartTime, wbxml.AirSyncBaseInstanceId:
				continue
			case wbxml.CalendarStartTime, wbxml.CalendarEndTime:
				out.set(t, f[t])
				continue
			case wbxml.AirSyncBaseBody:
				if text, htm := bodyOf(ov); text != mtext || htm != mhtml {
					out[t] = f[t]
					if f[t] == nil {
						out[t] = wbxml.E(t, wbxml.T(wbxml.AirSyncBaseType, "1"), wbxml.T(wbxml.AirSyncBaseEstimatedDataSize, "0"), wbxml.T(wbxml.AirSyncBaseData, ""))
					}
				}
				continue
			case wbxml.CalendarMeetingStatus:
				if c.v >= v160 {
					continue
				}
			case wbxml.CalendarReminder:
				if f[t] == nil {
					continue // "no reminder" has no Exception form
				}
			}
			if canon(f[t]) == canon(master[t]) {
				continue
			}
			if f[t] != nil {
				out[t] = f[t]
			} else {
				out[t] = wbxml.E(t) // cleared: empty element
			}
		}
		list = append(list, entry{r, wbxml.E(wbxml.CalendarException, out.ordered(exceptionOrder())...)})
	}
	if len(list) == 0 {
		return nil, nil
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].r.t.Before(list[j].r.t) })
	n := wbxml.E(wbxml.CalendarExceptions)
	for i, e := range list {
		if i == maxExceptions {
			break
		}
		n.Append(e.n)
	}
	return n, nil
}

// snap turns a client's occurrence time into the occurrence's RECURRENCE-ID:
// a date for an all-day series; else the occurrence at that instant or,
// failing that, on the same local day (clients send dates or midnight).
func (c *ctx) snap(t time.Time) rid {
	mw, err := c.eventTimes(c.master)
	if err == nil && mw.allDay {
		return rid{c.allDayDate(t, c.displayZone(), false), true}
	}
	s, ok := c.seriesRule()
	if !ok {
		return rid{t, false}
	}
	wt := s.wall(t)
	var sameDay time.Time
	for _, o := range s.rule.Between(wt.Add(-36*time.Hour), wt.Add(36*time.Hour), true) {
		at := s.at(o)
		if at.Equal(t) {
			return rid{at, false}
		}
		if o.Format(dateLayout) == wt.Format(dateLayout) && sameDay.IsZero() {
			sameDay = at
		}
	}
	if !sameDay.IsZero() {
		return rid{sameDay, false}
	}
	// A bare date (or midnight UTC) names the occurrence of that date.
	for _, o := range s.rule.Between(wt.Add(-48*time.Hour), wt.Add(48*time.Hour), true) {
		if o.Format(dateLayout) == t.Format(dateLayout) {
			return rid{s.at(o), false}
		}
	}
	return rid{t, false}
}

// exceptionRID reads the occurrence an Exception names.
func (c *ctx) exceptionRID(n *wbxml.Node) (rid, error) {
	x := n.Child(wbxml.CalendarExceptionStartTime)
	if x == nil {
		x = n.Child(wbxml.AirSyncBaseInstanceId)
	}
	if x == nil {
		return rid{}, invalid("Exception without ExceptionStartTime or InstanceId")
	}
	t, err := parseEASTime(x.Text())
	if err != nil {
		return rid{}, invalid("%s: %v", x.Tag, err)
	}
	return c.snap(t), nil
}

// applyExceptions applies calendar:Exceptions. Up to 14.1 the list is
// complete: EXDATEs and overrides it does not name go. In 16.x clients
// must not send it (MS-ASCAL 2.2.2.22); if one does, its entries are
// applied and nothing else is touched.
func (c *ctx) applyExceptions(in, old fields) error {
	n := in[wbxml.CalendarExceptions]
	if n == nil {
		if c.v >= v160 || c.keeps(wbxml.CalendarExceptions) || old[wbxml.CalendarExceptions] == nil {
			return nil
		}
		c.dropExceptions()
		return nil
	}
	if c.master.Props.Get(ical.PropRecurrenceRule) == nil {
		return nil // exceptions of no series
	}
	if !c.add && canon(n) == canon(old[wbxml.CalendarExceptions]) {
		return nil
	}
	complete := c.v < v160
	deleted := map[string]rid{}
	modified := map[string]*wbxml.Node{}
	var order []string
	for x := range n.Each(wbxml.CalendarException) {
		r, err := c.exceptionRID(x)
		if err != nil {
			return err
		}
		del, err := parseBool(orEmpty(x.Child(wbxml.CalendarDeleted)))
		if err != nil {
			return err
		}
		k := r.key()
		if del {
			deleted[k] = r
			delete(modified, k)
			continue
		}
		if _, seen := modified[k]; !seen {
			order = append(order, k)
		}
		modified[k] = x
		delete(deleted, k)
	}
	// EXDATEs.
	cur := c.exdates()
	var ex []rid
	have := map[string]bool{}
	for _, r := range cur {
		k := r.key()
		_, mod := modified[k]
		_, del := deleted[k]
		if (!complete || del) && !mod && !have[k] {
			ex = append(ex, r)
			have[k] = true
		}
	}
	for k, r := range deleted {
		if !have[k] {
			ex = append(ex, r)
			have[k] = true
		}
	}
	if !sameRIDs(cur, ex) {
		c.setExdates(ex)
	}
	// Overrides.
	masterFields, err := c.renderFields(c.master)
	if err != nil {
		return err
	}
	existing := map[string]*ical.Component{}
	drop := map[*ical.Component]bool{}
	for _, ov := range c.overrides() {
		r, ok := c.overrideRID(ov)
		k := r.key()
		_, mod := modified[k]
		_, del := deleted[k]
		switch {
		case !ok || del || (complete && !mod):
			drop[ov] = true
		default:
			existing[k] = ov
		}
	}
	if len(drop) > 0 {
		kept := c.cal.Children[:0]
		for _, ch := range c.cal.Children {
			if !drop[ch] {
				kept = append(kept, ch)
			}
		}
		c.cal.Children = kept
	}
	for _, k := range order {
		x := modified[k]
		exc := fields{}
		for _, ch := range x.Children {
			if _, dup := exc[ch.Tag]; !dup {
				exc[ch.Tag] = ch
			}
		}
		r, _ := c.exceptionRID(x)
		ov := existing[k]
		if ov == nil {
			ov = c.newOverride(r)
			c.cal.Children = append(c.cal.Children, ov)
		}
		if err := c.applyException(ov, exc, r, masterFields, false); err != nil {
			return err
		}
	}
	return nil
}

func orEmpty(n *wbxml.Node) *wbxml.Node {
	if n == nil {
		return &wbxml.Node{}
	}
	return n
}

func sameRIDs(a, b []rid) bool {
	if len(a) != len(b) {
		return false
	}
	ka := make([]string, len(a))
	kb := make([]string, len(b))
	for i := range a {
		ka[i], kb[i] = a[i].key(), b[i].key()
	}
	sort.Strings(ka)
	sort.Strings(kb)
	for i := range ka {
		if ka[i] != kb[i] {
			return false
		}
	}
	return true
}

// newOverride returns a copy of the master for the occurrence r: no
// recurrence, RECURRENCE-ID r, the occurrence's times.
func (c *ctx) newOverride(r rid) *ical.Component {
	ov := cloneComponent(c.master)
	for _, n := range []string{ical.PropRecurrenceRule, ical.PropRecurrenceDates, ical.PropExceptionDates, ical.PropCreated} {
		ov.Props.Del(n)
	}
	ov.Props.Set(c.ridProp(ical.PropRecurrenceID, r))
	w, err := c.eventTimes(c.master)
	if err == nil {
		if r.date {
			ov.Props.Set(dateProp(ical.PropDateTimeStart, r.t))
			ov.Props.Set(dateProp(ical.PropDateTimeEnd, r.t.Add(w.end.Sub(w.start))))
		} else {
			z := c.seriesZone()
			ov.Props.Set(dateTimeProp(ical.PropDateTimeStart, r.t, z))
			ov.Props.Set(dateTimeProp(ical.PropDateTimeEnd, r.t.Add(w.end.Sub(w.start)), z))
		}
		ov.Props.Del(ical.PropDuration)
	}
	return ov
}

// applyException applies one Exception's elements to its override. An
// element the Exception lacks is the master's (partial: the override's
// own, for a 16.x Change of one instance).
func (c *ctx) applyException(ov *ical.Component, exc fields, r rid, masterFields fields, partial bool) error {
	old, err := c.renderFields(ov)
	if err != nil {
		return err
	}
	if err := c.applyExceptionWhen(ov, exc, old, r, partial); err != nil {
		return err
	}
	var master *ical.Component
	if !partial {
		master = c.master
	}
	if err := c.applyCommon(ov, exc, old, master, masterFields); err != nil {
		return err
	}
	// MS-ASCAL 2.2.2.18: an Exception without DtStamp has the master's.
	stamp := c.now
	if t, err := utcValue(c.master.Props.Get(ical.PropDateTimeStamp)); err == nil && !partial {
		stamp = t
	}
	if n := exc[wbxml.CalendarDtStamp]; n != nil {
		if t, err := parseEASTime(n.Text()); err == nil {
			stamp = t
		}
	}
	setRaw(ov, ical.PropDateTimeStamp, compact(stamp))
	setRaw(ov, ical.PropLastModified, compact(c.now))
	return nil
}

// applyExceptionWhen applies an Exception's AllDayEvent, StartTime and
// EndTime; absent ones are the occurrence's own (its original start and
// the master's duration), or for partial the override's.
func (c *ctx) applyExceptionWhen(ov *ical.Component, exc, old fields, r rid, partial bool) error {
	mw, err := c.eventTimes(c.master)
	if err != nil {
		return err
	}
	ow, err := c.eventTimes(ov)
	if err != nil {
		return err
	}
	allDay := mw.allDay
	if partial {
		allDay = ow.allDay
	}
	if n := exc[wbxml.CalendarAllDayEvent]; n != nil {
		if allDay, err = parseBool(n); err != nil {
			return err
		}
	}
	get := func(t wbxml.Tag, def time.Time) (time.Time, error) {
		n := exc[t]
		if n == nil && partial {
			n = old[t]
		}
		if n == nil {
			return def, nil
		}
		v, err := parseEASTime(n.Text())
		if err != nil {
			return v, invalid("Exception %s: %v", t, err)
		}
		return v, nil
	}
	origStart := c.easRID(r)
	start, err := get(wbxml.CalendarStartTime, origStart)
	if err != nil {
		return err
	}
	mStart, mEnd := c.easTimes(mw, c.displayZone())
	end, err := get(wbxml.CalendarEndTime, start.Add(mEnd.Sub(mStart)))
	if err != nil {
		return err
	}
	if end.Before(start) {
		return invalid("Exception EndTime before StartTime")
	}
	w := times{allDay: allDay, start: start, end: end}
	if allDay {
		dz := c.displayZone()
		w.start = c.allDayDate(start, dz, false)
		w.end = c.allDayDate(end, dz, true)
		if !w.end.After(w.start) {
			w.end = w.start.AddDate(0, 0, 1)
		}
	}
	if w.allDay == ow.allDay && w.start.Equal(ow.start) && w.end.Equal(ow.end) {
		return nil
	}
	if allDay {
		ov.Props.Set(dateProp(ical.PropDateTimeStart, w.start))
		ov.Props.Set(dateProp(ical.PropDateTimeEnd, w.end))
	} else {
		z := c.seriesZone()
		ov.Props.Set(dateTimeProp(ical.PropDateTimeStart, w.start, z))
		ov.Props.Set(dateTimeProp(ical.PropDateTimeEnd, w.end, z))
	}
	ov.Props.Del(ical.PropDuration)
	return nil
}

// ApplyInstance applies a 16.x Sync Change aimed at one occurrence of a
// series (airsync:Change with airsyncbase:InstanceId, MS-ASAIRS 2.2.2.25):
// app holds the elements that change for that occurrence; the others stay.
// The occurrence gets an override VEVENT (RECURRENCE-ID). instanceID is the
// InstanceId text (compact UTC original start).
func (Codec) ApplyInstance(stored []byte, instanceID string, app *wbxml.Node, o item.Options) ([]byte, item.Index, error) {
	c, r, err := instanceCtx(stored, instanceID, o)
	if err != nil {
		return nil, item.Index{}, err
	}
	if app == nil {
		return nil, item.Index{}, invalid("no ApplicationData")
	}
	in := fields{}
	for _, ch := range app.Children {
		if _, dup := in[ch.Tag]; !dup {
			in[ch.Tag] = ch
		}
	}
	c.partial = true
	masterFields, err := c.renderFields(c.master)
	if err != nil {
		return nil, item.Index{}, err
	}
	var ov *ical.Component
	for _, x := range c.overrides() {
		if xr, ok := c.overrideRID(x); ok && xr.key() == r.key() {
			ov = x
		}
	}
	if ov == nil {
		ov = c.newOverride(r)
		c.cal.Children = append(c.cal.Children, ov)
	}
	var ex []rid
	for _, e := range c.exdates() {
		if e.key() != r.key() {
			ex = append(ex, e)
		}
	}
	if len(ex) != len(c.exdates()) {
		c.setExdates(ex)
	}
	if err := c.applyException(ov, in, r, masterFields, true); err != nil {
		return nil, item.Index{}, err
	}
	return c.finish()
}

// DeleteInstance applies a 16.x Sync Delete of one occurrence (airsync:Delete
// with airsyncbase:InstanceId): an EXDATE, and its override goes.
func (Codec) DeleteInstance(stored []byte, instanceID string, o item.Options) ([]byte, item.Index, error) {
	c, r, err := instanceCtx(stored, instanceID, o)
	if err != nil {
		return nil, item.Index{}, err
	}
	kept := c.cal.Children[:0]
	for _, ch := range c.cal.Children {
		if ch != c.master && ch.Name == ical.CompEvent {
			if xr, ok := c.overrideRID(ch); ok && xr.key() == r.key() {
				continue
			}
		}
		kept = append(kept, ch)
	}
	c.cal.Children = kept
	ex := c.exdates()
	for _, e := range ex {
		if e.key() == r.key() {
			return c.finish()
		}
	}
	c.setExdates(append(ex, r))
	return c.finish()
}

// instanceCtx decodes a stored series for an operation on one instance.
func instanceCtx(stored []byte, instanceID string, o item.Options) (*ctx, rid, error) {
	cal, err := decodeCalendar(stored)
	if err != nil {
		return nil, rid{}, err
	}
	c := newCtx(cal, o)
	if c.master == nil {
		return nil, rid{}, errNoEvent
	}
	if c.master.Props.Get(ical.PropRecurrenceRule) == nil {
		return nil, rid{}, invalid("InstanceId %q of an event without recurrence", instanceID)
	}
	t, err := parseEASTime(instanceID)
	if err != nil {
		return nil, rid{}, invalid("InstanceId: %v", err)
	}
	return c, c.snap(t), nil
}
