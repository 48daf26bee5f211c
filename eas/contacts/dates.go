package contacts

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Birthdays and anniversaries are calendar dates, not instants. EAS sends
// them as a dateTime "in UTC" (MS-ASCNTC 2.2.2.6 Birthday, 2.2.2.3
// Anniversary) whose "time portion ... SHOULD be ignored, so that
// synchronizing between different time zones does not change the date".
// So the date is taken as written: "1980-05-17T00:00:00.000Z" and
// "1980-05-17T00:00:00+14:00" are both 1980-05-17; no zone conversion is
// ever applied (neither the client's offset nor the server's time.Local).
// It is stored as a vCard DATE (RFC 6350 section 4.3.1), so CardDAV
// clients see the same day.
//
// Rendering: the client's exact string is kept in the X-EAS-VALUE
// parameter when it differs from the canonical form and is sent back
// while it still names the stored date (data.md: iOS sends local midnight
// as UTC, e.g. "...T22:00:00.000Z" the day before, and must get it back
// unchanged). Otherwise the date is sent at 11:59 UTC: the Android
// Exchange client (AOSP ContactsSyncParser.addBirthday) rounds times at
// or after 12:00 UTC to the next day, and a client that converts the
// instant to local time keeps the date in every zone from UTC-11 to
// UTC+12. A vCard date without year ("--0517") is sent with year 1604,
// the common "no year" marker, and a 1604 date from a client is stored
// without year.

// noYear is the year that stands for "year unknown".
const noYear = 1604

// date is a calendar date; y is 0 when the year is unknown.
type date struct{ y, m, d int }

// valid reports whether the date exists (Feb 29 is allowed without year).
func (d date) valid() bool {
	y := d.y
	if y == 0 {
		y = 2000
	}
	if y < 1 || y > 9999 || d.m < 1 || d.m > 12 || d.d < 1 {
		return false
	}
	return d.d <= time.Date(y, time.Month(d.m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// eas renders the date in the canonical EAS form.
func (d date) eas() string {
	y := d.y
	if y == 0 {
		y = noYear
	}
	return fmt.Sprintf("%04d-%02d-%02dT11:59:00.000Z", y, d.m, d.d)
}

// vcard renders the date as an RFC 6350 DATE: "19800517" or "--0517".
func (d date) vcard() string {
	if d.y == 0 {
		return fmt.Sprintf("--%02d%02d", d.m, d.d)
	}
	return fmt.Sprintf("%04d%02d%02d", d.y, d.m, d.d)
}

// digits parses s as a decimal number of exactly n digits.
func digits(s string, n int) (int, bool) {
	if len(s) != n {
		return 0, false
	}
	for i := 0; i < n; i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.Atoi(s)
	return v, err == nil
}

// parseEASDate reads the date part of an EAS dateTime (MS-ASDTYPE 2.3):
// "YYYY-MM-DD" optionally followed by "Thh:mm[:ss[.fff]]" and "Z" or an
// offset; the compact "YYYYMMDD[Thhmmss[Z]]"; and a bare date (the
// Android client sends "1980-05-17"). The time part is checked but
// ignored (see above).
func parseEASDate(s string) (date, bool) {
	s = strings.TrimSpace(s)
	var d date
	var ok1, ok2, ok3 bool
	var rest string
	if len(s) >= 10 && s[4] == '-' && s[7] == '-' {
		d.y, ok1 = digits(s[0:4], 4)
		d.m, ok2 = digits(s[5:7], 2)
		d.d, ok3 = digits(s[8:10], 2)
		rest = s[10:]
	} else if len(s) >= 8 {
		d.y, ok1 = digits(s[0:4], 4)
		d.m, ok2 = digits(s[4:6], 2)
		d.d, ok3 = digits(s[6:8], 2)
		rest = s[8:]
	}
	if !ok1 || !ok2 || !ok3 || d.y == 0 || !d.valid() || !validTimePart(rest) {
		return date{}, false
	}
	if d.y == noYear {
		d.y = 0
	}
	return d, true
}

// validTimePart checks "" or "T" + a time with optional seconds,
// fraction and zone, in extended or basic form.
func validTimePart(s string) bool {
	if s == "" {
		return true
	}
	if s[0] != 'T' && s[0] != 't' && s[0] != ' ' {
		return false
	}
	s = s[1:]
	// zone
	switch {
	case strings.HasSuffix(s, "Z") || strings.HasSuffix(s, "z"):
		s = s[:len(s)-1]
	case len(s) > 6 && (s[len(s)-6] == '+' || s[len(s)-6] == '-') && s[len(s)-3] == ':':
		if !hhmm(s[len(s)-5:len(s)-3], s[len(s)-2:]) {
			return false
		}
		s = s[:len(s)-6]
	case len(s) > 5 && (s[len(s)-5] == '+' || s[len(s)-5] == '-'):
		if !hhmm(s[len(s)-4:len(s)-2], s[len(s)-2:]) {
			return false
		}
		s = s[:len(s)-5]
	}
	if i := strings.IndexAny(s, ".,"); i >= 0 {
		if _, ok := digits(s[i+1:], len(s)-i-1); !ok || i+1 == len(s) {
			return false
		}
		s = s[:i]
	}
	var h, m, sec string
	switch {
	case len(s) == 8 && s[2] == ':' && s[5] == ':':
		h, m, sec = s[0:2], s[3:5], s[6:8]
	case len(s) == 5 && s[2] == ':':
		h, m, sec = s[0:2], s[3:5], "00"
	case len(s) == 6:
		h, m, sec = s[0:2], s[2:4], s[4:6]
	case len(s) == 4:
		h, m, sec = s[0:2], s[2:4], "00"
	default:
		return false
	}
	sv, ok := digits(sec, 2)
	return hhmm(h, m) && ok && sv <= 60
}

func hhmm(h, m string) bool {
	hv, ok1 := digits(h, 2)
	mv, ok2 := digits(m, 2)
	return ok1 && ok2 && hv <= 24 && mv <= 59
}

// parseVDate reads a vCard date (RFC 6350 4.3.1 / vCard 3.0 ISO 8601):
// "19800517", "1980-05-17", "--0517", "--05-17", each optionally followed
// by a time that is ignored. Apple's year 1604 with X-APPLE-OMIT-YEAR is
// "no year" as well.
func parseVDate(raw string) (date, bool) {
	s := strings.TrimSpace(raw)
	if i := strings.IndexAny(s, "Tt"); i >= 0 {
		s = s[:i]
	}
	var d date
	var ok1, ok2, ok3 bool
	switch {
	case len(s) == 8 && s[0] != '-':
		d.y, ok1 = digits(s[0:4], 4)
		d.m, ok2 = digits(s[4:6], 2)
		d.d, ok3 = digits(s[6:8], 2)
	case len(s) == 10 && s[4] == '-' && s[7] == '-':
		d.y, ok1 = digits(s[0:4], 4)
		d.m, ok2 = digits(s[5:7], 2)
		d.d, ok3 = digits(s[8:10], 2)
	case len(s) == 6 && strings.HasPrefix(s, "--"):
		ok1 = true
		d.m, ok2 = digits(s[2:4], 2)
		d.d, ok3 = digits(s[4:6], 2)
	case len(s) == 7 && strings.HasPrefix(s, "--") && s[4] == '-':
		ok1 = true
		d.m, ok2 = digits(s[2:4], 2)
		d.d, ok3 = digits(s[5:7], 2)
	}
	if !ok1 || !ok2 || !ok3 || !d.valid() {
		return date{}, false
	}
	if d.y == noYear {
		d.y = 0
	}
	return d, true
}
