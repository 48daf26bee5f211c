package eas

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ChangeBus carries change notices between easd instances sharing one
// store (PostgreSQL LISTEN/NOTIFY in store/postgres). A notice names a
// user and an EAS collection, never content; it is published after the
// change is committed. With one instance (SQLite) there is no bus: the
// in-process hub is enough.
type ChangeBus interface {
	// Publish tells the other instances that collection (a CollectionId,
	// or "" for the folder hierarchy) of user may have changed.
	Publish(ctx context.Context, user int64, collection string) error
	// Listen calls fn for every notice published by other instances until
	// ctx ends, and returns ctx's error then. After its connection was
	// lost and re-established it calls fn(0, "") once: notices may have
	// been missed, every user may have changed. fn must not block.
	Listen(ctx context.Context, fn func(user int64, collection string)) error
}

// hub wakes parked requests (Ping, Sync with Wait) of this process. It
// holds one small waiter per parked request; nothing per idle user.
type hub struct {
	mu      sync.Mutex
	users   map[int64]map[*waiter]struct{}
	devices map[int64]*waiter // device row id -> its parked request
	parked  atomic.Int64
}

// waiter is one parked request. Notices are merged into a set of
// collections (or "all") and signalled on a channel of capacity one, so
// a burst of notices costs no goroutine and no queue.
type waiter struct {
	user, device int64
	signal       chan struct{} // capacity 1
	mu           sync.Mutex
	colls        map[string]MailStatus // "" = hierarchy; the status when the watcher read one
	all          bool                  // every collection may have changed
	superseded   bool                  // a newer request of the same device arrived
}

func newHub() *hub {
	return &hub{users: map[int64]map[*waiter]struct{}{}, devices: map[int64]*waiter{}}
}

// park registers a request of device of user; a request of the same
// device already parked is superseded (MS-ASCMD 2.2.1.13: a new Ping
// ends the one before). The caller calls unpark when done.
func (h *hub) park(user, device int64) *waiter {
	w := &waiter{user: user, device: device, signal: make(chan struct{}, 1)}
	h.mu.Lock()
	if old := h.devices[device]; old != nil {
		old.mu.Lock()
		old.superseded = true
		old.mu.Unlock()
		old.wake()
	}
	h.devices[device] = w
	ws := h.users[user]
	if ws == nil {
		ws = map[*waiter]struct{}{}
		h.users[user] = ws
	}
	ws[w] = struct{}{}
	h.mu.Unlock()
	h.parked.Add(1)
	return w
}

func (h *hub) unpark(w *waiter) {
	h.mu.Lock()
	if h.devices[w.device] == w {
		delete(h.devices, w.device)
	}
	if ws := h.users[w.user]; ws != nil {
		delete(ws, w)
		if len(ws) == 0 {
			delete(h.users, w.user)
		}
	}
	h.mu.Unlock()
	h.parked.Add(-1)
}

// notify tells the parked requests of user that collection may have
// changed; user 0 means every user and every collection.
func (h *hub) notify(user int64, collection string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if user == 0 {
		for _, ws := range h.users {
			for w := range ws {
				w.add("", true, MailStatus{})
			}
		}
		return
	}
	for w := range h.users[user] {
		w.add(collection, false, MailStatus{})
	}
}

// add records a notice: collection coll may have changed (its status
// st when known), or every collection when all is set.
func (w *waiter) add(coll string, all bool, st MailStatus) {
	w.mu.Lock()
	if all {
		w.all = true
	} else {
		if w.colls == nil {
			w.colls = map[string]MailStatus{}
		}
		w.colls[coll] = st
	}
	w.mu.Unlock()
	w.wake()
}

func (w *waiter) wake() {
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// take returns and clears what was notified since the last take.
func (w *waiter) take() (colls map[string]MailStatus, all, superseded bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	colls, all, superseded = w.colls, w.all, w.superseded
	w.colls, w.all = nil, false
	return colls, all, superseded
}

// publish tells this process's parked requests and, through the bus,
// the other instances' that collection of user may have changed. It is
// called after the change is committed.
func (h *Handler) publish(ctx context.Context, user int64, collection string) {
	h.hub.notify(user, collection)
	if h.deps.Bus != nil {
		if err := h.deps.Bus.Publish(context.WithoutCancel(ctx), user, collection); err != nil {
			h.deps.Logger.Warn("publishing a change to other instances", "user", user, "collection", collection, "err", err)
		}
	}
}

// noWatcherPoll is how often a parked request checks its folders when
// the mail backend cannot watch them (no MailWatcher).
const noWatcherPoll = time.Minute

// parkEnd says why a parked request ended.
type parkEnd int

const (
	parkChanged    parkEnd = iota // check reported a change
	parkExpired                   // the hold ran out
	parkSuperseded                // a newer request of the device arrived
	parkDrained                   // the server is shutting down
	parkGone                      // the client went away
)

// parkSpec is what a parked request waits for.
type parkSpec struct {
	hold time.Duration
	// folders maps the upstream names of the mail folders watched to
	// their collection ids.
	folders map[string]string
	// check looks at what may have changed (colls, or everything when
	// all is set; "" is the hierarchy) and reports whether to answer now.
	check func(ctx context.Context, colls map[string]MailStatus, all bool) (bool, error)
}

// park holds a request until spec.check sees a change, the hold ends,
// a newer request of the same device arrives, the client goes away or
// the server drains. It checks once right after registering for
// notices, so a change that lands before the watch is set up is seen.
// While parked the request gives up its command slot (Config.
// MaxConcurrent); Config.MaxParked bounds parked requests instead.
func (h *Handler) park(ctx context.Context, s *Session, spec parkSpec) (parkEnd, error) {
	if h.cfg.MaxParked > 0 && h.hub.parked.Load() >= int64(h.cfg.MaxParked) {
		return 0, &Error{HTTP: http.StatusServiceUnavailable, RetryAfter: 60,
			Err: fmt.Errorf("%d requests parked, the limit", h.cfg.MaxParked)}
	}
	w := h.hub.park(s.User.ID, s.Device.ID)
	defer h.hub.unpark(w)
	var poll <-chan time.Time
	if mw, ok := h.deps.Mail.(MailWatcher); !ok && len(spec.folders) > 0 {
		// A backend that cannot watch is asked now and then instead.
		t := time.NewTicker(noWatcherPoll)
		defer t.Stop()
		poll = t.C
	} else if ok && len(spec.folders) > 0 {
		names := make([]string, 0, len(spec.folders))
		for n := range spec.folders {
			names = append(names, n)
		}
		folders := spec.folders
		stop := mw.Watch(s.Account, names, func(ev MailEvent) {
			switch {
			case ev.Resync:
				w.add("", true, MailStatus{})
			case ev.Hierarchy:
				w.add("", false, MailStatus{})
			case ev.Folder != "":
				if id, ok := folders[ev.Folder]; ok {
					w.add(id, false, ev.Status)
				}
			}
		})
		defer stop()
	}
	if done, err := spec.check(ctx, nil, true); err != nil || done {
		return parkChanged, err
	}
	s.releaseSlot()
	timer := time.NewTimer(spec.hold) // wall clock: how long a socket is held
	defer timer.Stop()
	for {
		select {
		case <-w.signal:
		case <-poll:
			w.add("", true, MailStatus{})
			continue
		case <-timer.C:
			return parkExpired, nil
		case <-ctx.Done():
			// The phone hung up (or its proxy did): nothing to answer,
			// and nothing went wrong.
			s.Log.Debug("parked request ended by the client", "err", ctx.Err())
			return parkGone, nil
		case <-h.drain:
			return parkDrained, nil
		}
		colls, all, superseded := w.take()
		if superseded {
			return parkSuperseded, nil
		}
		if len(colls) == 0 && !all {
			continue
		}
		start := time.Now()
		done, err := spec.check(ctx, colls, all)
		if err != nil {
			return parkChanged, err
		}
		if done {
			if h.deps.ObservePush != nil {
				h.deps.ObservePush(time.Since(start))
			}
			return parkChanged, nil
		}
	}
}

// holdFor is how long a request of this device asking for interval is
// held: the interval, capped by Config.HoldLimits for its device type.
func (h *Handler) holdFor(s *Session, interval time.Duration) time.Duration {
	limit, ok := h.cfg.HoldLimits[strings.ToLower(s.Req.DeviceType)]
	if !ok {
		limit = h.cfg.HoldLimits["*"]
	}
	if limit > 0 && limit < interval {
		return limit
	}
	return interval
}

// Parked returns how many requests are parked now (a metric).
func (h *Handler) Parked() int64 { return h.hub.parked.Load() }

// Drain answers every parked request now (Ping: nothing changed; Sync:
// an empty response) and any parked later at once: the server is
// shutting down, and phones re-Ping the next instance. Safe to call more
// than once.
func (h *Handler) Drain() { h.drainOnce.Do(func() { close(h.drain) }) }

// ListenBus relays the other instances' change notices (Deps.Bus) to this
// process's parked requests until ctx ends; without a bus it returns at
// once.
func (h *Handler) ListenBus(ctx context.Context) error {
	if h.deps.Bus == nil {
		return nil
	}
	return h.deps.Bus.Listen(ctx, h.hub.notify)
}
