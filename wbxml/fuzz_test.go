package wbxml_test

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"

	"github.com/easd/easd/wbxml"
	"github.com/google/go-cmp/cmp"
)

// fuzzLimits are small so that the fuzzer reaches every limit quickly.
var fuzzLimits = wbxml.Limits{MaxDepth: 8, MaxElements: 200, MaxStringLen: 64, MaxOpaqueLen: 64, MaxTotal: 4096}

func addFuzzSeeds(f *testing.F) {
	f.Add(doc(0x45, 0x4B, 0x03, 'a', 0x00, 0x01, 0x01))
	f.Add(doc(0x45, 0xC3, 0x02, 0x00, 0x01, 0x01))
	f.Add(doc(0x45, 0x00, 0x19, 0x5A, 0x1B, 0x01, 0x01))
	f.Add(doc(0x45, 0x7F, 0x00, 0xFF, 0x05, 0x01))
	f.Add([]byte{0x03, 0x00, 0x00, 0x80, 0x6A, 0x02, 'x', 0x00, 0x05})
	f.Add(nested(9))
}

// FuzzDecode: decoding arbitrary bytes never panics, returns only the
// documented error types, and a successful decode respects the limits. The
// streaming decoder (through a one-byte reader) and ToXML agree with it.
func FuzzDecode(f *testing.F) {
	addFuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := wbxml.DecodeBytes(data, fuzzLimits)
		checkDecodeErr(t, err)
		_, err2 := wbxml.Decode(iotest.OneByteReader(bytes.NewReader(data)), fuzzLimits)
		checkDecodeErr(t, err2)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("DecodeBytes error %v, Decode error %v", err, err2)
		}
		err3 := wbxml.ToXML(io.Discard, bytes.NewReader(data), wbxml.XMLOptions{Limits: fuzzLimits})
		checkDecodeErr(t, err3)
		if (err == nil) != (err3 == nil) {
			t.Fatalf("DecodeBytes error %v, ToXML error %v", err, err3)
		}
		if err != nil {
			return
		}
		elements := 0
		var walk func(n *wbxml.Node, depth int)
		walk = func(n *wbxml.Node, depth int) {
			elements++
			if depth > fuzzLimits.MaxDepth {
				t.Fatalf("depth %d over limit", depth)
			}
			if len(n.Value) > int(fuzzLimits.MaxTotal) {
				t.Fatalf("value of %d bytes from a %d-byte limit", len(n.Value), fuzzLimits.MaxTotal)
			}
			for _, c := range n.Children {
				walk(c, depth+1)
			}
		}
		walk(n, 1)
		if elements > fuzzLimits.MaxElements {
			t.Fatalf("%d elements over limit", elements)
		}
	})
}

// FuzzRoundTrip: decode -> encode -> decode is stable, encoding is a fixed
// point, the token stream re-encodes identically, and the XML form
// round-trips (for documents without mixed content).
func FuzzRoundTrip(f *testing.F) {
	addFuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		n1, err := wbxml.DecodeBytes(data, fuzzLimits)
		if err != nil {
			return
		}
		b2 := mustEncode(t, n1)
		n2, err := wbxml.DecodeBytes(b2, wbxml.Limits{})
		if err != nil {
			t.Fatalf("re-decoding our encoding: %v\n% x", err, b2)
		}
		if !sameTree(n1, n2) {
			t.Fatalf("decode(encode(decode(x))) != decode(x):\n%s", cmp.Diff(n1, n2, treeOpts))
		}
		if b3 := mustEncode(t, n2); !bytes.Equal(b2, b3) {
			t.Fatalf("encoding not stable:\n% x\n% x", b2, b3)
		}
		if s := streamCopy(t, b2); !bytes.Equal(s, b2) {
			t.Fatalf("token stream copy differs:\n% x\n% x", s, b2)
		}
		if hasMixedContent(n1) {
			return
		}
		var x, b4 bytes.Buffer
		if err := wbxml.ToXML(&x, bytes.NewReader(b2), wbxml.XMLOptions{}); err != nil {
			t.Fatalf("ToXML: %v", err)
		}
		if err := wbxml.FromXML(&b4, bytes.NewReader(x.Bytes())); err != nil {
			t.Fatalf("FromXML: %v\n%s", err, x.Bytes())
		}
		if !bytes.Equal(b4.Bytes(), b2) {
			t.Fatalf("XML round trip differs:\n% x\n% x\n%s", b4.Bytes(), b2, x.Bytes())
		}
	})
}
