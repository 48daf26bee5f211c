package eas

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/easd/easd/store"
	"github.com/easd/easd/wbxml"
)

// Sync statuses of the request as a whole, MS-ASCMD 2.2.3.177.17.
const (
	syncBadWait = 14 // Wait or HeartbeatInterval out of bounds; Limit says the bound
)

// syncCacheKey is the user setting holding a device's last Sync request
// (without commands and sync keys), for empty and partial requests.
func syncCacheKey(device int64) string { return "syncreq/" + strconv.FormatInt(device, 10) }

// syncRequest completes an empty or partial Sync request from the cached
// one (MS-ASCMD 2.2.1.21.1, 2.2.3.124): an empty request repeats the last
// one, a partial one (Partial, or no Collections) adds the cached
// collections it does not name, and the elements it leaves out (Wait,
// HeartbeatInterval, WindowSize) are the cached ones. Collections taken
// from the cache continue from the newest key the server gave. The
// result is cached in turn. A non-nil node is the answer to send at once.
func (h *Handler) syncRequest(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, *wbxml.Node, error) {
	key := syncCacheKey(s.Device.ID)
	raw, err := h.deps.Store.UserSetting(ctx, s.User.ID, key)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, nil, err
	}
	var cached *wbxml.Node
	if len(raw) > 0 {
		if cached, err = wbxml.DecodeBytes(raw, wbxml.Limits{}); err != nil {
			cached = nil
		}
	}
	incomplete := wbxml.E(wbxml.AirSyncSync, wbxml.T(wbxml.AirSyncStatus, strconv.Itoa(syncIncomplete)))
	full := body != nil && body.Child(wbxml.AirSyncCollections) != nil && body.Child(wbxml.AirSyncPartial) == nil
	if !full {
		if cached == nil {
			// Nothing cached (MS-ASCMD 2.2.3.177.17 status 13): the
			// client sends the request in full.
			return nil, incomplete, nil
		}
		body, err = h.mergeSync(ctx, s, cached, body)
		if err != nil {
			return nil, nil, err
		}
		if body.Child(wbxml.AirSyncCollections) == nil {
			return nil, incomplete, nil
		}
	}
	// Cache what the request asks, without commands and keys.
	c := wbxml.E(wbxml.AirSyncSync)
	for _, n := range body.Children {
		switch n.Tag {
		case wbxml.AirSyncCollections:
			cs := wbxml.E(wbxml.AirSyncCollections)
			for coll := range n.Each(wbxml.AirSyncCollection) {
				cc := wbxml.E(wbxml.AirSyncCollection)
				for _, e := range coll.Children {
					if e.Tag != wbxml.AirSyncCommands && e.Tag != wbxml.AirSyncSyncKey {
						cc.Append(e)
					}
				}
				cs.Append(cc)
			}
			c.Append(cs)
		case wbxml.AirSyncPartial:
		default:
			c.Append(n)
		}
	}
	var b bytes.Buffer
	if err := wbxml.Encode(&b, c); err != nil {
		return nil, nil, err
	}
	if !bytes.Equal(b.Bytes(), raw) {
		if err := h.deps.Store.PutUserSetting(ctx, s.User.ID, key, b.Bytes()); err != nil {
			return nil, nil, err
		}
	}
	return body, nil, nil
}

// mergeSync builds the request meant by an empty or partial one.
func (h *Handler) mergeSync(ctx context.Context, s *Session, cached, body *wbxml.Node) (*wbxml.Node, error) {
	out := wbxml.E(wbxml.AirSyncSync)
	named := map[string]*wbxml.Node{}
	var order []*wbxml.Node
	if body != nil {
		for c := range body.Child(wbxml.AirSyncCollections).Each(wbxml.AirSyncCollection) {
			named[c.ChildText(wbxml.AirSyncCollectionId)] = c
			order = append(order, c)
		}
	}
	colls := wbxml.E(wbxml.AirSyncCollections)
	for c := range cached.Child(wbxml.AirSyncCollections).Each(wbxml.AirSyncCollection) {
		id := c.ChildText(wbxml.AirSyncCollectionId)
		if named[id] != nil {
			continue
		}
		ss, err := h.deps.Store.LatestSyncState(ctx, s.Device.ID, id)
		if errors.Is(err, store.ErrNotFound) {
			continue // reset since: the client starts it over itself
		}
		if err != nil {
			return nil, err
		}
		colls.Append(wbxml.E(wbxml.AirSyncCollection, append([]*wbxml.Node{wbxml.T(wbxml.AirSyncSyncKey, ss.SyncKey)}, c.Children...)...))
	}
	for _, c := range order {
		if c.Child(wbxml.AirSyncSyncKey) == nil {
			ss, err := h.deps.Store.LatestSyncState(ctx, s.Device.ID, c.ChildText(wbxml.AirSyncCollectionId))
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, err
			}
			if err == nil {
				c = wbxml.E(wbxml.AirSyncCollection, append([]*wbxml.Node{wbxml.T(wbxml.AirSyncSyncKey, ss.SyncKey)}, c.Children...)...)
			}
		}
		colls.Append(c)
	}
	if len(colls.Children) > 0 {
		out.Append(colls)
	}
	// Top-level elements: the request's, else the cached ones; Wait and
	// HeartbeatInterval exclude each other, so they go together.
	from := cached
	if body != nil && (body.Child(wbxml.AirSyncWait) != nil || body.Child(wbxml.AirSyncHeartbeatInterval) != nil) {
		from = body
	}
	for _, t := range []wbxml.Tag{wbxml.AirSyncWait, wbxml.AirSyncHeartbeatInterval} {
		if n := from.Child(t); n != nil {
			out.Append(n)
		}
	}
	if body != nil && body.Child(wbxml.AirSyncWindowSize) != nil {
		out.Append(body.Child(wbxml.AirSyncWindowSize))
	} else if n := cached.Child(wbxml.AirSyncWindowSize); n != nil {
		out.Append(n)
	}
	return out, nil
}

// syncHold reads Wait (minutes) or HeartbeatInterval (seconds), MS-ASCMD
// 2.2.3.198 and 2.2.3.88.2: how long to hold a request that finds nothing;
// 0 for none. A non-nil node is the answer when they are wrong.
func (h *Handler) syncHold(body *wbxml.Node) (time.Duration, *wbxml.Node) {
	wait, hb := body.Child(wbxml.AirSyncWait), body.Child(wbxml.AirSyncHeartbeatInterval)
	bad := func(status int, limit int) *wbxml.Node {
		n := wbxml.E(wbxml.AirSyncSync, wbxml.T(wbxml.AirSyncStatus, strconv.Itoa(status)))
		if limit > 0 {
			n.Append(wbxml.T(wbxml.AirSyncLimit, strconv.Itoa(limit)))
		}
		return n
	}
	switch {
	case wait != nil && hb != nil:
		return 0, bad(syncProtocolError, 0) // only one of them (2.2.3.198)
	case wait != nil:
		n, err := strconv.Atoi(wait.Text())
		switch {
		case err != nil:
			return 0, bad(syncProtocolError, 0)
		case n < 1:
			return 0, bad(syncBadWait, 1)
		case n > 59:
			return 0, bad(syncBadWait, 59)
		}
		return time.Duration(n) * time.Minute, nil
	case hb != nil:
		n, err := strconv.Atoi(hb.Text())
		lo, hi := int(h.cfg.HeartbeatMin/time.Second), int(h.cfg.HeartbeatMax/time.Second)
		switch {
		case err != nil:
			return 0, bad(syncProtocolError, 0)
		case n < lo:
			return 0, bad(syncBadWait, lo)
		case n > hi:
			return 0, bad(syncBadWait, hi)
		}
		return time.Duration(n) * time.Second, nil
	}
	return 0, nil
}
