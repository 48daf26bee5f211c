// Package contacts converts the EAS Contacts class (MS-ASCNTC: the
// Contacts and Contacts2 code pages and airsyncbase:Body) to and from
// vCard 4.0 (RFC 6350), the form contacts are stored in so that CardDAV
// can serve them too.
//
// Mapping (see fields.go for the slot rules):
//
//	FileAs                            FN parameter X-EAS-FILEAS
//	LastName FirstName MiddleName     N (family; given; additional;
//	  Title Suffix                      prefix; suffix); FN is kept
//	                                    as the display name
//	CompanyName Department            ORG (first two components)
//	JobTitle                          TITLE
//	OfficeLocation                    X-EAS-OFFICELOCATION
//	YomiFirstName YomiLastName        X-PHONETIC-FIRST-NAME,
//	  YomiCompanyName                   X-PHONETIC-LAST-NAME, X-PHONETIC-ORG
//	Email1Address..Email3Address      EMAIL (+ X-EAS-VALUE with the
//	                                    client's "Name" <addr> form)
//	13 phone numbers                  TEL with TYPE (work/home/cell/car/
//	                                    pager/fax/main/x-radio/x-assistant/
//	                                    x-mms) and X-EAS-SLOT
//	Business/Home/OtherAddress*       ADR;TYPE=work / home / none
//	WebPage                           URL
//	Birthday Anniversary              BDAY, ANNIVERSARY as DATE (dates.go)
//	Picture                           PHOTO data: URI (photo.go)
//	Categories                        CATEGORIES
//	Body                              NOTE (+ X-ALT-DESC;FMTTYPE=text/html)
//	Spouse AssistantName ManagerName  RELATED;VALUE=text;TYPE=spouse /
//	                                    x-assistant / x-manager
//	Children                          RELATED;VALUE=text;TYPE=child
//	NickName                          NICKNAME
//	IMAddress..IMAddress3             IMPP
//	CustomerId GovernmentId           X-EAS-CUSTOMERID, X-EAS-GOVERNMENTID,
//	  AccountName Alias WeightedRank    X-EAS-ACCOUNTNAME, X-EAS-ALIAS,
//	                                    X-EAS-WEIGHTEDRANK
//
// Every other property of a stored vCard (GEO, KEY, X-ABLabel, extra TELs,
// ...) is kept as it is by Apply, and a stored vCard 2.1/3.0 is read as
// well (it becomes 4.0 when a client changes it).
package contacts

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/eas/item/ics"
	"github.com/easd/easd/wbxml"
)

// Codec is the item.Codec of the Contacts class. The zero value is ready;
// it is stateless and safe for concurrent use.
type Codec struct{}

var _ item.Codec = Codec{}

// appData is a client's ApplicationData.
type appData struct {
	vals                      map[wbxml.Tag]string // single-valued elements present
	categories, children      []string
	hasCategories, hasChilren bool
	body                      item.BodyIn
	picture                   string
	hasPicture                bool
}

// slotted reports whether t is carried by a family.
func slotted(t wbxml.Tag) bool {
	for _, f := range families {
		for _, s := range f.slots {
			for _, x := range s.tags {
				if x == t {
					return true
				}
			}
		}
	}
	return false
}

// parseApp reads a client's airsync:ApplicationData. Elements this class
// does not define are ignored; a duplicate or structurally wrong element
// is invalid.
func parseApp(n *wbxml.Node) (*appData, error) {
	if n == nil || n.Tag != wbxml.AirSyncApplicationData {
		return nil, item.Invalidf("not an ApplicationData element")
	}
	in := &appData{vals: map[wbxml.Tag]string{}}
	seen := map[wbxml.Tag]bool{}
	legacyTruncated := false
	list := func(c *wbxml.Node, child wbxml.Tag) ([]string, error) {
		var out []string
		for _, x := range c.Children {
			if x.Tag != child || len(x.Children) > 0 {
				return nil, item.Invalidf("%s holds %s", c.Tag, x.Tag)
			}
			if s := item.Clean(x.Text()); s != "" {
				out = append(out, s)
			}
		}
		return out, nil
	}
	for _, c := range n.Children {
		if seen[c.Tag] {
			return nil, item.Invalidf("duplicate %s", c.Tag)
		}
		seen[c.Tag] = true
		var err error
		switch {
		case c.Tag == wbxml.ContactsCategories:
			in.hasCategories = true
			in.categories, err = list(c, wbxml.ContactsCategory)
		case c.Tag == wbxml.ContactsChildren:
			in.hasChilren = true
			in.children, err = list(c, wbxml.ContactsChild)
		case c.Tag == wbxml.AirSyncBaseBody:
			in.body, err = item.ParseBody(c)
		case c.Tag == wbxml.ContactsBody: // 2.5 (MS-ASCNTC 2.2.2.7.2)
			in.body = item.BodyIn{Present: true, Type: 1, Data: item.Clean(c.Text())}
		case c.Tag == wbxml.ContactsBodyTruncated:
			legacyTruncated = strings.TrimSpace(c.Text()) == "1"
		case c.Tag == wbxml.ContactsPicture || slotted(c.Tag):
			if len(c.Children) > 0 {
				return nil, item.Invalidf("%s has child elements", c.Tag)
			}
			if c.Tag == wbxml.ContactsPicture {
				in.hasPicture, in.picture = true, string(c.Value)
			} else {
				in.vals[c.Tag] = item.Clean(c.Text())
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if legacyTruncated && in.body.Present && seen[wbxml.ContactsBody] {
		in.body.Keep = true
	}
	return in, nil
}

// view is what a stored card shows EAS: every family's slot assignment
// and values, and the list, body and picture values.
type view struct {
	assign     [][]*prop    // per family, per slot
	tuples     [][][]string // per family, per slot, per tag
	vals       map[wbxml.Tag]string
	nSynth     bool // FirstName is the FN of a card without N
	categories []string
	children   []string
	body       item.Body
	photo      *prop
}

func buildView(c *card) *view {
	v := &view{vals: map[wbxml.Tag]string{}}
	for _, f := range families {
		a := f.assign(c)
		ts := make([][]string, len(f.slots))
		for s, sl := range f.slots {
			if a[s] != nil {
				ts[s] = f.get(a[s], s)
			} else {
				ts[s] = make([]string, len(sl.tags))
			}
			for i, t := range sl.tags {
				if ts[s][i] != "" {
					v.vals[t] = ts[s][i]
				}
			}
		}
		v.assign = append(v.assign, a)
		v.tuples = append(v.tuples, ts)
	}
	// A card with a name only in FN (no N, or an empty one) shows it as
	// FirstName, unless FN is just the company or e-mail it would be
	// derived from anyway.
	if allEmpty(v.tuples[famName][0]) {
		if fn := c.first("FN"); fn != nil {
			if s := item.Clean(ics.UnescapeText(fn.value)); s != "" && s != v.fallbackName() {
				v.tuples[famName][0] = []string{"", s, "", "", ""}
				v.vals[wbxml.ContactsFirstName] = s
				v.nSynth = true
			}
		}
	}
	for _, p := range c.props {
		switch {
		case p.name == "CATEGORIES":
			for _, s := range textList(p.value) {
				if s = item.Clean(s); s != "" {
					v.categories = append(v.categories, s)
				}
			}
		case isChild(p):
			if s := item.Clean(ics.UnescapeText(p.value)); s != "" {
				v.children = append(v.children, s)
			}
		case p.name == "PHOTO" && v.photo == nil && len(photoBytes(p)) > 0:
			v.photo = p
		}
	}
	if note := c.first("NOTE"); note != nil {
		v.body.Text = item.Clean(ics.UnescapeText(note.value))
	}
	if h := altDesc(c); h != nil {
		if s := item.Clean(ics.UnescapeText(h.value)); item.HTMLToText(s) == v.body.Text {
			v.body.HTML = s
		}
	}
	return v
}

// altDesc returns the X-ALT-DESC;FMTTYPE=text/html property holding the
// HTML form of NOTE (the convention of Outlook's iCalendar, reused here).
func altDesc(c *card) *prop {
	for _, p := range c.props {
		if p.name == "X-ALT-DESC" && strings.EqualFold(p.param("FMTTYPE"), "text/html") {
			return p
		}
	}
	return nil
}

// fallbackName is the display name of a card without a personal name.
func (v *view) fallbackName() string {
	if s := v.vals[wbxml.ContactsFileAs]; s != "" {
		return s
	}
	if s := v.vals[wbxml.ContactsCompanyName]; s != "" {
		return s
	}
	if s := v.vals[wbxml.ContactsEmail1Address]; s != "" {
		if a, err := mail.ParseAddress(s); err == nil {
			return a.Address
		}
		return s
	}
	return ""
}

// displayName is the FN derived from the EAS fields: the personal name
// (Title First Middle Last Suffix), else the fallback. synth says whether
// a FirstName taken from FN counts.
func (v *view) displayName(synth bool) string {
	if synth || !v.nSynth {
		t := v.tuples[famName][0]
		var parts []string
		for _, i := range []int{3, 1, 2, 0, 4} {
			if t[i] != "" {
				parts = append(parts, t[i])
			}
		}
		if s := strings.Join(parts, " "); s != "" {
			return s
		}
	}
	return v.fallbackName()
}

func allEmpty(t []string) bool {
	for _, s := range t {
		if s != "" {
			return false
		}
	}
	return true
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

// supported reports whether element t exists in protocol version v
// (MS-ASCNTC 2.2.2.2 Alias and 2.2.2.64 WeightedRank are 14.0+).
func supported(t wbxml.Tag, v string) bool {
	if t == wbxml.ContactsAlias || t == wbxml.ContactsWeightedRank {
		return version14(v)
	}
	return true
}

// Apply implements item.Codec. See the package comment for the mapping.
// An unchanged ApplicationData (as Render produced it) returns stored
// byte for byte.
func (Codec) Apply(stored []byte, app *wbxml.Node, o item.Options) ([]byte, item.Index, error) {
	in, err := parseApp(app)
	if err != nil {
		return nil, item.Index{}, err
	}
	var c *card
	if stored == nil {
		if o.NewUID == nil {
			return nil, item.Index{}, errors.New("contacts: Apply of an Add needs Options.NewUID")
		}
		c = &card{props: []*prop{{name: "VERSION", value: "4.0"}, {name: "UID", value: escapeURI(o.NewUID())}}}
	} else if c, err = parseCard(stored); err != nil {
		return nil, item.Index{}, fmt.Errorf("contacts: stored item: %w", err)
	}
	old := buildView(c)
	ghosted := func(t wbxml.Tag) bool {
		// An element the client's version lacks cannot be sent: kept.
		return !supported(t, o.Version) || (o.Ghosted != nil && o.Ghosted(t))
	}
	changed := stored == nil
	var nameNew []string
	nameChanged := false
	for fi, f := range families {
		cur := append([]*prop(nil), old.assign[fi]...)
		famChanged := false
		for s, sl := range f.slots {
			oldT := old.tuples[fi][s]
			newT := make([]string, len(sl.tags))
			for i, t := range sl.tags {
				if v, ok := in.vals[t]; ok {
					newT[i] = v
				} else if ghosted(t) {
					newT[i] = oldT[i]
				}
			}
			if fi == famName {
				nameNew = newT
			}
			if slices.Equal(oldT, newT) {
				continue
			}
			famChanged = true
			p := cur[s]
			if p == nil {
				if allEmpty(newT) {
					continue
				}
				p = f.create(s)
				c.add(p)
			}
			keep, err := f.put(p, s, newT)
			if err != nil {
				return nil, item.Index{}, err
			}
			if keep {
				cur[s] = p
			} else {
				c.remove(p)
				cur[s] = nil
			}
		}
		if !famChanged {
			continue
		}
		changed = true
		nameChanged = nameChanged || fi == famName
		slotted := map[*prop]bool{}
		for s, p := range cur {
			if p != nil {
				slotted[p] = true
				if f.pin {
					p.setParam(slotParam, f.slots[s].id)
				}
			}
		}
		for _, p := range c.props {
			if p.name != "" && !slotted[p] && len(f.candidates(p)) > 0 {
				p.setParam(slotParam, noSlot)
			}
		}
	}
	if applyLists(c, in, old, ghosted) {
		changed = true
	}
	if in.body.Present {
		if nb, ch := item.ApplyBody(old.body, in.body); ch {
			setBody(c, nb)
			changed = true
		}
	} else if !ghosted(wbxml.AirSyncBaseBody) && !old.body.Empty() {
		setBody(c, item.Body{})
		changed = true
	}
	ch, err := applyPicture(c, in, old, ghosted(wbxml.ContactsPicture))
	if err != nil {
		return nil, item.Index{}, err
	}
	if !changed && !ch {
		return stored, index(c, old), nil
	}
	// A FirstName shown from FN becomes a real N once the card changes.
	if old.nSynth && !nameChanged && !allEmpty(nameNew) {
		p := old.assign[famName][0] // an empty N, or none
		if p == nil {
			p = families[famName].create(0)
			c.add(p)
		}
		if _, err := families[famName].put(p, 0, nameNew); err != nil {
			return nil, item.Index{}, err
		}
	}
	finish(c, old, o)
	out := c.encode()
	return out, index(c, buildView(c)), nil
}

// applyLists applies Categories and Children.
func applyLists(c *card, in *appData, old *view, ghosted func(wbxml.Tag) bool) bool {
	pick := func(has bool, vals, oldVals []string, t wbxml.Tag) []string {
		if has {
			return vals
		}
		if ghosted(t) {
			return oldVals
		}
		return nil
	}
	changed := false
	if cats := pick(in.hasCategories, in.categories, old.categories, wbxml.ContactsCategories); !slices.Equal(cats, old.categories) {
		changed = true
		for _, p := range append([]*prop(nil), c.props...) {
			if p.name == "CATEGORIES" {
				c.remove(p)
			}
		}
		if len(cats) > 0 {
			vs := make([]string, len(cats))
			for i, s := range cats {
				vs[i] = ics.EscapeText(s)
			}
			c.add(&prop{name: "CATEGORIES", value: strings.Join(vs, ",")})
		}
	}
	if kids := pick(in.hasChilren, in.children, old.children, wbxml.ContactsChildren); !slices.Equal(kids, old.children) {
		changed = true
		for _, p := range append([]*prop(nil), c.props...) {
			if isChild(p) {
				c.remove(p)
			}
		}
		for _, s := range kids {
			p := &prop{name: "RELATED", value: ics.EscapeText(s)}
			p.setParamAdd("TYPE", "child")
			p.setParam("VALUE", "text")
			c.add(p)
		}
	}
	return changed
}

// setBody stores b as NOTE and X-ALT-DESC.
func setBody(c *card, b item.Body) {
	note := c.first("NOTE")
	switch {
	case b.Text == "":
		for ; note != nil; note = c.first("NOTE") {
			c.remove(note)
		}
	case note != nil:
		note.value = ics.EscapeText(b.Text)
	default:
		c.add(&prop{name: "NOTE", value: ics.EscapeText(b.Text)})
	}
	for p := altDesc(c); p != nil; p = altDesc(c) {
		c.remove(p)
	}
	if b.HTML != "" {
		p := &prop{name: "X-ALT-DESC", value: ics.EscapeText(b.HTML)}
		p.setParam("FMTTYPE", "text/html")
		c.add(p)
	}
}

// applyPicture applies contacts:Picture (an empty element removes it).
func applyPicture(c *card, in *appData, old *view, ghosted bool) (bool, error) {
	if !in.hasPicture && ghosted || old.photo == nil && strings.TrimSpace(in.picture) == "" {
		return false, nil
	}
	if strings.TrimSpace(in.picture) == "" {
		// Absent or empty: removed, unless it was not sent (too large
		// to scale, undecodable), in which case the client never had it.
		if pictureFor(photoBytes(old.photo)) == "" {
			return false, nil
		}
		for _, p := range append([]*prop(nil), c.props...) {
			if p.name == "PHOTO" && len(photoBytes(p)) > 0 {
				c.remove(p)
			}
		}
		return true, nil
	}
	b, err := decodePicture(in.picture)
	if err != nil {
		return false, err
	}
	if old.photo != nil && base64.StdEncoding.EncodeToString(b) == pictureFor(photoBytes(old.photo)) {
		return false, nil
	}
	p := old.photo
	if p == nil {
		p = &prop{name: "PHOTO"}
		c.add(p)
	}
	p.params, p.value = nil, photoValue(b)
	return true, nil
}

// finish completes a changed card: FN follows the name when it was
// derived from it (vCard 4.0 requires FN, RFC 6350 6.2.1), the card
// becomes 4.0, and REV is the time of the change.
func finish(c *card, old *view, o item.Options) {
	nv := buildView(c)
	oldDisp, newDisp := old.displayName(true), nv.displayName(false)
	if fn := c.first("FN"); fn == nil {
		c.add(&prop{name: "FN", value: ics.EscapeText(newDisp)})
	} else if cur := item.Clean(ics.UnescapeText(fn.value)); cur == "" || cur == oldDisp {
		fn.value = ics.EscapeText(newDisp)
	}
	upgrade(c)
	if c.first("UID") == nil && o.NewUID != nil {
		c.add(&prop{name: "UID", value: escapeURI(o.NewUID())})
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	rev := &prop{name: "REV", value: now().UTC().Format("20060102T150405Z")}
	if p := c.first("REV"); p != nil {
		*p = *rev
	} else {
		c.add(rev)
	}
}

// upgrade makes a vCard 2.1/3.0 a 4.0 one (RFC 6350 appendix A): TYPE=pref
// becomes PREF=1, inline base64 (ENCODING=b) becomes a data: URI, CHARSET
// goes. Other 3.0 properties stay as they are.
func upgrade(c *card) {
	v := c.first("VERSION")
	if v == nil {
		v = &prop{name: "VERSION"}
		c.props = append([]*prop{v}, c.props...)
	}
	if v.value == "4.0" {
		return
	}
	v.value, v.params = "4.0", nil
	for _, p := range c.props {
		if p.name == "" {
			continue
		}
		if p.hasType("pref") {
			var ts []string
			for _, t := range p.params["TYPE"] {
				for _, x := range strings.Split(t, ",") {
					if x = strings.TrimSpace(x); x != "" && !strings.EqualFold(x, "pref") {
						ts = append(ts, x)
					}
				}
			}
			p.params["TYPE"] = ts
			if len(ts) == 0 {
				delete(p.params, "TYPE")
			}
			if p.param("PREF") == "" {
				p.setParam("PREF", "1")
			}
		}
		delete(p.params, "CHARSET")
		if enc := strings.ToLower(p.param("ENCODING")); enc == "b" || enc == "base64" {
			if b, err := decodeLenient(p.value); err == nil {
				delete(p.params, "ENCODING")
				delete(p.params, "TYPE")
				p.value = photoValue(b)
			}
		}
	}
}

// index returns the index of a card.
func index(c *card, v *view) item.Index {
	var ix item.Index
	if p := c.first("UID"); p != nil {
		ix.UID = strings.TrimSpace(item.Clean(unescapeURI(p.value)))
	}
	if p := c.first("FN"); p != nil {
		ix.Summary = item.Clean(ics.UnescapeText(p.value))
	}
	if ix.Summary == "" {
		ix.Summary = v.displayName(true)
	}
	return ix
}

// Index implements item.Codec: UID, and the display name as Summary.
func (Codec) Index(stored []byte) (item.Index, error) {
	c, err := parseCard(stored)
	if err != nil {
		return item.Index{}, err
	}
	return index(c, buildView(c)), nil
}

// renderOrder is the order of the elements in a rendered ApplicationData.
var renderOrder = []wbxml.Tag{
	wbxml.ContactsAnniversary, wbxml.ContactsAssistantName, wbxml.ContactsAssistantPhoneNumber,
	wbxml.ContactsBirthday, wbxml.ContactsBusiness2PhoneNumber, wbxml.ContactsBusinessAddressCity,
	wbxml.ContactsBusinessAddressCountry, wbxml.ContactsBusinessAddressPostalCode,
	wbxml.ContactsBusinessAddressState, wbxml.ContactsBusinessAddressStreet, wbxml.ContactsBusinessFaxNumber,
	wbxml.ContactsBusinessPhoneNumber, wbxml.ContactsCarPhoneNumber, wbxml.ContactsCategories,
	wbxml.ContactsChildren, wbxml.ContactsCompanyName, wbxml.ContactsDepartment, wbxml.ContactsEmail1Address,
	wbxml.ContactsEmail2Address, wbxml.ContactsEmail3Address, wbxml.ContactsFileAs, wbxml.ContactsFirstName,
	wbxml.ContactsHome2PhoneNumber, wbxml.ContactsHomeAddressCity, wbxml.ContactsHomeAddressCountry,
	wbxml.ContactsHomeAddressPostalCode, wbxml.ContactsHomeAddressState, wbxml.ContactsHomeAddressStreet,
	wbxml.ContactsHomeFaxNumber, wbxml.ContactsHomePhoneNumber, wbxml.ContactsJobTitle, wbxml.ContactsLastName,
	wbxml.ContactsMiddleName, wbxml.ContactsMobilePhoneNumber, wbxml.ContactsOfficeLocation,
	wbxml.ContactsOtherAddressCity, wbxml.ContactsOtherAddressCountry, wbxml.ContactsOtherAddressPostalCode,
	wbxml.ContactsOtherAddressState, wbxml.ContactsOtherAddressStreet, wbxml.ContactsPagerNumber,
	wbxml.ContactsRadioPhoneNumber, wbxml.ContactsSpouse, wbxml.ContactsSuffix, wbxml.ContactsTitle,
	wbxml.ContactsWebPage, wbxml.ContactsYomiCompanyName, wbxml.ContactsYomiFirstName,
	wbxml.ContactsYomiLastName, wbxml.ContactsPicture, wbxml.ContactsAlias, wbxml.ContactsWeightedRank,
	wbxml.AirSyncBaseBody,
	wbxml.Contacts2CustomerId, wbxml.Contacts2GovernmentId, wbxml.Contacts2IMAddress,
	wbxml.Contacts2IMAddress2, wbxml.Contacts2IMAddress3, wbxml.Contacts2ManagerName,
	wbxml.Contacts2CompanyMainPhone, wbxml.Contacts2AccountName, wbxml.Contacts2NickName, wbxml.Contacts2MMS,
}

// Render implements item.Codec: the ApplicationData of a stored vCard for
// o.Version (Alias and WeightedRank from 14.0) and o.BodyPrefs. A
// malformed vCard is an error.
func (Codec) Render(stored []byte, o item.Options) (*wbxml.Node, error) {
	c, err := parseCard(stored)
	if err != nil {
		return nil, err
	}
	v := buildView(c)
	ad := wbxml.E(wbxml.AirSyncApplicationData)
	list := func(t, child wbxml.Tag, vals []string) {
		if len(vals) == 0 {
			return
		}
		n := wbxml.E(t)
		for _, s := range vals {
			n.Append(wbxml.T(child, s))
		}
		ad.Append(n)
	}
	for _, t := range renderOrder {
		switch t {
		case wbxml.ContactsCategories:
			list(t, wbxml.ContactsCategory, v.categories)
		case wbxml.ContactsChildren:
			list(t, wbxml.ContactsChild, v.children)
		case wbxml.ContactsPicture:
			if v.photo != nil {
				if s := pictureFor(photoBytes(v.photo)); s != "" {
					ad.Append(wbxml.T(t, s))
				}
			}
		case wbxml.AirSyncBaseBody:
			if b := item.RenderBody(v.body, o.BodyPrefs, version14(o.Version)); b != nil {
				ad.Append(b)
			}
		default:
			if s := v.vals[t]; s != "" && supported(t, o.Version) {
				ad.Append(wbxml.T(t, s))
			}
		}
	}
	return ad, nil
}
