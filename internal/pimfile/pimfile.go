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

// maxLine bounds one (unfolded) line, and maxItem one item.
const (
	maxLine = 1 << 20
	maxItem = 8 << 20
)

// block is the text of one component, with its first line.
type block struct {
	kind, uid, tzid string
	line            int
	text            bytes.Buffer
	refs            []string // TZIDs used
	bad             error
}

// SplitICS reads an iCalendar file. Components of one UID (an event and
// its RECURRENCE-ID overrides) make one entry; each gets the VTIMEZONEs
// it names. Broken components are Problems; an unreadable file is an
// error.
func SplitICS(r io.Reader) ([]Entry, []Problem, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var (
		blocks   []*block
		zones    = map[string]*block{}
		cur      *block
		depth    int // 0 outside, 1 in VCALENDAR, 2+ in a component
		lineNo   int
		problems []Problem
	)
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), "\r")
		upper := strings.ToUpper(line)
		switch {
		case strings.HasPrefix(upper, "BEGIN:"):
			name := strings.TrimSpace(upper[len("BEGIN:"):])
			depth++
			if depth == 2 {
				cur = &block{kind: name, line: lineNo}
			}
		case strings.HasPrefix(upper, "END:"):
			if cur != nil && strings.TrimSpace(upper[len("END:"):]) == cur.kind {
				// The component's own END closes it whatever was left
				// open inside (decoding then reports it).
				depth = 2
				cur.text.WriteString(line + "\r\n")
				switch cur.kind {
				case "VTIMEZONE":
					if cur.tzid != "" {
						zones[cur.tzid] = cur
					}
				case "VEVENT", "VTODO", "VJOURNAL":
					blocks = append(blocks, cur)
				}
				cur = nil
				depth--
				continue
			}
			depth--
			if depth < 0 {
				depth = 0
			}
		}
		if depth >= 2 && cur != nil {
			if cur.text.Len()+len(line) > maxItem {
				cur.bad = fmt.Errorf("component larger than %d bytes", maxItem)
				continue
			}
			cur.text.WriteString(line + "\r\n")
			if depth == 2 {
				name, value := propOf(line)
				switch name {
				case "UID":
					cur.uid = value
				case "TZID":
					cur.tzid = value
				}
			}
			if i := strings.Index(upper, "TZID="); i >= 0 {
				v := line[i+len("TZID="):]
				if j := strings.IndexAny(v, ":;"); j >= 0 {
					v = v[:j]
				}
				cur.refs = append(cur.refs, strings.Trim(v, `"`))
			}
		}
	}
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
			b.text = *bytes.NewBuffer(insertUID(b.text.Bytes(), b.uid))
		}
		key := b.kind + "\x00" + b.uid
		if _, ok := byUID[key]; !ok {
			order = append(order, key)
		}
		byUID[key] = append(byUID[key], b)
	}
	var out []Entry
	for _, key := range order {
		bs := byUID[key]
		var buf bytes.Buffer
		buf.WriteString("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//easd//import//EN\r\n")
		seen := map[string]bool{}
		for _, b := range bs {
			for _, ref := range b.refs {
				if z := zones[ref]; z != nil && !seen[ref] {
					seen[ref] = true
					buf.Write(z.text.Bytes())
				}
			}
		}
		for _, b := range bs {
			buf.Write(b.text.Bytes())
		}
		buf.WriteString("END:VCALENDAR\r\n")
		if _, err := ical.NewDecoder(bytes.NewReader(buf.Bytes())).Decode(); err != nil {
			problems = append(problems, Problem{bs[0].line, err})
			continue
		}
		out = append(out, Entry{Kind: bs[0].kind, UID: bs[0].uid, Data: buf.Bytes(), Line: bs[0].line})
	}
	return out, problems, nil
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

// insertUID adds a UID property after the BEGIN line of a component.
func insertUID(text []byte, uid string) []byte {
	i := bytes.Index(text, []byte("\r\n"))
	if i < 0 {
		return text
	}
	out := append([]byte{}, text[:i+2]...)
	out = append(out, "UID:"+uid+"\r\n"...)
	return append(out, text[i+2:]...)
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
	if uid == "" {
		uid = contentUID(text)
		card.SetValue(vcard.FieldUID, uid)
		var b bytes.Buffer
		if err := vcard.NewEncoder(&b).Encode(card); err != nil {
			return Entry{}, err
		}
		text = b.Bytes()
	}
	return Entry{Kind: "VCARD", UID: uid, Data: text, Line: line}, nil
}

// WriteICS writes stored iCalendar items as one VCALENDAR, each
// VTIMEZONE once.
func WriteICS(w io.Writer, items [][]byte) error {
	var buf bytes.Buffer
	buf.WriteString("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//easd//export//EN\r\n")
	zones := map[string]bool{}
	for _, it := range items {
		cal, err := ical.NewDecoder(bytes.NewReader(it)).Decode()
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
