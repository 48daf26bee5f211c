package calendar

import (
	"html"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/easd/easd/eas/email"
	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/eas/item/ics"
	"github.com/easd/easd/wbxml"
	"github.com/emersion/go-ical"
	xhtml "golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// propAltDesc holds an HTML description beside the plain DESCRIPTION
// (the convention of Outlook and Thunderbird).
const propAltDesc = "X-ALT-DESC"

// bodyOf returns the plain and HTML descriptions of ev.
func bodyOf(ev *ical.Component) (text, htm string) {
	text, _ = getText(ev, ical.PropDescription)
	for _, p := range ev.Props.Values(propAltDesc) {
		if strings.EqualFold(p.Params.Get(ical.ParamFormatType), "text/html") {
			htm = ics.UnescapeText(p.Value)
			break
		}
	}
	return text, htm
}

// bodyAs returns the body as type 1 (text) or 2 (HTML): the stored form,
// or a conversion of the other.
func bodyAs(typ int, text, htm string) string {
	if typ == 2 {
		if htm != "" {
			return htm
		}
		return textToHTML(text)
	}
	if text != "" || htm == "" {
		return text
	}
	return htmlToText(htm)
}

// renderBody renders airsyncbase:Body and NativeBodyType (MS-ASAIRS
// 2.2.2.9, 2.2.2.32) by the client's BodyPreference, as eas/email does: RTF
// (3) is answered as text, MIME (4) does not apply to calendar items; the
// preference of the native type wins, else the first; AllOrNone falls to
// the next preference that fits; Truncated and EstimatedDataSize describe
// a body cut on a UTF-8 boundary (item.BodyElement). No body, no element.
func (c *ctx) renderBody(ev *ical.Component, f fields) {
	text, htm := bodyOf(ev)
	if text == "" && htm == "" {
		return
	}
	native := 1
	if htm != "" {
		native = 2
	}
	var prefs []email.BodyPreference
	if len(c.o.BodyPrefs) == 0 { // item.Options: plain text, untruncated
		prefs = []email.BodyPreference{{Type: 1}}
	}
	for _, p := range c.o.BodyPrefs {
		switch p.Type {
		case 3:
			p.Type = 1
		case 1, 2:
		default:
			continue
		}
		prefs = append(prefs, p)
	}
	if len(prefs) == 0 { // only types that do not apply (MIME): the native one
		p := c.o.BodyPrefs[0]
		p.Type = native
		prefs = []email.BodyPreference{p}
	}
	var pv func(int) string
	if c.v >= v140 {
		pv = func(n int) string { return preview(bodyAs(1, text, htm), n) }
	}
	content := func(t int) string { return bodyAs(t, text, htm) }
	f[wbxml.AirSyncBaseBody] = item.BodyElement(prefs, native, content, pv)
	f.text(wbxml.AirSyncBaseNativeBodyType, strconv.Itoa(native))
}

// preview returns the first n characters of text, white space collapsed.
func preview(text string, n int) string {
	s := strings.Join(strings.Fields(text), " ")
	if utf8.RuneCountInString(s) > n {
		s = string([]rune(s)[:n])
	}
	return s
}

// incomingBody reads a client's airsyncbase:Body (or 2.5's calendar:Body,
// plain text). ok is false for a body that cannot replace the stored one:
// RTF (3) and MIME (4), which this server does not decode, and truncated
// data.
func incomingBody(n *wbxml.Node) (typ int, data string, ok bool) {
	if n.Tag == wbxml.CalendarBody {
		return 1, n.Text(), true
	}
	typ = 1
	if t := n.Child(wbxml.AirSyncBaseType); t != nil {
		v, err := strconv.Atoi(strings.TrimSpace(t.Text()))
		if err != nil {
			return 0, "", false
		}
		typ = v
	}
	if tr := n.Child(wbxml.AirSyncBaseTruncated); tr != nil && strings.TrimSpace(tr.Text()) == "1" {
		return typ, "", false
	}
	return typ, n.ChildText(wbxml.AirSyncBaseData), typ == 1 || typ == 2
}

// normBody makes bodies comparable: LF line ends, no trailing space.
func normBody(s string) string {
	return strings.TrimRightFunc(strings.ReplaceAll(s, "\r\n", "\n"), unicode.IsSpace)
}

// sameBody reports whether a client's body is the stored one (in the type
// it was sent as), so that applying it would change nothing.
func sameBody(ev *ical.Component, n *wbxml.Node) bool {
	typ, data, ok := incomingBody(n)
	if !ok {
		return true // nothing to apply
	}
	text, htm := bodyOf(ev)
	return normBody(data) == normBody(bodyAs(typ, text, htm))
}

// setBody stores a client's body: plain text in DESCRIPTION; HTML in
// X-ALT-DESC;FMTTYPE=text/html with its text in DESCRIPTION. Bodies that
// cannot be stored (see incomingBody) leave the stored one.
func setBody(ev *ical.Component, n *wbxml.Node) {
	typ, data, ok := incomingBody(n)
	if !ok {
		return
	}
	ev.Props.Del(propAltDesc)
	if typ == 2 && strings.TrimSpace(data) != "" {
		p := ical.NewProp(propAltDesc)
		p.Params.Set(ical.ParamFormatType, "text/html")
		p.Value = textEscape(data)
		ev.Props.Set(p)
		setText(ev, ical.PropDescription, htmlToText(data))
		return
	}
	setText(ev, ical.PropDescription, strings.ReplaceAll(data, "\r\n", "\n"))
}

func clearBody(ev *ical.Component) {
	ev.Props.Del(ical.PropDescription)
	ev.Props.Del(propAltDesc)
}

// textToHTML wraps plain text in a minimal HTML document.
func textToHTML(text string) string {
	esc := html.EscapeString(strings.ReplaceAll(text, "\r\n", "\n"))
	return "<html><body>" + strings.ReplaceAll(esc, "\n", "<br>\n") + "</body></html>"
}

// htmlToText returns the text of an HTML document: scripts, styles and the
// head dropped, line breaks for block elements, spaces collapsed.
func htmlToText(src string) string {
	z := xhtml.NewTokenizer(strings.NewReader(src))
	var b strings.Builder
	skip := 0
	pendingBreak := false
	space := false
	for {
		tt := z.Next()
		switch tt {
		case xhtml.ErrorToken:
			return strings.TrimSpace(b.String())
		case xhtml.StartTagToken, xhtml.EndTagToken, xhtml.SelfClosingTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			switch a {
			case atom.Script, atom.Style, atom.Head, atom.Title:
				if tt == xhtml.StartTagToken {
					skip++
				} else if tt == xhtml.EndTagToken && skip > 0 {
					skip--
				}
			case atom.Br:
				b.WriteByte('\n')
				space = false
			case atom.P, atom.Div, atom.Li, atom.Tr, atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6,
				atom.Table, atom.Ul, atom.Ol, atom.Blockquote, atom.Pre, atom.Hr:
				pendingBreak = b.Len() > 0
			}
		case xhtml.TextToken:
			if skip > 0 {
				continue
			}
			for _, r := range string(z.Text()) {
				if unicode.IsSpace(r) {
					space = true
					continue
				}
				if pendingBreak {
					b.WriteByte('\n')
					pendingBreak, space = false, false
				} else if space && b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
					b.WriteByte(' ')
				}
				space = false
				b.WriteRune(r)
			}
		}
	}
}
