// Package storetest is the conformance suite that every store.Store
// implementation runs from its own tests, plus shared migration tests.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/easd/easd/store"
	"github.com/google/go-cmp/cmp"
)

// Run runs the conformance suite against the implementation that open
// returns. open is called once per subtest and must return a fresh, empty,
// migrated store that is closed at t's cleanup. Subtests run in parallel.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Ping", testPing},
		{"CreateUser", testCreateUser},
		{"CreateUserExists", testCreateUserExists},
		{"UserNotFound", testUserNotFound},
		{"Users", testUsers},
		{"SetPassword", testSetPassword},
		{"SetDisabled", testSetDisabled},
		{"DeleteUserCascades", testDeleteUser},
		{"TouchDevice", testTouchDevice},
		{"TouchDeviceUnknownUser", testTouchDeviceUnknownUser},
		{"Devices", testDevices},
		{"UpdateDevice", testUpdateDevice},
		{"SetDeviceAccess", testSetDeviceAccess},
		{"SetDeviceWipe", testSetDeviceWipe},
		{"UpdateDeviceKeepsAdminState", testUpdateDeviceKeepsAdminState},
		{"PolicyKeyRange", testPolicyKey},
		{"DeleteDeviceCascades", testDeleteDevice},
		{"SyncState", testSyncState},
		{"SyncStateKeepsNewestTwo", testSyncStateKeepsTwo},
		{"SyncStateReplace", testSyncStateReplace},
		{"DeleteSyncStates", testDeleteSyncStates},
		{"ConcurrentWriters", testConcurrentWriters},
		{"ContextCanceled", testContextCanceled},
		{"UserSettings", testUserSettings},
		{"InvalidValues", testInvalidValues},
		{"Collections", testCollections},
		{"CollectionExists", testCollectionExists},
		{"CollectionNotFound", testCollectionNotFound},
		{"UpdateCollection", testUpdateCollection},
		{"DeleteCollectionCascades", testDeleteCollection},
		{"DeleteUserCascadesCollections", testDeleteUserCollections},
		{"PutItem", testPutItem},
		{"ItemUID", testItemUID},
		{"ItemModSeq", testItemModSeq},
		{"ItemChanges", testItemChanges},
		{"ItemTimes", testItemTimes},
		{"ConcurrentPutItem", testConcurrentPutItem},
		{"ItemIsolation", testItemIsolation},
		{"ItemsContextCanceled", testItemsContextCanceled},
		{"AddDeviceLimit", testAddDeviceLimit},     // devicelimit.go
		{"Audit", testAudit},                       // admin.go
		{"AppPasswords", testAppPasswords},         // admin.go
		{"SyncStateOddKeys", testSyncStateOddKeys}, // oddkeys.go
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// clock brackets store calls so their timestamps can be checked.
type clock struct{ start time.Time }

func startClock() clock { return clock{time.Now().UTC().Truncate(time.Microsecond)} }

// check reports an error unless got is UTC, microsecond-precise and lies
// between the clock's start and now.
func (c clock) check(t *testing.T, what string, got time.Time) {
	t.Helper()
	end := time.Now().UTC()
	if got.Location() != time.UTC {
		t.Errorf("%s = %v: location %v, want UTC", what, got, got.Location())
	}
	if got.Before(c.start) || got.After(end) {
		t.Errorf("%s = %v, want within [%v, %v]", what, got, c.start, end)
	}
	if got.Nanosecond()%1000 != 0 {
		t.Errorf("%s = %v, want microsecond precision", what, got)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want %v", what, err, target)
	}
}

func mustUser(t *testing.T, s store.Store, name string) store.User {
	t.Helper()
	u, err := s.CreateUser(t.Context(), name, "hash-"+name)
	if err != nil {
		t.Fatalf("CreateUser(%q): %v", name, err)
	}
	return u
}

func mustTouch(t *testing.T, s store.Store, d store.Device) store.Device {
	t.Helper()
	got, err := s.TouchDevice(t.Context(), d)
	if err != nil {
		t.Fatalf("TouchDevice(%q): %v", d.DeviceID, err)
	}
	return got
}

func mustPut(t *testing.T, s store.Store, deviceID int64, collection, key, data string) {
	t.Helper()
	st := store.SyncState{DeviceID: deviceID, Collection: collection, SyncKey: key, Data: []byte(data)}
	if err := s.PutSyncState(t.Context(), st); err != nil {
		t.Fatalf("PutSyncState(%d, %q, %q): %v", deviceID, collection, key, err)
	}
}

// wantState checks that the state exists with data, or is absent when
// data is "-".
func wantState(t *testing.T, s store.Store, deviceID int64, collection, key, data string) {
	t.Helper()
	got, err := s.SyncState(t.Context(), deviceID, collection, key)
	if data == "-" {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SyncState(%d, %q, %q) = %q, %v; want ErrNotFound", deviceID, collection, key, got.Data, err)
		}
		return
	}
	if err != nil {
		t.Errorf("SyncState(%d, %q, %q): %v", deviceID, collection, key, err)
		return
	}
	if string(got.Data) != data || got.DeviceID != deviceID || got.Collection != collection || got.SyncKey != key {
		t.Errorf("SyncState(%d, %q, %q) = %+v, want data %q", deviceID, collection, key, got, data)
	}
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func testCreateUser(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := startClock()
	u, err := s.CreateUser(ctx, "alice", "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA")
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if u.ID == 0 || u.Name != "alice" || u.PasswordHash != "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA" || u.Disabled {
		t.Errorf("CreateUser = %+v", u)
	}
	c.check(t, "CreatedAt", u.CreatedAt)
	if !u.UpdatedAt.Equal(u.CreatedAt) {
		t.Errorf("UpdatedAt %v != CreatedAt %v", u.UpdatedAt, u.CreatedAt)
	}
	got, err := s.User(ctx, "alice")
	if err != nil {
		t.Fatalf("User: %v", err)
	}
	if diff := cmp.Diff(u, got); diff != "" {
		t.Errorf("User differs from CreateUser (-create +get):\n%s", diff)
	}
	// IMAP pass-through users have no hash.
	b, err := s.CreateUser(ctx, "bob", "")
	if err != nil {
		t.Fatalf("CreateUser(bob, no hash): %v", err)
	}
	if b.ID == u.ID {
		t.Errorf("two users share ID %d", b.ID)
	}
}

func testCreateUserExists(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	_, err := s.CreateUser(ctx, "alice", "other")
	wantErr(t, "CreateUser(duplicate)", err, store.ErrExists)
	got, err := s.User(ctx, "alice")
	if err != nil {
		t.Fatalf("User: %v", err)
	}
	if diff := cmp.Diff(u, got); diff != "" {
		t.Errorf("failed CreateUser changed the user (-want +got):\n%s", diff)
	}
}

func testUserNotFound(t *testing.T, s store.Store) {
	_, err := s.User(t.Context(), "nobody")
	wantErr(t, "User(nobody)", err, store.ErrNotFound)
}

func testUsers(t *testing.T, s store.Store) {
	us, err := s.Users(t.Context())
	if err != nil || len(us) != 0 {
		t.Fatalf("Users on empty store = %v, %v; want none", us, err)
	}
	var want []store.User
	for _, n := range []string{"carol", "alice", "_x", "bob", "Zed"} {
		want = append(want, mustUser(t, s, n))
	}
	// Byte order, regardless of the database's collation.
	sort.Slice(want, func(i, j int) bool { return want[i].Name < want[j].Name })
	us, err = s.Users(t.Context())
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	if diff := cmp.Diff(want, us); diff != "" {
		t.Errorf("Users (-want +got):\n%s", diff)
	}
}

func testSetPassword(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	c := startClock()
	if err := s.SetPassword(ctx, "alice", "new-hash"); err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	got, err := s.User(ctx, "alice")
	if err != nil {
		t.Fatalf("User: %v", err)
	}
	want := u
	want.PasswordHash = "new-hash"
	want.UpdatedAt = got.UpdatedAt
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after SetPassword (-want +got):\n%s", diff)
	}
	c.check(t, "UpdatedAt", got.UpdatedAt)
	wantErr(t, "SetPassword(nobody)", s.SetPassword(ctx, "nobody", "x"), store.ErrNotFound)
	if _, err := s.User(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetPassword(nobody) created a user: %v", err)
	}
}

func testSetDisabled(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustUser(t, s, "alice")
	mustUser(t, s, "bob")
	for _, disabled := range []bool{true, true, false, true} {
		if err := s.SetDisabled(ctx, "alice", disabled); err != nil {
			t.Fatalf("SetDisabled(%v): %v", disabled, err)
		}
		got, err := s.User(ctx, "alice")
		if err != nil {
			t.Fatalf("User: %v", err)
		}
		if got.Disabled != disabled {
			t.Errorf("after SetDisabled(%v): Disabled = %v", disabled, got.Disabled)
		}
	}
	if b, err := s.User(ctx, "bob"); err != nil || b.Disabled {
		t.Errorf("bob = %+v, %v; want enabled", b, err)
	}
	wantErr(t, "SetDisabled(nobody)", s.SetDisabled(ctx, "nobody", true), store.ErrNotFound)
}

func testDeleteUser(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice := mustUser(t, s, "alice")
	bob := mustUser(t, s, "bob")
	a1 := mustTouch(t, s, store.Device{UserID: alice.ID, DeviceID: "a1"})
	a2 := mustTouch(t, s, store.Device{UserID: alice.ID, DeviceID: "a2"})
	b1 := mustTouch(t, s, store.Device{UserID: bob.ID, DeviceID: "a1"})
	mustPut(t, s, a1.ID, "1", "k1", "alice-1")
	mustPut(t, s, a2.ID, "", "k1", "alice-2")
	mustPut(t, s, b1.ID, "1", "k1", "bob-1")

	if err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	_, err := s.User(ctx, "alice")
	wantErr(t, "User after delete", err, store.ErrNotFound)
	if ds, err := s.Devices(ctx, alice.ID); err != nil || len(ds) != 0 {
		t.Errorf("Devices of deleted user = %v, %v; want none", ds, err)
	}
	_, err = s.Device(ctx, alice.ID, "a1")
	wantErr(t, "Device of deleted user", err, store.ErrNotFound)
	wantState(t, s, a1.ID, "1", "k1", "-")
	wantState(t, s, a2.ID, "", "k1", "-")

	// Bob is untouched.
	if got, err := s.Device(ctx, bob.ID, "a1"); err != nil || got.ID != b1.ID {
		t.Errorf("bob's device = %+v, %v", got, err)
	}
	wantState(t, s, b1.ID, "1", "k1", "bob-1")

	wantErr(t, "DeleteUser twice", s.DeleteUser(ctx, "alice"), store.ErrNotFound)
	again := mustUser(t, s, "alice")
	if ds, err := s.Devices(ctx, again.ID); err != nil || len(ds) != 0 {
		t.Errorf("Devices of re-created user = %v, %v; want none", ds, err)
	}
}

func testTouchDevice(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	c := startClock()
	d1 := mustTouch(t, s, store.Device{
		UserID: u.ID, DeviceID: "ApplDNXXXX", DeviceType: "iPhone",
		UserAgent: "Apple-iPhone13C2/1901.65", ProtocolVersion: "14.1", Model: "iPhone13,2",
	})
	want := store.Device{
		ID: d1.ID, UserID: u.ID, DeviceID: "ApplDNXXXX", DeviceType: "iPhone",
		UserAgent: "Apple-iPhone13C2/1901.65", ProtocolVersion: "14.1", Model: "iPhone13,2",
		Access: store.DeviceAllowed, Wipe: store.WipeNone,
		FirstSeen: d1.FirstSeen, LastSeen: d1.FirstSeen,
	}
	if d1.ID == 0 {
		t.Errorf("new device has ID 0")
	}
	if diff := cmp.Diff(want, d1); diff != "" {
		t.Errorf("first TouchDevice (-want +got):\n%s", diff)
	}
	c.check(t, "FirstSeen", d1.FirstSeen)
	if got, err := s.Device(ctx, u.ID, "ApplDNXXXX"); err != nil || !cmp.Equal(got, d1) {
		t.Errorf("Device = %+v, %v; want %+v", got, err, d1)
	}

	// The administrator blocks it and provisioning sets a policy key.
	blocked := d1
	blocked.Access, blocked.PolicyKey, blocked.FriendlyName = store.DeviceBlocked, 1234, "Alice's phone"
	if err := s.UpdateDevice(ctx, blocked); err != nil {
		t.Fatalf("UpdateDevice: %v", err)
	}
	if err := s.SetDeviceAccess(ctx, d1.ID, store.DeviceBlocked); err != nil {
		t.Fatalf("SetDeviceAccess: %v", err)
	}

	time.Sleep(2 * time.Millisecond)
	c2 := startClock()
	d2 := mustTouch(t, s, store.Device{
		UserID: u.ID, DeviceID: "ApplDNXXXX", DeviceType: "iPad", UserAgent: "Apple-iPad/2001",
		ProtocolVersion: "16.1", Access: store.DeviceQuarantined, Model: "ignored on update",
	})
	want = blocked
	want.DeviceType, want.UserAgent, want.ProtocolVersion = "iPad", "Apple-iPad/2001", "16.1"
	want.LastSeen = d2.LastSeen
	if diff := cmp.Diff(want, d2); diff != "" {
		t.Errorf("second TouchDevice (-want +got):\n%s", diff)
	}
	c2.check(t, "LastSeen", d2.LastSeen)
	if !d2.LastSeen.After(d1.LastSeen) {
		t.Errorf("LastSeen %v not after %v", d2.LastSeen, d1.LastSeen)
	}
	if got, err := s.Device(ctx, u.ID, "ApplDNXXXX"); err != nil || !cmp.Equal(got, d2) {
		t.Errorf("Device = %+v, %v; want %+v", got, err, d2)
	}

	// A new device may start in another access state, with other fields.
	q := mustTouch(t, s, store.Device{UserID: u.ID, DeviceID: "q", Access: store.DeviceQuarantined, PolicyKey: 7})
	if q.Access != store.DeviceQuarantined || q.PolicyKey != 7 || q.ID == d1.ID {
		t.Errorf("new quarantined device = %+v", q)
	}
}

func testTouchDeviceUnknownUser(t *testing.T, s store.Store) {
	_, err := s.TouchDevice(t.Context(), store.Device{UserID: 1 << 40, DeviceID: "x"})
	wantErr(t, "TouchDevice(unknown user)", err, store.ErrNotFound)
}

func testDevices(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice := mustUser(t, s, "alice")
	bob := mustUser(t, s, "bob")
	var want []store.Device
	for _, id := range []string{"b", "a", "C", "_"} {
		want = append(want, mustTouch(t, s, store.Device{UserID: alice.ID, DeviceID: id, DeviceType: "t-" + id}))
	}
	sort.Slice(want, func(i, j int) bool { return want[i].DeviceID < want[j].DeviceID })
	bobA := mustTouch(t, s, store.Device{UserID: bob.ID, DeviceID: "a"})

	got, err := s.Devices(ctx, alice.ID)
	if err != nil {
		t.Fatalf("Devices: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Devices(alice) (-want +got):\n%s", diff)
	}
	got, err = s.Devices(ctx, bob.ID)
	if err != nil || len(got) != 1 || got[0].ID != bobA.ID || bobA.ID == want[1].ID {
		t.Errorf("Devices(bob) = %+v, %v; want only %+v", got, err, bobA)
	}
	if got, err := s.Devices(ctx, 1<<40); err != nil || len(got) != 0 {
		t.Errorf("Devices(unknown user) = %v, %v; want none", got, err)
	}
	_, err = s.Device(ctx, alice.ID, "zz")
	wantErr(t, "Device(absent)", err, store.ErrNotFound)
	_, err = s.Device(ctx, bob.ID, "b")
	wantErr(t, "Device(other user's)", err, store.ErrNotFound)
}

func testUpdateDevice(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	d := mustTouch(t, s, store.Device{UserID: u.ID, DeviceID: "dev"})
	other := mustTouch(t, s, store.Device{UserID: u.ID, DeviceID: "other", Model: "keep"})
	// Access and Wipe are the administrator's; UpdateDevice keeps them.
	if err := s.SetDeviceAccess(ctx, d.ID, store.DeviceQuarantined); err != nil {
		t.Fatalf("SetDeviceAccess: %v", err)
	}
	if _, err := s.SetDeviceWipe(ctx, d.ID, store.WipePending); err != nil {
		t.Fatalf("SetDeviceWipe: %v", err)
	}
	for i, upd := range []store.Device{
		{
			DeviceType: "SmartPhone", UserAgent: "Android-Mail/2024", Model: "Pixel 8",
			IMEI: "350000000000001", FriendlyName: "Work phone", OS: "Android 14",
			OSLanguage: "de-DE", PhoneNumber: "+4930123456", MobileOperator: "Telekom",
			ProtocolVersion: "16.1", PolicyKey: 0xFFFFFFFF, PolicyHash: "0123abcd",
			Access: store.DeviceAllowed, Wipe: store.WipeNone,
		},
		{PolicyKey: 0x80000000, Access: store.DeviceBlocked, Wipe: store.WipeAccountOnly},
		{PolicyKey: 1, Model: "x", Access: store.DeviceAllowed, Wipe: store.WipeAcknowledged},
		// Invalid or zero admin fields are ignored, not rejected.
		{DeviceType: "t", Access: "bogus", Wipe: "bogus"},
		{},
	} {
		want := upd
		want.ID, want.UserID, want.DeviceID, want.FirstSeen, want.LastSeen = d.ID, d.UserID, d.DeviceID, d.FirstSeen, d.LastSeen
		want.Access, want.Wipe = store.DeviceQuarantined, store.WipePending
		// Identity and timestamps passed in are ignored.
		in := upd
		in.ID, in.UserID, in.DeviceID, in.FirstSeen, in.LastSeen = d.ID, 1<<40, "renamed", time.Unix(1, 0), time.Unix(2, 0)
		if err := s.UpdateDevice(ctx, in); err != nil {
			t.Fatalf("UpdateDevice #%d: %v", i, err)
		}
		got, err := s.Device(ctx, u.ID, "dev")
		if err != nil {
			t.Fatalf("Device #%d: %v", i, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("after UpdateDevice #%d (-want +got):\n%s", i, diff)
		}
	}
	if got, err := s.Device(ctx, u.ID, "other"); err != nil || !cmp.Equal(got, other) {
		t.Errorf("other device changed: %+v, %v; want %+v", got, err, other)
	}
	err := s.UpdateDevice(ctx, store.Device{ID: 1 << 40, Access: store.DeviceAllowed})
	wantErr(t, "UpdateDevice(absent)", err, store.ErrNotFound)
}

func testSetDeviceAccess(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	d := mustTouch(t, s, store.Device{UserID: u.ID, DeviceID: "dev", Model: "m", PolicyKey: 9})
	other := mustTouch(t, s, store.Device{UserID: u.ID, DeviceID: "other"})
	for _, a := range []store.DeviceAccess{store.DeviceBlocked, store.DeviceQuarantined, store.DeviceBlocked, store.DeviceAllowed} {
		if err := s.SetDeviceAccess(ctx, d.ID, a); err != nil {
			t.Fatalf("SetDeviceAccess(%q): %v", a, err)
		}
		got, err := s.Device(ctx, u.ID, "dev")
		if err != nil {
			t.Fatalf("Device: %v", err)
		}
		want := d
		want.Access = a
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("after SetDeviceAccess(%q) (-want +got):\n%s", a, diff)
		}
	}
	if err := s.SetDeviceAccess(ctx, d.ID, "bogus"); err == nil {
		t.Errorf("SetDeviceAccess(bogus) succeeded")
	}
	if err := s.SetDeviceAccess(ctx, d.ID, ""); err == nil {
		t.Errorf("SetDeviceAccess(\"\") succeeded")
	}
	if got, err := s.Device(ctx, u.ID, "dev"); err != nil || got.Access != store.DeviceAllowed {
		t.Errorf("after invalid SetDeviceAccess: Access = %q, %v; want %q", got.Access, err, store.DeviceAllowed)
	}
	if got, err := s.Device(ctx, u.ID, "other"); err != nil || !cmp.Equal(got, other) {
		t.Errorf("other device changed: %+v, %v; want %+v", got, err, other)
	}
	wantErr(t, "SetDeviceAccess(absent)", s.SetDeviceAccess(ctx, 1<<40, store.DeviceBlocked), store.ErrNotFound)
}

func testSetDeviceWipe(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	d := mustTouch(t, s, store.Device{UserID: u.ID, DeviceID: "dev", Model: "m", PolicyKey: 9, Access: store.DeviceBlocked})
	other := mustTouch(t, s, store.Device{UserID: u.ID, DeviceID: "other"})
	for i, step := range []struct {
		to      store.WipeState
		from    []store.WipeState
		changed bool
		want    store.WipeState
	}{
		{to: store.WipePending, changed: true, want: store.WipePending},                                                           // unconditional
		{to: store.WipeAccountOnly, changed: true, want: store.WipeAccountOnly},                                                   // unconditional over a state
		{to: store.WipeAcknowledged, from: []store.WipeState{store.WipeAccountOnly}, changed: true, want: store.WipeAcknowledged}, // match
		{to: store.WipeNone, from: []store.WipeState{store.WipePending, store.WipeAccountOnly}, want: store.WipeAcknowledged},     // mismatch
		{to: store.WipePending, from: []store.WipeState{store.WipeNone}, want: store.WipeAcknowledged},                            // mismatch
		{to: store.WipeNone, from: []store.WipeState{store.WipePending, store.WipeAcknowledged}, changed: true, want: store.WipeNone},
		{to: store.WipePending, from: []store.WipeState{store.WipeNone}, changed: true, want: store.WipePending}, // match on ""
		{to: store.WipePending, from: []store.WipeState{store.WipeNone}, want: store.WipePending},                // already pending
	} {
		changed, err := s.SetDeviceWipe(ctx, d.ID, step.to, step.from...)
		if err != nil {
			t.Fatalf("#%d SetDeviceWipe(%q, from %q): %v", i, step.to, step.from, err)
		}
		if changed != step.changed {
			t.Errorf("#%d SetDeviceWipe(%q, from %q) = %v, want %v", i, step.to, step.from, changed, step.changed)
		}
		got, err := s.Device(ctx, u.ID, "dev")
		if err != nil {
			t.Fatalf("Device: %v", err)
		}
		want := d
		want.Wipe = step.want
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("#%d after SetDeviceWipe(%q, from %q) (-want +got):\n%s", i, step.to, step.from, diff)
		}
	}
	if _, err := s.SetDeviceWipe(ctx, d.ID, "bogus"); err == nil {
		t.Errorf("SetDeviceWipe(bogus) succeeded")
	}
	if got, err := s.Device(ctx, u.ID, "dev"); err != nil || got.Wipe != store.WipePending {
		t.Errorf("after invalid SetDeviceWipe: Wipe = %q, %v; want %q", got.Wipe, err, store.WipePending)
	}
	if got, err := s.Device(ctx, u.ID, "other"); err != nil || !cmp.Equal(got, other) {
		t.Errorf("other device changed: %+v, %v; want %+v", got, err, other)
	}
	changed, err := s.SetDeviceWipe(ctx, 1<<40, store.WipePending)
	wantErr(t, "SetDeviceWipe(absent)", err, store.ErrNotFound)
	if changed {
		t.Errorf("SetDeviceWipe(absent) reported a change")
	}
	_, err = s.SetDeviceWipe(ctx, 1<<40, store.WipeAcknowledged, store.WipePending)
	wantErr(t, "SetDeviceWipe(absent, from pending)", err, store.ErrNotFound)
}

// testUpdateDeviceKeepsAdminState is the lost-update race that UpdateDevice
// must not lose: requests write back device copies loaded before the
// administrator blocked and wiped the device.
func testUpdateDeviceKeepsAdminState(t *testing.T, s store.Store) {
	const workers, ops = 4, 20
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	d := mustTouch(t, s, store.Device{UserID: u.ID, DeviceID: "dev"})

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    []error
		started = make(chan struct{})
		once    sync.Once
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for g := range workers {
		stale := d // loaded before the administrator acts
		wg.Go(func() {
			for i := range ops {
				stale.PolicyKey = uint32(g*ops + i + 1)
				stale.UserAgent = fmt.Sprintf("w%d-%d", g, i)
				if err := s.UpdateDevice(ctx, stale); err != nil {
					fail(fmt.Errorf("UpdateDevice(%s): %w", stale.UserAgent, err))
					return
				}
				once.Do(func() { close(started) })
			}
		})
	}
	wg.Go(func() {
		<-started
		if err := s.SetDeviceAccess(ctx, d.ID, store.DeviceBlocked); err != nil {
			fail(fmt.Errorf("SetDeviceAccess: %w", err))
		}
		changed, err := s.SetDeviceWipe(ctx, d.ID, store.WipePending, store.WipeNone)
		if err != nil || !changed {
			fail(fmt.Errorf("SetDeviceWipe(pending, from none) = %v, %v; want true", changed, err))
		}
	})
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	got, err := s.Device(ctx, u.ID, "dev")
	if err != nil {
		t.Fatalf("Device: %v", err)
	}
	if got.Wipe != store.WipePending || got.Access != store.DeviceBlocked {
		t.Errorf("after racing updates: Wipe %q, Access %q; want %q, %q",
			got.Wipe, got.Access, store.WipePending, store.DeviceBlocked)
	}
	if got.PolicyKey == 0 || got.UserAgent == "" {
		t.Errorf("after racing updates: PolicyKey %d, UserAgent %q; want a worker's last write", got.PolicyKey, got.UserAgent)
	}
}

func testPolicyKey(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	for _, key := range []uint32{0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF} {
		id := fmt.Sprintf("dev-%x", key)
		d := mustTouch(t, s, store.Device{UserID: u.ID, DeviceID: id, PolicyKey: key})
		if d.PolicyKey != key {
			t.Errorf("TouchDevice PolicyKey = %#x, want %#x", d.PolicyKey, key)
		}
		d.PolicyKey = ^key
		if err := s.UpdateDevice(ctx, d); err != nil {
			t.Fatalf("UpdateDevice(PolicyKey %#x): %v", ^key, err)
		}
		got, err := s.Device(ctx, u.ID, id)
		if err != nil || got.PolicyKey != ^key {
			t.Errorf("PolicyKey round trip = %#x, %v; want %#x", got.PolicyKey, err, ^key)
		}
	}
}

func testDeleteDevice(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	d1 := mustTouch(t, s, store.Device{UserID: u.ID, DeviceID: "one"})
	d2 := mustTouch(t, s, store.Device{UserID: u.ID, DeviceID: "two"})
	mustPut(t, s, d1.ID, "1", "k1", "d1")
	mustPut(t, s, d1.ID, "", "h1", "d1-h")
	mustPut(t, s, d2.ID, "1", "k1", "d2")

	if err := s.DeleteDevice(ctx, d1.ID); err != nil {
		t.Fatalf("DeleteDevice: %v", err)
	}
	_, err := s.Device(ctx, u.ID, "one")
	wantErr(t, "Device after delete", err, store.ErrNotFound)
	wantState(t, s, d1.ID, "1", "k1", "-")
	wantState(t, s, d1.ID, "", "h1", "-")
	wantState(t, s, d2.ID, "1", "k1", "d2")
	if ds, err := s.Devices(ctx, u.ID); err != nil || len(ds) != 1 || ds[0].ID != d2.ID {
		t.Errorf("Devices after delete = %+v, %v; want only %q", ds, err, "two")
	}
	wantErr(t, "DeleteDevice twice", s.DeleteDevice(ctx, d1.ID), store.ErrNotFound)

	again := mustTouch(t, s, store.Device{UserID: u.ID, DeviceID: "one"})
	wantState(t, s, again.ID, "1", "k1", "-")
}

func testSyncState(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	d := mustTouch(t, s, store.Device{UserID: u.ID, DeviceID: "dev"})
	data := []byte{0, 1, 2, 0xff, 'x', 0}
	c := startClock()
	if err := s.PutSyncState(ctx, store.SyncState{DeviceID: d.ID, Collection: "5", SyncKey: "{a1}1", Data: data}); err != nil {
		t.Fatalf("PutSyncState: %v", err)
	}
	got, err := s.SyncState(ctx, d.ID, "5", "{a1}1")
	if err != nil {
		t.Fatalf("SyncState: %v", err)
	}
	want := store.SyncState{DeviceID: d.ID, Collection: "5", SyncKey: "{a1}1", Data: data, CreatedAt: got.CreatedAt}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SyncState (-want +got):\n%s", diff)
	}
	c.check(t, "CreatedAt", got.CreatedAt)

	// The folder hierarchy uses collection "", and data may be empty.
	if err := s.PutSyncState(ctx, store.SyncState{DeviceID: d.ID, Collection: "", SyncKey: "1"}); err != nil {
		t.Fatalf("PutSyncState(hierarchy, no data): %v", err)
	}
	if got, err := s.SyncState(ctx, d.ID, "", "1"); err != nil || len(got.Data) != 0 {
		t.Errorf("SyncState(hierarchy) = %+v, %v; want empty data", got, err)
	}

	_, err = s.SyncState(ctx, d.ID, "5", "{a1}2")
	wantErr(t, "SyncState(absent key)", err, store.ErrNotFound)
	_, err = s.SyncState(ctx, d.ID, "6", "{a1}1")
	wantErr(t, "SyncState(absent collection)", err, store.ErrNotFound)
	_, err = s.SyncState(ctx, d.ID+1000, "5", "{a1}1")
	wantErr(t, "SyncState(absent device)", err, store.ErrNotFound)
	err = s.PutSyncState(ctx, store.SyncState{DeviceID: 1 << 40, Collection: "5", SyncKey: "1", Data: data})
	wantErr(t, "PutSyncState(absent device)", err, store.ErrNotFound)
}

func testSyncStateKeepsTwo(t *testing.T, s store.Store) {
	u := mustUser(t, s, "alice")
	d := mustTouch(t, s, store.Device{UserID: u.ID, DeviceID: "dev"})
	e := mustTouch(t, s, store.Device{UserID: u.ID, DeviceID: "other"})
	mustPut(t, s, d.ID, "6", "k1", "d6-1")
	mustPut(t, s, e.ID, "5", "k1", "e5-1")

	mustPut(t, s, d.ID, "5", "k1", "one")
	mustPut(t, s, d.ID, "5", "k2", "two")
	wantState(t, s, d.ID, "5", "k1", "one")
	wantState(t, s, d.ID, "5", "k2", "two")
	mustPut(t, s, d.ID, "5", "k3", "three")
	wantState(t, s, d.ID, "5", "k1", "-")
	wantState(t, s, d.ID, "5", "k2", "two")
	wantState(t, s, d.ID, "5", "k3", "three")
	mustPut(t, s, d.ID, "5", "k4", "four")
	wantState(t, s, d.ID, "5", "k2", "-")
	wantState(t, s, d.ID, "5", "k3", "three")
	wantState(t, s, d.ID, "5", "k4", "four")

	// Other collections and devices are unaffected.
	wantState(t, s, d.ID, "6", "k1", "d6-1")
	wantState(t, s, e.ID, "5", "k1", "e5-1")

	// The newest is the last stored, also when an older key is stored again.
	wantLatest(t, s, d.ID, "5", "k4", "four")
	mustPut(t, s, d.ID, "5", "k3", "three again")
	wantLatest(t, s, d.ID, "5", "k3", "three again")
	wantLatest(t, s, e.ID, "5", "k1", "e5-1")
	if _, err := s.LatestSyncState(t.Context(), d.ID, "none"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LatestSyncState of a collection without states: err = %v, want ErrNotFound", err)
	}
}

func wantLatest(t *testing.T, s store.Store, dev int64, coll, key, data string) {
	t.Helper()
	st, err := s.LatestSyncState(t.Context(), dev, coll)
	if err != nil {
		t.Fatalf("LatestSyncState(%d, %q): %v", dev, coll, err)
	}
	if st.SyncKey != key || string(st.Data) != data {
		t.Errorf("LatestSyncState(%d, %q) = %q %q, want %q %q", dev, coll, st.SyncKey, st.Data, key, data)
	}
}

func testSyncStateReplace(t *testing.T, s store.Store) {
	u := mustUser(t, s, "alice")
	d := mustTouch(t, s, store.Device{UserID: u.ID, DeviceID: "dev"})
	mustPut(t, s, d.ID, "5", "k1", "a")
	mustPut(t, s, d.ID, "5", "k2", "b")
	mustPut(t, s, d.ID, "5", "k1", "c") // replaces k1, which becomes the newest
	wantState(t, s, d.ID, "5", "k1", "c")
	wantState(t, s, d.ID, "5", "k2", "b")
	mustPut(t, s, d.ID, "5", "k3", "d") // evicts k2, now the oldest
	wantState(t, s, d.ID, "5", "k1", "c")
	wantState(t, s, d.ID, "5", "k2", "-")
	wantState(t, s, d.ID, "5", "k3", "d")
	// Retrying the newest key keeps the previous one.
	mustPut(t, s, d.ID, "5", "k3", "e")
	mustPut(t, s, d.ID, "5", "k3", "f")
	wantState(t, s, d.ID, "5", "k1", "c")
	wantState(t, s, d.ID, "5", "k3", "f")
}

func testDeleteSyncStates(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	d := mustTouch(t, s, store.Device{UserID: u.ID, DeviceID: "dev"})
	e := mustTouch(t, s, store.Device{UserID: u.ID, DeviceID: "other"})
	for _, coll := range []string{"5", "6", ""} {
		mustPut(t, s, d.ID, coll, "k1", "d-"+coll+"-1")
		mustPut(t, s, d.ID, coll, "k2", "d-"+coll+"-2")
	}
	mustPut(t, s, e.ID, "5", "k1", "e-5")

	if err := s.DeleteSyncStates(ctx, d.ID, "5"); err != nil {
		t.Fatalf("DeleteSyncStates(5): %v", err)
	}
	wantState(t, s, d.ID, "5", "k1", "-")
	wantState(t, s, d.ID, "5", "k2", "-")
	wantState(t, s, d.ID, "6", "k2", "d-6-2")
	wantState(t, s, d.ID, "", "k1", "d--1")
	wantState(t, s, e.ID, "5", "k1", "e-5")

	if err := s.DeleteSyncStates(ctx, d.ID, "404"); err != nil {
		t.Errorf("DeleteSyncStates(empty collection): %v", err)
	}
	if err := s.DeleteSyncStates(ctx, d.ID, "*"); err != nil {
		t.Fatalf("DeleteSyncStates(*): %v", err)
	}
	for _, coll := range []string{"6", ""} {
		wantState(t, s, d.ID, coll, "k1", "-")
		wantState(t, s, d.ID, coll, "k2", "-")
	}
	wantState(t, s, e.ID, "5", "k1", "e-5")
	if _, err := s.Device(ctx, u.ID, "dev"); err != nil {
		t.Errorf("DeleteSyncStates removed the device: %v", err)
	}
}

func testConcurrentWriters(t *testing.T, s store.Store) {
	const workers, ops = 8, 25
	ctx := t.Context()
	owner := mustUser(t, s, "owner")
	shared := mustTouch(t, s, store.Device{UserID: owner.ID, DeviceID: "shared"})

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		errs  []error
		newID = make(map[string]map[int64]bool) // device id -> IDs returned
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for g := range workers {
		wg.Go(func() {
			for i := range ops {
				name := fmt.Sprintf("w%02d-%02d", g, i)
				if _, err := s.CreateUser(ctx, name, "h"); err != nil {
					fail(fmt.Errorf("CreateUser(%s): %w", name, err))
					return
				}
				// All workers race to register the same new devices.
				devID := fmt.Sprintf("new-%02d", i)
				d, err := s.TouchDevice(ctx, store.Device{UserID: owner.ID, DeviceID: devID, UserAgent: name})
				if err != nil {
					fail(fmt.Errorf("TouchDevice(%s): %w", devID, err))
					return
				}
				mu.Lock()
				if newID[devID] == nil {
					newID[devID] = make(map[int64]bool)
				}
				newID[devID][d.ID] = true
				mu.Unlock()
				st := store.SyncState{DeviceID: shared.ID, Collection: fmt.Sprintf("c%d", g),
					SyncKey: fmt.Sprintf("k%02d", i), Data: []byte(name)}
				if err := s.PutSyncState(ctx, st); err != nil {
					fail(fmt.Errorf("PutSyncState(%s): %w", name, err))
					return
				}
				if _, err := s.User(ctx, name); err != nil {
					fail(fmt.Errorf("User(%s) after create: %w", name, err))
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		return
	}

	us, err := s.Users(ctx)
	if err != nil || len(us) != workers*ops+1 {
		t.Errorf("Users = %d users, %v; want %d", len(us), err, workers*ops+1)
	}
	for devID, ids := range newID {
		if len(ids) != 1 {
			t.Errorf("TouchDevice(%s) returned IDs %v, want one", devID, ids)
		}
	}
	if ds, err := s.Devices(ctx, owner.ID); err != nil || len(ds) != ops+1 {
		t.Errorf("Devices = %d devices, %v; want %d", len(ds), err, ops+1)
	}
	for g := range workers {
		coll := fmt.Sprintf("c%d", g)
		wantState(t, s, shared.ID, coll, fmt.Sprintf("k%02d", ops-3), "-")
		for _, i := range []int{ops - 2, ops - 1} {
			wantState(t, s, shared.ID, coll, fmt.Sprintf("k%02d", i), fmt.Sprintf("w%02d-%02d", g, i))
		}
	}
}

func testContextCanceled(t *testing.T, s store.Store) {
	u := mustUser(t, s, "alice")
	d := mustTouch(t, s, store.Device{UserID: u.ID, DeviceID: "dev"})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	for name, call := range map[string]func() error{
		"Ping":       func() error { return s.Ping(ctx) },
		"CreateUser": func() error { _, err := s.CreateUser(ctx, "bob", "h"); return err },
		"User":       func() error { _, err := s.User(ctx, "alice"); return err },
		"Users":      func() error { _, err := s.Users(ctx); return err },
		"TouchDevice": func() error {
			_, err := s.TouchDevice(ctx, store.Device{UserID: u.ID, DeviceID: "dev2"})
			return err
		},
		"PutSyncState": func() error {
			return s.PutSyncState(ctx, store.SyncState{DeviceID: d.ID, Collection: "1", SyncKey: "k"})
		},
		"DeleteUser": func() error { return s.DeleteUser(ctx, "alice") },
		"SetDeviceWipe": func() error {
			_, err := s.SetDeviceWipe(ctx, d.ID, store.WipePending, store.WipeNone)
			return err
		},
	} {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with canceled context: error %v, want context.Canceled", name, err)
		}
	}
	// Nothing was written.
	bg := t.Context()
	if _, err := s.User(bg, "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("canceled CreateUser created bob: %v", err)
	}
	if _, err := s.User(bg, "alice"); err != nil {
		t.Errorf("canceled DeleteUser deleted alice: %v", err)
	}
	if _, err := s.Device(bg, u.ID, "dev2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("canceled TouchDevice created a device: %v", err)
	}
	wantState(t, s, d.ID, "1", "k", "-")
	if got, err := s.Device(bg, u.ID, "dev"); err != nil || got.Wipe != store.WipeNone {
		t.Errorf("canceled SetDeviceWipe: Wipe = %q, %v; want none", got.Wipe, err)
	}
}

func testUserSettings(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice := mustUser(t, s, "alice")
	bob := mustUser(t, s, "bob")
	_, err := s.UserSetting(ctx, alice.ID, "oof")
	wantErr(t, "UserSetting(unset)", err, store.ErrNotFound)
	for _, v := range [][]byte{[]byte(`{"state":1}`), []byte(`{"state":0}`), {}} {
		if err := s.PutUserSetting(ctx, alice.ID, "oof", v); err != nil {
			t.Fatalf("PutUserSetting(%q): %v", v, err)
		}
		got, err := s.UserSetting(ctx, alice.ID, "oof")
		if err != nil || !cmp.Equal(got, v) {
			t.Errorf("UserSetting after put %q = %q, %v", v, got, err)
		}
	}
	if _, err := s.UserSetting(ctx, bob.ID, "oof"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bob sees alice's setting: %v", err)
	}
	wantErr(t, "PutUserSetting(no user)", s.PutUserSetting(ctx, 1<<40, "oof", []byte("x")), store.ErrNotFound)
	if err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserSetting(ctx, alice.ID, "oof"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("setting survived DeleteUser: %v", err)
	}
}

func testInvalidValues(t *testing.T, s store.Store) {
	ctx := t.Context()
	u, err := s.CreateUser(ctx, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.TouchDevice(ctx, store.Device{UserID: u.ID, DeviceID: "d"})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []store.DeviceAccess{"", "maybe"} {
		if err := s.SetDeviceAccess(ctx, d.ID, a); err == nil {
			t.Errorf("SetDeviceAccess(%q) succeeded", a)
		}
	}
	if err := s.SetDeviceAccess(ctx, 1<<40, "maybe"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetDeviceAccess(absent, %q) = %v; want a validation error", "maybe", err)
	}
	for _, w := range [][]store.WipeState{{"later"}, {store.WipePending, "later"}, {store.WipeNone, store.WipePending, "later"}} {
		if _, err := s.SetDeviceWipe(ctx, d.ID, w[0], w[1:]...); err == nil {
			t.Errorf("SetDeviceWipe(%q, from %q) succeeded", w[0], w[1:])
		}
	}
	if _, err := s.TouchDevice(ctx, store.Device{UserID: u.ID, DeviceID: "e", Access: "maybe"}); err == nil {
		t.Error("TouchDevice with access \"maybe\" succeeded")
	}
	if _, err := s.TouchDevice(ctx, store.Device{UserID: u.ID, DeviceID: "e", Wipe: "later"}); err == nil {
		t.Error("TouchDevice with wipe \"later\" succeeded")
	}
	if _, err := s.TouchDevice(ctx, store.Device{UserID: u.ID}); err == nil {
		t.Error("TouchDevice with empty DeviceID succeeded")
	}
}
