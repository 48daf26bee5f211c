package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/easd/easd/store"
	"github.com/google/go-cmp/cmp"
)

// Conformance tests of the collections of store.ItemStore; helpers are in
// items.go.

func testCollections(t *testing.T, s store.Store) {
	ctx := t.Context()
	is := itemStore(t, s)
	alice := mustUser(t, s, "alice")
	bob := mustUser(t, s, "bob")
	wantCollections(t, is, alice.ID)

	c := startClock()
	cal := mustCollection(t, is, store.Collection{UserID: alice.ID, Class: store.ClassCalendar, Name: "Calendar", Default: true,
		ID: 99, ModSeq: 7, CreatedAt: time.Unix(1, 0)}) // ignored
	want := store.Collection{ID: cal.ID, UserID: alice.ID, Class: store.ClassCalendar, Name: "Calendar", Default: true, CreatedAt: cal.CreatedAt}
	if diff := cmp.Diff(want, cal); diff != "" {
		t.Errorf("CreateCollection (-want +got):\n%s", diff)
	}
	if cal.ID == 0 {
		t.Error("new collection has ID 0")
	}
	c.check(t, "CreatedAt", cal.CreatedAt)

	var all []store.Collection
	all = append(all, cal)
	for _, in := range []store.Collection{
		{UserID: alice.ID, Class: store.ClassContacts, Name: "Contacts", Default: true},
		{UserID: alice.ID, Class: store.ClassTasks, Name: "Tasks", Default: true},
		{UserID: alice.ID, Class: store.ClassNotes, Name: "Notes", Default: true},
		{UserID: alice.ID, Class: store.ClassCalendar, Name: "Work"},
		// Same name as the default calendar, under another parent.
		{UserID: alice.ID, Class: store.ClassCalendar, ParentID: cal.ID, Name: "Calendar"},
		{UserID: alice.ID, Class: store.ClassContacts, ParentID: cal.ID, Name: "Odd but allowed"},
		{UserID: alice.ID, Class: store.ClassCalendar, Name: "Ünïcode ✓ / with \"quotes\""},
	} {
		all = append(all, mustCollection(t, is, in))
	}
	for i, got := range all {
		if i > 0 && got.ID <= all[i-1].ID {
			t.Errorf("collection IDs not increasing: %d after %d", got.ID, all[i-1].ID)
		}
		one, err := is.Collection(ctx, alice.ID, got.ID)
		if err != nil || !cmp.Equal(one, got) {
			t.Errorf("Collection(%d) = %+v, %v; want %+v", got.ID, one, err, got)
		}
	}
	wantCollections(t, is, alice.ID, all...)

	// Bob has his own namespace: the same names and defaults.
	bcal := mustCollection(t, is, store.Collection{UserID: bob.ID, Class: store.ClassCalendar, Name: "Calendar", Default: true})
	wantCollections(t, is, bob.ID, bcal)
	wantCollections(t, is, alice.ID, all...)
	wantCollections(t, is, 1<<40)

	for _, bad := range []store.Collection{
		{UserID: alice.ID, Class: "Email", Name: "Inbox"},
		{UserID: alice.ID, Class: "", Name: "No class"},
		{UserID: alice.ID, Class: store.ClassNotes, Name: ""},
	} {
		if got, err := is.CreateCollection(ctx, bad); err == nil {
			t.Errorf("CreateCollection(%+v) = %+v, want an error", bad, got)
		}
	}
	wantCollections(t, is, alice.ID, all...)
}

func testCollectionExists(t *testing.T, s store.Store) {
	ctx := t.Context()
	is := itemStore(t, s)
	u := mustUser(t, s, "alice")
	cal := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassCalendar, Name: "Calendar", Default: true})
	work := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassCalendar, Name: "Work"})
	sub := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassCalendar, ParentID: work.ID, Name: "Sub"})

	for _, dup := range []store.Collection{
		{UserID: u.ID, Class: store.ClassCalendar, Name: "Work"},                     // same name at the top
		{UserID: u.ID, Class: store.ClassContacts, Name: "Work"},                     // also in another class
		{UserID: u.ID, Class: store.ClassCalendar, ParentID: work.ID, Name: "Sub"},   // same name in a parent
		{UserID: u.ID, Class: store.ClassCalendar, Name: "Second", Default: true},    // a second default
		{UserID: u.ID, Class: store.ClassCalendar, Name: "Calendar", Default: false}, // the default's name
	} {
		got, err := is.CreateCollection(ctx, dup)
		wantErr(t, fmt.Sprintf("CreateCollection(%+v) = %+v", dup, got), err, store.ErrExists)
	}
	wantCollections(t, is, u.ID, cal, work, sub)

	// Names are compared exactly.
	work2 := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassCalendar, Name: "work"})
	// One default per class: other classes have their own.
	contacts := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassContacts, Name: "Contacts", Default: true})
	_, err := is.CreateCollection(ctx, store.Collection{UserID: u.ID, Class: store.ClassContacts, ParentID: work.ID, Name: "X", Default: true})
	wantErr(t, "CreateCollection(second default contacts, nested)", err, store.ErrExists)
	wantCollections(t, is, u.ID, cal, work, sub, work2, contacts)

	// Once the default is gone, another may take its place.
	if err := is.DeleteCollection(ctx, u.ID, cal.ID); err != nil {
		t.Fatalf("DeleteCollection: %v", err)
	}
	cal2 := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassCalendar, Name: "Calendar", Default: true})
	if cal2.ID == cal.ID {
		t.Errorf("re-created default calendar has the old ID %d", cal.ID)
	}
}

func testCollectionNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	is := itemStore(t, s)
	u := mustUser(t, s, "alice")
	col := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassNotes, Name: "Notes", Default: true})
	it := mustItem(t, is, store.Item{CollectionID: col.ID, UID: "n1", Data: []byte("note")})
	const absent = 1 << 40

	_, err := is.Collection(ctx, u.ID, absent)
	wantErr(t, "Collection(absent)", err, store.ErrNotFound)
	_, err = is.Collection(ctx, absent, col.ID)
	wantErr(t, "Collection(absent user)", err, store.ErrNotFound)
	_, err = is.CreateCollection(ctx, store.Collection{UserID: absent, Class: store.ClassNotes, Name: "Notes"})
	wantErr(t, "CreateCollection(absent user)", err, store.ErrNotFound)
	_, err = is.CreateCollection(ctx, store.Collection{UserID: u.ID, Class: store.ClassNotes, ParentID: absent, Name: "Sub"})
	wantErr(t, "CreateCollection(absent parent)", err, store.ErrNotFound)
	err = is.UpdateCollection(ctx, store.Collection{ID: absent, UserID: u.ID, Name: "X"})
	wantErr(t, "UpdateCollection(absent)", err, store.ErrNotFound)
	err = is.UpdateCollection(ctx, store.Collection{ID: col.ID, UserID: absent, Name: "X"})
	wantErr(t, "UpdateCollection(absent user)", err, store.ErrNotFound)
	err = is.UpdateCollection(ctx, store.Collection{ID: col.ID, UserID: u.ID, ParentID: absent, Name: "X"})
	wantErr(t, "UpdateCollection(absent parent)", err, store.ErrNotFound)
	wantErr(t, "DeleteCollection(absent)", is.DeleteCollection(ctx, u.ID, absent), store.ErrNotFound)
	wantErr(t, "DeleteCollection(absent user)", is.DeleteCollection(ctx, absent, col.ID), store.ErrNotFound)

	_, err = is.PutItem(ctx, store.Item{CollectionID: absent, UID: "x", Data: []byte("x")})
	wantErr(t, "PutItem(absent collection)", err, store.ErrNotFound)
	_, err = is.PutItem(ctx, store.Item{ID: absent, CollectionID: col.ID, UID: "x", Data: []byte("x")})
	wantErr(t, "PutItem(replace absent item)", err, store.ErrNotFound)
	_, err = is.DeleteItem(ctx, col.ID, absent)
	wantErr(t, "DeleteItem(absent)", err, store.ErrNotFound)
	_, err = is.DeleteItem(ctx, absent, it.ID)
	wantErr(t, "DeleteItem(absent collection)", err, store.ErrNotFound)
	wantItemGone(t, is, col.ID, absent, "absent-uid")
	wantItemGone(t, is, absent, it.ID, "n1")
	if got, err := is.ItemChanges(ctx, absent, 0, 0); err != nil || len(got) != 0 {
		t.Errorf("ItemChanges(absent collection) = %+v, %v; want none", got, err)
	}

	// Nothing above changed the collection or consumed a ModSeq.
	wantCollections(t, is, u.ID, store.Collection{
		ID: col.ID, UserID: u.ID, Class: store.ClassNotes, Name: "Notes", Default: true, ModSeq: it.ModSeq, CreatedAt: col.CreatedAt,
	})
	if got, err := is.Item(ctx, col.ID, it.ID); err != nil || !cmp.Equal(got, it) {
		t.Errorf("Item = %+v, %v; want %+v", got, err, it)
	}
}

func testUpdateCollection(t *testing.T, s store.Store) {
	ctx := t.Context()
	is := itemStore(t, s)
	u := mustUser(t, s, "alice")
	cal := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassCalendar, Name: "Calendar", Default: true})
	a := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassCalendar, Name: "A"})
	b := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassCalendar, ParentID: a.ID, Name: "B"})
	c := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassCalendar, ParentID: b.ID, Name: "C"})
	it := mustItem(t, is, store.Item{CollectionID: a.ID, UID: "e1", Data: []byte("BEGIN:VCALENDAR")})
	a.ModSeq = it.ModSeq

	update := func(c store.Collection) {
		t.Helper()
		if err := is.UpdateCollection(ctx, c); err != nil {
			t.Fatalf("UpdateCollection(%+v): %v", c, err)
		}
	}
	// Rename: only Name and ParentID change, whatever else is passed.
	in := cal
	in.Name, in.Class, in.Default, in.ModSeq, in.CreatedAt = "Personal", store.ClassTasks, false, 42, time.Unix(1, 0)
	update(in)
	cal.Name = "Personal"
	// Move B (with C) to the top, then under the calendar; rename it at once.
	update(store.Collection{ID: b.ID, UserID: u.ID, Name: "B"})
	b.ParentID = 0
	wantCollections(t, is, u.ID, cal, a, b, c)
	update(store.Collection{ID: b.ID, UserID: u.ID, ParentID: cal.ID, Name: "B2"})
	b.ParentID, b.Name = cal.ID, "B2"
	// Renaming to the current name is no clash.
	update(store.Collection{ID: a.ID, UserID: u.ID, Name: "A"})
	wantCollections(t, is, u.ID, cal, a, b, c)

	// Clashes: a sibling's name, or a name taken in the target parent.
	d := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassCalendar, ParentID: cal.ID, Name: "A"})
	err := is.UpdateCollection(ctx, store.Collection{ID: a.ID, UserID: u.ID, Name: "Personal"})
	wantErr(t, "UpdateCollection(rename to sibling's name)", err, store.ErrExists)
	err = is.UpdateCollection(ctx, store.Collection{ID: a.ID, UserID: u.ID, ParentID: cal.ID, Name: "A"})
	wantErr(t, "UpdateCollection(move next to a namesake)", err, store.ErrExists)
	err = is.UpdateCollection(ctx, store.Collection{ID: d.ID, UserID: u.ID, ParentID: cal.ID, Name: "B2"})
	wantErr(t, "UpdateCollection(rename to sibling's name in a parent)", err, store.ErrExists)

	// No cycles: not into itself, nor into a descendant.
	for _, parent := range []int64{cal.ID, b.ID, c.ID} {
		err := is.UpdateCollection(ctx, store.Collection{ID: cal.ID, UserID: u.ID, ParentID: parent, Name: "Personal"})
		if err == nil {
			t.Errorf("UpdateCollection(move %d under %d, its descendant) succeeded", cal.ID, parent)
		}
	}
	wantCollections(t, is, u.ID, cal, a, b, c, d)
	wantModSeq(t, is, u.ID, a.ID, it.ModSeq)
	if got, err := is.Item(ctx, a.ID, it.ID); err != nil || !cmp.Equal(got, it) {
		t.Errorf("Item after updates = %+v, %v; want %+v", got, err, it)
	}
	if err := is.UpdateCollection(ctx, store.Collection{ID: a.ID, UserID: u.ID}); err == nil {
		t.Error("UpdateCollection(empty name) succeeded")
	}
}

func testDeleteCollection(t *testing.T, s store.Store) {
	ctx := t.Context()
	is := itemStore(t, s)
	u := mustUser(t, s, "alice")
	// a ─┬─ b ── c
	//    └─ d
	// e
	a := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassContacts, Name: "a"})
	b := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassContacts, ParentID: a.ID, Name: "b"})
	c := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassContacts, ParentID: b.ID, Name: "c"})
	d := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassCalendar, ParentID: a.ID, Name: "d"})
	e := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassContacts, Name: "e", Default: true})
	var gone []store.Item
	for _, col := range []store.Collection{a, b, c, d} {
		gone = append(gone, mustItem(t, is, store.Item{CollectionID: col.ID, UID: "uid-" + col.Name, Data: []byte(col.Name)}))
	}
	deleted := mustItem(t, is, store.Item{CollectionID: a.ID, UID: "tomb", Data: []byte("x")})
	mustDeleteItem(t, is, a.ID, deleted.ID)
	keep := mustItem(t, is, store.Item{CollectionID: e.ID, UID: "uid-e", Data: []byte("e")})
	e.ModSeq = keep.ModSeq

	// Deleting a leaf keeps its parent.
	if err := is.DeleteCollection(ctx, u.ID, c.ID); err != nil {
		t.Fatalf("DeleteCollection(c): %v", err)
	}
	b.ModSeq = gone[1].ModSeq
	if got, err := is.Collection(ctx, u.ID, b.ID); err != nil || !cmp.Equal(got, b) {
		t.Errorf("Collection(b) after deleting its child = %+v, %v; want %+v", got, err, b)
	}
	wantItemGone(t, is, c.ID, gone[2].ID, "uid-c")

	if err := is.DeleteCollection(ctx, u.ID, a.ID); err != nil {
		t.Fatalf("DeleteCollection(a): %v", err)
	}
	for _, col := range []store.Collection{a, b, c, d} {
		_, err := is.Collection(ctx, u.ID, col.ID)
		wantErr(t, "Collection("+col.Name+") after deleting a", err, store.ErrNotFound)
		wantChanges(t, is, col.ID, 0, 0)
	}
	for _, it := range gone {
		wantItemGone(t, is, it.CollectionID, it.ID, it.UID)
	}
	wantCollections(t, is, u.ID, e)
	if got, err := is.Item(ctx, e.ID, keep.ID); err != nil || !cmp.Equal(got, keep) {
		t.Errorf("Item(e) = %+v, %v; want %+v", got, err, keep)
	}
	wantErr(t, "DeleteCollection twice", is.DeleteCollection(ctx, u.ID, a.ID), store.ErrNotFound)
	wantErr(t, "DeleteCollection(deleted child)", is.DeleteCollection(ctx, u.ID, b.ID), store.ErrNotFound)

	// The names are free again, and a new collection starts afresh.
	again := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassContacts, Name: "a"})
	if again.ModSeq != 0 || again.ID == a.ID {
		t.Errorf("re-created collection = %+v; want ModSeq 0 and a new ID", again)
	}
	wantChanges(t, is, again.ID, 0, 0)
	wantCollections(t, is, u.ID, e, again)
}

func testDeleteUserCollections(t *testing.T, s store.Store) {
	ctx := t.Context()
	is := itemStore(t, s)
	alice := mustUser(t, s, "alice")
	bob := mustUser(t, s, "bob")
	acal := mustCollection(t, is, store.Collection{UserID: alice.ID, Class: store.ClassCalendar, Name: "Calendar", Default: true})
	asub := mustCollection(t, is, store.Collection{UserID: alice.ID, Class: store.ClassCalendar, ParentID: acal.ID, Name: "Sub"})
	ait := mustItem(t, is, store.Item{CollectionID: asub.ID, UID: "a", Data: []byte("alice")})
	bcal := mustCollection(t, is, store.Collection{UserID: bob.ID, Class: store.ClassCalendar, Name: "Calendar", Default: true})
	bit := mustItem(t, is, store.Item{CollectionID: bcal.ID, UID: "a", Data: []byte("bob")})
	bcal.ModSeq = bit.ModSeq

	if err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	wantCollections(t, is, alice.ID)
	_, err := is.Collection(ctx, alice.ID, acal.ID)
	wantErr(t, "Collection of deleted user", err, store.ErrNotFound)
	wantItemGone(t, is, asub.ID, ait.ID, "a")
	wantChanges(t, is, asub.ID, 0, 0)
	_, err = is.PutItem(ctx, store.Item{CollectionID: acal.ID, UID: "b", Data: []byte("x")})
	wantErr(t, "PutItem into a deleted user's collection", err, store.ErrNotFound)

	wantCollections(t, is, bob.ID, bcal)
	if got, err := is.ItemByUID(ctx, bcal.ID, "a"); err != nil || !cmp.Equal(got, bit) {
		t.Errorf("bob's item = %+v, %v; want %+v", got, err, bit)
	}
	again := mustUser(t, s, "alice")
	wantCollections(t, is, again.ID)
}

func testItemIsolation(t *testing.T, s store.Store) {
	ctx := t.Context()
	is := itemStore(t, s)
	alice := mustUser(t, s, "alice")
	bob := mustUser(t, s, "bob")
	acal := mustCollection(t, is, store.Collection{UserID: alice.ID, Class: store.ClassCalendar, Name: "Calendar", Default: true})
	ait := mustItem(t, is, store.Item{CollectionID: acal.ID, UID: "secret", Data: []byte("alice's")})
	acal.ModSeq = ait.ModSeq
	bcal := mustCollection(t, is, store.Collection{UserID: bob.ID, Class: store.ClassCalendar, Name: "Calendar", Default: true})

	_, err := is.Collection(ctx, bob.ID, acal.ID)
	wantErr(t, "Collection(bob, alice's)", err, store.ErrNotFound)
	wantCollections(t, is, bob.ID, bcal)
	err = is.UpdateCollection(ctx, store.Collection{ID: acal.ID, UserID: bob.ID, Name: "Mine"})
	wantErr(t, "UpdateCollection(bob, alice's)", err, store.ErrNotFound)
	err = is.UpdateCollection(ctx, store.Collection{ID: bcal.ID, UserID: bob.ID, ParentID: acal.ID, Name: "Calendar"})
	wantErr(t, "UpdateCollection(bob's into alice's)", err, store.ErrNotFound)
	err = is.DeleteCollection(ctx, bob.ID, acal.ID)
	wantErr(t, "DeleteCollection(bob, alice's)", err, store.ErrNotFound)
	_, err = is.CreateCollection(ctx, store.Collection{UserID: bob.ID, Class: store.ClassCalendar, ParentID: acal.ID, Name: "Sub"})
	wantErr(t, "CreateCollection(bob, in alice's)", err, store.ErrNotFound)

	wantCollections(t, is, alice.ID, acal)
	wantCollections(t, is, bob.ID, bcal)
	if got, err := is.Item(ctx, acal.ID, ait.ID); err != nil || !cmp.Equal(got, ait) {
		t.Errorf("alice's item = %+v, %v; want %+v", got, err, ait)
	}
	wantItemGone(t, is, bcal.ID, ait.ID, "secret")
	wantChanges(t, is, bcal.ID, 0, 0)
}
