package calendar

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"sync"
	"testing"

	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/wbxml"
)

// fuzzLimits keep fuzzed documents small.
var fuzzLimits = wbxml.Limits{MaxDepth: 8, MaxElements: 400, MaxStringLen: 512, MaxOpaqueLen: 512, MaxTotal: 16 << 10}

// fuzzSeeds are encoded ApplicationData documents: generated events of
// every version.
func fuzzSeeds(t testing.TB) [][]byte {
	r := rand.New(rand.NewSource(9))
	var out [][]byte
	for i := range 10 {
		v := versions[i%len(versions)]
		g := genEvent(r, v, i)
		var b bytes.Buffer
		if err := wbxml.Encode(&b, g.app); err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]byte{byte(i % len(versions))}, b.Bytes()...))
	}
	return out
}

// FuzzApply: Apply of arbitrary ApplicationData (WBXML) never panics and
// fails only with item.ErrInvalid; what it stores renders, its rendering
// applies back without change, and its index is what Index reads. The
// same data as a Change of a stored event behaves alike. The first byte
// picks the protocol version.
func FuzzApply(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(fuzzOne)
}

// fuzzBase is the stored event FuzzApply changes (made once).
var fuzzBase = sync.OnceValue(func() []byte {
	stored, _, err := Codec{}.Apply(nil, weeklyAt9(customTestZone(), testNow), testOptions("14.1", "base"))
	if err != nil {
		panic(err)
	}
	return stored
})

func fuzzOne(t *testing.T, data []byte) {
	{
		if len(data) < 2 {
			return
		}
		v := versions[int(data[0])%len(versions)]
		app, err := wbxml.DecodeBytes(data[1:], fuzzLimits)
		if err != nil {
			return
		}
		o := testOptions(v, "fuzz")
		for _, stored := range [][]byte{nil, fuzzBase()} {
			out, idx, err := Codec{}.Apply(stored, app, o)
			if err != nil {
				if !errors.Is(err, item.ErrInvalid) {
					t.Fatalf("Apply: error %v is not ErrInvalid", err)
				}
				continue
			}
			rendered, err := Codec{}.Render(out, o)
			if err != nil {
				t.Fatalf("Render of stored item: %v\n%s", err, out)
			}
			if err := wbxml.Encode(io.Discard, rendered); err != nil {
				t.Fatalf("rendered ApplicationData does not encode: %v", err)
			}
			again, idx2, err := Codec{}.Apply(out, rendered, o)
			if err != nil {
				t.Fatalf("Apply(Render): %v\n%v\n%s", err, rendered, out)
			}
			if !bytes.Equal(again, out) {
				t.Fatalf("Apply(Render) changed the item:\n%s\n---\n%s\nrendered %v", out, again, rendered)
			}
			if idx3, err := (Codec{}).Index(out); err != nil || idx3 != idx || idx2 != idx {
				t.Fatalf("Index %+v (%v), Apply said %+v and %+v", idx3, err, idx, idx2)
			}
		}
	}
}
