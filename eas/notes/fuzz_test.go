package notes

import (
	"bytes"
	"errors"
	"math/rand"
	"testing"

	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/wbxml"
)

// fuzzLimits bound the decoded ApplicationData like a request would.
var fuzzLimits = wbxml.Limits{MaxDepth: 16, MaxElements: 4096, MaxStringLen: 1 << 16, MaxOpaqueLen: 1 << 16, MaxTotal: 1 << 18}

const fuzzStored = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VJOURNAL\r\nUID:u\r\nDTSTAMP:20240101T000000Z\r\n" +
	"SUMMARY:s\r\nDESCRIPTION:d\r\nX-FOO:keep\r\nEND:VJOURNAL\r\nEND:VCALENDAR\r\n"

func fuzzOpts(mode uint8) item.Options {
	o := opts(versions[int(mode)%len(versions)])
	if mode&4 != 0 {
		o.Ghosted = func(t wbxml.Tag) bool { return t.Token()%2 == 0 }
	}
	return o
}

// FuzzApply: any decodable ApplicationData applies or fails with
// item.ErrInvalid; the result is a fixed point of Render then Apply.
func FuzzApply(f *testing.F) {
	r := rand.New(rand.NewSource(9))
	for i := 0; i < 16; i++ {
		var b bytes.Buffer
		if err := wbxml.Encode(&b, genApp(r).app); err != nil {
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
			stored = []byte(fuzzStored)
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

// FuzzIndex: stored text fails in both Index and Render or works in both
// (never a panic); what renders is a fixed point of Render then Apply.
func FuzzIndex(f *testing.F) {
	r := rand.New(rand.NewSource(10))
	for i := 0; i < 16; i++ {
		f.Add(foreign(r), uint8(i))
	}
	f.Add([]byte(fuzzStored), uint8(0))
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
