package wbxml_test

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/easd/easd/wbxml"
)

// readTSV returns the data rows of a TSV file.
func readTSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows [][]string
	sc := bufio.NewScanner(f)
	for first := true; sc.Scan(); first = false {
		if !first && sc.Text() != "" {
			rows = append(rows, strings.Split(sc.Text(), "\t"))
		}
	}
	return rows
}

func hexByte(t *testing.T, s string) byte {
	t.Helper()
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 8)
	if err != nil {
		t.Fatal(err)
	}
	return byte(v)
}

// TestCodePageTable checks every row of codepages.tsv against the generated
// tables in both directions.
func TestCodePageTable(t *testing.T) {
	rows := readTSV(t, "codepages.tsv")
	if len(rows) != 644 || len(wbxml.KnownTags()) != 644 {
		t.Fatalf("%d rows, %d known tags; want 644", len(rows), len(wbxml.KnownTags()))
	}
	for _, r := range rows {
		p, _ := strconv.Atoi(r[0])
		ns, tok, name := r[1], hexByte(t, r[2]), r[3]
		want := wbxml.NewTag(wbxml.Page(p), tok)
		if got, ok := wbxml.LookupTag(ns, name); !ok || got != want {
			t.Errorf("LookupTag(%s, %s) = %v, %v; want %v", ns, name, got, ok, want)
		}
		if want.Name() != name || want.Namespace() != ns || !want.Known() || !want.Valid() {
			t.Errorf("%v: Name %q Namespace %q", want, want.Name(), want.Namespace())
		}
		if got, ok := wbxml.ParseTag(want.String()); !ok || got != want {
			t.Errorf("ParseTag(%q) = %v, %v", want.String(), got, ok)
		}
		if got, ok := wbxml.LookupTag(strings.ToLower(ns)+":", name); !ok || got != want {
			t.Errorf("LookupTag is not namespace-case-insensitive for %v", want)
		}
	}
	for _, r := range readTSV(t, "aliases.tsv") {
		p, _ := strconv.Atoi(r[0])
		want := wbxml.NewTag(wbxml.Page(p), hexByte(t, r[1]))
		switch r[2] {
		case "name", "libwbxml":
			if got, ok := wbxml.LookupTag(wbxml.Page(p).Namespace(), r[3]); !ok || got != want {
				t.Errorf("alias %s: LookupTag = %v, %v; want %v", r[3], got, ok, want)
			}
			if r[2] == "libwbxml" && wbxml.LibwbxmlName(want) != r[3] {
				t.Errorf("LibwbxmlName(%v) = %q, want %q", want, wbxml.LibwbxmlName(want), r[3])
			}
		case "token":
			if wbxml.NewTag(wbxml.Page(p), hexByte(t, r[3])).Known() {
				t.Errorf("alternative token %s of %v is also a defined tag", r[3], want)
			}
		default:
			t.Errorf("unknown alias kind %q", r[2])
		}
	}
}

// TestTagAPI covers the Tag and Page helpers, including unknown values.
func TestTagAPI(t *testing.T) {
	if wbxml.AirSyncSync != 0x0005 || wbxml.FindPicture != 0x1922 || wbxml.ContactsBusinessAddressCity != 0x010D || wbxml.EmailReplyTo != 0x0219 {
		t.Error("generated constants have wrong values")
	}
	for _, tc := range []struct {
		in   string
		want wbxml.Tag
		ok   bool
	}{
		{"AirSync:Sync", wbxml.AirSyncSync, true},
		{"airsyncbase:Body", wbxml.AirSyncBaseBody, true},
		{"Gal:DisplayName", wbxml.GALDisplayName, true},
		{"Calendar:Attendee_Email", wbxml.CalendarEmail, true},
		{"Contacts:BusinessCity", wbxml.ContactsBusinessAddressCity, true},
		{"Tasks:UTCDueDate", wbxml.TasksUtcDueDate, true},
		{"Email:ReplyTo", wbxml.EmailReplyTo, true},
		{"AirSync:0x3F", wbxml.NewTag(0, 0x3F), true},
		{"0x1F:0x05", wbxml.NewTag(0x1F, 0x05), true},
		{"AirSync:0x04", 0, false},
		{"AirSync:Nope", 0, false},
		{"Nope:Sync", 0, false},
		{"Sync", 0, false},
	} {
		got, ok := wbxml.ParseTag(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseTag(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if p, ok := wbxml.LookupPage("Find:"); !ok || p != wbxml.PageFind || p.String() != "Find" || !p.Known() {
		t.Errorf("LookupPage(Find:) = %v, %v", p, ok)
	}
	if p := wbxml.Page(0x30); p.Known() || p.Namespace() != "" || p.String() != "0x30" {
		t.Errorf("unknown page: %q %q", p.Namespace(), p.String())
	}
	u := wbxml.NewTag(wbxml.PageNotes, 0x7F) // content bit ignored
	if u.Token() != 0x3F || u.Known() || u.Name() != "" || u.String() != "Notes:0x3F" || !u.Valid() {
		t.Errorf("unknown tag %v: token %x", u, u.Token())
	}
	if wbxml.LibwbxmlName(wbxml.ComposeMailMime) != "MIME" || wbxml.LibwbxmlName(wbxml.AirSyncSync) != "Sync" {
		t.Error("LibwbxmlName")
	}
	if !wbxml.IsLibwbxmlBinary(wbxml.GALData) || wbxml.IsLibwbxmlBinary(wbxml.AirSyncBaseData) {
		t.Error("IsLibwbxmlBinary")
	}
	if a := testing.AllocsPerRun(100, func() { wbxml.LookupTag("AirSyncBase", "BodyPreference") }); a != 0 {
		t.Errorf("LookupTag allocates %v", a)
	}
}
