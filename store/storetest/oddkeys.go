package storetest

import (
	"errors"
	"testing"

	"github.com/easd/easd/store"
)

// testSyncStateOddKeys: sync keys and collection ids come from clients;
// one that no state can have (invalid UTF-8, NUL) is ErrNotFound, not a
// database error (found by FuzzHandler on PostgreSQL).
func testSyncStateOddKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	d, err := s.TouchDevice(ctx, store.Device{UserID: u.ID, DeviceID: "D1", DeviceType: "iPhone"})
	if err != nil {
		t.Fatal(err)
	}
	for _, odd := range []string{"\x89", "a\x00b", "\xc3\x28"} {
		if _, err := s.SyncState(ctx, d.ID, "c1", odd); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SyncState(key %q) = %v, want ErrNotFound", odd, err)
		}
		if _, err := s.SyncState(ctx, d.ID, odd, "1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SyncState(collection %q) = %v, want ErrNotFound", odd, err)
		}
		if _, err := s.LatestSyncState(ctx, d.ID, odd); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("LatestSyncState(collection %q) = %v, want ErrNotFound", odd, err)
		}
	}
}
