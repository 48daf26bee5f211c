package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/easd/easd/store"
	"github.com/google/go-cmp/cmp"
)

// itemStore returns s as a store.ItemStore, which every store must be.
func itemStore(t *testing.T, s store.Store) store.ItemStore {
	t.Helper()
	is, ok := s.(store.ItemStore)
	if !ok {
		t.Fatalf("%T does not implement store.ItemStore", s)
	}
	return is
}

func mustCollection(t *testing.T, is store.ItemStore, c store.Collection) store.Collection {
	t.Helper()
	got, err := is.CreateCollection(t.Context(), c)
	if err != nil {
		t.Fatalf("CreateCollection(%q): %v", c.Name, err)
	}
	return got
}

func mustItem(t *testing.T, is store.ItemStore, it store.Item) store.Item {
	t.Helper()
	got, err := is.PutItem(t.Context(), it)
	if err != nil {
		t.Fatalf("PutItem(%q): %v", it.UID, err)
	}
	return got
}

func mustDeleteItem(t *testing.T, is store.ItemStore, collectionID, id int64) store.Item {
	t.Helper()
	got, err := is.DeleteItem(t.Context(), collectionID, id)
	if err != nil {
		t.Fatalf("DeleteItem(%d, %d): %v", collectionID, id, err)
	}
	return got
}

// wantCollections checks the user's collections, in ID order.
func wantCollections(t *testing.T, is store.ItemStore, userID int64, want ...store.Collection) {
	t.Helper()
	got, err := is.Collections(t.Context(), userID)
	if err != nil {
		t.Fatalf("Collections(%d): %v", userID, err)
	}
	if len(want) == 0 && len(got) == 0 {
		return // nil and empty alike
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Collections(%d) (-want +got):\n%s", userID, diff)
	}
}

// wantModSeq checks the ModSeq that Collection reports.
func wantModSeq(t *testing.T, is store.ItemStore, userID, id, want int64) {
	t.Helper()
	c, err := is.Collection(t.Context(), userID, id)
	if err != nil {
		t.Fatalf("Collection(%d, %d): %v", userID, id, err)
	}
	if c.ModSeq != want {
		t.Errorf("Collection(%d, %d).ModSeq = %d, want %d", userID, id, c.ModSeq, want)
	}
}

// wantChanges checks ItemChanges(collectionID, since, limit).
func wantChanges(t *testing.T, is store.ItemStore, collectionID, since int64, limit int, want ...store.Item) {
	t.Helper()
	got, err := is.ItemChanges(t.Context(), collectionID, since, limit)
	if err != nil {
		t.Fatalf("ItemChanges(%d, %d, %d): %v", collectionID, since, limit, err)
	}
	if len(want) == 0 && len(got) == 0 {
		return // nil and empty alike
	}
	// Not cmpopts.EquateEmpty: a tombstone's Data must be nil, not empty.
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ItemChanges(%d, %d, %d) (-want +got):\n%s", collectionID, since, limit, diff)
	}
}

// wantItemGone checks that Item and, if uid is not "", ItemByUID report
// store.ErrNotFound.
func wantItemGone(t *testing.T, is store.ItemStore, collectionID, id int64, uid string) {
	t.Helper()
	if got, err := is.Item(t.Context(), collectionID, id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Item(%d, %d) = %+v, %v; want ErrNotFound", collectionID, id, got, err)
	}
	if uid == "" {
		return
	}
	if got, err := is.ItemByUID(t.Context(), collectionID, uid); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ItemByUID(%d, %q) = %+v, %v; want ErrNotFound", collectionID, uid, got, err)
	}
}

func testPutItem(t *testing.T, s store.Store) {
	ctx := t.Context()
	is := itemStore(t, s)
	u := mustUser(t, s, "alice")
	col := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassContacts, Name: "Contacts", Default: true})
	other := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassContacts, Name: "Other"})
	vcard := []byte("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:u1\r\nFN:Ann\r\nEND:VCARD\r\n\x00\xff")

	c := startClock()
	in := store.Item{CollectionID: col.ID, UID: "u1", Data: vcard, Summary: "Ann",
		ModSeq: 99, Deleted: true, UpdatedAt: time.Unix(1, 0)} // ignored
	it := mustItem(t, is, in)
	want := store.Item{ID: it.ID, CollectionID: col.ID, UID: "u1", Data: vcard, ModSeq: it.ModSeq,
		Summary: "Ann", UpdatedAt: it.UpdatedAt}
	if diff := cmp.Diff(want, it); diff != "" {
		t.Errorf("PutItem(insert) (-want +got):\n%s", diff)
	}
	if it.ID == 0 || it.ModSeq <= 0 {
		t.Errorf("PutItem(insert): ID %d, ModSeq %d; want both > 0", it.ID, it.ModSeq)
	}
	c.check(t, "UpdatedAt", it.UpdatedAt)
	for name, get := range map[string]func() (store.Item, error){
		"Item":      func() (store.Item, error) { return is.Item(ctx, col.ID, it.ID) },
		"ItemByUID": func() (store.Item, error) { return is.ItemByUID(ctx, col.ID, "u1") },
	} {
		got, err := get()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(it, got); diff != "" {
			t.Errorf("%s differs from PutItem (-put +get):\n%s", name, diff)
		}
	}
	wantModSeq(t, is, u.ID, col.ID, it.ModSeq)

	// Replace: same ID, new content and UID, a new ModSeq and UpdatedAt.
	time.Sleep(2 * time.Millisecond)
	c2 := startClock()
	rep := mustItem(t, is, store.Item{ID: it.ID, CollectionID: col.ID, UID: "u1-renamed", Data: []byte("v2"), Summary: "Ann B"})
	want = store.Item{ID: it.ID, CollectionID: col.ID, UID: "u1-renamed", Data: []byte("v2"), ModSeq: rep.ModSeq,
		Summary: "Ann B", UpdatedAt: rep.UpdatedAt}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("PutItem(replace) (-want +got):\n%s", diff)
	}
	if rep.ModSeq <= it.ModSeq {
		t.Errorf("replace ModSeq %d, not above %d", rep.ModSeq, it.ModSeq)
	}
	c2.check(t, "UpdatedAt", rep.UpdatedAt)
	if got, err := is.Item(ctx, col.ID, it.ID); err != nil || !cmp.Equal(got, rep) {
		t.Errorf("Item after replace = %+v, %v; want %+v", got, err, rep)
	}
	wantItemGone(t, is, col.ID, 1<<40, "u1")
	wantChanges(t, is, col.ID, 0, 0, rep)

	// Empty data is a live item, not a tombstone.
	empty := mustItem(t, is, store.Item{CollectionID: col.ID, UID: "empty"})
	got, err := is.Item(ctx, col.ID, empty.ID)
	if err != nil || got.Data == nil || len(got.Data) != 0 || got.Deleted || empty.Data == nil {
		t.Errorf("Item(empty) = %+v, %v (PutItem %+v); want live with empty, non-nil Data", got, err, empty)
	}

	// The ID selects the item only within its collection.
	_, err = is.PutItem(ctx, store.Item{ID: it.ID, CollectionID: other.ID, UID: "u1", Data: []byte("x")})
	wantErr(t, "PutItem(replace, other collection)", err, store.ErrNotFound)
	wantItemGone(t, is, other.ID, it.ID, "")
	_, err = is.DeleteItem(ctx, other.ID, it.ID)
	wantErr(t, "DeleteItem(other collection)", err, store.ErrNotFound)

	// A tombstone cannot be replaced or deleted again.
	tomb := mustDeleteItem(t, is, col.ID, it.ID)
	_, err = is.PutItem(ctx, store.Item{ID: it.ID, CollectionID: col.ID, UID: "u1-renamed", Data: []byte("v3")})
	wantErr(t, "PutItem(replace tombstone)", err, store.ErrNotFound)
	_, err = is.DeleteItem(ctx, col.ID, it.ID)
	wantErr(t, "DeleteItem twice", err, store.ErrNotFound)
	wantItemGone(t, is, col.ID, it.ID, "u1-renamed")
	wantModSeq(t, is, u.ID, col.ID, tomb.ModSeq)
	wantModSeq(t, is, u.ID, other.ID, 0)

	if _, err := is.PutItem(ctx, store.Item{CollectionID: col.ID, Data: []byte("no uid")}); err == nil {
		t.Error("PutItem with empty UID succeeded")
	}
}

func testItemUID(t *testing.T, s store.Store) {
	ctx := t.Context()
	is := itemStore(t, s)
	u := mustUser(t, s, "alice")
	col := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassCalendar, Name: "Calendar", Default: true})
	other := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassCalendar, Name: "Other"})

	first := mustItem(t, is, store.Item{CollectionID: col.ID, UID: "event@example.com", Data: []byte("one")})
	second := mustItem(t, is, store.Item{CollectionID: col.ID, UID: "second", Data: []byte("two")})
	_, err := is.PutItem(ctx, store.Item{CollectionID: col.ID, UID: "event@example.com", Data: []byte("dup")})
	wantErr(t, "PutItem(insert, live UID)", err, store.ErrExists)
	_, err = is.PutItem(ctx, store.Item{ID: second.ID, CollectionID: col.ID, UID: "event@example.com", Data: []byte("dup")})
	wantErr(t, "PutItem(replace, another live item's UID)", err, store.ErrExists)
	// Failed writes consume no ModSeq and change nothing.
	wantModSeq(t, is, u.ID, col.ID, second.ModSeq)
	wantChanges(t, is, col.ID, 0, 0, first, second)

	// UIDs are compared exactly and per collection.
	mustItem(t, is, store.Item{CollectionID: col.ID, UID: "EVENT@example.com", Data: []byte("case")})
	elsewhere := mustItem(t, is, store.Item{CollectionID: other.ID, UID: "event@example.com", Data: []byte("other")})

	// A tombstone's UID may be used again, also more than once.
	tomb := mustDeleteItem(t, is, col.ID, first.ID)
	if tomb.UID != first.UID {
		t.Errorf("tombstone UID = %q, want %q", tomb.UID, first.UID)
	}
	reborn := mustItem(t, is, store.Item{CollectionID: col.ID, UID: "event@example.com", Data: []byte("again")})
	if reborn.ID == first.ID {
		t.Errorf("re-inserted UID got the tombstone's ID %d", reborn.ID)
	}
	if got, err := is.ItemByUID(ctx, col.ID, "event@example.com"); err != nil || !cmp.Equal(got, reborn) {
		t.Errorf("ItemByUID after re-insert = %+v, %v; want %+v", got, err, reborn)
	}
	tomb2 := mustDeleteItem(t, is, col.ID, reborn.ID)
	third := mustItem(t, is, store.Item{CollectionID: col.ID, UID: "event@example.com", Data: []byte("third")})
	mustDeleteItem(t, is, col.ID, third.ID)
	wantItemGone(t, is, col.ID, third.ID, "event@example.com")
	// Replacing an item with a tombstone's UID is fine too.
	mustItem(t, is, store.Item{ID: second.ID, CollectionID: col.ID, UID: "event@example.com", Data: []byte("two")})
	if got, err := is.ItemByUID(ctx, other.ID, "event@example.com"); err != nil || !cmp.Equal(got, elsewhere) {
		t.Errorf("other collection's item = %+v, %v; want %+v", got, err, elsewhere)
	}
	changes, err := is.ItemChanges(ctx, col.ID, tomb.ModSeq-1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var tombs int
	for _, ch := range changes {
		if ch.Deleted && ch.UID == "event@example.com" {
			tombs++
		}
	}
	// tomb, tomb2, the third's tombstone, then second with the UID.
	if len(changes) != 4 || tombs != 3 || !cmp.Equal(changes[0], tomb) || !cmp.Equal(changes[1], tomb2) ||
		changes[3].ID != second.ID || changes[3].Deleted {
		t.Errorf("changes = %+v; want the three tombstones of the UID in order, then the live item", changes)
	}
}

func testItemModSeq(t *testing.T, s store.Store) {
	ctx := t.Context()
	is := itemStore(t, s)
	u := mustUser(t, s, "alice")
	a := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassTasks, Name: "Tasks", Default: true})
	b := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassTasks, Name: "Other"})
	wantModSeq(t, is, u.ID, a.ID, 0)

	last := map[int64]int64{a.ID: 0, b.ID: 0}
	ids := map[int64][]int64{}
	step := func(what string, it store.Item) {
		t.Helper()
		if it.ModSeq <= last[it.CollectionID] {
			t.Errorf("%s: ModSeq %d, not above the previous %d", what, it.ModSeq, last[it.CollectionID])
		}
		last[it.CollectionID] = it.ModSeq
		for id, want := range last {
			wantModSeq(t, is, u.ID, id, want)
		}
	}
	for i := range 5 {
		for _, col := range []int64{a.ID, b.ID, a.ID} {
			it := mustItem(t, is, store.Item{CollectionID: col, UID: fmt.Sprintf("t%d-%d", i, len(ids[col])), Data: []byte("x")})
			ids[col] = append(ids[col], it.ID)
			step("insert", it)
		}
		id := ids[a.ID][i]
		step("replace", mustItem(t, is, store.Item{ID: id, CollectionID: a.ID, UID: fmt.Sprintf("r%d", i), Data: []byte("y")}))
		step("delete", mustDeleteItem(t, is, a.ID, id))
		// Failed writes leave the counter alone.
		if _, err := is.DeleteItem(ctx, a.ID, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("DeleteItem twice: %v, want ErrNotFound", err)
		}
		step("delete in b", mustDeleteItem(t, is, b.ID, ids[b.ID][i]))
	}
	// The changes are every item once, in ModSeq order.
	for _, col := range []int64{a.ID, b.ID} {
		changes, err := is.ItemChanges(ctx, col, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) != len(ids[col]) {
			t.Errorf("collection %d: %d changes, want %d", col, len(changes), len(ids[col]))
		}
		for i, ch := range changes {
			if i > 0 && ch.ModSeq <= changes[i-1].ModSeq {
				t.Errorf("collection %d: change ModSeq %d after %d", col, ch.ModSeq, changes[i-1].ModSeq)
			}
		}
		if len(changes) > 0 && changes[len(changes)-1].ModSeq != last[col] {
			t.Errorf("collection %d: last change ModSeq %d, want %d", col, changes[len(changes)-1].ModSeq, last[col])
		}
	}
}

func testItemChanges(t *testing.T, s store.Store) {
	ctx := t.Context()
	is := itemStore(t, s)
	u := mustUser(t, s, "alice")
	col := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassNotes, Name: "Notes", Default: true})
	other := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassNotes, Name: "Other"})
	wantChanges(t, is, col.ID, 0, 0)

	a := mustItem(t, is, store.Item{CollectionID: col.ID, UID: "a", Data: []byte("a1"), Summary: "A"})
	b := mustItem(t, is, store.Item{CollectionID: col.ID, UID: "b", Data: []byte("b1"), Summary: "B",
		Start: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)})
	c := mustItem(t, is, store.Item{CollectionID: col.ID, UID: "c", Data: []byte("c1")})
	mustItem(t, is, store.Item{CollectionID: other.ID, UID: "a", Data: []byte("other")})
	a = mustItem(t, is, store.Item{ID: a.ID, CollectionID: col.ID, UID: "a", Data: []byte("a2"), Summary: "A2"})
	bt := mustDeleteItem(t, is, col.ID, b.ID)
	want := store.Item{ID: b.ID, CollectionID: col.ID, UID: "b", ModSeq: bt.ModSeq, Deleted: true,
		Start: b.Start, Summary: "B", UpdatedAt: bt.UpdatedAt}
	if diff := cmp.Diff(want, bt); diff != "" {
		t.Errorf("DeleteItem tombstone (-want +got):\n%s", diff)
	}
	d := mustItem(t, is, store.Item{CollectionID: col.ID, UID: "d", Data: []byte("d1")})

	wantChanges(t, is, col.ID, 0, 0, c, a, bt, d)
	wantChanges(t, is, col.ID, c.ModSeq, 0, a, bt, d)
	wantChanges(t, is, col.ID, a.ModSeq, 0, bt, d)
	wantChanges(t, is, col.ID, 0, 2, c, a)
	wantChanges(t, is, col.ID, a.ModSeq, 1, bt)
	wantChanges(t, is, col.ID, 0, 100, c, a, bt, d)
	wantChanges(t, is, col.ID, d.ModSeq, 0)
	wantChanges(t, is, col.ID, d.ModSeq+100, 0)
	wantModSeq(t, is, u.ID, col.ID, d.ModSeq)

	// Paging with limit 1 visits every change once.
	var paged []store.Item
	for since := int64(0); ; {
		page, err := is.ItemChanges(ctx, col.ID, since, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 1 {
			t.Fatalf("ItemChanges(limit 1) returned %d items", len(page))
		}
		paged = append(paged, page...)
		since = page[0].ModSeq
	}
	if diff := cmp.Diff([]store.Item{c, a, bt, d}, paged); diff != "" {
		t.Errorf("paged changes (-want +got):\n%s", diff)
	}
}

func testItemTimes(t *testing.T, s store.Store) {
	ctx := t.Context()
	is := itemStore(t, s)
	u := mustUser(t, s, "alice")
	col := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassCalendar, Name: "Calendar", Default: true})
	berlin := time.FixedZone("CET", 3600)
	for i, tc := range []struct{ start, end time.Time }{
		{},
		{start: time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)}, // no end
		{end: time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)},   // no start (a task's due date)
		{start: time.Date(2025, 6, 1, 10, 30, 15, 123456789, berlin), end: time.Date(2025, 6, 1, 11, 0, 0, 999, berlin)},
		{start: time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC), end: time.Date(1970, 1, 1, 0, 0, 0, 1000, time.UTC)},
		{start: time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC), end: time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)},
	} {
		in := store.Item{CollectionID: col.ID, UID: fmt.Sprintf("ev%d", i), Data: []byte("VEVENT"), Start: tc.start, End: tc.end}
		check := func(what string, got store.Item) {
			t.Helper()
			for _, f := range []struct {
				name      string
				got, want time.Time
			}{{"Start", got.Start, tc.start}, {"End", got.End, tc.end}} {
				if f.want.IsZero() {
					if !f.got.IsZero() {
						t.Errorf("#%d %s: %s = %v, want zero", i, what, f.name, f.got)
					}
					continue
				}
				want := f.want.UTC().Truncate(time.Microsecond)
				if !f.got.Equal(want) || f.got.Location() != time.UTC {
					t.Errorf("#%d %s: %s = %v, want %v (UTC, to the microsecond)", i, what, f.name, f.got, want)
				}
			}
		}
		put := mustItem(t, is, in)
		check("PutItem", put)
		got, err := is.Item(ctx, col.ID, put.ID)
		if err != nil {
			t.Fatalf("Item: %v", err)
		}
		check("Item", got)
		if diff := cmp.Diff(put, got); diff != "" {
			t.Errorf("#%d Item differs from PutItem (-put +get):\n%s", i, diff)
		}
		byUID, err := is.ItemByUID(ctx, col.ID, in.UID)
		if err != nil {
			t.Fatalf("ItemByUID: %v", err)
		}
		check("ItemByUID", byUID)
		changes, err := is.ItemChanges(ctx, col.ID, put.ModSeq-1, 1)
		if err != nil || len(changes) != 1 {
			t.Fatalf("ItemChanges = %v, %v; want one", changes, err)
		}
		check("ItemChanges", changes[0])
		// A replace may clear the times.
		cleared := mustItem(t, is, store.Item{ID: put.ID, CollectionID: col.ID, UID: in.UID, Data: in.Data})
		if got, err := is.Item(ctx, col.ID, put.ID); err != nil || !got.Start.IsZero() || !got.End.IsZero() || !cmp.Equal(got, cleared) {
			t.Errorf("#%d after clearing: %+v, %v; want zero Start and End", i, got, err)
		}
	}
}

func testConcurrentPutItem(t *testing.T, s store.Store) {
	const workers, ops = 8, 15
	ctx := t.Context()
	is := itemStore(t, s)
	u := mustUser(t, s, "alice")
	col := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassContacts, Name: "Contacts", Default: true})

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		seqs []int64
		live = map[int64]bool{} // item IDs not deleted
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for g := range workers {
		wg.Go(func() {
			var mine []int64 // this worker's ModSeqs, in call order
			record := func(it store.Item) {
				mine = append(mine, it.ModSeq)
				mu.Lock()
				seqs = append(seqs, it.ModSeq)
				live[it.ID] = !it.Deleted
				mu.Unlock()
			}
			for i := range ops {
				uid := fmt.Sprintf("w%d-%d", g, i)
				it, err := is.PutItem(ctx, store.Item{CollectionID: col.ID, UID: uid, Data: []byte(uid)})
				if err != nil {
					fail(fmt.Errorf("PutItem(%s): %w", uid, err))
					return
				}
				record(it)
				switch i % 3 {
				case 1: // replace
					it, err = is.PutItem(ctx, store.Item{ID: it.ID, CollectionID: col.ID, UID: uid, Data: []byte("v2")})
				case 2: // delete
					it, err = is.DeleteItem(ctx, col.ID, it.ID)
				default:
					continue
				}
				if err != nil {
					fail(fmt.Errorf("write %s: %w", uid, err))
					return
				}
				record(it)
			}
			if !slices.IsSorted(mine) {
				fail(fmt.Errorf("worker %d: ModSeqs %v not increasing", g, mine))
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
	slices.Sort(seqs)
	if n := len(slices.Compact(slices.Clone(seqs))); n != len(seqs) {
		t.Errorf("%d writes got %d distinct ModSeqs", len(seqs), n)
	}
	wantModSeq(t, is, u.ID, col.ID, seqs[len(seqs)-1])
	changes, err := is.ItemChanges(ctx, col.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != workers*ops {
		t.Errorf("ItemChanges = %d items, want %d", len(changes), workers*ops)
	}
	for i, ch := range changes {
		if i > 0 && ch.ModSeq <= changes[i-1].ModSeq {
			t.Errorf("ItemChanges: ModSeq %d after %d", ch.ModSeq, changes[i-1].ModSeq)
		}
		if live[ch.ID] == ch.Deleted {
			t.Errorf("item %d: Deleted %v, want %v", ch.ID, ch.Deleted, !live[ch.ID])
		}
	}
}

func testItemsContextCanceled(t *testing.T, s store.Store) {
	is := itemStore(t, s)
	u := mustUser(t, s, "alice")
	col := mustCollection(t, is, store.Collection{UserID: u.ID, Class: store.ClassNotes, Name: "Notes", Default: true})
	it := mustItem(t, is, store.Item{CollectionID: col.ID, UID: "n", Data: []byte("n")})
	col.ModSeq = it.ModSeq
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	for name, call := range map[string]func() error{
		"Collections": func() error { _, err := is.Collections(ctx, u.ID); return err },
		"Collection":  func() error { _, err := is.Collection(ctx, u.ID, col.ID); return err },
		"CreateCollection": func() error {
			_, err := is.CreateCollection(ctx, store.Collection{UserID: u.ID, Class: store.ClassNotes, Name: "New"})
			return err
		},
		"UpdateCollection": func() error {
			return is.UpdateCollection(ctx, store.Collection{ID: col.ID, UserID: u.ID, Name: "Renamed"})
		},
		"DeleteCollection": func() error { return is.DeleteCollection(ctx, u.ID, col.ID) },
		"PutItem": func() error {
			_, err := is.PutItem(ctx, store.Item{CollectionID: col.ID, UID: "m", Data: []byte("m")})
			return err
		},
		"DeleteItem":  func() error { _, err := is.DeleteItem(ctx, col.ID, it.ID); return err },
		"Item":        func() error { _, err := is.Item(ctx, col.ID, it.ID); return err },
		"ItemByUID":   func() error { _, err := is.ItemByUID(ctx, col.ID, "n"); return err },
		"ItemChanges": func() error { _, err := is.ItemChanges(ctx, col.ID, 0, 0); return err },
	} {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with canceled context: error %v, want context.Canceled", name, err)
		}
	}
	// Nothing was written.
	wantCollections(t, is, u.ID, col)
	wantChanges(t, is, col.ID, 0, 0, it)
}
