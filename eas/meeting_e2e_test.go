package eas_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/easd/easd/eas"
	"github.com/easd/easd/eas/calendar"
	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/eas/tz"
	"github.com/easd/easd/imapbridge"
	"github.com/easd/easd/store"
	"github.com/easd/easd/wbxml"
)

// newMeetingEnv is the mail environment with a real Postfix and the
// calendar class in the SQLite store.
func newMeetingEnv(t *testing.T) *mailEnv {
	t.Helper()
	e := startMailEnvWith(t, true, eas.Config{Domain: "example.test"}, imapbridge.BackendOptions{})
	codecs := map[string]item.Codec{}
	for class, c := range eas.DefaultCodecs() {
		codecs[class] = c
	}
	if codecs[store.ClassCalendar] == nil {
		codecs[store.ClassCalendar] = calendar.Codec{}
	}
	e.deps.Items, e.deps.Codecs = e.st, codecs
	e.serve()
	return e
}

const berlinTZ = "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\n" +
	"BEGIN:DAYLIGHT\r\nDTSTART:19810329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nTZNAME:CEST\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\n" +
	"BEGIN:STANDARD\r\nDTSTART:19961027T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nTZNAME:CET\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n" +
	"END:VTIMEZONE\r\n"

// itipMail is an iMIP message (RFC 6047) as iOS sends it: a text part and
// the iCalendar object, base64, with the method parameter.
func itipMail(from, to, subject, method, event string) []byte {
	cal := "BEGIN:VCALENDAR\r\nMETHOD:" + method + "\r\nPRODID:-//Apple Inc.//iPhone OS 17.4//EN\r\nVERSION:2.0\r\n" +
		berlinTZ + "BEGIN:VEVENT\r\n" + event + "END:VEVENT\r\nEND:VCALENDAR\r\n"
	return []byte("From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/alternative; boundary=\"Apple-Mail=_1\"\r\n\r\n" +
		"--Apple-Mail=_1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + subject + "\r\n" +
		"--Apple-Mail=_1\r\nContent-Type: text/calendar; charset=utf-8; method=" + method + "\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString([]byte(cal)) + "\r\n--Apple-Mail=_1--\r\n")
}

// meetingEvent is the VEVENT of the weekly meeting alice organizes.
func meetingEvent(uid string, seq, extra string) string {
	return "UID:" + uid + "\r\nDTSTAMP:20260301T090000Z\r\nSEQUENCE:" + seq + "\r\n" +
		"DTSTART;TZID=Europe/Berlin:20260310T100000\r\nDTEND;TZID=Europe/Berlin:20260310T110000\r\n" +
		"RRULE:FREQ=WEEKLY;COUNT=4;BYDAY=TU\r\nSUMMARY:Weekly sync\r\nLOCATION:Room 1\r\n" +
		"ORGANIZER;CN=Alice:mailto:alice@example.test\r\n" +
		"ATTENDEE;CN=Bob;CUTYPE=INDIVIDUAL;PARTSTAT=NEEDS-ACTION;ROLE=REQ-PARTICIPANT;RSVP=TRUE:mailto:bob@example.test\r\n" +
		"ATTENDEE;CN=Alice;PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:alice@example.test\r\n" +
		extra + "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nDESCRIPTION:Reminder\r\nEND:VALARM\r\n"
}

// mailItem syncs a user's Inbox until the message with the subject is
// there (delivery through Postfix takes a moment) and returns it.
func mailItem(t *testing.T, e *mailEnv, user string, phone *client.Client, inbox, subject string, opts client.SyncOptions) client.SyncItem {
	t.Helper()
	e.folderMessages(user, "INBOX", subject)
	items, _ := syncAll(t, phone, inbox, opts)
	for _, it := range items {
		if appText(it, wbxml.EmailSubject) == subject {
			return it
		}
	}
	t.Fatalf("%s's phone has no %q", user, subject)
	return client.SyncItem{}
}

// attendeeStatus is the AttendeeStatus of an address in a calendar item.
func attendeeStatus(app *wbxml.Node, addr string) string {
	for a := range app.Child(wbxml.CalendarAttendees).Each(wbxml.CalendarAttendee) {
		if strings.EqualFold(a.ChildText(wbxml.CalendarEmail), addr) {
			return a.ChildText(wbxml.CalendarAttendeeStatus)
		}
	}
	return "absent"
}

// calendarChange syncs a calendar from key and returns its one Change.
func calendarChange(t *testing.T, phone *client.Client, coll, key string) (client.SyncItem, string) {
	t.Helper()
	r := syncOnce(t, phone, client.SyncCollection{SyncKey: key, CollectionID: coll, GetChanges: new(true)})
	if len(r.Changes) != 1 || len(r.Adds)+len(r.Deletes) != 0 {
		t.Fatalf("calendar sync: %d adds, %d changes, %d deletes; want one change", len(r.Adds), len(r.Changes), len(r.Deletes))
	}
	return r.Changes[0], r.SyncKey
}

func TestMeetingE2E(t *testing.T) {
	e := newMeetingEnv(t)
	ctx := context.Background()
	const uid = "6D1B4F6C-3A0E-4C52-9B7A-0F3E2D1C4B5A"

	// Alice's iPhone creates the meeting on her calendar and mails the
	// invitation.
	alice := e.phone("alice", "IPHONEALICE", "iPhone", "14.1")
	afs, _ := folders(t, alice)
	acal := afs["Calendar"].ServerID
	_, akey := syncAll(t, alice, acal, client.SyncOptions{})
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	add := wbxml.E(wbxml.AirSyncApplicationData,
		wbxml.T(wbxml.CalendarTimezone, tz.FromLocation(berlin, 2026).Encode()),
		wbxml.T(wbxml.CalendarAllDayEvent, "0"), wbxml.T(wbxml.CalendarBusyStatus, "2"),
		wbxml.T(wbxml.CalendarOrganizerName, "Alice"), wbxml.T(wbxml.CalendarOrganizerEmail, "alice@example.test"),
		wbxml.T(wbxml.CalendarDtStamp, "20260301T090000Z"), wbxml.T(wbxml.CalendarEndTime, "20260310T100000Z"),
		wbxml.T(wbxml.CalendarLocation, "Room 1"), wbxml.T(wbxml.CalendarSubject, "Weekly sync"),
		wbxml.T(wbxml.CalendarStartTime, "20260310T090000Z"), wbxml.T(wbxml.CalendarUID, uid),
		wbxml.T(wbxml.CalendarMeetingStatus, "1"),
		wbxml.E(wbxml.CalendarAttendees, wbxml.E(wbxml.CalendarAttendee, wbxml.T(wbxml.CalendarEmail, "bob@example.test"),
			wbxml.T(wbxml.CalendarName, "Bob"), wbxml.T(wbxml.CalendarAttendeeStatus, "5"), wbxml.T(wbxml.CalendarAttendeeType, "1"))),
		wbxml.E(wbxml.CalendarRecurrence, wbxml.T(wbxml.CalendarType, "1"), wbxml.T(wbxml.CalendarOccurrences, "4"),
			wbxml.T(wbxml.CalendarInterval, "1"), wbxml.T(wbxml.CalendarDayOfWeek, "4")),
		wbxml.T(wbxml.CalendarResponseRequested, "1"))
	r := syncOnce(t, alice, client.SyncCollection{SyncKey: akey, CollectionID: acal, Adds: []client.SyncAdd{{ClientID: "ev1", ApplicationData: add}}})
	if len(r.Responses) != 1 || r.Responses[0].Status != 1 {
		t.Fatalf("alice's Add: %+v", r.Responses)
	}
	akey = r.SyncKey
	invitation := itipMail("Alice <alice@example.test>", "Bob <bob@example.test>", "Weekly sync", "REQUEST", meetingEvent(uid, "0", ""))
	if err := alice.SendMail(ctx, invitation, client.ComposeOptions{ClientID: "inv1", SaveInSent: true}); err != nil {
		t.Fatal(err)
	}

	// Bob's phone gets the meeting request.
	bob := e.phone("bob", "IPHONEBOB", "iPhone", "14.1")
	bfs, _ := folders(t, bob)
	binbox, bcal := bfs["Inbox"].ServerID, bfs["Calendar"].ServerID
	msg := mailItem(t, e, "bob", bob, binbox, "Weekly sync", client.SyncOptions{})
	if got := appText(msg, wbxml.EmailMessageClass); got != "IPM.Schedule.Meeting.Request" {
		t.Errorf("MessageClass %q", got)
	}
	mr := msg.ApplicationData.Child(wbxml.EmailMeetingRequest)
	if mr == nil {
		t.Fatalf("no MeetingRequest: %v", msg.ApplicationData)
	}
	for tag, want := range map[wbxml.Tag]string{
		wbxml.EmailStartTime: "2026-03-10T09:00:00.000Z", wbxml.EmailEndTime: "2026-03-10T10:00:00.000Z",
		wbxml.EmailDtStamp: "2026-03-01T09:00:00.000Z", wbxml.EmailAllDayEvent: "0",
		wbxml.EmailOrganizer: `"Alice" <alice@example.test>`, wbxml.EmailLocation: "Room 1",
		wbxml.EmailInstanceType: "1", wbxml.EmailResponseRequested: "1", wbxml.EmailReminder: "900",
		wbxml.EmailBusyStatus: "2", wbxml.Email2MeetingMessageType: "1",
	} {
		if got := mr.ChildText(tag); got != want {
			t.Errorf("MeetingRequest %v = %q, want %q", tag, got, want)
		}
	}
	if rec := mr.Path(wbxml.EmailRecurrences, wbxml.EmailRecurrence); rec.ChildText(wbxml.EmailType) != "1" ||
		rec.ChildText(wbxml.EmailOccurrences) != "4" || rec.ChildText(wbxml.EmailDayOfWeek) != "4" {
		t.Errorf("Recurrence %v", rec)
	}
	if z, err := tz.Parse(mr.ChildText(wbxml.EmailTimeZone)); err != nil || z.Bias != -60 || !z.HasDST() {
		t.Errorf("TimeZone %v, %v", z, err)
	}
	goid, _ := base64.StdEncoding.DecodeString(mr.ChildText(wbxml.EmailGlobalObjId))
	if len(goid) < 53 || string(goid[40:48]) != "vCal-Uid" || string(goid[52:]) != uid+"\x00" {
		t.Errorf("GlobalObjId % x", goid)
	}

	// ... and the meeting is on his calendar, tentative, not answered.
	events, bkey := syncAll(t, bob, bcal, client.SyncOptions{})
	if len(events) != 1 {
		t.Fatalf("bob's calendar has %d events", len(events))
	}
	var calID string
	for id, ev := range events {
		calID = id
		app := ev.ApplicationData
		if appText(ev, wbxml.CalendarUID) != uid || appText(ev, wbxml.CalendarBusyStatus) != "1" ||
			appText(ev, wbxml.CalendarResponseType) != "5" || appText(ev, wbxml.CalendarMeetingStatus) != "3" ||
			attendeeStatus(app, "bob@example.test") != "5" {
			t.Errorf("bob's event: %v", app)
		}
	}

	// Bob accepts: the calendar item's ServerId comes back.
	res, err := bob.MeetingResponse(ctx, []client.MeetingReply{{Response: client.MeetingAccept, CollectionID: binbox, RequestID: msg.ServerID}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Status != 1 || res[0].CalendarID != calID || res[0].RequestID != msg.ServerID {
		t.Fatalf("MeetingResponse %+v, want status 1 and CalendarId %s", res, calID)
	}
	ch, _ := calendarChange(t, bob, bcal, bkey)
	if ch.ServerID != calID || appText(ch, wbxml.CalendarBusyStatus) != "2" || appText(ch, wbxml.CalendarResponseType) != "3" ||
		attendeeStatus(ch.ApplicationData, "bob@example.test") != "3" {
		t.Errorf("bob's event after accepting: %v", ch.ApplicationData)
	}
	// Another device of bob converting the request again changes nothing.
	bob2 := e.phone("bob", "ANDROIDBOB", "Android", "14.1")
	b2fs, _ := folders(t, bob2)
	mailItem(t, e, "bob", bob2, b2fs["Inbox"].ServerID, "Weekly sync", client.SyncOptions{})
	for _, ev := range mustSync(t, bob2, b2fs["Calendar"].ServerID) {
		if appText(ev, wbxml.CalendarResponseType) != "3" {
			t.Errorf("bob's second device sees %v", ev.ApplicationData)
		}
	}

	// Bob's phone mails the reply itself (14.1).
	reply := itipMail("Bob <bob@example.test>", "Alice <alice@example.test>", "Accepted: Weekly sync", "REPLY",
		"UID:"+uid+"\r\nDTSTAMP:20260302T080000Z\r\nSEQUENCE:0\r\nDTSTART;TZID=Europe/Berlin:20260310T100000\r\n"+
			"SUMMARY:Weekly sync\r\nORGANIZER;CN=Alice:mailto:alice@example.test\r\n"+
			"ATTENDEE;CN=Bob;PARTSTAT=ACCEPTED:mailto:bob@example.test\r\n")
	if err := bob.SendMail(ctx, reply, client.ComposeOptions{ClientID: "rep1"}); err != nil {
		t.Fatal(err)
	}

	// Alice's phone gets the answer, and her event shows it.
	ainbox := afs["Inbox"].ServerID
	ans := mailItem(t, e, "alice", alice, ainbox, "Accepted: Weekly sync", client.SyncOptions{})
	if got := appText(ans, wbxml.EmailMessageClass); got != "IPM.Schedule.Meeting.Resp.Pos" || ans.ApplicationData.Child(wbxml.EmailMeetingRequest) != nil {
		t.Errorf("reply: MessageClass %q, MeetingRequest %v", got, ans.ApplicationData.Child(wbxml.EmailMeetingRequest))
	}
	ach, _ := calendarChange(t, alice, acal, akey)
	if got := attendeeStatus(ach.ApplicationData, "bob@example.test"); got != "3" {
		t.Errorf("alice's event: bob's AttendeeStatus %s, want 3 (accepted)", got)
	}
}

// mustSync is syncAll's items as a list.
func mustSync(t *testing.T, phone *client.Client, coll string) []client.SyncItem {
	t.Helper()
	items, _ := syncAll(t, phone, coll, client.SyncOptions{})
	var out []client.SyncItem
	for _, it := range items {
		out = append(out, it)
	}
	return out
}

// TestMeetingCancelDecline121E2E: a 12.1 phone sees a request and its
// cancellation, and declines another meeting, which leaves its calendar.
func TestMeetingCancelDecline121E2E(t *testing.T) {
	e := newMeetingEnv(t)
	ctx := context.Background()
	alice := e.phone("alice", "IPHONEALICE", "iPhone", "14.1")
	bob := e.phone("bob", "OLDBOB", "Android", "12.1")
	bfs, _ := folders(t, bob)
	binbox, bcal := bfs["Inbox"].ServerID, bfs["Calendar"].ServerID
	mailOpts := client.SyncOptions{Class: "Email", FilterType: "0"}
	calOpts := client.SyncOptions{Class: "Calendar"}

	send := func(subject, method, event string) {
		t.Helper()
		if err := alice.SendMail(ctx, itipMail("Alice <alice@example.test>", "bob@example.test", subject, method, event), client.ComposeOptions{ClientID: subject}); err != nil {
			t.Fatal(err)
		}
	}
	send("Review", "REQUEST", meetingEvent("review@example.test", "0", ""))
	msg := mailItem(t, e, "bob", bob, binbox, "Review", mailOpts)
	mr := msg.ApplicationData.Child(wbxml.EmailMeetingRequest)
	if mr == nil || mr.ChildText(wbxml.EmailGlobalObjId) == "" || mr.Child(wbxml.Email2MeetingMessageType) != nil ||
		mr.Child(wbxml.EmailDisallowNewTimeProposal) != nil {
		t.Errorf("12.1 MeetingRequest: %v", mr)
	}
	items, ckey := syncAll(t, bob, bcal, calOpts)
	if len(items) != 1 {
		t.Fatalf("bob's calendar has %d events", len(items))
	}
	for _, ev := range items {
		if appText(ev, wbxml.CalendarBusyStatus) != "1" || appText(ev, wbxml.CalendarMeetingStatus) != "3" || ev.ApplicationData.Child(wbxml.CalendarResponseType) != nil {
			t.Errorf("12.1 tentative event: %v", ev.ApplicationData)
		}
	}

	// The cancellation: the class says so, and the event stays, cancelled
	// (MeetingStatus 7), as Exchange keeps it until the user removes it.
	send("Canceled: Review", "CANCEL", meetingEvent("review@example.test", "1", "STATUS:CANCELLED\r\n"))
	cancel := mailItem(t, e, "bob", bob, binbox, "Canceled: Review", mailOpts)
	if appText(cancel, wbxml.EmailMessageClass) != "IPM.Schedule.Meeting.Canceled" || cancel.ApplicationData.Child(wbxml.EmailMeetingRequest) == nil {
		t.Errorf("cancellation: %v", cancel.ApplicationData)
	}
	ch, ckey := calendarChange(t, bob, bcal, ckey)
	if appText(ch, wbxml.CalendarMeetingStatus) != "7" {
		t.Errorf("cancelled event: %v", ch.ApplicationData)
	}

	// Another meeting, declined: no CalendarId, and it leaves the calendar.
	send("Retro", "REQUEST", meetingEvent("retro@example.test", "0", ""))
	retro := mailItem(t, e, "bob", bob, binbox, "Retro", mailOpts)
	r := syncOnce(t, bob, client.SyncCollection{SyncKey: ckey, CollectionID: bcal, GetChanges: new(true), Options: &calOpts})
	if len(r.Adds) != 1 {
		t.Fatalf("retro on the calendar: %d adds", len(r.Adds))
	}
	retroID := r.Adds[0].ServerID
	res, err := bob.MeetingResponse(ctx, []client.MeetingReply{{Response: client.MeetingDecline, CollectionID: binbox, RequestID: retro.ServerID}})
	if err != nil || len(res) != 1 || res[0].Status != 1 || res[0].CalendarID != "" {
		t.Fatalf("decline: %+v, %v", res, err)
	}
	r = syncOnce(t, bob, client.SyncCollection{SyncKey: r.SyncKey, CollectionID: bcal, GetChanges: new(true), Options: &calOpts})
	if len(r.Deletes) != 1 || r.Deletes[0] != retroID {
		t.Errorf("declined meeting: deletes %q, want %s", r.Deletes, retroID)
	}
	// The cancellation is no request: status 2.
	res, err = bob.MeetingResponse(ctx, []client.MeetingReply{{Response: client.MeetingAccept, CollectionID: binbox, RequestID: cancel.ServerID}})
	if err != nil || len(res) != 1 || res[0].Status != 2 {
		t.Errorf("responding to a cancellation: %+v, %v", res, err)
	}
}
