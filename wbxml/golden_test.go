package wbxml_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/easd/easd/wbxml"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "regenerate testdata/golden/*.wbxml with our encoder from the hand-written *.xml (canonicalizing the .xml) and the fuzz seed corpora")

// goldenIndent is the indentation of the committed golden XML files.
const goldenIndent = "  "

type golden struct {
	name     string
	xml, bin []byte
}

// loadGolden reads testdata/golden/*.xml and their .wbxml twins. With
// -update it first rewrites each .wbxml from FromXML of the .xml, rewrites
// the .xml as ToXML of that (canonical form), and seeds the fuzz corpora.
func loadGolden(t *testing.T) []golden {
	t.Helper()
	files, err := filepath.Glob("testdata/golden/*.xml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	var out []golden
	for _, xf := range files {
		name := strings.TrimSuffix(filepath.Base(xf), ".xml")
		bf := strings.TrimSuffix(xf, ".xml") + ".wbxml"
		if *update {
			var bin, canon bytes.Buffer
			if err := wbxml.FromXML(&bin, bytes.NewReader(readFile(t, xf))); err != nil {
				t.Fatalf("%s: FromXML: %v", xf, err)
			}
			if err := wbxml.ToXML(&canon, bytes.NewReader(bin.Bytes()), wbxml.XMLOptions{Indent: goldenIndent}); err != nil {
				t.Fatalf("%s: ToXML: %v", xf, err)
			}
			writeFile(t, bf, bin.Bytes())
			writeFile(t, xf, canon.Bytes())
			for _, fz := range []string{"FuzzDecode", "FuzzRoundTrip"} {
				seed := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", bin.Bytes())
				writeFile(t, filepath.Join("testdata/fuzz", fz, "golden-"+name), seed)
			}
		}
		out = append(out, golden{name, readFile(t, xf), readFile(t, bf)})
	}
	return out
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestGolden checks every golden pair in both directions and through every
// layer: FromXML(xml) == wbxml, ToXML(wbxml) == xml, Decode+Encode ==
// wbxml, and the streaming tokens through a one-byte reader.
func TestGolden(t *testing.T) {
	for _, g := range loadGolden(t) {
		t.Run(g.name, func(t *testing.T) {
			var bin bytes.Buffer
			if err := wbxml.FromXML(&bin, bytes.NewReader(g.xml)); err != nil {
				t.Fatalf("FromXML: %v", err)
			}
			if !bytes.Equal(bin.Bytes(), g.bin) {
				t.Errorf("FromXML(%s.xml) differs from %s.wbxml:\n got % x\nwant % x", g.name, g.name, bin.Bytes(), g.bin)
			}
			var x bytes.Buffer
			if err := wbxml.ToXML(&x, bytes.NewReader(g.bin), wbxml.XMLOptions{Indent: goldenIndent}); err != nil {
				t.Fatalf("ToXML: %v", err)
			}
			if diff := cmp.Diff(string(g.xml), x.String()); diff != "" {
				t.Errorf("ToXML(%s.wbxml) mismatch (-file +got):\n%s", g.name, diff)
			}
			tree, err := wbxml.DecodeBytes(g.bin, wbxml.Limits{})
			if err != nil {
				t.Fatalf("DecodeBytes: %v", err)
			}
			if got := mustEncode(t, tree); !bytes.Equal(got, g.bin) {
				t.Errorf("Encode(Decode) differs:\n got % x\nwant % x", got, g.bin)
			}
			slow, err := wbxml.Decode(iotest.OneByteReader(bytes.NewReader(g.bin)), wbxml.Limits{})
			if err != nil {
				t.Fatalf("Decode(one-byte reader): %v", err)
			}
			if !sameTree(tree, slow) {
				diff := cmp.Diff(tree, slow, treeOpts)
				t.Errorf("one-byte reader tree differs:\n%s", diff)
			}
			var tx bytes.Buffer
			if err := wbxml.WriteXML(&tx, tree, wbxml.XMLOptions{Indent: goldenIndent}); err != nil {
				t.Fatalf("WriteXML: %v", err)
			}
			if tx.String() != x.String() {
				t.Errorf("WriteXML(tree) != ToXML(bytes):\n%s", cmp.Diff(x.String(), tx.String()))
			}
		})
	}
}

// TestGoldenCoverage requires the golden corpus to use every code page and
// reports how many of the known tags it exercises.
func TestGoldenCoverage(t *testing.T) {
	pages := map[wbxml.Page]bool{}
	tags := map[wbxml.Tag]bool{}
	var walk func(n *wbxml.Node)
	walk = func(n *wbxml.Node) {
		pages[n.Tag.Page()] = true
		tags[n.Tag] = true
		for _, c := range n.Children {
			walk(c)
		}
	}
	for _, g := range loadGolden(t) {
		n, err := wbxml.DecodeBytes(g.bin, wbxml.Limits{})
		if err != nil {
			t.Fatalf("%s: %v", g.name, err)
		}
		walk(n)
	}
	var missingPages []string
	for p := range wbxml.Page(26) {
		if !pages[p] {
			missingPages = append(missingPages, p.String())
		}
	}
	if len(missingPages) > 0 {
		t.Errorf("golden corpus misses code pages %v", missingPages)
	}
	var missing []string
	for _, tg := range wbxml.KnownTags() {
		if !tags[tg] {
			missing = append(missing, tg.String())
		}
	}
	sort.Strings(missing)
	known := len(wbxml.KnownTags())
	t.Logf("golden corpus covers %d/%d known tags; not covered: %v", known-len(missing), known, missing)
	if len(missing) > known/10 {
		t.Errorf("golden corpus covers only %d/%d known tags", known-len(missing), known)
	}
}
