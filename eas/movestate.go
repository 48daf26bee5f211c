package eas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/easd/easd/store"
)

// pendingMoves is what a device's own MoveItems changed in one of its
// collections: its next Sync of that collection takes them as known, so
// the moving device is neither sent a Delete for what it moved away nor an
// Add for what it moved in (MS-ASCMD 2.2.1.12), while other devices see
// both.
type pendingMoves struct {
	// Gone are UIDs moved out of the collection.
	Gone []uint32 `json:"g,omitempty"`
	// Added are the new UIDs moved into the collection, with what the
	// device holds of them.
	Added map[uint32]itemState `json:"a,omitempty"`
	// Moved maps a UID moved out of the collection to its new ServerId
	// ("" when the server did not say): a MoveItems retried because its
	// answer was lost gets the same answer.
	Moved map[uint32]string `json:"m,omitempty"`
}

func movesKey(device int64, coll string) string {
	return "moves/" + strconv.FormatInt(device, 10) + "/" + coll
}

// recordMoves adds to the pending moves of the session's device in coll.
func (h *Handler) recordMoves(ctx context.Context, s *Session, coll string, gone []uint32, added map[uint32]itemState, moved map[uint32]string) error {
	unlock := h.locks.lock(s.Device.ID, []string{"moves/" + coll})
	defer unlock()
	pm, err := h.loadMoves(ctx, s, coll)
	if err != nil {
		return err
	}
	pm.Gone = append(pm.Gone, gone...)
	if len(added) > 0 && pm.Added == nil {
		pm.Added = map[uint32]itemState{}
	}
	for uid, it := range added {
		pm.Added[uid] = it
	}
	if len(moved) > 0 && pm.Moved == nil {
		pm.Moved = map[uint32]string{}
	}
	for uid, id := range moved {
		pm.Moved[uid] = id
	}
	b, err := json.Marshal(pm)
	if err != nil {
		return err
	}
	return h.deps.Store.PutUserSetting(ctx, s.User.ID, movesKey(s.Device.ID, coll), b)
}

func (h *Handler) loadMoves(ctx context.Context, s *Session, coll string) (*pendingMoves, error) {
	pm := &pendingMoves{}
	raw, err := h.deps.Store.UserSetting(ctx, s.User.ID, movesKey(s.Device.ID, coll))
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && len(raw) == 0):
		return pm, nil
	case err != nil:
		return nil, err
	}
	if err := json.Unmarshal(raw, pm); err != nil {
		return nil, fmt.Errorf("pending moves of %s: %w", coll, err)
	}
	return pm, nil
}

// applyMoves folds the device's pending moves into the state the Sync
// starts from and, once that state is saved, clears them. It reports
// whether there were any.
func (m *mailSync) applyMoves(ctx context.Context) (bool, error) {
	unlock := m.h.locks.lock(m.s.Device.ID, []string{"moves/" + m.c.id})
	pm, err := m.h.loadMoves(ctx, m.s, m.c.id)
	unlock()
	if err != nil || (len(pm.Gone) == 0 && len(pm.Added) == 0) {
		return false, err
	}
	for _, uid := range pm.Gone {
		delete(m.st.Items, uid)
	}
	for uid, it := range pm.Added {
		m.st.Items[uid] = it
	}
	m.dirty = true
	m.clearMoves = func(ctx context.Context) error {
		unlock := m.h.locks.lock(m.s.Device.ID, []string{"moves/" + m.c.id})
		defer unlock()
		// Only what was applied: moves recorded meanwhile stay.
		cur, err := m.h.loadMoves(ctx, m.s, m.c.id)
		if err != nil {
			return err
		}
		gone := map[uint32]bool{}
		for _, u := range pm.Gone {
			gone[u] = true
		}
		rest := &pendingMoves{}
		for _, u := range cur.Gone {
			if !gone[u] {
				rest.Gone = append(rest.Gone, u)
			}
		}
		for u, id := range cur.Moved {
			if !gone[u] {
				if rest.Moved == nil {
					rest.Moved = map[uint32]string{}
				}
				rest.Moved[u] = id
			}
		}
		for u, it := range cur.Added {
			if _, done := pm.Added[u]; !done {
				if rest.Added == nil {
					rest.Added = map[uint32]itemState{}
				}
				rest.Added[u] = it
			}
		}
		var b []byte
		if len(rest.Gone)+len(rest.Added)+len(rest.Moved) > 0 {
			if b, err = json.Marshal(rest); err != nil {
				return err
			}
		}
		return m.h.deps.Store.PutUserSetting(ctx, m.s.User.ID, movesKey(m.s.Device.ID, m.c.id), b)
	}
	return true, nil
}
