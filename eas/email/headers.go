package email

import (
	"net/mail"
	"regexp"
	"strings"
	"time"

	gomail "github.com/emersion/go-message/mail"
)

// addressList formats an address header (To, Cc, From, Reply-To) as the
// RFC 5322 string EAS carries (MS-ASEMAIL 2.2.2.79 To and its siblings Cc, From, ReplyTo):
// `"Name" <a@b>` (bare `a@b` without a name), comma separated, names
// decoded from RFC 2047 to UTF-8. names holds the display names (or the
// addresses when unnamed) for email:DisplayTo. A header that does not parse
// is returned as its decoded raw text.
func addressList(raw string) (list string, names []string) {
	addrs, err := gomail.ParseAddressList(raw)
	if err != nil || len(addrs) == 0 {
		s := strings.TrimSpace(sanitizeString(decodeWords(raw)))
		if s == "" {
			return "", nil
		}
		return s, []string{s}
	}
	var b strings.Builder
	for i, a := range addrs {
		if i > 0 {
			b.WriteString(", ")
		}
		name := strings.TrimSpace(sanitizeString(a.Name))
		addr := sanitizeString(a.Address)
		if name == "" {
			b.WriteString(addr)
			names = append(names, addr)
			continue
		}
		b.WriteByte('"')
		for _, r := range name {
			if r == '"' || r == '\\' {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		b.WriteString(`" <`)
		b.WriteString(addr)
		b.WriteByte('>')
		names = append(names, name)
	}
	return b.String(), names
}

// headerText returns an unstructured header field (Subject) decoded from
// RFC 2047; a broken encoding leaves the raw text.
func headerText(raw string) string {
	return strings.TrimSpace(sanitizeString(decodeWords(raw)))
}

// importance maps the sender's priority headers to email:Importance
// (MS-ASEMAIL 2.2.2.38: 0 low, 1 normal, 2 high) as MS-OXCMAIL 2.2.3.2.5
// specifies: Importance wins, then X-Priority, X-MSMail-Priority, Priority.
// Default 1.
func importance(h header) int {
	switch strings.ToLower(strings.TrimSpace(h.Get("Importance"))) {
	case "low":
		return 0
	case "normal":
		return 1
	case "high":
		return 2
	}
	if v := strings.TrimSpace(h.Get("X-Priority")); v != "" {
		switch v[0] {
		case '1', '2':
			return 2
		case '3':
			return 1
		case '4', '5':
			return 0
		}
	}
	switch strings.ToLower(strings.TrimSpace(h.Get("X-MSMail-Priority"))) {
	case "low":
		return 0
	case "normal":
		return 1
	case "high":
		return 2
	}
	switch strings.ToLower(strings.TrimSpace(h.Get("Priority"))) {
	case "non-urgent":
		return 0
	case "normal":
		return 1
	case "urgent":
		return 2
	}
	return 1
}

// subjectPrefix matches one reply/forward prefix: English and the common
// European and CJK forms, with an optional counter ("Re[2]:", "Re(2):").
var subjectPrefix = regexp.MustCompile(`(?i)^\s*(re|fw|fwd|aw|wg|sv|vs|antw|tr|rv|rif|odp|res|enc|回复|答复|转发|回覆|轉寄)\s*(\[\d+\]|\(\d+\))?\s*[:：]\s*`)

// ThreadTopic returns subject without reply and forward prefixes ("Re:",
// "Fwd:", "AW:", ...), as email:ThreadTopic carries it (MS-ASEMAIL
// section 2.2.2, element ThreadTopic).
func ThreadTopic(subject string) string {
	for i := 0; i < 32; i++ {
		loc := subjectPrefix.FindStringIndex(subject)
		if loc == nil || loc[1] == 0 {
			break
		}
		subject = subject[loc[1]:]
	}
	return strings.TrimSpace(subject)
}

// parseDate parses an RFC 5322 Date header (lenient: a trailing comment is
// ignored); zero if it does not parse.
func parseDate(v string) time.Time {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}
	}
	if t, err := mail.ParseDate(v); err == nil {
		return t
	}
	if i := strings.IndexByte(v, '('); i > 0 {
		if t, err := mail.ParseDate(strings.TrimSpace(v[:i])); err == nil {
			return t
		}
	}
	return time.Time{}
}

// dateTime formats t as an MS-ASDTYPE 2.3 dateTime (UTC, milliseconds).
func dateTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}
