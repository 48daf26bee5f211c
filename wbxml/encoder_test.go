package wbxml_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/easd/easd/wbxml"
)

// TestEncoderSpecExample encodes the start of the MS-ASWBXML section 4
// example (a Sync response adding a contact) and compares with the bytes
// printed in the spec.
func TestEncoderSpecExample(t *testing.T) {
	var b bytes.Buffer
	e := wbxml.NewEncoder(&b)
	e.StartElement(wbxml.AirSyncSync)
	e.StartElement(wbxml.AirSyncCollections)
	e.StartElement(wbxml.AirSyncCollection)
	e.TextElement(wbxml.AirSyncClass, "Contacts")
	e.TextElement(wbxml.AirSyncSyncKey, "2")
	e.TextElement(wbxml.AirSyncCollectionId, "2")
	e.TextElement(wbxml.AirSyncStatus, "1")
	e.StartElement(wbxml.AirSyncCommands)
	e.StartElement(wbxml.AirSyncAdd)
	e.TextElement(wbxml.AirSyncServerId, "2:1")
	e.StartElement(wbxml.AirSyncApplicationData)
	e.StartElement(wbxml.AirSyncBaseBody)
	e.TextElement(wbxml.AirSyncBaseType, "1")
	e.TextElement(wbxml.AirSyncBaseEstimatedDataSize, "0")
	e.TextElement(wbxml.AirSyncBaseTruncated, "1")
	e.EndElement()
	e.TextElement(wbxml.ContactsFileAs, "Funk")
	for e.Depth() > 0 {
		e.EndElement()
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	want := []byte{0x03, 0x01, 0x6A, 0x00, 0x45, 0x5C, 0x4F, 0x50, 0x03, 'C', 'o', 'n', 't', 'a', 'c', 't', 's', 0x00, 0x01,
		0x4B, 0x03, '2', 0x00, 0x01, 0x52, 0x03, '2', 0x00, 0x01, 0x4E, 0x03, '1', 0x00, 0x01, 0x56, 0x47, 0x4D, 0x03, '2', ':', '1', 0x00, 0x01,
		0x5D, 0x00, 0x11, 0x4A, 0x46, 0x03, '1', 0x00, 0x01, 0x4C, 0x03, '0', 0x00, 0x01, 0x4D, 0x03, '1', 0x00, 0x01, 0x01,
		0x00, 0x01, 0x5E, 0x03, 'F', 'u', 'n', 'k', 0x00, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("got  % x\nwant % x", b.Bytes(), want)
	}
}

// TestEncoderErrors checks that misuse yields sticky errors.
func TestEncoderErrors(t *testing.T) {
	cases := []struct {
		name string
		do   func(e *wbxml.Encoder) error
		want string
	}{
		{"invalid tag", func(e *wbxml.Encoder) error { return e.StartElement(wbxml.NewTag(0, 0x04)) }, "invalid tag"},
		{"end with nothing open", func(e *wbxml.Encoder) error { return e.EndElement() }, "no open element"},
		{"text outside element", func(e *wbxml.Encoder) error { return e.WriteText("x") }, "outside"},
		{"opaque outside element", func(e *wbxml.Encoder) error { return e.WriteOpaque([]byte{1}) }, "outside"},
		{"text with NUL", func(e *wbxml.Encoder) error {
			e.StartElement(wbxml.AirSyncSync)
			return e.WriteText("a\x00b")
		}, "NUL"},
		{"bytes with NUL", func(e *wbxml.Encoder) error {
			e.StartElement(wbxml.AirSyncSync)
			return e.WriteTextBytes([]byte("a\x00b"))
		}, "NUL"},
		{"second root", func(e *wbxml.Encoder) error {
			e.EmptyElement(wbxml.AirSyncSync)
			return e.EmptyElement(wbxml.AirSyncSync)
		}, "after the root"},
		{"close with open element", func(e *wbxml.Encoder) error {
			e.StartElement(wbxml.AirSyncSync)
			return e.Close()
		}, "unclosed"},
		{"close empty document", func(e *wbxml.Encoder) error { return e.Close() }, "before any element"},
		{"short opaque source", func(e *wbxml.Encoder) error {
			e.StartElement(wbxml.ComposeMailMime)
			err := e.WriteOpaqueFrom(strings.NewReader("abc"), 10)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				return errors.New("not ErrUnexpectedEOF: " + err.Error())
			}
			return err
		}, "short by 7 bytes"},
		{"write error", func(e *wbxml.Encoder) error {
			e.Reset(errWriter{})
			e.EmptyElement(wbxml.AirSyncSync)
			return e.Close()
		}, "disk full"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := wbxml.NewEncoder(io.Discard)
			err := tc.do(e)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if again := e.EmptyElement(wbxml.AirSyncSync); again != err {
				t.Errorf("error not sticky: %v then %v", err, again)
			}
		})
	}
	if err := wbxml.Encode(io.Discard, nil); err == nil {
		t.Error("Encode(nil) succeeded")
	}
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestEncodeLarge writes values larger than the encoder's buffer through
// every write path and reads them back.
func TestEncodeLarge(t *testing.T) {
	big := strings.Repeat("y", 100_000)
	blob := bytes.Repeat([]byte{0, 1, 2}, 50_000)
	tree := wbxml.E(wbxml.AirSyncSync,
		wbxml.T(wbxml.AirSyncBaseData, big),
		&wbxml.Node{Tag: wbxml.AirSyncBaseData, Value: []byte(big)},
		wbxml.O(wbxml.ItemOperationsData, blob),
		wbxml.OStream(wbxml.ItemOperationsData, iotest.OneByteReader(bytes.NewReader(blob)), int64(len(blob))),
		wbxml.O(wbxml.Email2ConversationId, nil),
	)
	var b bytes.Buffer
	w := bufio.NewWriterSize(&b, 16)
	if err := wbxml.Encode(w, tree); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	got, err := wbxml.DecodeBytes(b.Bytes(), wbxml.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Children[0].Text() != big || got.Children[1].Text() != big ||
		!bytes.Equal(got.Children[2].Value, blob) || !bytes.Equal(got.Children[3].Value, blob) ||
		!got.Children[4].Opaque || len(got.Children[4].Value) != 0 {
		t.Error("large values differ after round trip")
	}
}

// TestTreeHelpers exercises the Node accessors and builders.
func TestTreeHelpers(t *testing.T) {
	root := wbxml.E(wbxml.AirSyncSync,
		wbxml.E(wbxml.AirSyncCollections,
			wbxml.E(wbxml.AirSyncCollection, wbxml.T(wbxml.AirSyncSyncKey, "1"), wbxml.T(wbxml.AirSyncCollectionId, "a")),
			wbxml.E(wbxml.AirSyncCollection, wbxml.T(wbxml.AirSyncSyncKey, "2"), wbxml.T(wbxml.AirSyncCollectionId, "b")),
		),
	)
	root.Append(wbxml.T(wbxml.AirSyncWait, "5"))
	if got := root.Path(wbxml.AirSyncCollections, wbxml.AirSyncCollection).ChildText(wbxml.AirSyncCollectionId); got != "a" {
		t.Errorf("Path = %q", got)
	}
	var ids []string
	for c := range root.Child(wbxml.AirSyncCollections).Each(wbxml.AirSyncCollection) {
		ids = append(ids, c.ChildText(wbxml.AirSyncSyncKey))
	}
	if strings.Join(ids, ",") != "1,2" {
		t.Errorf("Each = %v", ids)
	}
	for range root.Each(wbxml.AirSyncCollections) {
		break // early stop must not panic
	}
	var missing *wbxml.Node
	if missing.Child(wbxml.AirSyncSync) != nil || missing.Text() != "" || missing.Bytes() != nil || root.Path(wbxml.AirSyncStatus, wbxml.AirSyncSync) != nil {
		t.Error("nil-safe accessors failed")
	}
	for range missing.Each(wbxml.AirSyncSync) {
		t.Error("Each on nil yielded")
	}
	if root.ChildText(wbxml.AirSyncWait) != "5" || string(root.Child(wbxml.AirSyncWait).Bytes()) != "5" {
		t.Error("Append/Bytes failed")
	}
	want := `<Sync xmlns="AirSync:"><Collections><Collection><SyncKey>1</SyncKey><CollectionId>a</CollectionId></Collection><Collection><SyncKey>2</SyncKey><CollectionId>b</CollectionId></Collection></Collections><Wait>5</Wait></Sync>`
	if root.String() != want {
		t.Errorf("String() = %s", root.String())
	}
	s := wbxml.E(wbxml.ItemOperationsData)
	s.Stream = &wbxml.OpaqueStream{R: strings.NewReader("x"), N: 1}
	if got := s.String(); got != `<Data xmlns="ItemOperations:" opaque="stream"/>` {
		t.Errorf("stream String() = %s", got)
	}
}

// TestDecodedSlicesIsolated checks that appending to decoded values and
// child lists never overwrites neighbouring nodes (arena clipping).
func TestDecodedSlicesIsolated(t *testing.T) {
	n, err := wbxml.DecodeBytes(readFile(t, "testdata/golden/foldersync-response.wbxml"), wbxml.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	before := n.String()
	ch := n.Child(wbxml.FolderHierarchyChanges)
	first := ch.Children[1]
	_ = append(first.Children, wbxml.T(wbxml.FolderHierarchyType, "zzz"))
	_ = append(first.Children[0].Value, "zzzzzzzz"...)
	if n.String() != before {
		t.Error("appending to decoded slices changed the tree")
	}
}

func TestTextStream(t *testing.T) {
	big := strings.Repeat("abc\x00def", 20000)
	var buf bytes.Buffer
	if err := wbxml.Encode(&buf, wbxml.E(wbxml.AirSyncBaseBody, wbxml.TStream(wbxml.AirSyncBaseData, strings.NewReader(big)), wbxml.TStream(wbxml.AirSyncBaseType, strings.NewReader("")))); err != nil {
		t.Fatal(err)
	}
	n, err := wbxml.DecodeBytes(buf.Bytes(), wbxml.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := n.ChildText(wbxml.AirSyncBaseData), strings.ReplaceAll(big, "\x00", ""); got != want {
		t.Errorf("streamed text: got %d bytes, want %d", len(got), len(want))
	}
}

func TestGen(t *testing.T) {
	boom := errors.New("backend down")
	items := 0
	doc := wbxml.E(wbxml.AirSyncSync,
		&wbxml.Node{Tag: wbxml.AirSyncCommands, Children: []*wbxml.Node{wbxml.T(wbxml.AirSyncServerId, "first")}, Gen: func(e *wbxml.Encoder) error {
			for i := range 3 {
				items++
				if err := e.EncodeElement(wbxml.T(wbxml.AirSyncServerId, strconv.Itoa(i))); err != nil {
					return err
				}
			}
			return nil
		}},
		&wbxml.Node{Gen: func(e *wbxml.Encoder) error { return e.EmptyElement(wbxml.AirSyncMoreAvailable) }})
	var buf bytes.Buffer
	if err := wbxml.Encode(&buf, doc); err != nil {
		t.Fatal(err)
	}
	n, err := wbxml.DecodeBytes(buf.Bytes(), wbxml.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for c := range n.Child(wbxml.AirSyncCommands).Each(wbxml.AirSyncServerId) {
		got = append(got, c.Text())
	}
	if strings.Join(got, ",") != "first,0,1,2" || n.Child(wbxml.AirSyncMoreAvailable) == nil {
		t.Errorf("generated document %v", n)
	}
	err = wbxml.Encode(io.Discard, wbxml.E(wbxml.AirSyncSync, &wbxml.Node{Tag: wbxml.AirSyncCommands, Gen: func(*wbxml.Encoder) error { return boom }}))
	if !errors.Is(err, boom) {
		t.Errorf("Gen error = %v, want it returned as is", err)
	}
}
