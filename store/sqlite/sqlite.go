// Package sqlite implements store.Store on an SQLite database file using
// the pure-Go driver modernc.org/sqlite. It is easd's embedded default.
//
// The database runs in WAL mode. All writes go through one connection whose
// transactions are BEGIN IMMEDIATE, so writers in this process queue in Go
// instead of failing with SQLITE_BUSY; reads use a separate read-only pool
// and proceed concurrently with the writer. Other processes (for example
// the easd CLI while the server runs) wait up to busy_timeout (5 s).
//
// Timestamps are stored as INTEGER unix microseconds, UTC. The store stamps
// CreatedAt, UpdatedAt, FirstSeen and LastSeen itself from Options.Now; the
// corresponding fields passed in are ignored.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/easd/easd/migrations"
	"github.com/easd/easd/store"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Options configure Open.
type Options struct {
	// Migrate applies pending migrations during Open (easd serve). When
	// false the caller runs Store.Migrate explicitly (easd migrate).
	Migrate bool
	// ReadConns caps the read-only connection pool; 0 means 4.
	ReadConns int
	// Now returns the current time; nil means time.Now. Stored times are
	// truncated to microseconds.
	Now func() time.Time
}

// Store is an SQLite-backed store.Store. Its methods are safe for
// concurrent use.
type Store struct {
	path string  // as given to Open, for messages
	w    *sql.DB // the single writer connection
	r    *sql.DB // read-only pool
	now  func() time.Time
}

var _ store.Store = (*Store)(nil)

// Connection parameters. Pragmas are set per connection by the driver;
// _txlock=immediate makes every write transaction take the write lock at
// BEGIN, so it cannot fail later on lock upgrade.
const (
	writerParams = "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)" +
		"&_pragma=foreign_keys(ON)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	readerParams = "_pragma=busy_timeout(5000)&_pragma=foreign_keys(ON)&_pragma=query_only(1)"
)

// Open opens (creating if needed) the database file at path, creating its
// parent directory with mode 0700 if missing, and applies pending
// migrations if opts.Migrate is set. Errors name path.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: database path %q must not contain '?' or '#'", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: database path %q: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: cannot create directory for database %q: %w", path, err)
	}
	// SQLite silently opens an unwritable file read-only; fail clearly instead.
	if f, err := os.OpenFile(abs, os.O_RDWR, 0); err == nil {
		f.Close()
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("sqlite: database %q is not writable: %w", path, err)
	}

	s := &Store{path: path, now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if s.w, err = sql.Open("sqlite", abs+"?"+writerParams); err != nil {
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxIdleTime(0)
	s.w.SetConnMaxLifetime(0)
	if err := s.w.PingContext(ctx); err != nil {
		s.w.Close()
		return nil, fmt.Errorf("sqlite: cannot open database %q: %w", path, err)
	}
	if s.r, err = sql.Open("sqlite", abs+"?"+readerParams); err != nil {
		s.w.Close()
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}
	n := opts.ReadConns
	if n <= 0 {
		n = 4
	}
	s.r.SetMaxOpenConns(n)
	s.r.SetMaxIdleConns(n)
	if opts.Migrate {
		if _, err := s.Migrate(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// Ping checks that the database file can be read.
func (s *Store) Ping(ctx context.Context) error {
	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		return fmt.Errorf("sqlite: ping %q: %w", s.path, err)
	}
	return nil
}

// Migrate applies the pending embedded migrations and returns the versions
// it applied, none if the schema was current.
func (s *Store) Migrate(ctx context.Context) ([]int, error) {
	ms, err := migrations.Files(migrations.SQLite)
	if err != nil {
		return nil, err
	}
	return s.migrate(ctx, ms)
}

// migrate applies ms; tests pass broken migrations through it.
func (s *Store) migrate(ctx context.Context, ms []migrations.Migration) ([]int, error) {
	c, err := s.w.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: migrate %q: %w", s.path, err)
	}
	defer c.Close()
	applied, err := migrations.Apply(ctx, session{c}, migrations.SQLite, ms)
	if err != nil {
		return applied, fmt.Errorf("sqlite: migrate %q: %w", s.path, err)
	}
	return applied, nil
}

// session adapts the writer connection to migrations.Session. Its
// transactions are BEGIN IMMEDIATE (see writerParams).
type session struct{ c *sql.Conn }

func (s session) Exec(ctx context.Context, query string, args ...any) error {
	_, err := s.c.ExecContext(ctx, query, args...)
	return err
}

func (s session) Begin(ctx context.Context) (migrations.Tx, error) {
	tx, err := s.c.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return sessionTx{tx}, nil
}

type sessionTx struct{ tx *sql.Tx }

func (t sessionTx) Exec(ctx context.Context, query string, args ...any) error {
	_, err := t.tx.ExecContext(ctx, query, args...)
	return err
}

func (t sessionTx) QueryInt(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := t.tx.QueryRowContext(ctx, query, args...).Scan(&n)
	return n, err
}

func (t sessionTx) Commit(context.Context) error   { return t.tx.Commit() }
func (t sessionTx) Rollback(context.Context) error { return t.tx.Rollback() }

// inTx runs fn in a write transaction and commits it, or rolls back if fn
// fails.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// now returns the current time as stored: UTC, microsecond precision.
func (s *Store) stamp() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

func toDB(t time.Time) int64    { return t.UTC().UnixMicro() }
func fromDB(us int64) time.Time { return time.UnixMicro(us).UTC() }

// sqliteCode returns the extended result code of err, or 0.
func sqliteCode(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

func isUnique(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

func isForeignKey(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}
