package item

import (
	"fmt"
	"html"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/easd/easd/eas/email"
	"github.com/easd/easd/wbxml"
	xhtml "golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// Body is an item's notes as eas/contacts, eas/tasks and eas/notes store
// them: the plain text, and the HTML when a client sent HTML (kept so that
// the client gets its formatting back).
type Body struct {
	// Text is the plain text, with LF line ends.
	Text string
	// HTML is the HTML the text came from, "" for a plain-text body.
	HTML string
}

// Empty reports whether b holds neither text nor HTML.
func (b Body) Empty() bool { return b.Text == "" && b.HTML == "" }

// BodyIn is a client's airsyncbase:Body (MS-ASAIRS 2.2.2.9), as ParseBody
// reads it.
type BodyIn struct {
	// Present: the ApplicationData carried a body element.
	Present bool
	// Keep: the element carries no usable content (no Data, Truncated 1,
	// or RTF/MIME, which this server does not parse): the stored body
	// stays.
	Keep bool
	// Type is airsyncbase:Type: 1 plain text, 2 HTML, 3 RTF, 4 MIME.
	Type int
	// Data is the cleaned airsyncbase:Data (see Clean).
	Data string
}

// maxPreview is the longest airsyncbase:Preview (MS-ASAIRS 2.2.2.35).
const maxPreview = 255

// Clean makes s safe to store and to send as WBXML text: invalid UTF-8
// is replaced, NUL dropped, CRLF and lone CR become LF. Text is stored
// with LF line ends; a client's CRLF comes back as LF.
func Clean(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.ContainsAny(s, "\x00\r") {
		s = strings.NewReplacer("\x00", "", "\r\n", "\n", "\r", "\n").Replace(s)
	}
	return s
}

// Invalidf returns an error wrapping ErrInvalid, described by format and
// args as fmt.Errorf formats them.
func Invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// ParseBody reads an airsyncbase:Body element. An airsyncbase:Type other
// than 1 to 4 is an error wrapping ErrInvalid.
func ParseBody(n *wbxml.Node) (BodyIn, error) {
	in := BodyIn{Present: true, Type: 1}
	var data *wbxml.Node
	for _, c := range n.Children {
		switch c.Tag {
		case wbxml.AirSyncBaseType:
			t, err := strconv.Atoi(strings.TrimSpace(c.Text()))
			if err != nil || t < 1 || t > 4 {
				return in, Invalidf("airsyncbase:Type %q", c.Text())
			}
			in.Type = t
		case wbxml.AirSyncBaseTruncated:
			in.Keep = in.Keep || strings.TrimSpace(c.Text()) == "1"
		case wbxml.AirSyncBaseData:
			data = c
		}
	}
	if data == nil || in.Type > 2 {
		in.Keep = true
	}
	in.Data = Clean(data.Text())
	return in, nil
}

// ApplyBody returns the body that in makes of old, and whether it differs.
// Comparing with what RenderBody sent keeps an unchanged round trip exact.
func ApplyBody(old Body, in BodyIn) (Body, bool) {
	if in.Keep {
		return old, false
	}
	switch in.Type {
	case 2:
		if in.Data == "" {
			return Body{}, !old.Empty()
		}
		if (old.HTML != "" && in.Data == old.HTML) || (old.HTML == "" && in.Data == TextToHTML(old.Text)) {
			return old, false
		}
		return Body{Text: HTMLToText(in.Data), HTML: in.Data}, true
	default:
		if in.Data == old.Text {
			return old, false
		}
		return Body{Text: in.Data}, true
	}
}

// RenderBody builds airsyncbase:Body for the client's preferences
// (MS-ASAIRS 2.2.2.9): the preference whose Type is the native type (2
// when HTML is stored, else 1) or the first one; RTF (3) and MIME (4) are
// answered as plain text, as this server produces neither for PIM items.
// v14 is a protocol version of 14.0 or later (Preview). The choice and the
// element are BodyElement's. nil for an empty body.
func RenderBody(b Body, prefs []email.BodyPreference, v14 bool) *wbxml.Node {
	if b.Empty() {
		return nil
	}
	native := 1
	if b.HTML != "" {
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
			if b.HTML != "" {
				return b.HTML
			}
			return TextToHTML(b.Text)
		}
		return b.Text
	}
	var pv func(int) string
	if v14 {
		pv = func(n int) string { return preview(b.Text, n) }
	}
	return BodyElement(ps, native, content, pv)
}

// BodyElement builds airsyncbase:Body (MS-ASAIRS 2.2.2.9) from prefs, the
// client's body preferences already reduced to Types 1 and 2 (at least
// one). It takes the preference whose Type is native (the stored type),
// else the first; AllOrNone (2.2.2.3.2) moves to the next preference that
// fits, or sends no Data with Truncated 1. TruncationSize (2.2.2.40.2) cuts
// on a UTF-8 boundary; EstimatedDataSize is the full size. content returns
// the body in a Type. previewOf returns the Preview (2.2.2.35.4) of at most
// n characters; nil before 14.0. Preview never stands beside plain-text
// Data, and an empty one is left out.
func BodyElement(prefs []email.BodyPreference, native int, content func(typ int) string, previewOf func(n int) string) *wbxml.Node {
	fits := func(p email.BodyPreference) bool {
		return p.TruncationSize <= 0 || int64(len(content(p.Type))) <= p.TruncationSize
	}
	primary := 0
	for i, p := range prefs {
		if p.Type == native {
			primary = i
			break
		}
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
	if previewOf != nil && chosen.Preview > 0 && !(chosen.Type == 1 && withData) {
		if pv := previewOf(min(chosen.Preview, maxPreview)); pv != "" {
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

// TextToHTML is the HTML form of a plain-text body: escaped, line breaks
// as <br>; "" for "".
func TextToHTML(s string) string {
	if s == "" {
		return ""
	}
	return "<html><body>" + strings.ReplaceAll(html.EscapeString(s), "\n", "<br>\n") + "</body></html>"
}

// HTMLToText returns the text of an HTML body: markup dropped (script,
// style, head content too), entities decoded, whitespace collapsed except
// inside <pre>, a line break for <br> and around block elements.
func HTMLToText(s string) string {
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
			return Clean(b.String())
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
