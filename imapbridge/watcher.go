package imapbridge

// This file holds the change watcher behind push (eas.MailWatcher): one
// IMAP connection per user, shared by every Watch of that user, that
// IDLEs on one folder and sweeps the others now and then.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/easd/easd/eas"
)

// Defaults of the watcher options of BackendOptions.
const (
	DefaultWatchSweep    = 30 * time.Second
	DefaultWatchSweepMax = 50
	DefaultWatchLinger   = 60 * time.Second
)

const (
	watchDebounce      = 10 * time.Millisecond // after a notification, for the rest of the burst
	watchIdleRestart   = 25 * time.Minute      // RFC 2177: re-issue IDLE at least every 29 min
	watchLogoutTimeout = time.Second           // LOGOUT, and a command in progress at CloseWatchers
	// Reconnect delays: after a lost connection or an unreachable
	// upstream, from min doubling to max; after a refused login, refused.
	watchBackoffMin, watchBackoffMax, watchBackoffRefused = time.Second, time.Minute, 5 * time.Minute
)

var _ eas.MailWatcher = (*Backend)(nil)

// errWatchEnd ends a session: the watchers are closed, or the linger ran out.
var errWatchEnd = errors.New("imapbridge: watcher ended")

// WatchStats counts the watchers of a Backend, for metrics.
type WatchStats struct {
	// Users counts the users with a watcher (connected, connecting,
	// waiting to reconnect, or lingering); Connections their open
	// connections (one per user, two for a moment while a lingering one
	// logs out and a new one starts); Watches the Watch calls not stopped.
	Users, Connections, Watches int
	// Commands counts the IMAP commands the watchers have sent in total:
	// LOGIN, SELECT (EXAMINE), IDLE and its DONE, STATUS, LIST, LOGOUT.
	Commands uint64
}

// watchHub is the Backend's watchers, one per user (login).
type watchHub struct {
	sweep    time.Duration
	sweepMax int
	linger   time.Duration
	// Reconnect delays; tests shorten them.
	backoffMin, backoffMax, backoffRefused time.Duration

	conns    atomic.Int64
	watches  atomic.Int64
	commands atomic.Uint64

	mu     sync.Mutex
	closed bool
	ctx    context.Context // cancelled by CloseWatchers; set with users
	cancel context.CancelFunc
	users  map[string]*userWatcher
	wg     sync.WaitGroup // the users' goroutines
}

// configure sets the options of opts, or their defaults.
func (h *watchHub) configure(opts BackendOptions) {
	h.sweep = cmpOr(opts.WatchSweep, DefaultWatchSweep)
	h.sweepMax = cmpOr(opts.WatchSweepMax, DefaultWatchSweepMax)
	h.linger = cmpOr(opts.WatchLinger, DefaultWatchLinger)
	h.backoffMin, h.backoffMax, h.backoffRefused = watchBackoffMin, watchBackoffMax, watchBackoffRefused
}

// cmpOr returns v if positive, else def.
func cmpOr[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// userWatcher is the watcher of one user: the goroutine run, its
// connection, and the Watch calls it serves.
type userWatcher struct {
	b    *Backend
	h    *watchHub
	key  string        // the login
	wake chan struct{} // buffered: the watches changed

	mu       sync.Mutex
	password string // newest given
	credGen  uint64 // counts password changes
	watches  map[*watch]struct{}
	fresh    []*watch                  // joined, to be sent the known snapshots
	refs     map[string]int            // watched folder -> number of watches
	order    []string                  // the watched folders, first watched first
	pending  map[string]bool           // watched folders to STATUS soon -> send the event even if unchanged
	snaps    map[string]eas.MailStatus // last STATUS of watched folders; zero: not there
	empty    time.Time                 // when the last watch stopped

	// Of the goroutine only.
	cursor   int      // round robin of the sweep
	listSum  [32]byte // of the folder names of the last LIST
	listSeen bool
	targets  []*watch // scratch
}

// watch is one Watch call.
type watch struct {
	folders []string
	fn      func(eas.MailEvent)
	stopped atomic.Bool
}

// Watch implements eas.MailWatcher: it reports changes of folders (and of
// the folder list) of a's mailbox to fn until stop is called.
//
// All Watch calls of one user (one login: "user*master" with a master
// user, else a.Login) share one IMAP connection of their own, outside the
// Pool, opened with the newest credentials given; the watched folders are
// the union of theirs. The connection EXAMINEs INBOX if watched, else
// another watched folder, and IDLEs there: a new message, expunge or flag
// change is told as an event with the folder's new STATUS some 15 ms
// after the server tells (Dovecot 2.3 tells IDLE and NOTIFY clients 500
// ms after a change: its fixed NOTIFY_DELAY_MSECS). The other watched
// folders are looked at every WatchSweep (STATUS of up to WatchSweepMax
// of them, round robin; an event for each whose counters changed, or
// first seen), with a LIST (a Hierarchy event when the names changed). A
// folder newly watched is STATUSed at once; a Watch joining gets the
// known snapshots of its folders at once. After losing the connection the
// watcher reconnects with backoff and sends Resync. When the last Watch of
// a user stops, the connection lingers for WatchLinger, then logs out.
//
// IMAP NOTIFY (RFC 5465) would tell about every folder, but go-imap v2's
// client (v2.0.0-beta.8) cannot receive it: it drops an untagged STATUS
// or LIST unless a STATUS or LIST command of that mailbox is pending
// (imapclient handleStatus, handleList), and its unilateral-data handler
// has no hook for them; hence IDLE on one folder and the sweep.
//
// fn is called from the user's watcher goroutine, never concurrently for
// one Watch, and must not block; it may call stop. An event being sent
// when stop is called from another goroutine may still reach fn just
// after stop returns. Calling stop more than once is harmless. The
// watcher keeps the password, in memory only, to reconnect; it never logs
// it. After CloseWatchers, Watch starts nothing and returns a no-op stop.
func (b *Backend) Watch(a eas.MailAccount, folders []string, fn func(eas.MailEvent)) (stop func()) {
	login, password := a.Login, a.Password
	if b.master.MasterUser != "" {
		login, password = a.User.Name+b.master.MasterSeparator+b.master.MasterUser, b.master.MasterPassword
	}
	h := &b.watch
	h.mu.Lock()
	if h.closed || fn == nil {
		h.mu.Unlock()
		return func() {}
	}
	if h.users == nil {
		h.users = make(map[string]*userWatcher)
		h.ctx, h.cancel = context.WithCancel(context.Background())
	}
	u := h.users[login]
	if u == nil {
		u = &userWatcher{
			b: b, h: h, key: login, wake: make(chan struct{}, 1),
			password: password,
			watches:  make(map[*watch]struct{}),
			refs:     make(map[string]int),
			pending:  make(map[string]bool),
			snaps:    make(map[string]eas.MailStatus),
		}
		h.users[login] = u
		h.wg.Add(1)
		go u.run()
	}
	w := &watch{fn: fn, folders: make([]string, 0, len(folders))}
	for _, f := range folders {
		if !slices.Contains(w.folders, f) {
			w.folders = append(w.folders, f)
		}
	}
	u.mu.Lock()
	if password != u.password {
		u.password = password
		u.credGen++
	}
	u.watches[w] = struct{}{}
	known := false
	for _, f := range w.folders {
		if u.refs[f]++; u.refs[f] == 1 {
			u.order = append(u.order, f)
			u.pending[f] = false
		}
		_, ok := u.snaps[f]
		known = known || ok
	}
	if known {
		u.fresh = append(u.fresh, w)
	}
	u.mu.Unlock()
	h.mu.Unlock()
	h.watches.Add(1)
	u.poke()
	return func() {
		if !w.stopped.Swap(true) {
			u.remove(w)
		}
	}
}

// remove forgets w, and the folders no other watch watches.
func (u *userWatcher) remove(w *watch) {
	u.h.watches.Add(-1)
	u.mu.Lock()
	delete(u.watches, w)
	for _, f := range w.folders {
		if u.refs[f]--; u.refs[f] <= 0 {
			delete(u.refs, f)
			delete(u.pending, f)
			delete(u.snaps, f)
			u.order = slices.DeleteFunc(u.order, func(g string) bool { return g == f })
		}
	}
	if len(u.watches) == 0 {
		u.empty = time.Now()
	}
	u.mu.Unlock()
	u.poke()
}

// poke wakes the goroutine to look at the watches.
func (u *userWatcher) poke() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// CloseWatchers stops every watcher: each ends its IDLE and logs out (best
// effort, bounded by about a second), and CloseWatchers returns once they
// are gone. Afterwards Watch starts nothing.
func (b *Backend) CloseWatchers() {
	h := &b.watch
	h.mu.Lock()
	h.closed = true
	if h.cancel != nil {
		h.cancel()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// WatchStats counts the Backend's watchers.
func (b *Backend) WatchStats() WatchStats {
	h := &b.watch
	h.mu.Lock()
	users := len(h.users)
	h.mu.Unlock()
	return WatchStats{
		Users:       users,
		Connections: int(h.conns.Load()),
		Watches:     int(h.watches.Load()),
		Commands:    h.commands.Load(),
	}
}

// run is the goroutine of u: connect, watch, reconnect, until the linger
// runs out or the watchers are closed.
func (u *userWatcher) run() {
	defer u.h.wg.Done()
	backoff, retried := u.h.backoffMin, false
	for {
		u.mu.Lock()
		gen := u.credGen
		u.mu.Unlock()
		s, err := u.connect()
		refused, msg := errors.Is(err, ErrBadCredentials), "imap watcher: cannot connect"
		if err == nil {
			if retried {
				// Changes may have been missed meanwhile.
				u.emit("", eas.MailEvent{Resync: true})
			}
			var up bool
			up, err = s.run()
			s.close(errors.Is(err, errWatchEnd))
			if errors.Is(err, errWatchEnd) {
				u.b.log.Debug("imap watcher: ended", "user", u.key)
				return
			}
			if up {
				backoff = u.h.backoffMin
			}
			msg = "imap watcher: connection lost"
		}
		retried = true
		if u.h.ctx.Err() != nil {
			u.tryExit()
			return
		}
		delay := backoff
		if refused {
			delay = u.h.backoffRefused
		} else {
			backoff = min(2*backoff, u.h.backoffMax)
		}
		delay = delay*3/4 + rand.N(delay/2+1) // jitter: 0.75 to 1.25
		u.b.log.Warn(msg, "user", u.key, "retry_in", delay.Round(time.Millisecond), "err", err)
		// After a refused login, new credentials end the pause early.
		for deadline := time.Now().Add(delay); u.wait(nil, deadline, gen, refused) == waitExit; {
			if u.tryExit() {
				return
			}
		}
	}
}

// waitEnd says why wait returned.
type waitEnd int

const (
	waitDue   waitEnd = iota // the deadline passed
	waitWork                 // something for the session to do
	waitExit                 // closing, or the linger ran out: see tryExit
	waitLost                 // the connection closed
	waitCreds                // new credentials (watchCreds)
)

// wait waits until deadline for something to do, sending joining watches
// their snapshots meanwhile. With a session s, a notification (which
// marks the selected folder to STATUS) or a change of the watches that
// needs a command ends it, after watchDebounce for the rest of the burst.
// Without one, if watchCreds, a password other than that of generation
// gen ends it.
func (u *userWatcher) wait(s *wsession, deadline time.Time, gen uint64, watchCreds bool) waitEnd {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	var notify, closed <-chan struct{}
	if s != nil {
		notify, closed = s.notify, s.c.Closed()
	}
	var debounce <-chan time.Time
	for {
		// Unstopped timers are collected since Go 1.23 (go.mod says 1.26).
		var lingerC <-chan time.Time
		u.mu.Lock()
		if len(u.watches) == 0 {
			lingerC = time.After(time.Until(u.empty.Add(u.h.linger)))
		}
		u.mu.Unlock()
		select {
		case <-u.h.ctx.Done():
			return waitExit
		case <-lingerC:
			return waitExit
		case <-closed:
			return waitLost
		case <-t.C:
			return waitDue
		case <-debounce:
			return waitWork
		case <-notify:
			s.notified()
			if debounce == nil {
				debounce = time.After(watchDebounce)
			}
		case <-u.wake:
			u.deliverFresh()
			u.mu.Lock()
			creds := u.credGen != gen
			u.mu.Unlock()
			if s == nil && watchCreds && creds {
				return waitCreds
			}
			if s != nil && debounce == nil && s.needsCommand() {
				debounce = time.After(watchDebounce)
			}
		}
	}
}

// tryExit removes u from the hub if the hub is closed, or u has no
// watches and lingered long enough, and reports whether it did.
func (u *userWatcher) tryExit() bool {
	h := u.h
	h.mu.Lock()
	defer h.mu.Unlock()
	u.mu.Lock()
	ok := h.closed || len(u.watches) == 0 && time.Since(u.empty) >= h.linger
	u.mu.Unlock()
	if ok && h.users[u.key] == u {
		delete(h.users, u.key)
	}
	return ok
}

// deliverFresh sends the joining watches the known snapshots of their
// folders.
func (u *userWatcher) deliverFresh() {
	var ws []*watch
	var evs []eas.MailEvent
	u.mu.Lock()
	for _, w := range u.fresh {
		for _, f := range w.folders {
			if st, ok := u.snaps[f]; ok {
				ws, evs = append(ws, w), append(evs, eas.MailEvent{Folder: f, Status: st})
			}
		}
	}
	u.fresh = nil
	u.mu.Unlock()
	for i, w := range ws {
		if !w.stopped.Load() {
			w.fn(evs[i])
		}
	}
}

// emit sends ev to the watches of folder, or to all if folder is "".
func (u *userWatcher) emit(folder string, ev eas.MailEvent) {
	u.mu.Lock()
	targets := u.targets[:0]
	for w := range u.watches {
		if folder == "" || slices.Contains(w.folders, folder) {
			targets = append(targets, w)
		}
	}
	u.mu.Unlock()
	for _, w := range targets {
		if !w.stopped.Load() {
			w.fn(ev)
		}
	}
	clear(targets)
	u.targets = targets[:0]
}

// record sets the snapshot of folder, if still watched, and sends an event
// to its watches if it changed (or always, if force).
func (u *userWatcher) record(folder string, st eas.MailStatus, force bool) {
	u.mu.Lock()
	old, known := u.snaps[folder]
	watched := u.refs[folder] > 0
	if watched {
		u.snaps[folder] = st
	}
	u.mu.Unlock()
	if watched && (force || !known || old != st) {
		u.emit(folder, eas.MailEvent{Folder: folder, Status: st})
	}
}

// wsession is one connection of a watcher.
type wsession struct {
	u         *userWatcher
	c         *imapclient.Client
	notify    chan struct{} // buffered: the selected folder changed
	condStore bool
	noIdle    bool   // the server has no IDLE: the selected folder is swept too
	selected  string // "" for none
	stopClose func() bool
}

// connect dials and logs in with the newest credentials.
func (u *userWatcher) connect() (*wsession, error) {
	p := u.b.pool
	if p.cfgErr != nil {
		return nil, p.cfgErr
	}
	u.mu.Lock()
	password := u.password
	u.mu.Unlock()
	if u.key == "" || password == "" || strings.ContainsRune(u.key, 0) || strings.ContainsRune(password, 0) {
		return nil, fmt.Errorf("%w: empty or unsendable user name or password", ErrBadCredentials)
	}
	s := &wsession{u: u, notify: make(chan struct{}, 1)}
	notify := func() {
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
	opts := imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Expunge: func(uint32) { notify() },
		Mailbox: func(*imapclient.UnilateralDataMailbox) { notify() },
		Fetch: func(msg *imapclient.FetchMessageData) {
			for msg.Next() != nil { // imapclient waits for it to be read
			}
			notify()
		},
	}}
	c, err := p.auth.dialLogin(u.h.ctx, u.key, password, opts)
	if err == nil || errors.Is(err, ErrBadCredentials) {
		u.h.commands.Add(1) // LOGIN
		if p.auth.cfg.TLS == TLSStartTLS {
			u.h.commands.Add(1)
		}
	}
	if err != nil {
		return nil, err
	}
	u.h.conns.Add(1)
	s.c = c
	caps := c.Caps()
	s.condStore = !slices.Contains(u.b.without, imap.CapCondStore) && caps.Has(imap.CapCondStore)
	s.noIdle = slices.Contains(u.b.without, imap.CapIdle) || !caps.Has(imap.CapIdle) && !caps.Has(imap.CapIMAP4rev2)
	// Once the watchers close, a command in progress gets a moment.
	s.stopClose = context.AfterFunc(u.h.ctx, func() {
		time.AfterFunc(watchLogoutTimeout, func() { c.Close() })
	})
	u.b.log.Debug("imap watcher: connected", "user", u.key)
	return s, nil
}

// close logs out if logout (best effort, bounded), and closes.
func (s *wsession) close(logout bool) {
	s.stopClose()
	select {
	case <-s.c.Closed():
	default:
		if logout {
			_ = s.do(watchLogoutTimeout, func() error { return s.c.Logout().Wait() })
		}
	}
	s.c.Close()
	s.u.h.conns.Add(-1)
}

// do runs one command, bounded by timeout (0: the Config's Timeout): past
// it the connection is closed.
func (s *wsession) do(timeout time.Duration, fn func() error) error {
	s.u.h.commands.Add(1)
	timeout = cmpOr(timeout, s.u.b.pool.auth.cfg.Timeout)
	t := time.AfterFunc(timeout, func() { s.c.Close() })
	err := fn()
	if !t.Stop() && err != nil {
		err = fmt.Errorf("no answer within %v: %w", timeout, err)
	}
	return err
}

// run watches until the connection fails (an error) or the watcher ends
// (errWatchEnd). up reports whether the session got through its start.
func (s *wsession) run() (up bool, err error) {
	u := s.u
	// What happened while there was no connection is unknown.
	u.mu.Lock()
	for _, f := range u.order {
		if _, ok := u.pending[f]; !ok {
			u.pending[f] = false
		}
	}
	u.mu.Unlock()
	if err := s.list(); err != nil {
		return false, err
	}
	sweepAt := time.Now().Add(u.h.sweep)
	for {
		if u.tryExit() {
			return up, errWatchEnd
		}
		u.deliverFresh()
		if err := s.reselect(); err != nil {
			return up, err
		}
		sweep := !time.Now().Before(sweepAt)
		if sweep {
			s.queueSweep()
			sweepAt = time.Now().Add(u.h.sweep)
		}
		if err := s.refresh(); err != nil {
			return up, err
		}
		if sweep {
			if err := s.list(); err != nil {
				return up, err
			}
		}
		up = true
		if err := s.idle(sweepAt); err != nil {
			return up, err
		}
	}
}

// desired returns the folder to IDLE on: INBOX if watched, else the one
// selected if still watched, else the first watched; folders known not to
// exist are skipped. "" leaves the selection as it is.
func (s *wsession) desired() string {
	u := s.u
	u.mu.Lock()
	defer u.mu.Unlock()
	usable := func(f string) bool {
		st, known := u.snaps[f]
		return u.refs[f] > 0 && (!known || st != eas.MailStatus{})
	}
	for _, f := range u.order {
		if strings.EqualFold(f, "INBOX") && usable(f) {
			return f
		}
	}
	if s.selected != "" && usable(s.selected) {
		return s.selected
	}
	for _, f := range u.order {
		if usable(f) {
			return f
		}
	}
	return ""
}

// needsCommand reports whether a command is due: a folder to STATUS, or
// another folder to IDLE on.
func (s *wsession) needsCommand() bool {
	s.u.mu.Lock()
	n := len(s.u.pending)
	s.u.mu.Unlock()
	f := s.desired()
	return n > 0 || f != "" && f != s.selected
}

// reselect EXAMINEs the folder desired, if not selected yet, and records
// its snapshot from the answer.
func (s *wsession) reselect() error {
	u := s.u
	for f := s.desired(); f != "" && f != s.selected; f = s.desired() {
		var data *imap.SelectData
		err := s.do(0, func() (err error) {
			data, err = s.c.Select(f, &imap.SelectOptions{ReadOnly: true, CondStore: s.condStore}).Wait()
			return err
		})
		if err != nil && !answered(err) {
			return fmt.Errorf("EXAMINE %q: %w", f, err)
		}
		u.mu.Lock()
		delete(u.pending, f)
		u.mu.Unlock()
		if err != nil {
			// Not there (or not selectable): say so, and try another.
			u.b.log.Debug("imap watcher: EXAMINE refused", "user", u.key, "folder", f, "err", err)
			s.selected = ""
			u.record(f, eas.MailStatus{}, false)
			continue
		}
		s.selected = f
		st := eas.MailStatus{UIDValidity: data.UIDValidity, UIDNext: uint32(data.UIDNext), Messages: data.NumMessages}
		if s.condStore {
			st.HighestModSeq = data.HighestModSeq
		}
		u.record(f, st, false)
	}
	return nil
}

// notified marks the selected folder, if watched, to STATUS; the event is
// sent even if the counters did not change when the server has no
// CONDSTORE (a flag change leaves them as they were).
func (s *wsession) notified() {
	u := s.u
	u.mu.Lock()
	if f := s.selected; f != "" && u.refs[f] > 0 {
		u.pending[f] = u.pending[f] || !s.condStore
	}
	u.mu.Unlock()
}

// queueSweep marks up to sweepMax watched folders other than the selected
// one to STATUS, round robin.
func (s *wsession) queueSweep() {
	u := s.u
	u.mu.Lock()
	defer u.mu.Unlock()
	others := make([]string, 0, len(u.order))
	for _, f := range u.order {
		if f != s.selected || s.noIdle {
			others = append(others, f)
		}
	}
	if n := len(others); n > u.h.sweepMax {
		start := u.cursor % n
		u.cursor = start + u.h.sweepMax
		others = slices.Concat(others[start:], others[:start])[:u.h.sweepMax]
	}
	for _, f := range others {
		if _, ok := u.pending[f]; !ok {
			u.pending[f] = false
		}
	}
}

// refresh STATUSes the folders marked, and sends an event for each
// whose counters changed (or whose mark says so).
func (s *wsession) refresh() error {
	u := s.u
	for {
		f, force := "", false
		u.mu.Lock()
		for _, g := range u.order {
			if fc, ok := u.pending[g]; ok {
				f, force = g, fc
				break
			}
		}
		delete(u.pending, f)
		u.mu.Unlock()
		if f == "" {
			return nil
		}
		var data *imap.StatusData
		err := s.do(0, func() (err error) {
			opts := &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, HighestModSeq: s.condStore}
			data, err = s.c.Status(f, opts).Wait()
			return err
		})
		var st eas.MailStatus // zero: not there
		switch {
		case answered(err):
			u.b.log.Debug("imap watcher: STATUS refused", "user", u.key, "folder", f, "err", err)
		case err != nil:
			return fmt.Errorf("STATUS %q: %w", f, err)
		default:
			st = eas.MailStatus{UIDValidity: data.UIDValidity, UIDNext: uint32(data.UIDNext), HighestModSeq: data.HighestModSeq}
			if data.NumMessages != nil {
				st.Messages = *data.NumMessages
			}
		}
		u.record(f, st, force)
	}
}

// list LISTs all folders, and sends a Hierarchy event if their names
// changed since the last LIST.
func (s *wsession) list() error {
	var list []*imap.ListData
	err := s.do(0, func() (err error) {
		list, err = s.c.List("", "*", nil).Collect()
		return err
	})
	u := s.u
	if answered(err) {
		u.b.log.Debug("imap watcher: LIST refused", "user", u.key, "err", err)
		return nil
	} else if err != nil {
		return fmt.Errorf("LIST: %w", err)
	}
	names := make([]string, len(list))
	for i, l := range list {
		names[i] = l.Mailbox
	}
	slices.Sort(names)
	sum := sha256.Sum256([]byte(strings.Join(names, "\x00"))) // IMAP names hold no NUL
	changed := u.listSeen && sum != u.listSum
	u.listSum, u.listSeen = sum, true
	if changed {
		u.b.log.Debug("imap watcher: folders changed", "user", u.key)
		u.emit("", eas.MailEvent{Hierarchy: true})
	}
	return nil
}

// idle IDLEs (or, without IDLE, waits) until the sweep is due or wait
// ends otherwise.
func (s *wsession) idle(sweepAt time.Time) error {
	var cmd *imapclient.IdleCommand
	if !s.noIdle {
		if err := s.do(0, func() (err error) { cmd, err = s.c.Idle(); return err }); err != nil {
			return fmt.Errorf("IDLE: %w", err)
		}
	}
	deadline := time.Now().Add(watchIdleRestart)
	if sweepAt.Before(deadline) {
		deadline = sweepAt
	}
	end := s.u.wait(s, deadline, 0, false)
	if cmd == nil {
		if end == waitLost {
			return errors.New("connection closed")
		}
		return nil
	}
	err := s.do(0, func() error {
		if err := cmd.Close(); err != nil {
			return err
		}
		return cmd.Wait()
	})
	if err != nil {
		return fmt.Errorf("IDLE: %w", err)
	}
	select {
	case <-s.notify:
		s.notified()
	default:
	}
	return nil
}
