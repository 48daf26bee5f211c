package pimfile_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/easd/easd/eas/calendar"
	"github.com/easd/easd/eas/contacts"
	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/eas/item/itemtest"
	"github.com/easd/easd/eas/notes"
	"github.com/easd/easd/eas/tasks"
	"github.com/easd/easd/internal/pimfile"
	"github.com/easd/easd/wbxml"
)

// importCodecs are the codecs `easd import` hands entries to, by kind
// (cmd/easd/importexport.go: classOfKind and eas.DefaultCodecs).
var importCodecs = map[string]item.Codec{
	"VEVENT": calendar.Codec{}, "VTODO": tasks.Codec{}, "VJOURNAL": notes.Codec{}, "VCARD": contacts.Codec{},
}

// importVersions are the protocol versions a fuzz input's mode picks
// among for rendering; Notes exist from 14.0 on.
var importVersions = []string{"14.1", "16.1", "12.1"}

func importOptions(kind string, mode uint8) item.Options {
	v := importVersions[int(mode)%len(importVersions)]
	if kind == "VJOURNAL" && v == "12.1" {
		v = "14.1"
	}
	n := 0
	return item.Options{
		Version: v,
		Now:     func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) },
		NewUID:  func() string { n++; return fmt.Sprintf("fuzz-%d@easd", n) },
	}
}

// importSeedICS is a calendar file as other systems export it: a zone,
// a recurring meeting with an override, an exception date, attendees and
// an alarm, an all-day event, a recurring task and a journal, with
// folded lines and escaped text.
const importSeedICS = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example//Export//EN\r\n" +
	"BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\n" +
	"BEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n" +
	"BEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n" +
	"END:VTIMEZONE\r\n" +
	"BEGIN:VEVENT\r\nUID:weekly@example.com\r\nDTSTAMP:20261101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20261102T090000\r\n" +
	"DTEND;TZID=Europe/Berlin:20261102T100000\r\nRRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=20\r\nEXDATE;TZID=Europe/Berlin:20261104T090000\r\n" +
	"SUMMARY:Standup\\, daily\r\nDESCRIPTION:Line one\\nline two with a long text that is folded over more than one line bec\r\n ause it is long\r\n" +
	"LOCATION:Room 1\r\nORGANIZER;CN=Alice:mailto:alice@example.com\r\nATTENDEE;CN=\"Bob, B.\";PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT:mailto:bob@example.com\r\n" +
	"CATEGORIES:Work,Team\r\nCLASS:PRIVATE\r\nTRANSP:OPAQUE\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nDESCRIPTION:x\r\nEND:VALARM\r\nEND:VEVENT\r\n" +
	"BEGIN:VEVENT\r\nUID:weekly@example.com\r\nDTSTAMP:20261101T000000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20261109T090000\r\n" +
	"DTSTART;TZID=Europe/Berlin:20261109T110000\r\nDTEND;TZID=Europe/Berlin:20261109T120000\r\nSUMMARY:Standup (moved)\r\nEND:VEVENT\r\n" +
	"BEGIN:VEVENT\r\nUID:holiday@example.com\r\nDTSTAMP:20261101T000000Z\r\nDTSTART;VALUE=DATE:20261225\r\nDTEND;VALUE=DATE:20261226\r\nSUMMARY:Holiday\r\nEND:VEVENT\r\n" +
	"BEGIN:VTODO\r\nUID:task@example.com\r\nDTSTAMP:20261101T000000Z\r\nDUE:20261205T170000Z\r\nRRULE:FREQ=MONTHLY;BYMONTHDAY=5\r\nPRIORITY:1\r\nSUMMARY:Report\r\nEND:VTODO\r\n" +
	"BEGIN:VJOURNAL\r\nDTSTAMP:20261101T000000Z\r\nSUMMARY:Ideas\r\nDESCRIPTION:Push\\; with numbers.\r\nEND:VJOURNAL\r\n" +
	"END:VCALENDAR\r\n"

// importSeedVCF is an address book: a vCard 3.0 with a photo, addresses
// and typed numbers, a 4.0 card without UID, and a 2.1 card.
const importSeedVCF = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:jane@example.com\r\nN:Doe;Jane;Q.;Dr.;\r\nFN:Dr. Jane Q. Doe\r\n" +
	"ORG:Example Corp;Sales\r\nTITLE:Manager\r\nTEL;TYPE=WORK,VOICE:+1 555 0100\r\nTEL;TYPE=CELL:+1 555 0101\r\n" +
	"EMAIL;TYPE=INTERNET,PREF:jane@example.com\r\nADR;TYPE=HOME:;;1 Main St;Springfield;IL;62701;USA\r\n" +
	"BDAY:1980-05-17\r\nNOTE:Met at the fair\\, 2024\r\nCATEGORIES:Customers\r\nURL:https://example.com\r\n" +
	"PHOTO;ENCODING=b;TYPE=PNG:iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAA\r\n AABJRU5ErkJggg==\r\nEND:VCARD\r\n" +
	"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Bob\r\nN:;Bob;;;\r\nTEL;VALUE=uri;TYPE=\"voice,home\":tel:+1-555-0102\r\nEND:VCARD\r\n" +
	"BEGIN:VCARD\r\nVERSION:2.1\r\nN:Old;Card\r\nTEL;HOME:123\r\nEND:VCARD\r\n"

// FuzzImport runs arbitrary file contents through the whole path of
// `easd import` and on to the phones: SplitICS (or SplitVCF with mode
// bit 7), the class's codec Index, then what a phone's Sync does with a
// stored item. Never a panic; every entry has a known kind, a UID and a
// line within the file; an entry that indexes renders for the version the
// mode picks, and a phone sending it back unchanged changes nothing it
// sees: contacts, tasks and notes are a byte-for-byte fixed point of
// Render then Apply, an event is after the first Apply (which writes it
// anew) with the same rendering and index. Entries that do not index are
// skipped by import and never reach a phone.
func FuzzImport(f *testing.F) {
	f.Add([]byte(importSeedICS), uint8(0))
	f.Add([]byte(importSeedICS), uint8(1))
	f.Add([]byte(importSeedVCF), uint8(128))
	f.Add([]byte(importSeedVCF), uint8(130))
	f.Add([]byte("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:20260101T000000Z\r\nRRULE:FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"), uint8(0))
	f.Add([]byte("BEGIN:VEVENT\nUID:a\n b\nDTSTART:20260101\nEND:VEVENT\n"), uint8(2))
	f.Add([]byte("BEGIN:VCARD\nVERSION:3.0\nUID;X=\"a:b\":c\nFN:x\nEND:VCARD\n"), uint8(129))
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		split := pimfile.SplitICS
		if mode&128 != 0 {
			split = pimfile.SplitVCF
		}
		entries, problems, err := split(bytes.NewReader(data))
		if err != nil {
			return // an unreadable file (a line over 1 MiB): import stops with the error
		}
		// Lines end at LF, CR LF or a lone CR.
		lines := 1 + bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r")) - bytes.Count(data, []byte("\r\n"))
		for _, p := range problems {
			if p.Line < 1 || p.Line > lines || p.Err == nil {
				t.Fatalf("problem %v at line %d of %d", p.Err, p.Line, lines)
			}
		}
		for _, e := range entries {
			c := importCodecs[e.Kind]
			if c == nil || e.UID == "" || e.Line < 1 || e.Line > lines {
				t.Fatalf("entry %s %q at line %d of %d", e.Kind, e.UID, e.Line, lines)
			}
			idx, err := c.Index(e.Data)
			if err != nil {
				continue // import skips it with a message
			}
			o := importOptions(e.Kind, mode)
			n, err := c.Render(e.Data, o)
			if err != nil {
				t.Fatalf("%s indexes but does not render: %v\n%s", e.Kind, err, e.Data)
			}
			if e.Kind != "VEVENT" {
				itemtest.CheckFixedPoint(t, c, e.Data, o)
				continue
			}
			// The calendar codec writes an event anew on its first Apply
			// (its own property order, LAST-MODIFIED): what the phone sees
			// must not change, and from then on it is a fixed point.
			out, idx2, err := c.Apply(e.Data, n, o)
			if err != nil {
				t.Fatalf("Apply of its own rendering: %v\n%s\n%v", err, e.Data, n)
			}
			if idx2 != idx {
				t.Fatalf("Index %+v after Apply, %+v before", idx2, idx)
			}
			n2, err := c.Render(out, o)
			if err != nil {
				t.Fatalf("Render after Apply: %v\n%s", err, out)
			}
			if a, b := encoded(t, n), encoded(t, n2); !bytes.Equal(a, b) {
				t.Fatalf("the phone sees another event after sending it back unchanged:\n%v\n%v\n%s\n---\n%s", n, n2, e.Data, out)
			}
			itemtest.CheckFixedPoint(t, c, out, o)
		}
	})
}

// encoded returns n in WBXML.
func encoded(t *testing.T, n *wbxml.Node) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := wbxml.Encode(&b, n); err != nil {
		t.Fatalf("rendered ApplicationData does not encode: %v", err)
	}
	return b.Bytes()
}

// TestImportSeedsImport: the seed files import whole (every item
// indexes), so the fuzzer starts from files that reach the codecs.
func TestImportSeedsImport(t *testing.T) {
	for name, s := range map[string]string{"ics": importSeedICS, "vcf": importSeedVCF} {
		split := pimfile.SplitICS
		if name == "vcf" {
			split = pimfile.SplitVCF
		}
		entries, problems, err := split(strings.NewReader(s))
		if err != nil || len(problems) != 0 {
			t.Fatalf("%s: %v %v", name, problems, err)
		}
		want := map[string]int{"ics": 4, "vcf": 3}[name]
		if len(entries) != want {
			t.Fatalf("%s: %d entries, want %d", name, len(entries), want)
		}
		for _, e := range entries {
			if _, err := importCodecs[e.Kind].Index(e.Data); err != nil {
				t.Errorf("%s line %d: %v", name, e.Line, err)
			}
		}
	}
}
