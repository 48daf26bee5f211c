package tasks

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"

	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/wbxml"
)

// fuzzLimits bound the decoded ApplicationData like a request would.
var fuzzLimits = wbxml.Limits{MaxDepth: 16, MaxElements: 4096, MaxStringLen: 1 << 16, MaxOpaqueLen: 1 << 16, MaxTotal: 1 << 18}

func fuzzOpts(mode uint8) item.Options {
	o := opts(versions[int(mode)%len(versions)])
	if mode&4 != 0 {
		o.Ghosted = func(t wbxml.Tag) bool { return t.Token()%2 == 0 }
	}
	return o
}

// FuzzApply: any decodable ApplicationData applies or fails with
// item.ErrInvalid; the result renders and is a fixed point of Render then
// Apply.
func FuzzApply(f *testing.F) {
	r := rand.New(rand.NewSource(9))
	for i := 0; i < 16; i++ {
		var b bytes.Buffer
		if err := wbxml.Encode(&b, genApp(r, "16.1").app); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes(), uint8(i))
	}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		app, err := wbxml.DecodeBytes(data, fuzzLimits)
		if err != nil {
			return
		}
		o := fuzzOpts(mode)
		var stored []byte
		if mode&8 != 0 {
			stored = []byte(sample)
		}
		out, ix, err := Codec{}.Apply(stored, app, o)
		if err != nil {
			if !errors.Is(err, item.ErrInvalid) {
				t.Fatalf("Apply error %v does not wrap item.ErrInvalid", err)
			}
			return
		}
		if ix.UID == "" {
			t.Fatal("no UID")
		}
		checkFixedPoint(t, out, o)
	})
}

// checkFixedPoint: a stored task renders, encodes, indexes, and applying
// its rendering changes nothing.
func checkFixedPoint(t *testing.T, stored []byte, o item.Options) {
	t.Helper()
	n, err := Codec{}.Render(stored, o)
	if err != nil {
		t.Fatalf("Render: %v\n%s", err, stored)
	}
	if err := wbxml.Encode(io.Discard, n); err != nil {
		t.Fatalf("rendered ApplicationData does not encode: %v", err)
	}
	if _, err := (Codec{}).Index(stored); err != nil {
		t.Fatalf("Index: %v", err)
	}
	o.Ghosted = nil
	again, _, err := Codec{}.Apply(stored, n, o)
	if err != nil {
		t.Fatalf("re-Apply: %v\n%s\n%s", err, stored, n)
	}
	if !bytes.Equal(again, stored) {
		t.Fatalf("re-Apply changed the item:\n%s\n---\n%s\n%s", stored, again, n)
	}
}

// FuzzIndex: stored text fails in both Index and Render or works in both
// (never a panic); what renders is a fixed point of Render then Apply.
func FuzzIndex(f *testing.F) {
	r := rand.New(rand.NewSource(10))
	for i := 0; i < 16; i++ {
		f.Add(genCalendar(r), uint8(i))
	}
	f.Add([]byte(sample), uint8(0))
	f.Add([]byte("BEGIN:VCALENDAR\r\nX;A=\"b\"\r\nEND:VCALENDAR\r\n"), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		o := fuzzOpts(mode)
		_, errI := Codec{}.Index(data)
		_, errR := Codec{}.Render(data, o)
		if (errI == nil) != (errR == nil) {
			t.Fatalf("Index error %v, Render error %v", errI, errR)
		}
		if errR == nil {
			checkFixedPoint(t, data, o)
		}
	})
}
