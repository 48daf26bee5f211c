package notes

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
	"github.com/easd/easd/eas/item/ics"
	"github.com/easd/easd/eas/item/itemtest"
	"github.com/easd/easd/wbxml"
	"github.com/google/go-cmp/cmp"
)

// corpusSize is the number of generated items per property test.
const corpusSize = 500

// versions: Notes exist from 14.0 (MS-ASNOTE 1.3); 16.x adds nothing.
var versions = []string{"14.0", "14.1", "16.1"}

var runePool = []rune("abcdefghijKLMNOPQ 0123456789 ,;:\\\"'^<>&=.-_/@\n\téüßñ日本語Ωж😀\u0301")

func randText(r *rand.Rand, max int) string {
	var b strings.Builder
	for i, n := 0, 1+r.Intn(max); i < n; i++ {
		b.WriteRune(runePool[r.Intn(len(runePool))])
	}
	return b.String()
}

func opts(v string) item.Options {
	n := 0
	return item.Options{
		Version: v,
		Now:     func() time.Time { return time.Date(2024, 3, 5, 14, 30, 0, 0, time.UTC) },
		NewUID:  func() string { n++; return fmt.Sprintf("note-%d@easd", n) },
	}
}

type genItem struct {
	app      *wbxml.Node
	bodyType int
}

func (it genItem) prefsFor() []email.BodyPreference {
	if it.bodyType == 0 {
		return nil
	}
	return []email.BodyPreference{{Type: it.bodyType}}
}

// genApp generates a note as a client sends it: MessageClass and
// LastModifiedDate are always there (the server sends them).
func genApp(r *rand.Rand) genItem {
	ad := wbxml.E(wbxml.AirSyncApplicationData)
	it := genItem{app: ad}
	if r.Intn(4) > 0 {
		ad.Append(wbxml.T(wbxml.NotesSubject, randText(r, 40)))
	}
	if r.Intn(4) > 0 {
		it.bodyType = 1 + r.Intn(2)
		data := randText(r, 300)
		if it.bodyType == 2 {
			data = "<html><body><div>" + strings.NewReplacer("&", "&amp;", "<", "&lt;", "\n", "<br>").Replace(randText(r, 40)) + "</div></body></html>"
		}
		ad.Append(wbxml.E(wbxml.AirSyncBaseBody, wbxml.T(wbxml.AirSyncBaseType, fmt.Sprint(it.bodyType)),
			wbxml.T(wbxml.AirSyncBaseData, data)))
	}
	class := DefaultMessageClass
	if r.Intn(5) == 0 {
		class = "IPM.StickyNote." + randText(r, 5)
	}
	ad.Append(wbxml.T(wbxml.NotesMessageClass, class))
	ad.Append(wbxml.T(wbxml.NotesLastModifiedDate, time.Unix(946684800+r.Int63n(1e9), 0).UTC().Format(ics.CompactUTC)))
	if r.Intn(2) == 0 {
		n := wbxml.E(wbxml.NotesCategories)
		for i := 0; i < 1+r.Intn(3); i++ {
			n.Append(wbxml.T(wbxml.NotesCategory, randText(r, 10)))
		}
		ad.Append(n)
	}
	return it
}

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

func without(app *wbxml.Node, t wbxml.Tag) *wbxml.Node {
	out := wbxml.E(app.Tag)
	for _, c := range app.Children {
		if c.Tag != t {
			out.Append(c)
		}
	}
	return out
}

func with(app *wbxml.Node, t wbxml.Tag, s string) *wbxml.Node {
	return without(app, t).Append(wbxml.T(t, s))
}

// TestRoundTripApplicationData: ApplicationData -> Apply -> Render gives
// the same ApplicationData, and applying the rendering changes nothing.
func TestRoundTripApplicationData(t *testing.T) {
	for _, v := range versions {
		r := rand.New(rand.NewSource(1))
		for i := 0; i < corpusSize; i++ {
			it := genApp(r)
			o := opts(v)
			stored, ix, err := Codec{}.Apply(nil, it.app, o)
			if err != nil || ix.UID == "" || ix.Summary != it.app.ChildText(wbxml.NotesSubject) {
				t.Fatalf("%s #%d: Apply: %v %+v", v, i, err, ix)
			}
			o.BodyPrefs = it.prefsFor()
			got, err := Codec{}.Render(stored, o)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(normalize(it.app), normalize(got)); d != "" {
				t.Fatalf("%s #%d (-sent +rendered):\n%s\n%s", v, i, d, stored)
			}
			itemtest.CheckFixedPoint(t, Codec{}, stored, o)
		}
	}
}

// foreign is a journal another client wrote.
func foreign(r *rand.Rand) []byte {
	lines := []string{"SUMMARY:%s", "DESCRIPTION:%s", "DESCRIPTION:second", "CATEGORIES:%s,%s", "CATEGORIES:x",
		"X-ALT-DESC;FMTTYPE=text/html:<b>stale</b>", "DTSTART;VALUE=DATE:20240301", "LAST-MODIFIED:20240302T101010Z",
		"CREATED:20240101T000000Z", "CLASS:PRIVATE", "STATUS:FINAL", "X-EAS-MESSAGECLASS:IPM.StickyNote.Custom",
		"ATTACH:https://example.com/x", "X-FOO;A=\"b,c\":d", "ORGANIZER:mailto:a@example.com"}
	var b strings.Builder
	fmt.Fprintf(&b, "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VJOURNAL\r\nUID:%x\r\nDTSTAMP:20240101T000000Z\r\n", r.Uint32())
	seen := map[string]bool{}
	for i, n := 0, r.Intn(10); i < n; i++ {
		l := lines[r.Intn(len(lines))]
		name := strings.SplitN(strings.SplitN(l, ":", 2)[0], ";", 2)[0]
		if seen[name] && (name == "SUMMARY" || name == "DTSTART" || name == "LAST-MODIFIED" || name == "CREATED" ||
			name == "CLASS" || name == "STATUS" || name == "ORGANIZER") {
			continue
		}
		seen[name] = true
		for strings.Contains(l, "%s") {
			l = strings.Replace(l, "%s", ics.EscapeText(randText(r, 10)), 1)
		}
		b.WriteString(l + "\r\n")
	}
	b.WriteString("END:VJOURNAL\r\nEND:VCALENDAR\r\n")
	return []byte(b.String())
}

// TestRoundTripICalendar: a foreign note -> Render -> Apply(unchanged)
// keeps the stored text; a changed subject keeps everything else.
func TestRoundTripICalendar(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for i := 0; i < corpusSize; i++ {
		stored := foreign(r)
		o := opts(versions[i%len(versions)])
		itemtest.CheckFixedPoint(t, Codec{}, stored, o)
		app, _ := Codec{}.Render(stored, o)
		changed, _, err := Codec{}.Apply(stored, with(app, wbxml.NotesSubject, "S"), o)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(stored), "\r\n") {
			if l != "" && !strings.HasPrefix(l, "SUMMARY") && !strings.HasPrefix(l, "DTSTAMP") &&
				!strings.HasPrefix(l, "LAST-MODIFIED") && !bytes.Contains(changed, []byte(l+"\r\n")) {
				t.Fatalf("#%d: lost %q:\n%s\n---\n%s", i, l, stored, changed)
			}
		}
		n, _ := Codec{}.Render(changed, o)
		if n.ChildText(wbxml.NotesSubject) != "S" || n.ChildText(wbxml.NotesLastModifiedDate) != "20240305T143000Z" {
			t.Fatalf("#%d: after change %s", i, n)
		}
	}
}

// TestGhosting: a ghosted element left out keeps its value; another is
// removed (MessageClass falls back to IPM.StickyNote; LastModifiedDate is
// the server's and stays).
func TestGhosting(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for i := 0; i < corpusSize; i++ {
		it := genApp(r)
		o := opts("16.1")
		o.BodyPrefs = it.prefsFor()
		stored, _, err := Codec{}.Apply(nil, it.app, o)
		if err != nil {
			t.Fatal(err)
		}
		victim := it.app.Children[r.Intn(len(it.app.Children))].Tag
		change := without(it.app, victim)
		o.Ghosted = func(t wbxml.Tag) bool { return t == victim }
		kept, _, _ := Codec{}.Apply(stored, change, o)
		got, _ := Codec{}.Render(kept, o)
		if d := cmp.Diff(normalize(it.app), normalize(got)); d != "" {
			t.Fatalf("#%d: ghosted %s not kept:\n%s", i, victim, d)
		}
		o.Ghosted = nil
		removed, _, _ := Codec{}.Apply(stored, change, o)
		got, _ = Codec{}.Render(removed, o)
		want := change
		switch victim {
		case wbxml.NotesMessageClass:
			want = with(change, victim, DefaultMessageClass)
			if it.app.ChildText(victim) != DefaultMessageClass {
				want = with(want, wbxml.NotesLastModifiedDate, "20240305T143000Z")
			}
		case wbxml.NotesLastModifiedDate:
			want = it.app
		default:
			want = with(change, wbxml.NotesLastModifiedDate, "20240305T143000Z")
		}
		if d := cmp.Diff(normalize(want), normalize(got)); d != "" {
			t.Fatalf("#%d: %s not removed:\n%s", i, victim, d)
		}
	}
}

// TestMalformed: bad ApplicationData wraps item.ErrInvalid; bad stored
// text fails Render and Index without a panic.
func TestMalformed(t *testing.T) {
	ad := func(c ...*wbxml.Node) *wbxml.Node { return wbxml.E(wbxml.AirSyncApplicationData, c...) }
	for name, app := range map[string]*wbxml.Node{
		"nil": nil, "root": wbxml.E(wbxml.AirSyncSync),
		"duplicate":  ad(wbxml.T(wbxml.NotesSubject, "a"), wbxml.T(wbxml.NotesSubject, "b")),
		"nested":     ad(wbxml.E(wbxml.NotesSubject, wbxml.T(wbxml.NotesSubject, "a"))),
		"date":       ad(wbxml.T(wbxml.NotesLastModifiedDate, "yesterday")),
		"categories": ad(wbxml.E(wbxml.NotesCategories, wbxml.T(wbxml.NotesSubject, "a"))),
		"body":       ad(wbxml.E(wbxml.AirSyncBaseBody, wbxml.T(wbxml.AirSyncBaseType, "html"))),
	} {
		if _, _, err := (Codec{}).Apply(nil, app, opts("16.1")); !errors.Is(err, item.ErrInvalid) {
			t.Errorf("%s: %v, want item.ErrInvalid", name, err)
		}
	}
	for _, s := range []string{"", "junk", "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
		"BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nUID:x\r\nEND:VTODO\r\nEND:VCALENDAR\r\n",
		"BEGIN:VCALENDAR\r\nBEGIN:VJOURNAL\r\n", "BEGIN:VCALENDAR\r\nX;A=\"b\"\r\nEND:VCALENDAR\r\n",
		strings.Repeat("BEGIN:VJOURNAL\r\n", 50000)} {
		if _, err := (Codec{}).Render([]byte(s), opts("16.1")); err == nil {
			t.Errorf("Render(%.30q): no error", s)
		}
		if _, err := (Codec{}).Index([]byte(s)); err == nil {
			t.Errorf("Index(%.30q): no error", s)
		}
	}
}

// TestHTMLNote: an HTML note (iOS Notes sends Type 2) comes back as HTML
// and as its text; CalDAV sees the text in DESCRIPTION.
func TestHTMLNote(t *testing.T) {
	html := "<div>Shopping</div><ul><li>milk</li><li>eggs &amp; ham</li></ul>"
	stored, _, err := Codec{}.Apply(nil, wbxml.E(wbxml.AirSyncApplicationData,
		wbxml.E(wbxml.AirSyncBaseBody, wbxml.T(wbxml.AirSyncBaseType, "2"), wbxml.T(wbxml.AirSyncBaseData, html))), opts("16.1"))
	if err != nil || !bytes.Contains(stored, []byte(`DESCRIPTION:Shopping\nmilk\neggs & ham`)) {
		t.Fatalf("%v\n%s", err, stored)
	}
	o := opts("16.1")
	o.BodyPrefs = []email.BodyPreference{{Type: 2}}
	n, _ := Codec{}.Render(stored, o)
	if n.Child(wbxml.AirSyncBaseBody).ChildText(wbxml.AirSyncBaseData) != html {
		t.Fatalf("HTML body: %s", n)
	}
	o.BodyPrefs = []email.BodyPreference{{Type: 1, Preview: 8}}
	n, _ = Codec{}.Render(stored, o)
	if b := n.Child(wbxml.AirSyncBaseBody); b.ChildText(wbxml.AirSyncBaseData) != "Shopping\nmilk\neggs & ham" || b.Child(wbxml.AirSyncBasePreview) != nil {
		t.Fatalf("text body: %s", n)
	}
}
