package pimfile_test

import (
	"bytes"
	"cmp"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/easd/easd/internal/memtest"
	"github.com/easd/easd/internal/pimfile"
)

// memSize is the size of the pathological files: 10 MB, 1 MB under the
// race detector (ten times slower).
func memSize() int {
	if memtest.Race {
		return 1 << 20
	}
	return 10 << 20
}

// repeatTo returns a maker of a file: head, the text gen(i) returns
// repeated until n bytes are written, and tail. (Files are made one at a
// time: the live heap before a measurement must be small for the
// collector to run during it.)
func repeatTo(n int, head, tail string, gen func(i int) string) func() []byte {
	return func() []byte {
		var b bytes.Buffer
		b.WriteString(head)
		for i := 0; b.Len() < n; i++ {
			b.WriteString(gen(i))
		}
		b.WriteString(tail)
		return b.Bytes()
	}
}

// zoneOf returns a VTIMEZONE named id of about size bytes.
func zoneOf(id string, size int) string {
	pad := strings.Repeat("X-PAD:"+strings.Repeat("z", 72)+"\r\n", size/80)
	return "BEGIN:VTIMEZONE\r\nTZID:" + id + "\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\n" +
		"TZOFFSETTO:+0100\r\nEND:STANDARD\r\n" + pad + "END:VTIMEZONE\r\n"
}

// TestImportBoundedMemory imports pathological files (Split, then Index
// of every entry, as `easd import` does) and checks what that takes
// from the heap against the file's size n: the largest live heap at most
// live×n + 64 MiB, the allocations (garbage included) at most alloc×n +
// slack. The bounds are about twice what was measured. Every item
// carries a copy of the zones it uses (bounded in all to 8 times the
// file, pimfile's zoneBudget), and is decoded twice (Split checks it,
// Index reads it): files of small items sharing a zone take the most.
func TestImportBoundedMemory(t *testing.T) {
	n := memSize()
	const vcal, evEnd = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n", "END:VCALENDAR\r\n"
	event := func(uid, extra string) string {
		return "BEGIN:VEVENT\r\nUID:" + uid + "\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20260101T090000\r\n" +
			"DTEND;TZID=Europe/Berlin:20260101T100000\r\nSUMMARY:s\r\n" + extra + "END:VEVENT\r\n"
	}
	for _, tc := range []struct {
		name        string
		vcf         bool
		data        func() []byte
		live, alloc float64 // bounds, times the file's size
		minEntries  int     // at least so many entries are imported
		slack       float64 // MiB added to the bound on allocations; 64 when 0
	}{
		{"many events sharing a 1 KiB zone", false,
			repeatTo(n, vcal+zoneOf("Europe/Berlin", 1<<10), evEnd, func(i int) string { return event(fmt.Sprint(i), "") }),
			32, 450, n / 400, 0},
		{"a 60 KiB zone used by every event", false,
			repeatTo(n, vcal+zoneOf("Europe/Berlin", 60<<10), evEnd, func(i int) string { return event(fmt.Sprint(i), "") }),
			32, 250, 100, 448}, // the budget's 32 MiB of copies, decoded twice
		{"every event with its own 60 KiB zone", false,
			repeatTo(n, vcal, evEnd, func(i int) string {
				return zoneOf(fmt.Sprint("Z", i), 60<<10) + strings.Replace(event(fmt.Sprint(i), ""), "Europe/Berlin", fmt.Sprint("Z", i), 2)
			}),
			8, 40, n / (80 << 10), 0},
		{"one event of 100000 overrides", false,
			repeatTo(n, vcal+zoneOf("Europe/Berlin", 1<<10)+event("u", "RRULE:FREQ=DAILY\r\n"), evEnd, func(i int) string {
				return event("u", fmt.Sprintf("RECURRENCE-ID;TZID=Europe/Berlin:%04d0101T090000\r\n", 2000+i%7000))
			}),
			8, 40, 0, 0},
		{"deep nesting", false, repeatTo(n, vcal+"BEGIN:VEVENT\r\n", "", func(int) string { return "BEGIN:X\r\n" }), 8, 40, 0, 0},
		{"a folded line of the whole file", false,
			repeatTo(n, vcal+"BEGIN:VEVENT\r\nUID:f\r\nDESCRIPTION:", "\r\nEND:VEVENT\r\n"+evEnd, func(int) string { return "\r\n " + strings.Repeat("d", 70) }),
			8, 40, 0, 0},
		{"many parameters", false,
			repeatTo(n, vcal+"BEGIN:VEVENT\r\nUID:p\r\nDTSTART:20260101T000000Z\r\nX-P", ":v\r\nEND:VEVENT\r\n"+evEnd, func(int) string { return "\r\n ;A=b,c" }),
			16, 40, 0, 0},
		{"a line over the limit", false, repeatTo(n, vcal, "", func(int) string { return "SUMMARY:" }), 2, 2, 0, 0},
		{"many TZID references", false,
			repeatTo(n, vcal+zoneOf("Europe/Berlin", 1<<10)+"BEGIN:VEVENT\r\nUID:r\r\nDTSTART:20260101T000000Z\r\n", "END:VEVENT\r\n"+evEnd, func(int) string { return "X-R;TZID=Europe/Berlin:1\r\n" }),
			8, 40, 0, 0},
		{"many small cards", true,
			repeatTo(n, "", "", func(i int) string {
				return fmt.Sprintf("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:%d\r\nFN:x\r\nEND:VCARD\r\n", i)
			}),
			8, 450, n / 100, 0},
		{"one card of many numbers", true,
			repeatTo(n, "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c\r\nFN:x\r\n", "END:VCARD\r\n", func(i int) string { return fmt.Sprintf("TEL;TYPE=WORK:%d\r\n", i) }),
			8, 40, 0, 0},
		{"nested cards", true, repeatTo(n, "", "", func(int) string { return "BEGIN:VCARD\r\nAGENT:" }), 4, 10, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.data()
			var entries []pimfile.Entry
			var problems []pimfile.Problem
			indexed := 0
			u := memtest.Measure(func() {
				split := pimfile.SplitICS
				if tc.vcf {
					split = pimfile.SplitVCF
				}
				var err error
				entries, problems, err = split(bytes.NewReader(data))
				if err != nil {
					problems = append(problems, pimfile.Problem{Err: err})
				}
				for _, e := range entries {
					if _, err := importCodecs[e.Kind].Index(e.Data); err == nil {
						indexed++
					}
				}
			})
			size := float64(len(data))
			t.Logf("%d bytes: %d entries (%d indexed), %d problems; live heap %.1f×, peak in use %.1f×, allocated %.1f×, retained %.1f×",
				len(data), len(entries), indexed, len(problems), float64(u.Live)/size, float64(u.Peak)/size, float64(u.Alloc)/size, float64(u.Retained)/size)
			runtime.KeepAlive(data)
			if indexed < tc.minEntries {
				t.Errorf("%d entries indexed, want at least %d (problems: %v)", indexed, tc.minEntries, problems[:min(len(problems), 3)])
			}
			if limit := tc.live*size + 64<<20; float64(u.Live) > limit {
				t.Errorf("live heap %d bytes, over %.0f", u.Live, limit)
			}
			slack := cmp.Or(tc.slack, 64)
			if limit := tc.alloc*size + slack*(1<<20); float64(u.Alloc) > limit {
				t.Errorf("allocated %d bytes, over %.0f", u.Alloc, limit)
			}
		})
	}
}
