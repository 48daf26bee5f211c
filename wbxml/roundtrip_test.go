package wbxml_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/easd/easd/wbxml"
	"github.com/google/go-cmp/cmp"
)

// TestRoundTripProperty: for random trees from every page and tag (plus
// unknown tags, arbitrary text bytes and OPAQUE anywhere), encode -> decode
// gives the same tree through every decoding path, the streaming layer
// re-encodes to the same bytes, and the XML form round-trips to the same
// bytes.
func TestRoundTripProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		n := randomTree(r, genOpts{maxDepth: 6, maxKids: 5})
		bin := mustEncode(t, n)
		got, err := wbxml.DecodeBytes(bin, wbxml.Limits{})
		if err != nil {
			t.Fatalf("tree %d: DecodeBytes: %v", i, err)
		}
		if !sameTree(n, got) {
			t.Fatalf("tree %d: decode(encode(t)) != t:\n%s", i, cmp.Diff(n, got, treeOpts))
		}
		var rd io.Reader = bytes.NewReader(bin)
		if i%3 == 0 {
			rd = iotest.OneByteReader(rd)
		}
		got2, err := wbxml.Decode(rd, wbxml.Limits{})
		if err != nil || !sameTree(got, got2) {
			t.Fatalf("tree %d: Decode(reader) differs: %v", i, err)
		}
		if re := streamCopy(t, bin); !bytes.Equal(re, bin) {
			t.Fatalf("tree %d: token stream copy differs:\n got % x\nwant % x", i, re, bin)
		}
		var x, back bytes.Buffer
		if err := wbxml.ToXML(&x, bytes.NewReader(bin), wbxml.XMLOptions{Indent: " "}); err != nil {
			t.Fatalf("tree %d: ToXML: %v", i, err)
		}
		if err := wbxml.FromXML(&back, &x); err != nil {
			t.Fatalf("tree %d: FromXML: %v\n%s", i, err, n)
		}
		if !bytes.Equal(back.Bytes(), bin) {
			t.Fatalf("tree %d: XML round trip differs:\n got % x\nwant % x", i, back.Bytes(), bin)
		}
	}
}

// streamCopy re-encodes a document token by token with the streaming API.
func streamCopy(t testing.TB, bin []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	d := wbxml.NewDecoderBytes(bin, wbxml.Limits{})
	e := wbxml.NewEncoder(&out)
	for {
		tok, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch tok.Kind {
		case wbxml.KindStart:
			if tok.Empty() {
				e.EmptyElement(tok.Tag)
				d.Next() // the synthesized End
			} else {
				e.StartElement(tok.Tag)
			}
		case wbxml.KindEnd:
			e.EndElement()
		case wbxml.KindText:
			e.WriteTextBytes(tok.Data)
		case wbxml.KindOpaque:
			e.WriteOpaqueFrom(d.OpaqueReader(), int64(tok.Len))
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestFromXMLErrors checks that bad XML input is rejected with a message.
func TestFromXMLErrors(t *testing.T) {
	cases := map[string]string{
		"no namespace":      `<Sync/>`,
		"unknown namespace": `<Sync xmlns="Nope:"/>`,
		"unknown element":   `<Nope xmlns="AirSync:"/>`,
		"bad attribute":     `<Sync xmlns="AirSync:" foo="bar"/>`,
		"bad base64":        `<Sync xmlns="AirSync:"><Class opaque="base64">!!!</Class></Sync>`,
		"base64 with kids":  `<Sync xmlns="AirSync:" opaque="base64"><Class/></Sync>`,
		"two roots":         `<Sync xmlns="AirSync:"/><Sync xmlns="AirSync:"/>`,
		"text outside":      `hello<Sync xmlns="AirSync:"/>`,
		"malformed":         `<Sync xmlns="AirSync:"><Class></Sync>`,
		"empty":             ``,
		"NUL in text":       `<Sync xmlns="AirSync:"><Class text="base64">YQBi</Class></Sync>`,
		"bad token":         `<Tag0x04 xmlns="AirSync:"/>`,
		"bad page":          `<Tag0x05 xmlns="Page0xZZ:"/>`,
	}
	for name, in := range cases {
		if err := wbxml.FromXML(io.Discard, strings.NewReader(in)); err == nil {
			t.Errorf("%s: FromXML(%q) succeeded", name, in)
		}
	}
}

// TestFromXMLDialects accepts libwbxml's output and the spec's namespace
// prefixes for the same document.
func TestFromXMLDialects(t *testing.T) {
	want := mustEncode(t, wbxml.E(wbxml.AirSyncSync,
		wbxml.E(wbxml.AirSyncBaseBody, wbxml.T(wbxml.CalendarEmail, "a@b"), wbxml.T(wbxml.AirSyncBaseType, "1")),
		wbxml.T(wbxml.GALDisplayName, "x")))
	for name, in := range map[string]string{
		"libwbxml": `<?xml version="1.0"?>
<!DOCTYPE ActiveSync PUBLIC "-//MICROSOFT//DTD ActiveSync//EN" "http://www.microsoft.com/">
<Sync xmlns="AirSync:">
<Body xmlns="AirSyncBase:">
<Attendee_Email xmlns="Calendar:">a@b</Attendee_Email>
<Type>1</Type>
</Body>
<DisplayName xmlns="Gal:">x</DisplayName>
</Sync>`,
		"spec prefixes": `<?xml version="1.0" encoding="utf-8"?>
<!-- comment -->
<Sync xmlns="AirSync" xmlns:airsyncbase="AirSyncBase" xmlns:calendar="Calendar" xmlns:gal="GAL">
  <airsyncbase:Body>
    <calendar:Email>a@b</calendar:Email>
    <airsyncbase:Type>1</airsyncbase:Type>
  </airsyncbase:Body>
  <gal:DisplayName>x</gal:DisplayName>
</Sync>`,
	} {
		var b bytes.Buffer
		if err := wbxml.FromXML(&b, strings.NewReader(in)); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(b.Bytes(), want) {
			t.Errorf("%s:\n got % x\nwant % x", name, b.Bytes(), want)
		}
	}
}

// TestToXMLOptions checks the compact and default (libwbxml-like) layouts.
func TestToXMLOptions(t *testing.T) {
	bin := mustEncode(t, wbxml.E(wbxml.PingPing, wbxml.T(wbxml.PingStatus, "1"), wbxml.E(wbxml.PingFolders)))
	for _, tc := range []struct {
		opts wbxml.XMLOptions
		want string
	}{
		{wbxml.XMLOptions{}, "<?xml version=\"1.0\"?>\n<!DOCTYPE ActiveSync PUBLIC \"-//MICROSOFT//DTD ActiveSync//EN\" \"http://www.microsoft.com/\">\n<Ping xmlns=\"Ping:\">\n<Status>1</Status>\n<Folders/>\n</Ping>\n"},
		{wbxml.XMLOptions{Compact: true, NoProlog: true}, `<Ping xmlns="Ping:"><Status>1</Status><Folders/></Ping>`},
		{wbxml.XMLOptions{Indent: "\t", NoProlog: true}, "<Ping xmlns=\"Ping:\">\n\t<Status>1</Status>\n\t<Folders/>\n</Ping>\n"},
	} {
		var b bytes.Buffer
		if err := wbxml.ToXML(&b, bytes.NewReader(bin), tc.opts); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("%+v:\n got %q\nwant %q", tc.opts, b.String(), tc.want)
		}
	}
	if err := wbxml.WriteXML(io.Discard, nil, wbxml.XMLOptions{}); err == nil {
		t.Error("WriteXML(nil) succeeded")
	}
	if err := wbxml.ToXML(errWriter{}, bytes.NewReader(bin), wbxml.XMLOptions{}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("ToXML write error: %v", err)
	}
}

// checkDecodeErr fails unless err is nil or one of the documented types.
func checkDecodeErr(t *testing.T, err error) {
	t.Helper()
	var se *wbxml.SyntaxError
	if err != nil && !errors.As(err, &se) && !errors.Is(err, wbxml.ErrLimit) {
		t.Fatalf("untyped decode error %T: %v", err, err)
	}
}
