package postgres

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// BusChannel is the PostgreSQL notification channel that carries the
// change notices of Bus.
const BusChannel = "easd_changes"

// MaxBusCollection is the longest collection, in bytes, that Bus.Publish
// accepts.
const MaxBusCollection = 256

// Reconnection and liveness timing of Bus.Listen.
const (
	busMinBackoff   = 200 * time.Millisecond
	busMaxBackoff   = 10 * time.Second
	busIdleCheck    = 30 * time.Second // re-LISTEN after this long without a notice
	busCheckTimeout = 10 * time.Second // bound of that re-LISTEN
)

// Bus carries change notices between easd instances sharing one
// PostgreSQL database, through LISTEN/NOTIFY on BusChannel. It has the
// method set of eas.ChangeBus.
//
// A notice is the payload "<instance> <user> <collection>": the random id
// of the publishing Bus, a user id and a collection id ("" for the folder
// hierarchy). It never holds content.
//
// Publish may be called concurrently with everything. Listen may be
// called once per Bus.
type Bus struct {
	s        *Store
	cfg      *pgx.ConnConfig
	log      *slog.Logger
	instance string

	listening atomic.Bool   // Listen was called
	connected atomic.Bool   // the listening connection is up
	pid       atomic.Uint32 // backend pid of the listening connection; 0 if none

	// Timing, fixed by NewBus; tests shorten it.
	minBackoff, maxBackoff  time.Duration
	idleCheck, checkTimeout time.Duration
}

// NewBus returns a Bus publishing through s's pool and listening on a
// connection of its own opened with s's connection settings. log receives
// connection losses (Warn), reconnections (Info) and malformed notices
// (Debug); nil discards them. The Bus does not own s: cancel Listen's
// context before closing s.
func (s *Store) NewBus(log *slog.Logger) *Bus {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var id [8]byte
	crand.Read(id[:]) // never fails (crypto/rand)
	return &Bus{
		s:            s,
		cfg:          s.cfg,
		log:          log,
		instance:     hex.EncodeToString(id[:]),
		minBackoff:   busMinBackoff,
		maxBackoff:   busMaxBackoff,
		idleCheck:    busIdleCheck,
		checkTimeout: busCheckTimeout,
	}
}

// Publish tells the other instances listening on the database that
// collection ("" for the folder hierarchy) of user may have changed; user
// 0 means every user. Callers publish after their change committed: the
// notice is sent through the pool outside any transaction (a NOTIFY
// inside a transaction would only be delivered at its commit anyway).
// Publish refuses a negative user, and a collection longer than
// MaxBusCollection bytes or holding a newline, a NUL or invalid UTF-8.
func (b *Bus) Publish(ctx context.Context, user int64, collection string) error {
	if user < 0 {
		return fmt.Errorf("postgres: publish: invalid user %d", user)
	}
	if err := checkBusCollection(collection); err != nil {
		return fmt.Errorf("postgres: publish: %w", err)
	}
	payload := b.instance + " " + strconv.FormatInt(user, 10) + " " + collection
	return b.s.withConn(ctx, func(c *pgx.Conn) error {
		if _, err := c.Exec(ctx, `SELECT pg_notify('`+BusChannel+`', $1)`, payload); err != nil {
			return fmt.Errorf("postgres: publish: %w", err)
		}
		return nil
	})
}

// checkBusCollection reports why collection cannot travel in a notice.
func checkBusCollection(collection string) error {
	switch {
	case len(collection) > MaxBusCollection:
		return fmt.Errorf("collection of %d bytes, longer than %d", len(collection), MaxBusCollection)
	case strings.ContainsAny(collection, "\n\x00"):
		return fmt.Errorf("collection %q holds a newline or NUL", collection)
	case !utf8.ValidString(collection):
		return fmt.Errorf("collection %q is not UTF-8", collection)
	}
	return nil
}

// parseNotice parses a notice payload; ok is false if it is malformed.
func parseNotice(payload string) (instance string, user int64, collection string, ok bool) {
	instance, rest, ok1 := strings.Cut(payload, " ")
	userStr, collection, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || instance == "" {
		return "", 0, "", false
	}
	user, err := strconv.ParseInt(userStr, 10, 64)
	if err != nil || user < 0 || strconv.FormatInt(user, 10) != userStr || checkBusCollection(collection) != nil {
		return "", 0, "", false
	}
	return instance, user, collection, true
}

// Connected reports whether the listening connection of Listen is up.
func (b *Bus) Connected() bool { return b.connected.Load() }

// Listen calls fn(user, collection) for every notice published by other
// Buses on the database, in the order they were committed, until ctx
// ends; it returns ctx's error then, having closed its connection. fn is
// called from Listen's goroutine and must not block. Notices of this Bus
// itself and malformed ones are skipped.
//
// Listen holds one dedicated connection. If it cannot open it, or loses
// it, it retries with a backoff of 200 ms doubling up to 10 s, with
// jitter, listens again, and then calls fn(0, "") once: notices may have
// been missed, every user may have changed. A connection silent for 30 s
// is checked by repeating LISTEN, so that a dead peer is noticed.
//
// Listen may be called once per Bus: any further call returns an error
// at once.
func (b *Bus) Listen(ctx context.Context, fn func(user int64, collection string)) error {
	if !b.listening.CompareAndSwap(false, true) {
		return errors.New("postgres: Bus.Listen called more than once")
	}
	var conn *pgx.Conn
	defer func() {
		b.connected.Store(false)
		b.pid.Store(0)
		if conn != nil {
			closeConn(conn)
		}
	}()

	missed := false // notices may have been missed since Listen was called
	backoff := time.Duration(0)
	for {
		if conn == nil {
			if backoff > 0 {
				t := time.NewTimer(jitter(backoff))
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-t.C:
				}
			}
			c, err := b.connect(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if !missed {
					b.log.Warn("change bus: cannot listen, retrying", "err", err)
				} else {
					b.log.Debug("change bus: reconnecting failed", "err", err)
				}
				missed = true
				backoff = min(max(2*backoff, b.minBackoff), b.maxBackoff)
				continue
			}
			conn, backoff = c, 0
			b.pid.Store(c.PgConn().PID())
			b.connected.Store(true)
			if missed {
				b.log.Info("change bus: listening again")
				fn(0, "")
				missed = false
			}
		}

		n, err := b.wait(ctx, conn)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			b.log.Warn("change bus: lost the listening connection", "err", err)
			b.connected.Store(false)
			b.pid.Store(0)
			closeConn(conn)
			conn, missed = nil, true
			backoff = b.minBackoff
		case n != nil:
			b.deliver(n.Channel, n.Payload, fn)
		}
	}
}

// connect opens the listening connection and listens on BusChannel.
func (b *Bus) connect(ctx context.Context) (*pgx.Conn, error) {
	c, err := pgx.ConnectConfig(ctx, b.cfg.Copy())
	if err != nil {
		return nil, newConnectError(b.cfg, err)
	}
	if _, err := c.Exec(ctx, `LISTEN `+BusChannel); err != nil {
		closeConn(c)
		return nil, fmt.Errorf("postgres: listen: %w", err)
	}
	return c, nil
}

// wait returns the next notification of conn, or nil, nil if there was
// none for b.idleCheck and the connection answered a repeated LISTEN. An
// error means the connection is unusable (or ctx ended).
func (b *Bus) wait(ctx context.Context, conn *pgx.Conn) (*pgconn.Notification, error) {
	wctx, cancel := context.WithTimeout(ctx, b.idleCheck)
	n, err := conn.WaitForNotification(wctx)
	cancel()
	if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) || conn.IsClosed() {
		return n, err
	}
	// Idle: check the connection. Repeating LISTEN is a no-op that
	// leaves the session's query shown as LISTEN in pg_stat_activity.
	cctx, cancel := context.WithTimeout(ctx, b.checkTimeout)
	defer cancel()
	if _, err := conn.Exec(cctx, `LISTEN `+BusChannel); err != nil {
		return nil, fmt.Errorf("postgres: listen: %w", err)
	}
	return nil, nil
}

// deliver passes a notification on to fn unless it is malformed or was
// published by b itself.
func (b *Bus) deliver(channel, payload string, fn func(int64, string)) {
	if channel != BusChannel {
		return
	}
	instance, user, collection, ok := parseNotice(payload)
	if !ok {
		if len(payload) > 300 {
			payload = payload[:300] + "..."
		}
		b.log.Debug("change bus: ignoring a malformed notice", "payload", payload)
		return
	}
	if instance == b.instance {
		return
	}
	fn(user, collection)
}

// jitter returns a duration drawn uniformly from [d/2, d].
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}
