package contacts

import (
	"bytes"
	"encoding/base64"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand"
	"strings"
	"testing"

	"github.com/easd/easd/eas/email"
	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/wbxml"
)

func app(children ...*wbxml.Node) *wbxml.Node {
	return wbxml.E(wbxml.AirSyncApplicationData, children...)
}

func mustApply(t *testing.T, stored []byte, a *wbxml.Node, v string) []byte {
	t.Helper()
	out, _, err := Codec{}.Apply(stored, a, opts(v))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return out
}

func mustRender(t *testing.T, stored []byte, v string, prefs ...email.BodyPreference) *wbxml.Node {
	t.Helper()
	o := opts(v)
	o.BodyPrefs = prefs
	n, err := Codec{}.Render(stored, o)
	if err != nil {
		t.Fatalf("Render: %v\n%s", err, stored)
	}
	return n
}

func vcf(lines ...string) []byte {
	return []byte("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:u\r\n" + strings.Join(lines, "\r\n") + "\r\nEND:VCARD\r\n")
}

// TestBodyPreferences: truncation on a character boundary, AllOrNone,
// Preview only from 14.0, HTML kept while NOTE matches it.
func TestBodyPreferences(t *testing.T) {
	text := strings.Repeat("é", 50) // 100 bytes
	stored := vcf("FN:x", "NOTE:"+text)
	b := mustRender(t, stored, "14.1", email.BodyPreference{Type: 1, TruncationSize: 11}).Child(wbxml.AirSyncBaseBody)
	if b.ChildText(wbxml.AirSyncBaseEstimatedDataSize) != "100" || b.ChildText(wbxml.AirSyncBaseTruncated) != "1" ||
		b.ChildText(wbxml.AirSyncBaseData) != strings.Repeat("é", 5) {
		t.Fatalf("truncated body: %s", b)
	}
	b = mustRender(t, stored, "14.1",
		email.BodyPreference{Type: 1, TruncationSize: 10, AllOrNone: true},
		email.BodyPreference{Type: 2, Preview: 3}).Child(wbxml.AirSyncBaseBody)
	if b.ChildText(wbxml.AirSyncBaseType) != "2" || !strings.Contains(b.ChildText(wbxml.AirSyncBaseData), text) ||
		b.ChildText(wbxml.AirSyncBasePreview) != "ééé" {
		t.Fatalf("AllOrNone fallback: %s", b)
	}
	b = mustRender(t, stored, "12.1", email.BodyPreference{Type: 2, Preview: 3, TruncationSize: 5, AllOrNone: true}).Child(wbxml.AirSyncBaseBody)
	if b.Child(wbxml.AirSyncBaseData) != nil || b.Child(wbxml.AirSyncBasePreview) != nil || b.ChildText(wbxml.AirSyncBaseTruncated) != "1" {
		t.Fatalf("AllOrNone without fallback in 12.1: %s", b)
	}
	html := "<p>Hello <b>you</b></p>"
	withHTML := mustApply(t, nil, app(wbxml.E(wbxml.AirSyncBaseBody,
		wbxml.T(wbxml.AirSyncBaseType, "2"), wbxml.T(wbxml.AirSyncBaseData, html))), "16.1")
	if got := mustRender(t, withHTML, "16.1", email.BodyPreference{Type: 2}).Child(wbxml.AirSyncBaseBody).ChildText(wbxml.AirSyncBaseData); got != html {
		t.Fatalf("HTML body = %q", got)
	}
	if got := mustRender(t, withHTML, "16.1").Child(wbxml.AirSyncBaseBody).ChildText(wbxml.AirSyncBaseData); got != html {
		t.Fatalf("native HTML body without preference = %q", got)
	}
	if got := mustRender(t, withHTML, "16.1", email.BodyPreference{Type: 1}).Child(wbxml.AirSyncBaseBody).ChildText(wbxml.AirSyncBaseData); got != "Hello you" {
		t.Fatalf("text of HTML body = %q", got)
	}
	// A CardDAV client edits NOTE: the HTML is stale and not sent.
	edited := bytes.Replace(withHTML, []byte("NOTE:Hello you"), []byte("NOTE:Bye"), 1)
	if got := mustRender(t, edited, "16.1", email.BodyPreference{Type: 2}).Child(wbxml.AirSyncBaseBody).ChildText(wbxml.AirSyncBaseData); got != item.TextToHTML("Bye") {
		t.Fatalf("stale HTML sent: %q\n%s", got, edited)
	}
	// A body without Data (or truncated) keeps the stored one.
	kept := mustApply(t, stored, app(wbxml.E(wbxml.AirSyncBaseBody, wbxml.T(wbxml.AirSyncBaseType, "1"),
		wbxml.T(wbxml.AirSyncBaseTruncated, "1"), wbxml.T(wbxml.AirSyncBaseData, "é"))), "16.1")
	if got := mustRender(t, kept, "16.1").Child(wbxml.AirSyncBaseBody).ChildText(wbxml.AirSyncBaseData); got != text {
		t.Fatalf("truncated body replaced the stored one: %q", got)
	}
}

// bigPNG is a noisy w x h PNG (hundreds of KB).
func bigPNG(t *testing.T, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewSource(5))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(r.Intn(256)), uint8(x), uint8(y), 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestPictureScaled: a stored photo over 48 KB is sent scaled down as a
// JPEG that fits; sending it back keeps the original.
func TestPictureScaled(t *testing.T) {
	raw := bigPNG(t, 900, 600)
	stored := vcf("FN:x", "PHOTO:data:image/png;base64,"+base64.StdEncoding.EncodeToString(raw))
	n := mustRender(t, stored, "16.1")
	pic := n.ChildText(wbxml.ContactsPicture)
	if pic == "" || len(pic) > MaxPicture {
		t.Fatalf("picture of %d bytes", len(pic))
	}
	b, _ := base64.StdEncoding.DecodeString(pic)
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(b))
	if err != nil || cfg.Width > 512 || cfg.Width != 512 || cfg.Height < 340 || cfg.Height > 342 {
		t.Fatalf("scaled picture %dx%d, %v", cfg.Width, cfg.Height, err)
	}
	if got := mustApply(t, stored, n, "16.1"); !bytes.Equal(got, stored) {
		t.Fatal("sending the scaled picture back replaced the original")
	}
	small := base64.StdEncoding.EncodeToString([]byte("\xff\xd8\xff\xe0 tiny"))
	changed := mustApply(t, stored, with(n, wbxml.ContactsPicture, small), "16.1")
	if got := mustRender(t, changed, "16.1").ChildText(wbxml.ContactsPicture); got != small {
		t.Fatalf("new picture = %.20q", got)
	}
	if !bytes.Contains(changed, []byte("PHOTO:data:image/jpeg;base64,")) {
		t.Fatalf("PHOTO not a JPEG data URI:\n%s", changed)
	}
	gone := mustApply(t, changed, with(n, wbxml.ContactsPicture, ""), "16.1")
	if bytes.Contains(gone, []byte("PHOTO")) {
		t.Fatalf("empty Picture did not remove the photo:\n%s", gone)
	}
}

// TestSlotsStable: removing one phone keeps the others in their slots,
// and a number the client never saw does not move into the freed slot.
func TestSlotsStable(t *testing.T) {
	stored := vcf("FN:x", "TEL;TYPE=work:1", "TEL;TYPE=work:2", "TEL;TYPE=work:3", "TEL;TYPE=cell:4")
	n := mustRender(t, stored, "14.1")
	if n.ChildText(wbxml.ContactsBusinessPhoneNumber) != "1" || n.ChildText(wbxml.ContactsBusiness2PhoneNumber) != "2" ||
		n.ChildText(wbxml.ContactsMobilePhoneNumber) != "4" {
		t.Fatalf("slots: %s", n)
	}
	changed := mustApply(t, stored, without(n, wbxml.ContactsBusinessPhoneNumber), "14.1")
	got := mustRender(t, changed, "14.1")
	if got.Child(wbxml.ContactsBusinessPhoneNumber) != nil || got.ChildText(wbxml.ContactsBusiness2PhoneNumber) != "2" ||
		got.ChildText(wbxml.ContactsMobilePhoneNumber) != "4" {
		t.Fatalf("after removing BusinessPhoneNumber: %s\n%s", got, changed)
	}
	if !bytes.Contains(changed, []byte("X-EAS-SLOT=none:3")) {
		t.Fatalf("unseen number not kept out of the slots:\n%s", changed)
	}
	// Home2 set alone stays Home2.
	h2 := mustApply(t, nil, app(wbxml.T(wbxml.ContactsHome2PhoneNumber, "9")), "14.1")
	if got := mustRender(t, h2, "14.1"); got.ChildText(wbxml.ContactsHome2PhoneNumber) != "9" || got.Child(wbxml.ContactsHomePhoneNumber) != nil {
		t.Fatalf("Home2 alone: %s", got)
	}
}

// TestUpgrade30: a vCard 3.0 that a client changes becomes 4.0; what EAS
// does not carry is kept.
func TestUpgrade30(t *testing.T) {
	stored := []byte("BEGIN:VCARD\r\nVERSION:3.0\r\nN:Doe;Jane;;;\r\nFN:Jane Doe\r\nTEL;TYPE=HOME,PREF:1\r\n" +
		"PHOTO;ENCODING=b;TYPE=PNG:iVBORw0KGgo=\r\nX-SOCIALPROFILE;type=twitter:x.com/jane\r\nEND:VCARD\r\n")
	n := mustRender(t, stored, "16.1")
	changed := mustApply(t, stored, with(n, wbxml.ContactsJobTitle, "CEO"), "16.1")
	for _, want := range []string{"VERSION:4.0", "TEL;PREF=1;TYPE=HOME:1", "PHOTO:data:image/png;base64,iVBORw0KGgo=",
		"X-SOCIALPROFILE;TYPE=twitter:x.com/jane", "TITLE:CEO", "REV:20240305T143000Z"} {
		if !bytes.Contains(changed, []byte(want)) {
			t.Errorf("missing %q in\n%s", want, changed)
		}
	}
}

// TestNameFromFN: a card with only FN shows it as FirstName; a change
// makes it a real N and FN follows the name.
func TestNameFromFN(t *testing.T) {
	stored := vcf("FN:Pizza Place", "TEL;TYPE=work:1")
	n := mustRender(t, stored, "14.1")
	if n.ChildText(wbxml.ContactsFirstName) != "Pizza Place" {
		t.Fatalf("FirstName from FN: %s", n)
	}
	c1 := mustApply(t, stored, with(n, wbxml.ContactsBusinessPhoneNumber, "2"), "14.1")
	if !bytes.Contains(c1, []byte("N:;Pizza Place;;;")) || !bytes.Contains(c1, []byte("FN:Pizza Place")) {
		t.Fatalf("N not materialised:\n%s", c1)
	}
	c2 := mustApply(t, c1, with(mustRender(t, c1, "14.1"), wbxml.ContactsFirstName, "Pizza Palace"), "14.1")
	if !bytes.Contains(c2, []byte("FN:Pizza Palace")) {
		t.Fatalf("FN did not follow:\n%s", c2)
	}
	emptyN := vcf("N:;;;;", "FN:Pizza Place")
	c4 := mustApply(t, emptyN, with(mustRender(t, emptyN, "14.1"), wbxml.ContactsJobTitle, "Chef"), "14.1")
	if bytes.Count(c4, []byte("\nN:")) != 1 || !bytes.Contains(c4, []byte("N:;Pizza Place;;;")) {
		t.Fatalf("empty N not filled:\n%s", c4)
	}
	custom := vcf("N:Smith;Bob;;;", "FN:Bob the Builder")
	c3 := mustApply(t, custom, with(mustRender(t, custom, "14.1"), wbxml.ContactsFirstName, "Robert"), "14.1")
	if !bytes.Contains(c3, []byte("FN:Bob the Builder")) {
		t.Fatalf("custom FN overwritten:\n%s", c3)
	}
}

// TestEmailAndFileAs: the client's address form comes back while the
// address is unchanged; a CardDAV edit of the address or of FN drops the
// stale EAS form.
func TestEmailAndFileAs(t *testing.T) {
	stored := mustApply(t, nil, app(wbxml.T(wbxml.ContactsEmail1Address, `"Jane Doe" <jane@example.com>`),
		wbxml.T(wbxml.ContactsFileAs, "Doe, Jane"), wbxml.T(wbxml.ContactsFirstName, "Jane")), "16.1")
	n := mustRender(t, stored, "16.1")
	if n.ChildText(wbxml.ContactsEmail1Address) != `"Jane Doe" <jane@example.com>` || n.ChildText(wbxml.ContactsFileAs) != "Doe, Jane" {
		t.Fatalf("rendered %s", n)
	}
	edited := bytes.Replace(stored, []byte(":jane@example.com"), []byte(":jd@example.com"), 1)
	edited = bytes.Replace(edited, []byte(`FN;X-EAS-FILEAS="Doe, Jane":Jane`), []byte("FN:Janet"), 1)
	n = mustRender(t, edited, "16.1")
	if n.ChildText(wbxml.ContactsEmail1Address) != "jd@example.com" || n.Child(wbxml.ContactsFileAs) != nil {
		t.Fatalf("after CardDAV edits: %s\n%s", n, edited)
	}
}

// TestVersionGating: Alias and WeightedRank exist from 14.0; a 12.1
// client cannot send them, so its changes keep them.
func TestVersionGating(t *testing.T) {
	stored := mustApply(t, nil, app(wbxml.T(wbxml.ContactsAlias, "jd"), wbxml.T(wbxml.ContactsWeightedRank, "3"),
		wbxml.T(wbxml.ContactsLastName, "Doe")), "14.1")
	n := mustRender(t, stored, "12.1")
	if n.Child(wbxml.ContactsAlias) != nil || n.Child(wbxml.ContactsWeightedRank) != nil {
		t.Fatalf("12.1 rendering has 14.0 elements: %s", n)
	}
	changed := mustApply(t, stored, with(n, wbxml.ContactsLastName, "Roe"), "12.1")
	if got := mustRender(t, changed, "14.1"); got.ChildText(wbxml.ContactsAlias) != "jd" || got.ChildText(wbxml.ContactsWeightedRank) != "3" {
		t.Fatalf("12.1 change dropped Alias/WeightedRank: %s", got)
	}
}

// TestEscaping: values with vCard delimiters survive in structured
// properties (go-vcard's encoder would split "Smith;Jones").
func TestEscaping(t *testing.T) {
	stored := mustApply(t, nil, app(wbxml.T(wbxml.ContactsLastName, `Smith;Jones, Jr\`),
		wbxml.T(wbxml.ContactsHomeAddressStreet, "1 Main St\nFloor 2; rear"),
		wbxml.E(wbxml.ContactsCategories, wbxml.T(wbxml.ContactsCategory, "a,b"), wbxml.T(wbxml.ContactsCategory, "c"))), "16.1")
	for _, want := range []string{`N:Smith\;Jones\, Jr\\;;;;`, `:;;1 Main St\nFloor 2\; rear;;;;`, `CATEGORIES:a\,b,c`} {
		if !bytes.Contains(stored, []byte(want)) {
			t.Errorf("missing %s in\n%s", want, stored)
		}
	}
	n := mustRender(t, stored, "16.1")
	if n.ChildText(wbxml.ContactsLastName) != `Smith;Jones, Jr\` || n.ChildText(wbxml.ContactsHomeAddressStreet) != "1 Main St\nFloor 2; rear" {
		t.Fatalf("rendered %s", n)
	}
	long := mustApply(t, nil, app(wbxml.T(wbxml.ContactsJobTitle, strings.Repeat("日本", 100))), "16.1")
	for _, l := range strings.Split(string(long), "\r\n") {
		if len(l) > 75 {
			t.Fatalf("line of %d octets not folded", len(l))
		}
	}
}
