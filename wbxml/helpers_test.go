package wbxml_test

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/easd/easd/wbxml"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// treeOpts compares trees treating nil and empty slices alike.
var treeOpts = cmp.Options{cmpopts.EquateEmpty()}

func mustEncode(t testing.TB, n *wbxml.Node) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := wbxml.Encode(&b, n); err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return b.Bytes()
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// libwbxmlUnknown lists known tags that libwbxml 0.11.8 cannot encode or
// decode: all of code page 25 (Find, EAS 16.1) and three 16.x tags. Trees
// containing them (or unknown tags) are excluded from oracle comparisons.
func libwbxmlKnows(t wbxml.Tag) bool {
	if !t.Known() || t.Page() == wbxml.PageFind {
		return false
	}
	switch t {
	case wbxml.MeetingResponseProposedStartTime, wbxml.MeetingResponseProposedEndTime,
		wbxml.ProvisionAccountOnlyRemoteWipe:
		return false
	}
	return true
}

// firstUnknownToLibwbxml returns a tag of n that libwbxml does not know.
func firstUnknownToLibwbxml(n *wbxml.Node) (wbxml.Tag, bool) {
	if !libwbxmlKnows(n.Tag) {
		return n.Tag, true
	}
	for _, c := range n.Children {
		if t, ok := firstUnknownToLibwbxml(c); ok {
			return t, true
		}
	}
	return 0, false
}

// libwbxmlNamespace is the namespace spelling libwbxml uses.
func libwbxmlNamespace(p wbxml.Page) string {
	if p == wbxml.PageGAL {
		return "Gal"
	}
	return p.Namespace()
}

// writeLibwbxmlXML renders n in the XML dialect libwbxml's xml2wbxml reads:
// libwbxml tag names, OPAQUE of the eight "binary" tags as bare base64 and
// other OPAQUE values as CDATA (which xml2wbxml encodes as OPAQUE).
func writeLibwbxmlXML(n *wbxml.Node) []byte {
	var b bytes.Buffer
	b.WriteString("<?xml version=\"1.0\"?>\n<!DOCTYPE ActiveSync PUBLIC \"-//MICROSOFT//DTD ActiveSync//EN\" \"http://www.microsoft.com/\">\n")
	var walk func(n *wbxml.Node, parent wbxml.Page, root bool)
	walk = func(n *wbxml.Node, parent wbxml.Page, root bool) {
		name := wbxml.LibwbxmlName(n.Tag)
		b.WriteString("<" + name)
		if root || n.Tag.Page() != parent {
			fmt.Fprintf(&b, " xmlns=\"%s:\"", libwbxmlNamespace(n.Tag.Page()))
		}
		if len(n.Value) == 0 && len(n.Children) == 0 {
			b.WriteString("/>")
			return
		}
		b.WriteString(">")
		switch {
		case n.Opaque && wbxml.IsLibwbxmlBinary(n.Tag):
			b.WriteString(base64.StdEncoding.EncodeToString(n.Value))
		case n.Opaque:
			b.WriteString("<![CDATA[" + string(n.Value) + "]]>")
		default:
			xml.EscapeText(&b, n.Value)
		}
		for _, c := range n.Children {
			walk(c, n.Tag.Page(), false)
		}
		b.WriteString("</" + name + ">")
	}
	walk(n, 0, true)
	b.WriteString("\n")
	return b.Bytes()
}

// parseLibwbxmlXML reads wbxml2xml output into a tree: libwbxml names are
// resolved through the alias table, text is trimmed (libwbxml trims) and
// the content of the eight binary tags is base64-decoded into OPAQUE.
func parseLibwbxmlXML(b []byte) (*wbxml.Node, error) {
	dec := xml.NewDecoder(bytes.NewReader(b))
	var stack []*wbxml.Node
	var texts [][]byte
	var root *wbxml.Node
	for {
		tok, err := dec.Token()
		if err != nil {
			if root != nil && errors.Is(err, io.EOF) {
				return root, nil
			}
			return nil, err
		}
		switch x := tok.(type) {
		case xml.StartElement:
			tag, ok := wbxml.LookupTag(x.Name.Space, x.Name.Local)
			if !ok {
				return nil, fmt.Errorf("libwbxml printed unknown element %s:%s", x.Name.Space, x.Name.Local)
			}
			n := &wbxml.Node{Tag: tag}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, n)
			} else {
				root = n
			}
			stack = append(stack, n)
			texts = append(texts, nil)
		case xml.CharData:
			if len(texts) > 0 {
				texts[len(texts)-1] = append(texts[len(texts)-1], x...)
			}
		case xml.EndElement:
			n := stack[len(stack)-1]
			text := bytes.Trim(texts[len(texts)-1], " \t\r\n")
			stack, texts = stack[:len(stack)-1], texts[:len(texts)-1]
			if len(n.Children) > 0 || len(text) == 0 {
				continue
			}
			if wbxml.IsLibwbxmlBinary(n.Tag) {
				v, err := base64.StdEncoding.DecodeString(string(text))
				if err != nil {
					return nil, fmt.Errorf("%v: bad base64 from libwbxml: %v", n.Tag, err)
				}
				n.Value, n.Opaque = v, true
				continue
			}
			n.Value = bytes.Clone(text)
		}
	}
}

// libwbxmlView is what libwbxml can represent of a tree: text trimmed, and
// the OPAQUE flag kept only for the binary tags (libwbxml prints other
// OPAQUE values as plain text).
func libwbxmlView(n *wbxml.Node) *wbxml.Node {
	out := &wbxml.Node{Tag: n.Tag}
	if len(n.Children) == 0 {
		if n.Opaque && wbxml.IsLibwbxmlBinary(n.Tag) {
			out.Value, out.Opaque = n.Value, len(n.Value) > 0
		} else {
			out.Value = bytes.Trim(n.Value, " \t\r\n")
		}
	}
	for _, c := range n.Children {
		out.Children = append(out.Children, libwbxmlView(c))
	}
	return out
}

// libwbxml holds the paths of the libwbxml command-line tools.
type libwbxml struct{ x2w, w2x string }

// needLibwbxml finds xml2wbxml and wbxml2xml (package libwbxml2-utils). When
// they are missing the test is skipped, or fails if $CI is set.
func needLibwbxml(t *testing.T) libwbxml {
	t.Helper()
	x2w, err1 := exec.LookPath("xml2wbxml")
	w2x, err2 := exec.LookPath("wbxml2xml")
	if err1 != nil || err2 != nil {
		msg := "libwbxml oracle not installed (apt-get install libwbxml2-utils): xml2wbxml/wbxml2xml not in PATH"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return libwbxml{x2w, w2x}
}

// toXML runs wbxml2xml -l ACTIVESYNC on doc and returns its output.
func (l libwbxml) toXML(t *testing.T, doc []byte, extra ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.wbxml"), filepath.Join(dir, "out.xml")
	if err := os.WriteFile(in, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-l", "ACTIVESYNC"}, extra...)
	args = append(args, "-o", out, in)
	if msg, err := exec.Command(l.w2x, args...).CombinedOutput(); err != nil {
		t.Fatalf("wbxml2xml: %v: %s", err, msg)
	}
	return readFile(t, out)
}

// toWBXML runs xml2wbxml -a -n -v 1.3 (anonymous, no string table) on doc.
func (l libwbxml) toWBXML(t *testing.T, doc []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.xml"), filepath.Join(dir, "out.wbxml")
	if err := os.WriteFile(in, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command(l.x2w, "-a", "-n", "-v", "1.3", "-o", out, in).CombinedOutput(); err != nil {
		t.Fatalf("xml2wbxml: %v: %s\ninput:\n%s", err, msg, doc)
	}
	return readFile(t, out)
}

// genOpts controls randomTree.
type genOpts struct {
	libwbxml bool // only what libwbxml round-trips: known tags, trimmed XML-safe text
	maxDepth int
	maxKids  int
}

var (
	allTags      = wbxml.KnownTags()
	libwbxmlTags = func() []wbxml.Tag {
		var out []wbxml.Tag
		for _, t := range allTags {
			if libwbxmlKnows(t) {
				out = append(out, t)
			}
		}
		return out
	}()
	textAlphabet = []string{"a", "b", "Z", "0", "9", " ", "&", "<", ">", "\"", "'", ":", "-", "é", "☕", "日本", "\n", "\t", "@", "."}
)

func randomText(r *rand.Rand, o genOpts) []byte {
	if !o.libwbxml && r.IntN(8) == 0 {
		// Arbitrary bytes except NUL (not always UTF-8, not always XML-safe).
		b := make([]byte, r.IntN(20))
		for i := range b {
			b[i] = byte(1 + r.IntN(255))
		}
		return b
	}
	var sb strings.Builder
	for range 1 + r.IntN(24) {
		sb.WriteString(textAlphabet[r.IntN(len(textAlphabet))])
	}
	s := sb.String()
	if o.libwbxml {
		s = strings.Trim(s, " \t\n")
		if s == "" {
			s = "x"
		}
	}
	return []byte(s)
}

func randomOpaque(r *rand.Rand, o genOpts, t wbxml.Tag) []byte {
	n := r.IntN(40)
	if o.libwbxml {
		n++ // libwbxml writes an empty OPAQUE as an empty element
	}
	b := make([]byte, n)
	for i := range b {
		if o.libwbxml && !wbxml.IsLibwbxmlBinary(t) {
			b[i] = "abcXYZ0123456789-+/=_"[r.IntN(21)] // printable, goes through CDATA
		} else {
			b[i] = byte(r.IntN(256))
		}
	}
	return b
}

// randomTree builds a random document tree from every code page.
func randomTree(r *rand.Rand, o genOpts) *wbxml.Node {
	tags := allTags
	if o.libwbxml {
		tags = libwbxmlTags
	}
	var gen func(depth int) *wbxml.Node
	gen = func(depth int) *wbxml.Node {
		t := tags[r.IntN(len(tags))]
		if !o.libwbxml && r.IntN(40) == 0 {
			t = wbxml.NewTag(wbxml.Page(r.IntN(256)), byte(5+r.IntN(59))) // maybe unknown
		}
		n := &wbxml.Node{Tag: t}
		switch k := r.IntN(10); {
		case depth < o.maxDepth && k < 4:
			for range 1 + r.IntN(o.maxKids) {
				n.Children = append(n.Children, gen(depth+1))
			}
		case k < 5:
			// empty element
		case k < 7 || wbxml.IsLibwbxmlBinary(t):
			if o.libwbxml && !wbxml.IsLibwbxmlBinary(t) && r.IntN(2) == 0 {
				n.Value = randomText(r, o)
				break
			}
			n.Opaque, n.Value = true, randomOpaque(r, o, t)
		default:
			n.Value = randomText(r, o)
		}
		return n
	}
	root := gen(0)
	if len(root.Children) == 0 { // give every document some structure
		root.Children = []*wbxml.Node{gen(1), gen(1)}
		root.Value, root.Opaque = nil, false
	}
	return root
}

// hasMixedContent reports whether a node has both a value and children,
// which the XML text form does not round-trip.
func hasMixedContent(n *wbxml.Node) bool {
	if (len(n.Value) > 0 || n.Opaque) && len(n.Children) > 0 {
		return true
	}
	for _, c := range n.Children {
		if hasMixedContent(c) {
			return true
		}
	}
	return false
}

// sameTree is a fast equality check (nil and empty values are equal); use
// cmp.Diff with treeOpts to explain a difference.
func sameTree(a, b *wbxml.Node) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Tag != b.Tag || a.Opaque != b.Opaque || !bytes.Equal(a.Value, b.Value) || len(a.Children) != len(b.Children) {
		return false
	}
	for i := range a.Children {
		if !sameTree(a.Children[i], b.Children[i]) {
			return false
		}
	}
	return true
}
