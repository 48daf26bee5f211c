package eas

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMailStateRoundTrip(t *testing.T) {
	st := &mailState{Epoch: "ab12", N: 7, Parent: "ab12-6",
		Sent:   sentItems{Adds: []uint32{9, 3, 100000}, Changes: []uint32{2}, Deletes: []uint32{1}, SoftDeletes: []uint32{4, 5}, More: true},
		Filter: 3, UIDValidity: 1234567, ModSeq: 1 << 40,
		Last:  MailStatus{UIDValidity: 1234567, UIDNext: 100001, Messages: 5, HighestModSeq: 1<<40 + 3},
		Items: map[uint32]itemState{2: {Flags: FlagSeen | FlagFlagged, Date: 1700000000, Kw: 77}, 9: {Date: -5}, 100000: {Flags: FlagAnswered}}}
	got, err := unmarshalMailState(st.marshal())
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(st, got); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
	if got.key() != "ab12-7" || got.nextKey() != "ab12-8" {
		t.Errorf("keys %s %s", got.key(), got.nextKey())
	}
	for _, b := range [][]byte{nil, {}, {9}, st.marshal()[:10]} {
		if _, err := unmarshalMailState(b); err == nil {
			t.Errorf("unmarshal of %x succeeded", b)
		}
	}
}

// FuzzMailState checks that no stored blob, however damaged, makes the
// decoder panic or loop (a corrupt state must only mean "start over").
func FuzzMailState(f *testing.F) {
	st := &mailState{Epoch: "e", N: 1, Items: map[uint32]itemState{1: {Flags: 1, Date: 2, Kw: 3}}, Sent: sentItems{Adds: []uint32{1}}}
	f.Add(st.marshal())
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := unmarshalMailState(b)
		if err != nil {
			return
		}
		again, err := unmarshalMailState(got.marshal())
		if err != nil {
			t.Fatalf("re-decoding a decoded state: %v", err)
		}
		if len(again.Items) != len(got.Items) {
			t.Fatalf("items %d != %d", len(again.Items), len(got.Items))
		}
	})
}

func TestFolderMapRenames(t *testing.T) {
	var m folderMap
	m.assign([]MailFolder{{Name: "INBOX", UIDValidity: 1}, {Name: "Work", NoSelect: true}, {Name: "Work.A", Parent: "Work", UIDValidity: 2}, {Name: "B", UIDValidity: 3}})
	for i := range m.Entries { // as hierarchy() records the listing
		if m.Entries[i].Name == "Work.A" {
			m.Entries[i].Parent = "Work"
		}
	}
	ids := func() map[string]string {
		out := map[string]string{}
		for _, e := range m.Entries {
			out[e.Name] = e.ID
		}
		return out
	}
	before := ids()
	// B renamed to C (same UIDVALIDITY); the \Noselect Work renamed to Job,
	// which moved its child; a new folder D.
	m.assign([]MailFolder{{Name: "INBOX", UIDValidity: 1}, {Name: "Job", NoSelect: true}, {Name: "Job.A", Parent: "Job", UIDValidity: 2}, {Name: "C", UIDValidity: 3}, {Name: "D", UIDValidity: 4}})
	after := ids()
	want := map[string]string{"INBOX": before["INBOX"], "Job": before["Work"], "Job.A": before["Work.A"], "C": before["B"], "D": "5"}
	if d := cmp.Diff(want, after); d != "" {
		t.Errorf("ids after renames (-want +got):\n%s", d)
	}
	// A vanished folder's id is never reused.
	m.assign([]MailFolder{{Name: "INBOX", UIDValidity: 1}})
	m.assign([]MailFolder{{Name: "INBOX", UIDValidity: 1}, {Name: "E", UIDValidity: 9}})
	if id := ids()["E"]; id != "6" {
		t.Errorf("new folder got id %s, want 6", id)
	}
}

func TestParseIDs(t *testing.T) {
	for _, bad := range []string{"", ":", "a:", ":5", "5:0", "5:x", "5:99999999999", "5"} {
		if _, _, ok := parseServerID(bad); ok {
			t.Errorf("parseServerID(%q) accepted", bad)
		}
	}
	if f, u, ok := parseServerID("12:34"); !ok || f != "12" || u != 34 {
		t.Errorf("parseServerID(12:34) = %s %d %v", f, u, ok)
	}
	for _, bad := range []string{"", "5:1", "5:1:", ":1:2", "a:b:c"} {
		if _, _, _, ok := parseFileRef(bad); ok {
			t.Errorf("parseFileRef(%q) accepted", bad)
		}
	}
	if f, u, p, ok := parseFileRef("5:7:2.1"); !ok || f != "5" || u != 7 || p != "2.1" {
		t.Errorf("parseFileRef = %s %d %s %v", f, u, p, ok)
	}
}
