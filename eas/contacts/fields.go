package contacts

import (
	"net/mail"
	"sort"
	"strconv"
	"strings"

	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/eas/item/ics"
	"github.com/easd/easd/wbxml"
)

// How EAS elements map onto vCard properties.
//
// A family is a set of vCard properties that carry EAS values, each in one
// slot: TEL properties carry the thirteen phone elements, EMAIL the three
// EmailNAddress elements, ADR the three addresses (five elements each),
// and so on; most families are a single property carrying one element
// (TITLE carries JobTitle). Render and Apply assign the properties of a
// card to slots the same way, so an unchanged round trip maps every value
// back onto the property it came from:
//
//  1. a property this server wrote carries its slot in the X-EAS-SLOT
//     parameter, honoured while the property's TYPE still fits the slot;
//  2. the other properties fill the free slots their TYPE allows, in file
//     order (EMAIL, IMPP and URL by PREF first), e.g. TEL;TYPE=work goes
//     to BusinessPhoneNumber, then Business2PhoneNumber.
//
// A property that finds no slot is not sent and never changed. When a
// client changes a family, every property of it that got a slot is given
// its X-EAS-SLOT (multi-slot families), so removing one value does not
// shift the others into other slots, and the properties that got none are
// marked X-EAS-SLOT=none, so that they do not move into a slot the client
// just emptied (the client would not know of them).

// slotParam records the EAS slot of a property this server wrote.
const slotParam = "X-EAS-SLOT"

// noSlot is the slotParam value of a property kept out of every slot.
const noSlot = "none"

// valueParam keeps a client's exact string when the vCard value is a
// normalised form of it (an e-mail address with a display name, a
// birthday with a time part).
const valueParam = "X-EAS-VALUE"

// fileAsParam on FN holds contacts:FileAs: FileAs belongs to the display
// name, and a CardDAV client that rewrites FN drops the parameter with it,
// so a renamed contact never keeps a stale FileAs.
const fileAsParam = "X-EAS-FILEAS"

// slot is one EAS value carried by one property: an element, or the
// elements of an address.
type slot struct {
	id   string      // X-EAS-SLOT value (the first element's name)
	tags []wbxml.Tag // the elements
}

// family describes how a set of properties carries slots.
type family struct {
	slots []slot
	// candidates lists the slots p may fill, best first; nil if p is not
	// a member.
	candidates func(p *prop) []int
	byPref     bool // fill inferred slots by PREF order (RFC 6350 5.3)
	pin        bool // record X-EAS-SLOT (several slots compete)
	// get returns the values of slot s carried by p (one per tag).
	get func(p *prop, s int) []string
	// put stores the values of slot s into p; false removes p.
	put func(p *prop, s int, v []string) (bool, error)
	// create returns a new property for slot s (put fills it).
	create func(s int) *prop
}

// single makes a one-slot family.
func single(tag wbxml.Tag, names ...string) *family {
	return &family{
		slots:      []slot{{id: tag.Name(), tags: []wbxml.Tag{tag}}},
		candidates: byName(names, 0),
		get:        func(p *prop, _ int) []string { return []string{item.Clean(ics.UnescapeText(p.value))} },
		put: func(p *prop, _ int, v []string) (bool, error) {
			p.value = ics.EscapeText(v[0])
			delete(p.params, "VALUE")
			return v[0] != "", nil
		},
		create: func(int) *prop { return &prop{name: names[0]} },
	}
}

// byName returns a candidates function: properties named names fill slot s.
func byName(names []string, s int) func(*prop) []int {
	return func(p *prop) []int {
		for _, n := range names {
			if p.name == n {
				return []int{s}
			}
		}
		return nil
	}
}

// slotsOf makes one-element slots.
func slotsOf(tags ...wbxml.Tag) []slot {
	out := make([]slot, len(tags))
	for i, t := range tags {
		out[i] = slot{id: t.Name(), tags: []wbxml.Tag{t}}
	}
	return out
}

// phone slots, in families' slot order.
const (
	telBusiness = iota
	telBusiness2
	telHome
	telHome2
	telMobile
	telCar
	telPager
	telRadio
	telAssistant
	telBusinessFax
	telHomeFax
	telCompanyMain
	telMMS
)

// telTypes are the TYPE values written for each phone slot (RFC 6350
// 6.4.1; "car" is vCard 3.0's, the x- ones are this server's).
var telTypes = [...][]string{
	telBusiness: {"work", "voice"}, telBusiness2: {"work", "voice"},
	telHome: {"home", "voice"}, telHome2: {"home", "voice"},
	telMobile: {"cell", "voice"}, telCar: {"car", "voice"}, telPager: {"pager"},
	telRadio: {"x-radio"}, telAssistant: {"x-assistant"},
	telBusinessFax: {"work", "fax"}, telHomeFax: {"home", "fax"},
	telCompanyMain: {"main"}, telMMS: {"x-mms"},
}

// telCandidates infers phone slots from a TEL's TYPE.
func telCandidates(p *prop) []int {
	if p.name != "TEL" {
		return nil
	}
	has := p.hasType
	switch {
	case has("fax") && has("home"):
		return []int{telHomeFax}
	case has("fax") && has("work"):
		return []int{telBusinessFax}
	case has("fax"):
		return []int{telBusinessFax, telHomeFax}
	case has("pager"):
		return []int{telPager}
	case has("cell") || has("iphone") || has("mobile"):
		return []int{telMobile}
	case has("car"):
		return []int{telCar}
	case has("x-radio") || has("radio"):
		return []int{telRadio}
	case has("x-assistant") || has("assistant"):
		return []int{telAssistant}
	case has("x-mms") || has("mms") || has("msg"):
		return []int{telMMS}
	case has("main") || has("x-main") || has("x-company"):
		return []int{telCompanyMain}
	case has("work"):
		return []int{telBusiness, telBusiness2}
	}
	return []int{telHome, telHome2}
}

// addr slots.
const (
	adrBusiness = iota
	adrHome
	adrOther
)

func adrCandidates(p *prop) []int {
	if p.name != "ADR" {
		return nil
	}
	switch {
	case p.hasType("work"):
		return []int{adrBusiness, adrOther}
	case p.hasType("home"):
		return []int{adrHome, adrOther}
	}
	return []int{adrOther}
}

// relation slots: names of people, RELATED;VALUE=text (RFC 6350 6.6.6)
// or the X- properties other clients write.
const (
	relSpouse = iota
	relAssistant
	relManager
)

func relCandidates(p *prop) []int {
	switch p.name {
	case "RELATED":
		if !textRelated(p) {
			return nil
		}
		switch {
		case p.hasType("spouse"):
			return []int{relSpouse}
		case p.hasType("x-assistant") || p.hasType("assistant") || p.hasType("agent"):
			return []int{relAssistant}
		case p.hasType("x-manager") || p.hasType("manager"):
			return []int{relManager}
		}
	case "X-SPOUSE", "X-EVOLUTION-SPOUSE", "X-KADDRESSBOOK-X-SPOUSESNAME":
		return []int{relSpouse}
	case "X-ASSISTANT", "X-EVOLUTION-ASSISTANT", "X-KADDRESSBOOK-X-ASSISTANTSNAME":
		return []int{relAssistant}
	case "X-MANAGER", "X-EVOLUTION-MANAGER", "X-KADDRESSBOOK-X-MANAGERSNAME":
		return []int{relManager}
	}
	return nil
}

// textRelated reports whether a RELATED holds a name rather than a URI.
func textRelated(p *prop) bool {
	if strings.EqualFold(p.param("VALUE"), "text") {
		return true
	}
	v := p.value
	i := strings.IndexByte(v, ':')
	if i <= 0 {
		return true
	}
	for j := 0; j < i; j++ {
		c := v[j]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || j > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return true
		}
	}
	return false
}

// isChild reports whether p is a RELATED naming a child.
func isChild(p *prop) bool {
	return p.name == "RELATED" && p.hasType("child") && textRelated(p)
}

// prefOf is a property's preference, 1 (most) to 100, 101 when unset.
func prefOf(p *prop) int {
	if n, err := strconv.Atoi(p.param("PREF")); err == nil && n >= 1 && n <= 100 {
		return n
	}
	if p.hasType("pref") {
		return 1
	}
	return 101
}

// assign maps the slots of f to properties of c.
func (f *family) assign(c *card) []*prop {
	type member struct {
		p    *prop
		cand []int
	}
	var ms []member
	for _, p := range c.props {
		if p.name == "" || strings.EqualFold(p.param(slotParam), noSlot) {
			continue
		}
		if cand := f.candidates(p); len(cand) > 0 {
			ms = append(ms, member{p, cand})
		}
	}
	res := make([]*prop, len(f.slots))
	used := map[*prop]bool{}
	if f.pin {
		for _, m := range ms {
			id := m.p.param(slotParam)
			if id == "" {
				continue
			}
			for _, s := range m.cand {
				if res[s] == nil && strings.EqualFold(f.slots[s].id, id) {
					res[s], used[m.p] = m.p, true
					break
				}
			}
		}
	}
	if f.byPref {
		sort.SliceStable(ms, func(i, j int) bool { return prefOf(ms[i].p) < prefOf(ms[j].p) })
	}
	for _, m := range ms {
		if used[m.p] {
			continue
		}
		for _, s := range m.cand {
			if res[s] == nil {
				res[s], used[m.p] = m.p, true
				break
			}
		}
	}
	return res
}

// emailGet renders an EMAIL: the client's "Name" <addr> form while it
// still names the stored address, else the bare address.
func emailGet(p *prop) string {
	addr := item.Clean(ics.UnescapeText(p.value))
	if orig := item.Clean(p.param(valueParam)); orig != "" {
		if a, err := mail.ParseAddress(orig); err == nil && strings.EqualFold(a.Address, addr) {
			return orig
		}
	}
	return addr
}

// emailPut stores an EAS e-mail string (RFC 5322 form, MS-ASCNTC 2.2.2
// Email1Address): EMAIL holds the address, X-EAS-VALUE the whole string when
// it has more (a display name). A string that is not an address is stored
// as it is.
func emailPut(p *prop, v string) bool {
	addr, orig := v, ""
	if a, err := mail.ParseAddress(v); err == nil && a.Address != "" {
		addr = a.Address
		if v != addr {
			orig = v
		}
	}
	p.value = ics.EscapeText(addr)
	p.setParam(valueParam, orig)
	return v != ""
}

// families are the EAS mappings of every slotted element, in the order
// Apply processes them.
var families = buildFamilies()

// Indexes of families with special roles.
const (
	famName   = 0 // N
	famOrg    = 1 // ORG
	famFileAs = 2 // FN parameter
	famEmail  = 3
)

func buildFamilies() []*family {
	textGet := func(p *prop, _ int) []string { return []string{item.Clean(ics.UnescapeText(p.value))} }
	name := &family{
		slots: []slot{{id: "Name", tags: []wbxml.Tag{wbxml.ContactsLastName, wbxml.ContactsFirstName,
			wbxml.ContactsMiddleName, wbxml.ContactsTitle, wbxml.ContactsSuffix}}},
		candidates: byName([]string{"N"}, 0),
		get: func(p *prop, _ int) []string {
			comps := components(p.value)
			out := make([]string, 5)
			for i := range out {
				out[i] = item.Clean(component(comps, i, " "))
			}
			return out
		},
		put: func(p *prop, _ int, v []string) (bool, error) {
			comps := components(p.value)
			for len(comps) < 5 {
				comps = append(comps, nil)
			}
			any := false
			for i := 0; i < 5; i++ {
				comps[i] = listOf(v[i])
				any = any || v[i] != ""
			}
			p.value = joinComponents(comps, 5)
			return any, nil
		},
		create: func(int) *prop { return &prop{name: "N"} },
	}
	org := &family{
		slots:      []slot{{id: "CompanyName", tags: []wbxml.Tag{wbxml.ContactsCompanyName, wbxml.ContactsDepartment}}},
		candidates: byName([]string{"ORG"}, 0),
		get: func(p *prop, _ int) []string {
			comps := components(p.value)
			return []string{item.Clean(component(comps, 0, ",")), item.Clean(component(comps, 1, ","))}
		},
		put: func(p *prop, _ int, v []string) (bool, error) {
			comps := components(p.value)
			for len(comps) < 2 {
				comps = append(comps, nil)
			}
			comps[0], comps[1] = listOf(v[0]), listOf(v[1])
			any := false
			for _, c := range comps {
				any = any || len(c) > 0 && strings.Join(c, "") != ""
			}
			p.value = joinComponents(comps, 1)
			return any, nil
		},
		create: func(int) *prop { return &prop{name: "ORG"} },
	}
	fileAs := &family{
		slots:      slotsOf(wbxml.ContactsFileAs),
		candidates: byName([]string{"FN"}, 0),
		get:        func(p *prop, _ int) []string { return []string{item.Clean(p.param(fileAsParam))} },
		put: func(p *prop, _ int, v []string) (bool, error) {
			p.setParam(fileAsParam, v[0])
			return true, nil
		},
		create: func(int) *prop { return &prop{name: "FN"} },
	}
	emails := &family{
		slots:      slotsOf(wbxml.ContactsEmail1Address, wbxml.ContactsEmail2Address, wbxml.ContactsEmail3Address),
		candidates: func(p *prop) []int { return ifName(p, "EMAIL", 0, 1, 2) },
		byPref:     true, pin: true,
		get: func(p *prop, _ int) []string { return []string{emailGet(p)} },
		put: func(p *prop, _ int, v []string) (bool, error) { return emailPut(p, v[0]), nil },
		create: func(s int) *prop {
			p := &prop{name: "EMAIL"}
			if s == 0 {
				p.setParam("PREF", "1")
			}
			return p
		},
	}
	uriGet := func(p *prop, _ int) []string {
		return []string{item.Clean(unescapeURI(p.value))}
	}
	uriPut := func(p *prop, _ int, v []string) (bool, error) {
		p.value = escapeURI(v[0])
		return v[0] != "", nil
	}
	phones := &family{
		slots: slotsOf(wbxml.ContactsBusinessPhoneNumber, wbxml.ContactsBusiness2PhoneNumber,
			wbxml.ContactsHomePhoneNumber, wbxml.ContactsHome2PhoneNumber, wbxml.ContactsMobilePhoneNumber,
			wbxml.ContactsCarPhoneNumber, wbxml.ContactsPagerNumber, wbxml.ContactsRadioPhoneNumber,
			wbxml.ContactsAssistantPhoneNumber, wbxml.ContactsBusinessFaxNumber, wbxml.ContactsHomeFaxNumber,
			wbxml.Contacts2CompanyMainPhone, wbxml.Contacts2MMS),
		candidates: telCandidates,
		pin:        true,
		get: func(p *prop, _ int) []string {
			v := p.value
			if strings.EqualFold(p.param("VALUE"), "uri") || strings.HasPrefix(strings.ToLower(v), "tel:") {
				v = unescapeURI(v)
				if strings.HasPrefix(strings.ToLower(v), "tel:") {
					v = v[4:]
				}
				return []string{item.Clean(v)}
			}
			return []string{item.Clean(ics.UnescapeText(v))}
		},
		put: func(p *prop, _ int, v []string) (bool, error) {
			delete(p.params, "VALUE")
			p.value = ics.EscapeText(v[0])
			return v[0] != "", nil
		},
		create: func(s int) *prop {
			p := &prop{name: "TEL"}
			for _, t := range telTypes[s] {
				p.setParamAdd("TYPE", t)
			}
			return p
		},
	}
	adrSlot := func(id string, tags ...wbxml.Tag) slot { return slot{id: id, tags: tags} }
	addresses := &family{
		slots: []slot{
			adrSlot("BusinessAddress", wbxml.ContactsBusinessAddressStreet, wbxml.ContactsBusinessAddressCity,
				wbxml.ContactsBusinessAddressState, wbxml.ContactsBusinessAddressPostalCode, wbxml.ContactsBusinessAddressCountry),
			adrSlot("HomeAddress", wbxml.ContactsHomeAddressStreet, wbxml.ContactsHomeAddressCity,
				wbxml.ContactsHomeAddressState, wbxml.ContactsHomeAddressPostalCode, wbxml.ContactsHomeAddressCountry),
			adrSlot("OtherAddress", wbxml.ContactsOtherAddressStreet, wbxml.ContactsOtherAddressCity,
				wbxml.ContactsOtherAddressState, wbxml.ContactsOtherAddressPostalCode, wbxml.ContactsOtherAddressCountry),
		},
		candidates: adrCandidates,
		pin:        true,
		// ADR components (RFC 6350 6.3.1): PO box, extended, street,
		// locality, region, postal code, country.
		get: func(p *prop, _ int) []string {
			comps := components(p.value)
			return []string{item.Clean(component(comps, 2, "\n")), item.Clean(component(comps, 3, ",")),
				item.Clean(component(comps, 4, ",")), item.Clean(component(comps, 5, ",")), item.Clean(component(comps, 6, ","))}
		},
		put: func(p *prop, _ int, v []string) (bool, error) {
			comps := components(p.value)
			for len(comps) < 7 {
				comps = append(comps, nil)
			}
			for i := 0; i < 5; i++ {
				comps[i+2] = listOf(v[i])
			}
			any := false
			for _, c := range comps {
				any = any || strings.Join(c, "") != ""
			}
			p.value = joinComponents(comps, 7)
			delete(p.params, "LABEL") // the formatted label is stale
			return any, nil
		},
		create: func(s int) *prop {
			p := &prop{name: "ADR"}
			switch s {
			case adrBusiness:
				p.setParamAdd("TYPE", "work")
			case adrHome:
				p.setParamAdd("TYPE", "home")
			}
			return p
		},
	}
	relations := &family{
		slots:      slotsOf(wbxml.ContactsSpouse, wbxml.ContactsAssistantName, wbxml.Contacts2ManagerName),
		candidates: relCandidates,
		get:        textGet,
		put: func(p *prop, _ int, v []string) (bool, error) {
			p.value = ics.EscapeText(v[0])
			if p.name == "RELATED" {
				p.setParam("VALUE", "text")
			}
			return v[0] != "", nil
		},
		create: func(s int) *prop {
			p := &prop{name: "RELATED"}
			p.setParamAdd("TYPE", []string{"spouse", "x-assistant", "x-manager"}[s])
			return p
		},
	}
	dates := &family{
		slots: slotsOf(wbxml.ContactsBirthday, wbxml.ContactsAnniversary),
		candidates: func(p *prop) []int {
			switch p.name {
			case "BDAY":
				return []int{0}
			case "ANNIVERSARY", "X-ANNIVERSARY", "X-EVOLUTION-ANNIVERSARY", "X-MS-ANNIVERSARY", "X-KADDRESSBOOK-X-ANNIVERSARY":
				return []int{1}
			}
			return nil
		},
		get: func(p *prop, _ int) []string {
			d, ok := parseVDate(ics.UnescapeText(p.value))
			if !ok {
				return []string{""}
			}
			if orig := item.Clean(p.param(valueParam)); orig != "" {
				if od, ok := parseEASDate(orig); ok && od == d {
					return []string{orig}
				}
			}
			return []string{d.eas()}
		},
		put: func(p *prop, s int, v []string) (bool, error) {
			if v[0] == "" {
				return false, nil
			}
			d, ok := parseEASDate(v[0])
			if !ok {
				return false, item.Invalidf("%s %q is not a date", []string{"Birthday", "Anniversary"}[s], v[0])
			}
			p.params = nil
			p.value = d.vcard()
			if v[0] != d.eas() {
				p.setParam(valueParam, v[0])
			}
			return true, nil
		},
		create: func(s int) *prop { return &prop{name: []string{"BDAY", "ANNIVERSARY"}[s]} },
	}
	return []*family{
		famName:   name,
		famOrg:    org,
		famFileAs: fileAs,
		famEmail:  emails,
		phones, addresses, relations, dates,
		{
			slots:      slotsOf(wbxml.Contacts2IMAddress, wbxml.Contacts2IMAddress2, wbxml.Contacts2IMAddress3),
			candidates: func(p *prop) []int { return ifName(p, "IMPP", 0, 1, 2) },
			byPref:     true, pin: true,
			get: uriGet, put: uriPut,
			create: func(int) *prop { return &prop{name: "IMPP"} },
		},
		{
			slots:      slotsOf(wbxml.ContactsWebPage),
			candidates: func(p *prop) []int { return ifName(p, "URL", 0) },
			byPref:     true,
			get:        uriGet, put: uriPut,
			create: func(int) *prop { return &prop{name: "URL"} },
		},
		single(wbxml.ContactsJobTitle, "TITLE"),
		single(wbxml.Contacts2NickName, "NICKNAME"),
		single(wbxml.ContactsOfficeLocation, "X-EAS-OFFICELOCATION", "X-KADDRESSBOOK-X-OFFICE"),
		// Phonetic names as Apple and Android write them.
		single(wbxml.ContactsYomiFirstName, "X-PHONETIC-FIRST-NAME"),
		single(wbxml.ContactsYomiLastName, "X-PHONETIC-LAST-NAME"),
		single(wbxml.ContactsYomiCompanyName, "X-PHONETIC-ORG"),
		single(wbxml.Contacts2CustomerId, "X-EAS-CUSTOMERID"),
		single(wbxml.Contacts2GovernmentId, "X-EAS-GOVERNMENTID"),
		single(wbxml.Contacts2AccountName, "X-EAS-ACCOUNTNAME"),
		single(wbxml.ContactsAlias, "X-EAS-ALIAS"),
		single(wbxml.ContactsWeightedRank, "X-EAS-WEIGHTEDRANK"),
	}
}

// ifName returns slots when p is named name.
func ifName(p *prop, name string, slots ...int) []int {
	if p.name == name {
		return slots
	}
	return nil
}

// listOf makes a one-value component list ("" is empty).
func listOf(v string) []string {
	if v == "" {
		return nil
	}
	return []string{v}
}

// setParamAdd adds value v to parameter k.
func (p *prop) setParamAdd(k, v string) {
	if p.params == nil {
		p.params = map[string][]string{}
	}
	p.params.Add(k, v)
}
