package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresGlob is where Debian's postgresql packages install the server
// programs, one directory per major version; Postgres takes the newest,
// else initdb and postgres on $PATH.
const PostgresGlob = "/usr/lib/postgresql/*/bin/initdb"

// Timing of a private PostgreSQL cluster.
const (
	// pgStartTimeout bounds how long the server may take to accept a
	// query after it was started, crash recovery included.
	pgStartTimeout = 60 * time.Second
	// pgStopTimeout bounds a shutdown; past it the postmaster is killed.
	pgStopTimeout = 30 * time.Second
)

// PGShutdown is a shutdown mode of PostgreSQL, as pg_ctl's -m names it.
type PGShutdown string

// The shutdown modes (the signal pg_ctl sends the postmaster).
const (
	// PGSmart waits for every client to disconnect (SIGTERM).
	PGSmart PGShutdown = "smart"
	// PGFast disconnects the clients, rolls back their transactions and
	// writes a checkpoint (SIGINT): a clean restart, as "pg_ctl restart
	// -m fast" or a package upgrade does it.
	PGFast PGShutdown = "fast"
	// PGImmediate stops every process at once without a checkpoint
	// (SIGQUIT): the next start runs crash recovery, as after a crash of
	// the server. Committed transactions survive (the WAL is written).
	PGImmediate PGShutdown = "immediate"
)

// PostgresServer is a private PostgreSQL cluster for one test, started by
// Postgres: the test may stop, restart and crash it without disturbing
// other tests, whose databases live on the shared server of PostgresURL.
type PostgresServer struct {
	// Dir holds the data directory (Dir/data), the server's log
	// (Dir/server.log) and its Unix socket; it is removed when the test
	// ends.
	Dir string
	// Port is the server's TCP port on 127.0.0.1; it stays the same
	// across restarts.
	Port int

	bindir string
	cred   *syscall.Credential // the postgres user's when run as root; else nil

	mu   sync.Mutex
	proc *child // nil while stopped
}

// Postgres initialises a fresh PostgreSQL cluster (initdb, user postgres,
// trust authentication, UTF8) in a new directory and starts it in the
// foreground as a child process listening on a free port of 127.0.0.1
// only (and on a Unix socket in its directory), with fsync off: a crash
// of the server (PGImmediate) loses nothing committed, a crash of the
// machine could. The server is stopped and its directory removed when t
// ends; its log is printed with t.Log if t failed. Several clusters may
// run at once.
//
// Run as root, the server runs as the system user "postgres" (PostgreSQL
// refuses root), which must exist; as another user, as that user.
//
// The programs are taken from PostgresGlob's newest version, else from
// $PATH. If they are missing the test is skipped, or fails when $CI is
// set, so that CI never silently skips PostgreSQL.
func Postgres(t testing.TB) *PostgresServer {
	t.Helper()
	unavailable := func(format string, a ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, a...)
		if os.Getenv("CI") != "" {
			t.Fatalf("testenv: PostgreSQL (package postgresql) is required when CI is set: %s", msg)
		}
		t.Skipf("testenv: PostgreSQL unavailable (apt-get install postgresql): %s", msg)
	}
	bindir, err := postgresBindir()
	if err != nil {
		unavailable("%v", err)
	}
	p := &PostgresServer{bindir: bindir}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			unavailable("system user \"postgres\" is missing (reinstall postgresql-common): %v", err)
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatalf("testenv: user postgres: %v", err)
		}
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
	}

	// The socket's path must stay well below the ~108 bytes of
	// sun_path, and the directory must be the server user's: a short
	// directory of our own, as for Dovecot.
	parent := os.TempDir()
	if len(parent) > 40 {
		parent = "/tmp"
	}
	dir, err := os.MkdirTemp(parent, "easd-pg-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p.Dir = dir
	if p.cred != nil {
		if err := os.Chown(dir, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	initdb := exec.Command(filepath.Join(bindir, "initdb"), "-D", filepath.Join(dir, "data"),
		"-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("testenv: initdb: %v\n%s", err, out)
	}

	// The port is picked by binding :0 and closing; another process may
	// take it before the server binds it, so retry on a failed start.
	var lastErr error
	for range 5 {
		if p.Port, err = freeLoopbackPort(); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		lastErr = p.Start()
		if lastErr == nil {
			t.Cleanup(func() {
				if err := p.Stop(PGImmediate); err != nil && !errors.Is(err, errPGStopped) {
					t.Errorf("testenv: stopping PostgreSQL: %v", err)
				}
				if t.Failed() {
					t.Logf("testenv: PostgreSQL log (port %d):\n%s", p.Port, p.Log())
				}
			})
			return p
		}
		if !strings.Contains(p.Log(), "could not bind") {
			break
		}
		t.Logf("testenv: PostgreSQL could not bind 127.0.0.1:%d; trying another port", p.Port)
	}
	t.Logf("testenv: PostgreSQL log:\n%s", p.Log())
	t.Fatalf("testenv: starting PostgreSQL: %v", lastErr)
	return nil
}

// postgresBindir returns the directory of initdb and postgres.
func postgresBindir() (string, error) {
	found, _ := filepath.Glob(PostgresGlob)
	// Newest major version first: 9.6 < 10 < 17.
	version := func(path string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(path))), 64)
		return v
	}
	slices.SortFunc(found, func(a, b string) int {
		va, vb := version(a), version(b)
		switch {
		case va > vb:
			return -1
		case va < vb:
			return 1
		}
		return 0
	})
	if len(found) == 0 {
		initdb, err := exec.LookPath("initdb")
		if err != nil {
			return "", fmt.Errorf("no %s and no initdb on $PATH", PostgresGlob)
		}
		found = []string{initdb}
	}
	dir := filepath.Dir(found[0])
	if _, err := os.Stat(filepath.Join(dir, "postgres")); err != nil {
		return "", err
	}
	return dir, nil
}

// URL returns the connection URL of the cluster's database "postgres" as
// the superuser postgres over TCP, without TLS. It stays valid across
// restarts.
func (p *PostgresServer) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", p.Port)
}

// errPGStopped is Stop's error when the server is not running.
var errPGStopped = errors.New("PostgreSQL is not running")

// Start starts the stopped server and waits until it answers a query
// (after PGImmediate, once crash recovery is done), at most a minute. It
// listens on the same port as before.
func (p *PostgresServer) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil {
		return errors.New("PostgreSQL is already running")
	}
	out, err := os.OpenFile(filepath.Join(p.Dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command(filepath.Join(p.bindir, "postgres"), "-D", filepath.Join(p.Dir, "data"),
		"-c", "listen_addresses=127.0.0.1", "-p", strconv.Itoa(p.Port),
		"-c", "unix_socket_directories="+p.Dir,
		"-c", "fsync=off", "-c", "max_connections=200", "-c", "logging_collector=off")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = p.Dir
	// As startChild, with the server user's credentials: Go sets the
	// parent-death signal after switching to them, so it holds.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	setParentDeathSignal(cmd.SysProcAttr)
	if err := cmd.Start(); err != nil {
		return err
	}
	proc := &child{name: "PostgreSQL", cmd: cmd, exited: make(chan struct{})}
	go func() {
		proc.waitErr = cmd.Wait()
		close(proc.exited)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), pgStartTimeout)
	defer cancel()
	for {
		err := p.answers(ctx)
		if err == nil {
			p.proc = proc
			return nil
		}
		select {
		case <-proc.exited:
			return proc.exitError()
		case <-ctx.Done():
			_ = signalAndWait(proc, syscall.SIGQUIT)
			return fmt.Errorf("PostgreSQL did not answer on 127.0.0.1:%d within %v: %v", p.Port, pgStartTimeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// answers runs one query on a new connection.
func (p *PostgresServer) answers(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := pgx.Connect(cctx, p.URL())
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(cctx, "SELECT 1")
	return err
}

// Stop shuts the server down in mode and waits for it to exit, at most
// 30 s before killing it. Its clients lose their connections.
func (p *PostgresServer) Stop(mode PGShutdown) error {
	sig, ok := map[PGShutdown]syscall.Signal{PGSmart: syscall.SIGTERM, PGFast: syscall.SIGINT, PGImmediate: syscall.SIGQUIT}[mode]
	if !ok {
		return fmt.Errorf("unknown PostgreSQL shutdown mode %q", mode)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
		return errPGStopped
	}
	proc := p.proc
	p.proc = nil
	return signalAndWait(proc, sig)
}

// Restart stops the server in mode and starts it again on the same port,
// as "pg_ctl restart -m MODE" does.
func (p *PostgresServer) Restart(mode PGShutdown) error {
	if err := p.Stop(mode); err != nil {
		return err
	}
	return p.Start()
}

// signalAndWait sends sig to the postmaster and waits for it to exit, at
// most pgStopTimeout before killing it.
func signalAndWait(c *child, sig syscall.Signal) error {
	select {
	case <-c.exited:
		return fmt.Errorf("PostgreSQL had already exited: %v", c.waitErr)
	default:
	}
	_ = c.cmd.Process.Signal(sig)
	select {
	case <-c.exited:
		return nil
	case <-time.After(pgStopTimeout):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("PostgreSQL did not stop within %v of %v; killed", pgStopTimeout, sig)
	}
}

// Log returns what the server has logged so far.
func (p *PostgresServer) Log() string {
	data, err := os.ReadFile(filepath.Join(p.Dir, "server.log"))
	if err != nil {
		return err.Error()
	}
	return string(data)
}
