package contacts

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/easd/easd/eas/email"
	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/wbxml"
	"github.com/google/go-cmp/cmp"
)

func opts(v string) item.Options {
	n := 0
	return item.Options{
		Version: v,
		Now:     func() time.Time { return time.Date(2024, 3, 5, 14, 30, 0, 0, time.UTC) },
		NewUID:  func() string { n++; return fmt.Sprintf("urn:uuid:test-%d", n) },
	}
}

// TestRoundTripApplicationData: ApplicationData -> Apply -> Render gives
// the same ApplicationData, for 12.1, 14.1 and 16.1, and applying the
// rendered data again changes nothing.
func TestRoundTripApplicationData(t *testing.T) {
	for _, v := range versions {
		r := rand.New(rand.NewSource(1))
		for i := 0; i < corpusSize; i++ {
			it := genApp(r, v)
			o := opts(v)
			stored, ix, err := Codec{}.Apply(nil, it.app, o)
			if err != nil {
				t.Fatalf("%s #%d: Apply: %v\n%s", v, i, err, it.app)
			}
			if ix.UID == "" {
				t.Fatalf("%s #%d: no UID", v, i)
			}
			o.BodyPrefs = it.prefsFor()
			got, err := Codec{}.Render(stored, o)
			if err != nil {
				t.Fatalf("%s #%d: Render: %v", v, i, err)
			}
			if d := cmp.Diff(normalize(it.app), normalize(got)); d != "" {
				t.Fatalf("%s #%d: round trip (-sent +rendered):\n%s\nstored:\n%s", v, i, d, stored)
			}
			again, _, err := Codec{}.Apply(stored, got, o)
			if err != nil || !bytes.Equal(again, stored) {
				t.Fatalf("%s #%d: re-Apply of the rendered data changed the item (%v):\n%s\n---\n%s", v, i, err, stored, again)
			}
		}
	}
}

// TestRoundTripVCard: a foreign vCard -> Render -> Apply(unchanged) keeps
// the stored text (byte for byte), whatever the body preference; changing
// one field keeps every property the change does not concern.
func TestRoundTripVCard(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	prefs := [][]email.BodyPreference{nil, {{Type: 1}}, {{Type: 2}}, {{Type: 4}, {Type: 2}}}
	for i := 0; i < corpusSize; i++ {
		stored := genCard(r)
		v := versions[i%len(versions)]
		o := opts(v)
		o.BodyPrefs = prefs[i%len(prefs)]
		app, err := Codec{}.Render(stored, o)
		if err != nil {
			t.Fatalf("#%d: Render: %v\n%s", i, err, stored)
		}
		got, _, err := Codec{}.Apply(stored, app, o)
		if err != nil {
			t.Fatalf("#%d: Apply: %v\n%s", i, err, stored)
		}
		if !bytes.Equal(got, stored) {
			t.Fatalf("#%d: unchanged Apply changed the vCard:\n%s\n---\n%s", i, stored, got)
		}
		if bytes.Contains(stored, []byte("VERSION:3.0")) {
			continue
		}
		changed, _, err := Codec{}.Apply(stored, with(app, wbxml.ContactsJobTitle, "Changed title"), o)
		if err != nil {
			t.Fatalf("#%d: Apply change: %v", i, err)
		}
		before, after := propLines(t, stored), propLines(t, changed)
		for line, n := range before {
			name := strings.SplitN(line, "|", 3)[1]
			if name == "TITLE" || name == "REV" || name == "FN" || name == "N" {
				continue // the changed field, and what follows the change
			}
			if after[line] < n {
				t.Fatalf("#%d: property lost by an unrelated change: %s\n%s\n---\n%s", i, line, stored, changed)
			}
		}
		back, _ := Codec{}.Render(changed, o)
		if s := back.ChildText(wbxml.ContactsJobTitle); s != "Changed title" {
			t.Fatalf("#%d: JobTitle = %q after change", i, s)
		}
	}
}

// propLines counts a card's properties as normalised lines
// (group|NAME|params|value), parameters sorted.
func propLines(t *testing.T, b []byte) map[string]int {
	t.Helper()
	c, err := parseCard(b)
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, b)
	}
	out := map[string]int{}
	for _, p := range c.props {
		var ps []string
		for k, vs := range p.params {
			ps = append(ps, k+"="+strings.Join(vs, ","))
		}
		sort.Strings(ps)
		out[p.group+"|"+p.name+"|"+strings.Join(ps, ";")+"|"+p.value+p.raw]++
	}
	return out
}

// TestGhosting: a Change leaving out a ghosted element keeps its value;
// leaving out an element that is not ghosted removes it.
func TestGhosting(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	checked := 0
	for i := 0; i < corpusSize; i++ {
		v := versions[i%len(versions)]
		it := genApp(r, v)
		if len(it.app.Children) == 0 {
			continue
		}
		o := opts(v)
		o.BodyPrefs = it.prefsFor()
		stored, _, err := Codec{}.Apply(nil, it.app, o)
		if err != nil {
			t.Fatal(err)
		}
		victim := it.app.Children[r.Intn(len(it.app.Children))]
		change := without(it.app, victim.Tag)
		want := normalize(it.app)

		o.Ghosted = func(t wbxml.Tag) bool { return t == victim.Tag }
		kept, _, err := Codec{}.Apply(stored, change, o)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := Codec{}.Render(kept, o)
		if d := cmp.Diff(want, normalize(got)); d != "" {
			t.Fatalf("#%d: ghosted %s not kept:\n%s", i, victim.Tag, d)
		}

		o.Ghosted = nil
		removed, _, err := Codec{}.Apply(stored, change, o)
		if err != nil {
			t.Fatal(err)
		}
		got, _ = Codec{}.Render(removed, o)
		if d := cmp.Diff(normalize(change), normalize(got)); d != "" {
			t.Fatalf("#%d: %s not removed:\n%s", i, victim.Tag, d)
		}
		checked++
	}
	if checked < corpusSize/2 {
		t.Fatalf("only %d items checked", checked)
	}
}

// withLocal runs f with time.Local set to the zone name: what running
// the process with TZ=name does (time.LoadLocation, not the environment,
// so the test is hermetic). Tests using it must not run in parallel.
func withLocal(t *testing.T, name string, f func()) {
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Skipf("no zone data for %s: %v", name, err)
	}
	saved := time.Local
	time.Local = loc
	defer func() { time.Local = saved }()
	f()
}

// TestBirthdayZones: birthdays and anniversaries keep their date whatever
// the server's zone (UTC+14 and UTC-11 are the extremes): the date part
// the client wrote is stored as a vCard DATE, and what it sent is what it
// gets back (MS-ASCNTC 2.2.2.6: the time portion is ignored).
func TestBirthdayZones(t *testing.T) {
	cases := []struct{ sent, vcard, rendered string }{
		{"1980-05-17T00:00:00.000Z", "19800517", "1980-05-17T00:00:00.000Z"},
		{"1980-05-17T11:59:00.000Z", "19800517", "1980-05-17T11:59:00.000Z"},
		{"1980-05-17T00:00:00+14:00", "19800517", "1980-05-17T00:00:00+14:00"},
		{"1980-05-17T00:00:00-11:00", "19800517", "1980-05-17T00:00:00-11:00"},
		{"1980-05-17T23:30:00.000Z", "19800517", "1980-05-17T23:30:00.000Z"},
		{"1980-05-17", "19800517", "1980-05-17"},
		{"19800517T000000Z", "19800517", "19800517T000000Z"},
		{"1604-12-31T00:00:00.000Z", "--1231", "1604-12-31T00:00:00.000Z"},
		{"2000-02-29T11:59:00.000Z", "20000229", "2000-02-29T11:59:00.000Z"},
	}
	for _, zone := range []string{"Pacific/Kiritimati", "Pacific/Pago_Pago"} {
		withLocal(t, zone, func() {
			for _, tc := range cases {
				for _, tag := range []wbxml.Tag{wbxml.ContactsBirthday, wbxml.ContactsAnniversary} {
					app := wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(tag, tc.sent))
					stored, _, err := Codec{}.Apply(nil, app, opts("14.1"))
					if err != nil {
						t.Fatalf("%s %s: %v", zone, tc.sent, err)
					}
					c, _ := parseCard(stored)
					p := c.first(map[wbxml.Tag]string{wbxml.ContactsBirthday: "BDAY", wbxml.ContactsAnniversary: "ANNIVERSARY"}[tag])
					if p == nil || p.value != tc.vcard {
						t.Fatalf("%s %s: stored %v, want %s\n%s", zone, tc.sent, p, tc.vcard, stored)
					}
					n, _ := Codec{}.Render(stored, opts("14.1"))
					if got := n.ChildText(tag); got != tc.rendered {
						t.Fatalf("%s %s: rendered %q, want %q", zone, tc.sent, got, tc.rendered)
					}
				}
			}
			// A date from a CardDAV client is sent at 11:59 UTC.
			for vc, want := range map[string]string{
				"19800517": "1980-05-17T11:59:00.000Z", "1980-05-17": "1980-05-17T11:59:00.000Z",
				"--0517": "1604-05-17T11:59:00.000Z", "19800517T230000-0500": "1980-05-17T11:59:00.000Z",
			} {
				stored := []byte("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\nBDAY:" + vc + "\r\nEND:VCARD\r\n")
				n, err := Codec{}.Render(stored, opts("16.1"))
				if err != nil || n.ChildText(wbxml.ContactsBirthday) != want {
					t.Fatalf("%s: BDAY:%s rendered %v, want %s (%v)", zone, vc, n, want, err)
				}
			}
		})
	}
}

// TestMalformedApplicationData: every malformed ApplicationData is an
// error wrapping item.ErrInvalid.
func TestMalformedApplicationData(t *testing.T) {
	big := strings.Repeat("QUFB", MaxPicture/4+1)
	cases := map[string]*wbxml.Node{
		"nil":        nil,
		"wrong root": wbxml.E(wbxml.AirSyncCommands),
		"duplicate": wbxml.E(wbxml.AirSyncApplicationData,
			wbxml.T(wbxml.ContactsFirstName, "a"), wbxml.T(wbxml.ContactsFirstName, "b")),
		"nested text":     wbxml.E(wbxml.AirSyncApplicationData, wbxml.E(wbxml.ContactsFirstName, wbxml.T(wbxml.ContactsLastName, "x"))),
		"bad category":    wbxml.E(wbxml.AirSyncApplicationData, wbxml.E(wbxml.ContactsCategories, wbxml.T(wbxml.ContactsChild, "x"))),
		"bad birthday":    wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.ContactsBirthday, "yesterday")),
		"no such day":     wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.ContactsBirthday, "1980-02-30T00:00:00.000Z")),
		"bad time":        wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.ContactsAnniversary, "1980-02-03T25:00:00Z")),
		"bad picture":     wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.ContactsPicture, "!!not base64!!")),
		"picture > 48KB":  wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.ContactsPicture, big)),
		"body type text":  wbxml.E(wbxml.AirSyncApplicationData, wbxml.E(wbxml.AirSyncBaseBody, wbxml.T(wbxml.AirSyncBaseType, "x"))),
		"body type 9":     wbxml.E(wbxml.AirSyncApplicationData, wbxml.E(wbxml.AirSyncBaseBody, wbxml.T(wbxml.AirSyncBaseType, "9"))),
		"children nested": wbxml.E(wbxml.AirSyncApplicationData, wbxml.E(wbxml.ContactsChildren, wbxml.E(wbxml.ContactsChild, wbxml.T(wbxml.ContactsChild, "x")))),
	}
	stored, _, err := Codec{}.Apply(nil, wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.ContactsFirstName, "A")), opts("16.1"))
	if err != nil {
		t.Fatal(err)
	}
	for name, app := range cases {
		for _, s := range [][]byte{nil, stored} {
			if _, _, err := (Codec{}).Apply(s, app, opts("16.1")); !errors.Is(err, item.ErrInvalid) {
				t.Errorf("%s (stored %v): error %v, want item.ErrInvalid", name, s != nil, err)
			}
		}
	}
}

// TestMalformedVCard: Render and Index fail (never panic) on stored text
// that is not one vCard.
func TestMalformedVCard(t *testing.T) {
	for _, s := range []string{
		"", "garbage", "\x00\xff\xfe", "END:VCARD\r\n", "BEGIN:VCARD\r\nFN:x\r\n",
		"BEGIN:VCARD\r\nBEGIN:VCARD\r\nEND:VCARD\r\nEND:VCARD\r\n",
		"BEGIN:VCARD\r\nEND:VCARD\r\nBEGIN:VCARD\r\nEND:VCARD\r\n",
		"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", "FN:x\r\nBEGIN:VCARD\r\nEND:VCARD\r\n",
		strings.Repeat("x", maxStored+1),
	} {
		if _, err := (Codec{}).Render([]byte(s), opts("16.1")); err == nil {
			t.Errorf("Render(%.40q): no error", s)
		}
		if _, err := (Codec{}).Index([]byte(s)); err == nil {
			t.Errorf("Index(%.40q): no error", s)
		}
		app := wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.ContactsFirstName, "A"))
		if _, _, err := (Codec{}).Apply([]byte(s), app, opts("16.1")); err == nil || errors.Is(err, item.ErrInvalid) {
			t.Errorf("Apply on %.40q: error %v, want a stored-item error", s, err)
		}
	}
}

// TestIndex: UID and the display name.
func TestIndex(t *testing.T) {
	ix, err := Codec{}.Index([]byte("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:abc\r\nN:Doe;Jane;;Dr.;\r\nFN:Jane Doe\\, PhD\r\nEND:VCARD\r\n"))
	if err != nil || ix.UID != "abc" || ix.Summary != "Jane Doe, PhD" || !ix.End.IsZero() {
		t.Fatalf("Index = %+v, %v", ix, err)
	}
	ix, err = Codec{}.Index([]byte("BEGIN:VCARD\r\nVERSION:4.0\r\nN:Doe;Jane;;Dr.;\r\nEND:VCARD\r\n"))
	if err != nil || ix.UID != "" || ix.Summary != "Dr. Jane Doe" {
		t.Fatalf("Index = %+v, %v", ix, err)
	}
}
