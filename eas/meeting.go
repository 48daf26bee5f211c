package eas

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/easd/easd/eas/email"
	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/store"
	"github.com/easd/easd/wbxml"
	"github.com/emersion/go-ical"
)

// Meetings in mail (MS-ASCMD 3.1.5.6). As Exchange's calendar attendant
// does on delivery, the server applies the iTIP message (RFC 5546) of a
// meeting message to the user's calendar when it converts the message
// for a device: a REQUEST goes on the default calendar as tentative
// (Set-CalendarProcessing -AddNewRequestsTentatively, true by default), a
// CANCEL marks it cancelled and keeps it (-RemoveCanceledMeetings, false
// by default: the phone shows it cancelled until the user removes it), a
// REPLY to a meeting the user organizes records the attendee's answer.
// MeetingResponse (MS-ASCMD 2.2.1.11) records the user's own answer;
// before 16.0 the phone mails the REPLY itself (SendMail), so the server
// sends nothing.

// Calendar values the server sets (MS-ASCAL 2.2.2.9 BusyStatus, 2.2.2.28
// MeetingStatus, 2.2.2.39 ResponseType).
const (
	busyFree            = 0
	busyTentative       = 1
	meetingReceived     = 3 // the user is an attendee
	meetingReceivedGone = 7 // ... and it was cancelled
	respTentative       = 2
	respAccepted        = 3
	respNotResponded    = 5
)

// Properties and parameters easd keeps in stored events.
const (
	// paramReplyStamp on an ATTENDEE of an event the user organizes is
	// the DTSTAMP of the REPLY that set its PARTSTAT: an older REPLY met
	// later (Sync sends the newest mail first) does not undo it.
	paramReplyStamp = "X-EASD-REPLY-STAMP"
	// propBusyStatus is Outlook's busy status of an event (MS-OXCICAL
	// X-MICROSOFT-CDO-BUSYSTATUS), set on an occurrence answered alone.
	propBusyStatus = "X-MICROSOFT-CDO-BUSYSTATUS"
	// propIntended is the busy status the organizer intends once the
	// meeting is accepted (MS-OXCICAL X-MICROSOFT-CDO-INTENDEDSTATUS);
	// kept because placing the meeting as tentative overwrites TRANSP.
	propIntended = "X-MICROSOFT-CDO-INTENDEDSTATUS"
)

// meetingLock serialises a user's meeting processing (per process).
const meetingLock = "meetings"

// errOrganizer reports a meeting message about a meeting the user
// organizes where an attendee's is expected.
var errOrganizer = errors.New("eas: the user organizes this meeting")

// meetingMail applies the meeting a message carries to the user's
// calendar, as the message is converted for a device (mailsync.go's
// convert). Idempotent: a message already applied (or an older one) is
// ignored, so every device and every retry may convert it again.
// Failures are logged; the message is sent anyway.
func (h *Handler) meetingMail(ctx context.Context, s *Session, m *email.Meeting) {
	if m == nil || m.ICS == nil || h.deps.Items == nil || h.codec(store.ClassCalendar) == nil {
		return
	}
	cal, err := email.ParseCalendar(m.ICS)
	if err != nil {
		s.Log.Info("meeting message with an unreadable calendar", "err", err)
		return
	}
	unlock := h.locks.lock(-s.User.ID, []string{meetingLock})
	defer unlock()
	var coll string
	switch m.Method {
	case "REQUEST", "CANCEL":
		var p placed
		p, err = h.placeMeeting(ctx, s, cal, m.Method, false)
		if p.changed {
			coll = collServerID(p.coll.ID)
		}
	case "REPLY":
		coll, err = h.meetingReply(ctx, s, cal)
	}
	switch {
	case errors.Is(err, errOrganizer):
	case err != nil:
		s.Log.Warn("meeting message not applied to the calendar", "method", m.Method, "err", err)
	case coll != "":
		s.OnDone(func() { h.publish(ctx, s.User.ID, coll) })
	}
}

// userAddresses are the user's mail addresses, lower case: the primary
// one, the login, the GAL profile's.
func (h *Handler) userAddresses(ctx context.Context, s *Session) map[string]bool {
	addrs := map[string]bool{
		strings.ToLower(primaryAddress(s.User.Name, h.cfg.Domain)): true,
		strings.ToLower(s.User.Name):                               true,
	}
	if b, err := h.deps.Store.UserSetting(ctx, s.User.ID, ProfileSettingKey); err == nil {
		var p Profile
		if json.Unmarshal(b, &p) == nil && p.EmailAddress != "" {
			addrs[strings.ToLower(p.EmailAddress)] = true
		}
	}
	return addrs
}

func isAddress(addrs map[string]bool, calAddress string) bool {
	return addrs[strings.ToLower(email.Address(calAddress))]
}

// defaultCalendar is the user's default calendar collection.
func (h *Handler) defaultCalendar(ctx context.Context, s *Session) (store.Collection, error) {
	cs, err := h.collections(ctx, s)
	if err != nil {
		return store.Collection{}, err
	}
	for _, c := range cs {
		if c.Class == store.ClassCalendar && c.Default {
			return c, nil
		}
	}
	return store.Collection{}, errors.New("eas: no default calendar")
}

// itipEvent is a VEVENT of an iTIP message with what orders it (RFC 5546
// 2.1.5: SEQUENCE, then DTSTAMP).
type itipEvent struct {
	ev    *ical.Component
	rid   string // RECURRENCE-ID as a key; "" for the master
	seq   int
	stamp time.Time
}

// ridKey is a RECURRENCE-ID as a comparable key: its instant.
func ridKey(cal *ical.Calendar, p *ical.Prop) string {
	if p == nil {
		return ""
	}
	t, date, err := email.EventTime(cal, p)
	if err != nil {
		return "?" + p.Value
	}
	if date {
		return t.Format("20060102")
	}
	return t.Format("20060102T150405Z")
}

// itipEvents lists the VEVENTs of cal with the UID of the first, the
// master (RECURRENCE-ID key "") first.
func itipEvents(cal *ical.Calendar) (uid string, evs []itipEvent) {
	for _, ch := range cal.Children {
		if ch.Name != ical.CompEvent {
			continue
		}
		u := propValue(ch, ical.PropUID)
		if uid == "" {
			uid = u
		}
		if u == "" || u != uid {
			continue
		}
		e := itipEvent{ev: ch, rid: ridKey(cal, ch.Props.Get(ical.PropRecurrenceID))}
		e.seq, _ = strconv.Atoi(propValue(ch, ical.PropSequence))
		e.stamp, _ = time.Parse("20060102T150405Z", propValue(ch, ical.PropDateTimeStamp))
		evs = append(evs, e)
	}
	// The master first: it decides for the whole meeting.
	slices.SortStableFunc(evs, func(a, b itipEvent) int {
		return strings.Compare(a.rid, b.rid)
	})
	return uid, evs
}

func propValue(c *ical.Component, name string) string {
	if p := c.Props.Get(name); p != nil {
		return strings.TrimSpace(p.Value)
	}
	return ""
}

// itipMark is the last iTIP message applied to one event (or occurrence).
type itipMark struct {
	Seq   int   `json:"q"`
	Stamp int64 `json:"d"`
}

func (m itipMark) before(e itipEvent) bool {
	return e.seq > m.Seq || e.seq == m.Seq && e.stamp.Unix() > m.Stamp
}

// itipKey is the user setting recording the iTIP messages applied to the
// meeting uid, by RECURRENCE-ID key (an event deleted or declined since
// is not put back by the same message).
func itipKey(uid string) string {
	sum := sha256.Sum256([]byte(uid))
	return "itip/" + hex.EncodeToString(sum[:16])
}

func (h *Handler) itipMarks(ctx context.Context, s *Session, uid string) (map[string]itipMark, error) {
	b, err := h.deps.Store.UserSetting(ctx, s.User.ID, itipKey(uid))
	marks := map[string]itipMark{}
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		_ = json.Unmarshal(b, &marks)
	}
	return marks, nil
}

// placed is the outcome of placeMeeting.
type placed struct {
	coll    store.Collection
	item    store.Item // the stored event; ID 0 when there is none
	changed bool
}

// placeMeeting applies a REQUEST or CANCEL sent to the user to the
// default calendar; the caller holds meetingLock. Events not newer than
// the last message applied are ignored, unless force and the calendar
// holds no event of that UID (MeetingResponse to a meeting declined or
// deleted before). errOrganizer when the user organizes the meeting.
func (h *Handler) placeMeeting(ctx context.Context, s *Session, cal *ical.Calendar, method string, force bool) (placed, error) {
	var p placed
	uid, evs := itipEvents(cal)
	if len(evs) == 0 || uid == "" {
		return p, errors.New("eas: meeting without an event or UID")
	}
	addrs := h.userAddresses(ctx, s)
	if org := evs[0].ev.Props.Get(ical.PropOrganizer); org != nil && isAddress(addrs, org.Value) {
		return p, errOrganizer
	}
	var err error
	if p.coll, err = h.defaultCalendar(ctx, s); err != nil {
		return p, err
	}
	marks, err := h.itipMarks(ctx, s, uid)
	if err != nil {
		return p, err
	}
	p.item, err = h.deps.Items.ItemByUID(ctx, p.coll.ID, uid)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return p, err
	}
	var fresh []itipEvent
	for _, e := range evs {
		if m, ok := marks[e.rid]; !ok || m.before(e) || (force && p.item.ID == 0) {
			fresh = append(fresh, e)
		}
	}
	if len(fresh) == 0 {
		return p, nil
	}
	var stored *ical.Calendar
	if p.item.ID != 0 {
		if stored, err = email.ParseCalendar(p.item.Data); err != nil {
			return p, fmt.Errorf("stored event %d: %w", p.item.ID, err)
		}
	}
	var out *ical.Calendar
	st := easState{busy: busyTentative, resp: respNotResponded}
	if method == "CANCEL" {
		// The answer stays; a cancelled meeting no longer keeps the time
		// busy (Outlook shows it free).
		out, st = cancelMeeting(stored, cal, fresh), h.storedState(p.item, st)
		if fresh[0].rid == "" {
			st.busy = busyFree
		}
	} else {
		out, st = h.mergeRequest(stored, p.item, cal, evs, fresh, addrs, st)
	}
	if out != nil {
		master := email.MainEvent(out)
		st.status = meetingReceived
		if strings.EqualFold(propValue(master, ical.PropStatus), "CANCELLED") {
			st.status = meetingReceivedGone
		}
		if fresh[0].rid == "" {
			st.stamp = fresh[0].stamp // else the master's stays
		}
		data, idx, err := h.applyEAS(out, st)
		if err != nil {
			return p, err
		}
		if p.item, err = h.putEvent(ctx, p.coll.ID, p.item.ID, data, idx); err != nil {
			return p, err
		}
		p.changed = true
	}
	for _, e := range fresh {
		marks[e.rid] = itipMark{Seq: e.seq, Stamp: e.stamp.Unix()}
	}
	b, err := json.Marshal(marks)
	if err != nil {
		return p, err
	}
	return p, h.deps.Store.PutUserSetting(ctx, s.User.ID, itipKey(uid), b)
}

// putEvent stores an event (a new one when id is 0; the same UID added
// meanwhile is replaced).
func (h *Handler) putEvent(ctx context.Context, coll, id int64, data []byte, idx item.Index) (store.Item, error) {
	it := store.Item{ID: id, CollectionID: coll, UID: idx.UID, Data: data, Start: idx.Start, End: idx.End, Summary: idx.Summary}
	saved, err := h.deps.Items.PutItem(ctx, it)
	if errors.Is(err, store.ErrExists) {
		var old store.Item
		if old, err = h.deps.Items.ItemByUID(ctx, coll, idx.UID); err == nil {
			it.ID = old.ID
			saved, err = h.deps.Items.PutItem(ctx, it)
		}
	}
	return saved, err
}

// mergeRequest returns the stored calendar updated by a REQUEST's fresh
// events: a new master replaces the event with all of the REQUEST's
// events (RFC 5546 3.2.2), occurrences alone replace or join their
// overrides. An event whose SEQUENCE changed asks the user again: their
// ATTENDEE goes back to NEEDS-ACTION and, for the master, the meeting to
// tentative; one whose SEQUENCE did not change (an update that keeps
// answers, RFC 5546 2.1.4) keeps what the user chose, as do the
// occurrences they answered alone (overrides, EXDATEs).
func (h *Handler) mergeRequest(stored *ical.Calendar, old store.Item, in *ical.Calendar, evs, fresh []itipEvent, addrs map[string]bool, st easState) (*ical.Calendar, easState) {
	out := stored
	master := fresh[0].rid == ""
	if master {
		fresh = evs
	}
	if out == nil || master {
		out = ical.NewCalendar()
		for name, props := range in.Props {
			if name != ical.PropMethod {
				out.Props[name] = props
			}
		}
		if out.Props.Get(ical.PropVersion) == nil {
			out.Props.SetText(ical.PropVersion, "2.0")
		}
		if out.Props.Get(ical.PropProductID) == nil {
			out.Props.SetText(ical.PropProductID, "-//easd//EN")
		}
	}
	// Time zones the new events use.
	for _, ch := range in.Children {
		if ch.Name == ical.CompTimezone && !hasTimezone(out, propValue(ch, ical.PropTimezoneID)) {
			out.Children = append(out.Children, ch)
		}
	}
	keepState := stored != nil && !master // occurrences only: the master's state stays
	incoming := map[string]bool{}
	for _, e := range fresh {
		incoming[e.rid] = true
		ev := e.ev
		if ev.Props.Get(propIntended) == nil {
			busy := "BUSY"
			if strings.EqualFold(propValue(ev, ical.PropTransparency), "TRANSPARENT") {
				busy = "FREE"
			}
			setProp(ev, propIntended, busy)
		}
		var prev *ical.Component
		if stored != nil {
			prev = eventByRID(stored, e.rid)
		}
		prevSeq := -1
		if prev != nil {
			prevSeq, _ = strconv.Atoi(propValue(prev, ical.PropSequence))
		}
		if prevSeq == e.seq {
			copyPartstat(prev, ev, addrs)
			if e.rid == "" {
				keepState = true
				keepOccurrences(prev, ev)
			}
		} else {
			setPartstat(ev, addrs, "NEEDS-ACTION", false)
		}
		if !master {
			removeEvent(out, stored, e.rid)
		}
		out.Children = append(out.Children, ev)
	}
	if master && keepState {
		for _, ch := range stored.Children {
			if ch.Name == ical.CompEvent && ch.Props.Get(ical.PropRecurrenceID) != nil && !incoming[ridKey(stored, ch.Props.Get(ical.PropRecurrenceID))] {
				out.Children = append(out.Children, ch)
			}
		}
	}
	if keepState {
		st = h.storedState(old, st)
	}
	return out, st
}

// storedState is the state the user chose for a stored meeting, as the
// calendar renders it; def where it says nothing.
func (h *Handler) storedState(old store.Item, def easState) easState {
	if old.ID == 0 {
		return def
	}
	app, err := h.codec(store.ClassCalendar).Render(old.Data, item.Options{Version: "14.1", Now: h.deps.Now})
	if err != nil {
		return def
	}
	if b, err := strconv.Atoi(app.ChildText(wbxml.CalendarBusyStatus)); err == nil {
		def.busy = b
	}
	if r, err := strconv.Atoi(app.ChildText(wbxml.CalendarResponseType)); err == nil {
		def.resp = r
	}
	def.replyTime = app.ChildText(wbxml.CalendarAppointmentReplyTime)
	return def
}

// keepOccurrences gives the new master the EXDATEs of the old one that
// it lacks (occurrences the user declined).
func keepOccurrences(old, ev *ical.Component) {
	have := map[string]bool{}
	for _, p := range ev.Props.Values(ical.PropExceptionDates) {
		have[p.Value] = true
	}
	for _, p := range old.Props.Values(ical.PropExceptionDates) {
		if !have[p.Value] {
			cp := cloneProp(p)
			ev.Props.Add(&cp)
		}
	}
}

func hasTimezone(cal *ical.Calendar, tzid string) bool {
	for _, ch := range cal.Children {
		if ch.Name == ical.CompTimezone && propValue(ch, ical.PropTimezoneID) == tzid {
			return true
		}
	}
	return false
}

// eventByRID returns the VEVENT of cal with the RECURRENCE-ID key rid
// ("" the master), or nil.
func eventByRID(cal *ical.Calendar, rid string) *ical.Component {
	if rid == "" {
		m := email.MainEvent(cal)
		if m != nil && m.Props.Get(ical.PropRecurrenceID) == nil {
			return m
		}
		return nil
	}
	for _, ch := range cal.Children {
		if ch.Name == ical.CompEvent && ch.Props.Get(ical.PropRecurrenceID) != nil && ridKey(cal, ch.Props.Get(ical.PropRecurrenceID)) == rid {
			return ch
		}
	}
	return nil
}

// removeEvent drops the VEVENT of out with the RECURRENCE-ID key rid
// (keys computed with keysFrom's time zones, out's when nil).
func removeEvent(out, keysFrom *ical.Calendar, rid string) {
	if keysFrom == nil {
		keysFrom = out
	}
	out.Children = slices.DeleteFunc(out.Children, func(ch *ical.Component) bool {
		return ch.Name == ical.CompEvent && ch.Props.Get(ical.PropRecurrenceID) != nil && ridKey(keysFrom, ch.Props.Get(ical.PropRecurrenceID)) == rid
	})
}

// setPartstat sets PARTSTAT on the user's ATTENDEE of ev; with add, a
// user who is not an attendee is added as one (the address first in
// addrs order does not matter: any of the user's).
func setPartstat(ev *ical.Component, addrs map[string]bool, partstat string, add bool) {
	atts := ev.Props[ical.PropAttendee]
	found := false
	for i := range atts {
		if isAddress(addrs, atts[i].Value) {
			atts[i].Params.Set(ical.ParamParticipationStatus, partstat)
			found = true
		}
	}
	if !found && add {
		for a := range addrs {
			if strings.Contains(a, "@") {
				p := ical.NewProp(ical.PropAttendee)
				p.Value = "mailto:" + a
				p.Params.Set(ical.ParamParticipationStatus, partstat)
				ev.Props.Add(p)
				break
			}
		}
	}
}

// copyPartstat gives the user's ATTENDEE of to the PARTSTAT it has in
// from.
func copyPartstat(from, to *ical.Component, addrs map[string]bool) {
	for _, a := range from.Props.Values(ical.PropAttendee) {
		if isAddress(addrs, a.Value) {
			if ps := a.Params.Get(ical.ParamParticipationStatus); ps != "" {
				setPartstat(to, addrs, ps, false)
			}
			return
		}
	}
}

// cancelMeeting marks the events of a CANCEL cancelled in the stored
// calendar (STATUS:CANCELLED, RFC 5546 3.2.5): the whole meeting for a
// master, else the occurrences (an override made for one that has
// none). Nil when nothing is stored: there is nothing to cancel.
func cancelMeeting(stored, in *ical.Calendar, fresh []itipEvent) *ical.Calendar {
	if stored == nil {
		return nil
	}
	master := email.MainEvent(stored)
	for _, e := range fresh {
		if e.rid == "" || master == nil || master.Props.Get(ical.PropRecurrenceRule) == nil {
			for _, ch := range stored.Children {
				if ch.Name == ical.CompEvent {
					setProp(ch, ical.PropStatus, "CANCELLED")
				}
			}
			if master != nil {
				for _, name := range []string{ical.PropSequence, ical.PropDateTimeStamp} {
					if p := e.ev.Props.Get(name); p != nil {
						master.Props.Set(p)
					}
				}
			}
			continue
		}
		t, date, err := email.EventTime(in, e.ev.Props.Get(ical.PropRecurrenceID))
		if err != nil {
			continue
		}
		ov := ensureOverride(stored, master, t, date)
		setProp(ov, ical.PropStatus, "CANCELLED")
		setProp(ov, ical.PropTransparency, "TRANSPARENT")
		setProp(ov, propBusyStatus, "FREE")
	}
	return stored
}

// setProp replaces c's properties name by one with the raw value v.
func setProp(c *ical.Component, name, v string) {
	p := ical.NewProp(name)
	p.Value = v
	c.Props.Set(p)
}

// ensureOverride returns the override VEVENT of the occurrence starting
// (originally) at t, a copy of master made for it when there is none.
func ensureOverride(cal *ical.Calendar, master *ical.Component, t time.Time, date bool) *ical.Component {
	for _, ch := range cal.Children {
		if ch.Name != ical.CompEvent || ch == master || ch.Props.Get(ical.PropRecurrenceID) == nil {
			continue
		}
		if rt, _, err := email.EventTime(cal, ch.Props.Get(ical.PropRecurrenceID)); err == nil && rt.Equal(t) {
			return ch
		}
	}
	ov := cloneComponent(master)
	for _, name := range []string{ical.PropRecurrenceRule, ical.PropRecurrenceDates, ical.PropExceptionDates,
		ical.PropDateTimeStart, ical.PropDateTimeEnd, ical.PropRecurrenceID} {
		ov.Props.Del(name)
	}
	span := time.Duration(0)
	start, _, err1 := email.EventTime(cal, master.Props.Get(ical.PropDateTimeStart))
	if end, _, err2 := email.EventTime(cal, master.Props.Get(ical.PropDateTimeEnd)); err1 == nil && err2 == nil && end.After(start) {
		span = end.Sub(start)
	}
	when := func(name string, t time.Time) *ical.Prop {
		p := ical.NewProp(name)
		if date {
			p.Value = t.Format("20060102")
			p.Params.Set(ical.ParamValue, "DATE")
		} else {
			p.Value = t.UTC().Format("20060102T150405Z")
		}
		return p
	}
	ov.Props.Set(when(ical.PropRecurrenceID, t))
	ov.Props.Set(when(ical.PropDateTimeStart, t))
	if master.Props.Get(ical.PropDateTimeEnd) != nil {
		ov.Props.Set(when(ical.PropDateTimeEnd, t.Add(span)))
	}
	cal.Children = append(cal.Children, ov)
	return ov
}

func cloneComponent(c *ical.Component) *ical.Component {
	out := ical.NewComponent(c.Name)
	for name, props := range c.Props {
		for _, p := range props {
			out.Props[name] = append(out.Props[name], cloneProp(p))
		}
	}
	for _, ch := range c.Children {
		out.Children = append(out.Children, cloneComponent(ch))
	}
	return out
}

func cloneProp(p ical.Prop) ical.Prop {
	params := make(ical.Params, len(p.Params))
	for k, v := range p.Params {
		params[k] = slices.Clone(v)
	}
	return ical.Prop{Name: p.Name, Params: params, Value: p.Value}
}

// easState is what the server sets of a received meeting through the
// calendar codec: BusyStatus, MeetingStatus, ResponseType and
// AppointmentReplyTime (MS-ASCAL 2.2.2.9, 2.2.2.28, 2.2.2.39, 2.2.2.7),
// the properties the codec keeps them in being its own.
type easState struct {
	busy, status, resp int
	replyTime          string    // compact; "" leaves it
	stamp              time.Time // DTSTAMP to keep; zero: the master's
}

// notPropagated are the master's properties that an override never takes
// from it when the codec changed them.
var notPropagated = map[string]bool{
	ical.PropUID: true, ical.PropDateTimeStamp: true, ical.PropLastModified: true, ical.PropCreated: true,
	ical.PropSequence: true, ical.PropDateTimeStart: true, ical.PropDateTimeEnd: true, ical.PropDuration: true,
	ical.PropRecurrenceRule: true, ical.PropRecurrenceDates: true, ical.PropExceptionDates: true,
	ical.PropRecurrenceID: true, ical.PropAttendee: true, ical.PropOrganizer: true,
}

// applyEAS sets st on the master through the calendar codec (an Apply
// of only those elements: the rest is ghosted, kept as stored), copies
// what that changed to the overrides, and returns the stored form.
func (h *Handler) applyEAS(cal *ical.Calendar, st easState) ([]byte, item.Index, error) {
	codec := h.codec(store.ClassCalendar)
	master := email.MainEvent(cal)
	if master == nil {
		return nil, item.Index{}, errors.New("eas: meeting without an event")
	}
	stamp := st.stamp
	if stamp.IsZero() {
		stamp, _ = time.Parse("20060102T150405Z", propValue(master, ical.PropDateTimeStamp))
	}
	if stamp.IsZero() {
		stamp = h.deps.Now()
	}
	app := wbxml.E(wbxml.AirSyncApplicationData,
		wbxml.T(wbxml.CalendarBusyStatus, strconv.Itoa(st.busy)),
		wbxml.T(wbxml.CalendarDtStamp, stamp.UTC().Format("20060102T150405Z")),
		wbxml.T(wbxml.CalendarMeetingStatus, strconv.Itoa(st.status)),
		wbxml.T(wbxml.CalendarResponseType, strconv.Itoa(st.resp)))
	if st.replyTime != "" {
		app.Append(wbxml.T(wbxml.CalendarAppointmentReplyTime, st.replyTime))
	}
	sent := map[wbxml.Tag]bool{}
	for _, c := range app.Children {
		sent[c.Tag] = true
	}
	o := item.Options{Version: "14.1", Now: h.deps.Now, NewUID: newUID, Ghosted: func(t wbxml.Tag) bool { return !sent[t] }}
	before := cloneComponent(master)
	data, idx, err := codec.Apply(email.EncodeCalendar(cal), app, o)
	if err != nil {
		return nil, idx, err
	}
	after, err := email.ParseCalendar(data)
	if err != nil {
		return nil, idx, err
	}
	am := email.MainEvent(after)
	var overrides []*ical.Component
	for _, ch := range after.Children {
		if ch.Name == ical.CompEvent && ch != am {
			overrides = append(overrides, ch)
		}
	}
	if len(overrides) == 0 || am == nil {
		return data, idx, nil
	}
	changed := false
	for name, props := range am.Props {
		if notPropagated[name] || sameProps(before.Props[name], props) {
			continue
		}
		for _, ov := range overrides {
			ov.Props[name] = nil
			for _, p := range props {
				ov.Props[name] = append(ov.Props[name], cloneProp(p))
			}
		}
		changed = true
	}
	for name := range before.Props {
		if _, ok := am.Props[name]; !ok && !notPropagated[name] {
			for _, ov := range overrides {
				ov.Props.Del(name)
			}
			changed = true
		}
	}
	if !changed {
		return data, idx, nil
	}
	data = email.EncodeCalendar(after)
	idx, err = codec.Index(data)
	return data, idx, err
}

func sameProps(a, b []ical.Prop) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Value != b[i].Value || len(a[i].Params) != len(b[i].Params) {
			return false
		}
		for k, v := range a[i].Params {
			if !slices.Equal(v, b[i].Params[k]) {
				return false
			}
		}
	}
	return true
}
