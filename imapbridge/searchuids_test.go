package imapbridge

import (
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/google/go-cmp/cmp"
)

// TestSearchUIDs: what a server claims in a UID SEARCH answer cannot make
// the bridge panic, loop or allocate beyond the folder's message count.
func TestSearchUIDs(t *testing.T) {
	set := func(rs ...imap.UIDRange) *imap.SearchData { return &imap.SearchData{All: imap.UIDSet(rs)} }
	for _, tc := range []struct {
		name string
		data *imap.SearchData
		max  uint32
		want []imap.UID
	}{
		{"nil", nil, 10, nil},
		{"plain", set(imap.UIDRange{Start: 1, Stop: 3}, imap.UIDRange{Start: 7, Stop: 7}), 10, []imap.UID{1, 2, 3, 7}},
		{"zero and star skipped", set(imap.UIDRange{Start: 0, Stop: 0}, imap.UIDRange{Start: 5, Stop: 0}, imap.UIDRange{Start: 2, Stop: 2}), 10, []imap.UID{2}},
		{"last UID ends", set(imap.UIDRange{Start: 4294967294, Stop: 4294967295}), 10, []imap.UID{4294967294, 4294967295}},
		{"huge range capped", set(imap.UIDRange{Start: 1, Stop: 4000000000}), 5, []imap.UID{1, 2, 3, 4, 5}},
		{"reversed", set(imap.UIDRange{Start: 9, Stop: 8}), 10, []imap.UID{8, 9}},
	} {
		if got := searchUIDs(tc.data, tc.max); !cmp.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
