package imapbridge

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Defaults of PoolOptions.
const (
	DefaultPoolMaxPerUser  = 3
	DefaultPoolIdleTimeout = 5 * time.Minute
)

const (
	// poolNoopAfter is how long a connection may sit idle before Acquire
	// checks it with a NOOP rather than only by its state.
	poolNoopAfter = 30 * time.Second
	// poolNoopTimeout bounds that NOOP, on top of the caller's context.
	poolNoopTimeout = 10 * time.Second
	// poolMaxReapInterval bounds the period of the idle reaper.
	poolMaxReapInterval = time.Minute
)

// ErrPoolClosed is returned (wrapped) by Acquire once the Pool is closed.
// It wraps ErrUnavailable.
var ErrPoolClosed = fmt.Errorf("%w: connection pool closed", ErrUnavailable)

// PoolOptions configures a Pool.
type PoolOptions struct {
	// MaxPerUser bounds the connections of one user, open or being
	// opened, whatever the number of callers (devices, folders); past it
	// Acquire waits for one to be released. 0 means
	// DefaultPoolMaxPerUser. Keep it well below the upstream's own limit
	// (Dovecot's mail_max_userip_connections is 10 by default), which
	// also counts the user's other mail clients and other easd processes.
	MaxPerUser int
	// IdleTimeout is how long a released connection is kept for reuse;
	// past it, it is closed. 0 means DefaultPoolIdleTimeout.
	IdleTimeout time.Duration
	// Now is the clock that ages idle connections; nil means time.Now.
	Now func() time.Time
	// Logger receives debug records on connections opened and closed;
	// nil discards them. Records name users, never passwords.
	Logger *slog.Logger
}

// PoolStats counts a Pool's connections, in total or of one user.
type PoolStats struct {
	// Open counts the connections open or being opened (dialled,
	// logging in); it never exceeds MaxPerUser for one user.
	Open int
	// Idle counts the open connections waiting in the pool for reuse.
	Idle int
	// InUse counts the connections acquired and not yet released.
	InUse int
	// Waiting counts the Acquire calls waiting for a connection.
	Waiting int
}

// Pool keeps authenticated IMAP connections to the upstream, per user,
// for reuse, and bounds how many each user has. It is safe for concurrent
// use. Close it to close its connections and stop its reaper goroutine.
//
// The pool keeps no password: an idle connection is already logged in,
// and a new one needs the password of the Acquire call that opens it, so
// every Acquire takes the password. Each connection records an
// HMAC-SHA256 of its user name and password, under a key drawn at random
// by NewPool (as CachedAuthenticator does), so that Acquire reuses only
// connections logged in with the same password.
//
// User names are keys as given: the caller should canonicalise them (the
// upstream may treat "Alice" and "alice" as one user, which would then get
// two buckets of MaxPerUser).
type Pool struct {
	auth    *IMAPAuthenticator // for its dial, TLS and error helpers
	cfgErr  error              // from NewIMAPAuthenticator, returned by Acquire
	max     int
	idleTTL time.Duration
	now     func() time.Time
	log     *slog.Logger
	key     [32]byte

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	reaped sync.WaitGroup // the reaper goroutine

	mu     sync.Mutex
	closed bool
	users  map[string]*poolUser
}

// poolUser is the state of one user's connections. Its slots, open or
// being opened, are len(idle) + inUse + dialing.
type poolUser struct {
	name    string
	mac     [sha256.Size]byte // of the latest successful login
	idle    []*poolConn       // most recently released last
	inUse   int
	dialing int
	all     map[*poolConn]struct{} // idle and in use, for Close
	waiters list.List              // of *poolWaiter, first come first
}

func (u *poolUser) slots() int { return len(u.idle) + u.inUse + u.dialing }

// poolConn is one connection, logged in.
type poolConn struct {
	c        *imapclient.Client
	mac      [sha256.Size]byte
	released time.Time // by the Pool's clock
}

// poolWaiter is an Acquire waiting for a slot. When granted, ch receives
// a connection in use, or nil for a slot reserved for dialling.
type poolWaiter struct {
	ch      chan *poolConn // buffered: granting never blocks
	granted bool
	el      *list.Element
}

// NewPool returns a Pool of connections to the upstream of cfg, checked
// as NewIMAPAuthenticator does; if cfg is invalid, every Acquire returns
// the error, wrapping ErrUnavailable. It starts the goroutine that closes
// connections idle beyond IdleTimeout, until Close. It does not connect.
func NewPool(cfg Config, opts PoolOptions) *Pool {
	a, err := NewIMAPAuthenticator(cfg)
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	p := &Pool{
		auth:    a,
		cfgErr:  err,
		max:     opts.MaxPerUser,
		idleTTL: opts.IdleTimeout,
		now:     opts.Now,
		log:     opts.Logger,
		users:   make(map[string]*poolUser),
	}
	if p.max <= 0 {
		p.max = DefaultPoolMaxPerUser
	}
	if p.idleTTL <= 0 {
		p.idleTTL = DefaultPoolIdleTimeout
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	rand.Read(p.key[:]) // never fails (crypto/rand panics instead)
	p.ctx, p.cancel = context.WithCancel(context.Background())
	interval := min(max(p.idleTTL/2, 10*time.Millisecond), poolMaxReapInterval)
	p.reaped.Add(1)
	go p.reaper(interval)
	return p
}

// Conn is a connection acquired from a Pool, logged in as its user. It
// is for one goroutine at a time; give it back with exactly one of
// Release or Discard (further calls do nothing), and do not use it after.
type Conn struct {
	p    *Pool
	u    *poolUser
	pc   *poolConn
	done atomic.Bool
}

// Client returns the IMAP client of the connection, in the authenticated
// or selected state (the mailbox of a previous user of the connection may
// still be selected: SELECT the one needed). Do not Close or Logout it:
// Discard the Conn instead.
func (c *Conn) Client() *imapclient.Client { return c.pc.c }

// Release gives the connection back to the pool for reuse. Call it only
// when no command is in progress and the connection is in a known state;
// after an error, call Discard. A connection the server has closed is
// dropped rather than kept.
//
// To bound commands by a context, close the connection when it ends and
// give it back afterwards:
//
//	stop := context.AfterFunc(ctx, conn.Discard)
//	... commands ...
//	if stop() {
//		conn.Release()
//	}
func (c *Conn) Release() {
	if c.done.Swap(true) {
		return
	}
	c.p.release(c.u, c.pc)
}

// Discard closes the connection and frees its slot in the pool. It may be
// called from any goroutine, e.g. to abort a command in progress.
func (c *Conn) Discard() {
	if c.done.Swap(true) {
		return
	}
	c.p.discard(c.u, c.pc)
}

// Acquire returns a connection logged in as user with password: an idle
// one opened with the same password, or a new one if the user has fewer
// than MaxPerUser; otherwise it waits, first come first served, for one
// to be released or discarded. Idle connections opened with another
// password are closed (the password may have changed), and the new
// password is checked by a new LOGIN.
//
// A connection that the server closed, or idle beyond IdleTimeout, is not
// handed out; one idle for more than 30 s is first checked with a NOOP.
// The password is used only to log in, and not kept.
//
// Errors wrap ErrBadCredentials if the upstream rejected the password (or
// it is empty or holds a NUL byte), and ErrUnavailable otherwise: the
// upstream could not be reached or failed, the pool is closed
// (ErrPoolClosed), or ctx ended (its error is wrapped too).
func (p *Pool) Acquire(ctx context.Context, user, password string) (*Conn, error) {
	if user == "" || password == "" || strings.ContainsRune(user, 0) || strings.ContainsRune(password, 0) {
		return nil, fmt.Errorf("%w: empty or unsendable user name or password", ErrBadCredentials)
	}
	if p.cfgErr != nil {
		return nil, p.cfgErr
	}
	mac := p.mac(user, password)
	u, pc, err := p.take(ctx, user, mac)
	if err != nil {
		return nil, err
	}
	if pc != nil {
		if p.usable(ctx, pc, mac) {
			return &Conn{p: p, u: u, pc: pc}, nil
		}
		if err := ctx.Err(); err != nil {
			p.discard(u, pc)
			return nil, fmt.Errorf("%w: %s: checking connection of %q: %w", ErrUnavailable, p.auth.cfg.Addr, user, err)
		}
		// Keep the slot, and open a new connection in it.
		p.mu.Lock()
		u.inUse--
		delete(u.all, pc)
		u.dialing++
		p.mu.Unlock()
		pc.c.Close()
	}
	pc, err = p.dial(ctx, user, password, mac)

	p.mu.Lock()
	u.dialing--
	if p.closed {
		if err == nil {
			pc.c.Close() // quick: the connection is idle
		}
		err = ErrPoolClosed
	}
	if err != nil {
		p.freeSlotLocked(u)
		p.deleteIfUnusedLocked(u)
		p.mu.Unlock()
		return nil, err
	}
	var drop []*poolConn
	if !hmac.Equal(u.mac[:], mac[:]) {
		// A new password works: connections idle with the old one go.
		u.mac = mac
		drop = p.dropIdleLocked(u, func(*poolConn) bool { return true })
	}
	u.inUse++
	u.all[pc] = struct{}{}
	open := u.slots()
	p.mu.Unlock()
	closeAll(drop)
	p.log.Debug("imap pool: connection opened", "user", user, "open", open, "dropped", len(drop))
	return &Conn{p: p, u: u, pc: pc}, nil
}

// take waits for, and returns, an idle connection of user (in use, to be
// checked) or a slot reserved for dialling (pc nil).
func (p *Pool) take(ctx context.Context, user string, mac [sha256.Size]byte) (u *poolUser, pc *poolConn, err error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, nil, ErrPoolClosed
	}
	u = p.users[user]
	if u == nil {
		u = &poolUser{name: user, all: make(map[*poolConn]struct{})}
		p.users[user] = u
	}
	var drop []*poolConn
	if len(u.idle) > 0 && !hmac.Equal(u.mac[:], mac[:]) {
		drop = p.dropIdleLocked(u, func(*poolConn) bool { return true })
	}
	switch {
	case len(u.idle) > 0:
		pc = u.idle[len(u.idle)-1]
		u.idle[len(u.idle)-1] = nil
		u.idle = u.idle[:len(u.idle)-1]
		u.inUse++
	case u.slots() < p.max:
		u.dialing++
	default:
		w := &poolWaiter{ch: make(chan *poolConn, 1)}
		w.el = u.waiters.PushBack(w)
		p.mu.Unlock()
		closeAll(drop)
		pc, err = p.wait(ctx, u, w)
		return u, pc, err
	}
	p.mu.Unlock()
	if len(drop) > 0 {
		p.log.Debug("imap pool: dropped idle connections opened with another password", "user", user, "dropped", len(drop))
	}
	closeAll(drop)
	return u, pc, nil
}

// wait waits for w to be granted, and returns what it was granted.
func (p *Pool) wait(ctx context.Context, u *poolUser, w *poolWaiter) (*poolConn, error) {
	var err error
	select {
	case pc := <-w.ch:
		return pc, nil
	case <-ctx.Done():
		err = fmt.Errorf("%w: %s: waiting for a connection of %q: %w", ErrUnavailable, p.auth.cfg.Addr, u.name, ctx.Err())
	case <-p.ctx.Done():
		err = ErrPoolClosed
	}
	p.mu.Lock()
	if !w.granted {
		u.waiters.Remove(w.el)
		p.deleteIfUnusedLocked(u)
		p.mu.Unlock()
		return nil, err
	}
	p.mu.Unlock()
	// Granted meanwhile: give it back.
	if pc := <-w.ch; pc != nil {
		p.release(u, pc)
	} else {
		p.mu.Lock()
		u.dialing--
		p.freeSlotLocked(u)
		p.deleteIfUnusedLocked(u)
		p.mu.Unlock()
	}
	return nil, err
}

// usable reports whether pc, taken for an Acquire with mac, may be handed
// out.
func (p *Pool) usable(ctx context.Context, pc *poolConn, mac [sha256.Size]byte) bool {
	if !hmac.Equal(pc.mac[:], mac[:]) || !alive(pc) {
		return false
	}
	idle := p.now().Sub(pc.released)
	if idle >= p.idleTTL {
		return false
	}
	if idle <= poolNoopAfter {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, poolNoopTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { pc.c.Close() })
	err := pc.c.Noop().Wait()
	return stop() && err == nil
}

// alive reports, without talking to the server, whether pc is open and
// not logged out.
func alive(pc *poolConn) bool {
	select {
	case <-pc.c.Closed():
		return false
	default:
	}
	// Not a check for the authenticated or selected state: imapclient
	// updates its state just after a command's Wait returns, so right
	// after LOGIN it may still say not authenticated.
	return pc.c.State() != imap.ConnStateLogout
}

// release puts pc, in use by u, back: to the first waiter, or idle.
func (p *Pool) release(u *poolUser, pc *poolConn) {
	p.mu.Lock()
	pc.released = p.now()
	if !p.closed && alive(pc) && hmac.Equal(pc.mac[:], u.mac[:]) {
		if el := u.waiters.Front(); el != nil {
			w := u.waiters.Remove(el).(*poolWaiter)
			w.granted = true
			w.ch <- pc // stays in use
			p.mu.Unlock()
			return
		}
		u.inUse--
		u.idle = append(u.idle, pc)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.discard(u, pc)
}

// discard closes pc, in use by u, then frees its slot.
func (p *Pool) discard(u *poolUser, pc *poolConn) {
	pc.c.Close()
	p.mu.Lock()
	u.inUse--
	delete(u.all, pc)
	p.freeSlotLocked(u)
	p.deleteIfUnusedLocked(u)
	p.mu.Unlock()
}

// freeSlotLocked hands a slot of u just freed to its first waiter, if
// any, to dial in.
func (p *Pool) freeSlotLocked(u *poolUser) {
	if el := u.waiters.Front(); el != nil && !p.closed {
		w := u.waiters.Remove(el).(*poolWaiter)
		w.granted = true
		u.dialing++
		w.ch <- nil
	}
}

// deleteIfUnusedLocked forgets u if it has no connections nor waiters.
func (p *Pool) deleteIfUnusedLocked(u *poolUser) {
	if u.slots() == 0 && u.waiters.Len() == 0 && p.users[u.name] == u {
		delete(p.users, u.name)
	}
}

// dropIdleLocked removes the idle connections of u for which drop is
// true, frees their slots, and returns them to be closed. It leaves u in
// the pool even if empty.
func (p *Pool) dropIdleLocked(u *poolUser, drop func(*poolConn) bool) []*poolConn {
	var dropped []*poolConn
	keep := u.idle[:0]
	for _, pc := range u.idle {
		if drop(pc) {
			dropped = append(dropped, pc)
			delete(u.all, pc)
		} else {
			keep = append(keep, pc)
		}
	}
	clear(u.idle[len(keep):])
	u.idle = keep
	for range dropped {
		p.freeSlotLocked(u)
	}
	return dropped
}

func closeAll(pcs []*poolConn) {
	for _, pc := range pcs {
		pc.c.Close()
	}
}

// reaper closes idle connections past IdleTimeout, or closed by the
// server, every interval until Close.
func (p *Pool) reaper(interval time.Duration) {
	defer p.reaped.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
			p.reap()
		}
	}
}

func (p *Pool) reap() {
	now := p.now()
	var drop []*poolConn
	p.mu.Lock()
	for _, u := range p.users {
		drop = append(drop, p.dropIdleLocked(u, func(pc *poolConn) bool {
			return now.Sub(pc.released) >= p.idleTTL || !alive(pc)
		})...)
		p.deleteIfUnusedLocked(u)
	}
	p.mu.Unlock()
	if len(drop) > 0 {
		p.log.Debug("imap pool: closed idle connections", "closed", len(drop))
	}
	closeAll(drop)
}

// Close closes all connections, idle and in use, makes waiting and
// future Acquire calls fail with ErrPoolClosed, and stops the reaper
// goroutine. Releasing or discarding a Conn afterwards is harmless.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	var all []*poolConn
	for _, u := range p.users {
		for pc := range u.all {
			all = append(all, pc)
		}
		clear(u.idle)
		u.idle = nil
		u.all = make(map[*poolConn]struct{})
		p.deleteIfUnusedLocked(u)
	}
	p.mu.Unlock()
	p.cancel() // wakes waiters, aborts dials, stops the reaper
	p.reaped.Wait()
	closeAll(all)
}

// Stats counts all connections of the pool.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	var s PoolStats
	for _, u := range p.users {
		s = s.add(u.stats())
	}
	return s
}

// UserStats counts the connections of user.
func (p *Pool) UserStats(user string) PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	if u := p.users[user]; u != nil {
		return u.stats()
	}
	return PoolStats{}
}

func (u *poolUser) stats() PoolStats {
	return PoolStats{Open: u.slots(), Idle: len(u.idle), InUse: u.inUse, Waiting: u.waiters.Len()}
}

func (s PoolStats) add(t PoolStats) PoolStats {
	return PoolStats{Open: s.Open + t.Open, Idle: s.Idle + t.Idle, InUse: s.InUse + t.InUse, Waiting: s.Waiting + t.Waiting}
}

// mac returns the HMAC of user and password under the pool's key.
func (p *Pool) mac(user, password string) [sha256.Size]byte {
	m := hmac.New(sha256.New, p.key[:])
	writeField(m, user)
	writeField(m, password)
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	return sum
}

// dial opens a connection to the upstream and logs in as user, as
// IMAPAuthenticator.Verify does, but keeps the connection.
func (p *Pool) dial(ctx context.Context, user, password string, mac [sha256.Size]byte) (*poolConn, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(p.ctx, cancel)() // Close aborts dials
	c, err := p.auth.dialLogin(ctx, user, password, imapclient.Options{})
	if err != nil {
		return nil, err
	}
	return &poolConn{c: c, mac: mac}, nil
}

// dialLogin opens a connection to the upstream and logs in as user, as
// Verify does, but keeps the connection and returns its client. opts are
// the client's options (e.g. a UnilateralDataHandler), but TLSConfig
// comes from the Config and DebugWriter is dropped: it would see the
// password. The whole is bounded by
// ctx and the Config's Timeout; once logged in, imapclient bounds each
// command and response itself. Errors are as Pool.Acquire's.
func (a *IMAPAuthenticator) dialLogin(ctx context.Context, user, password string, opts imapclient.Options) (*imapclient.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()

	conn, err := a.dial(ctx)
	if err != nil {
		return nil, a.unavailable(ctx, "connecting", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	opts.TLSConfig = a.tlsConfig()
	opts.DebugWriter = nil
	var c *imapclient.Client
	if a.cfg.TLS == TLSStartTLS {
		if c, err = imapclient.NewStartTLS(conn, &opts); err != nil {
			return nil, a.unavailable(ctx, "STARTTLS", err)
		}
	} else {
		c = imapclient.New(conn, &opts)
	}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	if err := c.WaitGreeting(); err != nil {
		return nil, a.unavailable(ctx, "greeting", err)
	}
	if c.State() != imap.ConnStateNotAuthenticated {
		return nil, a.unavailable(ctx, "greeting", errors.New("server sent PREAUTH; it cannot verify passwords"))
	}
	if c.Caps().Has(imap.CapLoginDisabled) {
		return nil, a.unavailable(ctx, "capabilities", errors.New("server announces LOGINDISABLED (use TLS mode starttls or tls)"))
	}
	if err := c.Login(user, password).Wait(); err != nil {
		var ierr *imap.Error
		if errors.As(err, &ierr) && ierr.Type == imap.StatusResponseTypeNo && !temporaryFailure(ierr.Code) {
			return nil, fmt.Errorf("%w: user %q at %s: %v", ErrBadCredentials, user, a.cfg.Addr, ierr)
		}
		return nil, a.unavailable(ctx, "LOGIN", err)
	}
	if !stop() {
		// ctx ended, and closed the connection, just as LOGIN succeeded.
		return nil, a.unavailable(ctx, "LOGIN", ctx.Err())
	}
	// From now on imapclient bounds each command and response itself.
	_ = conn.SetDeadline(time.Time{})
	ok = true
	return c, nil
}
