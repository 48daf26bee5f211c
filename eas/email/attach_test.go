package email

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

// openPart returns the info and content of the part at path.
func openPart(t *testing.T, msg []byte, path string) (PartInfo, []byte, error) {
	t.Helper()
	var info PartInfo
	var content []byte
	err := OpenPart(iotest.HalfReader(bytes.NewReader(msg)), path, func(p PartInfo, r io.Reader) error {
		info = p
		var err error
		content, err = io.ReadAll(r)
		return err
	})
	return info, content, err
}

func TestOpenPart(t *testing.T) {
	mixed := readFile(t, "mixed.eml")
	inner := "From: someone@example.org\r\nTo: frank@example.com\r\nSubject: =?UTF-8?Q?Original_n=C3=B8te?=\r\n" +
		"Date: Thu, 07 Mar 2024 10:00:00 +0000\r\n\r\nInner body, not walked." // the last CRLF belongs to the delimiter
	tests := []struct {
		msg      []byte
		path     string
		wantInfo PartInfo
		want     []byte
	}{
		{mixed, "2", PartInfo{"application/pdf", "Q1 réport.pdf"}, readFile(t, "report.pdf")},            // base64
		{mixed, "3", PartInfo{"text/csv", "data.csv"}, readFile(t, "data.csv")},                          // quoted-printable
		{mixed, "1.2", PartInfo{"image/png", "logo.png"}, readFile(t, "logo.png")},                       // nested
		{mixed, "4", PartInfo{"message/rfc822", "Original nøte.eml"}, []byte(inner)},                     // embedded message
		{mixed, "1.1.1", PartInfo{"text/plain", "attachment.txt"}, []byte("See the report. [logo]\r\n")}, // a body part
		{readFile(t, "smime-encrypted.eml"), "1", PartInfo{"application/pkcs7-mime", "smime.p7m"}, seq(200)},
		{readFile(t, "plain.eml"), "1", PartInfo{"text/plain", "attachment.txt"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			info, got, err := openPart(t, tc.msg, tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantInfo, info); diff != "" {
				t.Errorf("info (-want +got):\n%s", diff)
			}
			if tc.want != nil && !bytes.Equal(got, tc.want) {
				t.Errorf("content differs: got %d bytes %q, want %d", len(got), trunc(got), len(tc.want))
			}
		})
	}
	for _, path := range []string{"", "0", "1", "1.1", "5", "4.1", "2.1", "x"} {
		if _, _, err := openPart(t, mixed, path); !errors.Is(err, ErrNoPart) {
			t.Errorf("path %q: err %v, want ErrNoPart", path, err)
		}
	}

	// fn's error is returned; a read error of the message too.
	boom := errors.New("boom")
	if err := OpenPart(bytes.NewReader(mixed), "2", func(PartInfo, io.Reader) error { return boom }); err != boom {
		t.Errorf("fn error: %v", err)
	}
	broken := io.MultiReader(bytes.NewReader(mixed[:600]), iotest.ErrReader(boom))
	if err := OpenPart(broken, "4", func(PartInfo, io.Reader) error { return nil }); err != boom {
		t.Errorf("read error: %v", err)
	}
}

func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func trunc(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// TestConvertReadError checks that an I/O error of the input is reported.
func TestConvertReadError(t *testing.T) {
	r := iotest.TimeoutReader(bytes.NewReader(readFile(t, "mixed.eml")))
	if it, err := Convert(r, Meta{}, Options{}); !errors.Is(err, iotest.ErrTimeout) || it != nil {
		t.Errorf("Convert: %v, %v", it, err)
	}
	// One byte at a time works.
	it, err := Convert(iotest.OneByteReader(bytes.NewReader(readFile(t, "mixed.eml"))), Meta{}, Options{FileRef: ref})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if s := summarize(t, encodeDecode(t, it.Node)); len(s.Atts) != 4 || deref(s.Data) != "See the report. [logo]\r\n" {
		t.Errorf("one byte reads: %d attachments, data %q", len(s.Atts), deref(s.Data))
	}
}

// bigMessage streams a message with a text part and a base64 attachment
// of n decoded bytes, without holding it in memory.
type bigMessage struct {
	head, tail *strings.Reader
	left       int // decoded bytes still to encode
	line       [78]byte
	pend       []byte
	seed       byte
}

const bigHead = "From: big@example.com\r\nTo: you@example.com\r\nSubject: Big\r\nMIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"big\"\r\n\r\n--big\r\nContent-Type: text/plain\r\n\r\nSee attachment.\r\n" +
	"--big\r\nContent-Type: application/octet-stream; name=\"big.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"

func newBigMessage(n int) *bigMessage {
	return &bigMessage{head: strings.NewReader(bigHead), tail: strings.NewReader("--big--\r\n"), left: n}
}

func (m *bigMessage) Read(p []byte) (int, error) {
	if m.head.Len() > 0 {
		return m.head.Read(p)
	}
	total := 0
	for len(p) > 0 {
		if len(m.pend) == 0 {
			if m.left == 0 {
				break
			}
			var raw [57]byte
			k := min(m.left, len(raw))
			for i := range raw[:k] {
				raw[i] = m.seed
				m.seed = m.seed*31 + 7
			}
			m.left -= k
			n := base64.StdEncoding.EncodedLen(k)
			base64.StdEncoding.Encode(m.line[:], raw[:k])
			m.line[n], m.line[n+1] = '\r', '\n'
			m.pend = m.line[:n+2]
		}
		c := copy(p, m.pend)
		m.pend, p, total = m.pend[c:], p[c:], total+c
	}
	if total > 0 {
		return total, nil
	}
	return m.tail.Read(p)
}

// TestConvertBoundedMemory converts a ~20 MB message and checks that the
// attachment was counted, not held: the allocations stay far below its
// size.
func TestConvertBoundedMemory(t *testing.T) {
	size := 15 << 20 // decoded; ~20 MB encoded
	if raceEnabled {
		size = 3 << 20
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	it, err := Convert(newBigMessage(size), Meta{}, Options{
		Version: "14.1", FileRef: ref, MIMESupport: 2,
		BodyPrefs: []BodyPreference{{Type: 4, TruncationSize: 100 << 10}, {Type: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	defer it.Close()
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("Convert allocated %d bytes", alloc)
	if alloc > 4<<20 {
		t.Errorf("Convert allocated %d bytes for a %d-byte attachment", alloc, size)
	}
	s := summarize(t, encodeDecode(t, it.Node))
	if len(s.Atts) != 1 || s.Atts[0].Size != strconv.Itoa(size) || s.Atts[0].Name != "big.bin" {
		t.Errorf("attachments %+v", s.Atts)
	}
	if s.BodyType != "4" || !s.Truncated || len(deref(s.Data)) != 100<<10 {
		t.Errorf("MIME body: type %s truncated %v, %d bytes", s.BodyType, s.Truncated, len(deref(s.Data)))
	}

	// OpenPart streams the attachment too.
	runtime.GC()
	runtime.ReadMemStats(&before)
	var n int64
	err = OpenPart(newBigMessage(size), "2", func(_ PartInfo, r io.Reader) error {
		n, err = io.Copy(io.Discard, r)
		return err
	})
	runtime.ReadMemStats(&after)
	if err != nil || n != int64(size) {
		t.Fatalf("OpenPart: %d bytes, %v", n, err)
	}
	alloc = after.TotalAlloc - before.TotalAlloc
	t.Logf("OpenPart allocated %d bytes", alloc)
	if alloc > 2<<20 {
		t.Errorf("OpenPart allocated %d bytes", alloc)
	}
}
