package testenv

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgConnect opens a connection to p, bounded.
func pgConnect(t *testing.T, p *PostgresServer) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, p.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// pgCount returns the rows of table t.
func pgCount(t *testing.T, c *pgx.Conn) int {
	t.Helper()
	var n int
	if err := c.QueryRow(context.Background(), `SELECT count(*) FROM t`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPostgresServerRestart(t *testing.T) {
	t.Parallel()
	p := Postgres(t)
	if !strings.HasPrefix(p.URL(), "postgres://postgres@127.0.0.1:") {
		t.Fatalf("URL %q; want postgres://postgres@127.0.0.1:port", p.URL())
	}
	ctx := context.Background()
	c := pgConnect(t, p)
	if _, err := c.Exec(ctx, `CREATE TABLE t (n int); INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	port := p.Port

	for i, mode := range []PGShutdown{PGFast, PGImmediate} {
		if err := p.Restart(mode); err != nil {
			t.Fatalf("Restart(%s): %v", mode, err)
		}
		if p.Port != port {
			t.Fatalf("after Restart(%s): port %d, want %d", mode, p.Port, port)
		}
		// The connection from before is gone; a new one sees every
		// committed row, the one inserted just before the crash too.
		if _, err := c.Exec(ctx, `SELECT 1`); err == nil {
			t.Errorf("after Restart(%s): the old connection still answers", mode)
		}
		c = pgConnect(t, p)
		if n := pgCount(t, c); n != i+1 {
			t.Errorf("after Restart(%s): %d rows, want %d", mode, n, i+1)
		}
		if _, err := c.Exec(ctx, `INSERT INTO t VALUES (2)`); err != nil {
			t.Fatal(err)
		}
	}

	// Stopped: nothing listens on the port; Stop again is an error.
	if err := p.Stop(PGFast); err != nil {
		t.Fatal(err)
	}
	if conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port)), time.Second); err == nil {
		conn.Close()
		t.Error("a stopped server still accepts connections")
	}
	if err := p.Stop(PGFast); !errors.Is(err, errPGStopped) {
		t.Errorf("Stop of a stopped server: %v, want %v", err, errPGStopped)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err == nil {
		t.Error("Start of a running server: no error")
	}
	if n := pgCount(t, pgConnect(t, p)); n != 3 {
		t.Errorf("after Stop and Start: %d rows, want 3", n)
	}
	if !strings.Contains(p.Log(), "database system is ready to accept connections") {
		t.Errorf("the server's log does not say it is ready:\n%s", p.Log())
	}
}

// TestDovecotRestart lives here with the other restart helper: Dovecot
// comes back on the same port with the same users and mail, and its old
// clients have lost their connections.
func TestDovecotRestart(t *testing.T) {
	t.Parallel()
	d := Dovecot(t, map[string]string{"alice": "s3cret"})
	d.Deliver(t, "alice", "", []byte("Subject: kept\r\n\r\nbody\r\n"))
	old := dialIMAP(t, d.Addr)
	if _, st := old.cmd("a1", "LOGIN alice s3cret"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("LOGIN: %s", st)
	}
	addr := d.Addr
	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	if d.Addr != addr {
		t.Fatalf("after Restart: Addr %s, want %s", d.Addr, addr)
	}
	// The old session was closed by the server.
	_ = old.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := old.c.Write([]byte("a2 NOOP\r\n")); err == nil {
		if l, err := old.r.ReadString('\n'); err == nil && strings.HasPrefix(l, "a2 OK") {
			t.Error("a session from before the restart still answers")
		}
	}
	s := dialIMAP(t, d.Addr)
	if _, st := s.cmd("b1", "LOGIN alice s3cret"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("LOGIN after Restart: %s", st)
	}
	if untagged, st := s.cmd("b2", "STATUS INBOX (MESSAGES)"); !strings.HasPrefix(st, "OK") || len(untagged) != 1 || !strings.Contains(untagged[0], "MESSAGES 1") {
		t.Fatalf("STATUS after Restart: %q %s; want MESSAGES 1", untagged, st)
	}

	// Stop and Start separately; a second Stop is an error.
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if conn, err := net.DialTimeout("tcp", d.Addr, time.Second); err == nil {
		conn.Close()
		t.Error("a stopped Dovecot still accepts connections")
	}
	if err := d.Stop(); err == nil {
		t.Error("Stop of a stopped Dovecot: no error")
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	if _, st := dialIMAP(t, d.Addr).cmd("c1", "LOGIN alice s3cret"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("LOGIN after Stop and Start: %s", st)
	}
}
