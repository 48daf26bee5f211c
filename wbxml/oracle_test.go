package wbxml_test

// Oracle tests against libwbxml 0.11.8 (Debian libwbxml2-utils), an
// independent implementation of the same tables.
//
// Exclusions, all explicit:
//   - documents with code page 25 (Find, EAS 16.1), MeetingResponse
//     ProposedStartTime/ProposedEndTime or Provision AccountOnlyRemoteWipe:
//     libwbxml 0.11.8 does not know these tags (it prints "unknown", and
//     when encoding it looks names up in the wrong page);
//   - documents with unknown tags (libwbxml prints them as <unknown>);
//   - whitespace-and-escapes: libwbxml trims leading/trailing whitespace of
//     text and cannot print control characters or an empty OPAQUE.
//
// libwbxml names ~65 tags differently (Attendee_Email, DTStamp, MIME, ...)
// and spells the GAL namespace "Gal"; the comparisons map its names through
// wbxml.LookupTag (aliases.tsv kind "libwbxml") and namespaces through
// wbxml.LookupPage, i.e. they compare (page, token), not spellings.
// OPAQUE values are compared by bytes: libwbxml prints them as base64 for
// the eight tags of wbxml.IsLibwbxmlBinary and raw otherwise.

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/easd/easd/wbxml"
	"github.com/google/go-cmp/cmp"
)

var oracleExcluded = map[string]string{
	"whitespace-and-escapes": "libwbxml trims text and cannot print control characters or empty OPAQUE",
}

// oracleGolden returns the golden documents libwbxml can process, logging
// the excluded ones with the reason.
func oracleGolden(t *testing.T) []golden {
	var out []golden
	for _, g := range loadGolden(t) {
		if why, ok := oracleExcluded[g.name]; ok {
			t.Logf("excluded %s: %s", g.name, why)
			continue
		}
		n, err := wbxml.DecodeBytes(g.bin, wbxml.Limits{})
		if err != nil {
			t.Fatalf("%s: %v", g.name, err)
		}
		if tag, ok := firstUnknownToLibwbxml(n); ok {
			t.Logf("excluded %s: libwbxml does not know %v", g.name, tag)
			continue
		}
		out = append(out, g)
	}
	if len(out) < 40 {
		t.Fatalf("only %d golden documents left for the oracle", len(out))
	}
	return out
}

// TestOracleGolden runs every (non-excluded) golden document through
// libwbxml in both directions:
//   - wbxml2xml decodes our .wbxml to the same tree we decode;
//   - xml2wbxml encodes the same document (written in libwbxml's dialect)
//     to exactly our bytes.
func TestOracleGolden(t *testing.T) {
	lib := needLibwbxml(t)
	for _, g := range oracleGolden(t) {
		t.Run(g.name, func(t *testing.T) {
			ours, err := wbxml.DecodeBytes(g.bin, wbxml.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			checkOracle(t, lib, ours, g.bin)
		})
	}
}

// checkOracle compares tree n and its encoding bin with libwbxml.
func checkOracle(t *testing.T, lib libwbxml, n *wbxml.Node, bin []byte) {
	t.Helper()
	theirs, err := parseLibwbxmlXML(lib.toXML(t, bin))
	if err != nil {
		t.Fatalf("parsing wbxml2xml output: %v", err)
	}
	if !sameTree(libwbxmlView(n), theirs) {
		diff := cmp.Diff(libwbxmlView(n), theirs, treeOpts)
		t.Errorf("libwbxml decodes our bytes differently (-ours +libwbxml):\n%s", diff)
	}
	libBin := lib.toWBXML(t, writeLibwbxmlXML(n))
	if !bytes.Equal(libBin, bin) {
		back, err := wbxml.DecodeBytes(libBin, wbxml.Limits{})
		if err != nil {
			t.Fatalf("decoding xml2wbxml output: %v\n% x", err, libBin)
		}
		t.Errorf("xml2wbxml encodes differently:\n ours % x\n  lib % x\ntree diff (-ours +lib):\n%s", bin, libBin, cmp.Diff(n, back, treeOpts))
	}
}

// TestOracleRandom compares a deterministic corpus of random documents built
// from every tag libwbxml knows, in both directions like TestOracleGolden.
func TestOracleRandom(t *testing.T) {
	lib := needLibwbxml(t)
	r := rand.New(rand.NewPCG(3, 0x5eed))
	seen := map[wbxml.Tag]bool{}
	var mark func(n *wbxml.Node)
	mark = func(n *wbxml.Node) {
		seen[n.Tag] = true
		for _, c := range n.Children {
			mark(c)
		}
	}
	for i := range 40 {
		n := randomTree(r, genOpts{libwbxml: true, maxDepth: 4, maxKids: 8})
		// One more document lists every tag of one page per round, so the
		// corpus surely covers all of them.
		if i < 25 {
			all := &wbxml.Node{Tag: wbxml.AirSyncSync}
			for _, tg := range libwbxmlTags {
				if tg.Page() != wbxml.Page(i) {
					continue
				}
				o := genOpts{libwbxml: true}
				c := &wbxml.Node{Tag: tg, Value: randomText(r, o)}
				if wbxml.IsLibwbxmlBinary(tg) {
					c.Opaque, c.Value = true, randomOpaque(r, o, tg)
				}
				all.Children = append(all.Children, c)
			}
			n.Children = append(n.Children, all)
		}
		mark(n)
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			bin := mustEncode(t, n)
			back, err := wbxml.DecodeBytes(bin, wbxml.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if !sameTree(n, back) {
				diff := cmp.Diff(n, back, treeOpts)
				t.Fatalf("round trip differs:\n%s", diff)
			}
			checkOracle(t, lib, n, bin)
		})
	}
	if len(seen) < len(libwbxmlTags) {
		t.Errorf("random corpus used %d of %d tags", len(seen), len(libwbxmlTags))
	}
}

// TestOracleToXML is the acceptance check: for every golden
// document, ToXML's output equals wbxml2xml's after whitespace
// normalisation, modulo libwbxml's tag-name aliases (and namespace
// spelling) and the OPAQUE representation:
//   - the XML declaration and DOCTYPE lines are identical;
//   - the sequences of elements, their xmlns declarations and their trimmed
//     texts are identical, with names compared after mapping libwbxml's
//     names to ours (aliases.tsv) and xmlns values through LookupPage;
//   - an element we mark opaque="base64" matches libwbxml's bare base64
//     (binary tags) or raw text (other tags) of the same bytes.
func TestOracleToXML(t *testing.T) {
	lib := needLibwbxml(t)
	for _, g := range oracleGolden(t) {
		t.Run(g.name, func(t *testing.T) {
			theirs := lib.toXML(t, g.bin)
			var ours bytes.Buffer
			if err := wbxml.ToXML(&ours, bytes.NewReader(g.bin), wbxml.XMLOptions{}); err != nil {
				t.Fatal(err)
			}
			tl, ol := strings.SplitN(string(theirs), "\n", 3), strings.SplitN(ours.String(), "\n", 3)
			if len(tl) < 3 || len(ol) < 3 || tl[0] != ol[0] || tl[1] != ol[1] {
				t.Fatalf("prolog differs:\nlibwbxml: %q\n    ours: %q", tl[:min(2, len(tl))], ol[:min(2, len(ol))])
			}
			te, err := xmlEvents(theirs, false)
			if err != nil {
				t.Fatalf("libwbxml output: %v", err)
			}
			oe, err := xmlEvents(ours.Bytes(), true)
			if err != nil {
				t.Fatalf("our output: %v", err)
			}
			if diff := cmp.Diff(te, oe); diff != "" {
				t.Errorf("ToXML differs from wbxml2xml (-libwbxml +ours):\n%s", diff)
			}
		})
	}
}

// xmlEvents flattens an XML document into comparable events: "<Ns:Name"
// (with " xmlns=Ns" when declared), "text ..." and ">" for an end tag.
// Whitespace-only text is dropped and text is trimmed. For our output
// (ours=true), opaque="base64" content is decoded and re-expressed the way
// libwbxml prints it.
func xmlEvents(doc []byte, ours bool) ([]string, error) {
	dec := xml.NewDecoder(bytes.NewReader(doc))
	var out []string
	type frame struct {
		tag    wbxml.Tag
		opaque bool
		text   []byte
	}
	var stack []frame
	for {
		tok, err := dec.RawToken()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		switch x := tok.(type) {
		case xml.StartElement:
			ev, f := "", frame{}
			ns := ""
			for _, a := range x.Attr {
				switch {
				case a.Name.Local == "xmlns" && a.Name.Space == "":
					p, ok := wbxml.LookupPage(a.Value)
					if !ok {
						return nil, fmt.Errorf("unknown namespace %q", a.Value)
					}
					ns = p.Namespace()
					ev = " xmlns=" + ns
				case ours && a.Name.Local == "opaque" && a.Value == "base64":
					f.opaque = true
				default:
					return nil, fmt.Errorf("unexpected attribute %v", a)
				}
			}
			if ns == "" {
				if len(stack) == 0 {
					return nil, errors.New("root without xmlns")
				}
				ns = stack[len(stack)-1].tag.Namespace()
			}
			tag, ok := wbxml.LookupTag(ns, x.Name.Local)
			if !ok {
				return nil, fmt.Errorf("unknown element %s:%s", ns, x.Name.Local)
			}
			f.tag = tag
			out = append(out, "<"+tag.String()+ev)
			stack = append(stack, f)
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text = append(stack[len(stack)-1].text, x...)
			}
		case xml.EndElement:
			f := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			text := f.text
			if f.opaque {
				raw, err := base64.StdEncoding.DecodeString(string(text))
				if err != nil {
					return nil, err
				}
				if !wbxml.IsLibwbxmlBinary(f.tag) {
					text = raw // libwbxml prints other OPAQUE values raw
				}
			}
			if text = bytes.Trim(text, " \t\r\n"); len(text) > 0 {
				out = append(out, "text "+string(text))
			}
			out = append(out, ">")
		}
	}
}
