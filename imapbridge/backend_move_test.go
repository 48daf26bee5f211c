package imapbridge

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/easd/easd/eas"
)

func TestBackendMove(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		without []imap.Cap
		newUIDs bool // COPYUID is read
	}{
		{"move", nil, true},
		{"copy", []imap.Cap{imap.CapMove}, true},
		{"no-uidplus", []imap.Cap{imap.CapMove, imap.CapUIDPlus}, false},
		{"move-no-uidplus", []imap.Cap{imap.CapUIDPlus}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newBackendEnv(t, PoolOptions{}, BackendOptions{})
			e.b.without = tt.without
			if err := e.other.Create("Archive", nil).Wait(); err != nil {
				t.Fatal(err)
			}
			// Archive has a message already: new UIDs start at 2.
			appendMessage(t, e.other, "Archive", rawMessage(100), time.Time{})
			date := time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)
			for i := range 5 {
				appendMessage(t, e.other, "INBOX", rawMessage(i), date)
			}
			store(t, e.other, "INBOX", 2, imap.StoreFlagsAdd, imap.FlagSeen, "work")
			// Another client flagged message 5 \Deleted: it must survive.
			store(t, e.other, "INBOX", 5, imap.StoreFlagsAdd, imap.FlagDeleted)

			got, err := e.b.Move(ctx10s(t), e.acct, "INBOX", []uint32{4, 2, 77, 2, 0}, "Archive")
			if err != nil {
				t.Fatalf("Move: %v", err)
			}
			want := map[uint32]uint32{2: 2, 4: 3}
			if !tt.newUIDs {
				want = map[uint32]uint32{2: 0, 4: 0}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Move result (-want +got):\n%s", diff)
			}
			if s := e.scan(t, "INBOX", eas.ScanQuery{}); !slices.Equal(s.UIDs, []uint32{1, 3, 5}) {
				t.Errorf("INBOX after Move: %v; want 1 3 5", s.UIDs)
			}
			arch := e.fetchAll(t, "Archive", []uint32{2, 3})
			if len(arch) != 2 {
				t.Fatalf("Archive 2 3: %d messages; want 2", len(arch))
			}
			slices.SortFunc(arch, func(a, b fetched) int { return int(a.Meta.UID) - int(b.Meta.UID) })
			if arch[0].Body != string(rawMessage(2-1)) || arch[1].Body != string(rawMessage(4-1)) {
				t.Errorf("Archive bodies %q; want messages 1 and 3", []string{arch[0].Body, arch[1].Body})
			}
			if m := arch[0].Meta; m.Flags != eas.FlagSeen || !slices.Equal(m.Keywords, []string{"work"}) || !m.Date.Equal(date) {
				t.Errorf("moved message 2: %+v; want \\Seen, keyword work, date %v kept", m, date)
			}
			for _, m := range e.scan(t, "INBOX", eas.ScanQuery{}).Changed {
				if (m.UID == 5) != (m.Flags&eas.FlagDeleted != 0) {
					t.Errorf("message %d flags %b; only 5 should be \\Deleted", m.UID, m.Flags)
				}
			}

			// Only gone UIDs: nothing to do, no error.
			got, err = e.b.Move(ctx10s(t), e.acct, "INBOX", []uint32{2, 4, 99}, "Archive")
			if err != nil || len(got) != 0 {
				t.Errorf("Move of gone UIDs = %v, %v; want empty map", got, err)
			}
		})
	}
}

func TestBackendMoveMissingFolder(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		without []imap.Cap
	}{
		{"move", nil},
		{"copy", []imap.Cap{imap.CapMove}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newBackendEnv(t, PoolOptions{}, BackendOptions{})
			e.b.without = tt.without
			for i := range 3 {
				appendMessage(t, e.other, "INBOX", rawMessage(i), time.Time{})
			}
			_, err := e.b.Move(ctx10s(t), e.acct, "INBOX", []uint32{1, 2}, "Nowhere")
			if !errors.Is(err, eas.ErrMailFolderGone) {
				t.Errorf("Move to a missing folder: %v; want ErrMailFolderGone", err)
			}
			s := e.scan(t, "INBOX", eas.ScanQuery{})
			if !slices.Equal(s.UIDs, []uint32{1, 2, 3}) {
				t.Errorf("INBOX after failed Move: %v; want 1 2 3", s.UIDs)
			}
			for _, m := range s.Changed {
				if m.Flags&eas.FlagDeleted != 0 {
					t.Errorf("message %d flagged \\Deleted by a failed Move", m.UID)
				}
			}
			if _, err := e.b.Status(ctx10s(t), e.acct, "Nowhere"); !errors.Is(err, eas.ErrMailFolderGone) {
				t.Errorf("Move created the destination: Status = %v", err)
			}
			if _, err := e.b.Move(ctx10s(t), e.acct, "Gone", []uint32{1}, "INBOX"); !errors.Is(err, eas.ErrMailFolderGone) {
				t.Errorf("Move from a missing folder: %v; want ErrMailFolderGone", err)
			}
			if _, err := e.b.Move(ctx10s(t), e.acct, "INBOX", []uint32{1}, "INBOX"); err == nil {
				t.Error("Move within INBOX: no error")
			}
		})
	}
}
