package email

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/easd/easd/internal/spool"
	"github.com/easd/easd/wbxml"
)

// inlineMax is the largest airsyncbase:Data value built in memory; longer
// ones are streamed from their spool when the tree is encoded.
const inlineMax = 64 << 10

// sink collects one representation of the body (the text/plain parts, the
// text/html parts, or the text of the HTML): it counts its bytes, keeps the
// first keep of them in a spool, finds the truncation points and feeds a
// preview. Its input is valid UTF-8, written in any chunks.
type sink struct {
	memory    int   // spool memory
	keep      int64 // bytes to keep: -1 all, 0 none
	sp        *spool.Spool
	stored    int64
	total     int64
	truncs    []int64 // truncation sizes (TruncationSize) to cut for
	cuts      []int64 // per truncs: longest whole-character prefix <= it; -1 unknown
	lastStart int64   // offset of the last character start seen
	esc       bool    // track the size as wrapped HTML
	escTotal  int64
	escCuts   []escCut // per truncs, in wrapped-HTML space
	prev      *previewer
	last      byte
	err       error // spool write error
}

// escCut is a truncation point of the wrapped HTML: text bytes whose
// escaped form (esc bytes) fits after wrapPrefix.
type escCut struct {
	text, esc int64
	done      bool
}

func newSink(memory int, keep int64, truncs []int64, esc bool, prev *previewer) *sink {
	s := &sink{memory: memory, keep: keep, truncs: truncs, esc: esc, prev: prev}
	s.cuts = make([]int64, len(truncs))
	for i := range s.cuts {
		s.cuts[i] = -1
	}
	if esc {
		s.escCuts = make([]escCut, len(truncs))
	}
	return s
}

// seqLen is the length of the UTF-8 sequence led by c (1 for ASCII).
func seqLen(c byte) int64 {
	switch {
	case c >= 0xF0:
		return 4
	case c >= 0xE0:
		return 3
	case c >= 0xC0:
		return 2
	}
	return 1
}

// Write implements io.Writer; it never fails (a spool error is kept in err).
func (s *sink) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	off, end := s.total, s.total+int64(len(p))
	for i, t := range s.truncs {
		if s.cuts[i] >= 0 || t < off || t >= end {
			continue
		}
		j := int(t - off)
		for j > 0 && !utf8.RuneStart(p[j]) {
			j--
		}
		if utf8.RuneStart(p[j]) {
			s.cuts[i] = off + int64(j)
		} else {
			s.cuts[i] = s.lastStart
		}
	}
	for j := len(p) - 1; j >= 0 && j >= len(p)-utf8.UTFMax; j-- {
		if utf8.RuneStart(p[j]) {
			s.lastStart = off + int64(j)
			break
		}
	}
	if s.esc {
		pre := int64(len(wrapPrefix))
		for j, c := range p {
			if utf8.RuneStart(c) {
				w := seqLen(c)
				if w == 1 {
					w = escWidth(c)
				}
				for k := range s.escCuts {
					ec := &s.escCuts[k]
					if !ec.done && pre+s.escTotal+w > s.truncs[k] {
						*ec = escCut{text: off + int64(j), esc: s.escTotal, done: true}
					}
				}
			}
			s.escTotal += escWidth(c)
		}
	}
	if s.keep != 0 && s.err == nil && (s.keep < 0 || s.stored < s.keep) {
		q := p
		if s.keep > 0 && int64(len(q)) > s.keep-s.stored {
			q = q[:s.keep-s.stored]
		}
		if s.sp == nil {
			s.sp = spool.New(s.memory)
		}
		n, err := s.sp.Write(q)
		s.stored += int64(n)
		s.err = err
	}
	if s.prev != nil {
		s.prev.write(p)
	}
	s.last = p[len(p)-1]
	s.total = end
	return len(p), nil
}

// separate starts a new part: a line break unless at a line start.
func (s *sink) separate() {
	if s.total > 0 && s.last != '\n' {
		_, _ = s.Write([]byte("\r\n"))
	}
}

// cut returns the truncation point for t (t must be one of truncs).
func (s *sink) cut(t int64) int64 {
	for i, x := range s.truncs {
		if x == t && s.cuts[i] >= 0 {
			return s.cuts[i]
		}
	}
	return s.total
}

// escCutFor returns the wrapped-HTML truncation point for t.
func (s *sink) escCutFor(t int64) escCut {
	for i, x := range s.truncs {
		if x == t && i < len(s.escCuts) && s.escCuts[i].done {
			return s.escCuts[i]
		}
	}
	return escCut{text: s.total, esc: s.escTotal}
}

// wrappedSize is the size of the body as wrapped HTML.
func (s *sink) wrappedSize() int64 {
	return int64(len(wrapPrefix)) + s.escTotal + int64(len(wrapSuffix))
}

// reader returns the first n kept bytes.
func (s *sink) reader(n int64) (io.Reader, error) {
	if s.sp == nil || n <= 0 {
		return strings.NewReader(""), nil
	}
	r, err := s.sp.Reader()
	if err != nil {
		return nil, err
	}
	return io.LimitReader(r, n), nil
}

func (s *sink) close() {
	if s.sp != nil {
		_ = s.sp.Close()
	}
}

// rawSink keeps the first keep bytes of the raw message (for a MIME body);
// disabled, it drops everything.
type rawSink struct {
	memory int
	keep   int64 // -1 all
	sp     *spool.Spool
	stored int64
	off    bool
	err    error
}

func (r *rawSink) Write(p []byte) (int, error) {
	if r.off || r.err != nil || (r.keep >= 0 && r.stored >= r.keep) {
		return len(p), nil
	}
	q := p
	if r.keep >= 0 && int64(len(q)) > r.keep-r.stored {
		q = q[:r.keep-r.stored]
	}
	if r.sp == nil {
		r.sp = spool.New(r.memory)
	}
	n, err := r.sp.Write(q)
	r.stored += int64(n)
	r.err = err
	return len(p), nil
}

func (r *rawSink) disable() {
	r.off = true
	if r.sp != nil {
		_ = r.sp.Close()
		r.sp = nil
	}
}

// plan is the set of body preferences that apply to a message.
type plan struct {
	prefs []BodyPreference // Type 1, 2, 4, or 0 for "the native type"
	mime  bool             // a Type 4 preference applies
}

// makePlan filters the client's BodyPreference list (MS-ASAIRS 2.2.2.12):
// RTF (3) is answered as plain text (this server does not produce RTF);
// MIME (4) applies only as MIMESupport (MS-ASCMD 2.2.3.110.3) allows: 2
// always, 1 for S/MIME messages. No preference means plain text, whole. If
// nothing applies (only a disallowed MIME preference), the native type with
// the first preference's limits is used.
func makePlan(o Options, smime bool) plan {
	in := o.BodyPrefs
	if len(in) == 0 {
		in = []BodyPreference{{Type: 1}}
	}
	mimeOK := o.MIMESupport == 2 || (o.MIMESupport == 1 && smime)
	var pl plan
	for _, p := range in {
		switch p.Type {
		case 1, 2:
		case 3:
			p.Type = 1
		case 4:
			if !mimeOK {
				continue
			}
			pl.mime = true
		default:
			continue
		}
		if p.TruncationSize < 0 {
			p.TruncationSize = 0
		}
		pl.prefs = append(pl.prefs, p)
	}
	if len(pl.prefs) == 0 {
		p := in[0]
		p.Type = 0
		if p.TruncationSize < 0 {
			p.TruncationSize = 0
		}
		pl.prefs = []BodyPreference{p}
	}
	return pl
}

// mimeCertain reports whether the MIME preference will be answered
// whatever the message: it has no AllOrNone limit that could push the
// choice to another preference.
func (pl plan) mimeCertain() bool {
	for _, p := range pl.prefs {
		if p.Type == 4 {
			return p.TruncationSize == 0 || !p.AllOrNone
		}
	}
	return false
}

// storage returns how many bytes a sink must keep (-1 all) and the
// truncation sizes it must cut for, over the preferences whose type uses it.
func (pl plan) storage(uses func(typ int) bool) (keep int64, truncs []int64) {
	certain := pl.mimeCertain()
	for _, p := range pl.prefs {
		if !uses(p.Type) || (certain && p.Type != 4) {
			continue
		}
		t := p.TruncationSize
		if t == 0 {
			keep = -1
			continue
		}
		if keep >= 0 && t > keep {
			keep = t
		}
		dup := false
		for _, x := range truncs {
			dup = dup || x == t
		}
		if !dup {
			truncs = append(truncs, t)
		}
	}
	return keep, truncs
}

// maxPreviewOf returns the longest Preview asked (at most 255).
func (pl plan) maxPreviewOf() int {
	n := 0
	for _, p := range pl.prefs {
		n = max(n, min(p.Preview, maxPreview))
	}
	return n
}

// bodyNode chooses the body type and builds airsyncbase:Body (MS-ASAIRS
// 2.2.2.9). The rule:
//
//   - a MIME preference that applies (see makePlan) wins;
//   - else the preference whose type is the message's native type
//     (MS-ASAIRS 2.2.2.3.2: "the server returns the data ... for the Type
//     element that matches the native storage format"), else the first
//     listed;
//   - if that preference has AllOrNone and the body exceeds its
//     TruncationSize, the next listed preference that can return data
//     (no AllOrNone, or fits) is used (MS-ASAIRS 2.2.2.3.2); if none can,
//     the body is sent without Data, Truncated 1.
//
// Plain text asked of an HTML-only message is the HTML's text; HTML asked
// of a text-only message is the text escaped in a minimal document.
func (c *converter) bodyNode(pl plan) (*wbxml.Node, error) {
	native := 1
	if c.hasHTML {
		native = 2
	}
	prefs := append([]BodyPreference(nil), pl.prefs...)
	for i := range prefs {
		if prefs[i].Type == 0 {
			prefs[i].Type = native
		}
	}
	primary := -1
	for i, p := range prefs {
		if p.Type == 4 {
			primary = i
			break
		}
	}
	if primary < 0 {
		primary = 0
		for i, p := range prefs {
			if p.Type == native {
				primary = i
				break
			}
		}
	}
	fits := func(p BodyPreference) bool {
		return p.TruncationSize == 0 || c.size(p.Type) <= p.TruncationSize
	}
	chosen, withData := prefs[primary], true
	if chosen.AllOrNone && !fits(chosen) {
		withData = false
		for i, p := range prefs {
			if i != primary && (!p.AllOrNone || fits(p)) {
				chosen, withData = p, true
				break
			}
		}
	}

	size := c.size(chosen.Type)
	t := chosen.TruncationSize
	truncated := t > 0 && size > t
	body := wbxml.E(wbxml.AirSyncBaseBody,
		wbxml.T(wbxml.AirSyncBaseType, strconv.Itoa(chosen.Type)),
		wbxml.T(wbxml.AirSyncBaseEstimatedDataSize, strconv.FormatInt(size, 10)))
	if truncated {
		body.Append(wbxml.T(wbxml.AirSyncBaseTruncated, "1"))
	}
	if withData {
		d, err := c.data(chosen.Type, t, truncated)
		if err != nil {
			return nil, err
		}
		body.Append(d)
	}
	// MS-ASAIRS 2.2.2.35.1: no Preview beside plain-text Data.
	if c.v14 && chosen.Preview > 0 && !(chosen.Type == 1 && withData) {
		if pv := c.preview(chosen.Preview); pv != "" {
			body.Append(wbxml.T(wbxml.AirSyncBasePreview, pv))
		}
	}
	return body, nil
}

// textSource returns the sink answering plain text: the text/plain parts,
// or the HTML's text when those are empty.
func (c *converter) textSource() *sink {
	if c.text.total > 0 || !c.hasHTML {
		return c.text
	}
	return c.h2t
}

// size returns the full size in bytes of the body as type typ
// (airsyncbase:EstimatedDataSize, MS-ASAIRS 2.2.2.23).
func (c *converter) size(typ int) int64 {
	switch typ {
	case 1:
		return c.textSource().total
	case 2:
		if c.hasHTML {
			return c.html.total
		}
		if c.text.total > 0 {
			return c.text.wrappedSize()
		}
		return 0
	case 4:
		return c.rawTotal
	}
	return 0
}

// data builds airsyncbase:Data (MS-ASAIRS 2.2.2.20.1) for type typ,
// truncated to t bytes on a character boundary when truncated.
func (c *converter) data(typ int, t int64, truncated bool) (*wbxml.Node, error) {
	switch typ {
	case 1:
		s := c.textSource()
		n := s.total
		if truncated {
			n = s.cut(t)
		}
		r, err := s.reader(n)
		if err != nil {
			return nil, err
		}
		return dataNode(r, n, false)
	case 2:
		if c.hasHTML {
			n := c.html.total
			if truncated {
				n = c.html.cut(t)
			}
			r, err := c.html.reader(n)
			if err != nil {
				return nil, err
			}
			return dataNode(r, n, false)
		}
		if c.text.total == 0 {
			return wbxml.T(wbxml.AirSyncBaseData, ""), nil
		}
		if truncated && t <= int64(len(wrapPrefix)) {
			return wbxml.T(wbxml.AirSyncBaseData, wrapPrefix[:t]), nil
		}
		ec := escCut{text: c.text.total, esc: c.text.escTotal}
		if truncated {
			ec = c.text.escCutFor(t)
		}
		tr, err := c.text.reader(ec.text)
		if err != nil {
			return nil, err
		}
		parts := []io.Reader{strings.NewReader(wrapPrefix), &escapeReader{src: tr}}
		n := int64(len(wrapPrefix)) + ec.esc
		if !truncated {
			parts = append(parts, strings.NewReader(wrapSuffix))
			n += int64(len(wrapSuffix))
		}
		return dataNode(io.MultiReader(parts...), n, false)
	case 4:
		n := c.rawTotal
		if truncated {
			n = t
		}
		n = min(n, c.raw.stored)
		var r io.Reader = strings.NewReader("")
		if c.raw.sp != nil {
			sr, err := c.raw.sp.Reader()
			if err != nil {
				return nil, err
			}
			r = io.LimitReader(sr, n)
		}
		return dataNode(r, n, true)
	}
	return wbxml.T(wbxml.AirSyncBaseData, ""), nil
}

// dataNode returns airsyncbase:Data holding the n bytes of r: in memory
// when small, else streamed at encoding (wbxml.TStream drops NUL bytes;
// stripNUL does it for the in-memory form of raw MIME).
func dataNode(r io.Reader, n int64, stripNUL bool) (*wbxml.Node, error) {
	if n > inlineMax {
		return wbxml.TStream(wbxml.AirSyncBaseData, r), nil
	}
	b := make([]byte, 0, n)
	buf := bytes.NewBuffer(b)
	if _, err := io.Copy(buf, r); err != nil {
		return nil, err
	}
	b = buf.Bytes()
	if stripNUL && bytes.IndexByte(b, 0) >= 0 {
		b = bytes.ReplaceAll(b, []byte{0}, nil)
	}
	return &wbxml.Node{Tag: wbxml.AirSyncBaseData, Value: b}, nil
}

// preview returns at most n characters of plain-text preview.
func (c *converter) preview(n int) string {
	p := c.textPrev
	if c.text.total == 0 && c.hasHTML {
		p = c.htmlPrev
	}
	if p == nil {
		return ""
	}
	s := p.String()
	if utf8.RuneCountInString(s) > n {
		s = string([]rune(s)[:n])
	}
	return strings.TrimSpace(s)
}
