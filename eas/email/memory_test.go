package email

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/easd/easd/internal/memtest"
	"github.com/easd/easd/wbxml"
)

// memSize is the size of the pathological messages: 10 MB, 1 MB under
// the race detector.
func memSize() int {
	if raceEnabled {
		return 1 << 20
	}
	return 10 << 20
}

// repeatMsg returns a maker of a message: head, unit(i) repeated until n
// bytes are written, and tail.
func repeatMsg(n int, head, tail string, unit func(i int) string) func() []byte {
	return func() []byte {
		var b bytes.Buffer
		b.WriteString(head)
		for i := 0; b.Len() < n; i++ {
			b.WriteString(unit(i))
		}
		b.WriteString(tail)
		return b.Bytes()
	}
}

// TestConvertPathologicalMemory converts pathological messages of n bytes
// as a Sync does (Convert with an HTML preference truncated to 32 KiB and
// plain text, then the ApplicationData encoded) and opens their second
// part as ItemOperations does (OpenPart), and checks what that takes from
// the heap: the largest live heap at most live×n + 8 MiB, allocations
// (garbage included) at most alloc×n + 16 MiB. Bodies are spooled (to a
// file past the spool's memory) and headers are read up to a bound, so no
// message is held whole: all take less than their size but for many
// parts (about 8 times in garbage, 1.4 at the peak) and a meeting request
// (its calendar part is parsed whole up to MaxCalendarBytes: 10 times
// live, 40 in garbage). The bounds are about twice what was measured.
func TestConvertPathologicalMemory(t *testing.T) {
	n := memSize()
	const plain = "From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
	nested := func(depth int) func() []byte {
		return func() []byte {
			var b strings.Builder
			b.WriteString("From: a@example.com\r\n")
			for i := range depth {
				fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
			}
			b.WriteString("Content-Type: text/plain\r\n\r\nleaf\r\n")
			for i := depth - 1; i >= 0; i-- {
				fmt.Fprintf(&b, "--b%d--\r\n", i)
			}
			return []byte(b.String())
		}
	}
	for _, tc := range []struct {
		name        string
		msg         func() []byte
		live, alloc float64
	}{
		{"one header line of the whole message", repeatMsg(n, "From: a@example.com\r\nSubject: ", "\r\n\r\nbody\r\n", func(int) string { return "s" }), 1, 1},
		{"many headers", repeatMsg(n, "From: a@example.com\r\n", "\r\nbody\r\n", func(i int) string { return fmt.Sprintf("X-H%d: v\r\n", i) }), 1, 1},
		{"many recipients", repeatMsg(n, "From: a@example.com\r\nTo: ", "\r\n\r\nbody\r\n", func(i int) string { return fmt.Sprintf("u%d@example.com, ", i) }), 1, 2},
		{"many encoded words", repeatMsg(n, "From: a@example.com\r\nSubject: ", "\r\n\r\nbody\r\n", func(int) string { return "=?utf-8?q?=C3=A9?= " }), 1, 1},
		{"deep multipart nesting", nested(n / 70), 1, 1},
		{"many parts", repeatMsg(n, "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n", "--x--\r\n",
			func(i int) string {
				return fmt.Sprintf("--x\r\nContent-Type: application/octet-stream; name=a%d.bin\r\nContent-Disposition: attachment\r\n\r\nx\r\n", i)
			}), 3, 16},
		{"a body line of the whole message", repeatMsg(n, plain, "\r\n", func(int) string { return "b" }), 1, 1},
		{"a plain body of short lines", repeatMsg(n, plain, "", func(int) string { return "b\r\n" }), 1, 4},
		{"nested HTML", repeatMsg(n, "From: a@example.com\r\nContent-Type: text/html\r\n\r\n", "", func(int) string { return "<div><b>" }), 1, 3},
		{"HTML of many paragraphs", repeatMsg(n, "From: a@example.com\r\nContent-Type: text/html\r\n\r\n", "", func(int) string { return "<p>a &amp; b</p>\r\n" }), 1, 3},
		{"base64 garbage", repeatMsg(n, "From: a@example.com\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n", "", func(int) string { return "!!==\r\n" }), 1, 1},
		{"quoted-printable soft breaks", repeatMsg(n, "From: a@example.com\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", "", func(int) string { return "=C3=A9=\r\n" }), 1, 1},
		// Calendar parts are parsed up to MaxCalendarBytes: one of that size
		// takes the most (go-ical holds every property, the rendering
		// every attendee).
		{"a meeting request of many attendees", repeatMsg(MaxCalendarBytes-100,
			"From: a@example.com\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:m\r\nDTSTART:20260101T090000Z\r\nDTEND:20260101T100000Z\r\n",
			"END:VEVENT\r\nEND:VCALENDAR\r\n", func(i int) string { return fmt.Sprintf("ATTENDEE;CN=U%d:mailto:u%d@example.com\r\n", i, i) }), 20, 80},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := tc.msg()
			size := float64(len(msg))
			o := Options{Version: "14.1", FileRef: ref, BodyPrefs: []BodyPreference{{Type: 2, TruncationSize: 32 << 10}, {Type: 1}}}
			for _, way := range []struct {
				name string
				run  func() error
			}{
				{"Convert", func() error {
					it, err := Convert(bytes.NewReader(msg), Meta{Received: time.Unix(0, 0)}, o)
					if err != nil {
						return err
					}
					defer it.Close()
					return wbxml.Encode(io.Discard, it.Node)
				}},
				{"OpenPart", func() error {
					return OpenPart(bytes.NewReader(msg), "2", func(_ PartInfo, r io.Reader) error {
						_, err := io.Copy(io.Discard, r)
						return err
					})
				}},
			} {
				var err error
				u := memtest.Measure(func() { err = way.run() })
				t.Logf("%s of %d bytes: live heap %.2f×, peak in use %.2f×, allocated %.2f× (%v)",
					way.name, len(msg), float64(u.Live)/size, float64(u.Peak)/size, float64(u.Alloc)/size, err)
				if way.name == "Convert" && err != nil {
					t.Errorf("Convert: %v", err) // Convert takes any bytes
				}
				if limit := tc.live*size + 8<<20; float64(u.Live) > limit {
					t.Errorf("%s: live heap %d bytes, over %.0f", way.name, u.Live, limit)
				}
				if limit := tc.alloc*size + 16<<20; float64(u.Alloc) > limit {
					t.Errorf("%s: allocated %d bytes, over %.0f", way.name, u.Alloc, limit)
				}
			}
			runtime.KeepAlive(msg)
		})
	}
}
