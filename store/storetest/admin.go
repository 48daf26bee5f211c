package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/easd/easd/store"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// testAudit checks the audit log: times set by the store or kept,
// newest-first order, the User, Since and Limit filters, and that entries
// outlive the user they name.
func testAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustUser(t, s, "alice")

	c := startClock()
	first, err := s.AddAudit(ctx, store.AuditEntry{Actor: "cli:root", Action: "user.add", User: "alice"})
	if err != nil {
		t.Fatalf("AddAudit: %v", err)
	}
	if first.ID == 0 {
		t.Error("AddAudit returned no ID")
	}
	c.check(t, "AddAudit Time", first.Time)

	// Entries with given times, out of insertion order; two share a time.
	base := time.Date(2030, 1, 2, 3, 4, 5, 678901234, time.FixedZone("X", 3600))
	at := func(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }
	add := func(e store.AuditEntry) store.AuditEntry {
		t.Helper()
		got, err := s.AddAudit(ctx, e)
		if err != nil {
			t.Fatalf("AddAudit(%+v): %v", e, err)
		}
		want := e
		want.ID, want.Time = got.ID, e.Time.UTC().Truncate(time.Microsecond)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("AddAudit returned (-want +got):\n%s", diff)
		}
		return got
	}
	wipe := add(store.AuditEntry{Time: at(2), Actor: "cli:ops", Action: "device.wipe", User: "alice", Device: "IPHONE1", Detail: "lost on a train; \"quotes\" ünïcode\n2nd line"})
	block := add(store.AuditEntry{Time: at(0), Actor: "cli:ops", Action: "device.block", User: "bob", Device: "PIXEL"})
	wiped := add(store.AuditEntry{Time: at(3), Actor: "server", Action: "device.wiped", User: "alice", Device: "IPHONE1"})
	twin := add(store.AuditEntry{Time: at(3), Actor: "cli:ops", Action: "user.disable", User: "bob"})
	global := add(store.AuditEntry{Time: at(1), Actor: "cli:ops", Action: "config.check"})

	audit := func(f store.AuditFilter, want ...store.AuditEntry) {
		t.Helper()
		got, err := s.Audit(ctx, f)
		if err != nil {
			t.Fatalf("Audit(%+v): %v", f, err)
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Audit(%+v) (-want +got):\n%s", f, diff)
		}
	}
	// Newest first; the same time: the later added first.
	audit(store.AuditFilter{}, twin, wiped, wipe, global, block, first)
	audit(store.AuditFilter{Limit: 2}, twin, wiped)
	audit(store.AuditFilter{User: "alice"}, wiped, wipe, first)
	audit(store.AuditFilter{User: "alice", Limit: 1}, wiped)
	audit(store.AuditFilter{Since: at(2)}, twin, wiped, wipe) // at or after Since
	audit(store.AuditFilter{Since: at(2).Add(time.Microsecond)}, twin, wiped)
	audit(store.AuditFilter{User: "bob", Since: at(1)}, twin)
	audit(store.AuditFilter{User: "bob", Since: at(1), Limit: 5}, twin)
	audit(store.AuditFilter{Since: at(60)})
	audit(store.AuditFilter{User: "nobody"})

	// Entries outlive the user they name.
	if err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	audit(store.AuditFilter{User: "alice"}, wiped, wipe, first)

	for _, bad := range []store.AuditEntry{{Action: "x"}, {Actor: "cli:root"}} {
		if _, err := s.AddAudit(ctx, bad); err == nil {
			t.Errorf("AddAudit(%+v) succeeded; want an error", bad)
		}
	}
	audit(store.AuditFilter{Limit: 1}, twin)
}

// testAppPasswords checks app passwords: per user, ordered, delete by
// owner only, ids never reused, TouchAppPassword, and the cascade when the
// user goes.
func testAppPasswords(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice := mustUser(t, s, "alice")
	bob := mustUser(t, s, "bob")

	c := startClock()
	add := func(p store.AppPassword) store.AppPassword {
		t.Helper()
		got, err := s.AddAppPassword(ctx, p)
		if err != nil {
			t.Fatalf("AddAppPassword(%+v): %v", p, err)
		}
		if got.ID == 0 {
			t.Errorf("AddAppPassword(%q) returned no ID", p.Label)
		}
		c.check(t, "AddAppPassword Created", got.Created)
		want := p
		want.ID, want.Created = got.ID, got.Created
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("AddAppPassword returned (-want +got):\n%s", diff)
		}
		return got
	}
	list := func(userID int64, want ...store.AppPassword) {
		t.Helper()
		got, err := s.AppPasswords(ctx, userID)
		if err != nil {
			t.Fatalf("AppPasswords(%d): %v", userID, err)
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("AppPasswords(%d) (-want +got):\n%s", userID, diff)
		}
	}

	p1 := add(store.AppPassword{UserID: alice.ID, Label: "tablet", Hash: "$sha256$one"})
	p2 := add(store.AppPassword{UserID: alice.ID, Label: "work phone ✓", DeviceID: "IPHONE1", Hash: "$sha256$two"})
	p3 := add(store.AppPassword{UserID: bob.ID, Hash: "$sha256$three"})
	list(alice.ID, p1, p2)
	list(bob.ID, p3)
	list(1 << 40)

	_, err := s.AddAppPassword(ctx, store.AppPassword{UserID: 1 << 40, Hash: "$sha256$x"})
	wantErr(t, "AddAppPassword(absent user)", err, store.ErrNotFound)
	if _, err := s.AddAppPassword(ctx, store.AppPassword{UserID: alice.ID}); err == nil {
		t.Error("AddAppPassword without a hash succeeded")
	}

	// A use is recorded, in UTC to the microsecond.
	used := time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.FixedZone("Y", -7200))
	if err := s.TouchAppPassword(ctx, p2.ID, used); err != nil {
		t.Fatalf("TouchAppPassword: %v", err)
	}
	p2.LastUsed = used.UTC().Truncate(time.Microsecond)
	list(alice.ID, p1, p2)
	later := used.Add(time.Minute)
	if err := s.TouchAppPassword(ctx, p2.ID, later); err != nil {
		t.Fatalf("TouchAppPassword again: %v", err)
	}
	p2.LastUsed = later.UTC().Truncate(time.Microsecond)
	list(alice.ID, p1, p2)
	wantErr(t, "TouchAppPassword(absent)", s.TouchAppPassword(ctx, 1<<40, used), store.ErrNotFound)

	// Only the owner's id revokes.
	wantErr(t, "DeleteAppPassword(another user's)", s.DeleteAppPassword(ctx, bob.ID, p1.ID), store.ErrNotFound)
	list(alice.ID, p1, p2)
	if err := s.DeleteAppPassword(ctx, alice.ID, p1.ID); err != nil {
		t.Fatalf("DeleteAppPassword: %v", err)
	}
	list(alice.ID, p2)
	wantErr(t, "DeleteAppPassword twice", s.DeleteAppPassword(ctx, alice.ID, p1.ID), store.ErrNotFound)
	wantErr(t, "TouchAppPassword(revoked)", s.TouchAppPassword(ctx, p1.ID, used), store.ErrNotFound)

	// Ids are not reused, even the newest one's after it is revoked.
	p4 := add(store.AppPassword{UserID: alice.ID, Label: "new", Hash: "$sha256$four"})
	if err := s.DeleteAppPassword(ctx, alice.ID, p4.ID); err != nil {
		t.Fatal(err)
	}
	p5 := add(store.AppPassword{UserID: alice.ID, Label: "newer", Hash: "$sha256$five"})
	for _, old := range []store.AppPassword{p1, p2, p3, p4} {
		if p5.ID <= old.ID {
			t.Errorf("new app password id %d not above earlier id %d", p5.ID, old.ID)
		}
	}
	list(alice.ID, p2, p5)

	// Deleting the user deletes its app passwords, not others'.
	if err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	list(alice.ID)
	list(bob.ID, p3)
	again := mustUser(t, s, "alice")
	list(again.ID)
	for _, p := range []store.AppPassword{p2, p5} {
		if err := s.TouchAppPassword(ctx, p.ID, used); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("TouchAppPassword(%d) after DeleteUser: %v, want ErrNotFound", p.ID, err)
		}
	}
}
