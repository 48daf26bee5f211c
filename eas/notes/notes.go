// Package notes converts the EAS Notes class (MS-ASNOTE, protocol 14.0
// and later) to and from an iCalendar object (RFC 5545) holding one
// VJOURNAL, the form notes are stored in so that CalDAV can serve them
// too.
//
// Mapping:
//
//	Subject           SUMMARY
//	Body              DESCRIPTION (+ X-ALT-DESC;FMTTYPE=text/html, so that
//	                    a client's HTML note comes back as HTML)
//	Categories        CATEGORIES
//	MessageClass      X-EAS-MESSAGECLASS when not the default
//	                    IPM.StickyNote (MS-ASNOTE 2.2.2.5)
//	LastModifiedDate  LAST-MODIFIED (MS-ASNOTE 2.2.2.4, sent in the
//	                    compact form YYYYMMDDTHHMMSSZ of MS-ASDTYPE 2.7.2)
//
// LastModifiedDate is the server's: Render always sends it (from
// LAST-MODIFIED, else DTSTAMP or CREATED), and Apply sets LAST-MODIFIED
// to the time of a change, or to the client's LastModifiedDate when it
// sent one. Everything else in the stored object is kept.
package notes

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/eas/item/ics"
	"github.com/easd/easd/wbxml"
	"github.com/emersion/go-ical"
)

// Codec is the item.Codec of the Notes class. The zero value is ready; it
// is stateless and safe for concurrent use.
type Codec struct{}

var _ item.Codec = Codec{}

// DefaultMessageClass is the MessageClass of a note (MS-ASNOTE 2.2.2.5).
const DefaultMessageClass = "IPM.StickyNote"

// messageClassProp keeps a MessageClass other than the default.
const messageClassProp = "X-EAS-MESSAGECLASS"

// appData is a client's ApplicationData.
type appData struct {
	vals          map[wbxml.Tag]string
	categories    []string
	hasCategories bool
	body          item.BodyIn
}

func parseApp(n *wbxml.Node) (*appData, error) {
	if n == nil || n.Tag != wbxml.AirSyncApplicationData {
		return nil, item.Invalidf("not an ApplicationData element")
	}
	in := &appData{vals: map[wbxml.Tag]string{}}
	seen := map[wbxml.Tag]bool{}
	for _, c := range n.Children {
		if seen[c.Tag] {
			return nil, item.Invalidf("duplicate %s", c.Tag)
		}
		seen[c.Tag] = true
		switch c.Tag {
		case wbxml.NotesCategories:
			in.hasCategories = true
			for _, x := range c.Children {
				if x.Tag != wbxml.NotesCategory || len(x.Children) > 0 {
					return nil, item.Invalidf("Categories holds %s", x.Tag)
				}
				if s := item.Clean(x.Text()); s != "" {
					in.categories = append(in.categories, s)
				}
			}
		case wbxml.AirSyncBaseBody:
			b, err := item.ParseBody(c)
			if err != nil {
				return nil, err
			}
			in.body = b
		case wbxml.NotesSubject, wbxml.NotesMessageClass, wbxml.NotesLastModifiedDate:
			if len(c.Children) > 0 {
				return nil, item.Invalidf("%s has child elements", c.Tag)
			}
			in.vals[c.Tag] = item.Clean(c.Text())
		}
	}
	if s := in.vals[wbxml.NotesLastModifiedDate]; s != "" {
		if _, ok := ics.ParseEASTime(s); !ok {
			return nil, item.Invalidf("LastModifiedDate %q (MS-ASNOTE 2.2.2.4)", s)
		}
	}
	return in, nil
}

// view is what a stored VJOURNAL shows EAS.
type view struct {
	subject, class, modified string
	categories               []string
	body                     item.Body
}

func buildView(j *ical.Component) *view {
	v := &view{subject: ics.Text(j, ical.PropSummary), class: ics.Text(j, messageClassProp),
		categories: ics.Categories(j), body: ics.Body(j)}
	if v.class == "" {
		v.class = DefaultMessageClass
	}
	for _, name := range []string{ical.PropLastModified, ical.PropDateTimeStamp, ical.PropCreated} {
		if p := j.Props.Get(name); p != nil {
			if _, utc, _, ok := ics.PropTime(p); ok {
				v.modified = utc.Format(ics.CompactUTC)
				break
			}
		}
	}
	return v
}

func decode(stored []byte) (*ical.Calendar, *ical.Component, error) {
	cal, err := ics.Decode(stored)
	if err != nil {
		return nil, nil, fmt.Errorf("notes: %w", err)
	}
	j := ics.Master(cal, ical.CompJournal)
	if j == nil {
		return nil, nil, fmt.Errorf("notes: %w: no VJOURNAL", ics.ErrMalformed)
	}
	return cal, j, nil
}

// Index implements item.Codec: UID and SUMMARY.
func (Codec) Index(stored []byte) (item.Index, error) {
	_, j, err := decode(stored)
	if err != nil {
		return item.Index{}, err
	}
	return index(j), nil
}

// Render implements item.Codec, in the element order of MS-ASNOTE 2.2.2.
func (Codec) Render(stored []byte, o item.Options) (*wbxml.Node, error) {
	_, j, err := decode(stored)
	if err != nil {
		return nil, err
	}
	v := buildView(j)
	ad := wbxml.E(wbxml.AirSyncApplicationData)
	if v.subject != "" {
		ad.Append(wbxml.T(wbxml.NotesSubject, v.subject))
	}
	if b := item.RenderBody(v.body, o.BodyPrefs, version14(o.Version)); b != nil {
		ad.Append(b)
	}
	ad.Append(wbxml.T(wbxml.NotesMessageClass, v.class))
	if v.modified != "" {
		ad.Append(wbxml.T(wbxml.NotesLastModifiedDate, v.modified))
	}
	if len(v.categories) > 0 {
		n := wbxml.E(wbxml.NotesCategories)
		for _, s := range v.categories {
			n.Append(wbxml.T(wbxml.NotesCategory, s))
		}
		ad.Append(n)
	}
	return ad, nil
}

// version14 reports whether protocol version v is 14.0 or later ("" is
// taken as 14.1).
func version14(v string) bool {
	if v == "" {
		return true
	}
	major, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(major)
	return err != nil || n >= 14
}

// Apply implements item.Codec. An ApplicationData equal to what Render
// sends returns stored byte for byte.
func (Codec) Apply(stored []byte, app *wbxml.Node, o item.Options) ([]byte, item.Index, error) {
	in, err := parseApp(app)
	if err != nil {
		return nil, item.Index{}, err
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	t := now().UTC()
	var cal *ical.Calendar
	var j *ical.Component
	if stored == nil {
		if o.NewUID == nil {
			return nil, item.Index{}, errors.New("notes: Apply of an Add needs Options.NewUID")
		}
		cal = ics.NewCalendar()
		j = ical.NewComponent(ical.CompJournal)
		j.Props.SetText(ical.PropUID, o.NewUID())
		ics.Stamp(j, ical.PropCreated, t)
		cal.Children = append(cal.Children, j)
	} else if cal, j, err = decode(stored); err != nil {
		return nil, item.Index{}, err
	}
	old := buildView(j)
	ghosted := func(t wbxml.Tag) bool { return o.Ghosted != nil && o.Ghosted(t) }
	get := func(t wbxml.Tag, oldv, def string) string {
		if s, ok := in.vals[t]; ok && s != "" {
			return s
		} else if !ok && ghosted(t) {
			return oldv
		}
		return def
	}
	changed := stored == nil
	if s := get(wbxml.NotesSubject, old.subject, ""); s != old.subject {
		ics.SetText(j, ical.PropSummary, s)
		changed = true
	}
	if s := get(wbxml.NotesMessageClass, old.class, DefaultMessageClass); s != old.class {
		if s == DefaultMessageClass {
			s = ""
		}
		ics.SetText(j, messageClassProp, s)
		changed = true
	}
	cats := in.categories
	if !in.hasCategories && ghosted(wbxml.NotesCategories) {
		cats = old.categories
	}
	if !slices.Equal(cats, old.categories) {
		ics.SetCategories(j, cats)
		changed = true
	}
	if in.body.Present {
		if nb, ch := item.ApplyBody(old.body, in.body); ch {
			ics.SetBody(j, nb)
			changed = true
		}
	} else if !ghosted(wbxml.AirSyncBaseBody) && !old.body.Empty() {
		ics.SetBody(j, item.Body{})
		changed = true
	}
	// LastModifiedDate: the client's when it sent one that differs, else
	// the time of the change.
	modified := t
	if s := in.vals[wbxml.NotesLastModifiedDate]; s != "" && s != old.modified {
		modified, _ = ics.ParseEASTime(s)
		changed = true
	}
	if !changed {
		return stored, index(j), nil
	}
	ics.Stamp(j, ical.PropDateTimeStamp, t)
	ics.Stamp(j, ical.PropLastModified, modified)
	if j.Props.Get(ical.PropUID) == nil && o.NewUID != nil {
		j.Props.SetText(ical.PropUID, o.NewUID()) // RFC 5545 3.6.3 requires one
	}
	ics.EnsureCalendarProps(cal)
	out, err := ics.Encode(cal)
	if err != nil {
		return nil, item.Index{}, fmt.Errorf("notes: encoding: %w", err)
	}
	return out, index(j), nil
}

func index(j *ical.Component) item.Index {
	return item.Index{UID: ics.Text(j, ical.PropUID), Summary: ics.Text(j, ical.PropSummary)}
}
