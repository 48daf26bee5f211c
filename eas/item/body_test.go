package item

import (
	"strings"
	"testing"

	"github.com/easd/easd/eas/email"
	"github.com/easd/easd/wbxml"
)

func TestClean(t *testing.T) {
	if got := Clean("a\r\nb\rc\x00d\xff"); got != "a\nb\ncd\uFFFD" {
		t.Errorf("Clean = %q", got)
	}
}

func TestApplyBodyKeepsAnUnchangedRoundTrip(t *testing.T) {
	old := Body{Text: "Hi\nthere"}
	for _, in := range []BodyIn{
		{Present: true, Type: 1, Data: old.Text},
		{Present: true, Type: 2, Data: TextToHTML(old.Text)},
		{Present: true, Keep: true, Type: 1, Data: "other"},
	} {
		if got, changed := ApplyBody(old, in); changed || got != old {
			t.Errorf("%+v: %+v, %v", in, got, changed)
		}
	}
	got, changed := ApplyBody(old, BodyIn{Present: true, Type: 2, Data: "<p>a</p><p>b &amp; c</p>"})
	if !changed || got.Text != "a\nb & c" || got.HTML != "<p>a</p><p>b &amp; c</p>" {
		t.Errorf("HTML body: %+v, %v", got, changed)
	}
	if got, changed := ApplyBody(got, BodyIn{Present: true, Type: 2}); !changed || !got.Empty() {
		t.Errorf("empty HTML: %+v, %v", got, changed)
	}
}

func TestParseBody(t *testing.T) {
	in, err := ParseBody(wbxml.E(wbxml.AirSyncBaseBody, wbxml.T(wbxml.AirSyncBaseType, "1"), wbxml.T(wbxml.AirSyncBaseData, "a\r\nb")))
	if err != nil || in != (BodyIn{Present: true, Type: 1, Data: "a\nb"}) {
		t.Errorf("%+v, %v", in, err)
	}
	if in, _ := ParseBody(wbxml.E(wbxml.AirSyncBaseBody, wbxml.T(wbxml.AirSyncBaseType, "3"))); !in.Keep {
		t.Errorf("RTF without Data: %+v", in)
	}
	if _, err := ParseBody(wbxml.E(wbxml.AirSyncBaseBody, wbxml.T(wbxml.AirSyncBaseType, "9"))); err == nil {
		t.Error("Type 9 accepted")
	}
}

func TestRenderBody(t *testing.T) {
	b := Body{Text: "héllo   world, a longer text"}
	if RenderBody(Body{}, nil, true) != nil {
		t.Error("empty body rendered")
	}
	n := RenderBody(b, []email.BodyPreference{{Type: 1, TruncationSize: 2}}, true)
	if n.ChildText(wbxml.AirSyncBaseData) != "h" || n.Child(wbxml.AirSyncBaseTruncated) == nil ||
		n.ChildText(wbxml.AirSyncBaseEstimatedDataSize) != "29" {
		t.Errorf("truncated on a character boundary: %s", n)
	}
	// AllOrNone that does not fit moves to the next preference.
	n = RenderBody(b, []email.BodyPreference{{Type: 1, TruncationSize: 5, AllOrNone: true}, {Type: 2, Preview: 11}}, true)
	if n.ChildText(wbxml.AirSyncBaseType) != "2" || !strings.HasPrefix(n.ChildText(wbxml.AirSyncBaseData), "<html>") ||
		n.ChildText(wbxml.AirSyncBasePreview) != "héllo world" {
		t.Errorf("AllOrNone: %s", n)
	}
	// No preference fits: no Data; Preview only from 14.0.
	prefs := []email.BodyPreference{{Type: 1, TruncationSize: 5, AllOrNone: true, Preview: 5}}
	if n = RenderBody(b, prefs, true); n.Child(wbxml.AirSyncBaseData) != nil || n.ChildText(wbxml.AirSyncBasePreview) != "héllo" {
		t.Errorf("nothing fits: %s", n)
	}
	if n = RenderBody(b, prefs, false); n.Child(wbxml.AirSyncBasePreview) != nil {
		t.Errorf("Preview before 14.0: %s", n)
	}
}

func TestHTMLToText(t *testing.T) {
	got := HTMLToText("<html><head><title>t</title><style>p{}</style></head><body><p>a  b</p>c<br>d<pre>x  y</pre></body></html>")
	if got != "a b\nc\nd\nx  y" {
		t.Errorf("HTMLToText = %q", got)
	}
}
