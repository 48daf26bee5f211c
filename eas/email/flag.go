package email

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/easd/easd/wbxml"
)

// Flag is a follow-up flag (email:Flag, MS-ASEMAIL 2.2.2.34). Zero times are
// absent elements.
type Flag struct {
	// Status is email:FlagStatus (MS-ASEMAIL 2.2.2.74): 0 cleared, 1
	// complete, 2 active.
	Status int
	// Type is email:FlagType (MS-ASEMAIL 2.2.2.35), e.g. "Flag for follow up".
	Type string
	// StartDate, UtcStartDate, DueDate and UtcDueDate are the tasks: dates
	// of the flag (MS-ASEMAIL 2.2.2.72, 2.2.2.87, 2.2.2.31, 2.2.2.86);
	// StartDate and DueDate are local times written as if UTC.
	StartDate, UtcStartDate, DueDate, UtcDueDate time.Time
	// CompleteTime is email:CompleteTime (MS-ASEMAIL 2.2.2.19), written with
	// tasks:DateCompleted (MS-ASEMAIL 2.2.2.23) as the spec asks.
	CompleteTime time.Time
	// ReminderTime is tasks:ReminderTime (MS-ASEMAIL 2.2.2.65).
	ReminderTime time.Time
	// ReminderSet is tasks:ReminderSet (MS-ASEMAIL 2.2.2.64).
	ReminderSet bool
	// OrdinalDate and SubOrdinalDate are tasks:OrdinalDate and
	// tasks:SubOrdinalDate (MS-ASEMAIL 2.2.2.56, 2.2.2.76), the client's
	// sort keys, echoed back.
	OrdinalDate    time.Time
	SubOrdinalDate string
}

// FlagNode returns the email:Flag element for f, its children in the order
// of MS-ASEMAIL 2.2.2.34. A nil f or Status 0 gives the empty <Flag/> that
// means "no flag".
func FlagNode(f *Flag) *wbxml.Node {
	n := wbxml.E(wbxml.EmailFlag)
	if f == nil || f.Status == 0 {
		return n
	}
	date := func(tag wbxml.Tag, t time.Time) {
		if !t.IsZero() {
			n.Append(wbxml.T(tag, dateTime(t)))
		}
	}
	n.Append(wbxml.T(wbxml.EmailFlagStatus, strconv.Itoa(f.Status)))
	if f.Type != "" {
		n.Append(wbxml.T(wbxml.EmailFlagType, sanitizeString(f.Type)))
	}
	if f.Status == 1 {
		date(wbxml.TasksDateCompleted, f.CompleteTime)
		date(wbxml.EmailCompleteTime, f.CompleteTime)
	}
	date(wbxml.TasksStartDate, f.StartDate)
	date(wbxml.TasksDueDate, f.DueDate)
	date(wbxml.TasksUtcStartDate, f.UtcStartDate)
	date(wbxml.TasksUtcDueDate, f.UtcDueDate)
	if f.Status == 2 || f.ReminderSet {
		set := "0"
		if f.ReminderSet {
			set = "1"
		}
		n.Append(wbxml.T(wbxml.TasksReminderSet, set))
	}
	if f.ReminderSet {
		date(wbxml.TasksReminderTime, f.ReminderTime)
	}
	date(wbxml.TasksOrdinalDate, f.OrdinalDate)
	if f.SubOrdinalDate != "" {
		n.Append(wbxml.T(wbxml.TasksSubOrdinalDate, sanitizeString(f.SubOrdinalDate)))
	}
	return n
}

// ParseFlag parses the email:Flag element of a client's Sync Change
// (MS-ASEMAIL 2.2.2.34). An empty element, or a FlagStatus of 0 or none,
// clears the flag: (nil, nil). An unknown FlagStatus or a date that does not
// parse is an error (the Sync answers it with a per-item status).
// tasks:DateCompleted stands in for a missing email:CompleteTime.
func ParseFlag(n *wbxml.Node) (*Flag, error) {
	if n == nil || len(n.Children) == 0 {
		return nil, nil
	}
	f := &Flag{}
	var dateCompleted time.Time
	for _, c := range n.Children {
		v := strings.TrimSpace(c.Text())
		var err error
		switch c.Tag {
		case wbxml.EmailFlagStatus:
			f.Status, err = strconv.Atoi(v)
			if err == nil && (f.Status < 0 || f.Status > 2) {
				err = fmt.Errorf("email: FlagStatus %d out of range", f.Status)
			}
		case wbxml.EmailFlagType:
			f.Type = v
		case wbxml.EmailCompleteTime:
			f.CompleteTime, err = parseDateTime(v)
		case wbxml.TasksDateCompleted:
			dateCompleted, err = parseDateTime(v)
		case wbxml.TasksStartDate:
			f.StartDate, err = parseDateTime(v)
		case wbxml.TasksUtcStartDate:
			f.UtcStartDate, err = parseDateTime(v)
		case wbxml.TasksDueDate:
			f.DueDate, err = parseDateTime(v)
		case wbxml.TasksUtcDueDate:
			f.UtcDueDate, err = parseDateTime(v)
		case wbxml.TasksReminderSet:
			f.ReminderSet = v == "1"
		case wbxml.TasksReminderTime:
			f.ReminderTime, err = parseDateTime(v)
		case wbxml.TasksOrdinalDate:
			f.OrdinalDate, err = parseDateTime(v)
		case wbxml.TasksSubOrdinalDate:
			f.SubOrdinalDate = v
		}
		if err != nil {
			return nil, fmt.Errorf("email: Flag %v: %w", c.Tag, err)
		}
	}
	if f.Status == 0 {
		return nil, nil
	}
	if f.CompleteTime.IsZero() {
		f.CompleteTime = dateCompleted
	}
	return f, nil
}

// dateTimeLayouts are the MS-ASDTYPE 2.3 dateTime forms clients send, plus
// the compact form some use by mistake.
var dateTimeLayouts = []string{
	"2006-01-02T15:04:05.000Z",
	"2006-01-02T15:04:05Z",
	time.RFC3339Nano,
	"2006-01-02T15:04:05.000",
	"2006-01-02T15:04:05",
	"20060102T150405Z",
}

// parseDateTime parses an MS-ASDTYPE dateTime as UTC ("" is the zero time).
func parseDateTime(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, l := range dateTimeLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("bad dateTime %q", v)
}
