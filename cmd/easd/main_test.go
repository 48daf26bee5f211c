package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/easd/easd/internal/testenv"
)

// result of one in-process command run.
type result struct {
	code           int
	stdout, stderr string
}

// easd runs one command line in-process with the given stdin and
// environment (nothing from the real environment leaks in).
func easd(t *testing.T, stdin string, environ map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{
		stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		getenv:     func(k string) string { return environ[k] },
		isTerminal: func(any) bool { return false },
		signals: func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithCancel(ctx)
		},
	}
	code := run(context.Background(), e, args)
	return result{code, out.String(), errb.String()}
}

// stores yields, for each store, the environment that selects it.
func stores(t *testing.T) map[string]map[string]string {
	return map[string]map[string]string{
		"sqlite":   {"EASD_DATA_DIR": t.TempDir()},
		"postgres": {"EASD_DATABASE": testenv.PostgresURL(t)},
	}
}

func TestUserLifecycle(t *testing.T) {
	for name, environ := range stores(t) {
		t.Run(name, func(t *testing.T) {
			if r := easd(t, "s3cret-pw\n", environ, "user", "add", "Alice"); r.code != 0 {
				t.Fatalf("user add: %+v", r)
			}
			r := easd(t, "", environ, "user", "list")
			if r.code != 0 || !strings.Contains(r.stdout, "alice") || !strings.Contains(r.stdout, "enabled") {
				t.Fatalf("user list after add: %+v", r)
			}
			if strings.Contains(r.stdout+r.stderr, "s3cret") {
				t.Fatal("password printed")
			}
			if r := easd(t, "other\n", environ, "user", "add", "alice"); r.code != 1 || !strings.Contains(r.stderr, "already exists") {
				t.Errorf("duplicate add: %+v", r)
			}
			if r := easd(t, "", environ, "user", "disable", "alice"); r.code != 0 {
				t.Errorf("disable: %+v", r)
			}
			if r := easd(t, "", environ, "user", "list"); !strings.Contains(r.stdout, "disabled") {
				t.Errorf("list after disable: %+v", r)
			}
			if r := easd(t, "", environ, "user", "enable", "alice"); r.code != 0 {
				t.Errorf("enable: %+v", r)
			}
			if r := easd(t, "new-pw\n", environ, "user", "passwd", "alice"); r.code != 0 {
				t.Errorf("passwd: %+v", r)
			}
			if r := easd(t, "pw\n", environ, "user", "passwd", "bob"); r.code != 1 || !strings.Contains(r.stderr, `no user "bob"`) {
				t.Errorf("passwd of missing user: %+v", r)
			}
			if r := easd(t, "", environ, "user", "delete", "alice"); r.code != 0 {
				t.Errorf("delete: %+v", r)
			}
			if r := easd(t, "", environ, "user", "list"); strings.Contains(r.stdout, "alice") {
				t.Errorf("list after delete: %+v", r)
			}
		})
	}
}

func TestUserPasswordChecks(t *testing.T) {
	environ := map[string]string{"EASD_DATA_DIR": t.TempDir()}
	if r := easd(t, "", environ, "user", "add", "alice"); r.code != 1 || !strings.Contains(r.stderr, "empty password") {
		t.Errorf("empty password: %+v", r)
	}
	if r := easd(t, "pw\n", environ, "user", "add", "al ice"); r.code != 2 {
		t.Errorf("name with a space: %+v", r)
	}
	if r := easd(t, "pw\n", environ, "user", "add"); r.code != 2 {
		t.Errorf("missing name: %+v", r)
	}
	// Flags may follow the name.
	dir := t.TempDir()
	if r := easd(t, "pw\n", nil, "user", "add", "carol", "--data-dir", dir); r.code != 0 {
		t.Fatalf("flags after name: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "easd.db")); err != nil {
		t.Errorf("--data-dir after the name was ignored: %v", err)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: easd COMMAND"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"serve", "--no-such-flag"}, 2, "flag provided but not defined"},
		{[]string{"serve", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"serve", "--tls-cert", "x"}, 2, "go together"},
		{[]string{"serve", "--log-format", "xml"}, 2, "log format"},
		{[]string{"user"}, 2, "missing subcommand"},
		{[]string{"user", "frob"}, 2, `unknown subcommand "frob"`},
		{[]string{"user", "list", "x"}, 2, "list takes no arguments"},
		{[]string{"migrate", "--database", "mysql://x"}, 2, "want empty, postgres://"},
		{[]string{"version", "x"}, 2, "no arguments"},
		{[]string{"help"}, 0, "commands:"},
		{[]string{"serve", "-h"}, 0, "EASD_LISTEN"},
	} {
		r := easd(t, "", nil, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.want) {
			t.Errorf("easd %q = exit %d, output:\n%s%s\nwant exit %d containing %q", tc.args, r.code, r.stdout, r.stderr, tc.code, tc.want)
		}
	}
}

func TestBadEnvironmentValue(t *testing.T) {
	r := easd(t, "", map[string]string{"EASD_SHUTDOWN_TIMEOUT": "soon"}, "serve")
	if r.code != 2 || !strings.Contains(r.stderr, "EASD_SHUTDOWN_TIMEOUT") {
		t.Errorf("bad env value: %+v", r)
	}
}

func TestUnreachableDatabase(t *testing.T) {
	// Port 1 on loopback: nothing listens, the connection is refused at once.
	r := easd(t, "", map[string]string{"EASD_DATABASE": "postgres://easd:topsecret@127.0.0.1:1/easd?sslmode=disable"}, "user", "list")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1: %+v", r.code, r)
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "127.0.0.1") {
		t.Errorf("want one line naming the host, got:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, "topsecret") || strings.Contains(r.stderr, "goroutine") {
		t.Errorf("password or stack trace in output:\n%s", r.stderr)
	}
}

func TestUnwritableSQLitePath(t *testing.T) {
	// Tests may run as root, which ignores directory permissions; a data
	// directory below a regular file cannot be created by anyone.
	file := filepath.Join(t.TempDir(), "afile")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(file, "data")
	r := easd(t, "", map[string]string{"EASD_DATA_DIR": dir}, "user", "list")
	if r.code != 1 || !strings.Contains(r.stderr, dir) {
		t.Errorf("want exit 1 naming %s, got %+v", dir, r)
	}
}

func TestMigrateCommand(t *testing.T) {
	for name, environ := range stores(t) {
		t.Run(name, func(t *testing.T) {
			r := easd(t, "", environ, "migrate")
			if r.code != 0 || !strings.Contains(r.stdout, "applied migration 0001") {
				t.Fatalf("first migrate: %+v", r)
			}
			r = easd(t, "", environ, "migrate")
			if r.code != 0 || !strings.Contains(r.stdout, "up to date") {
				t.Errorf("second migrate: %+v", r)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:pw@h/db":   "postgres://u:xxxxx@h/db",
		"postgres://u@h/db":      "postgres://u@h/db",
		"postgres://h/db":        "postgres://h/db",
		"postgres://u:p@ss@h/db": "postgres://u:xxxxx@h/db",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
