// Package pimfile splits iCalendar (.ics) and vCard (.vcf) files into the
// items easd stores (one event, task or journal with its overrides and
// time zones; one card), and joins stored items back into files. A
// malformed item is reported with its line and skipped; the rest go on.
package pimfile

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-vcard"

	icsdec "github.com/easd/easd/eas/item/ics"
)

// Entry is one item read from a file.
type Entry struct {
	// Kind is "VEVENT", "VTODO", "VJOURNAL" or "VCARD".
	Kind string
	// UID is the item's UID (made up when the file had none).
	UID string
	// Data is the item as stored: a VCALENDAR holding the component(s)
	// and the VTIMEZONEs they use, or one vCard.
	Data []byte
	// Line is where the item starts in the file (1-based).
	Line int
}

// Problem is an item that could not be read.
type Problem struct {
	Line int
	Err  error
}

func (p Problem) Error() string { return fmt.Sprintf("line %d: %v", p.Line, p.Err) }

// maxLine bounds one physical line, maxItem one item (with its
// overrides, without its time zones), maxZone one VTIMEZONE: real ones
// take a few KiB.
const (
	maxLine = 1 << 20
	maxItem = 8 << 20
	maxZone = 64 << 10
)

// zoneBudget bounds the VTIMEZONE text copied into the items of a file of
// n bytes: 8 times its size and 32 MiB more, beyond what calendars with a
// few zones take (a zone of 0.5-3 KiB per item of at least a few hundred
// bytes), and yet a bound.
func zoneBudget(n int64) int { return int(8*n) + 32<<20 }

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// block is the text of one component, with its first line.
type block struct {
	kind, uid, tzid string
	line            int
	beginLen        int // bytes of the BEGIN line in text, line ends included
	text            bytes.Buffer
	refs            []string // TZIDs used
	bad             error
}

// SplitICS reads an iCalendar file. Components of one UID (an event and
// its RECURRENCE-ID overrides) make one entry; each gets the VTIMEZONEs
// it names. Broken components are Problems; an unreadable file is an
// error.
func SplitICS(r io.Reader) ([]Entry, []Problem, error) {
	read := &countReader{r: r}
	sc := bufio.NewScanner(read)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	sc.Split(scanLines)
	var (
		blocks   []*block
		zones    = map[string]*block{}
		cur      *block
		depth    int // 0 outside, 1 in VCALENDAR, 2+ in a component
		lineNo   int
		problems []Problem
	)
	// handle takes one logical line (RFC 5545 3.1: a line break followed
	// by a space or tab continues the line): unfolded for reading, its
	// physical lines raw for storing, rawLen their length, first the
	// number of the first.
	handle := func(line string, raw []string, rawLen, first int) {
		upper := strings.ToUpper(line)
		writeRaw := func() {
			for _, r := range raw {
				cur.text.WriteString(r + "\r\n")
			}
		}
		switch {
		case strings.HasPrefix(upper, "BEGIN:"):
			name := strings.TrimSpace(upper[len("BEGIN:"):])
			depth++
			if depth == 2 {
				cur = &block{kind: name, line: first, beginLen: rawLen + 2*len(raw)}
			}
		case strings.HasPrefix(upper, "END:"):
			if cur != nil && strings.TrimSpace(upper[len("END:"):]) == cur.kind {
				// The component's own END closes it whatever was left
				// open inside (decoding then reports it).
				depth = 2
				writeRaw()
				switch cur.kind {
				case "VTIMEZONE":
					switch {
					case cur.text.Len() > maxZone || cur.bad != nil:
						problems = append(problems, Problem{cur.line, fmt.Errorf("VTIMEZONE larger than %d bytes: not used", maxZone)})
					case cur.tzid != "":
						zones[cur.tzid] = cur
					}
				case "VEVENT", "VTODO", "VJOURNAL":
					blocks = append(blocks, cur)
				}
				cur = nil
				depth--
				return
			}
			depth--
			if depth < 0 {
				depth = 0
			}
		}
		if depth >= 2 && cur != nil {
			if cur.text.Len()+rawLen > maxItem {
				cur.bad = fmt.Errorf("component larger than %d bytes", maxItem)
				return
			}
			if depth == 2 {
				name, value := propOf(line)
				switch {
				case name == "UID" && strings.TrimSpace(value) == "":
					return // as if absent: one is made up below
				case name == "UID" && cur.uid != "":
					cur.bad = fmt.Errorf("%s with more than one UID", cur.kind)
				case name == "UID":
					cur.uid = value
				case name == "TZID":
					cur.tzid = value
				}
			}
			writeRaw()
			if i := indexASCIIFold(line, "TZID="); i >= 0 {
				v := line[i+len("TZID="):]
				if j := strings.IndexAny(v, ":;"); j >= 0 {
					v = v[:j]
				}
				cur.refs = append(cur.refs, strings.Trim(v, `"`))
			}
		}
	}
	var (
		raw    []string // physical lines of the logical line being read
		rawLen int
		first  int
	)
	flush := func() {
		if raw == nil {
			return
		}
		line := raw[0]
		if len(raw) > 1 {
			var b strings.Builder
			b.WriteString(raw[0])
			for _, r := range raw[1:] {
				b.WriteString(r[1:])
			}
			line = b.String()
		}
		handle(line, raw, rawLen, first)
		raw = nil
	}
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), "\r")
		if raw != nil && line != "" && (line[0] == ' ' || line[0] == '\t') {
			// A continuation. Past maxItem the logical line is only
			// counted: its component is refused as too large.
			if rawLen += len(line); rawLen <= maxItem {
				raw = append(raw, line)
			}
			continue
		}
		flush()
		raw, rawLen, first = []string{line}, len(line), lineNo
	}
	flush()
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("line %d: %w", lineNo+1, err)
	}
	if depth != 0 && cur != nil {
		problems = append(problems, Problem{cur.line, fmt.Errorf("%s not closed before the end of the file", cur.kind)})
	}
	// Group by UID, in file order.
	byUID := map[string][]*block{}
	var order []string
	for _, b := range blocks {
		if b.bad != nil {
			problems = append(problems, Problem{b.line, b.bad})
			continue
		}
		if b.uid == "" {
			b.uid = contentUID(b.text.Bytes())
			b.text = *bytes.NewBuffer(insertUID(b.text.Bytes(), b.beginLen, b.uid))
		}
		key := b.kind + "\x00" + b.uid
		if _, ok := byUID[key]; !ok {
			order = append(order, key)
		}
		byUID[key] = append(byUID[key], b)
	}
	var out []Entry
	zoneCopies := 0
	for _, key := range order {
		bs := byUID[key]
		var zs []*block
		size, zsize := 0, 0
		seen := map[string]bool{}
		for _, b := range bs {
			size += b.text.Len()
			for _, ref := range b.refs {
				if z := zones[ref]; z != nil && !seen[ref] {
					seen[ref] = true
					zs = append(zs, z)
					zsize += z.text.Len()
				}
			}
		}
		switch {
		case size > maxItem:
			problems = append(problems, Problem{bs[0].line, fmt.Errorf("%s %s larger than %d bytes with its overrides", bs[0].kind, bs[0].uid, maxItem)})
			continue
		case zoneCopies+zsize > zoneBudget(read.n):
			// Each item gets a copy of the zones it uses: without a bound a
			// large zone used by many items would take memory without end.
			problems = append(problems, Problem{bs[0].line, fmt.Errorf("its time zones would bring the zone text copied into items over %d bytes", zoneBudget(read.n))})
			continue
		}
		zoneCopies += zsize
		const head, tail = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//easd//import//EN\r\n", "END:VCALENDAR\r\n"
		var buf bytes.Buffer
		buf.Grow(len(head) + zsize + size + len(tail)) // no slack: a file's items are all held at once
		buf.WriteString(head)
		for _, z := range zs {
			buf.Write(z.text.Bytes())
		}
		for _, b := range bs {
			buf.Write(b.text.Bytes())
		}
		buf.WriteString(tail)
		// icsdec.Decode, not go-ical's decoder alone: that one panics on some
		// malformed parameters and recurses once per nested BEGIN.
		if _, err := icsdec.Decode(buf.Bytes()); err != nil {
			problems = append(problems, Problem{bs[0].line, err})
			continue
		}
		out = append(out, Entry{Kind: bs[0].kind, UID: bs[0].uid, Data: buf.Bytes(), Line: bs[0].line})
	}
	return out, problems, nil
}

// scanLines is bufio.ScanLines that also ends a line at a lone CR: old
// Mac files end lines so, and a CR is not allowed inside a content line
// (RFC 5545 3.1, RFC 6350 3.2), where it would not survive a round trip.
func scanLines(data []byte, atEOF bool) (int, []byte, error) {
	i := bytes.IndexAny(data, "\r\n")
	switch {
	case i < 0 && atEOF && len(data) > 0:
		return len(data), data, nil
	case i < 0:
		return 0, nil, nil
	case data[i] == '\n':
		return i + 1, data[:i], nil
	case i+1 < len(data) && data[i+1] == '\n':
		return i + 2, data[:i], nil
	case i+1 < len(data) || atEOF:
		return i + 1, data[:i], nil
	}
	return 0, nil, nil // a CR at the end of what was read: is an LF next?
}

// indexASCIIFold is strings.Index ignoring ASCII letter case. Unlike an
// index into strings.ToUpper(s), what it returns is an index into s
// whatever s holds (ToUpper changes the length of invalid UTF-8 and of
// some letters).
func indexASCIIFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		j := 0
		for ; j < len(sub); j++ {
			a, b := s[i+j], sub[j]
			if 'a' <= a && a <= 'z' {
				a -= 'a' - 'A'
			}
			if 'a' <= b && b <= 'z' {
				b -= 'a' - 'A'
			}
			if a != b {
				break
			}
		}
		if j == len(sub) {
			return i
		}
	}
	return -1
}

// propOf splits a content line into its upper-case name (without
// parameters) and value.
func propOf(line string) (string, string) {
	i := strings.IndexByte(line, ':')
	if i < 0 {
		return "", ""
	}
	name := line[:i]
	if j := strings.IndexByte(name, ';'); j >= 0 {
		name = name[:j]
	}
	return strings.ToUpper(name), line[i+1:]
}

// insertUID adds a UID property to the text of a component after its
// BEGIN line, which takes the first at bytes (folded, it may be several
// physical lines).
func insertUID(text []byte, at int, uid string) []byte {
	if at > len(text) {
		return text
	}
	out := append([]byte{}, text[:at]...)
	out = append(out, "UID:"+uid+"\r\n"...)
	return append(out, text[at:]...)
}

// contentUID makes a UID for an item that has none from its text, so
// that importing the same file again finds it instead of adding a copy.
func contentUID(text []byte) string {
	sum := sha256.Sum256(text)
	return hex.EncodeToString(sum[:16]) + "@easd-import"
}

// SplitVCF reads a vCard file: one entry per card; a card without UID
// gets one.
func SplitVCF(r io.Reader) ([]Entry, []Problem, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	sc.Split(scanLines)
	var (
		out      []Entry
		problems []Problem
		cur      *bytes.Buffer
		start    int
		lineNo   int
		tooBig   bool
	)
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), "\r")
		upper := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case upper == "BEGIN:VCARD":
			if cur != nil {
				problems = append(problems, Problem{start, fmt.Errorf("card not closed before line %d", lineNo)})
			}
			cur, start, tooBig = &bytes.Buffer{}, lineNo, false
			cur.WriteString(line + "\r\n")
		case upper == "END:VCARD" && cur != nil:
			cur.WriteString(line + "\r\n")
			if tooBig {
				problems = append(problems, Problem{start, fmt.Errorf("card larger than %d bytes", maxItem)})
			} else if e, err := readCard(cur.Bytes(), start); err != nil {
				problems = append(problems, Problem{start, err})
			} else {
				out = append(out, e)
			}
			cur = nil
		case cur != nil:
			if cur.Len()+len(line) > maxItem {
				tooBig = true
				continue
			}
			cur.WriteString(line + "\r\n")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("line %d: %w", lineNo+1, err)
	}
	if cur != nil {
		problems = append(problems, Problem{start, fmt.Errorf("card not closed before the end of the file")})
	}
	return out, problems, nil
}

func readCard(text []byte, line int) (Entry, error) {
	card, err := vcard.NewDecoder(bytes.NewReader(text)).Decode()
	if err != nil {
		return Entry{}, err
	}
	uid := card.Value(vcard.FieldUID)
	if strings.TrimSpace(uid) == "" { // a blank UID is none (the codec trims it)
		uid = contentUID(text)
		card.SetValue(vcard.FieldUID, uid)
		var b bytes.Buffer
		if err := vcard.NewEncoder(&b).Encode(card); err != nil {
			return Entry{}, err
		}
		text = b.Bytes()
	}
	// A copy without the reading buffer's slack: a file's cards are all
	// held at once.
	return Entry{Kind: "VCARD", UID: uid, Data: bytes.Clone(text), Line: line}, nil
}

// WriteICS writes stored iCalendar items as one VCALENDAR, each
// VTIMEZONE once.
func WriteICS(w io.Writer, items [][]byte) error {
	var buf bytes.Buffer
	buf.WriteString("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//easd//export//EN\r\n")
	zones := map[string]bool{}
	for _, it := range items {
		cal, err := icsdec.Decode(it)
		if err != nil {
			return err
		}
		for _, c := range cal.Children {
			if c.Name == ical.CompTimezone {
				id := c.Props.Get(ical.PropTimezoneID)
				if id == nil || zones[id.Value] {
					continue
				}
				zones[id.Value] = true
			}
			one := ical.NewCalendar()
			one.Props.SetText(ical.PropVersion, "2.0")
			one.Props.SetText(ical.PropProductID, "-//easd//export//EN")
			one.Children = []*ical.Component{c}
			var cb bytes.Buffer
			if err := ical.NewEncoder(&cb).Encode(one); err != nil {
				return err
			}
			buf.Write(inner(cb.Bytes()))
		}
	}
	buf.WriteString("END:VCALENDAR\r\n")
	_, err := w.Write(buf.Bytes())
	return err
}

// inner strips the VCALENDAR frame (and its own properties) of an
// encoded calendar, leaving its components.
func inner(b []byte) []byte {
	var out []byte
	depth := 0
	for _, l := range bytes.SplitAfter(b, []byte("\r\n")) {
		t := bytes.ToUpper(bytes.TrimSpace(l))
		switch {
		case bytes.HasPrefix(t, []byte("BEGIN:")):
			depth++
			if depth > 1 {
				out = append(out, l...)
			}
		case bytes.HasPrefix(t, []byte("END:")):
			if depth > 1 {
				out = append(out, l...)
			}
			depth--
		case depth > 1:
			out = append(out, l...)
		}
	}
	return out
}

// WriteVCF writes stored vCards one after the other.
func WriteVCF(w io.Writer, items [][]byte) error {
	for _, it := range items {
		if _, err := w.Write(it); err != nil {
			return err
		}
		if !bytes.HasSuffix(it, []byte("\n")) {
			if _, err := io.WriteString(w, "\r\n"); err != nil {
				return err
			}
		}
	}
	return nil
}
