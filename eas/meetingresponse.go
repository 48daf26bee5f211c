package eas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/easd/easd/eas/email"
	"github.com/easd/easd/store"
	"github.com/easd/easd/wbxml"
	"github.com/emersion/go-ical"
)

// Answers to meetings: the user's (the MeetingResponse command, MS-ASCMD
// 2.2.1.11) and, in a meeting the user organizes, the attendees' (iTIP
// REPLY, RFC 5546 3.2.3). The rest of the calendar side of meeting
// messages is in meeting.go.

// meetingCommands registers MeetingResponse when there is a calendar.
func (h *Handler) meetingCommands() {
	if h.deps.Items != nil && h.codec(store.ClassCalendar) != nil {
		h.commands["MeetingResponse"] = command{tag: wbxml.MeetingResponseMeetingResponse, maxBody: smallBody, run: h.meetingResponse}
	}
}

// MeetingResponse statuses, MS-ASCMD 2.2.3.177.9 (Status in
// MeetingResponse), and the two 2.2.3.92.1 (InstanceId) names.
const (
	meetingOK             = 1
	meetingInvalidRequest = 2   // not a meeting request, or one the user organizes
	meetingMailboxError   = 3   // the mailbox failed; the client retries
	meetingServerError    = 4   // the calendar store failed
	meetingBadInstance    = 104 // InstanceId is not a date-time
	meetingNotRecurring   = 146 // InstanceId of a meeting that does not recur
)

// UserResponse values, MS-ASCMD 2.2.3.194.
const (
	responseAccept    = 1
	responseTentative = 2
	responseDecline   = 3
)

// meetingResponse runs MeetingResponse (MS-ASCMD 2.2.1.11): each Request
// answers a meeting request in a mail folder (CollectionId and RequestId,
// or search:LongId) or a meeting in a calendar folder, for the whole
// series or (14.1, InstanceId) one occurrence. Accept and tentative put
// the meeting on the default calendar with the user's PARTSTAT and
// answer its ServerId (CalendarId); decline removes it, as Exchange's
// DeclineItem does, and answers no CalendarId (MS-ASCMD 2.2.3.18).
func (h *Handler) meetingResponse(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error) {
	if body == nil {
		return nil, Errorf(StatusInvalidContent, "empty MeetingResponse")
	}
	var ids []string
	for req := range body.Each(wbxml.MeetingResponseRequest) {
		ids = append(ids, req.ChildText(wbxml.MeetingResponseCollectionId))
		if long, _, ok := strings.Cut(req.ChildText(wbxml.SearchLongId), ":"); ok {
			ids = append(ids, long)
		}
	}
	hr, err := h.knownHierarchy(ctx, s, ids...)
	if err != nil {
		return nil, err
	}
	out := wbxml.E(wbxml.MeetingResponseMeetingResponse)
	for req := range body.Each(wbxml.MeetingResponseRequest) {
		n, err := h.meetingResponseOne(ctx, s, hr, req)
		if err != nil {
			return nil, err
		}
		out.Append(n)
	}
	return out, nil
}

// meetingResponseOne answers one Request with its Result.
func (h *Handler) meetingResponseOne(ctx context.Context, s *Session, hr *hierarchy, req *wbxml.Node) (*wbxml.Node, error) {
	reqID, long := req.ChildText(wbxml.MeetingResponseRequestId), req.ChildText(wbxml.SearchLongId)
	result := func(status int, calID string) *wbxml.Node {
		id := reqID
		if id == "" {
			id = long
		}
		n := wbxml.E(wbxml.MeetingResponseResult, wbxml.T(wbxml.MeetingResponseRequestId, id),
			wbxml.T(wbxml.MeetingResponseStatus, strconv.Itoa(status)))
		if calID != "" {
			n.Append(wbxml.T(wbxml.MeetingResponseCalendarId, calID))
		}
		return n
	}
	resp, err := strconv.Atoi(strings.TrimSpace(req.ChildText(wbxml.MeetingResponseUserResponse)))
	if err != nil || resp < responseAccept || resp > responseDecline {
		return result(meetingInvalidRequest, ""), nil
	}
	var instance time.Time
	if n := req.Child(wbxml.MeetingResponseInstanceId); n != nil {
		if !versionAtLeast(s.Req.Version, "14.1") {
			return result(meetingInvalidRequest, ""), nil // 14.1 and later only
		}
		if instance, err = parseInstanceID(n.Text()); err != nil {
			return result(meetingBadInstance, ""), nil
		}
	}
	coll, id := req.ChildText(wbxml.MeetingResponseCollectionId), reqID
	if long != "" {
		id = long
		coll, _, _ = strings.Cut(long, ":")
	}
	f := hr.byID[coll]
	if f == nil {
		return result(meetingInvalidRequest, ""), nil
	}
	unlock := h.locks.lock(-s.User.ID, []string{meetingLock})
	defer unlock()
	var p placed
	if f.coll != 0 {
		// A meeting in a calendar folder.
		itemID := parseItemServerID(id, f.ID)
		if f.class != store.ClassCalendar || itemID == 0 {
			return result(meetingInvalidRequest, ""), nil
		}
		p.coll = store.Collection{ID: f.coll}
		p.item, err = h.deps.Items.Item(ctx, f.coll, itemID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return result(meetingInvalidRequest, ""), nil
		case err != nil:
			s.Log.Warn("MeetingResponse: calendar store", "err", err)
			return result(meetingServerError, ""), nil
		}
	} else {
		cal, status, err := h.requestCalendar(ctx, s, f, id)
		if err != nil || status != meetingOK {
			return result(status, ""), err
		}
		p, err = h.placeMeeting(ctx, s, cal, "REQUEST", true)
		switch {
		case errors.Is(err, errOrganizer):
			return result(meetingInvalidRequest, ""), nil
		case err != nil:
			s.Log.Warn("MeetingResponse: placing the meeting", "err", err)
			return result(meetingServerError, ""), nil
		}
	}
	status, calID := meetingOK, ""
	if p.item.ID != 0 {
		calID, status, err = h.respond(ctx, s, p, resp, instance)
		if err != nil {
			s.Log.Warn("MeetingResponse: updating the calendar", "err", err)
			return result(meetingServerError, ""), nil
		}
	}
	if status != meetingOK {
		return result(status, ""), nil
	}
	if p.coll.ID != 0 && (p.changed || p.item.ID != 0) {
		coll := collServerID(p.coll.ID)
		s.OnDone(func() { h.publish(ctx, s.User.ID, coll) })
	}
	s.Log.Info("MeetingResponse", "response", resp, "calendar", calID)
	return result(meetingOK, calID), nil
}

// parseInstanceID reads a MeetingResponse InstanceId: a dateTime
// (MS-ASDTYPE 2.3, "2010-04-08T18:16:00.000Z"); the compact form is
// accepted too.
func parseInstanceID(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{"2006-01-02T15:04:05.000Z", "2006-01-02T15:04:05Z", "20060102T150405Z"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("InstanceId %q is not a date-time", s)
}

// requestCalendar reads the meeting request id of mail folder f: its
// iTIP REQUEST, or a status. A refused upstream login is an error (the
// whole command answers it).
func (h *Handler) requestCalendar(ctx context.Context, s *Session, f *folderView, id string) (*ical.Calendar, int, error) {
	fid, uid, ok := parseServerID(id)
	if !ok || fid != f.ID || f.name == "" {
		return nil, meetingInvalidRequest, nil
	}
	var m *email.Meeting
	err := h.deps.Mail.Fetch(ctx, s.Account, f.name, []uint32{uid}, func(_ MailMeta, body io.Reader) error {
		var err error
		m, err = email.ReadMeeting(body)
		return err
	})
	switch {
	case errors.Is(err, ErrMailFolderGone):
		return nil, meetingInvalidRequest, nil
	case errors.Is(err, ErrBadCredentials):
		return nil, meetingMailboxError, mailError(err)
	case err != nil:
		s.Log.Warn("MeetingResponse: fetching the request", "err", err)
		return nil, meetingMailboxError, nil
	case m == nil || m.Method != "REQUEST" || m.ICS == nil:
		return nil, meetingInvalidRequest, nil
	}
	cal, err := email.ParseCalendar(m.ICS)
	if err != nil {
		return nil, meetingInvalidRequest, nil
	}
	return cal, meetingOK, nil
}

// respond records the user's answer in the stored meeting p.item (the
// caller holds meetingLock) and returns its ServerId for CalendarId (""
// after a decline) and a status.
func (h *Handler) respond(ctx context.Context, s *Session, p placed, resp int, instance time.Time) (string, int, error) {
	cal, err := email.ParseCalendar(p.item.Data)
	if err != nil {
		return "", 0, err
	}
	master := email.MainEvent(cal)
	if master == nil {
		return "", meetingInvalidRequest, nil
	}
	addrs := h.userAddresses(ctx, s)
	if org := master.Props.Get(ical.PropOrganizer); org == nil || isAddress(addrs, org.Value) {
		// MS-ASCMD 2.2.3.177.9: status 2 for an appointment the user
		// organizes (or no meeting at all).
		return "", meetingInvalidRequest, nil
	}
	partstat := map[int]string{responseAccept: "ACCEPTED", responseTentative: "TENTATIVE", responseDecline: "DECLINED"}[resp]
	calID := itemServerID(collServerID(p.coll.ID), p.item.ID)
	now := h.deps.Now().UTC()
	if !instance.IsZero() {
		if master.Props.Get(ical.PropRecurrenceRule) == nil {
			return "", meetingNotRecurring, nil
		}
		start, date, err := email.EventTime(cal, master.Props.Get(ical.PropDateTimeStart))
		if err != nil {
			return "", 0, err
		}
		if date {
			// An all-day occurrence: the phone sends its local midnight
			// in UTC (MS-ASCAL 2.2.2.1); the nearest midnight is its day.
			d := instance.Add(12 * time.Hour)
			instance = time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC)
		}
		if !occurs(master, start, instance, date) {
			return "", meetingInvalidRequest, nil // no such occurrence
		}
		if resp == responseDecline {
			// The occurrence leaves the calendar, as a declined meeting.
			removeEvent(cal, nil, ridKeyOf(instance, date))
			ex := ical.NewProp(ical.PropExceptionDates)
			ex.Value = instance.Format("20060102T150405Z")
			if date {
				ex.Value = instance.Format("20060102")
				ex.Params.Set(ical.ParamValue, "DATE")
			}
			master.Props.Add(ex)
			calID = ""
		} else {
			ov := ensureOverride(cal, master, instance, date)
			setPartstat(ov, addrs, partstat, true)
			busy := "TENTATIVE"
			if resp == responseAccept {
				busy = []string{"FREE", "TENTATIVE", "BUSY", "OOF", "BUSY"}[email.IntendedBusyStatus(master, false)]
			}
			setProp(ov, propBusyStatus, busy)
		}
		data := email.EncodeCalendar(cal)
		idx, err := h.codec(store.ClassCalendar).Index(data)
		if err != nil {
			return "", 0, err
		}
		_, err = h.putEvent(ctx, p.coll.ID, p.item.ID, data, idx)
		return calID, meetingOK, err
	}
	if resp == responseDecline {
		if _, err := h.deps.Items.DeleteItem(ctx, p.coll.ID, p.item.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return "", 0, err
		}
		return "", meetingOK, nil
	}
	for _, ch := range cal.Children {
		if ch.Name == ical.CompEvent {
			setPartstat(ch, addrs, partstat, ch == master)
		}
	}
	st := easState{busy: busyTentative, resp: respTentative, status: meetingReceived, replyTime: now.Format("20060102T150405Z")}
	if resp == responseAccept {
		st.busy, st.resp = email.IntendedBusyStatus(master, false), respAccepted
	}
	if strings.EqualFold(propValue(master, ical.PropStatus), "CANCELLED") {
		st.status = meetingReceivedGone
	}
	data, idx, err := h.applyEAS(cal, st)
	if err != nil {
		return "", 0, err
	}
	_, err = h.putEvent(ctx, p.coll.ID, p.item.ID, data, idx)
	return calID, meetingOK, err
}

// ridKeyOf is ridKey of an occurrence's original start.
func ridKeyOf(t time.Time, date bool) string {
	if date {
		return t.Format("20060102")
	}
	return t.UTC().Format("20060102T150405Z")
}

// occurs reports whether the series of master has an occurrence starting
// at t. Without a readable rule (a TZID go-ical cannot load, say) any
// time is taken.
func occurs(master *ical.Component, start, t time.Time, date bool) bool {
	switch rule := strings.ToUpper(propValue(master, ical.PropRecurrenceRule)); {
	case strings.Contains(rule, "FREQ=DAILY"), strings.Contains(rule, "FREQ=WEEKLY"),
		strings.Contains(rule, "FREQ=MONTHLY"), strings.Contains(rule, "FREQ=YEARLY"):
	default:
		return true // sub-daily rules: not expanded (cost)
	}
	set, err := master.RecurrenceSet(time.UTC)
	if err != nil || set == nil {
		return true
	}
	// go-ical reads DTSTART in UTC here: shift to the real first start.
	first, err := master.Props.DateTime(ical.PropDateTimeStart, time.UTC)
	if err != nil {
		return true
	}
	shift := start.Sub(first)
	if date {
		shift = 0
	}
	for _, o := range set.Between(t.Add(-shift-time.Minute), t.Add(-shift+time.Minute), true) {
		if o.Add(shift).Equal(t) {
			return true
		}
	}
	return false
}

// meetingReply records an attendee's REPLY in the event the user
// organizes (RFC 5546 3.2.3): the PARTSTAT of each replying ATTENDEE, on
// the master or on the occurrence answered. A REPLY older than the one
// recorded for that attendee, or for an older SEQUENCE, is ignored. It
// returns the ServerId of the collection changed, "" when none was.
func (h *Handler) meetingReply(ctx context.Context, s *Session, cal *ical.Calendar) (string, error) {
	uid, evs := itipEvents(cal)
	if uid == "" {
		return "", nil
	}
	cs, err := h.collections(ctx, s)
	if err != nil {
		return "", err
	}
	var stored store.Item
	var coll store.Collection
	for _, c := range cs {
		if c.Class != store.ClassCalendar {
			continue
		}
		it, err := h.deps.Items.ItemByUID(ctx, c.ID, uid)
		if err == nil {
			stored, coll = it, c
			break
		}
		if !errors.Is(err, store.ErrNotFound) {
			return "", err
		}
	}
	if stored.ID == 0 {
		return "", nil
	}
	scal, err := email.ParseCalendar(stored.Data)
	if err != nil {
		return "", err
	}
	master := email.MainEvent(scal)
	if master == nil {
		return "", nil
	}
	addrs := h.userAddresses(ctx, s)
	if org := master.Props.Get(ical.PropOrganizer); org != nil && !isAddress(addrs, org.Value) {
		return "", nil // an attendee's copy: replies go to the organizer
	}
	changed := false
	for _, e := range evs {
		target := master
		if e.rid != "" {
			if target = eventByRID(scal, e.rid); target == nil {
				t, date, err := email.EventTime(cal, e.ev.Props.Get(ical.PropRecurrenceID))
				if err != nil || master.Props.Get(ical.PropRecurrenceRule) == nil {
					continue
				}
				target = ensureOverride(scal, master, t, date)
			}
		}
		if cur, _ := strconv.Atoi(propValue(target, ical.PropSequence)); e.seq < cur {
			continue // a reply to an older version of the meeting
		}
		for _, a := range e.ev.Props.Values(ical.PropAttendee) {
			if recordReply(target, a, e.stamp) {
				changed = true
			}
		}
	}
	if !changed {
		return "", nil
	}
	data := email.EncodeCalendar(scal)
	idx, err := h.codec(store.ClassCalendar).Index(data)
	if err != nil {
		return "", err
	}
	if _, err := h.putEvent(ctx, coll.ID, stored.ID, data, idx); err != nil {
		return "", err
	}
	return collServerID(coll.ID), nil
}

// recordReply sets the PARTSTAT a replying attendee gave on ev's
// ATTENDEE of that address (added when absent), unless the one recorded
// came from a REPLY at least as new; it reports whether ev changed.
func recordReply(ev *ical.Component, reply ical.Prop, stamp time.Time) bool {
	ps := strings.ToUpper(reply.Params.Get(ical.ParamParticipationStatus))
	addr := strings.ToLower(email.Address(reply.Value))
	if ps == "" || addr == "" {
		return false
	}
	mark := ""
	if !stamp.IsZero() {
		mark = stamp.UTC().Format("20060102T150405Z")
	}
	atts := ev.Props[ical.PropAttendee]
	for i := range atts {
		if strings.ToLower(email.Address(atts[i].Value)) != addr {
			continue
		}
		prev := atts[i].Params.Get(paramReplyStamp)
		if prev != "" && (mark == "" || mark <= prev) {
			return false
		}
		if strings.EqualFold(atts[i].Params.Get(ical.ParamParticipationStatus), ps) && prev == mark {
			return false
		}
		atts[i].Params.Set(ical.ParamParticipationStatus, ps)
		if mark != "" {
			atts[i].Params.Set(paramReplyStamp, mark)
		}
		return true
	}
	p := cloneProp(reply)
	p.Params.Set(ical.ParamParticipationStatus, ps)
	if mark != "" {
		p.Params.Set(paramReplyStamp, mark)
	}
	ev.Props.Add(&p)
	return true
}
