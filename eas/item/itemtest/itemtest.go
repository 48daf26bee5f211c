// Package itemtest holds the checks that the tests and fuzz targets of
// the item codecs (eas/contacts, eas/tasks, eas/notes) share. It is for
// tests only.
package itemtest

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"

	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/wbxml"
)

// limits bound a fuzzed ApplicationData as a request's decoder would.
var limits = wbxml.Limits{MaxDepth: 16, MaxElements: 4096, MaxStringLen: 1 << 16, MaxOpaqueLen: 1 << 16, MaxTotal: 1 << 18}

// Fuzz describes the fuzz targets of one codec: Apply for a FuzzApply,
// Index for a FuzzIndex. A fuzz input is data and a mode: the mode picks
// the protocol version among Versions, with mode&4 ghosts every element
// whose token is even, and with mode&8 makes Apply's input a Change of
// Stored rather than an Add.
type Fuzz struct {
	// Codec is the codec under test.
	Codec item.Codec
	// Versions are the protocol versions a mode picks among; Options
	// returns the options for one.
	Versions []string
	Options  func(version string) item.Options
	// Stored is a stored item: what a fuzzed Change applies to, and a
	// seed of Index.
	Stored string
	// GenApp generates an ApplicationData as a client sends it; GenStored
	// stored text as another client writes it. They seed Apply and Index.
	GenApp    func(*rand.Rand) *wbxml.Node
	GenStored func(*rand.Rand) []byte
	// Seeds are more stored text seeding Index (malformed text, say).
	Seeds []string
}

// Apply runs a FuzzApply target: seeded with 16 ApplicationData from
// GenApp (a fixed random source), it checks each input with checkApply.
func (z Fuzz) Apply(f *testing.F) {
	r := rand.New(rand.NewSource(9))
	for i := 0; i < 16; i++ {
		var b bytes.Buffer
		if err := wbxml.Encode(&b, z.GenApp(r)); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes(), uint8(i))
	}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		var stored []byte
		if mode&8 != 0 {
			stored = []byte(z.Stored)
		}
		checkApply(t, z.Codec, data, stored, fuzzOptions(mode, z.Versions, z.Options))
	})
}

// Index runs a FuzzIndex target: seeded with 16 stored items from
// GenStored (a fixed random source), Stored and Seeds, it checks each
// input with checkIndex.
func (z Fuzz) Index(f *testing.F) {
	r := rand.New(rand.NewSource(10))
	for i := 0; i < 16; i++ {
		f.Add(z.GenStored(r), uint8(i))
	}
	for i, s := range append([]string{z.Stored}, z.Seeds...) {
		f.Add([]byte(s), uint8(i))
	}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		checkIndex(t, z.Codec, data, fuzzOptions(mode, z.Versions, z.Options))
	})
}

// fuzzOptions returns the options a fuzz input's mode selects: opts for
// the version versions[mode % len(versions)], and with mode&4 every
// element whose token is even ghosted.
func fuzzOptions(mode uint8, versions []string, opts func(version string) item.Options) item.Options {
	o := opts(versions[int(mode)%len(versions)])
	if mode&4 != 0 {
		o.Ghosted = func(t wbxml.Tag) bool { return t.Token()%2 == 0 }
	}
	return o
}

// checkApply is the body of a FuzzApply target: data, when it decodes
// within limits, is an ApplicationData that c either applies to stored
// (nil for an Add) or refuses with an error wrapping item.ErrInvalid;
// what it applies has a UID and passes CheckFixedPoint.
func checkApply(t *testing.T, c item.Codec, data, stored []byte, o item.Options) {
	t.Helper()
	app, err := wbxml.DecodeBytes(data, limits)
	if err != nil {
		return
	}
	out, ix, err := c.Apply(stored, app, o)
	if err != nil {
		if !errors.Is(err, item.ErrInvalid) {
			t.Fatalf("Apply error %v does not wrap item.ErrInvalid", err)
		}
		return
	}
	if ix.UID == "" {
		t.Fatal("no UID")
	}
	CheckFixedPoint(t, c, out, o)
}

// checkIndex is the body of a FuzzIndex target: stored text either fails
// in both Index and Render or works in both (never a panic), and what
// renders passes CheckFixedPoint.
func checkIndex(t *testing.T, c item.Codec, stored []byte, o item.Options) {
	t.Helper()
	_, errI := c.Index(stored)
	_, errR := c.Render(stored, o)
	if (errI == nil) != (errR == nil) {
		t.Fatalf("Index error %v, Render error %v", errI, errR)
	}
	if errR == nil {
		CheckFixedPoint(t, c, stored, o)
	}
}

// CheckFixedPoint checks that a stored item renders, that the rendering
// encodes as WBXML, that the item indexes, and that applying the
// rendering (nothing ghosted) changes nothing.
func CheckFixedPoint(t *testing.T, c item.Codec, stored []byte, o item.Options) {
	t.Helper()
	n, err := c.Render(stored, o)
	if err != nil {
		t.Fatalf("Render: %v\n%s", err, stored)
	}
	if err := wbxml.Encode(io.Discard, n); err != nil {
		t.Fatalf("rendered ApplicationData does not encode: %v", err)
	}
	if _, err := c.Index(stored); err != nil {
		t.Fatalf("Index: %v", err)
	}
	o.Ghosted = nil
	again, _, err := c.Apply(stored, n, o)
	if err != nil {
		t.Fatalf("re-Apply: %v\n%s\n%s", err, stored, n)
	}
	if !bytes.Equal(again, stored) {
		t.Fatalf("re-Apply changed the item:\n%s\n---\n%s\n%s", stored, again, n)
	}
}
