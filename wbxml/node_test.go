package wbxml_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/easd/easd/wbxml"
)

// TestDecodedTreeOutlivesDecoder checks that a decoded tree owns its memory:
// appending to one node's Children or Value leaves its neighbours intact,
// and neither reusing the Decoder for another document nor the pooled
// decoders of DecodeBytes change it. Subtrees kept from ReadElement must
// survive the rest of the stream too.
func TestDecodedTreeOutlivesDecoder(t *testing.T) {
	first := readFile(t, "testdata/golden/foldersync-response.wbxml")
	second := readFile(t, "testdata/golden/sync-response-email.wbxml")

	d := wbxml.NewDecoder(bytes.NewReader(first), wbxml.Limits{})
	tree, err := d.ReadTree()
	if err != nil {
		t.Fatal(err)
	}
	want := tree.String()
	wantBin := mustEncode(t, tree)

	// Append to one node's child list and to a value, keeping the results.
	changes := tree.Child(wbxml.FolderHierarchyChanges)
	if changes == nil || len(changes.Children) < 3 {
		t.Fatalf("unexpected test document: %v", tree)
	}
	add := changes.Children[1]
	grown := append(add.Children, wbxml.T(wbxml.FolderHierarchyType, "zzz"))
	val := append(add.Children[0].Value, "zzzzzzzz"...)
	if got := tree.String(); got != want {
		t.Fatalf("appending to decoded slices changed the tree:\n got %s\nwant %s", got, want)
	}
	// Writing through the grown slices must not reach the tree either.
	grown[0] = wbxml.T(wbxml.FolderHierarchyServerId, "overwritten")
	val[0] = '!'
	if got := tree.String(); got != want {
		t.Fatalf("writing through appended slices changed the tree:\n got %s\nwant %s", got, want)
	}

	// Reuse the same Decoder, and the pooled ones, for other documents.
	for range 3 {
		d.Reset(bytes.NewReader(second))
		if _, err := d.ReadTree(); err != nil {
			t.Fatal(err)
		}
		if _, err := wbxml.DecodeBytes(second, wbxml.Limits{}); err != nil {
			t.Fatal(err)
		}
		if _, err := wbxml.Decode(bytes.NewReader(first), wbxml.Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := tree.String(); got != want {
		t.Fatalf("decoding other documents changed the tree:\n got %s\nwant %s", got, want)
	}
	if got := mustEncode(t, tree); !bytes.Equal(got, wantBin) {
		t.Fatalf("re-encoding differs after reuse:\n got % x\nwant % x", got, wantBin)
	}

	// Explicitly appending to the decoded node keeps its siblings intact.
	next := changes.Children[2]
	wantNext := next.String()
	nAdd := len(add.Children)
	add.Append(wbxml.T(wbxml.FolderHierarchyType, "12"))
	if got := next.String(); got != wantNext {
		t.Errorf("Append to one Add changed its sibling:\n got %s\nwant %s", got, wantNext)
	}
	if len(add.Children) != nAdd+1 {
		t.Errorf("Append did not take effect: %v", add)
	}

	// Subtrees from ReadElement outlive the tokens that follow them.
	d.Reset(bytes.NewReader(first))
	var kept []*wbxml.Node
	var wantKept []string
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
			kept = append(kept, n)
			wantKept = append(wantKept, n.String())
		}
	}
	d.Reset(bytes.NewReader(second))
	if _, err := d.ReadTree(); err != nil {
		t.Fatal(err)
	}
	if len(kept) == 0 {
		t.Fatal("no Add elements read")
	}
	for i, n := range kept {
		if got := n.String(); got != wantKept[i] {
			t.Errorf("subtree %d changed after the decoder moved on:\n got %s\nwant %s", i, got, wantKept[i])
		}
	}
}
