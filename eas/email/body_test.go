package email

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// textMsg is a plain-text message with body b (UTF-8, 8bit).
func textMsg(b string) []byte {
	return []byte("From: a@example.com\r\nTo: b@example.com\r\nSubject: t\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + b)
}

// htmlMsg is an HTML-only message with body b.
func htmlMsg(b string) []byte {
	return []byte("From: a@example.com\r\nSubject: t\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + b)
}

// bodyOf converts msg and returns the body summary.
type bodyResult struct {
	Type, Size string
	Truncated  bool
	Data       *string
	Preview    string
}

func bodyOf(t *testing.T, msg []byte, o Options) bodyResult {
	t.Helper()
	if o.Version == "" {
		o.Version = "14.1"
	}
	s := summarize(t, convert(t, msg, Meta{}, o))
	return bodyResult{s.BodyType, s.BodySize, s.Truncated, s.Data, s.Preview}
}

func TestTruncation(t *testing.T) {
	euro := strings.Repeat("€", 100) // 300 bytes, 3-byte characters
	html := "<p>" + strings.Repeat("ü", 50) + "</p>"
	tests := []struct {
		name string
		msg  []byte
		o    Options
		want bodyResult
	}{
		{"utf-8 boundary", textMsg(euro), Options{BodyPrefs: []BodyPreference{{Type: 1, TruncationSize: 10}}},
			bodyResult{Type: "1", Size: "300", Truncated: true, Data: str("€€€")}},
		{"exact boundary", textMsg(euro), Options{BodyPrefs: []BodyPreference{{Type: 1, TruncationSize: 9}}},
			bodyResult{Type: "1", Size: "300", Truncated: true, Data: str("€€€")}},
		{"smaller than a character", textMsg(euro), Options{BodyPrefs: []BodyPreference{{Type: 1, TruncationSize: 2}}},
			bodyResult{Type: "1", Size: "300", Truncated: true, Data: str("")}},
		{"fits", textMsg(euro), Options{BodyPrefs: []BodyPreference{{Type: 1, TruncationSize: 300}}},
			bodyResult{Type: "1", Size: "300", Data: str(euro)}},
		{"RTF answered as text", textMsg(euro), Options{BodyPrefs: []BodyPreference{{Type: 3, TruncationSize: 4}}},
			bodyResult{Type: "1", Size: "300", Truncated: true, Data: str("€")}},
		{"no preference: whole text", textMsg(euro), Options{},
			bodyResult{Type: "1", Size: "300", Data: str(euro)}},
		{"html", htmlMsg(html), Options{BodyPrefs: []BodyPreference{{Type: 2, TruncationSize: 8}}},
			bodyResult{Type: "2", Size: "107", Truncated: true, Data: str("<p>üü")}},
		{"text of html", htmlMsg(html), Options{BodyPrefs: []BodyPreference{{Type: 1, TruncationSize: 5}}},
			bodyResult{Type: "1", Size: "100", Truncated: true, Data: str("üü")}},
		{"all or none: too large", textMsg(euro), Options{BodyPrefs: []BodyPreference{{Type: 1, TruncationSize: 10, AllOrNone: true}}},
			bodyResult{Type: "1", Size: "300", Truncated: true}},
		{"all or none: fits", textMsg(euro), Options{BodyPrefs: []BodyPreference{{Type: 1, TruncationSize: 1000, AllOrNone: true}}},
			bodyResult{Type: "1", Size: "300", Data: str(euro)}},
		{"all or none ignored without size", textMsg(euro), Options{BodyPrefs: []BodyPreference{{Type: 1, AllOrNone: true}}},
			bodyResult{Type: "1", Size: "300", Data: str(euro)}},
		{"all or none: next preference", htmlMsg(html), Options{BodyPrefs: []BodyPreference{
			{Type: 2, TruncationSize: 10, AllOrNone: true}, {Type: 1, TruncationSize: 4}}},
			bodyResult{Type: "1", Size: "100", Truncated: true, Data: str("üü")}},
		{"all or none: none fits", htmlMsg(html), Options{BodyPrefs: []BodyPreference{
			{Type: 2, TruncationSize: 10, AllOrNone: true}, {Type: 1, TruncationSize: 4, AllOrNone: true}}},
			bodyResult{Type: "2", Size: "107", Truncated: true}},
		{"native type preferred", htmlMsg(html), Options{BodyPrefs: []BodyPreference{
			{Type: 1, TruncationSize: 4}, {Type: 2, TruncationSize: 200}}},
			bodyResult{Type: "2", Size: "107", Data: str(html)}},
		{"first preference when native not asked", textMsg("x"), Options{BodyPrefs: []BodyPreference{
			{Type: 2}, {Type: 3}}},
			bodyResult{Type: "1", Size: "1", Data: str("x")}},
		{"spilled to a file", textMsg(euro), Options{SpoolMemory: 16, BodyPrefs: []BodyPreference{{Type: 1, TruncationSize: 200}}},
			bodyResult{Type: "1", Size: "300", Truncated: true, Data: str(strings.Repeat("€", 66))}},
		{"empty message", []byte("Subject: empty\r\n\r\n"), Options{BodyPrefs: []BodyPreference{{Type: 2, TruncationSize: 5}}},
			bodyResult{Type: "2", Size: "0", Data: str("")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := bodyOf(t, tc.msg, tc.o)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWrappedTruncation checks that plain text sent as HTML is cut at a
// character and entity boundary within the limit.
func TestWrappedTruncation(t *testing.T) {
	text := strings.Repeat("a&b<ü>\n", 20)
	full := wrapPrefix + strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\n", "<br>\n").Replace(text) + wrapSuffix
	for _, limit := range []int{5, len(wrapPrefix), len(wrapPrefix) + 1, len(wrapPrefix) + 2, len(wrapPrefix) + 6, len(wrapPrefix) + 7, len(wrapPrefix) + 40, len(full) - 1, len(full)} {
		got := bodyOf(t, textMsg(text), Options{BodyPrefs: []BodyPreference{{Type: 2, TruncationSize: int64(limit)}}})
		if got.Size != strconv.Itoa(len(full)) || got.Data == nil {
			t.Fatalf("limit %d: size %s (want %d), data %v", limit, got.Size, len(full), got.Data != nil)
		}
		d := *got.Data
		if len(d) > limit || !strings.HasPrefix(full, d) || !utf8.ValidString(d) || got.Truncated != (limit < len(full)) {
			t.Errorf("limit %d: data %q truncated %v", limit, d, got.Truncated)
		}
		// Nothing longer would fit: the next cut point is beyond the limit.
		// (A truncated body never gets the suffix.)
		if limit > len(wrapPrefix) && len(d) < len(full)-len(wrapSuffix) {
			rest := full[len(d):]
			next := 1
			switch {
			case rest[0] == '&':
				next = strings.IndexByte(rest, ';') + 1
			case strings.HasPrefix(rest, "<br>"):
				next = 5
			default:
				_, next = utf8.DecodeRuneInString(rest)
			}
			if len(d)+next <= limit {
				t.Errorf("limit %d: cut at %d, %q would still fit", limit, len(d), rest[:next])
			}
		}
	}
}

func TestPreview(t *testing.T) {
	body := "  First\r\n\r\n  line\twith   spaces " + strings.Repeat("x", 300)
	tests := []struct {
		name  string
		msg   []byte
		prefs []BodyPreference
		want  string
	}{
		// MS-ASAIRS 2.2.2.35.1: no Preview beside plain-text Data.
		{"plain text data", textMsg(body), []BodyPreference{{Type: 1, Preview: 50}}, ""},
		{"plain text without data", textMsg(body), []BodyPreference{{Type: 1, TruncationSize: 5, AllOrNone: true, Preview: 20}}, "First line with spac"},
		{"html", textMsg(body), []BodyPreference{{Type: 2, Preview: 24}}, "First line with spaces x"},
		{"capped at 255", textMsg(body), []BodyPreference{{Type: 2, Preview: 1000}}, ("First line with spaces " + strings.Repeat("x", 300))[:255]},
		{"from html", htmlMsg("<p>Hello</p><p>World &amp; more</p>"), []BodyPreference{{Type: 2, Preview: 100}}, "Hello World & more"},
		{"none asked", textMsg(body), []BodyPreference{{Type: 2}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := bodyOf(t, tc.msg, Options{BodyPrefs: tc.prefs})
			if got.Preview != tc.want {
				t.Errorf("preview %q, want %q", got.Preview, tc.want)
			}
			// 12.1 has no Preview.
			if got := bodyOf(t, tc.msg, Options{Version: "12.1", BodyPrefs: tc.prefs}); got.Preview != "" {
				t.Errorf("12.1 preview %q", got.Preview)
			}
		})
	}
}

func TestMIMEBody(t *testing.T) {
	plain := readFile(t, "plain.eml")
	enc := readFile(t, "smime-encrypted.eml")
	mime4 := []BodyPreference{{Type: 4}}
	tests := []struct {
		name string
		msg  []byte
		o    Options
		want bodyResult
	}{
		{"whole", plain, Options{MIMESupport: 2, BodyPrefs: mime4},
			bodyResult{Type: "4", Size: strconv.Itoa(len(plain)), Data: str(string(plain))}},
		{"truncated", plain, Options{MIMESupport: 2, BodyPrefs: []BodyPreference{{Type: 4, TruncationSize: 100}}},
			bodyResult{Type: "4", Size: strconv.Itoa(len(plain)), Truncated: true, Data: str(string(plain[:100]))}},
		{"MIME wins over the native type", plain, Options{MIMESupport: 2, BodyPrefs: []BodyPreference{{Type: 1}, {Type: 4}}},
			bodyResult{Type: "4", Size: strconv.Itoa(len(plain)), Data: str(string(plain))}},
		{"MIMESupport 0", plain, Options{MIMESupport: 0, BodyPrefs: []BodyPreference{{Type: 4}, {Type: 2, TruncationSize: 20}}},
			bodyResult{Type: "2", Size: "226", Truncated: true, Data: str(wrapPrefix[:20])}},
		{"MIMESupport 1, not S/MIME: native type", plain, Options{MIMESupport: 1, BodyPrefs: []BodyPreference{{Type: 4, TruncationSize: 11}}},
			bodyResult{Type: "1", Size: "99", Truncated: true, Data: str("Hi Jürgen,")}},
		{"MIMESupport 1, S/MIME", enc, Options{MIMESupport: 1, BodyPrefs: mime4},
			bodyResult{Type: "4", Size: strconv.Itoa(len(enc)), Data: str(string(enc))}},
		{"all or none: too large, next preference", plain, Options{MIMESupport: 2, BodyPrefs: []BodyPreference{
			{Type: 4, TruncationSize: 100, AllOrNone: true}, {Type: 1, TruncationSize: 2}}},
			bodyResult{Type: "1", Size: "99", Truncated: true, Data: str("Hi")}},
		{"all or none: too large alone", plain, Options{MIMESupport: 2, BodyPrefs: []BodyPreference{
			{Type: 4, TruncationSize: 100, AllOrNone: true}}},
			bodyResult{Type: "4", Size: strconv.Itoa(len(plain)), Truncated: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := bodyOf(t, tc.msg, tc.o)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}

	// NUL bytes cannot travel in an inline string: dropped.
	nul := []byte("Subject: n\r\n\r\na\x00b\r\n")
	if got := bodyOf(t, nul, Options{MIMESupport: 2, BodyPrefs: mime4}); deref(got.Data) != "Subject: n\r\n\r\nab\r\n" {
		t.Errorf("NUL: %q", deref(got.Data))
	}
}

// TestLargeBodies checks the streamed (TStream) Data of bodies beyond
// inlineMax, whole and truncated, spooled to a file.
func TestLargeBodies(t *testing.T) {
	line := "Zeile mit Umlauten äöü und € — 0123456789\r\n"
	text := strings.Repeat(line, 5000) // ~250 KB
	msg := textMsg(text)
	for _, o := range []Options{
		{BodyPrefs: []BodyPreference{{Type: 1}}},
		{BodyPrefs: []BodyPreference{{Type: 1, TruncationSize: 100001}}, SpoolMemory: 4096},
		{BodyPrefs: []BodyPreference{{Type: 4}}, MIMESupport: 2, SpoolMemory: 4096},
		{BodyPrefs: []BodyPreference{{Type: 2, TruncationSize: 70000}}},
	} {
		got := bodyOf(t, msg, o)
		d := deref(got.Data)
		p := o.BodyPrefs[0]
		var want string
		switch p.Type {
		case 1:
			want = text
		case 2:
			want = wrapPrefix + strings.ReplaceAll(strings.ReplaceAll(text, "\r", ""), "\n", "<br>\n") + wrapSuffix
		case 4:
			want = string(msg)
		}
		if got.Size != strconv.Itoa(len(want)) {
			t.Errorf("type %d: size %s, want %d", p.Type, got.Size, len(want))
		}
		if p.TruncationSize > 0 {
			if !got.Truncated || int64(len(d)) > p.TruncationSize || int64(len(d)) < p.TruncationSize-8 || !strings.HasPrefix(want, d) {
				t.Errorf("type %d truncated to %d: got %d bytes, truncated %v", p.Type, p.TruncationSize, len(d), got.Truncated)
			}
		} else if d != want {
			t.Errorf("type %d: data differs (%d bytes, want %d)", p.Type, len(d), len(want))
		}
	}
}
