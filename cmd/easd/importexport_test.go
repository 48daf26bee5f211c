package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const importVCF = "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:ann@x\r\nFN:Ann Example\r\nN:Example;Ann;;;\r\nEMAIL:ann@example.test\r\nEND:VCARD\r\n" +
	"BEGIN:VCARD\r\nthis line is no property\r\nEND:VCARD\r\n" +
	"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Bob Example\r\nN:Example;Bob;;;\r\nTEL;TYPE=CELL:+1 555 0100\r\nEND:VCARD\r\n"

const importICS = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n" +
	"BEGIN:VTODO\r\nUID:todo@x\r\nDTSTAMP:20261101T000000Z\r\nSUMMARY:File taxes\r\nDUE:20261215T170000Z\r\nEND:VTODO\r\n" +
	"BEGIN:VJOURNAL\r\nUID:note@x\r\nDTSTAMP:20261101T000000Z\r\nSUMMARY:Ideas\r\nDESCRIPTION:push\r\nEND:VJOURNAL\r\n" +
	"BEGIN:VTODO\r\nUID:broken@x\r\nBEGIN:VALARM\r\nEND:VTODO\r\n" +
	"END:VCALENDAR\r\n"

func TestImportExport(t *testing.T) {
	dir := t.TempDir()
	environ := map[string]string{"EASD_DATA_DIR": dir}
	if r := easd(t, "pw\n", environ, "user", "add", "alice"); r.code != 0 {
		t.Fatal(r)
	}
	vcf := filepath.Join(dir, "contacts.vcf")
	ics := filepath.Join(dir, "tasks.ics")
	if err := os.WriteFile(vcf, []byte(importVCF), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ics, []byte(importICS), 0o600); err != nil {
		t.Fatal(err)
	}
	// The malformed items are named with their line and skipped.
	r := easd(t, "", environ, "import", "alice", vcf, ics)
	if r.code != 0 || !strings.Contains(r.stdout, "imported 4, replaced 0, skipped 2") ||
		!strings.Contains(r.stderr, "contacts.vcf:8:") || !strings.Contains(r.stderr, "tasks.ics:") {
		t.Fatalf("import: %+v", r)
	}
	// Importing again changes nothing.
	if r := easd(t, "", environ, "import", "alice", vcf); r.code != 0 || !strings.Contains(r.stdout, "imported 0, replaced 0") {
		t.Errorf("second import: %+v", r)
	}
	// Export gives the items back.
	r = easd(t, "", environ, "export", "alice", "Contacts")
	if r.code != 0 || strings.Count(r.stdout, "BEGIN:VCARD") != 2 || !strings.Contains(r.stdout, "Ann Example") || !strings.Contains(r.stdout, "+1 555 0100") {
		t.Errorf("export Contacts: %+v", r)
	}
	r = easd(t, "", environ, "export", "alice", "Tasks")
	if r.code != 0 || !strings.Contains(r.stdout, "File taxes") || strings.Contains(r.stdout, "Ideas") {
		t.Errorf("export Tasks: %+v", r)
	}
	if r := easd(t, "", environ, "export", "alice", "Nowhere"); r.code == 0 {
		t.Errorf("export of a missing folder succeeded: %+v", r)
	}
	if r := easd(t, "", environ, "import", "alice"); r.code != 2 {
		t.Errorf("import without files: %+v", r)
	}
}
