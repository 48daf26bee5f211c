package pimfile

import (
	"bytes"
	"strings"
	"testing"

	"github.com/emersion/go-ical"
)

const ics = "BEGIN:VCALENDAR\r\n" +
	"VERSION:2.0\r\n" +
	"PRODID:-//test//EN\r\n" +
	"BEGIN:VTIMEZONE\r\n" +
	"TZID:Europe/Berlin\r\n" +
	"BEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n" +
	"BEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n" +
	"END:VTIMEZONE\r\n" +
	"BEGIN:VEVENT\r\nUID:weekly@x\r\nDTSTAMP:20261101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20261102T090000\r\nDTEND;TZID=Europe/Berlin:20261102T100000\r\nRRULE:FREQ=WEEKLY\r\nSUMMARY:Standup\r\nEND:VEVENT\r\n" +
	"BEGIN:VEVENT\r\nUID:weekly@x\r\nDTSTAMP:20261101T000000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20261109T090000\r\nDTSTART;TZID=Europe/Berlin:20261109T110000\r\nDTEND;TZID=Europe/Berlin:20261109T120000\r\nSUMMARY:Standup (moved)\r\nEND:VEVENT\r\n" +
	"BEGIN:VEVENT\r\nUID:broken@x\r\nDTSTART:not-a-date\r\nSUMMARY:Broken\r\nBEGIN:VALARM\r\nEND:VEVENT\r\n" +
	"BEGIN:VTODO\r\nDTSTAMP:20261101T000000Z\r\nSUMMARY:No UID task\r\nEND:VTODO\r\n" +
	"END:VCALENDAR\r\n"

func TestSplitICS(t *testing.T) {
	entries, problems, err := SplitICS(strings.NewReader(ics))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("%d entries, want 2 (the series with its override, the task): %+v", len(entries), entries)
	}
	ev := entries[0]
	if ev.Kind != "VEVENT" || ev.UID != "weekly@x" || ev.Line != 19 {
		t.Errorf("first entry: %s %q line %d", ev.Kind, ev.UID, ev.Line)
	}
	cal, err := ical.NewDecoder(bytes.NewReader(ev.Data)).Decode()
	if err != nil {
		t.Fatal(err)
	}
	var events, zones int
	for _, c := range cal.Children {
		switch c.Name {
		case ical.CompEvent:
			events++
		case ical.CompTimezone:
			zones++
		}
	}
	if events != 2 || zones != 1 {
		t.Errorf("the series holds %d events and %d zones, want 2 and 1", events, zones)
	}
	if entries[1].Kind != "VTODO" || !strings.HasSuffix(entries[1].UID, "@easd-import") || !bytes.Contains(entries[1].Data, []byte("UID:"+entries[1].UID)) {
		t.Errorf("the task without UID: %+v", entries[1])
	}
	if len(problems) != 1 || problems[0].Line != 35 {
		t.Fatalf("problems %v, want the broken event at line 35", problems)
	}
	// Written back: one calendar, the zone once, all three components.
	var out bytes.Buffer
	if err := WriteICS(&out, [][]byte{entries[0].Data, entries[1].Data}); err != nil {
		t.Fatal(err)
	}
	back, err := ical.NewDecoder(&out).Decode()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(back.Children); n != 4 {
		t.Errorf("exported calendar has %d components, want 4 (zone, 2 events, task)", n)
	}
}

func TestSplitVCF(t *testing.T) {
	vcf := "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a@x\r\nFN:Ann\r\nEND:VCARD\r\n" +
		"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:No Uid\r\nEND:VCARD\r\n" +
		"BEGIN:VCARD\r\nthis is not a property\r\nEND:VCARD\r\n" +
		"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Unclosed\r\n"
	entries, problems, err := SplitVCF(strings.NewReader(vcf))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].UID != "a@x" || entries[1].UID == "" {
		t.Fatalf("entries %+v", entries)
	}
	if len(problems) != 2 || problems[0].Line != 10 || problems[1].Line != 13 {
		t.Fatalf("problems %v, want lines 10 and 13", problems)
	}
	var out bytes.Buffer
	if err := WriteVCF(&out, [][]byte{entries[0].Data, entries[1].Data}); err != nil {
		t.Fatal(err)
	}
	again, problems, err := SplitVCF(&out)
	if err != nil || len(again) != 2 || len(problems) != 0 {
		t.Fatalf("round trip: %d entries, %v, %v", len(again), problems, err)
	}
}

func FuzzSplit(f *testing.F) {
	f.Add([]byte(ics))
	f.Add([]byte("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\nEND:VCARD\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, _, err := SplitICS(bytes.NewReader(b))
		if err == nil {
			for _, e := range entries {
				if _, err := ical.NewDecoder(bytes.NewReader(e.Data)).Decode(); err != nil {
					t.Fatalf("an entry that does not decode: %v", err)
				}
			}
		}
		_, _, _ = SplitVCF(bytes.NewReader(b))
	})
}
