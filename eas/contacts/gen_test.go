package contacts

import (
	"encoding/base64"
	"fmt"
	"math/rand"
	"sort"
	"strings"

	"github.com/easd/easd/eas/email"
	"github.com/easd/easd/eas/item/ics"
	"github.com/easd/easd/wbxml"
)

// This file generates the seeded corpora of the property tests: EAS
// ApplicationData as phones send it, and vCards as CardDAV clients and
// other servers write them.

// corpusSize is the number of generated items per property test.
const corpusSize = 500

// versions are the protocol versions whose field sets differ.
var versions = []string{"12.1", "14.1", "16.1"}

// runePool feeds random text: escapes of vCard (\ , ; :), of RFC 6868
// (^ "), of XML and HTML, line breaks, tabs and non-ASCII.
var runePool = []rune("abcdefghijKLMNOPQ 0123456789 ,;:\\\"'^<>&=.-_/@\n\téüßñ日本語Ωж😀\u0301")

func randText(r *rand.Rand, max int) string {
	n := 1 + r.Intn(max)
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteRune(runePool[r.Intn(len(runePool))])
	}
	return b.String()
}

// randWord is text without line breaks and markup.
func randWord(r *rand.Rand) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéü日"
	rs := []rune(letters)
	n := 1 + r.Intn(10)
	out := make([]rune, n)
	for i := range out {
		out[i] = rs[r.Intn(len(rs))]
	}
	return string(out)
}

func randEmail(r *rand.Rand) string {
	addr := strings.ToLower(randAlnum(r, 8)) + "@" + strings.ToLower(randAlnum(r, 6)) + ".example"
	switch r.Intn(5) {
	case 0:
		return `"` + randWord(r) + " " + randWord(r) + `" <` + addr + ">"
	case 1:
		return randAlnum(r, 5) + " <" + addr + ">"
	case 2:
		return "<" + addr + ">"
	case 3:
		return randText(r, 12) // not an address at all: stored as is
	}
	return addr
}

func randAlnum(r *rand.Rand, n int) string {
	const s = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 1+r.Intn(n))
	for i := range b {
		b[i] = s[r.Intn(len(s))]
	}
	return string(b)
}

func randPhone(r *rand.Rand) string {
	switch r.Intn(3) {
	case 0:
		return fmt.Sprintf("+%d (%03d) %03d-%04d", 1+r.Intn(99), r.Intn(1000), r.Intn(1000), r.Intn(10000))
	case 1:
		return fmt.Sprintf("%d", r.Int63n(1e12))
	}
	return randText(r, 15)
}

// randEASDate returns a Birthday/Anniversary in the forms clients send.
func randEASDate(r *rand.Rand) string {
	y, m, d := 1900+r.Intn(130), 1+r.Intn(12), 1+r.Intn(28)
	if r.Intn(10) == 0 {
		y = noYear
	}
	switch r.Intn(7) {
	case 0:
		return fmt.Sprintf("%04d-%02d-%02dT00:00:00.000Z", y, m, d)
	case 1:
		return fmt.Sprintf("%04d-%02d-%02dT%02d:00:00.000Z", y, m, d, r.Intn(24))
	case 2:
		return fmt.Sprintf("%04d-%02d-%02dT00:00:00+14:00", y, m, d)
	case 3:
		return fmt.Sprintf("%04d-%02d-%02d", y, m, d)
	case 4:
		return fmt.Sprintf("%04d%02d%02dT000000Z", y, m, d)
	case 5:
		return fmt.Sprintf("%04d-%02d-%02dT00:00:00-11:00", y, m, d)
	}
	return fmt.Sprintf("%04d-%02d-%02dT11:59:00.000Z", y, m, d)
}

func randPicture(r *rand.Rand) string {
	b := make([]byte, 1+r.Intn(3000))
	r.Read(b)
	if r.Intn(2) == 0 {
		copy(b, "\xff\xd8\xff\xe0")
	}
	return base64.StdEncoding.EncodeToString(b)
}

// fieldKind generates the value of one element.
type fieldKind func(r *rand.Rand) string

func textKind(max int) fieldKind { return func(r *rand.Rand) string { return randText(r, max) } }

// genFields are the single-valued elements and their generators.
var genFields = []struct {
	tag  wbxml.Tag
	kind fieldKind
}{
	{wbxml.ContactsFileAs, textKind(20)},
	{wbxml.ContactsFirstName, textKind(12)}, {wbxml.ContactsMiddleName, textKind(8)},
	{wbxml.ContactsLastName, textKind(12)}, {wbxml.ContactsTitle, textKind(5)}, {wbxml.ContactsSuffix, textKind(5)},
	{wbxml.ContactsYomiFirstName, textKind(8)}, {wbxml.ContactsYomiLastName, textKind(8)},
	{wbxml.ContactsYomiCompanyName, textKind(8)}, {wbxml.ContactsCompanyName, textKind(15)},
	{wbxml.ContactsDepartment, textKind(10)}, {wbxml.ContactsOfficeLocation, textKind(10)},
	{wbxml.ContactsJobTitle, textKind(10)},
	{wbxml.ContactsEmail1Address, randEmail}, {wbxml.ContactsEmail2Address, randEmail},
	{wbxml.ContactsEmail3Address, randEmail},
	{wbxml.ContactsBusinessPhoneNumber, randPhone}, {wbxml.ContactsBusiness2PhoneNumber, randPhone},
	{wbxml.ContactsHomePhoneNumber, randPhone}, {wbxml.ContactsHome2PhoneNumber, randPhone},
	{wbxml.ContactsMobilePhoneNumber, randPhone}, {wbxml.ContactsCarPhoneNumber, randPhone},
	{wbxml.ContactsPagerNumber, randPhone}, {wbxml.ContactsRadioPhoneNumber, randPhone},
	{wbxml.ContactsAssistantPhoneNumber, randPhone}, {wbxml.ContactsBusinessFaxNumber, randPhone},
	{wbxml.ContactsHomeFaxNumber, randPhone}, {wbxml.Contacts2CompanyMainPhone, randPhone},
	{wbxml.Contacts2MMS, randPhone},
	{wbxml.ContactsBusinessAddressStreet, textKind(20)}, {wbxml.ContactsBusinessAddressCity, textKind(10)},
	{wbxml.ContactsBusinessAddressState, textKind(5)}, {wbxml.ContactsBusinessAddressPostalCode, textKind(6)},
	{wbxml.ContactsBusinessAddressCountry, textKind(8)},
	{wbxml.ContactsHomeAddressStreet, textKind(20)}, {wbxml.ContactsHomeAddressCity, textKind(10)},
	{wbxml.ContactsHomeAddressState, textKind(5)}, {wbxml.ContactsHomeAddressPostalCode, textKind(6)},
	{wbxml.ContactsHomeAddressCountry, textKind(8)},
	{wbxml.ContactsOtherAddressStreet, textKind(20)}, {wbxml.ContactsOtherAddressCity, textKind(10)},
	{wbxml.ContactsOtherAddressState, textKind(5)}, {wbxml.ContactsOtherAddressPostalCode, textKind(6)},
	{wbxml.ContactsOtherAddressCountry, textKind(8)},
	{wbxml.ContactsWebPage, func(r *rand.Rand) string {
		if r.Intn(2) == 0 {
			return "https://" + randAlnum(r, 10) + ".example/" + randAlnum(r, 5) + "?a=1,2"
		}
		return randText(r, 15)
	}},
	{wbxml.ContactsBirthday, randEASDate}, {wbxml.ContactsAnniversary, randEASDate},
	{wbxml.ContactsSpouse, textKind(12)}, {wbxml.ContactsAssistantName, textKind(12)},
	{wbxml.Contacts2ManagerName, textKind(12)}, {wbxml.Contacts2NickName, textKind(10)},
	{wbxml.Contacts2IMAddress, textKind(15)}, {wbxml.Contacts2IMAddress2, textKind(15)},
	{wbxml.Contacts2IMAddress3, textKind(15)},
	{wbxml.Contacts2CustomerId, textKind(8)}, {wbxml.Contacts2GovernmentId, textKind(8)},
	{wbxml.Contacts2AccountName, textKind(8)},
	{wbxml.ContactsAlias, textKind(8)},
	{wbxml.ContactsWeightedRank, func(r *rand.Rand) string { return fmt.Sprint(r.Intn(1000)) }},
	{wbxml.ContactsPicture, randPicture},
}

// genItem is one generated client item and how to render it back.
type genItem struct {
	app      *wbxml.Node
	bodyType int // 0: no body
}

// genApp generates a client ApplicationData for protocol version v.
func genApp(r *rand.Rand, v string) genItem {
	ad := wbxml.E(wbxml.AirSyncApplicationData)
	density := 0.15 + 0.6*r.Float64()
	for _, f := range genFields {
		if !supported(f.tag, v) || r.Float64() > density {
			continue
		}
		ad.Append(wbxml.T(f.tag, f.kind(r)))
	}
	list := func(t, child wbxml.Tag) {
		if r.Float64() > density {
			return
		}
		n := wbxml.E(t)
		for i := 0; i < 1+r.Intn(4); i++ {
			n.Append(wbxml.T(child, randText(r, 10)))
		}
		ad.Append(n)
	}
	list(wbxml.ContactsCategories, wbxml.ContactsCategory)
	list(wbxml.ContactsChildren, wbxml.ContactsChild)
	it := genItem{app: ad}
	if r.Float64() < density {
		it.bodyType = 1 + r.Intn(2)
		data := randText(r, 200)
		if it.bodyType == 2 {
			data = "<html><body><p>" + strings.ReplaceAll(randWord(r), "&", "&amp;") + "</p><div>" +
				randWord(r) + "<br>" + randWord(r) + "</div></body></html>"
		}
		ad.Append(wbxml.E(wbxml.AirSyncBaseBody,
			wbxml.T(wbxml.AirSyncBaseType, fmt.Sprint(it.bodyType)),
			wbxml.T(wbxml.AirSyncBaseData, data)))
	}
	return it
}

// prefsFor asks the body back in the type it was sent in.
func (it genItem) prefsFor() []email.BodyPreference {
	if it.bodyType == 0 {
		return nil
	}
	return []email.BodyPreference{{Type: it.bodyType}}
}

// normalize lists an ApplicationData as sorted "element=value" lines;
// Body is reduced to its Type and Data.
func normalize(n *wbxml.Node) []string {
	var out []string
	for _, c := range n.Children {
		switch {
		case c.Tag == wbxml.AirSyncBaseBody:
			out = append(out, fmt.Sprintf("Body type=%s data=%q", c.ChildText(wbxml.AirSyncBaseType), c.ChildText(wbxml.AirSyncBaseData)))
		case len(c.Children) > 0:
			var vs []string
			for _, x := range c.Children {
				vs = append(vs, x.Text())
			}
			out = append(out, fmt.Sprintf("%s=%q", c.Tag, vs))
		default:
			out = append(out, fmt.Sprintf("%s=%q", c.Tag, c.Text()))
		}
	}
	sort.Strings(out)
	return out
}

// without returns a copy of app without the element t.
func without(app *wbxml.Node, t wbxml.Tag) *wbxml.Node {
	out := wbxml.E(app.Tag)
	for _, c := range app.Children {
		if c.Tag != t {
			out.Append(c)
		}
	}
	return out
}

// with returns a copy of app with element t set to s (replaced or added).
func with(app *wbxml.Node, t wbxml.Tag, s string) *wbxml.Node {
	out := without(app, t)
	return out.Append(wbxml.T(t, s))
}

// foreignLines are properties other clients write, used to build foreign
// vCards; %s is replaced by random text (escaped as needed).
var foreignLines = []string{
	"FN:%s", "N:%s;%s;;Dr.;", "N:;;;;", "N:A\\,B,C;D;E,F;;", "ORG:%s;%s;Unit",
	"TITLE:%s", "TITLE:second title", "NICKNAME:Bob,Bobby",
	"TEL;TYPE=work,voice:+1 555 0100", "TEL;TYPE=WORK:+1 555 0101", "TEL;TYPE=work:+1 555 0102",
	"TEL;TYPE=home:555 0200", "TEL;TYPE=cell;PREF=1:555 0300", "TEL;TYPE=fax:555 0400",
	"TEL;TYPE=pager:555 0500", "TEL:555 0600", "TEL;VALUE=uri;TYPE=voice:tel:+1-555-0700",
	"TEL;TYPE=main:555 0800", "TEL;TYPE=x-radio:555", "item1.TEL:+49 30 1234",
	"item1.X-ABLabel:_$!<Other>!$_", "TEL;TYPE=work;X-EAS-SLOT=HomePhoneNumber:mismatched slot",
	"TEL;TYPE=cell;X-EAS-SLOT=none:hidden", "TEL;TYPE=home;X-EAS-SLOT=Home2PhoneNumber:pinned home2",
	"EMAIL;TYPE=internet:a@example.com", "EMAIL;PREF=1:pref@example.com", "EMAIL:%s",
	"EMAIL;X-EAS-VALUE=\"Stale <other@example.com>\":b@example.com", "EMAIL;TYPE=work:c@example.com",
	"EMAIL:d@example.com",
	"ADR;TYPE=work:PO 1;Suite 2;%s;%s;ST;12345;%s", "ADR;TYPE=home;LABEL=\"1 Main St\\nTown\":;;1 Main St;Town;;;",
	"ADR:;;Other St;;;;", "ADR;TYPE=postal:;;Street A,Line 2;City;;;",
	"BDAY:19800517", "BDAY:1980-05-17", "BDAY:--0517", "BDAY:19800517T230000Z", "BDAY;VALUE=text:circa 1800",
	"BDAY;X-EAS-VALUE=1980-05-16T22:00:00.000Z:19800517", "ANNIVERSARY:20100620", "X-ANNIVERSARY:2011-07-01",
	"PHOTO:data:image/png;base64,iVBORw0KGgo=", "PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRg==",
	"PHOTO;VALUE=uri:https://example.com/a.jpg",
	"NOTE:%s", "X-ALT-DESC;FMTTYPE=text/html:<p>stale</p>",
	"CATEGORIES:%s,%s", "CATEGORIES:Work",
	"RELATED;TYPE=spouse;VALUE=text:%s", "RELATED;TYPE=child:Kid One", "RELATED;TYPE=child;VALUE=text:%s",
	"RELATED;TYPE=friend:urn:uuid:03a0e51f-d1aa-4385-8a53-e29025acd8af", "X-EVOLUTION-MANAGER:%s",
	"RELATED;TYPE=x-assistant:%s",
	"IMPP;PREF=1:xmpp:alice@example.com", "IMPP;X-SERVICE-TYPE=Skype:skype:alice", "URL:https://example.com/a,b",
	"URL;TYPE=work:https://work.example.com",
	"X-PHONETIC-FIRST-NAME:%s", "X-PHONETIC-LAST-NAME:%s", "X-EAS-ALIAS:%s", "X-EAS-WEIGHTEDRANK:7",
	"GEO:geo:37.386013,-122.082932", "KEY;MEDIATYPE=application/pgp-keys:https://example.com/key.asc",
	"X-FOO;BAR=\"baz,qux\";ZZ=^'q^':value\\, with comma", "LANG;PREF=1:fr-CA", "GENDER:F",
	"this line is not a property", "X-MS-OL-DESIGN;CHARSET=utf-8:<card/>", "KIND:individual",
	"FN;LANGUAGE=ja;ALTID=1:%s", "X-EAS-OFFICELOCATION:%s", "SOURCE:https://example.com/c.vcf",
}

// genCard builds a foreign vCard: VERSION, UID and random lines.
func genCard(r *rand.Rand) []byte {
	var b strings.Builder
	b.WriteString("BEGIN:VCARD\r\n")
	ver := "4.0"
	if r.Intn(4) == 0 {
		ver = "3.0"
	}
	fmt.Fprintf(&b, "VERSION:%s\r\nUID:urn:uuid:%08x\r\n", ver, r.Uint32())
	n := 1 + r.Intn(20)
	for i := 0; i < n; i++ {
		l := foreignLines[r.Intn(len(foreignLines))]
		for strings.Contains(l, "%s") {
			l = strings.Replace(l, "%s", ics.EscapeText(randText(r, 10)), 1)
		}
		// fold some lines the way other producers do
		if len(l) > 20 && r.Intn(3) == 0 {
			l = l[:10] + "\r\n " + l[10:]
		}
		b.WriteString(l + "\r\n")
	}
	b.WriteString("END:VCARD\r\n")
	return []byte(b.String())
}
