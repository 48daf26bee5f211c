package migrations

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

func TestFiles(t *testing.T) {
	for _, dialect := range []string{SQLite, Postgres} {
		ms, err := Files(dialect)
		if err != nil {
			t.Fatalf("Files(%q): %v", dialect, err)
		}
		if len(ms) == 0 || ms[0].Version != 1 || ms[0].Name != "0001_init.sql" {
			t.Fatalf("Files(%q) = %d files, first %+v", dialect, len(ms), ms[0])
		}
		for _, table := range []string{"users", "devices", "sync_states"} {
			if !strings.Contains(ms[0].SQL, "CREATE TABLE "+table+" ") {
				t.Errorf("%s/0001_init.sql does not create %s", dialect, table)
			}
		}
	}
	// Both dialects evolve in step.
	s, _ := Files(SQLite)
	p, _ := Files(Postgres)
	names := func(ms []Migration) (n []string) {
		for _, m := range ms {
			n = append(n, m.Name)
		}
		return n
	}
	if diff := cmp.Diff(names(s), names(p)); diff != "" {
		t.Errorf("sqlite and postgres migrations differ (-sqlite +postgres):\n%s", diff)
	}
	if _, err := Files("mysql"); err == nil {
		t.Error("Files(mysql) succeeded")
	}
}

func TestLoad(t *testing.T) {
	ms, err := Load(fstest.MapFS{
		"0010_ten.sql":  {Data: []byte("ten")},
		"0002_two.sql":  {Data: []byte("two")},
		"README.md":     {Data: []byte("ignored")},
		"sub/0003.sql":  {Data: []byte("ignored: in a directory")},
		"0001_one.sql":  {Data: []byte("one")},
		"0003_t-3_.sql": {Data: []byte("three")},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Migration{
		{1, "0001_one.sql", "one"}, {2, "0002_two.sql", "two"},
		{3, "0003_t-3_.sql", "three"}, {10, "0010_ten.sql", "ten"},
	}
	if diff := cmp.Diff(want, ms); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"no name":    {"0001.sql": {}},
		"no version": {"init.sql": {}},
		"zero":       {"0000_zero.sql": {}},
		"duplicate":  {"0001_a.sql": {}, "001_b.sql": {}},
	} {
		if ms, err := Load(fsys); err == nil {
			t.Errorf("Load(%s) = %v, want error", name, ms)
		}
	}
}

// fake is a Session recording what Apply does. It keeps schema_migrations
// as a set and fails the Exec of any query containing "FAIL".
type fake struct {
	log     []string
	applied map[int]bool
	pending map[int]bool // inserted by the open transaction
	inTx    bool
}

func (f *fake) Exec(_ context.Context, q string, args ...any) error {
	f.log = append(f.log, fmt.Sprint(strings.Fields(q)[:2], args))
	return nil
}

func (f *fake) Begin(context.Context) (Tx, error) {
	if f.inTx {
		return nil, errors.New("nested transaction")
	}
	f.inTx, f.pending = true, map[int]bool{}
	f.log = append(f.log, "BEGIN")
	return fakeTx{f}, nil
}

type fakeTx struct{ f *fake }

func (t fakeTx) Exec(_ context.Context, q string, args ...any) error {
	if strings.Contains(q, "FAIL") {
		return errors.New("ERROR: boom")
	}
	if strings.HasPrefix(q, "INSERT INTO schema_migrations") {
		t.f.pending[args[0].(int)] = true
	}
	t.f.log = append(t.f.log, strings.Fields(q)[0])
	return nil
}

func (t fakeTx) QueryInt(_ context.Context, _ string, args ...any) (int64, error) {
	if t.f.applied[args[0].(int)] {
		return 1, nil
	}
	return 0, nil
}

func (t fakeTx) Commit(context.Context) error {
	for v := range t.f.pending {
		t.f.applied[v] = true
	}
	t.f.inTx = false
	t.f.log = append(t.f.log, "COMMIT")
	return nil
}

func (t fakeTx) Rollback(context.Context) error {
	t.f.inTx = false
	t.f.log = append(t.f.log, "ROLLBACK")
	return nil
}

func TestApply(t *testing.T) {
	ms := []Migration{{1, "0001_a.sql", "CREATE a"}, {2, "0002_b.sql", "CREATE b"}}
	f := &fake{applied: map[int]bool{}}
	applied, err := Apply(t.Context(), f, Postgres, ms)
	if err != nil || !cmp.Equal(applied, []int{1, 2}) {
		t.Fatalf("Apply = %v, %v; want [1 2]", applied, err)
	}
	lock := fmt.Sprint([]string{"SELECT", "pg_advisory_lock($1)"}, []any{LockID})
	unlock := fmt.Sprint([]string{"SELECT", "pg_advisory_unlock($1)"}, []any{LockID})
	want := []string{
		lock,
		"BEGIN", "CREATE", "COMMIT",
		"BEGIN", "CREATE", "INSERT", "COMMIT",
		"BEGIN", "CREATE", "INSERT", "COMMIT",
		unlock,
	}
	if diff := cmp.Diff(want, f.log); diff != "" {
		t.Errorf("first run (-want +got):\n%s", diff)
	}

	// Second run: nothing to do; each migration's check happens in a
	// transaction that is rolled back.
	f.log = nil
	applied, err = Apply(t.Context(), f, Postgres, ms)
	if err != nil || len(applied) != 0 {
		t.Fatalf("second Apply = %v, %v; want none", applied, err)
	}
	want = []string{lock, "BEGIN", "CREATE", "COMMIT", "BEGIN", "COMMIT", "BEGIN", "COMMIT", unlock}
	if diff := cmp.Diff(want, f.log); diff != "" {
		t.Errorf("second run (-want +got):\n%s", diff)
	}

	// A failing file is rolled back, named, stops the run, and the lock
	// is still released.
	f.log = nil
	ms = append(ms, Migration{3, "0003_bad.sql", "FAIL"}, Migration{4, "0004_never.sql", "CREATE d"})
	applied, err = Apply(t.Context(), f, Postgres, ms)
	if err == nil || err.Error() != "migrations/postgres/0003_bad.sql: ERROR: boom" || len(applied) != 0 {
		t.Errorf("Apply(bad) = %v, %v", applied, err)
	}
	want = []string{lock, "BEGIN", "CREATE", "COMMIT", "BEGIN", "COMMIT", "BEGIN", "COMMIT", "BEGIN", "ROLLBACK", unlock}
	if diff := cmp.Diff(want, f.log); diff != "" {
		t.Errorf("failing run (-want +got):\n%s", diff)
	}
	if f.applied[3] || f.applied[4] {
		t.Errorf("schema_migrations = %v after failure", f.applied)
	}

	// SQLite takes no advisory lock.
	f = &fake{applied: map[int]bool{}}
	if _, err := Apply(t.Context(), f, SQLite, ms[:1]); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"BEGIN", "CREATE", "COMMIT", "BEGIN", "CREATE", "INSERT", "COMMIT"}, f.log); diff != "" {
		t.Errorf("sqlite run (-want +got):\n%s", diff)
	}
}

func TestApplyRejects(t *testing.T) {
	f := &fake{applied: map[int]bool{}}
	for name, ms := range map[string][]Migration{
		"unsorted": {{2, "0002_b.sql", ""}, {1, "0001_a.sql", ""}},
		"zero":     {{0, "0000_a.sql", ""}},
	} {
		if _, err := Apply(t.Context(), f, SQLite, ms); err == nil {
			t.Errorf("Apply(%s) succeeded", name)
		}
	}
	if _, err := Apply(t.Context(), f, "oracle", nil); err == nil {
		t.Error("Apply(unknown dialect) succeeded")
	}
	if len(f.log) != 0 {
		t.Errorf("rejected runs touched the database: %v", f.log)
	}
}
