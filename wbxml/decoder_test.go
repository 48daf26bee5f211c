package wbxml_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/easd/easd/wbxml"
	"github.com/google/go-cmp/cmp"
)

var hdr = []byte{0x03, 0x01, 0x6A, 0x00}

func doc(body ...byte) []byte { return append(append([]byte{}, hdr...), body...) }

func nested(depth int) []byte {
	b := doc()
	for range depth {
		b = append(b, 0x45) // AirSync:Sync with content
	}
	for range depth {
		b = append(b, 0x01)
	}
	return b
}

type errKind int

const (
	syntaxErr errKind = iota
	limitErr
)

// TestDecodeMalformed feeds malformed and over-limit documents to every
// decoding entry point and checks the typed error.
func TestDecodeMalformed(t *testing.T) {
	small := wbxml.Limits{MaxStringLen: 8, MaxOpaqueLen: 8, MaxTotal: 64, MaxDepth: 4, MaxElements: 5}
	cases := []struct {
		name   string
		in     []byte
		lim    wbxml.Limits
		kind   errKind
		offset int64 // expected error offset, -1 to skip the check
		msg    string
	}{
		{"empty input", nil, wbxml.Limits{}, syntaxErr, 0, "header"},
		{"truncated header 1", []byte{0x03}, wbxml.Limits{}, syntaxErr, 1, "header"},
		{"truncated header 2", []byte{0x03, 0x01}, wbxml.Limits{}, syntaxErr, 2, "header"},
		{"truncated header 3", []byte{0x03, 0x01, 0x6A}, wbxml.Limits{}, syntaxErr, 3, "header"},
		{"truncated mb_u_int32", []byte{0x03, 0x81}, wbxml.Limits{}, syntaxErr, 2, "header"},
		{"mb_u_int32 too long", []byte{0x03, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x6A, 0x00, 0x05}, wbxml.Limits{}, syntaxErr, 1, "longer than 5 bytes"},
		{"mb_u_int32 overflow", []byte{0x03, 0x9F, 0xFF, 0xFF, 0xFF, 0x7F, 0x6A, 0x00, 0x05}, wbxml.Limits{}, syntaxErr, 1, "overflows"},
		{"opaque length too long", doc(0x45, 0xC3, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00), wbxml.Limits{}, syntaxErr, 6, "longer than 5 bytes"},
		{"string table beyond input", []byte{0x03, 0x01, 0x6A, 0x05, 'a'}, wbxml.Limits{}, syntaxErr, -1, "string table"},
		{"header only", doc(), wbxml.Limits{}, syntaxErr, 4, "end of input"},
		{"END with nothing open", doc(0x01), wbxml.Limits{}, syntaxErr, 4, "END with no open element"},
		{"END after root", doc(0x05, 0x01), wbxml.Limits{}, syntaxErr, 5, "after the root"},
		{"second root", doc(0x05, 0x05), wbxml.Limits{}, syntaxErr, 5, "after the root"},
		{"unclosed element", doc(0x45, 0x5C, 0x01), wbxml.Limits{}, syntaxErr, 7, "end of input"},
		{"STR_I without terminator", doc(0x45, 0x03, 'a', 'b'), wbxml.Limits{}, syntaxErr, 5, "NUL"},
		{"STR_I outside element", doc(0x03, 'a', 0x00), wbxml.Limits{}, syntaxErr, 4, "outside"},
		{"OPAQUE outside element", doc(0xC3, 0x00), wbxml.Limits{}, syntaxErr, 4, "outside"},
		{"OPAQUE beyond data", doc(0x45, 0xC3, 0x10, 'a', 0x01), wbxml.Limits{}, syntaxErr, -1, "OPAQUE"},
		{"OPAQUE length truncated", doc(0x45, 0xC3, 0x81), wbxml.Limits{}, syntaxErr, 7, "OPAQUE length"},
		{"SWITCH_PAGE truncated", doc(0x45, 0x00), wbxml.Limits{}, syntaxErr, 6, "SWITCH_PAGE"},
		{"attributes on tag", doc(0x85, 0x01), wbxml.Limits{}, syntaxErr, 4, "attributes"},
		{"attributes and content", doc(0xC5, 0x01, 0x01), wbxml.Limits{}, syntaxErr, 4, "attributes"},
		{"ENTITY", doc(0x45, 0x02, 0x41, 0x01), wbxml.Limits{}, syntaxErr, 5, "ENTITY"},
		{"LITERAL", doc(0x04, 0x00), wbxml.Limits{}, syntaxErr, 4, "LITERAL"},
		{"LITERAL_C", doc(0x44, 0x00, 0x01), wbxml.Limits{}, syntaxErr, 4, "LITERAL_C"},
		{"LITERAL_A", doc(0x84, 0x00, 0x01), wbxml.Limits{}, syntaxErr, 4, "LITERAL_A"},
		{"LITERAL_AC", doc(0xC4, 0x00, 0x01, 0x01), wbxml.Limits{}, syntaxErr, 4, "LITERAL_AC"},
		{"EXT_I_0", doc(0x45, 0x40, 'a', 0x00, 0x01), wbxml.Limits{}, syntaxErr, 5, "EXT_I_0"},
		{"EXT_T_1", doc(0x45, 0x81, 0x00, 0x01), wbxml.Limits{}, syntaxErr, 5, "EXT_T_1"},
		{"EXT_2", doc(0x45, 0xC2, 0x01), wbxml.Limits{}, syntaxErr, 5, "EXT_2"},
		{"PI", doc(0x43, 0x05, 0x01, 0x45, 0x01), wbxml.Limits{}, syntaxErr, 4, "PI"},
		{"STR_T", doc(0x45, 0x83, 0x00, 0x01), wbxml.Limits{}, syntaxErr, 5, "STR_T"},
		{"depth over limit", nested(5), small, limitErr, 8, "MaxDepth"},
		{"depth over default limit", nested(65), wbxml.Limits{}, limitErr, 68, "MaxDepth"},
		{"string over limit", doc(0x45, 0x03, '1', '2', '3', '4', '5', '6', '7', '8', '9', 0x00, 0x01), small, limitErr, 5, "MaxStringLen"},
		{"unterminated string over limit", doc(0x45, 0x03, '1', '2', '3', '4', '5', '6', '7', '8', '9', '0'), small, limitErr, 5, "MaxStringLen"},
		{"opaque over limit", doc(0x45, 0xC3, 0x09, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x01), small, limitErr, 5, "MaxOpaqueLen"},
		{"opaque declared huge", doc(0x45, 0xC3, 0x8F, 0xFF, 0xFF, 0xFF, 0x7F), wbxml.Limits{}, limitErr, 5, "MaxOpaqueLen"},
		{"opaque beyond total", doc(0x45, 0xC3, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x01), wbxml.Limits{MaxTotal: 12}, limitErr, 5, "MaxTotal"},
		{"total over limit", doc(0x45, 0x4F, 0x4F, 0x4F, 0x01, 0x01, 0x01, 0x01), wbxml.Limits{MaxTotal: 10}, limitErr, 10, "MaxTotal"},
		{"string crosses total", doc(0x45, 0x03, 'a', 'b', 'c', 'd', 'e', 'f', 0x00, 0x01), wbxml.Limits{MaxTotal: 8}, limitErr, -1, "MaxTotal"},
		{"elements over limit", doc(0x45, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x01), small, limitErr, 9, "MaxElements"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			check := func(how string, err error) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s: no error", how)
				}
				var se *wbxml.SyntaxError
				var le *wbxml.LimitError
				switch tc.kind {
				case syntaxErr:
					if !errors.As(err, &se) {
						t.Fatalf("%s: got %T %v, want *SyntaxError", how, err, err)
					}
					if errors.Is(err, wbxml.ErrLimit) {
						t.Errorf("%s: syntax error %v matches ErrLimit", how, err)
					}
					if tc.offset >= 0 && se.Offset != tc.offset {
						t.Errorf("%s: offset %d, want %d (%v)", how, se.Offset, tc.offset, err)
					}
				case limitErr:
					if !errors.As(err, &le) || !errors.Is(err, wbxml.ErrLimit) {
						t.Fatalf("%s: got %T %v, want *LimitError matching ErrLimit", how, err, err)
					}
					if tc.offset >= 0 && le.Offset != tc.offset {
						t.Errorf("%s: offset %d, want %d (%v)", how, le.Offset, tc.offset, err)
					}
				}
				if !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("%s: error %q does not mention %q", how, err, tc.msg)
				}
			}
			_, err := wbxml.DecodeBytes(tc.in, tc.lim)
			check("DecodeBytes", err)
			_, err = wbxml.Decode(iotest.OneByteReader(bytes.NewReader(tc.in)), tc.lim)
			check("Decode(one-byte reader)", err)
			err = wbxml.ToXML(io.Discard, bytes.NewReader(tc.in), wbxml.XMLOptions{Limits: tc.lim})
			check("ToXML", err)
			// The streaming decoder reports the same error, and keeps it.
			d := wbxml.NewDecoder(bytes.NewReader(tc.in), tc.lim)
			for err = nil; err == nil; {
				var tok wbxml.Token
				tok, err = d.Next()
				if err == nil && tok.Kind == wbxml.KindOpaque {
					_, err = io.Copy(io.Discard, d.OpaqueReader())
				}
			}
			check("Decoder.Next", err)
			if _, again := d.Next(); again != err {
				t.Errorf("error not sticky: %v then %v", err, again)
			}
		})
	}
}

// TestDecodeLimitsExact accepts documents that hit the limits exactly.
func TestDecodeLimitsExact(t *testing.T) {
	in := doc(0x45, 0x03, '1', '2', '3', '4', '5', '6', '7', '8', 0x00, 0x5C, 0xC3, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x01, 0x01)
	lim := wbxml.Limits{MaxStringLen: 8, MaxOpaqueLen: 8, MaxTotal: int64(len(in)), MaxDepth: 2, MaxElements: 2}
	if _, err := wbxml.DecodeBytes(in, lim); err != nil {
		t.Errorf("DecodeBytes: %v", err)
	}
	if _, err := wbxml.Decode(iotest.OneByteReader(bytes.NewReader(in)), lim); err != nil {
		t.Errorf("Decode: %v", err)
	}
	lim.MaxTotal--
	if _, err := wbxml.Decode(bytes.NewReader(in), lim); !errors.Is(err, wbxml.ErrLimit) {
		t.Errorf("one byte over MaxTotal: %v", err)
	}
}

// TestDecodeLenient covers inputs EAS clients send that are valid WBXML but
// not canonical.
func TestDecodeLenient(t *testing.T) {
	want := wbxml.E(wbxml.AirSyncSync, wbxml.T(wbxml.AirSyncSyncKey, "ab"), wbxml.E(wbxml.AirSyncStatus), wbxml.O(wbxml.AirSyncClass, []byte{0}))
	cases := map[string][]byte{
		"canonical": doc(0x45, 0x4B, 0x03, 'a', 'b', 0x00, 0x01, 0x0E, 0x50, 0xC3, 0x01, 0x00, 0x01, 0x01),
		// content bit with nothing inside, empty STR_I, split STR_I,
		// redundant SWITCH_PAGE, multi-byte header fields and a string
		// table, public id given as a string table index.
		"content bit, empty": doc(0x45, 0x4B, 0x03, 'a', 0x00, 0x03, 'b', 0x00, 0x01, 0x00, 0x00, 0x4E, 0x03, 0x00, 0x01, 0x50, 0xC3, 0x01, 0x00, 0x01, 0x01),
		"header variants":    {0x03, 0x00, 0x00, 0x80, 0x6A, 0x02, 'x', 0x00, 0x45, 0x4B, 0x03, 'a', 'b', 0x00, 0x01, 0x4E, 0x01, 0x50, 0xC3, 0x01, 0x00, 0x01, 0x01},
	}
	for name, in := range cases {
		got, err := wbxml.DecodeBytes(in, wbxml.Limits{})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !sameTree(want, got) {
			diff := cmp.Diff(want, got, treeOpts)
			t.Errorf("%s: tree differs:\n%s", name, diff)
		}
	}
	d := wbxml.NewDecoderBytes(cases["header variants"], wbxml.Limits{})
	h, err := d.Header()
	if err != nil || h != (wbxml.Header{Version: 3, PublicID: 0, PublicIDIndex: 0, Charset: 106, StringTableLen: 2}) {
		t.Errorf("Header() = %+v, %v", h, err)
	}
}

// TestUnknownTokens checks that unknown tokens and pages survive decoding
// and re-encoding, and that Find's alternative tokens decode as spec tags.
func TestUnknownTokens(t *testing.T) {
	in := doc(0x45, 0x7F, 0x03, 'x', 0x00, 0x01, 0x00, 0x1F, 0x6A, 0x05, 0x01, 0x00, 0x00, 0x4B, 0x03, '1', 0x00, 0x01, 0x01)
	n, err := wbxml.DecodeBytes(in, wbxml.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	u := n.Children[0]
	if u.Tag.Known() || u.Tag != wbxml.NewTag(wbxml.PageAirSync, 0x3F) || u.Tag.String() != "AirSync:0x3F" || u.Text() != "x" {
		t.Errorf("unknown token decoded as %v %q", u.Tag, u.Text())
	}
	p := n.Children[1]
	if p.Tag.Known() || p.Tag.Page() != 0x1F || p.Tag.Token() != 0x2A || p.Tag.String() != "0x1F:0x2A" || p.Children[0].Tag.String() != "0x1F:0x05" {
		t.Errorf("unknown page decoded as %v", p)
	}
	if n.ChildText(wbxml.AirSyncSyncKey) != "1" {
		t.Errorf("known tag after unknown ones lost: %v", n)
	}
	if got := mustEncode(t, n); !bytes.Equal(got, in) {
		t.Errorf("re-encoding differs:\n got % x\nwant % x", got, in)
	}
	for tok, want := range map[byte]wbxml.Tag{0x1A: wbxml.FindMaxPictures, 0x1B: wbxml.FindMaxSize, 0x1C: wbxml.FindPicture, 0x20: wbxml.FindMaxPictures, 0x22: wbxml.FindPicture} {
		n, err := wbxml.DecodeBytes(doc(0x00, 25, 0x45, tok, 0x01), wbxml.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Children[0].Tag != want {
			t.Errorf("Find token 0x%02X decoded as %v, want %v", tok, n.Children[0].Tag, want)
		}
		if enc := mustEncode(t, n); enc[len(enc)-2] != byte(want.Token()) {
			t.Errorf("Find token 0x%02X re-encoded as 0x%02X", tok, enc[len(enc)-2])
		}
	}
}

// TestDecoderTokens checks the streaming token sequence, the synthesized End
// of empty elements, offsets, and io.EOF at the end.
func TestDecoderTokens(t *testing.T) {
	in := doc(0x45, 0x0B, 0x00, 0x11, 0x4A, 0x03, 'h', 'i', 0x00, 0xC3, 0x02, 7, 8, 0x01, 0x01)
	d := wbxml.NewDecoder(iotest.HalfReader(bytes.NewReader(in)), wbxml.Limits{})
	type tk struct {
		Kind   wbxml.Kind
		Tag    wbxml.Tag
		Empty  bool
		Data   string
		Len    int64
		Offset int64
	}
	var got []tk
	for {
		tok, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, tk{tok.Kind, tok.Tag, tok.Empty(), string(tok.Data), int64(tok.Len), d.TokenOffset()})
	}
	want := []tk{
		{wbxml.KindStart, wbxml.AirSyncSync, false, "", 0, 4},
		{wbxml.KindStart, wbxml.AirSyncSyncKey, true, "", 1, 5},
		{wbxml.KindEnd, wbxml.AirSyncSyncKey, false, "", 0, 5},
		{wbxml.KindStart, wbxml.AirSyncBaseBody, false, "", 0, 8},
		{wbxml.KindText, 0, false, "hi", 0, 9},
		{wbxml.KindOpaque, 0, false, "", 2, 13},
		{wbxml.KindEnd, wbxml.AirSyncBaseBody, false, "", 0, 17},
		{wbxml.KindEnd, wbxml.AirSyncSync, false, "", 0, 18},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tokens (-want +got):\n%s", diff)
	}
	if _, err := d.Next(); err != io.EOF {
		t.Errorf("after EOF: %v", err)
	}
	if _, err := d.OpaqueBytes(); err == nil {
		t.Error("OpaqueBytes without a pending OPAQUE succeeded")
	}
}

// TestOpaqueStreaming reads a large OPAQUE value through OpaqueReader and
// OpaqueBytes, skips one unread, and streams one out with WriteOpaqueFrom.
func TestOpaqueStreaming(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 200_000) // 3.2 MB
	var bin bytes.Buffer
	e := wbxml.NewEncoder(&bin)
	e.StartElement(wbxml.ItemOperationsItemOperations)
	for range 3 {
		e.StartElement(wbxml.ItemOperationsData)
		if err := e.WriteOpaqueFrom(iotest.HalfReader(bytes.NewReader(payload)), int64(len(payload))); err != nil {
			t.Fatal(err)
		}
		e.EndElement()
	}
	e.EndElement()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(payload)
	d := wbxml.NewDecoder(iotest.HalfReader(bytes.NewReader(bin.Bytes())), wbxml.Limits{})
	var n int
	for {
		tok, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if tok.Kind != wbxml.KindOpaque {
			continue
		}
		if int64(tok.Len) != int64(len(payload)) {
			t.Fatalf("Len = %d", tok.Len)
		}
		switch n++; n {
		case 1:
			h := sha256.New()
			if _, err := io.Copy(h, d.OpaqueReader()); err != nil {
				t.Fatal(err)
			}
			if [32]byte(h.Sum(nil)) != want {
				t.Error("OpaqueReader payload differs")
			}
		case 2:
			b, err := d.OpaqueBytes()
			if err != nil || sha256.Sum256(b) != want {
				t.Errorf("OpaqueBytes payload differs (%v)", err)
			}
		case 3:
			// Read a little, let Next skip the rest.
			if _, err := io.ReadFull(d.OpaqueReader(), make([]byte, 10)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n != 3 {
		t.Fatalf("saw %d OPAQUE tokens", n)
	}
	tree, err := wbxml.Decode(iotest.HalfReader(bytes.NewReader(bin.Bytes())), wbxml.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if v := tree.Children[2].Value; !bytes.Equal(v, payload) {
		t.Errorf("tree OPAQUE differs (len %d)", len(v))
	}
}

// TestLongString decodes a STR_I far longer than the decoder's buffer.
func TestLongString(t *testing.T) {
	s := strings.Repeat("x", 300_000)
	n := wbxml.E(wbxml.AirSyncSync, wbxml.T(wbxml.AirSyncBaseData, s))
	bin := mustEncode(t, n)
	got, err := wbxml.Decode(iotest.HalfReader(bytes.NewReader(bin)), wbxml.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ChildText(wbxml.AirSyncBaseData) != s {
		t.Error("long string differs")
	}
	if _, err := wbxml.Decode(bytes.NewReader(bin), wbxml.Limits{MaxStringLen: 100_000}); !errors.Is(err, wbxml.ErrLimit) {
		t.Errorf("MaxStringLen: %v", err)
	}
}

// TestReadElement streams a document, materializing one subtree at a time.
func TestReadElement(t *testing.T) {
	bin := readFile(t, "testdata/golden/foldersync-response.wbxml")
	d := wbxml.NewDecoder(bytes.NewReader(bin), wbxml.Limits{})
	var names []string
	for {
		tok, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if tok.Kind == wbxml.KindStart && tok.Tag == wbxml.FolderHierarchyAdd {
			n, err := d.ReadElement(tok)
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, n.ChildText(wbxml.FolderHierarchyDisplayName))
		}
	}
	if want := []string{"Inbox", "Drafts", "Deleted Items", "Sent Items", "Rechnungen & Belege"}; !cmp.Equal(names, want) {
		t.Errorf("names = %q, want %q", names, want)
	}
}

// TestStreamingZeroAlloc checks that the streaming layer allocates nothing
// per token once its buffers are warm.
func TestStreamingZeroAlloc(t *testing.T) {
	bin := readFile(t, "testdata/golden/sync-response-email.wbxml")
	d := wbxml.NewDecoder(nil, wbxml.Limits{})
	r := bytes.NewReader(nil)
	decode := func() {
		r.Reset(bin)
		d.Reset(r)
		for {
			tok, err := d.Next()
			if err != nil {
				if err != io.EOF {
					t.Fatal(err)
				}
				return
			}
			if tok.Kind == wbxml.KindOpaque {
				if _, err := d.OpaqueBytes(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if a := testing.AllocsPerRun(50, decode); a != 0 {
		t.Errorf("Decoder: %v allocs per document, want 0", a)
	}
	tree, err := wbxml.DecodeBytes(bin, wbxml.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	e := wbxml.NewEncoder(io.Discard)
	encode := func() {
		e.Reset(io.Discard)
		if err := e.EncodeElement(tree); err != nil {
			t.Fatal(err)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if a := testing.AllocsPerRun(50, encode); a != 0 {
		t.Errorf("Encoder: %v allocs per document, want 0", a)
	}
}
