package eas

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// FuzzCompose feeds a phone's outgoing MIME, and an original to reply to
// or forward, through composition: any input must either be refused with
// an error or give a message that can be read back, never a panic.
func FuzzCompose(f *testing.F) {
	f.Add([]byte("To: bob@example.test\r\nSubject: hi\r\n\r\nhello\r\n"), []byte("From: bob@example.test\r\nSubject: x\r\n\r\noriginal\r\n"), uint8(0))
	f.Add([]byte("To: a@b, \"C\" <c@d>\r\nBcc: e@f\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\nContent-Type: text/html\r\n\r\n<html><body>x</body></html>\r\n--b--\r\n"),
		[]byte("Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n<p>caf\xe9</p>\r\n--o\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n--o--\r\n"), uint8(2))
	f.Add([]byte("To: x@y\r\nContent-Type: multipart/mixed\r\n\r\nno boundary\r\n"), []byte("garbage"), uint8(1))
	f.Fuzz(func(t *testing.T, msg, orig []byte, kind uint8) {
		o := composeOptions{kind: composeKind(kind % 3), defaultFrom: "alice@example.test", now: time.Unix(1700000000, 0), replace: kind&4 != 0}
		if o.kind != composeSend {
			or, err := readOriginal(bytes.NewReader(orig), o.kind == composeForward)
			if err != nil {
				return
			}
			defer or.Close()
			o.orig = or
		}
		out, err := compose(bytes.NewReader(msg), o)
		if err != nil {
			return
		}
		defer out.Close()
		r, err := out.msg.Reader()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			t.Fatal(err)
		}
		if len(out.rcpts) == 0 {
			t.Fatal("composed a message without recipients")
		}
	})
}
