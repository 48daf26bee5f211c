package eas

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset"
)

func composeString(t *testing.T, in string, o composeOptions) (*outgoing, string) {
	t.Helper()
	if o.now.IsZero() {
		o.now = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	}
	out, err := compose(strings.NewReader(in), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(out.Close)
	r, err := out.msg.Reader()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	return out, string(b)
}

func TestComposeSendEnvelope(t *testing.T) {
	in := "To: Bob <bob@example.test>, carol@example.test\r\nCc: \"Dan\" <DAN@example.test>\r\nBcc: eve@example.test, bob@example.test\r\nSubject: hi\r\n\r\nbody\r\n"
	out, msg := composeString(t, in, composeOptions{defaultFrom: "alice@example.test"})
	if want := []string{"bob@example.test", "carol@example.test", "DAN@example.test", "eve@example.test"}; !slices.Equal(out.rcpts, want) {
		t.Errorf("rcpts %v, want %v", out.rcpts, want)
	}
	if out.from != "alice@example.test" {
		t.Errorf("from %q", out.from)
	}
	for _, want := range []string{"From: <alice@example.test>\r\n", "Message-Id: <", "Date: ", "\r\n\r\nbody\r\n"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(strings.ToLower(msg), "bcc") || !strings.HasPrefix(out.bcc, "Bcc: eve@example.test") {
		t.Errorf("Bcc in the message, or not kept aside (%q):\n%s", out.bcc, msg)
	}
	if _, err := compose(strings.NewReader("Subject: x\r\n\r\nno one\r\n"), composeOptions{}); err != errNoRecipient {
		t.Errorf("no recipient: %v", err)
	}
	// A From given by the phone is the envelope sender.
	out, _ = composeString(t, "From: Alice <alice@other.test>\r\nTo: bob@example.test\r\n\r\nx", composeOptions{defaultFrom: "alice@example.test"})
	if out.from != "alice@other.test" {
		t.Errorf("from %q", out.from)
	}
}

const origMessage = "From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nSubject: lunch\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <orig@example.test>\r\nReferences: <older@example.test>\r\n" +
	"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n" +
	"--outer\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n" +
	"--alt\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nShall we eat at caf=E9 noon?\r\n" +
	"--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><head><style>p{}</style></head><body><p>Shall we eat at <b>café</b> noon?</p></body></html>\r\n" +
	"--alt--\r\n" +
	"--outer\r\nContent-Type: application/pdf; name=menu.pdf\r\nContent-Disposition: attachment; filename=menu.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n" +
	"--outer--\r\n"

const replyMessage = "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: Re: lunch\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=r1\r\n\r\n" +
	"--r1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nYes!\r\n" +
	"--r1\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n<html><body><div>Yes!</div></body></html>\r\n" +
	"--r1--\r\n"

func readOrig(t *testing.T, withAttachments bool) *original {
	t.Helper()
	o, err := readOriginal(strings.NewReader(origMessage), withAttachments)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	return o
}

// parts returns the decoded leaf parts of a message by content type.
func parts(t *testing.T, msg string) (map[string][]string, *message.Entity) {
	t.Helper()
	e, err := message.Read(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]string{}
	err = e.Walk(func(_ []int, p *message.Entity, err error) error {
		if err != nil {
			return err
		}
		mt, _, _ := p.Header.ContentType()
		if strings.HasPrefix(mt, "multipart/") {
			return nil
		}
		b, err := io.ReadAll(p.Body)
		m[mt] = append(m[mt], string(b))
		return err
	})
	if err != nil {
		t.Fatalf("%v:\n%s", err, msg)
	}
	return m, e
}

func TestComposeReply(t *testing.T) {
	o := readOrig(t, false)
	if !strings.Contains(o.text, "café") || !strings.Contains(o.html, "<b>café</b>") || len(o.attachments) != 0 {
		t.Fatalf("original: text %q html %q attachments %d", o.text, o.html, len(o.attachments))
	}
	_, msg := composeString(t, replyMessage, composeOptions{kind: composeReply, orig: o, defaultFrom: "alice@example.test"})
	p, e := parts(t, msg)
	text, htm := p["text/plain"], p["text/html"]
	if len(text) != 1 || len(htm) != 1 || len(p) != 2 {
		t.Fatalf("parts %v", p)
	}
	if !strings.HasPrefix(text[0], "Yes!") || strings.Count(text[0], "> Shall we eat at café noon?") != 1 || !strings.Contains(text[0], "Bob <bob@example.test> wrote:") {
		t.Errorf("text part:\n%s", text[0])
	}
	body := htm[0][strings.Index(htm[0], "<body>"):strings.Index(htm[0], "</body>")]
	if strings.Count(body, "<b>café</b>") != 1 || !strings.Contains(body, "<blockquote") || strings.Contains(body, "<style>") {
		t.Errorf("html quote not inside <body> once:\n%s", htm[0])
	}
	if !strings.HasSuffix(strings.TrimSpace(htm[0]), "</body></html>") {
		t.Errorf("html does not end with </body></html>:\n%s", htm[0])
	}
	if got := e.Header.Get("In-Reply-To"); got != "<orig@example.test>" {
		t.Errorf("In-Reply-To %q", got)
	}
	if got := e.Header.Get("References"); got != "<older@example.test> <orig@example.test>" {
		t.Errorf("References %q", got)
	}
	// ReplaceMime: the body is as sent, the threading fields are set.
	_, msg = composeString(t, replyMessage, composeOptions{kind: composeReply, orig: o, replace: true})
	if !strings.HasSuffix(msg, replyMessage[strings.Index(replyMessage, "\r\n\r\n")+4:]) || !strings.Contains(msg, "In-Reply-To: <orig@example.test>") {
		t.Errorf("ReplaceMime changed the body or lacks In-Reply-To:\n%s", msg)
	}
}

func TestComposeForward(t *testing.T) {
	o := readOrig(t, true)
	if len(o.attachments) != 1 {
		t.Fatalf("%d attachments", len(o.attachments))
	}
	// A plain-text forward is wrapped in a multipart/mixed.
	in := "From: alice@example.test\r\nTo: carol@example.test\r\nSubject: Fwd: lunch\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee below.\r\n"
	_, msg := composeString(t, in, composeOptions{kind: composeForward, orig: o})
	p, e := parts(t, msg)
	if mt, _, _ := e.Header.ContentType(); mt != "multipart/mixed" {
		t.Errorf("top %s", mt)
	}
	if len(p["application/pdf"]) != 1 || p["application/pdf"][0] != "%PDF-1.4\n" {
		t.Errorf("attachments %q", p["application/pdf"])
	}
	if len(p["text/plain"]) != 1 || !strings.Contains(p["text/plain"][0], "See below.") || strings.Count(p["text/plain"][0], "Shall we eat at café noon?") != 1 ||
		!strings.Contains(p["text/plain"][0], "Subject: lunch") {
		t.Errorf("text %q", p["text/plain"])
	}
	if e.Header.Get("Subject") != "Fwd: lunch" || e.Header.Get("In-Reply-To") != "" {
		t.Errorf("header %v", e.Header.Map())
	}
	// A multipart/mixed forward gets the attachments at its end.
	in = "From: alice@example.test\r\nTo: carol@example.test\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Type: text/html\r\n\r\n<p>See</p>\r\n--m\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=a.png\r\n\r\nPNG\r\n--m--\r\n"
	_, msg = composeString(t, in, composeOptions{kind: composeForward, orig: o})
	p, _ = parts(t, msg)
	if len(p["application/pdf"]) != 1 || len(p["image/png"]) != 1 || len(p["text/html"]) != 1 || !strings.Contains(p["text/html"][0], "<b>café</b>") {
		t.Errorf("parts %q", p)
	}
	if bytes.Contains([]byte(msg), []byte("boundary=m\r\n")) {
		t.Errorf("boundary not renewed")
	}
}

func TestHTMLHelpers(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{"<html><body>a</body></html>", "<html><body>aQ</body></html>"},
		{"<HTML><BODY>a</BODY >\r\n</HTML>", "<HTML><BODY>aQ</BODY >\r\n</HTML>"},
		{"<html>a</html>", "<html>aQ</html>"},
		{"a", "aQ"},
	} {
		if got := insertHTML(c.doc, "Q"); got != c.want {
			t.Errorf("insertHTML(%q) = %q, want %q", c.doc, got, c.want)
		}
	}
	if got := htmlToText("<html><head><title>x</title></head><body><p>a &amp; b</p><script>x</script>c<br>d</body></html>"); got != "a & b\nc\nd" {
		t.Errorf("htmlToText = %q", got)
	}
}
