package wbxml

import (
	"bytes"
	"errors"
	"io"
	"iter"
	"strings"
	"sync"
)

// Node is one element of a document tree. An element holds a value (text or
// OPAQUE bytes), child elements, or nothing. EAS never mixes a value with
// children; if a decoded document does, the value segments are concatenated
// and Encode writes the value before the children.
type Node struct {
	// Tag identifies the element (code page and token).
	Tag Tag
	// Opaque says the value is (or is to be written as) OPAQUE rather than
	// an inline string. Decoding sets it if any value segment was OPAQUE.
	Opaque bool
	// Value is the element's text (UTF-8, no NUL) or OPAQUE payload.
	Value []byte
	// Children are the child elements in document order.
	Children []*Node
	// Stream, if non-nil, makes Encode write an OPAQUE value of Stream.N
	// bytes read from Stream.R instead of Value (for large attachments).
	// Decoding never sets it.
	Stream *OpaqueStream
	// TextStream, if non-nil, makes Encode write an inline string (STR_I)
	// copied from it instead of Value, dropping NUL bytes (large bodies
	// whose length is not known in advance). Decoding never sets it.
	TextStream io.Reader
	// Gen, if non-nil, produces the element's children while the tree is
	// encoded, by calling the Encoder (e.g. EncodeElement for each item
	// fetched from a backend), so a large document never exists whole in
	// memory. Children and Gen may be combined: Children come first. A
	// node with Tag 0 and Gen is a fragment: Gen's output is written in
	// its place, without an element of its own. An error from Gen stops
	// the encoding and is returned as is.
	Gen func(e *Encoder) error
}

// OpaqueStream is an OPAQUE value of N bytes to be copied from R by Encode.
type OpaqueStream struct {
	R io.Reader // source of the value
	N int64     // exact number of bytes to copy from R
}

// TStream returns an element whose text is copied from r when the tree is
// encoded (NUL bytes dropped).
func TStream(t Tag, r io.Reader) *Node { return &Node{Tag: t, TextStream: r} }

// E returns an element with the given children.
func E(t Tag, children ...*Node) *Node { return &Node{Tag: t, Children: children} }

// T returns an element holding text s (written as STR_I; <t/> when empty).
func T(t Tag, s string) *Node { return &Node{Tag: t, Value: []byte(s)} }

// O returns an element holding b as OPAQUE.
func O(t Tag, b []byte) *Node { return &Node{Tag: t, Opaque: true, Value: b} }

// OStream returns an element whose OPAQUE value of n bytes is copied from r
// when the tree is encoded.
func OStream(t Tag, r io.Reader, n int64) *Node {
	return &Node{Tag: t, Opaque: true, Stream: &OpaqueStream{R: r, N: n}}
}

// Append adds children to n and returns n, for building trees fluently.
func (n *Node) Append(children ...*Node) *Node {
	n.Children = append(n.Children, children...)
	return n
}

// Text returns n's value as a string; "" if n is nil.
func (n *Node) Text() string {
	if n == nil {
		return ""
	}
	return string(n.Value)
}

// Bytes returns n's value; nil if n is nil.
func (n *Node) Bytes() []byte {
	if n == nil {
		return nil
	}
	return n.Value
}

// Child returns the first child of n with tag t, or nil. It is nil-safe, so
// lookups chain: n.Child(a).Child(b).
func (n *Node) Child(t Tag) *Node {
	if n == nil {
		return nil
	}
	for _, c := range n.Children {
		if c.Tag == t {
			return c
		}
	}
	return nil
}

// Each iterates over the children of n with tag t, in order.
func (n *Node) Each(t Tag) iter.Seq[*Node] {
	return func(yield func(*Node) bool) {
		if n == nil {
			return
		}
		for _, c := range n.Children {
			if c.Tag == t && !yield(c) {
				return
			}
		}
	}
}

// ChildText returns the text of the first child with tag t ("" if none).
func (n *Node) ChildText(t Tag) string { return n.Child(t).Text() }

// Path follows first children with the given tags, returning nil if one is
// missing: root.Path(AirSyncCollections, AirSyncCollection).
func (n *Node) Path(tags ...Tag) *Node {
	for _, t := range tags {
		n = n.Child(t)
	}
	return n
}

// String renders n as compact XML (see WriteXML), for debugging.
func (n *Node) String() string {
	var b strings.Builder
	if err := WriteXML(&b, n, XMLOptions{Compact: true, NoProlog: true}); err != nil {
		return "<!-- " + err.Error() + " -->"
	}
	return b.String()
}

var (
	decoderPool = sync.Pool{New: func() any { return NewDecoder(nil, Limits{}) }}
	encoderPool = sync.Pool{New: func() any { return NewEncoder(nil) }}
)

// Decode reads one WBXML document from r into a tree, enforcing lim (zero
// fields take DefaultLimits). It returns a *SyntaxError for malformed input
// and a *LimitError (errors.Is(err, ErrLimit)) when a limit is exceeded.
func Decode(r io.Reader, lim Limits) (*Node, error) {
	d := decoderPool.Get().(*Decoder)
	d.SetLimits(lim)
	d.Reset(r)
	n, err := d.ReadTree()
	d.release()
	return n, err
}

// DecodeBytes is Decode for a document held in memory.
func DecodeBytes(b []byte, lim Limits) (*Node, error) {
	d := decoderPool.Get().(*Decoder)
	d.SetLimits(lim)
	d.ResetBytes(b)
	n, err := d.ReadTree()
	d.release()
	return n, err
}

func (d *Decoder) release() {
	d.r, d.buf = nil, nil
	if cap(d.own) > 1<<20 || cap(d.scratch) > 1<<20 {
		return // do not pool large buffers
	}
	decoderPool.Put(d)
}

// ReadTree reads the whole document (which must not have been started with
// Next) into a tree and checks that nothing follows it.
func (d *Decoder) ReadTree() (*Node, error) {
	tok, err := d.Next()
	if err != nil {
		return nil, err
	}
	n, err := d.ReadElement(tok)
	if err != nil {
		return nil, err
	}
	if _, err := d.Next(); err != io.EOF {
		if err == nil {
			err = d.fail(d.syntax(d.InputOffset(), "data after the root element"))
		}
		return nil, err
	}
	return n, nil
}

// ReadElement reads the element started by start (a KindStart token just
// returned by Next) up to its end and returns it as a tree. It lets a
// streaming consumer materialize one subtree at a time.
func (d *Decoder) ReadElement(start Token) (*Node, error) {
	if start.Kind != KindStart {
		return nil, errors.New("wbxml: ReadElement needs a KindStart token")
	}
	// Size the first slabs from the input already buffered (about one
	// element per 6 bytes in token-dense documents).
	a := arena{hint: min(max((d.end-d.pos)/6, 16), 256)}
	return d.readElement(&a, a.node(start.Tag))
}

// readElement is ReadElement's loop. Pending children live in kids, which
// starts in a stack array: pointer stores there need no GC write barrier,
// which matters for token-dense documents. The open element at depth i>0
// is kids[marks[i]-1], so no separate stack of open nodes is kept.
func (d *Decoder) readElement(a *arena, root *Node) (*Node, error) {
	var kidsBuf [256]*Node
	kids := kidsBuf[:0]
	marks := append(d.marks[:0], 0)
	defer func() { d.marks = marks[:0] }()
	cur := root
	for len(marks) > 0 {
		tok, err := d.Next()
		if err != nil {
			if err == io.EOF {
				err = d.fail(d.eof(io.EOF, "element"))
			}
			return nil, err
		}
		switch tok.Kind {
		case KindStart:
			n := a.node(tok.Tag)
			kids = append(kids, n)
			marks = append(marks, len(kids))
			cur = n
		case KindEnd:
			m := marks[len(marks)-1]
			if len(kids) > m {
				cur.Children = a.ptrs(kids[m:])
				kids = kids[:m]
			}
			marks = marks[:len(marks)-1]
			switch {
			case len(marks) > 1:
				cur = kids[marks[len(marks)-1]-1]
			case len(marks) == 1:
				cur = root
			}
		case KindText:
			cur.Value = a.appendValue(cur.Value, tok.Data)
		case KindOpaque:
			cur.Opaque = true
			if len(cur.Value) == 0 && tok.Len > arenaMaxValue {
				// Large payload: its own allocation, grown as bytes arrive.
				v, err := d.appendOpaque(nil)
				if err != nil {
					return nil, err
				}
				cur.Value = v[:len(v):len(v)]
				continue
			}
			data, err := d.OpaqueBytes()
			if err != nil {
				return nil, err
			}
			cur.Value = a.appendValue(cur.Value, data)
		}
	}
	return root, nil
}

// arena hands out nodes, child slices and small values from shared slabs so
// that decoding a tree costs a few allocations, not several per element.
// Every slab slice it returns has its capacity clipped to its length, so
// appending to it never overwrites a neighbour.
type arena struct {
	hint  int // size of the first node slab
	nodes []Node
	ptrv  []*Node
	data  []byte
}

const arenaMaxValue = 1 << 10

func (a *arena) node(t Tag) *Node {
	if len(a.nodes) == cap(a.nodes) {
		a.nodes = make([]Node, 0, min(max(2*cap(a.nodes), a.hint), 256))
	}
	a.nodes = a.nodes[:len(a.nodes)+1]
	n := &a.nodes[len(a.nodes)-1]
	n.Tag = t
	return n
}

func (a *arena) ptrs(src []*Node) []*Node {
	k := len(src)
	if k > cap(a.ptrv)-len(a.ptrv) {
		if k > 256 {
			p := make([]*Node, k)
			copy(p, src)
			return p
		}
		a.ptrv = make([]*Node, 0, min(max(2*cap(a.ptrv), a.hint), 1024))
	}
	l := len(a.ptrv)
	a.ptrv = append(a.ptrv, src...)
	return a.ptrv[l : l+k : l+k]
}

// appendValue returns cur+b; the first segment of a value is copied into the
// data slab (or its own allocation when large). A value of more segments
// (mixed content, STR_I split by entities or STR_T) moves to its own buffer,
// grown by doubling: a document of many short segments costs time linear in
// its size, not quadratic. Slab values have no spare capacity, so only a
// value's own buffer is ever appended to in place.
func (a *arena) appendValue(cur, b []byte) []byte {
	if len(cur) > 0 {
		if len(b) > cap(cur)-len(cur) {
			grown := make([]byte, len(cur), max(2*len(cur), len(cur)+len(b)))
			copy(grown, cur)
			cur = grown
		}
		return append(cur, b...)
	}
	k := len(b)
	if k == 0 {
		return cur
	}
	if k > arenaMaxValue {
		return bytes.Clone(b)
	}
	if k > cap(a.data)-len(a.data) {
		a.data = make([]byte, 0, min(max(2*cap(a.data), 4<<10), 64<<10))
	}
	l := len(a.data)
	a.data = append(a.data, b...)
	return a.data[l : l+k : l+k]
}

// Encode writes the tree n as a WBXML document with the EAS header. Elements
// with neither value nor children are written without the content bit
// (<t/>); an Opaque node is always written as OPAQUE, even when empty.
func Encode(w io.Writer, n *Node) error {
	if n == nil {
		return errors.New("wbxml: Encode of a nil tree")
	}
	e := encoderPool.Get().(*Encoder)
	e.Reset(w)
	err := e.EncodeElement(n)
	if err == nil {
		err = e.Close()
	}
	e.w = nil
	if cap(e.buf) == encBufSize {
		encoderPool.Put(e)
	}
	return err
}

// EncodeElement writes the subtree n at the current position, so a streaming
// producer can mix Encoder calls and prebuilt subtrees.
func (e *Encoder) EncodeElement(n *Node) error {
	if n == nil {
		return e.fail(errors.New("wbxml: nil node"))
	}
	if n.Tag == 0 && n.Gen != nil {
		if err := n.Gen(e); err != nil {
			e.fail(err)
			return err
		}
		return nil
	}
	if n.Stream == nil && n.TextStream == nil && n.Gen == nil && len(n.Children) == 0 && len(n.Value) == 0 && !n.Opaque {
		return e.EmptyElement(n.Tag)
	}
	if err := e.StartElement(n.Tag); err != nil {
		return err
	}
	switch {
	case n.Stream != nil:
		if err := e.WriteOpaqueFrom(n.Stream.R, n.Stream.N); err != nil {
			return err
		}
	case n.TextStream != nil:
		if err := e.WriteTextFrom(n.TextStream); err != nil {
			return err
		}
	case n.Opaque:
		if err := e.WriteOpaque(n.Value); err != nil {
			return err
		}
	default:
		if err := e.WriteTextBytes(n.Value); err != nil {
			return err
		}
	}
	for _, c := range n.Children {
		if err := e.EncodeElement(c); err != nil {
			return err
		}
	}
	if n.Gen != nil {
		if err := n.Gen(e); err != nil {
			e.fail(err)
			return err
		}
	}
	return e.EndElement()
}
