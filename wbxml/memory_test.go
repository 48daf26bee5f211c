package wbxml_test

import (
	"bytes"
	"io"
	"runtime"
	"testing"

	"github.com/easd/easd/internal/memtest"
	"github.com/easd/easd/wbxml"
)

// memSize is the size of the pathological documents: 10 MB, 1 MB under
// the race detector (ten times slower).
func memSize() int {
	if memtest.Race {
		return 1 << 20
	}
	return 10 << 20
}

// requestLimits are the limits eas.Handler decodes a request body of n
// bytes with (eas/handler.go readBody): the defaults but for MaxTotal and
// MaxOpaqueLen at the body limit and about one element per 4 bytes.
func requestLimits(n int64) wbxml.Limits {
	return wbxml.Limits{MaxTotal: n, MaxOpaqueLen: n, MaxElements: int(min(n/4+64, 1<<20))}
}

// mbUint32 encodes v as a WBXML mb_u_int32.
func mbUint32(v uint32) []byte {
	var b []byte
	for {
		b = append([]byte{byte(v & 0x7f)}, b...)
		if v >>= 7; v == 0 {
			break
		}
	}
	for i := 0; i < len(b)-1; i++ {
		b[i] |= 0x80
	}
	return b
}

// repeatDoc returns a maker of a WBXML document: the header (with the
// string table strtbl), head, unit repeated up to n bytes, and tail.
func repeatDoc(n int, strtbl []byte, head, unit, tail []byte) func() []byte {
	return func() []byte {
		var b bytes.Buffer
		b.Write([]byte{0x03, 0x01, 0x6a})
		b.Write(mbUint32(uint32(len(strtbl))))
		b.Write(strtbl)
		b.Write(head)
		for b.Len()+len(unit) <= n {
			b.Write(unit)
		}
		b.Write(tail)
		return b.Bytes()
	}
}

// TestDecodeBoundedMemory decodes pathological documents of n bytes with
// the limits a request body of that size gets, into a tree (DecodeBytes
// and Decode from a reader) and as XML (ToXML, streaming), and checks
// what that takes from the heap: the largest live heap at most live×n +
// 4 MiB, the allocations (garbage included) at most alloc×n + 4 MiB. A
// tree takes about 95 bytes per element, and requests are allowed one
// element per 4 bytes: up to 24 times the body; values and streaming
// (ToXML) about the input's size. The bounds have some margin over what
// was measured. A decode may fail (a limit): what it took until then
// counts all the same.
func TestDecodeBoundedMemory(t *testing.T) {
	n := memSize()
	open := []byte{0x45} // AirSync Sync, with content
	const end = 0x01
	nested := func(depth int) []byte {
		return append(bytes.Repeat(open, depth), bytes.Repeat([]byte{end}, depth)...)
	}
	opaque := append([]byte{0x45, 0xC3}, mbUint32(uint32(4*n))...)
	for _, tc := range []struct {
		name        string
		doc         func() []byte
		live, alloc float64 // bounds, times the document's size
	}{
		{"deep nesting", repeatDoc(n, nil, nil, open, nil), 0.1, 0.1},
		{"nesting at the depth limit, repeated", repeatDoc(n, nil, open, nested(63), []byte{end}), 32, 40},
		{"many empty elements", repeatDoc(n, nil, open, []byte{0x05}, []byte{end}), 32, 40},
		{"many elements with a string", repeatDoc(n, nil, open, []byte{0x45, 0x03, 'a', 0x00, end}, []byte{end}), 32, 40},
		{"one long string", repeatDoc(n, nil, []byte{0x45, 0x03}, []byte{'a'}, []byte{0x00, end}), 3, 6},
		{"many string segments in one value (quadratic before)", repeatDoc(n, nil, open, []byte{0x03, 'a', 0x00}, []byte{end}), 3, 6},
		{"an OPAQUE declared 4 times the document", repeatDoc(n, nil, opaque, []byte{'o'}, []byte{end}), 3, 6},
		{"a string table of half the document, then STR_T (refused)", repeatDoc(n, bytes.Repeat([]byte{'s'}, n/2), open, []byte{0x83, 0x00}, []byte{end}), 4, 8},
		{"code page switches", repeatDoc(n, nil, open, []byte{0x00, 0x01, 0x00, 0x00}, []byte{end}), 0.1, 0.1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := tc.doc()
			size := float64(len(doc))
			lim := requestLimits(int64(len(doc)))
			for _, way := range []struct {
				name string
				run  func() error
			}{
				{"DecodeBytes", func() error { _, err := wbxml.DecodeBytes(doc, lim); return err }},
				{"Decode", func() error { _, err := wbxml.Decode(bytes.NewReader(doc), lim); return err }},
				{"ToXML", func() error { return wbxml.ToXML(io.Discard, bytes.NewReader(doc), wbxml.XMLOptions{Limits: lim}) }},
			} {
				var err error
				u := memtest.Measure(func() { err = way.run() })
				t.Logf("%s of %d bytes: live heap %.2f×, peak in use %.2f×, allocated %.2f× (%v)",
					way.name, len(doc), float64(u.Live)/size, float64(u.Peak)/size, float64(u.Alloc)/size, err)
				if limit := tc.live*size + 4<<20; float64(u.Live) > limit {
					t.Errorf("%s: live heap %d bytes, over %.0f", way.name, u.Live, limit)
				}
				if limit := tc.alloc*size + 4<<20; float64(u.Alloc) > limit {
					t.Errorf("%s: allocated %d bytes, over %.0f", way.name, u.Alloc, limit)
				}
			}
			runtime.KeepAlive(doc)
		})
	}
}
