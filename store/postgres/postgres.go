// Package postgres implements store.Store on PostgreSQL with pgx/v5. It is
// meant for production deployments where several easd instances share one
// database.
//
// Timestamps are timestamptz, returned in UTC with microsecond precision.
// The store stamps CreatedAt, UpdatedAt, FirstSeen and LastSeen itself from
// Options.Now; the corresponding fields passed in are ignored. Names, device
// ids, collections and sync keys use COLLATE "C", so listings are in byte
// order, as in the SQLite store.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/easd/easd/migrations"
	"github.com/easd/easd/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultConnectTimeout bounds each connection attempt when the URL does
// not set connect_timeout.
const DefaultConnectTimeout = 5 * time.Second

// Options configure Open.
type Options struct {
	// Migrate applies pending migrations during Open (easd serve). When
	// false the caller runs Store.Migrate explicitly (easd migrate).
	Migrate bool
	// MaxConns caps the connection pool; 0 means 10.
	MaxConns int
	// Now returns the current time; nil means time.Now. Stored times are
	// truncated to microseconds.
	Now func() time.Time
}

// Store is a PostgreSQL-backed store.Store. Its methods are safe for
// concurrent use.
type Store struct {
	cfg  *pgx.ConnConfig
	pool *pgxpool.Pool
	now  func() time.Time
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or keyword/value
// string as accepted by pgx), verifying that it answers, and applies
// pending migrations if opts.Migrate is set. A database that cannot be
// reached gives a one-line error such as
// "postgres: cannot connect to 127.0.0.1:5432: connection refused".
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	pcfg, err := parseConfig(url)
	if err != nil {
		return nil, err
	}
	pcfg.MaxConns = int32(opts.MaxConns)
	if pcfg.MaxConns <= 0 {
		pcfg.MaxConns = 10
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, newConnectError(pcfg.ConnConfig, err)
	}
	s := &Store{cfg: pcfg.ConnConfig, pool: pool, now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if opts.Migrate {
		if _, err := s.Migrate(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// parseConfig parses url, defaulting the connect timeout.
func parseConfig(url string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgconn's message masks any password in url.
		return nil, fmt.Errorf("postgres: invalid database URL: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	return cfg, nil
}

// Close closes the connections.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.withConn(ctx, func(c *pgx.Conn) error {
		if err := c.Ping(ctx); err != nil {
			return fmt.Errorf("postgres: ping: %w", err)
		}
		return nil
	})
}

// Migrate applies the pending embedded migrations and returns the versions
// it applied, none if the schema was current. It holds the advisory lock
// migrations.LockID on a dedicated connection throughout, so concurrent
// instances apply each migration once.
func (s *Store) Migrate(ctx context.Context) ([]int, error) {
	ms, err := migrations.Files(migrations.Postgres)
	if err != nil {
		return nil, err
	}
	return s.migrate(ctx, ms)
}

// migrate applies ms; tests pass broken migrations through it.
func (s *Store) migrate(ctx context.Context, ms []migrations.Migration) ([]int, error) {
	c, err := pgx.ConnectConfig(ctx, s.cfg)
	if err != nil {
		return nil, newConnectError(s.cfg, err)
	}
	// Closing the session also releases the advisory lock if unlocking failed.
	defer closeConn(c)
	applied, err := migrations.Apply(ctx, session{c}, migrations.Postgres, ms)
	if err != nil {
		return applied, fmt.Errorf("postgres: migrate: %w", err)
	}
	return applied, nil
}

// session adapts a dedicated connection to migrations.Session.
type session struct{ c *pgx.Conn }

func (s session) Exec(ctx context.Context, query string, args ...any) error {
	_, err := s.c.Exec(ctx, query, args...)
	return err
}

func (s session) Begin(ctx context.Context) (migrations.Tx, error) {
	tx, err := s.c.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return sessionTx{tx}, nil
}

type sessionTx struct{ tx pgx.Tx }

func (t sessionTx) Exec(ctx context.Context, query string, args ...any) error {
	_, err := t.tx.Exec(ctx, query, args...)
	return err
}

func (t sessionTx) QueryInt(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := t.tx.QueryRow(ctx, query, args...).Scan(&n)
	return n, err
}

func (t sessionTx) Commit(ctx context.Context) error   { return t.tx.Commit(ctx) }
func (t sessionTx) Rollback(ctx context.Context) error { return t.tx.Rollback(ctx) }

// withConn runs fn on a pooled connection.
func (s *Store) withConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return unavailable(newConnectError(s.cfg, err))
	}
	defer c.Release()
	err = fn(c.Conn())
	if err != nil && ctx.Err() == nil && (c.Conn().IsClosed() || connLost(err)) {
		return unavailable(err)
	}
	return err
}

// connLost reports whether err says the server went away or refuses
// sessions for now: SQLSTATE class 08 (connection exception), 57P01
// admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now.
func connLost(err error) bool {
	var ce *connectError
	if errors.As(err, &ce) {
		return true
	}
	code := pgCode(err)
	return strings.HasPrefix(code, "08") || code == "57P01" || code == "57P02" || code == "57P03"
}

// unavailableError marks err with store.ErrUnavailable.
type unavailableError struct{ err error }

func unavailable(err error) error { return &unavailableError{err} }

func (e *unavailableError) Error() string   { return e.err.Error() }
func (e *unavailableError) Unwrap() []error { return []error{e.err, store.ErrUnavailable} }

// withTx runs fn in a transaction on a pooled connection and commits it,
// or rolls back if fn fails.
func (s *Store) withTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return s.withConn(ctx, func(c *pgx.Conn) error { return pgx.BeginFunc(ctx, c, fn) })
}

// stamp returns the current time as stored: UTC, microsecond precision.
func (s *Store) stamp() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// PostgreSQL error codes (SQLSTATE) mapped to store errors.
const (
	uniqueViolation     = "23505"
	foreignKeyViolation = "23503"
)

func pgCode(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// connectError reports a failure to reach the server in one line naming
// the server: "postgres: cannot connect to HOST:PORT: REASON".
type connectError struct {
	addr string
	err  error
}

func newConnectError(cfg *pgx.ConnConfig, err error) error {
	if errors.Is(err, context.Canceled) {
		return err // the caller gave up; not a connectivity problem
	}
	port := strconv.Itoa(int(cfg.Port))
	addr := net.JoinHostPort(cfg.Host, port)
	if strings.HasPrefix(cfg.Host, "/") { // Unix-domain socket directory
		addr = cfg.Host + "/.s.PGSQL." + port
	}
	return &connectError{addr: addr, err: err}
}

func (e *connectError) Error() string {
	return "postgres: cannot connect to " + e.addr + ": " + reason(e.err)
}

func (e *connectError) Unwrap() error { return e.err }

// reason condenses a pgx connect error, which names the user and database
// and may span lines, to its cause.
func reason(err error) string {
	var pgErr *pgconn.PgError
	var errno syscall.Errno
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.As(err, &pgErr):
		return pgErr.Severity + ": " + pgErr.Message + " (SQLSTATE " + pgErr.Code + ")"
	case errors.As(err, &dnsErr):
		return dnsErr.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timed out"
	case errors.As(err, &errno):
		return errno.Error()
	}
	for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(u) {
		err = u
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

// closeConn closes a dedicated connection, waiting at most a second for
// the server.
func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.Close(ctx)
}
