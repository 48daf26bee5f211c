package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/easd/easd/store"
)

// testAddDeviceLimit checks AddDevice: the per-user bound holds under
// concurrent first contacts, a device already registered is touched at the
// limit, other users' devices do not count, 0 is unbounded and an unknown
// user is ErrNotFound.
func testAddDeviceLimit(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustUser(t, s, "limited")
	other := mustUser(t, s, "other")
	// Devices of another user do not count towards u's limit.
	for i := range 3 {
		if _, err := s.AddDevice(ctx, store.Device{UserID: other.ID, DeviceID: fmt.Sprintf("o%d", i)}, 0); err != nil {
			t.Fatalf("AddDevice(other, o%d, 0): %v", i, err)
		}
	}

	const goroutines, limit = 20, 5
	var wg sync.WaitGroup
	var mu sync.Mutex
	var added, refused int
	var others []error
	for i := range goroutines {
		wg.Go(func() {
			d := store.Device{UserID: u.ID, DeviceID: fmt.Sprintf("phone%02d", i), DeviceType: "iPhone",
				Access: store.DeviceQuarantined}
			_, err := s.AddDevice(ctx, d, limit)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				added++
			case errors.Is(err, store.ErrLimit):
				refused++
			default:
				others = append(others, err)
			}
		})
	}
	wg.Wait()
	if len(others) > 0 {
		t.Fatalf("AddDevice: unexpected errors %v", others)
	}
	if added != limit || refused != goroutines-limit {
		t.Errorf("AddDevice x%d with limit %d: %d added, %d ErrLimit; want %d, %d", goroutines, limit, added, refused, limit, goroutines-limit)
	}
	devs, err := s.Devices(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != limit {
		t.Fatalf("Devices after the race: %d, want %d", len(devs), limit)
	}
	for _, d := range devs {
		if d.Access != store.DeviceQuarantined || d.DeviceType != "iPhone" {
			t.Errorf("device %s: access %q type %q, want the fields AddDevice was given", d.DeviceID, d.Access, d.DeviceType)
		}
	}

	// At the limit, a registered device is still touched (and keeps its
	// access state), a new one is refused without a write.
	known := devs[0]
	got, err := s.AddDevice(ctx, store.Device{UserID: u.ID, DeviceID: known.DeviceID, DeviceType: "iPad",
		UserAgent: "ua2", ProtocolVersion: "14.1", Access: store.DeviceAllowed}, limit)
	if err != nil {
		t.Fatalf("AddDevice(known %s) at the limit: %v", known.DeviceID, err)
	}
	if got.ID != known.ID || got.DeviceType != "iPad" || got.UserAgent != "ua2" || got.ProtocolVersion != "14.1" {
		t.Errorf("AddDevice(known) = %+v, want id %d updated to iPad/ua2/14.1", got, known.ID)
	}
	if got.Access != store.DeviceQuarantined {
		t.Errorf("AddDevice(known) access = %q, want it kept (%q)", got.Access, store.DeviceQuarantined)
	}
	if got.LastSeen.Before(known.LastSeen) {
		t.Errorf("AddDevice(known) LastSeen %v before %v", got.LastSeen, known.LastSeen)
	}
	_, err = s.AddDevice(ctx, store.Device{UserID: u.ID, DeviceID: "late"}, limit)
	wantErr(t, "AddDevice(new) at the limit", err, store.ErrLimit)
	if _, err := s.Device(ctx, u.ID, "late"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused device was written: Device(late) error %v", err)
	}
	// A larger limit admits it; 0 (and negative) means no bound.
	if _, err := s.AddDevice(ctx, store.Device{UserID: u.ID, DeviceID: "late"}, limit+1); err != nil {
		t.Errorf("AddDevice(late, %d): %v", limit+1, err)
	}
	for i, bound := range []int{0, -1} {
		if _, err := s.AddDevice(ctx, store.Device{UserID: u.ID, DeviceID: fmt.Sprintf("free%d", i)}, bound); err != nil {
			t.Errorf("AddDevice(free%d, %d): %v", i, bound, err)
		}
	}
	if devs, err := s.Devices(ctx, u.ID); err != nil || len(devs) != limit+3 {
		t.Errorf("Devices = %d (%v), want %d", len(devs), err, limit+3)
	}

	// Unknown user, bounded or not.
	for _, bound := range []int{0, 5} {
		_, err := s.AddDevice(ctx, store.Device{UserID: 1 << 40, DeviceID: "x"}, bound)
		wantErr(t, fmt.Sprintf("AddDevice(unknown user, %d)", bound), err, store.ErrNotFound)
	}
	// Invalid values are refused as by TouchDevice.
	if _, err := s.AddDevice(ctx, store.Device{UserID: u.ID}, 0); err == nil {
		t.Error("AddDevice with empty DeviceID succeeded")
	}
}
