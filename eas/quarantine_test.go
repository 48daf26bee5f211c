package eas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/easd/easd/internal/testenv"
	"github.com/easd/easd/store"
	"github.com/easd/easd/store/sqlite"
)

// quarantineFixture is a handler over a real SQLite store with user alice
// and her device, a clock the test moves and a log it reads.
type quarantineFixture struct {
	st   *sqlite.Store
	h    *Handler
	s    *Session
	now  time.Time
	logs *bytes.Buffer
	mu   sync.Mutex // guards now
}

func newQuarantineFixture(t *testing.T) *quarantineFixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, testenv.SQLitePath(t), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	u, err := st.CreateUser(ctx, "alice", "x")
	if err != nil {
		t.Fatal(err)
	}
	d, err := st.TouchDevice(ctx, store.Device{UserID: u.ID, DeviceID: "IPHONE1", DeviceType: "iPhone"})
	if err != nil {
		t.Fatal(err)
	}
	f := &quarantineFixture{st: st, now: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC), logs: &bytes.Buffer{}}
	f.h = NewHandler(Config{}, Deps{Store: st, Now: f.clock})
	f.s = &Session{User: u, Device: d, Log: slog.New(slog.NewTextHandler(f.logs, nil))}
	return f
}

func (f *quarantineFixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *quarantineFixture) tick() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(time.Minute)
}

func (f *quarantineFixture) list(t *testing.T) map[string]QuarantinedItem {
	t.Helper()
	l, err := QuarantinedItems(context.Background(), f.st, f.s.User.ID, f.s.Device.ID)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]QuarantinedItem{}
	for _, q := range l {
		m[q.Item] = q
	}
	return m
}

// round runs one response of collection coll: the items failed and those
// that went out.
func (f *quarantineFixture) round(t *testing.T, coll string, failed, ok []string) *itemGuard {
	t.Helper()
	g, err := f.h.guard(context.Background(), f.s, coll, "Folder "+coll)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range failed {
		g.fail(id, errors.New("bad "+id))
	}
	for _, id := range ok {
		g.ok(id)
	}
	if err := g.commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.tick()
	return g
}

// TestQuarantineStrikes: three failures quarantine an item (logged), an
// item that goes out is forgotten, an item failing again is not.
func TestQuarantineStrikes(t *testing.T) {
	f := newQuarantineFixture(t)
	start := f.clock()
	f.round(t, "5", []string{"5:1", "5:2"}, nil)
	f.round(t, "5", []string{"5:1"}, []string{"5:2"}) // 5:2 went out
	g := f.round(t, "5", []string{"5:1"}, []string{"5:1"})
	if got := g.retrying(); len(got) != 1 || got[0] != "5:1" {
		t.Errorf("retrying before the third strike: %v", got)
	}
	got := f.list(t)
	want := map[string]QuarantinedItem{"5:1": {Collection: "5", Folder: "Folder 5", Item: "5:1", Strikes: 3,
		First: start, Last: start.Add(2 * time.Minute), Reason: "bad 5:1"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("list (-want +got):\n%s", d)
	}
	if !got["5:1"].Quarantined() || !strings.Contains(f.logs.String(), "item quarantined for this device") || strings.Count(f.logs.String(), "item failed") != 3 {
		t.Errorf("log:\n%s", f.logs)
	}
	g, err := f.h.guard(context.Background(), f.s, "5", "")
	if err != nil {
		t.Fatal(err)
	}
	if !g.quarantined("5:1") || len(g.retrying()) != 0 || g.quarantined("5:2") {
		t.Errorf("guard: quarantined %v, retrying %v", g.quarantined("5:1"), g.retrying())
	}
	// Another collection's guard does not see them.
	if g, _ := f.h.guard(context.Background(), f.s, "6", ""); g.known("5:1") {
		t.Error("collection 6 sees collection 5's item")
	}
	if err := f.h.forgetCollection(context.Background(), f.s, "5"); err != nil || len(f.list(t)) != 0 {
		t.Errorf("after forgetCollection: %v %v", f.list(t), err)
	}
}

// TestQuarantineBounded: the list keeps the newest quarantineMax entries
// and long reasons are cut.
func TestQuarantineBounded(t *testing.T) {
	f := newQuarantineFixture(t)
	// A full list, then five more failures.
	var l quarantineList
	for i := range quarantineMax {
		f.tick()
		l.Items = append(l.Items, QuarantinedItem{Collection: "5", Item: fmt.Sprintf("5:%d", i+1), Strikes: 1, First: f.clock(), Last: f.clock(), Reason: "bad"})
	}
	if err := l.save(context.Background(), f.st, f.s.User.ID, f.s.Device.ID); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		f.tick()
		g, err := f.h.guard(context.Background(), f.s, "5", "")
		if err != nil {
			t.Fatal(err)
		}
		g.fail(fmt.Sprintf("5:%d", quarantineMax+i+1), errors.New(strings.Repeat("é", quarantineReasonMax)))
		if err := g.commit(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	got := f.list(t)
	if len(got) != quarantineMax {
		t.Fatalf("%d entries, want %d", len(got), quarantineMax)
	}
	for i := 1; i <= 5; i++ {
		if _, ok := got[fmt.Sprintf("5:%d", i)]; ok {
			t.Errorf("oldest entry 5:%d kept", i)
		}
	}
	if r := got[fmt.Sprintf("5:%d", quarantineMax+1)].Reason; len(r) > quarantineReasonMax+len("…") || !strings.HasSuffix(r, "…") || !json.Valid([]byte(`"`+r+`"`)) {
		t.Errorf("reason of %d bytes: %q", len(r), r)
	}
}

// TestQuarantineConcurrent: responses of two collections of one device
// recording strikes at once lose none (the device's lock).
func TestQuarantineConcurrent(t *testing.T) {
	f := newQuarantineFixture(t)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for _, coll := range []string{"5", "c9"} {
		wg.Go(func() {
			for i := range n {
				g, err := f.h.guard(context.Background(), f.s, coll, "")
				if err != nil {
					errs <- err
					return
				}
				g.fail(fmt.Sprintf("%s:%d", coll, i+1), errors.New("bad"))
				errs <- g.commit(context.Background())
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := f.list(t); len(got) != 2*n {
		t.Errorf("%d entries after %d concurrent strikes", len(got), 2*n)
	}
}

// TestQuarantineHideFailed: Ping's scan leaves out the messages that
// failed for the device, and only those it does not hold.
func TestQuarantineHideFailed(t *testing.T) {
	f := newQuarantineFixture(t)
	f.round(t, "5", []string{"5:3", "5:4"}, nil)
	scan := MailScan{UIDs: []uint32{1, 3, 4, 9}, Changed: []MailMeta{{UID: 3}, {UID: 4}, {UID: 9}}}
	items := map[uint32]itemState{1: {}, 4: {}} // 4 held (moved in since)
	got, err := f.h.hideFailed(context.Background(), f.s, "5", items, scan)
	if err != nil {
		t.Fatal(err)
	}
	want := MailScan{UIDs: []uint32{1, 4, 9}, Changed: []MailMeta{{UID: 4}, {UID: 9}}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("hideFailed (-want +got):\n%s", d)
	}
	if n := countChanges(items, got); n != 1 {
		t.Errorf("countChanges = %d, want 1 (message 9)", n)
	}
}

// TestResyncResolveFolder: a folder is found by ServerId, full name or a
// display name only one folder has.
func TestResyncResolveFolder(t *testing.T) {
	f := newQuarantineFixture(t)
	ctx := context.Background()
	m := folderMap{Next: 4, Entries: []folderEntry{
		{ID: "1", Name: "INBOX", Display: "INBOX", Type: folderInbox},
		{ID: "2", Name: "Work", Display: "Work"},
		{ID: "3", Name: "Work.Old", Parent: "Work", Display: "Old", Delim: '.'},
		{ID: "4", Name: "Archive.Old", Display: "Old", Delim: '.'},
	}}
	b, _ := json.Marshal(m)
	if err := f.st.PutUserSetting(ctx, f.s.User.ID, folderMapKey, b); err != nil {
		t.Fatal(err)
	}
	c, err := f.st.CreateCollection(ctx, store.Collection{UserID: f.s.User.ID, Class: store.ClassNotes, Name: "Notes", Default: true})
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{"1": "1", "Inbox": "1", "inbox": "1", "INBOX": "1", "Work.Old": "3",
		"work": "2", "Notes": collServerID(c.ID), collServerID(c.ID): collServerID(c.ID)} {
		if id, _, err := resolveFolder(ctx, f.st, f.s.User.ID, in); err != nil || id != want {
			t.Errorf("resolveFolder(%q) = %q, %v; want %q", in, id, err, want)
		}
	}
	if _, _, err := resolveFolder(ctx, f.st, f.s.User.ID, "Old"); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("two folders named Old: %v", err)
	}
	if _, _, err := resolveFolder(ctx, f.st, f.s.User.ID, "ob"); !errors.Is(err, ErrUnknownFolder) {
		t.Errorf("the Outbox: %v; want ErrUnknownFolder", err)
	}
	_, _, err = resolveFolder(ctx, f.st, f.s.User.ID, "Nowhere")
	if !errors.Is(err, ErrUnknownFolder) || !strings.Contains(err.Error(), "Old (Archive.Old, ServerId 4)") {
		t.Errorf("unknown folder: %v", err)
	}
}
