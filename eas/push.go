package eas

import (
	"context"
	"sync"
	"sync/atomic"
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
	colls        map[string]bool // "" = hierarchy
	all          bool            // every collection may have changed
	superseded   bool            // a newer request of the same device arrived
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
				w.add("", true)
			}
		}
		return
	}
	for w := range h.users[user] {
		w.add(collection, false)
	}
}

func (w *waiter) add(coll string, all bool) {
	w.mu.Lock()
	if all {
		w.all = true
	} else {
		if w.colls == nil {
			w.colls = map[string]bool{}
		}
		w.colls[coll] = true
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
func (w *waiter) take() (colls map[string]bool, all, superseded bool) {
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
