// Package migrations holds easd's forward-only SQL schema migrations, one
// directory per dialect (sqlite/, postgres/), and the runner that applies
// them.
//
// A migration file is named NNNN_name.sql, where NNNN is its version. Files
// are applied in version order, each in its own transaction together with
// its schema_migrations row, so a failed file leaves nothing half-applied.
// Applied migrations are never edited; changes go into a new file.
//
// The runner is driver-agnostic: store/sqlite and store/postgres adapt their
// connections to Session.
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
)

// Dialect names, which are also the directory names of the embedded files.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// LockID is the PostgreSQL advisory lock key held for the whole of a
// migration run, so that several easd instances starting at once against
// one database apply each migration exactly once. (ASCII "easdmigr".)
const LockID int64 = 0x656173646d696772

//go:embed sqlite/*.sql postgres/*.sql
var embedded embed.FS

// Migration is one SQL file.
type Migration struct {
	Version int    // from the NNNN_ file-name prefix, > 0
	Name    string // file name, e.g. "0001_init.sql"
	SQL     string // file contents; may hold several statements
}

// Files returns the embedded migrations of dialect (SQLite or Postgres),
// sorted by version.
func Files(dialect string) ([]Migration, error) {
	if _, err := dialectFor(dialect); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(embedded, dialect)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return Load(sub)
}

var fileName = regexp.MustCompile(`^([0-9]+)_[A-Za-z0-9_-]+\.sql$`)

// Load reads the *.sql files at the root of fsys, sorted by version. It
// rejects file names not of the form NNNN_name.sql and duplicate versions.
// Files uses it on the embedded files; tests may pass a testing/fstest.MapFS.
func Load(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migrations: %s: file name is not NNNN_name.sql", e.Name())
		}
		v, err := strconv.Atoi(m[1])
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migrations: %s: bad version %q", e.Name(), m[1])
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("migrations: %w", err)
		}
		ms = append(ms, Migration{Version: v, Name: e.Name(), SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	if err := check(ms); err != nil {
		return nil, err
	}
	return ms, nil
}

// check reports an error unless ms is sorted by strictly increasing,
// positive version.
func check(ms []Migration) error {
	for i, m := range ms {
		if m.Version <= 0 {
			return fmt.Errorf("migrations: %s: version must be positive", m.Name)
		}
		if i > 0 && ms[i-1].Version >= m.Version {
			return fmt.Errorf("migrations: %s and %s: versions not strictly increasing", ms[i-1].Name, m.Name)
		}
	}
	return nil
}

// Session is one database connection that Apply drives. Implementations
// must use a single connection throughout, so that a PostgreSQL advisory
// lock taken with Exec is held by the session that runs the transactions.
type Session interface {
	// Exec runs query outside any transaction.
	Exec(ctx context.Context, query string, args ...any) error
	// Begin starts a transaction. On SQLite it must take the write lock
	// at once (BEGIN IMMEDIATE), which serializes concurrent runners.
	Begin(ctx context.Context) (Tx, error)
}

// Tx is a transaction started by Session.Begin.
type Tx interface {
	// Exec runs query, which may hold several statements when args is empty.
	Exec(ctx context.Context, query string, args ...any) error
	// QueryInt runs a query returning one row of one integer column.
	QueryInt(ctx context.Context, query string, args ...any) (int64, error)
	// Commit commits the transaction.
	Commit(ctx context.Context) error
	// Rollback aborts the transaction.
	Rollback(ctx context.Context) error
}

// dialectSQL is the runner's own SQL in one dialect.
type dialectSQL struct {
	lock, unlock string // take/release the cross-process lock; "" if none
	createTable  string
	count        string // args: version
	insert       string // args: version, name
}

func dialectFor(dialect string) (dialectSQL, error) {
	switch dialect {
	case SQLite:
		// No lock statement: every transaction is BEGIN IMMEDIATE and
		// re-checks schema_migrations, which serializes runners.
		return dialectSQL{
			createTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
				version    INTEGER PRIMARY KEY,
				name       TEXT    NOT NULL,
				applied_at INTEGER NOT NULL -- unix microseconds, UTC
			) STRICT`,
			count:  `SELECT count(*) FROM schema_migrations WHERE version = ?`,
			insert: `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, CAST(unixepoch('subsec') * 1000000 AS INTEGER))`,
		}, nil
	case Postgres:
		return dialectSQL{
			lock:   `SELECT pg_advisory_lock($1)`,
			unlock: `SELECT pg_advisory_unlock($1)`,
			createTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
				version    integer     PRIMARY KEY,
				name       text        NOT NULL,
				applied_at timestamptz NOT NULL
			)`,
			count:  `SELECT count(*) FROM schema_migrations WHERE version = $1`,
			insert: `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())`,
		}, nil
	}
	return dialectSQL{}, fmt.Errorf("migrations: unknown dialect %q", dialect)
}

// Apply applies the migrations of ms not yet recorded in schema_migrations,
// in order, creating that table if needed, and returns the versions it
// applied (none when the schema is current). ms must be sorted by
// increasing version, as Files returns it.
//
// Each migration runs in its own transaction with its schema_migrations
// row. Apply stops at the first failure with an error naming the file, e.g.
// "migrations/postgres/0002_x.sql: ERROR: ..."; the versions applied before
// it stay applied and are returned. On PostgreSQL the whole run holds the
// advisory lock LockID on s.
func Apply(ctx context.Context, s Session, dialect string, ms []Migration) (applied []int, err error) {
	d, err := dialectFor(dialect)
	if err != nil {
		return nil, err
	}
	if err := check(ms); err != nil {
		return nil, err
	}
	if d.lock != "" {
		if err := s.Exec(ctx, d.lock, LockID); err != nil {
			return nil, fmt.Errorf("migrations: taking lock: %w", err)
		}
		defer func() {
			// Unlock even when ctx is done; a failure here means the
			// session is broken, which releases the lock anyway.
			if uerr := s.Exec(context.WithoutCancel(ctx), d.unlock, LockID); uerr != nil {
				err = errors.Join(err, fmt.Errorf("migrations: releasing lock: %w", uerr))
			}
		}()
	}
	if err := inTx(ctx, s, func(tx Tx) error { return tx.Exec(ctx, d.createTable) }); err != nil {
		return nil, fmt.Errorf("migrations: creating schema_migrations: %w", err)
	}
	for _, m := range ms {
		done := false
		err := inTx(ctx, s, func(tx Tx) error {
			n, err := tx.QueryInt(ctx, d.count, m.Version)
			if err != nil || n > 0 {
				return err
			}
			if err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			if err := tx.Exec(ctx, d.insert, m.Version, m.Name); err != nil {
				return err
			}
			done = true
			return nil
		})
		if err != nil {
			return applied, fmt.Errorf("migrations/%s/%s: %w", dialect, m.Name, err)
		}
		if done {
			applied = append(applied, m.Version)
		}
	}
	return applied, nil
}

// inTx runs fn in a transaction of s and commits it, or rolls it back if
// fn or the commit fails.
func inTx(ctx context.Context, s Session, fn func(Tx) error) error {
	tx, err := s.Begin(ctx)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		if rerr := tx.Rollback(context.WithoutCancel(ctx)); rerr != nil {
			return errors.Join(err, fmt.Errorf("rollback: %w", rerr))
		}
		return err
	}
	return tx.Commit(ctx)
}
