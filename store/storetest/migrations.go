package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/easd/easd/migrations"
	"github.com/google/go-cmp/cmp"
)

// Migrator is one handle (its own connection or pool) on a database under
// the migration tests.
type Migrator interface {
	// Apply runs the store's migration runner with ms instead of the
	// embedded files.
	Apply(ctx context.Context, ms []migrations.Migration) ([]int, error)
	// TableExists reports whether the named table exists.
	TableExists(ctx context.Context, name string) (bool, error)
	// Versions returns the versions recorded in schema_migrations, sorted.
	Versions(ctx context.Context) ([]int, error)
}

// RunMigrations runs the migration tests for dialect. newDB must create an
// empty database and return a function that opens a new, independent,
// unmigrated handle on it, closed at the cleanup of the t it is given.
func RunMigrations(t *testing.T, dialect string, newDB func(t *testing.T) func(t *testing.T) Migrator) {
	files, err := migrations.Files(dialect)
	if err != nil {
		t.Fatalf("Files(%q): %v", dialect, err)
	}
	var all []int
	for _, m := range files {
		all = append(all, m.Version)
	}
	t.Run("Twice", func(t *testing.T) {
		t.Parallel()
		m := newDB(t)(t)
		ctx := t.Context()
		applied, err := m.Apply(ctx, files)
		if err != nil {
			t.Fatalf("first Apply: %v", err)
		}
		if diff := cmp.Diff(all, applied); diff != "" {
			t.Errorf("first Apply applied (-want +got):\n%s", diff)
		}
		for _, table := range []string{"users", "devices", "sync_states", "user_settings", "collections", "items", "schema_migrations"} {
			if ok, err := m.TableExists(ctx, table); err != nil || !ok {
				t.Errorf("table %s exists = %v, %v; want true", table, ok, err)
			}
		}
		applied, err = m.Apply(ctx, files)
		if err != nil || len(applied) != 0 {
			t.Errorf("second Apply = %v, %v; want nothing applied", applied, err)
		}
		wantVersions(t, m, all)
	})
	t.Run("BrokenFileRollsBack", func(t *testing.T) {
		t.Parallel()
		m := newDB(t)(t)
		ctx := t.Context()
		next := all[len(all)-1] + 1
		name := fmt.Sprintf("%04d_broken.sql", next)
		// The first two statements succeed; the third fails at run time.
		broken := append(slices.Clone(files), migrations.Migration{Version: next, Name: name, SQL: `
			CREATE TABLE broken_first (x integer);
			INSERT INTO broken_first (x) VALUES (1);
			SELECT * FROM no_such_table;`})
		applied, err := m.Apply(ctx, broken)
		wantPrefix := "migrations/" + dialect + "/" + name + ": "
		if err == nil || !strings.Contains(err.Error(), wantPrefix) {
			t.Errorf("Apply(broken) error = %v, want it to contain %q", err, wantPrefix)
		}
		if diff := cmp.Diff(all, applied); diff != "" {
			t.Errorf("Apply(broken) applied (-want +got):\n%s", diff)
		}
		if ok, err := m.TableExists(ctx, "broken_first"); err != nil || ok {
			t.Errorf("table broken_first exists = %v, %v; want false (rolled back)", ok, err)
		}
		wantVersions(t, m, all)

		fixed := append(slices.Clone(files), migrations.Migration{Version: next, Name: name,
			SQL: `CREATE TABLE broken_first (x integer)`})
		applied, err = m.Apply(ctx, fixed)
		if err != nil || !slices.Equal(applied, []int{next}) {
			t.Errorf("Apply(fixed) = %v, %v; want [%d]", applied, err, next)
		}
		wantVersions(t, m, append(slices.Clone(all), next))
	})
	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		const n = 4
		connect := newDB(t)
		ms := make([]Migrator, n)
		for i := range ms {
			ms[i] = connect(t)
		}
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			applied []int
		)
		for i, m := range ms {
			wg.Go(func() {
				got, err := m.Apply(t.Context(), files)
				if err != nil {
					t.Errorf("Apply #%d: %v", i, err)
				}
				mu.Lock()
				applied = append(applied, got...)
				mu.Unlock()
			})
		}
		wg.Wait()
		slices.Sort(applied)
		if diff := cmp.Diff(all, applied); diff != "" {
			t.Errorf("versions applied by all runners (-want +got):\n%s", diff)
		}
		wantVersions(t, ms[0], all)
	})
}

func wantVersions(t *testing.T, m Migrator, want []int) {
	t.Helper()
	got, err := m.Versions(t.Context())
	if err != nil {
		t.Fatalf("Versions: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("schema_migrations versions (-want +got):\n%s", diff)
	}
}
