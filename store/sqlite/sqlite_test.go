package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/easd/easd/internal/testenv"
	"github.com/easd/easd/migrations"
	"github.com/easd/easd/store"
	"github.com/easd/easd/store/storetest"
)

func open(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(t.Context(), path, opts)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, testenv.SQLitePath(t), Options{Migrate: true})
	})
}

// migrator adapts a Store to storetest.Migrator.
type migrator struct{ s *Store }

func (m migrator) Apply(ctx context.Context, ms []migrations.Migration) ([]int, error) {
	return m.s.migrate(ctx, ms)
}

func (m migrator) TableExists(ctx context.Context, name string) (bool, error) {
	var n int
	err := m.s.r.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, name).Scan(&n)
	return n > 0, err
}

func (m migrator) Versions(ctx context.Context) ([]int, error) {
	rows, err := m.s.r.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	return vs, rows.Err()
}

func TestMigrations(t *testing.T) {
	storetest.RunMigrations(t, migrations.SQLite, func(t *testing.T) func(t *testing.T) storetest.Migrator {
		path := testenv.SQLitePath(t)
		return func(t *testing.T) storetest.Migrator {
			return migrator{open(t, path, Options{})}
		}
	})
}

func TestMigrateMethod(t *testing.T) {
	path := testenv.SQLitePath(t)
	s := open(t, path, Options{})
	if _, err := s.User(t.Context(), "x"); err == nil {
		t.Fatal("User on an unmigrated database succeeded")
	}
	files, err := migrations.Files(migrations.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	applied, err := s.Migrate(t.Context())
	if err != nil || len(applied) != len(files) || applied[0] != 1 {
		t.Fatalf("Migrate = %v, %v; want all %d versions", applied, err, len(files))
	}
	if applied, err := s.Migrate(t.Context()); err != nil || len(applied) != 0 {
		t.Errorf("second Migrate = %v, %v; want none", applied, err)
	}
	// Open with Migrate on a current database is a no-op.
	s2 := open(t, path, Options{Migrate: true})
	if _, err := s2.CreateUser(t.Context(), "alice", ""); err != nil {
		t.Errorf("CreateUser: %v", err)
	}
}

func TestOpenCreatesDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "easd.db")
	open(t, path, Options{Migrate: true})
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", fi.Mode().Perm())
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database file: %v", err)
	}
	var mode string
	s := open(t, path, Options{})
	if err := s.w.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	var fk, timeout int
	if err := s.r.QueryRowContext(t.Context(), "SELECT foreign_keys, timeout FROM pragma_foreign_keys, pragma_busy_timeout").Scan(&fk, &timeout); err != nil || fk != 1 || timeout != 5000 {
		t.Errorf("foreign_keys, busy_timeout = %d, %d, %v; want 1, 5000", fk, timeout, err)
	}
}

func TestOpenErrorsNamePath(t *testing.T) {
	// Tests may run as root, which ignores permission bits, so provoke
	// failures with paths that no user can create.
	file := filepath.Join(t.TempDir(), "plain-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, path := range []string{
		filepath.Join(file, "easd.db"),        // parent is a regular file
		filepath.Join(file, "sub", "easd.db"), // ancestor is a regular file
		"/proc/easd-test/easd.db",             // cannot mkdir in /proc
		"/proc/easd-test.db",                  // cannot create files in /proc
		dir,                                   // a directory, not a file
		"",
		"x.db?mode=ro",
	} {
		s, err := Open(t.Context(), path, Options{Migrate: true})
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", path)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, path) || !strings.HasPrefix(msg, "sqlite: ") || strings.Contains(msg, "\n") {
			t.Errorf("Open(%q) error %q: want one line naming the path", path, msg)
		}
	}
}

func TestClosedStore(t *testing.T) {
	s, err := Open(t.Context(), testenv.SQLitePath(t), Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Error("Ping after Close succeeded")
	}
}

func TestOptionsNow(t *testing.T) {
	fixed := time.Date(2030, 1, 2, 3, 4, 5, 6789, time.FixedZone("X", 3600))
	s := open(t, testenv.SQLitePath(t), Options{Migrate: true, Now: func() time.Time { return fixed }})
	want := fixed.UTC().Truncate(time.Microsecond)
	u, err := s.CreateUser(t.Context(), "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.TouchDevice(t.Context(), store.Device{UserID: u.ID, DeviceID: "d"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.User(t.Context(), "alice")
	if err != nil || got.CreatedAt != want || u.CreatedAt != want || d.FirstSeen != want || d.LastSeen != want {
		t.Errorf("times = %v, %v, %v, %v (%v); want %v", u.CreatedAt, got.CreatedAt, d.FirstSeen, d.LastSeen, err, want)
	}
	c, err := s.CreateCollection(t.Context(), store.Collection{UserID: u.ID, Class: store.ClassNotes, Name: "Notes"})
	if err != nil {
		t.Fatal(err)
	}
	it, err := s.PutItem(t.Context(), store.Item{CollectionID: c.ID, UID: "n", Data: []byte("n")})
	if err != nil {
		t.Fatal(err)
	}
	gotC, err := s.Collection(t.Context(), u.ID, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	gotIt, err := s.Item(t.Context(), c.ID, it.ID)
	if err != nil || c.CreatedAt != want || gotC.CreatedAt != want || it.UpdatedAt != want || gotIt.UpdatedAt != want {
		t.Errorf("collection and item times = %v, %v, %v, %v (%v); want %v", c.CreatedAt, gotC.CreatedAt, it.UpdatedAt, gotIt.UpdatedAt, err, want)
	}
}
