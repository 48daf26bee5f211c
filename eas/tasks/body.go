package tasks

// This file is shared verbatim (but for the package clause) by
// eas/contacts, eas/tasks and eas/notes; keep the copies identical.

import (
	"fmt"
	"html"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/easd/easd/eas/email"
	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/wbxml"
	xhtml "golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// body is an item's notes: the plain text, and the HTML when a client
// sent HTML (kept so that the client gets its formatting back).
type body struct {
	text, html string
}

func (b body) empty() bool { return b.text == "" && b.html == "" }

// bodyIn is a client's airsyncbase:Body (MS-ASAIRS 2.2.2.9).
type bodyIn struct {
	present bool
	// keep: the element carries no usable content (no Data, Truncated 1,
	// or RTF/MIME, which this server does not parse): the stored body
	// stays.
	keep bool
	typ  int
	data string
}

// maxPreview is the longest airsyncbase:Preview (MS-ASAIRS 2.2.2.35).
const maxPreview = 255

// clean makes s safe to store and to send as WBXML text: invalid UTF-8
// is replaced, NUL dropped, CRLF and lone CR become LF. Text is stored
// with LF line ends; a client's CRLF comes back as LF.
func clean(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.ContainsAny(s, "\x00\r") {
		s = strings.NewReplacer("\x00", "", "\r\n", "\n", "\r", "\n").Replace(s)
	}
	return s
}

// invalid wraps item.ErrInvalid with a description.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{item.ErrInvalid}, args...)...)
}

// parseBodyNode reads an airsyncbase:Body element.
func parseBodyNode(n *wbxml.Node) (bodyIn, error) {
	in := bodyIn{present: true, typ: 1}
	var data *wbxml.Node
	for _, c := range n.Children {
		switch c.Tag {
		case wbxml.AirSyncBaseType:
			t, err := strconv.Atoi(strings.TrimSpace(c.Text()))
			if err != nil || t < 1 || t > 4 {
				return in, invalid("airsyncbase:Type %q", c.Text())
			}
			in.typ = t
		case wbxml.AirSyncBaseTruncated:
			in.keep = in.keep || strings.TrimSpace(c.Text()) == "1"
		case wbxml.AirSyncBaseData:
			data = c
		}
	}
	if data == nil || in.typ > 2 {
		in.keep = true
	}
	in.data = clean(data.Text())
	return in, nil
}

// applyBody returns the body that in makes of old, and whether it differs.
// Comparing with what Render sent keeps an unchanged round trip exact.
func applyBody(old body, in bodyIn) (body, bool) {
	if in.keep {
		return old, false
	}
	switch in.typ {
	case 2:
		if in.data == "" {
			return body{}, !old.empty()
		}
		if (old.html != "" && in.data == old.html) || (old.html == "" && in.data == textToHTML(old.text)) {
			return old, false
		}
		return body{text: htmlToText(in.data), html: in.data}, true
	default:
		if in.data == old.text {
			return old, false
		}
		return body{text: in.data}, true
	}
}

// renderBody builds airsyncbase:Body for the client's preferences
// (MS-ASAIRS 2.2.2.9): the preference whose Type is the native type (2
// when HTML is stored, else 1) or the first one; RTF (3) and MIME (4) are
// answered as plain text, as this server produces neither for PIM items.
// AllOrNone (2.2.2.3.2) moves to the next preference that fits, or sends
// no Data with Truncated 1. TruncationSize (2.2.2.40.2) cuts on a UTF-8
// boundary; EstimatedDataSize is the full size. Preview (2.2.2.35.4) is
// 14.0+ and never beside plain-text Data. nil for an empty body.
func renderBody(b body, prefs []email.BodyPreference, v14 bool) *wbxml.Node {
	if b.empty() {
		return nil
	}
	native := 1
	if b.html != "" {
		native = 2
	}
	var ps []email.BodyPreference
	for _, p := range prefs {
		switch p.Type {
		case 1, 2:
		case 3, 4:
			p.Type = 1
		default:
			continue
		}
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		p := email.BodyPreference{Type: native}
		if len(prefs) > 0 {
			p = prefs[0]
			p.Type = native
		}
		ps = []email.BodyPreference{p}
	}
	content := func(t int) string {
		if t == 2 {
			if b.html != "" {
				return b.html
			}
			return textToHTML(b.text)
		}
		return b.text
	}
	fits := func(p email.BodyPreference) bool {
		return p.TruncationSize <= 0 || int64(len(content(p.Type))) <= p.TruncationSize
	}
	primary := 0
	for i, p := range ps {
		if p.Type == native {
			primary = i
			break
		}
	}
	chosen, withData := ps[primary], true
	if chosen.AllOrNone && !fits(chosen) {
		withData = false
		for i, p := range ps {
			if i != primary && (!p.AllOrNone || fits(p)) {
				chosen, withData = p, true
				break
			}
		}
	}
	s := content(chosen.Type)
	n := wbxml.E(wbxml.AirSyncBaseBody,
		wbxml.T(wbxml.AirSyncBaseType, strconv.Itoa(chosen.Type)),
		wbxml.T(wbxml.AirSyncBaseEstimatedDataSize, strconv.Itoa(len(s))))
	if t := chosen.TruncationSize; t > 0 && int64(len(s)) > t {
		n.Append(wbxml.T(wbxml.AirSyncBaseTruncated, "1"))
		s = cutUTF8(s, int(t))
	}
	if withData {
		n.Append(wbxml.T(wbxml.AirSyncBaseData, s))
	}
	if v14 && chosen.Preview > 0 && !(chosen.Type == 1 && withData) {
		if pv := preview(b.text, min(chosen.Preview, maxPreview)); pv != "" {
			n.Append(wbxml.T(wbxml.AirSyncBasePreview, pv))
		}
	}
	return n
}

// cutUTF8 returns the longest prefix of s of at most n bytes that does not
// split a character.
func cutUTF8(s string, n int) string {
	if n >= len(s) {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// preview returns the first n characters of text with whitespace runs
// collapsed to one space.
func preview(text string, n int) string {
	var b strings.Builder
	count, space := 0, false
	for _, r := range text {
		if count >= n {
			break
		}
		if unicode.IsSpace(r) {
			space = count > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
			if count++; count >= n {
				break
			}
		}
		b.WriteRune(r)
		count++
	}
	return b.String()
}

// textToHTML is the HTML form of a plain-text body: escaped, line breaks
// as <br>.
func textToHTML(s string) string {
	if s == "" {
		return ""
	}
	return "<html><body>" + strings.ReplaceAll(html.EscapeString(s), "\n", "<br>\n") + "</body></html>"
}

// htmlToText returns the text of an HTML body: markup dropped (script,
// style, head content too), entities decoded, whitespace collapsed except
// inside <pre>, a line break for <br> and around block elements.
func htmlToText(s string) string {
	z := xhtml.NewTokenizer(strings.NewReader(s))
	var b strings.Builder
	skip, pre, nl := 0, 0, 0
	space := false
	brk := func(n int) {
		if b.Len() > 0 {
			nl = max(nl, n)
		}
		space = false
	}
	for {
		tt := z.Next()
		switch tt {
		case xhtml.ErrorToken:
			return clean(b.String())
		case xhtml.TextToken:
			if skip > 0 {
				continue
			}
			for _, r := range string(z.Text()) {
				if pre == 0 && unicode.IsSpace(r) {
					space = b.Len() > 0 && nl == 0
					continue
				}
				if nl > 0 {
					b.WriteString(strings.Repeat("\n", nl))
					nl = 0
				} else if space {
					b.WriteByte(' ')
				}
				space = false
				b.WriteRune(r)
			}
		case xhtml.StartTagToken, xhtml.SelfClosingTagToken, xhtml.EndTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			start := tt != xhtml.EndTagToken
			switch a {
			case atom.Script, atom.Style, atom.Head, atom.Title, atom.Template:
				if tt == xhtml.StartTagToken {
					skip++
				} else if tt == xhtml.EndTagToken && skip > 0 {
					skip--
				}
			case atom.Pre:
				if tt == xhtml.StartTagToken {
					pre++
				} else if tt == xhtml.EndTagToken && pre > 0 {
					pre--
				}
				brk(1)
			case atom.Br:
				if start {
					nl++
					space = false
				}
			case atom.P, atom.Div, atom.Li, atom.Tr, atom.Ul, atom.Ol, atom.Table,
				atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6, atom.Blockquote, atom.Hr:
				brk(1)
			}
		}
	}
}
