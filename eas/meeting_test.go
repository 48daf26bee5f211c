package eas

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/easd/easd/eas/calendar"
	"github.com/easd/easd/eas/email"
	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/internal/testenv"
	"github.com/easd/easd/store"
	"github.com/easd/easd/store/sqlite"
	"github.com/easd/easd/wbxml"
	"github.com/google/go-cmp/cmp"
)

// meetingHarness is a handler with the calendar class over SQLite and
// sessions of alice and bob, driving meeting.go without a mailbox.
type meetingHarness struct {
	t          *testing.T
	st         *sqlite.Store
	h          *Handler
	alice, bob *Session
	now        time.Time
}

func newMeetingHarness(t *testing.T) *meetingHarness {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, testenv.SQLitePath(t), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mh := &meetingHarness{t: t, st: st, now: time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mh.h = NewHandler(Config{Domain: "example.test"}, Deps{
		Store: st, Auth: LocalAuth{Users: st}, Logger: log, Now: func() time.Time { return mh.now },
		Items: st, Codecs: map[string]item.Codec{store.ClassCalendar: calendar.Codec{}},
	})
	session := func(name string) *Session {
		u, err := st.CreateUser(ctx, name, "x")
		if err != nil {
			t.Fatal(err)
		}
		return &Session{User: u, Log: log, Req: &Request{Version: "14.1"}}
	}
	mh.alice, mh.bob = session("alice"), session("bob")
	return mh
}

// event returns the user's stored meeting uid rendered for 14.1, nil when
// there is none, with its ServerId.
func (mh *meetingHarness) event(s *Session, uid string) (*wbxml.Node, string, store.Item) {
	mh.t.Helper()
	ctx := context.Background()
	c, err := mh.h.defaultCalendar(ctx, s)
	if err != nil {
		mh.t.Fatal(err)
	}
	it, err := mh.st.ItemByUID(ctx, c.ID, uid)
	if err != nil {
		return nil, "", store.Item{}
	}
	n, err := calendar.Codec{}.Render(it.Data, item.Options{Version: "14.1"})
	if err != nil {
		mh.t.Fatal(err)
	}
	return n, itemServerID(collServerID(c.ID), it.ID), it
}

// state summarises a rendered meeting: BusyStatus, MeetingStatus,
// ResponseType and each attendee's status.
func state(n *wbxml.Node) string {
	if n == nil {
		return "none"
	}
	var b strings.Builder
	b.WriteString("busy=" + n.ChildText(wbxml.CalendarBusyStatus) + " meeting=" + n.ChildText(wbxml.CalendarMeetingStatus) +
		" response=" + n.ChildText(wbxml.CalendarResponseType))
	for a := range n.Child(wbxml.CalendarAttendees).Each(wbxml.CalendarAttendee) {
		b.WriteString(" " + strings.Split(a.ChildText(wbxml.CalendarEmail), "@")[0] + "=" + a.ChildText(wbxml.CalendarAttendeeStatus))
	}
	return b.String()
}

// invite is an iTIP message from alice to bob and carol.
func invite(method string, seq int, stamp string, extra ...string) []byte {
	lines := []string{"BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", "METHOD:" + method,
		"BEGIN:VEVENT", "UID:m1@example.test", "SEQUENCE:" + strconv.Itoa(seq), "DTSTAMP:" + stamp,
		"DTSTART:20260310T090000Z", "DTEND:20260310T100000Z", "SUMMARY:Planning",
		"ORGANIZER;CN=Alice:mailto:alice@example.test",
		"ATTENDEE;CN=Bob;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bob@example.test",
		"ATTENDEE;CN=Carol;PARTSTAT=ACCEPTED:mailto:carol@example.test"}
	lines = append(lines, extra...)
	lines = append(lines, "END:VEVENT", "END:VCALENDAR")
	return []byte(strings.Join(lines, "\r\n") + "\r\n")
}

func (mh *meetingHarness) mail(s *Session, method string, ics []byte) {
	mh.h.meetingMail(context.Background(), s, &email.Meeting{Method: method, ICS: ics})
}

// respond sends a MeetingResponse for a meeting in the calendar.
func (mh *meetingHarness) respond(s *Session, serverID string, resp int, instance string) (status, calID string) {
	mh.t.Helper()
	coll, _, _ := strings.Cut(serverID, ":")
	req := wbxml.E(wbxml.MeetingResponseRequest, wbxml.T(wbxml.MeetingResponseUserResponse, strconv.Itoa(resp)),
		wbxml.T(wbxml.MeetingResponseCollectionId, coll), wbxml.T(wbxml.MeetingResponseRequestId, serverID))
	if instance != "" {
		req.Append(wbxml.T(wbxml.MeetingResponseInstanceId, instance))
	}
	out, err := mh.h.meetingResponse(context.Background(), s, wbxml.E(wbxml.MeetingResponseMeetingResponse, req))
	if err != nil {
		mh.t.Fatal(err)
	}
	r := out.Child(wbxml.MeetingResponseResult)
	if r.ChildText(wbxml.MeetingResponseRequestId) != serverID {
		mh.t.Errorf("RequestId %q, want %q", r.ChildText(wbxml.MeetingResponseRequestId), serverID)
	}
	return r.ChildText(wbxml.MeetingResponseStatus), r.ChildText(wbxml.MeetingResponseCalendarId)
}

func TestMeetingRequestOnCalendar(t *testing.T) {
	mh := newMeetingHarness(t)
	mh.mail(mh.bob, "REQUEST", invite("REQUEST", 0, "20260301T090000Z"))
	n, id, it := mh.event(mh.bob, "m1@example.test")
	if got, want := state(n), "busy=1 meeting=3 response=5 bob=5 carol=3"; got != want {
		t.Fatalf("placed: %s, want %s", got, want)
	}
	// The same message again (another device, a retry): nothing changes.
	mh.mail(mh.bob, "REQUEST", invite("REQUEST", 0, "20260301T090000Z"))
	if _, _, again := mh.event(mh.bob, "m1@example.test"); again.ModSeq != it.ModSeq {
		t.Errorf("the same request wrote the event again")
	}
	// The organizer's own copy is not placed on her calendar.
	mh.mail(mh.alice, "REQUEST", invite("REQUEST", 0, "20260301T090000Z"))
	if n, _, _ := mh.event(mh.alice, "m1@example.test"); n != nil {
		t.Errorf("organizer's request placed: %s", state(n))
	}

	// Accept.
	mh.now = mh.now.Add(time.Hour)
	if st, cal := mh.respond(mh.bob, id, responseAccept, ""); st != "1" || cal != id {
		t.Fatalf("accept: status %s CalendarId %q, want 1 %q", st, cal, id)
	}
	n, _, _ = mh.event(mh.bob, "m1@example.test")
	if got, want := state(n), "busy=2 meeting=3 response=3 bob=3 carol=3"; got != want {
		t.Errorf("accepted: %s, want %s", got, want)
	}
	if got := n.ChildText(wbxml.CalendarAppointmentReplyTime); got != "20260302T130000Z" {
		t.Errorf("AppointmentReplyTime %q", got)
	}
	// An update that keeps the SEQUENCE keeps the answer; an older
	// message is ignored.
	mh.mail(mh.bob, "REQUEST", invite("REQUEST", 0, "20260301T100000Z", "LOCATION:Room 2"))
	mh.mail(mh.bob, "REQUEST", invite("REQUEST", 0, "20260301T093000Z", "LOCATION:Room 9"))
	n, _, _ = mh.event(mh.bob, "m1@example.test")
	if got, want := state(n)+" "+n.ChildText(wbxml.CalendarLocation), "busy=2 meeting=3 response=3 bob=3 carol=3 Room 2"; got != want {
		t.Errorf("minor update: %s, want %s", got, want)
	}
	// A new SEQUENCE (the time moved) asks again: tentative.
	mh.mail(mh.bob, "REQUEST", invite("REQUEST", 1, "20260301T110000Z", "LOCATION:Room 2"))
	n, _, _ = mh.event(mh.bob, "m1@example.test")
	if got, want := state(n), "busy=1 meeting=3 response=5 bob=5 carol=3"; got != want {
		t.Errorf("major update: %s, want %s", got, want)
	}
	// Cancelled: kept, shown cancelled (MeetingStatus 7).
	mh.mail(mh.bob, "CANCEL", invite("CANCEL", 2, "20260301T120000Z", "STATUS:CANCELLED"))
	n, _, _ = mh.event(mh.bob, "m1@example.test")
	if got, want := state(n), "busy=0 meeting=7 response=5 bob=5 carol=3"; got != want {
		t.Errorf("cancelled: %s, want %s", got, want)
	}
}

func TestMeetingDecline(t *testing.T) {
	mh := newMeetingHarness(t)
	mh.mail(mh.bob, "REQUEST", invite("REQUEST", 0, "20260301T090000Z"))
	_, id, _ := mh.event(mh.bob, "m1@example.test")
	if st, cal := mh.respond(mh.bob, id, responseDecline, ""); st != "1" || cal != "" {
		t.Fatalf("decline: status %s CalendarId %q, want 1 and none", st, cal)
	}
	if n, _, _ := mh.event(mh.bob, "m1@example.test"); n != nil {
		t.Fatalf("declined meeting still on the calendar: %s", state(n))
	}
	// The request converted again does not bring it back; a new one does.
	mh.mail(mh.bob, "REQUEST", invite("REQUEST", 0, "20260301T090000Z"))
	if n, _, _ := mh.event(mh.bob, "m1@example.test"); n != nil {
		t.Errorf("declined meeting placed again: %s", state(n))
	}
	mh.mail(mh.bob, "REQUEST", invite("REQUEST", 1, "20260302T090000Z"))
	if n, _, _ := mh.event(mh.bob, "m1@example.test"); state(n) != "busy=1 meeting=3 response=5 bob=5 carol=3" {
		t.Errorf("new request after a decline: %s", state(n))
	}
	// Status 2: an unknown item, a bad response.
	for _, c := range []struct {
		id   string
		resp int
	}{{id + "0", responseAccept}, {id, 7}} {
		if st, _ := mh.respond(mh.bob, c.id, c.resp, ""); st != "2" {
			t.Errorf("respond(%s, %d): status %s, want 2", c.id, c.resp, st)
		}
	}
}

func TestMeetingOccurrence(t *testing.T) {
	mh := newMeetingHarness(t)
	mh.mail(mh.bob, "REQUEST", invite("REQUEST", 0, "20260301T090000Z", "RRULE:FREQ=WEEKLY;COUNT=4"))
	_, id, _ := mh.event(mh.bob, "m1@example.test")
	if st, cal := mh.respond(mh.bob, id, responseTentative, "2026-03-17T09:00:00.000Z"); st != "1" || cal != id {
		t.Fatalf("occurrence: status %s CalendarId %q", st, cal)
	}
	_, _, it := mh.event(mh.bob, "m1@example.test")
	text := strings.ReplaceAll(string(it.Data), "\r\n ", "")
	if !strings.Contains(text, "RECURRENCE-ID:20260317T090000Z") || !strings.Contains(text, "PARTSTAT=TENTATIVE") {
		t.Errorf("no override for the occurrence:\n%s", text)
	}
	if st, cal := mh.respond(mh.bob, id, responseDecline, "2026-03-24T09:00:00.000Z"); st != "1" || cal != "" {
		t.Errorf("declined occurrence: status %s CalendarId %q", st, cal)
	}
	n, _, it := mh.event(mh.bob, "m1@example.test")
	if !strings.Contains(string(it.Data), "EXDATE:20260324T090000Z") {
		t.Errorf("declined occurrence not excluded:\n%s", it.Data)
	}
	deleted := map[string]bool{}
	for x := range n.Child(wbxml.CalendarExceptions).Each(wbxml.CalendarException) {
		deleted[x.ChildText(wbxml.CalendarExceptionStartTime)] = x.ChildText(wbxml.CalendarDeleted) == "1"
	}
	if diff := cmp.Diff(map[string]bool{"20260317T090000Z": false, "20260324T090000Z": true}, deleted); diff != "" {
		t.Errorf("exceptions (deleted) (-want +got):\n%s", diff)
	}
	// An update keeping the SEQUENCE keeps the occurrences answered alone;
	// an occurrence updated alone leaves the series' answer as it is.
	mh.respond(mh.bob, id, responseAccept, "")
	mh.mail(mh.bob, "REQUEST", invite("REQUEST", 0, "20260301T100000Z", "RRULE:FREQ=WEEKLY;COUNT=4", "LOCATION:Room 2"))
	_, _, it = mh.event(mh.bob, "m1@example.test")
	if text := strings.ReplaceAll(string(it.Data), "\r\n ", ""); !strings.Contains(text, "EXDATE:20260324T090000Z") ||
		!strings.Contains(text, "RECURRENCE-ID:20260317T090000Z") || !strings.Contains(text, "LOCATION:Room 2") {
		t.Errorf("minor update lost the occurrences:\n%s", text)
	}
	moved := strings.Replace(string(invite("REQUEST", 1, "20260301T110000Z", "RECURRENCE-ID:20260331T090000Z")), "DTSTART:20260310T090000Z", "DTSTART:20260331T100000Z", 1)
	mh.mail(mh.bob, "REQUEST", []byte(moved))
	n, _, it = mh.event(mh.bob, "m1@example.test")
	if got := n.ChildText(wbxml.CalendarResponseType) + n.ChildText(wbxml.CalendarBusyStatus); got != "32" {
		t.Errorf("series after an occurrence update: ResponseType+BusyStatus %s, want 32", got)
	}
	if !strings.Contains(string(it.Data), "RECURRENCE-ID:20260331T090000Z") {
		t.Errorf("occurrence update not stored:\n%s", it.Data)
	}
	for inst, want := range map[string]string{
		"2026-03-18T09:00:00.000Z": "2",   // no such occurrence
		"yesterday":                "104", // not a date-time
	} {
		if st, _ := mh.respond(mh.bob, id, responseAccept, inst); st != want {
			t.Errorf("InstanceId %s: status %s, want %s", inst, st, want)
		}
	}
	// 12.1 has no InstanceId; a single meeting has no occurrences.
	mh.bob.Req.Version = "12.1"
	if st, _ := mh.respond(mh.bob, id, responseAccept, "2026-03-17T09:00:00.000Z"); st != "2" {
		t.Errorf("12.1 InstanceId: status %s, want 2", st)
	}
	mh.bob.Req.Version = "14.1"
	mh.mail(mh.bob, "REQUEST", []byte(strings.Replace(string(invite("REQUEST", 0, "20260301T090000Z")), "m1@", "m2@", 1)))
	_, id2, _ := mh.event(mh.bob, "m2@example.test")
	if st, _ := mh.respond(mh.bob, id2, responseAccept, "2026-03-10T09:00:00.000Z"); st != "146" {
		t.Errorf("occurrence of a single meeting: status %s, want 146", st)
	}
	// An all-day series: the phone sends the occurrence's local midnight.
	day := strings.NewReplacer("m1@", "m3@", "DTSTART:20260310T090000Z", "DTSTART;VALUE=DATE:20260310",
		"DTEND:20260310T100000Z", "DTEND;VALUE=DATE:20260311").Replace(string(invite("REQUEST", 0, "20260301T090000Z", "RRULE:FREQ=WEEKLY;COUNT=4")))
	mh.mail(mh.bob, "REQUEST", []byte(day))
	_, id3, _ := mh.event(mh.bob, "m3@example.test")
	if st, _ := mh.respond(mh.bob, id3, responseTentative, "2026-03-16T23:00:00.000Z"); st != "1" {
		t.Errorf("all-day occurrence: status %s", st)
	}
	if _, _, it := mh.event(mh.bob, "m3@example.test"); !strings.Contains(string(it.Data), "RECURRENCE-ID;VALUE=DATE:20260317") {
		t.Errorf("all-day occurrence override:\n%s", it.Data)
	}
}

func TestMeetingReplyToOrganizer(t *testing.T) {
	mh := newMeetingHarness(t)
	ctx := context.Background()
	// Alice's own event, as her phone created it.
	c, err := mh.h.defaultCalendar(ctx, mh.alice)
	if err != nil {
		t.Fatal(err)
	}
	ev := invite("PUBLISH", 0, "20260301T090000Z")
	ev = bytes.Replace(ev, []byte("METHOD:PUBLISH\r\n"), nil, 1)
	idx, err := calendar.Codec{}.Index(ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mh.h.putEvent(ctx, c.ID, 0, ev, idx); err != nil {
		t.Fatal(err)
	}
	reply := func(partstat, stamp string) []byte {
		return []byte(strings.Join([]string{"BEGIN:VCALENDAR", "METHOD:REPLY", "BEGIN:VEVENT", "UID:m1@example.test",
			"SEQUENCE:0", "DTSTAMP:" + stamp, "DTSTART:20260310T090000Z", "ORGANIZER:mailto:alice@example.test",
			"ATTENDEE;PARTSTAT=" + partstat + ":mailto:BOB@example.test", "END:VEVENT", "END:VCALENDAR"}, "\r\n"))
	}
	// Sync shows the newest mail first: the later answer arrives first.
	mh.mail(mh.alice, "REPLY", reply("DECLINED", "20260302T100000Z"))
	mh.mail(mh.alice, "REPLY", reply("ACCEPTED", "20260302T090000Z"))
	n, _, _ := mh.event(mh.alice, "m1@example.test")
	if got, want := state(n), "busy=2 meeting=1 response= bob=4 carol=3"; got != want {
		t.Errorf("after the replies: %s, want %s", got, want)
	}
	mh.mail(mh.alice, "REPLY", reply("ACCEPTED", "20260302T110000Z"))
	n, _, _ = mh.event(mh.alice, "m1@example.test")
	if got, want := state(n), "busy=2 meeting=1 response= bob=3 carol=3"; got != want {
		t.Errorf("after a newer reply: %s, want %s", got, want)
	}
	// A reply reaching an attendee's copy changes nothing there.
	mh.mail(mh.bob, "REQUEST", invite("REQUEST", 0, "20260301T090000Z"))
	mh.mail(mh.bob, "REPLY", bytes.Replace(reply("DECLINED", "20260302T120000Z"), []byte("BOB@"), []byte("carol@"), 1))
	if n, _, _ := mh.event(mh.bob, "m1@example.test"); state(n) != "busy=1 meeting=3 response=5 bob=5 carol=3" {
		t.Errorf("attendee's copy after a reply: %s", state(n))
	}
	// Responding to one's own meeting: status 2.
	_, id, _ := mh.event(mh.alice, "m1@example.test")
	if st, _ := mh.respond(mh.alice, id, responseAccept, ""); st != "2" {
		t.Errorf("organizer responding: status %s, want 2", st)
	}
}
