package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestPostgresURL(t *testing.T) {
	var dbURL, name string
	t.Run("inner", func(t *testing.T) {
		dbURL = PostgresURL(t)
		c, err := pgx.Connect(t.Context(), dbURL)
		if err != nil {
			t.Fatalf("connect to %s: %v", dbURL, err)
		}
		defer c.Close(context.Background())
		var tables int
		err = c.QueryRow(t.Context(),
			`SELECT current_database(), (SELECT count(*) FROM pg_tables WHERE schemaname = 'public')`).Scan(&name, &tables)
		if err != nil {
			t.Fatal(err)
		}
		if len(name) != len("easd_test_")+16 || name[:10] != "easd_test_" || tables != 0 {
			t.Errorf("database %q has %d tables; want a fresh easd_test_<hex>", name, tables)
		}
		if other := PostgresURL(t); other == dbURL {
			t.Errorf("two calls returned the same database %s", dbURL)
		}
	})
	if name == "" {
		return // skipped
	}
	// The cleanup of "inner" dropped the database.
	c, err := pgx.Connect(t.Context(), withDatabase(adminURL(), "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(t.Context(), `SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after the test ended", name)
	}
}

// adminURL returns the admin URL PostgresURL uses.
func adminURL() string {
	if s := os.Getenv("EASD_TEST_POSTGRES"); s != "" {
		return s
	}
	return DefaultPostgres
}

func TestWithDatabase(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "postgres://postgres@127.0.0.1:5432/x?sslmode=disable"},
		{"postgresql://u:p@h/?dbname=a", "postgresql://u:p@h/x"},
		{"host=h user=u", "host=h user=u dbname=x"},
	} {
		if got := withDatabase(tc.in, "x"); got != tc.want {
			t.Errorf("withDatabase(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSQLitePath(t *testing.T) {
	p := SQLitePath(t)
	if filepath.Base(p) != "easd.db" {
		t.Errorf("SQLitePath = %q, want .../easd.db", p)
	}
	if fi, err := os.Stat(filepath.Dir(p)); err != nil || !fi.IsDir() {
		t.Errorf("directory of %q: %v", p, err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("%q already exists: %v", p, err)
	}
}

// fakeTB records how PostgresURL gives up. Fatalf and Skipf stop it by
// panicking, as runtime.Goexit would stop a real test.
type fakeTB struct {
	testing.TB
	ctx    context.Context
	failed string
	skip   string
}

type stop struct{}

func (f *fakeTB) Helper()                  {}
func (f *fakeTB) Context() context.Context { return f.ctx }
func (f *fakeTB) Cleanup(func())           {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	panic(stop{})
}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skip = fmt.Sprintf(format, args...)
	panic(stop{})
}

func callPostgresURL(t *testing.T) *fakeTB {
	f := &fakeTB{TB: t, ctx: t.Context()}
	func() {
		defer func() {
			if r := recover(); r != nil && r != (stop{}) {
				panic(r)
			}
		}()
		PostgresURL(f)
	}()
	return f
}

func TestPostgresURLUnreachable(t *testing.T) {
	t.Setenv("EASD_TEST_POSTGRES", "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable")
	t.Setenv("CI", "")
	f := callPostgresURL(t)
	if f.failed != "" || !strings.Contains(f.skip, "127.0.0.1:1") {
		t.Errorf("outside CI: skip %q, fail %q; want a skip naming 127.0.0.1:1", f.skip, f.failed)
	}
	t.Setenv("CI", "true")
	f = callPostgresURL(t)
	if f.skip != "" || !strings.Contains(f.failed, "127.0.0.1:1") {
		t.Errorf("in CI: skip %q, fail %q; want a failure naming 127.0.0.1:1", f.skip, f.failed)
	}
}
