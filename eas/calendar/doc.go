// Package calendar converts the EAS Calendar class (MS-ASCAL) to and from
// iCalendar (RFC 5545), the form calendar items are stored in.
//
// A stored item is one VCALENDAR (PRODID -//easd//EN, VERSION 2.0) with
// the event's master VEVENT, a VTIMEZONE for every TZID it uses, and an
// override VEVENT (RECURRENCE-ID) per modified occurrence; deleted
// occurrences are EXDATEs. Whatever EAS cannot express (X- properties,
// parameters of attendees, further alarms, components) stays as it was.
//
// Apply keeps a stored property untouched when the client's value is the
// one Render would give for it, so Apply(stored, Render(stored)) changes
// nothing but DTSTAMP/LAST-MODIFIED: a CalDAV client's representation
// (TZID spelling, RRULE form, PARTSTAT values EAS folds) survives a phone
// that only echoes it.
//
// How MS-ASCAL elements (section numbers of MS-ASCAL) map to the stored
// iCalendar:
//
//	Timezone (2.2.2.44)        zone of DTSTART/DTEND: the IANA zone with the
//	                           blob's rules in the event's year (eas/tz),
//	                           else a custom VTIMEZONE from the blob (TZID
//	                           easd-custom-<hash>, X-EAS-TIMEZONE keeps the
//	                           blob). A blob equivalent to the stored zone
//	                           keeps the stored TZID. Rendered for the year of
//	                           the start. All-day events: see AllDayEvent.
//	AllDayEvent (2.2.2.1)      DTSTART/DTEND;VALUE=DATE. 12.x/14.x clients send
//	                           local midnight of their zone (read through the
//	                           blob); 16.x clients the date as midnight UTC.
//	                           The creation zone is kept in X-EAS-ALLDAY-TZID;
//	                           12.x/14.x get midnight in it back, 16.x the date
//	                           with a UTC blob, so every reading gives the date.
//	StartTime, EndTime         DTSTART, DTEND (DURATION read, replaced on
//	                           change). Absent on Add: MS-ASCAL 3.2.4.4.
//	DtStamp (2.2.2.18)         DTSTAMP (the client's, else now); LAST-MODIFIED
//	                           and CREATED are the server's clock.
//	Subject                    SUMMARY
//	Location (≤14.1)           LOCATION (a new text drops GEO/X-EAS-LOCATION)
//	airsyncbase:Location (16)  LOCATION = DisplayName; Latitude/Longitude also
//	                           as GEO; every part in X-EAS-LOCATION parameters
//	                           (X-STREET, X-CITY ...), LocationUri its value.
//	airsyncbase:Body           Type 1: DESCRIPTION. Type 2: X-ALT-DESC;
//	                           FMTTYPE=text/html, with its text in DESCRIPTION.
//	                           Rendered by BodyPreference (MS-ASAIRS 2.2.2.12);
//	                           12.1 too. calendar:Body (2.5) is read as text.
//	                           RTF (3), MIME (4) and truncated bodies from a
//	                           client are not stored (the stored body stays).
//	Sensitivity (2.2.2.41)     CLASS: PUBLIC 0, X-PERSONAL 1, PRIVATE 2,
//	                           CONFIDENTIAL 3; other classes render as 2.
//	BusyStatus (2.2.2.9)       TRANSP + X-MICROSOFT-CDO-BUSYSTATUS (FREE,
//	                           TENTATIVE, BUSY, OOF, WORKINGELSEWHERE; the last
//	                           is 16.x, older versions get BUSY).
//	Reminder (2.2.2.38)        the first DISPLAY/AUDIO VALARM with a start-
//	                           relative TRIGGER -PTnM; other alarms stay. An
//	                           empty Reminder removes the DISPLAY/AUDIO alarms.
//	Categories                 CATEGORIES (one property on write)
//	OrganizerName/Email        ORGANIZER;CN=name:mailto:address
//	Attendees (2.2.2.3)        ATTENDEE, matched by address so that their other
//	                           parameters (SCHEDULE-STATUS, DELEGATED-TO, X-)
//	                           stay. AttendeeStatus: no PARTSTAT 0, TENTATIVE 2,
//	                           ACCEPTED 3, DECLINED 4, NEEDS-ACTION 5 (others
//	                           render 0 and are kept). AttendeeType: ROLE
//	                           REQ-PARTICIPANT 1, OPT-/NON-PARTICIPANT 2,
//	                           CUTYPE RESOURCE/ROOM 3.
//	MeetingStatus (2.2.2.28)   X-EAS-MEETINGSTATUS, the cancelled bit also as
//	                           STATUS:CANCELLED; without it derived (1 with
//	                           ORGANIZER/ATTENDEE, else 0).
//	ResponseRequested (14.0)   RSVP=TRUE/FALSE on the attendees
//	ResponseType (14.0)        X-EAS-RESPONSETYPE
//	AppointmentReplyTime       X-MICROSOFT-CDO-REPLYTIME
//	DisallowNewTimeProposal    X-MICROSOFT-DISALLOW-COUNTER (TRUE/FALSE)
//	OnlineMeetingConfLink,     X-MICROSOFT-ONLINEMEETINGCONFLINK,
//	 ...ExternalLink (14.1)     X-MICROSOFT-ONLINEMEETINGEXTERNALLINK
//	UID / ClientUid (16.0)     UID: from the client on Add (calendar:UID or
//	                           ClientUid), else Options.NewUID; never changed
//	                           afterwards. Rendered as calendar:UID.
//	Recurrence (2.2.2.37)      RRULE: Type 0 DAILY (BYDAY from DayOfWeek), 1
//	                           WEEKLY;BYDAY, 2 MONTHLY;BYMONTHDAY (29 to 31 as
//	                           the last existing of 28..d, BYSETPOS=-1, or -1),
//	                           3 MONTHLY;BYDAY=nDD (several days: BYSETPOS=n),
//	                           5 and 6 the same YEARLY;BYMONTH; WeekOfMonth 5
//	                           is -1; Occurrences COUNT, Until UNTIL; DTSTART
//	                           moves to the first occurrence.
//	                           CalendarType/IsLeapMonth as X-EAS- parameters of
//	                           RRULE, expanded as Gregorian; FirstDayOfWeek is
//	                           WKST (absent: Monday, RFC 5545's default).
//	Exceptions (2.2.2.22)      EXDATE for Deleted; an override VEVENT
//	                           (RECURRENCE-ID) with the master's properties and
//	                           the exception's elements. Rendered with
//	                           ExceptionStartTime (≤14.1) or InstanceId (16.x).
//
// What is not covered:
//   - 16.x Sync commands aimed at one instance (airsync:Change or Delete with
//     airsyncbase:InstanceId) do not fit item.Codec.Apply; ApplyInstance and
//     DeleteInstance implement them for the caller that reads the InstanceId.
//     Orphan instances (16.x responses for a single occurrence) are not
//     produced: a series is always sent whole.
//   - airsyncbase:Attachments of events (16.x) are not stored.
//   - An override's "no reminder" cannot be said in an Exception (it would
//     inherit the master's); such overrides render without Reminder.
//   - RRULEs EAS has no pattern for (BYWEEKNO, BYHOUR, several BYMONTH,
//     sub-daily, RSCALE) render without Recurrence; Apply keeps them. A
//     CalDAV BYMONTHDAY of 29 to 31 renders as that DayOfMonth, which EAS
//     clients put on the last day of shorter months where RFC 5545 skips them.
//   - Non-Gregorian CalendarType values are stored and rendered back but the
//     rule is expanded (Index, CalDAV) as Gregorian.
//   - Until covers its whole local day (clients send the last start, local
//     midnight or the end of the day); a client meaning "before the
//     occurrence of that day" cannot be told apart.
package calendar
