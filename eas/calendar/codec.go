package calendar

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/wbxml"
	"github.com/emersion/go-ical"
)

// ProdID is the PRODID of the iCalendar objects the codec creates.
const ProdID = "-//easd//EN"

// Codec implements item.Codec for the Calendar class. The zero value is
// ready to use; it is stateless and safe for concurrent use.
type Codec struct{}

var _ item.Codec = Codec{}

// version is a protocol version times ten (121 for "12.1").
type version int

const (
	v120 version = 120
	v140 version = 140
	v141 version = 141
	v160 version = 160
)

// parseVersion reads Options.Version; "" counts as 14.1.
func parseVersion(s string) version {
	if s == "" {
		return v141
	}
	major, minor, _ := strings.Cut(s, ".")
	a, err1 := strconv.Atoi(major)
	b, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil || a < 0 || b < 0 || b > 9 {
		return v141
	}
	return version(a*10 + b)
}

// invalid returns an error wrapping item.ErrInvalid.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: calendar: %s", item.ErrInvalid, fmt.Sprintf(format, args...))
}

// ctx is the state of one Apply or Render.
type ctx struct {
	v       version
	o       item.Options
	now     time.Time
	cal     *ical.Calendar
	master  *ical.Component
	add     bool            // Apply of a new item
	partial bool            // absent elements keep their value (16.x instance Change)
	zones   map[string]zone // resolved TZIDs by TZID and year
}

func newCtx(cal *ical.Calendar, o item.Options) *ctx {
	now := time.Now()
	if o.Now != nil {
		now = o.Now()
	}
	c := &ctx{v: parseVersion(o.Version), o: o, now: now.UTC().Truncate(time.Second), cal: cal}
	c.master = masterEvent(cal)
	return c
}

// defined reports whether an element exists in the negotiated version
// (MS-ASCAL 2.2.2, the protocol version tables of each element).
func (c *ctx) defined(t wbxml.Tag) bool {
	switch t {
	case wbxml.CalendarDisallowNewTimeProposal, wbxml.CalendarResponseRequested,
		wbxml.CalendarAppointmentReplyTime, wbxml.CalendarResponseType,
		wbxml.CalendarCalendarType, wbxml.CalendarIsLeapMonth:
		return c.v >= v140
	case wbxml.CalendarFirstDayOfWeek, wbxml.CalendarOnlineMeetingConfLink, wbxml.CalendarOnlineMeetingExternalLink:
		return c.v >= v141
	case wbxml.CalendarClientUid, wbxml.AirSyncBaseLocation, wbxml.AirSyncBaseInstanceId:
		return c.v >= v160
	case wbxml.CalendarLocation, wbxml.CalendarExceptionStartTime:
		return c.v < v160 // MS-ASCAL 2.2.2.27, 2.2.2.23: not in 16.x
	}
	return true
}

// keeps reports whether an element the client left out of a Change keeps
// the stored value: it does not exist in this version, or the client
// ghosts it (MS-ASCMD 2.2.3.168 Supported).
func (c *ctx) keeps(t wbxml.Tag) bool {
	if c.partial {
		return true
	}
	if c.add {
		return false
	}
	return !c.defined(t) || (c.o.Ghosted != nil && c.o.Ghosted(t))
}

// masterEvent returns the VEVENT without RECURRENCE-ID, else the first
// VEVENT, else nil.
func masterEvent(cal *ical.Calendar) *ical.Component {
	var first *ical.Component
	for _, ch := range cal.Children {
		if ch.Name != ical.CompEvent {
			continue
		}
		if ch.Props.Get(ical.PropRecurrenceID) == nil {
			return ch
		}
		if first == nil {
			first = ch
		}
	}
	return first
}

// overrides returns the VEVENTs with RECURRENCE-ID of the master's UID.
func (c *ctx) overrides() []*ical.Component {
	uid := rawValue(c.master, ical.PropUID)
	var out []*ical.Component
	for _, ch := range c.cal.Children {
		if ch != c.master && ch.Name == ical.CompEvent && ch.Props.Get(ical.PropRecurrenceID) != nil && rawValue(ch, ical.PropUID) == uid {
			out = append(out, ch)
		}
	}
	return out
}

// Render returns the airsync:ApplicationData of a stored event for the
// version and body preferences in o.
func (Codec) Render(stored []byte, o item.Options) (*wbxml.Node, error) {
	cal, err := decodeCalendar(stored)
	if err != nil {
		return nil, err
	}
	c := newCtx(cal, o)
	if c.master == nil {
		return nil, errNoEvent
	}
	f, err := c.renderFields(c.master)
	if err != nil {
		return nil, err
	}
	exc, err := c.renderExceptions(f)
	if err != nil {
		return nil, err
	}
	if exc != nil {
		f.set(wbxml.CalendarExceptions, exc)
	}
	n := wbxml.E(wbxml.AirSyncApplicationData, f.ordered(topOrder())...)
	stripNUL(n)
	return n, nil
}

// stripNUL drops NUL bytes from every value: WBXML inline strings cannot
// hold them, and stored text from elsewhere might.
func stripNUL(n *wbxml.Node) {
	if bytes.IndexByte(n.Value, 0) >= 0 {
		n.Value = bytes.ReplaceAll(n.Value, []byte{0}, nil)
	}
	for _, ch := range n.Children {
		stripNUL(ch)
	}
}

// topOrder is the order of the top-level elements in a response, that of
// MS-ASCAL 2.2.2.
func topOrder() []wbxml.Tag {
	return []wbxml.Tag{
		wbxml.CalendarTimezone, wbxml.CalendarAllDayEvent, wbxml.AirSyncBaseBody, wbxml.CalendarBusyStatus,
		wbxml.CalendarOrganizerName, wbxml.CalendarOrganizerEmail, wbxml.CalendarDtStamp, wbxml.CalendarEndTime,
		wbxml.CalendarLocation, wbxml.AirSyncBaseLocation, wbxml.CalendarReminder, wbxml.CalendarSensitivity,
		wbxml.CalendarSubject, wbxml.CalendarStartTime, wbxml.CalendarUID, wbxml.CalendarMeetingStatus,
		wbxml.CalendarAttendees, wbxml.CalendarCategories, wbxml.CalendarRecurrence, wbxml.CalendarExceptions,
		wbxml.CalendarResponseRequested, wbxml.CalendarAppointmentReplyTime, wbxml.CalendarResponseType,
		wbxml.CalendarDisallowNewTimeProposal, wbxml.AirSyncBaseNativeBodyType,
		wbxml.CalendarOnlineMeetingConfLink, wbxml.CalendarOnlineMeetingExternalLink,
	}
}

// fields are rendered elements by tag.
type fields map[wbxml.Tag]*wbxml.Node

func (f fields) set(t wbxml.Tag, n *wbxml.Node) {
	if n != nil {
		f[t] = n
	}
}

func (f fields) text(t wbxml.Tag, s string) { f[t] = wbxml.T(t, s) }

// ordered returns the elements of f in the given order.
func (f fields) ordered(order []wbxml.Tag) []*wbxml.Node {
	out := make([]*wbxml.Node, 0, len(f))
	for _, t := range order {
		if n := f[t]; n != nil {
			out = append(out, n)
		}
	}
	return out
}

// renderFields renders the elements of one VEVENT (master, or override
// before it is compared with the master).
func (c *ctx) renderFields(ev *ical.Component) (fields, error) {
	f := fields{}
	if err := c.renderWhen(ev, f); err != nil {
		return nil, err
	}
	c.renderBody(ev, f)
	f.text(wbxml.CalendarBusyStatus, strconv.Itoa(c.busyStatus(ev)))
	if name, email, ok := organizer(ev); ok {
		f.text(wbxml.CalendarOrganizerName, name)
		f.text(wbxml.CalendarOrganizerEmail, email)
	}
	stamp := c.now
	if t, err := utcValue(ev.Props.Get(ical.PropDateTimeStamp)); err == nil {
		stamp = t
	}
	f.text(wbxml.CalendarDtStamp, compact(stamp))
	c.renderLocation(ev, f)
	if m, ok := reminder(ev); ok {
		f.text(wbxml.CalendarReminder, strconv.Itoa(m))
	}
	f.text(wbxml.CalendarSensitivity, strconv.Itoa(sensitivity(ev)))
	if s, ok := getText(ev, ical.PropSummary); ok {
		f.text(wbxml.CalendarSubject, s)
	}
	if ev == c.master {
		f.text(wbxml.CalendarUID, rawValue(ev, ical.PropUID))
	}
	f.text(wbxml.CalendarMeetingStatus, strconv.Itoa(meetingStatus(ev)))
	f.set(wbxml.CalendarAttendees, renderAttendees(ev))
	if cats := categories(ev); len(cats) > 0 {
		n := wbxml.E(wbxml.CalendarCategories)
		for _, s := range cats {
			n.Append(wbxml.T(wbxml.CalendarCategory, s))
		}
		f[wbxml.CalendarCategories] = n
	}
	if ev == c.master {
		r, err := c.renderRecurrence()
		if err != nil {
			return nil, err
		}
		f.set(wbxml.CalendarRecurrence, r)
	}
	if c.v >= v140 {
		if b, ok := responseRequested(ev); ok {
			f.text(wbxml.CalendarResponseRequested, boolText(b))
		}
		if t, err := utcValue(ev.Props.Get(propReplyTime)); err == nil {
			f.text(wbxml.CalendarAppointmentReplyTime, compact(t))
		}
		if n, ok := intProp(ev, propResponseType, 0, 5); ok {
			f.text(wbxml.CalendarResponseType, strconv.Itoa(n))
		}
		if b, ok := boolProp(ev, propDisallowCounter); ok {
			f.text(wbxml.CalendarDisallowNewTimeProposal, boolText(b))
		}
	}
	if c.v >= v141 {
		for t, name := range onlineMeetingProps() {
			if s, ok := getText(ev, name); ok {
				f.text(t, s)
			}
		}
	}
	return f, nil
}

// Apply merges a client's Add or Change into the stored event (nil for an
// Add) and returns the new stored form and its index.
func (Codec) Apply(stored []byte, app *wbxml.Node, o item.Options) ([]byte, item.Index, error) {
	if app == nil {
		return nil, item.Index{}, invalid("no ApplicationData")
	}
	var cal *ical.Calendar
	if stored == nil {
		cal = ical.NewCalendar()
		cal.Props.SetText(ical.PropProductID, ProdID)
		cal.Props.SetText(ical.PropVersion, "2.0")
	} else {
		var err error
		if cal, err = decodeCalendar(stored); err != nil {
			return nil, item.Index{}, err
		}
	}
	c := newCtx(cal, o)
	if c.master == nil {
		if stored != nil {
			return nil, item.Index{}, errNoEvent
		}
		c.add = true
		c.master = ical.NewComponent(ical.CompEvent)
		cal.Children = append(cal.Children, c.master)
	}
	if err := c.apply(app); err != nil {
		return nil, item.Index{}, err
	}
	return c.finish()
}

// finish tidies the calendar (VTIMEZONEs, component order) and returns its
// text and index.
func (c *ctx) finish() ([]byte, item.Index, error) {
	c.syncTimezones()
	c.orderComponents()
	out := encodeCalendar(c.cal)
	idx, err := c.index()
	if err != nil {
		return nil, item.Index{}, err
	}
	return out, idx, nil
}

// apply merges app into the master event.
func (c *ctx) apply(app *wbxml.Node) error {
	old := fields{}
	if !c.add {
		var err error
		if old, err = c.renderFields(c.master); err != nil {
			return err
		}
		exc, err := c.renderExceptions(old)
		if err != nil {
			return err
		}
		old.set(wbxml.CalendarExceptions, exc)
	}
	in := fields{}
	for _, ch := range app.Children {
		if _, dup := in[ch.Tag]; !dup {
			in[ch.Tag] = ch
		}
	}
	if err := c.applyUID(in); err != nil {
		return err
	}
	whenChanged, err := c.applyWhen(in, old)
	if err != nil {
		return err
	}
	recChanged, err := c.applyRecurrence(in, old, whenChanged)
	if err != nil {
		return err
	}
	if err := c.applyCommon(c.master, in, old, nil, nil); err != nil {
		return err
	}
	if err := c.applyTopOnly(in, old); err != nil {
		return err
	}
	// MS-ASCAL 2.2.2.22: in 16.x, changing the recurrence or the times of
	// a series deletes its exceptions.
	if c.v >= v160 && !c.add && (recChanged || whenChanged) {
		c.dropExceptions()
	}
	c.touch(c.master, in)
	return c.applyExceptions(in, old)
}

// touch sets DTSTAMP (the client's DtStamp, else now), LAST-MODIFIED and,
// for a new item, CREATED.
func (c *ctx) touch(ev *ical.Component, in fields) {
	stamp := c.now
	if n := in[wbxml.CalendarDtStamp]; n != nil {
		if t, err := parseEASTime(n.Text()); err == nil {
			stamp = t
		}
	}
	setRaw(ev, ical.PropDateTimeStamp, compact(stamp))
	setRaw(ev, ical.PropLastModified, compact(c.now))
	if c.add {
		setRaw(ev, ical.PropCreated, compact(c.now))
	}
}

// applyUID sets the UID of a new event: the client's calendar:UID
// (12.x/14.x) or ClientUid (16.x, MS-ASCAL 2.2.2.13) when usable, else
// Options.NewUID. A Change keeps the stored UID: it is the item's
// identity across round trips.
func (c *ctx) applyUID(in fields) error {
	if !c.add {
		if rawValue(c.master, ical.PropUID) == "" {
			setRaw(c.master, ical.PropUID, c.newUID())
		}
		return nil
	}
	uid := ""
	for _, t := range []wbxml.Tag{wbxml.CalendarClientUid, wbxml.CalendarUID} {
		if s := strings.TrimSpace(in[t].Text()); usableUID(s) && uid == "" {
			uid = s
		}
	}
	if uid == "" {
		uid = c.newUID()
	}
	if uid == "" {
		return errors.New("calendar: Options.NewUID is required for an Add")
	}
	setRaw(c.master, ical.PropUID, uid)
	return nil
}

func (c *ctx) newUID() string {
	if c.o.NewUID == nil {
		return ""
	}
	return c.o.NewUID()
}

// usableUID reports whether a client's UID can be an iCalendar UID: not
// empty, at most 255 bytes, printable, no line breaks.
func usableUID(s string) bool {
	if s == "" || len(s) > 255 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// boolText renders an EAS boolean.
func boolText(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// parseBool reads an EAS boolean (0 or 1).
func parseBool(n *wbxml.Node) (bool, error) {
	switch strings.TrimSpace(n.Text()) {
	case "1":
		return true, nil
	case "0", "":
		return false, nil
	}
	return false, invalid("%s: not a boolean: %q", n.Tag, n.Text())
}

// parseInt reads an unsigned integer element within [lo, hi].
func parseInt(n *wbxml.Node, lo, hi int) (int, error) {
	s := strings.TrimSpace(n.Text())
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		return 0, invalid("%s: %q is not a number in [%d, %d]", n.Tag, n.Text(), lo, hi)
	}
	return v, nil
}
