package contacts

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

// fuzzStored is the item a fuzzed Change applies to.
const fuzzStored = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:u1\r\nN:Doe;Jane;;;\r\nFN:Jane Doe\r\n" +
	"TEL;TYPE=WORK,PREF:1\r\nTEL;TYPE=work:2\r\nEMAIL:a@b.example\r\nX-FOO:keep\r\n" +
	"ADR;TYPE=home:PO;;Street;City;;;\r\nBDAY:1980-05-17\r\nPHOTO;ENCODING=b;TYPE=PNG:iVBORw0KGgo=\r\nEND:VCARD\r\n"

func fuzzOpts(mode uint8) item.Options {
	o := opts(versions[int(mode)%len(versions)])
	if mode&4 != 0 {
		o.Ghosted = func(t wbxml.Tag) bool { return t.Token()%2 == 0 }
	}
	return o
}

// FuzzApply: any decodable ApplicationData either applies or fails with
// item.ErrInvalid; what it applies renders, and applying the rendering
// back is a fixed point (the stored bytes do not change).
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

// checkFixedPoint: a stored item renders, encodes as WBXML, indexes, and
// applying its rendering changes nothing.
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

// FuzzIndex: any stored text either fails in both Index and Render or
// works in both (never a panic), and a vCard that renders is a fixed
// point of Render then Apply.
func FuzzIndex(f *testing.F) {
	r := rand.New(rand.NewSource(10))
	for i := 0; i < 16; i++ {
		f.Add(genCard(r), uint8(i))
	}
	f.Add([]byte(fuzzStored), uint8(0))
	f.Add([]byte("BEGIN:VCARD\r\nX;A=\"b\r\nEND:VCARD"), uint8(1))
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
