// Package item holds what the store-backed classes share: the codec
// contract that converts one class (Calendar, Contacts, Tasks, Notes)
// between its EAS ApplicationData and the standard form it is stored in
// (iCalendar or vCard text), so the same data can later be served over
// CalDAV/CardDAV. The mappers are eas/calendar, eas/contacts, eas/tasks
// and eas/notes; package eas drives them from Sync.
package item

import (
	"errors"
	"time"

	"github.com/easd/easd/eas/email"
	"github.com/easd/easd/wbxml"
)

// Codec converts one class. Implementations are stateless and safe for
// concurrent use.
type Codec interface {
	// Apply merges a client's ApplicationData (Sync Add or Change) into
	// the stored item, nil for an Add, and returns the new stored form
	// with its index. Properties present in app replace the stored ones.
	// A property absent from app is removed, unless o.Ghosted reports its
	// element as ghosted (MS-ASCMD 2.2.3.168: not in the client's
	// Supported list), in which case the stored value stays. Properties
	// EAS cannot express stay as they are in stored (nothing the other
	// side wrote is lost). An ApplicationData that cannot be applied is an
	// error wrapping ErrInvalid (Sync answers status 6 for that item).
	Apply(stored []byte, app *wbxml.Node, o Options) ([]byte, Index, error)
	// Render returns the ApplicationData element for a stored item, for
	// the protocol version and body preferences in o.
	Render(stored []byte, o Options) (*wbxml.Node, error)
	// Index reads the index of a stored item (as Apply returns it), for
	// items that arrive by import rather than from a phone.
	Index(stored []byte) (Index, error)
}

// Options are the request's settings a codec needs.
type Options struct {
	// Version is the negotiated protocol version ("12.1" ... "16.1").
	Version string
	// Ghosted reports whether an element the client left out of a Change
	// keeps its stored value; nil means none is ghosted.
	Ghosted func(wbxml.Tag) bool
	// BodyPrefs are the client's airsyncbase:BodyPreference elements
	// (Render); empty means plain text, untruncated.
	BodyPrefs []email.BodyPreference
	// Now is the clock (DTSTAMP, LAST-MODIFIED); time.Now when nil.
	Now func() time.Time
	// NewUID returns a new globally unique id for an item the client
	// created (iCalendar UID, vCard UID); required by Apply for an Add.
	NewUID func() string
}

// Index are the stored item's properties that sync needs without parsing
// it: identity and the calendar window (FilterType).
type Index struct {
	// UID is the iCalendar or vCard UID, stable across round trips.
	UID string
	// Start and End bound the item in time for FilterType (MS-ASCMD
	// 2.2.3.68.2): an event's first start and its last end (End zero for
	// a recurrence without end); a task's due date as End. Zero when the
	// class has no window.
	Start, End time.Time
	// Summary is a short label for logs and admin tools (subject, name).
	Summary string
}

// ErrInvalid marks ApplicationData that cannot be applied (malformed
// values, missing required properties).
var ErrInvalid = errors.New("item: invalid ApplicationData")

// NoneGhosted is an Options.Ghosted that ghosts nothing.
func NoneGhosted(wbxml.Tag) bool { return false }
