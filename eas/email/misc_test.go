package email

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBase64Lenient(t *testing.T) {
	tests := []struct{ in, want string }{
		{"SGVsbG8gd29ybGQ=", "Hello world"},
		{"SGVs\r\nbG8g\r\nd29y\r\nbGQ=\r\n", "Hello world"},
		{"SGVsbG8g!!d29y*bGQ", "Hello world"}, // junk skipped, padding missing
		{"SGVsbA==SGVsbA==", "HellHell"},      // concatenated encodings
		{"SGVsbG8", "Hello"},                  // partial quantum
		{"S", ""},                             // a lone character is nothing
		{"", ""},
	}
	for _, tc := range tests {
		for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
			if got := readAll(t, transferDecoder("BASE64", r)); got != tc.want {
				t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
			}
		}
	}
}

func TestQuotedPrintableLenient(t *testing.T) {
	tests := []struct{ in, want string }{
		{"caf=C3=A9", "café"},
		{"caf=c3=a9", "café"},                         // lower-case hex
		{"soft=\r\nbreak", "softbreak"},               // soft line break
		{"soft=  \r\nbreak", "softbreak"},             // whitespace after '='
		{"soft=\nbreak", "softbreak"},                 // bare LF
		{"trailing   \r\nspace", "trailing\r\nspace"}, // transport padding dropped
		{"keep = sign and =ZZ and =4", "keep = sign and =ZZ and =4"},
		{"=az =a", "=az =a"},
		{"end=", "end"},  // soft break at the end
		{"a\rb", "a\rb"}, // lone CR
		{"x=3D=\r\n=3D", "x=="},
		{"tab\there", "tab\there"},
	}
	for _, tc := range tests {
		for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
			if got := readAll(t, transferDecoder("quoted-printable", r)); got != tc.want {
				t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
			}
		}
	}
}

func TestTextDecoder(t *testing.T) {
	tests := []struct{ charset, in, want string }{
		{"utf-8", "héllo", "héllo"},
		{"", "caf\xe9 \x93quoted\x94", "café “quoted”"}, // windows-1252 fallback
		{"us-ascii", "ok \xc3\xa9", "ok é"},             // mislabelled UTF-8 kept
		{"ISO-8859-1", "caf\xe9 \x80", "café €"},
		{"iso-8859-15", "\xa4", "€"},
		{"windows-1251", "\xcf\xf0\xe8\xe2\xe5\xf2", "Привет"},
		{"koi8-r", "\xf0\xd2\xc9\xd7\xc5\xd4", "Привет"},
		{"x-unknown", "a\x00b\xff", "abÿ"}, // NUL dropped
		{`"UTF-8"`, "ü", "ü"},
	}
	for _, tc := range tests {
		for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
			if got := readAll(t, textDecoder(tc.charset, r)); got != tc.want {
				t.Errorf("%s %q: %q, want %q", tc.charset, tc.in, got, tc.want)
			}
		}
	}
	// Whole characters per read, even into a small buffer.
	r := textDecoder("utf-8", strings.NewReader(strings.Repeat("€", 10)))
	buf := make([]byte, 4)
	for {
		n, err := r.Read(buf)
		if n != 3 && n != 0 {
			t.Errorf("read %d bytes of 3-byte characters", n)
		}
		if err != nil {
			break
		}
	}
}

func TestSanitizeString(t *testing.T) {
	if got := sanitizeString("a\r\nb\tc\x00d\xe9"); got != "a  b cdé" {
		t.Errorf("%q", got)
	}
}

func TestHTMLToText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"<p>a</p><p>b</p>", "a\r\n\r\nb"},
		{"a<br>b<br><br>c", "a\r\nb\r\n\r\nc"},
		{"<div>x</div><div>y</div>", "x\r\ny"},
		{"<table><tr><td>1</td><td>2</td></tr><tr><td>3</td></tr></table>", "1 2\r\n3"},
		{"<pre>  keep\n   this</pre>after", "  keep\n   this\r\n\r\nafter"},
		{"<head><title>T</title></head><body>only</body>", "only"},
		{"<head><body>unclosed head</body>", "unclosed head"},
		{"<script>x<y</script><style>p{}</style>z", "z"},
		{"a &lt;b&gt; &amp;&nbsp;&eacute;&#8364;", "a <b> & é€"},
		{"  lots   of\n\n spaces  ", "lots of spaces"},
		{"<ul><li>one<li>two</ul>", "- one\r\n- two"},
		{"<noscript><p>x</p></noscript>y", "y"},
		{"", ""},
	}
	for _, tc := range tests {
		var out bytes.Buffer
		htmlToText(strings.NewReader(tc.in), &out, map[string]bool{})
		if got := out.String(); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
		}
	}
	cids := map[string]bool{}
	htmlToText(strings.NewReader(`<img src="cid:A%40b"><td background="CID:bg@x"><a href="cid:">`), io.Discard, cids)
	if diff := cmp.Diff(map[string]bool{"a@b": true, "bg@x": true}, cids); diff != "" {
		t.Errorf("cids (-want +got):\n%s", diff)
	}
}

func TestThreadTopic(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Hello", "Hello"},
		{"Re: Hello", "Hello"},
		{"RE: Fwd: FW: Hello", "Hello"},
		{"Re[2]: Re(3): Hello", "Hello"},
		{"AW: WG: Antw: Hallo", "Hallo"},
		{"SV: VS: Hei", "Hei"},
		{"回复：你好", "你好"},
		{"Re:Re:x", "x"},
		{"Reply needed", "Reply needed"},
		{"Invitation: Meeting", "Invitation: Meeting"},
		{"Re: ", ""},
	}
	for _, tc := range tests {
		if got := ThreadTopic(tc.in); got != tc.want {
			t.Errorf("ThreadTopic(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestImportance(t *testing.T) {
	tests := []struct {
		h    header
		want int
	}{
		{nil, 1},
		{header{{"Importance", "High"}}, 2},
		{header{{"importance", "low"}, {"X-Priority", "1"}}, 0}, // Importance wins
		{header{{"X-Priority", "1 (Highest)"}}, 2},
		{header{{"X-Priority", "2"}}, 2},
		{header{{"X-Priority", "3"}}, 1},
		{header{{"X-Priority", "5 (Lowest)"}}, 0},
		{header{{"X-MSMail-Priority", "High"}}, 2},
		{header{{"Priority", "non-urgent"}}, 0},
		{header{{"Priority", "urgent"}}, 2},
		{header{{"Importance", "bogus"}, {"Priority", "urgent"}}, 2},
	}
	for _, tc := range tests {
		if got := importance(tc.h); got != tc.want {
			t.Errorf("%v: %d, want %d", tc.h, got, tc.want)
		}
	}
}

func TestConversationIndex(t *testing.T) {
	// 2015-07-12 11:42:50 UTC is FILETIME 0x01D0BC97E167xxxx: the header
	// is bits 16-55, D0 BC 97 E1 67 (MS-ASCON 2.2.2.4.1).
	at := time.Date(2015, 7, 12, 11, 42, 50, 0, time.UTC)
	got := ConversationIndex(at)
	ft := uint64(at.Unix()+11644473600) * 10000000
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], ft)
	if !bytes.Equal(got, b[1:6]) || !bytes.Equal(got[:3], []byte{0xD0, 0xBC, 0x97}) {
		t.Errorf("ConversationIndex = %x, FILETIME %x", got, b)
	}
	if ConversationIndex(time.Time{}) != nil || ConversationIndex(time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC)) != nil {
		t.Error("out-of-range time gives a value")
	}
}

func TestConversationID(t *testing.T) {
	root := ConversationID("<a@x>", "", "")
	tests := []struct {
		msgID, inReplyTo, refs string
		same                   bool
	}{
		{"<b@x>", "<a@x>", "", true},
		{"<c@x>", "<b@x>", "<a@x> <b@x>", true},
		{"<c@x>", "<b@x>", "  <A@X>\r\n <b@x>", true}, // case and folding
		{"<d@x>", "", "a@x b@x", true},                // ids without brackets
		{"<e@x>", "", "", false},
	}
	for _, tc := range tests {
		got := ConversationID(tc.msgID, tc.inReplyTo, tc.refs)
		if len(got) != 16 || bytes.Equal(got, root) != tc.same {
			t.Errorf("%+v: %x (root %x)", tc, got, root)
		}
	}
	if ConversationID("", " ", "") != nil {
		t.Error("no ids gives a value")
	}
}

func TestMIMEParser(t *testing.T) {
	// Paths follow IMAP numbering; a close delimiter missing in a nested
	// multipart ends it at the parent's delimiter.
	msg := "Content-Type: multipart/mixed; boundary=o\r\n\r\npreamble\r\n--o\r\n" +
		"Content-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n\r\ni1\r\n--i\r\n\r\ni2\r\n" +
		"--o\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--o \r\nno blank line before this body\r\n--o--\r\nepilogue\r\n"
	type part struct{ Path, Type, Body string }
	var got []part
	m := newMIMEReader(strings.NewReader(msg))
	top := newEntity(m.readHeader(), "", 0, "")
	m.walk(top, func(e *entity, body io.Reader) bool {
		got = append(got, part{e.path, e.typ, readAll(t, body)})
		return false
	})
	want := []part{
		{"1.1", "text/plain", "i1"},
		{"1.2", "text/plain", "i2"},
		{"2", "text/plain", "second"},
		{"3", "text/plain", "no blank line before this body"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parts (-want +got):\n%s", diff)
	}

	// A single-part message is part 1; an mbox From line is skipped; a long
	// header line survives.
	long := strings.Repeat("x", 100000)
	m = newMIMEReader(strings.NewReader("From sender Mon Jan 1 00:00:00 2024\nSubject: " + long + "\n\nbody"))
	top = newEntity(m.readHeader(), "", 0, "")
	if top.h.Get("Subject") != long {
		t.Errorf("long subject: %d bytes", len(top.h.Get("Subject")))
	}
	m.walk(top, func(e *entity, body io.Reader) bool {
		if e.path != "1" || readAll(t, body) != "body" {
			t.Errorf("single part %q", e.path)
		}
		return false
	})
}
