package calendar

import (
	"bytes"
	"math/rand"
	"testing"
	"time"

	"github.com/easd/easd/eas/email"
	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/wbxml"
	"github.com/google/go-cmp/cmp"
)

// testNow is the clock of the tests.
var testNow = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// testOptions are the codec options of a test request: both body types
// accepted (each event gets its native one), untruncated.
func testOptions(v, uid string) item.Options {
	return item.Options{
		Version:   v,
		Now:       func() time.Time { return testNow },
		NewUID:    func() string { return uid },
		BodyPrefs: []email.BodyPreference{{Type: 1}, {Type: 2}},
	}
}

// propertyCases is the size of the generated corpus.
const propertyCases = 500

// TestAppRoundTrip: for a generated corpus across versions, ApplicationData
// -> Apply -> Render gives the same ApplicationData (up to element order
// and defaults, read by the test's own reader), Apply of that rendering
// changes nothing, and the index names the event.
func TestAppRoundTrip(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := range propertyCases {
		v := versions[i%len(versions)]
		g := genEvent(r, v, i)
		o := testOptions(v, g.uid)
		stored, idx, err := Codec{}.Apply(nil, g.app, o)
		if err != nil {
			t.Fatalf("case %d (%s): Apply: %v\n%v", i, v, err, g.app)
		}
		out, err := Codec{}.Render(stored, o)
		if err != nil {
			t.Fatalf("case %d: Render: %v", i, err)
		}
		want, err := readModel(g.app, v)
		if err != nil {
			t.Fatalf("case %d: reading input: %v", i, err)
		}
		want["UID"] = g.uid
		got, err := readModel(out, v)
		if err != nil {
			t.Fatalf("case %d: reading output: %v", i, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("case %d (%s): round trip differs (-in +out):\n%s\nin:  %v\nout: %v\nstored:\n%s", i, v, diff, g.app, out, stored)
		}
		again, _, err := Codec{}.Apply(stored, out, o)
		if err != nil {
			t.Fatalf("case %d: Apply(Render): %v", i, err)
		}
		if !bytes.Equal(again, stored) {
			t.Fatalf("case %d (%s): Apply(Render) changed the item:\n%s\n---\n%s", i, v, stored, again)
		}
		if idx.UID != g.uid {
			t.Fatalf("case %d: Index UID %q, want %q", i, idx.UID, g.uid)
		}
		if s, _ := parseEASTime(g.app.ChildText(wbxml.CalendarStartTime)); g.app.ChildText(wbxml.CalendarAllDayEvent) == "0" && !idx.Start.Equal(s) {
			t.Fatalf("case %d: Index Start %v, want %v", i, idx.Start, s)
		}
		if idx2, err := (Codec{}).Index(stored); err != nil || idx2 != idx {
			t.Fatalf("case %d: Index = %+v, %v; Apply said %+v", i, idx2, err, idx)
		}
	}
}
