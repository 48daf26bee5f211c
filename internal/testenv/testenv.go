// Package testenv provides test databases: a fresh PostgreSQL database per
// test and an SQLite path in a temporary directory.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPostgres is the admin URL used when EASD_TEST_POSTGRES is unset.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// PostgresURL creates a fresh, empty database named easd_test_<random hex>
// on the server of the admin URL in $EASD_TEST_POSTGRES (default
// DefaultPostgres), drops it (WITH (FORCE)) when t ends, and returns its
// URL. If the server cannot be reached the test is skipped, or fails when
// $CI is set, so that CI never silently skips PostgreSQL.
func PostgresURL(t testing.TB) string {
	t.Helper()
	admin := os.Getenv("EASD_TEST_POSTGRES")
	if admin == "" {
		admin = DefaultPostgres
	}
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatalf("testenv: EASD_TEST_POSTGRES: %v", err)
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > 5*time.Second {
		cfg.ConnectTimeout = 5 * time.Second
	}
	name := "easd_test_" + randomHex(t)
	err = adminExec(t.Context(), cfg, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()+` TEMPLATE template0`)
	if err != nil {
		where := net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
		if os.Getenv("CI") != "" {
			t.Fatalf("testenv: PostgreSQL at %s (EASD_TEST_POSTGRES) is required when CI is set: %v", where, err)
		}
		t.Skipf("testenv: PostgreSQL at %s unavailable (set EASD_TEST_POSTGRES): %v", where, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := adminExec(ctx, cfg, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
			t.Errorf("testenv: dropping test database %s: %v", name, err)
		}
	})
	return withDatabase(admin, name)
}

// adminExec runs one statement on a new connection of cfg.
func adminExec(ctx context.Context, cfg *pgx.ConnConfig, sql string) error {
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	_, err = c.Exec(ctx, sql)
	return err
}

// withDatabase returns the connection string admin with its database
// replaced by name. admin is a URL or a keyword/value string.
func withDatabase(admin, name string) string {
	if u, err := url.Parse(admin); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + name
		u.RawPath = ""
		q := u.Query()
		q.Del("dbname")
		u.RawQuery = q.Encode()
		return u.String()
	}
	return strings.TrimSpace(admin) + " dbname=" + name
}

func randomHex(t testing.TB) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return hex.EncodeToString(b)
}

// SQLitePath returns the path of a not yet existing database file,
// easd.db in a directory removed when t ends.
func SQLitePath(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "easd.db")
}
