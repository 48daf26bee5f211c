package postgres

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/easd/easd/internal/testenv"
	"github.com/easd/easd/migrations"
	"github.com/easd/easd/store"
	"github.com/easd/easd/store/storetest"
	"github.com/jackc/pgx/v5"
)

func open(t *testing.T, url string, opts Options) *Store {
	t.Helper()
	s, err := Open(t.Context(), url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
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
		return open(t, testenv.PostgresURL(t), Options{Migrate: true})
	})
}

// migrator adapts a Store to storetest.Migrator.
type migrator struct{ s *Store }

func (m migrator) Apply(ctx context.Context, ms []migrations.Migration) ([]int, error) {
	return m.s.migrate(ctx, ms)
}

func (m migrator) TableExists(ctx context.Context, name string) (ok bool, err error) {
	err = m.s.withConn(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok)
	})
	return ok, err
}

func (m migrator) Versions(ctx context.Context) (vs []int, err error) {
	err = m.s.withConn(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
		if err != nil {
			return err
		}
		vs, err = pgx.CollectRows(rows, pgx.RowTo[int])
		return err
	})
	return vs, err
}

func TestMigrations(t *testing.T) {
	storetest.RunMigrations(t, migrations.Postgres, func(t *testing.T) func(t *testing.T) storetest.Migrator {
		url := testenv.PostgresURL(t)
		return func(t *testing.T) storetest.Migrator {
			return migrator{open(t, url, Options{MaxConns: 2})}
		}
	})
}

func TestMigrateMethod(t *testing.T) {
	url := testenv.PostgresURL(t)
	s := open(t, url, Options{})
	if _, err := s.User(t.Context(), "x"); err == nil {
		t.Fatal("User on an unmigrated database succeeded")
	}
	files, err := migrations.Files(migrations.Postgres)
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
	s2 := open(t, url, Options{Migrate: true})
	if _, err := s2.CreateUser(t.Context(), "alice", ""); err != nil {
		t.Errorf("CreateUser: %v", err)
	}
	// The advisory lock was released: another session can take it at once.
	var got bool
	err = s.withConn(t.Context(), func(c *pgx.Conn) error {
		return c.QueryRow(t.Context(), `SELECT pg_try_advisory_lock($1)`, migrations.LockID).Scan(&got)
	})
	if err != nil || !got {
		t.Errorf("pg_try_advisory_lock after Migrate = %v, %v; want true", got, err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	start := time.Now()
	_, err := Open(t.Context(), "postgres://postgres@127.0.0.1:1/easd?sslmode=disable", Options{Migrate: true})
	const want = "postgres: cannot connect to 127.0.0.1:1: connection refused"
	if err == nil || err.Error() != want {
		t.Errorf("Open(closed port) error = %q, want %q", err, want)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Open(closed port) took %v", d)
	}

	// A server that accepts but never answers hits connect_timeout. It
	// listens on loopback: tests never send traffic anywhere else.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, silent, until the listener closes
		}
	}()
	addr := ln.Addr().String()
	start = time.Now()
	_, err = Open(t.Context(), "postgres://postgres@"+addr+"/easd?sslmode=disable&connect_timeout=1", Options{})
	if err == nil || err.Error() != "postgres: cannot connect to "+addr+": timed out" {
		t.Errorf("Open(silent server) error = %q, want one line naming %s and the timeout", err, addr)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Open(silent server, connect_timeout=1) took %v", d)
	}

	_, err = Open(t.Context(), "postgres://user:secret@127.0.0.1:5432/easd?sslmode=bogus", Options{})
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("Open(bad URL) error = %q, want an error not showing the password", err)
	}
}

func TestOpenUnknownDatabase(t *testing.T) {
	// The test server, wherever it runs (5432, or the script's throwaway
	// cluster), with a database name that does not exist.
	u, err := url.Parse(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/easd_no_such_db"
	_, err = Open(t.Context(), u.String(), Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "postgres: cannot connect to "+u.Host+": FATAL: ") ||
		!strings.Contains(err.Error(), "easd_no_such_db") {
		t.Errorf("Open(unknown database) error = %q", err)
	}
}

func TestConnectTimeoutDefault(t *testing.T) {
	for url, want := range map[string]time.Duration{
		"postgres://h/db":                    DefaultConnectTimeout,
		"postgres://h/db?connect_timeout=2":  2 * time.Second,
		"host=h dbname=db connect_timeout=9": 9 * time.Second,
	} {
		cfg, err := parseConfig(url)
		if err != nil || cfg.ConnConfig.ConnectTimeout != want {
			t.Errorf("parseConfig(%q) timeout = %v, %v; want %v", url, cfg.ConnConfig.ConnectTimeout, err, want)
		}
	}
}

// TestPoolBounded checks that the pool never opens more than MaxConns
// connections, that waiters honor their context, and that a connection
// broken mid-use is replaced.
func TestPoolBounded(t *testing.T) {
	url := testenv.PostgresURL(t)
	s := open(t, url, Options{Migrate: true, MaxConns: 2})
	ctx := t.Context()

	var wg sync.WaitGroup
	pids := make(chan uint32, 20)
	for range 20 {
		wg.Go(func() {
			err := s.withConn(ctx, func(c *pgx.Conn) error {
				pids <- c.PgConn().PID()
				_, err := c.Exec(ctx, `SELECT pg_sleep(0.01)`)
				return err
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	close(pids)
	seen := map[uint32]bool{}
	for p := range pids {
		seen[p] = true
	}
	if len(seen) > 2 {
		t.Errorf("pool of 2 used %d connections", len(seen))
	}

	// With both connections held, a waiter gives up at its deadline.
	hold := make(chan struct{})
	held := make(chan struct{}, 2)
	for range 2 {
		wg.Go(func() {
			s.withConn(ctx, func(*pgx.Conn) error { held <- struct{}{}; <-hold; return nil })
		})
	}
	<-held
	<-held
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err := s.Ping(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Ping on exhausted pool = %v, want deadline exceeded", err)
	}
	close(hold)
	wg.Wait()

	// Kill the pooled connections from the server side; the store recovers.
	var victims []uint32
	for p := range seen {
		victims = append(victims, p)
	}
	admin := open(t, url, Options{})
	err = admin.withConn(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = ANY($1)`, victims)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // pgxpool pings connections idle over 1 s before handing them out
	if _, err := s.CreateUser(ctx, "after-kill", ""); err != nil {
		t.Errorf("CreateUser after server killed pooled connections: %v", err)
	}
}

func TestClosedStore(t *testing.T) {
	s, err := Open(t.Context(), testenv.PostgresURL(t), Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Ping(t.Context()); err == nil {
		t.Error("Ping after Close succeeded")
	}
}

func TestOptionsNow(t *testing.T) {
	fixed := time.Date(2030, 1, 2, 3, 4, 5, 6789, time.FixedZone("X", 3600))
	s := open(t, testenv.PostgresURL(t), Options{Migrate: true, Now: func() time.Time { return fixed }})
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
