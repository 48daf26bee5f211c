package eas

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/easd/easd/eas/email"
	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/store"
	"github.com/easd/easd/wbxml"
)

// pimState is the Sync state of one store collection (calendar,
// contacts, tasks, notes) of one device, stored under the SyncKey the
// response carrying it gave. Changes are read from the collection's
// journal (store.Item.ModSeq).
type pimState struct {
	Epoch  string `json:"e"`
	N      uint64 `json:"n"`
	Parent string `json:"p,omitempty"`
	// Base: changes up to it are known to the device. Cursor: changes up
	// to it were looked at; it runs ahead of Base while a response window
	// leaves changes for the next one, or while a new FilterType rescans
	// the collection from 0.
	Base   int64 `json:"b"`
	Cursor int64 `json:"c"`
	Filter int   `json:"f,omitempty"`
	// Prefs are the body preferences last asked for.
	Prefs []email.BodyPreference `json:"bp,omitempty"`
	// Supported lists the properties the client handles (the Supported
	// element of its first Sync, MS-ASCMD 2.2.3.168): the others are
	// ghosted, kept as stored when a Change leaves them out.
	Supported []wbxml.Tag `json:"sup,omitempty"`
	// Held maps the items the device holds to their end (Unix seconds, 0
	// none), for FilterType windows that time moves.
	Held map[int64]int64 `json:"h"`
	// Sent and Replies are what the response that made this state
	// carried, for a retry of Parent: the server's commands and the
	// encoded Responses element.
	Sent    pimSent `json:"s"`
	Replies []byte  `json:"r,omitempty"`
}

type pimSent struct {
	Adds, Changes, Deletes, SoftDeletes []int64
	More                                bool
}

func (st *pimState) key() string     { return st.Epoch + "-" + strconv.FormatUint(st.N, 10) }
func (st *pimState) nextKey() string { return st.Epoch + "-" + strconv.FormatUint(st.N+1, 10) }

// itemServerID names an item: its collection's ServerId and its id.
func itemServerID(collID string, id int64) string { return collID + ":" + strconv.FormatInt(id, 10) }

func parseItemServerID(s, collID string) int64 {
	rest, ok := strings.CutPrefix(s, collID+":")
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

func (h *Handler) loadPimState(ctx context.Context, s *Session, coll, key string) (*pimState, error) {
	ss, err := h.deps.Store.SyncState(ctx, s.Device.ID, coll, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodePimState(s, coll, ss.Data), nil
}

func (h *Handler) latestPimState(ctx context.Context, s *Session, coll string) (*pimState, error) {
	ss, err := h.deps.Store.LatestSyncState(ctx, s.Device.ID, coll)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodePimState(s, coll, ss.Data), nil
}

func decodePimState(s *Session, coll string, b []byte) *pimState {
	if string(b) == resyncMarker {
		return nil // reset by an administrator: the client starts over
	}
	var st pimState
	if err := json.Unmarshal(b, &st); err != nil {
		s.Log.Warn("unreadable sync state: client starts over", "collection", coll, "err", err)
		return nil
	}
	if st.Held == nil {
		st.Held = map[int64]int64{}
	}
	return &st
}

func (h *Handler) putPimState(ctx context.Context, s *Session, coll string, st *pimState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return h.deps.Store.PutSyncState(ctx, store.SyncState{DeviceID: s.Device.ID, Collection: coll, SyncKey: st.key(), Data: b, CreatedAt: h.deps.Now()})
}

// pimSync is one store collection of one Sync request.
type pimSync struct {
	h     *Handler
	s     *Session
	f     *folderView
	c     *collReq
	st    *pimState
	codec item.Codec

	responses []*wbxml.Node
	dirty     bool            // client commands changed the device's items
	own       map[int64]int64 // item -> ModSeq this request wrote (not echoed)
}

// syncItems answers one store collection (MS-ASCMD 2.2.1.21): client
// commands first, then the server's changes from the collection's
// journal, in windows, with the same key journal, retry answers and
// FilterType rules as mail.
func (h *Handler) syncItems(ctx context.Context, s *Session, f *folderView, c *collReq) (*wbxml.Node, error) {
	codec := h.codec(f.class)
	if codec == nil || h.deps.Items == nil {
		return collStatus(c, syncHierarchyChange), nil
	}
	if c.key == "0" {
		if err := h.deps.Store.DeleteSyncStates(ctx, s.Device.ID, c.id); err != nil {
			return nil, err
		}
		st := &pimState{Epoch: h.newEpoch(), N: 1, Filter: c.filter, Prefs: c.opts.BodyPrefs, Held: map[int64]int64{}}
		if c.supported != nil {
			st.Supported = []wbxml.Tag{}
			for _, n := range c.supported.Children {
				st.Supported = append(st.Supported, n.Tag)
			}
		}
		if err := h.putPimState(ctx, s, c.id, st); err != nil {
			return nil, err
		}
		return h.collResponse(c, st.key(), syncOK, nil), nil
	}
	st, err := h.loadPimState(ctx, s, c.id, c.key)
	if err != nil {
		return nil, err
	}
	if st == nil {
		s.Log.Info("Sync key unknown", "collection", c.id, "synckey", c.key)
		return collStatus(c, syncInvalidKey), nil
	}
	if !c.hasOptions {
		c.filter, c.opts.BodyPrefs = st.Filter, st.Prefs
	}
	next, err := h.loadPimState(ctx, s, c.id, st.nextKey())
	if err != nil {
		return nil, err
	}
	ps := &pimSync{h: h, s: s, f: f, c: c, st: st, codec: codec, own: map[int64]int64{}}
	if next != nil && next.Parent == c.key {
		// A retry: the same answer, commands not applied twice.
		s.Log.Info("Sync retried: same answer again", "collection", c.id, "synckey", c.key)
		return ps.replay(ctx, next)
	}
	if err := ps.clientCommands(ctx); err != nil {
		return nil, err
	}
	return ps.respond(ctx)
}

// options are the codec options of this request.
func (p *pimSync) options() item.Options {
	o := item.Options{Version: p.s.Req.Version, BodyPrefs: p.c.opts.BodyPrefs, Now: p.h.deps.Now, NewUID: newUID}
	if sup := p.st.Supported; sup != nil {
		o.Ghosted = func(t wbxml.Tag) bool {
			for _, s := range sup {
				if s == t {
					return false
				}
			}
			return true
		}
	}
	return o
}

// addUID is the UID of the item a phone's Add (ClientId cid) creates in
// a Sync of collection coll with key: the same for the same request.
func addUID(device int64, coll, key, cid string) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%d\x00%s\x00%s\x00%s", device, coll, key, cid)))
	return hex.EncodeToString(h[:16]) + "@easd"
}

// newUID returns a random UID for an item a phone created.
func newUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b) + "@easd"
}

// clientCommands applies the client's Add, Change, Delete and Fetch.
func (p *pimSync) clientCommands(ctx context.Context) error {
	if p.c.commands == nil {
		return nil
	}
	items := p.h.deps.Items
	for _, cmd := range p.c.commands.Children {
		id := parseItemServerID(cmd.ChildText(wbxml.AirSyncServerId), p.c.id)
		switch cmd.Tag {
		case wbxml.AirSyncAdd:
			cid := cmd.ChildText(wbxml.AirSyncClientId)
			// A new item's UID follows from the request (device,
			// collection, key, ClientId): if this request is sent again
			// after its item was written but its state was not, the
			// Add finds its item (ErrExists below) instead of making a
			// second.
			o := p.options()
			o.NewUID = func() string { return addUID(p.s.Device.ID, p.c.id, p.c.key, cid) }
			data, idx, err := p.codec.Apply(nil, cmd.Child(wbxml.AirSyncApplicationData), o)
			if err != nil {
				p.s.Log.Info("client item refused", "collection", p.c.id, "err", err)
				p.responses = append(p.responses, wbxml.E(wbxml.AirSyncAdd, wbxml.T(wbxml.AirSyncClientId, cid), wbxml.T(wbxml.AirSyncStatus, strconv.Itoa(syncConversionError))))
				continue
			}
			it := store.Item{CollectionID: p.f.coll, UID: idx.UID, Data: data, Start: idx.Start, End: idx.End, Summary: idx.Summary}
			saved, err := items.PutItem(ctx, it)
			if errors.Is(err, store.ErrExists) {
				// The same UID again (an event re-added): it replaces the
				// stored one.
				var old store.Item
				if old, err = items.ItemByUID(ctx, p.f.coll, idx.UID); err == nil {
					it.ID = old.ID
					saved, err = items.PutItem(ctx, it)
				}
			}
			if err != nil {
				return err
			}
			p.own[saved.ID] = saved.ModSeq
			p.st.Held[saved.ID] = endUnix(saved.End)
			p.dirty = true
			p.responses = append(p.responses, wbxml.E(wbxml.AirSyncAdd, wbxml.T(wbxml.AirSyncClientId, cid),
				wbxml.T(wbxml.AirSyncServerId, itemServerID(p.c.id, saved.ID)), wbxml.T(wbxml.AirSyncStatus, "1")))
		case wbxml.AirSyncChange:
			if err := p.clientChange(ctx, cmd, id); err != nil {
				return err
			}
		case wbxml.AirSyncDelete:
			if _, held := p.st.Held[id]; id == 0 || !held {
				continue // not the device's: nothing to do (as for mail)
			}
			gone, err := items.DeleteItem(ctx, p.f.coll, id)
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				return err
			default:
				p.own[id] = gone.ModSeq
			}
			delete(p.st.Held, id)
			p.dirty = true
		case wbxml.AirSyncFetch:
			it, err := items.Item(ctx, p.f.coll, id)
			if errors.Is(err, store.ErrNotFound) || id == 0 {
				p.responses = append(p.responses, wbxml.E(wbxml.AirSyncFetch, wbxml.T(wbxml.AirSyncServerId, cmd.ChildText(wbxml.AirSyncServerId)), wbxml.T(wbxml.AirSyncStatus, strconv.Itoa(syncObjectNotFound))))
				continue
			}
			if err != nil {
				return err
			}
			app, failure := p.render(it, p.options())
			if failure != nil {
				// MS-ASCMD 2.2.3.177.17 status 6: the item cannot be
				// converted; the rest of the request goes on.
				p.s.Log.Warn("Fetch of an item that cannot be rendered", "collection", p.c.id, "item", id, "err", failure)
				p.responses = append(p.responses, wbxml.E(wbxml.AirSyncFetch, wbxml.T(wbxml.AirSyncServerId, itemServerID(p.c.id, id)), wbxml.T(wbxml.AirSyncStatus, strconv.Itoa(syncConversionError))))
				continue
			}
			p.responses = append(p.responses, wbxml.E(wbxml.AirSyncFetch, wbxml.T(wbxml.AirSyncServerId, itemServerID(p.c.id, id)), wbxml.T(wbxml.AirSyncStatus, "1"), app))
		}
	}
	return nil
}

// clientChange applies one Change. When the item also changed on the
// server since the device last heard of it, the server's version wins
// unless the client asked otherwise (Conflict 0, MS-ASCMD 2.2.3.34): the
// change is not applied and the server's version goes back to the device.
func (p *pimSync) clientChange(ctx context.Context, cmd *wbxml.Node, id int64) error {
	sid := cmd.ChildText(wbxml.AirSyncServerId)
	notFound := func() {
		p.responses = append(p.responses, wbxml.E(wbxml.AirSyncChange, wbxml.T(wbxml.AirSyncServerId, sid), wbxml.T(wbxml.AirSyncStatus, strconv.Itoa(syncObjectNotFound))))
	}
	if id == 0 {
		notFound()
		return nil
	}
	items := p.h.deps.Items
	cur, err := items.Item(ctx, p.f.coll, id)
	if errors.Is(err, store.ErrNotFound) {
		notFound()
		delete(p.st.Held, id)
		return nil
	}
	if err != nil {
		return err
	}
	if cur.ModSeq > p.st.Base && p.c.conflict != 0 {
		p.s.Log.Info("conflict: the server's version wins", "collection", p.c.id, "item", id)
		return nil
	}
	data, idx, err := p.codec.Apply(cur.Data, cmd.Child(wbxml.AirSyncApplicationData), p.options())
	if err != nil {
		p.s.Log.Info("client change refused", "collection", p.c.id, "item", id, "err", err)
		p.responses = append(p.responses, wbxml.E(wbxml.AirSyncChange, wbxml.T(wbxml.AirSyncServerId, sid), wbxml.T(wbxml.AirSyncStatus, strconv.Itoa(syncConversionError))))
		return nil
	}
	if idx.UID == "" {
		idx.UID = cur.UID
	}
	saved, err := items.PutItem(ctx, store.Item{ID: id, CollectionID: p.f.coll, UID: idx.UID, Data: data, Start: idx.Start, End: idx.End, Summary: idx.Summary})
	if err != nil {
		return err
	}
	p.own[id] = saved.ModSeq
	p.st.Held[id] = endUnix(saved.End)
	p.dirty = true
	return nil
}

func endUnix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// inWindow reports whether an item belongs to the FilterType window.
func inWindow(end time.Time, since time.Time) bool {
	return since.IsZero() || end.IsZero() || !end.Before(since)
}

// pimDiff is what the server sends to bring the device up to date.
type pimDiff struct {
	adds, changes, deletes, softDeletes []store.Item
	cursor                              int64
	more, done                          bool
	// gone are skipped items (pimDiff) found deleted.
	gone []int64
}

func (d *pimDiff) count() int {
	return len(d.adds) + len(d.changes) + len(d.deletes) + len(d.softDeletes)
}

// pimDiff reads the journal after the state's cursor and decides each
// change, up to room commands (0: count only whether there is one).
// Items written by this request (own) are not echoed back. The changes
// of the items skip reports (those that failed for the device,
// quarantine.go; nil skips none) are left out but their deletion, which
// is listed in gone (and sent if the device holds them).
func (h *Handler) pimDiff(ctx context.Context, coll int64, st *pimState, filter int, room int, own map[int64]int64, skip func(id int64) bool) (*pimDiff, error) {
	since := filterSince(h.deps.Now(), filter)
	d := &pimDiff{cursor: st.Cursor}
	base := st.Base
	if filter != st.Filter {
		d.cursor = 0 // a new window: look at everything again
	}
	held := st.Held
	limit := room
	if limit <= 0 {
		limit = 1
	}
	// Held items the window's move left behind: SoftDelete.
	if !since.IsZero() {
		for id, end := range held {
			if end != 0 && end < since.Unix() && len(d.softDeletes) < limit {
				d.softDeletes = append(d.softDeletes, store.Item{ID: id})
			}
		}
	}
	const batch = 256
	for d.count() < limit {
		chs, err := h.deps.Items.ItemChanges(ctx, coll, d.cursor, batch)
		if err != nil {
			return nil, err
		}
		for _, it := range chs {
			if d.count() >= limit {
				d.more = true
				return d, nil
			}
			d.cursor = it.ModSeq
			if ms, ok := own[it.ID]; ok && ms == it.ModSeq {
				continue
			}
			if skip != nil && skip(it.ID) {
				if !it.Deleted {
					continue
				}
				d.gone = append(d.gone, it.ID)
			}
			_, isHeld := held[it.ID]
			switch {
			case it.Deleted:
				if isHeld {
					d.deletes = append(d.deletes, it)
				}
			case inWindow(it.End, since):
				if !isHeld {
					d.adds = append(d.adds, it)
				} else if it.ModSeq > base {
					d.changes = append(d.changes, it)
				}
			case isHeld:
				if !softListed(d.softDeletes, it.ID) {
					d.softDeletes = append(d.softDeletes, it)
				}
			}
		}
		if len(chs) < batch {
			d.done = true
			return d, nil
		}
	}
	// The window is full: more if the journal goes on.
	chs, err := h.deps.Items.ItemChanges(ctx, coll, d.cursor, 1)
	if err != nil {
		return nil, err
	}
	d.more = len(chs) > 0
	d.done = !d.more
	return d, nil
}

func softListed(l []store.Item, id int64) bool {
	for _, it := range l {
		if it.ID == id {
			return true
		}
	}
	return false
}

// respond computes, sends and records the server's changes.
func (p *pimSync) respond(ctx context.Context) (*wbxml.Node, error) {
	h, c, st := p.h, p.c, p.st
	nst := *st
	nst.N++
	nst.Parent = c.key
	nst.Prefs = c.opts.BodyPrefs
	nst.Sent = pimSent{}
	nst.Held = st.Held // already updated by the client's commands
	g, err := h.guard(ctx, p.s, c.id, p.f.DisplayName)
	if err != nil {
		return nil, err
	}
	var cmds []*wbxml.Node
	if c.getChanges {
		d, err := h.pimDiff(ctx, p.f.coll, st, c.filter, c.window, p.own, func(id int64) bool { return g.known(itemServerID(c.id, id)) })
		if err != nil {
			return nil, err
		}
		if err := p.retries(ctx, g, d); err != nil {
			return nil, err
		}
		o := p.options()
		for _, it := range d.deletes {
			cmds = append(cmds, wbxml.E(wbxml.AirSyncDelete, wbxml.T(wbxml.AirSyncServerId, itemServerID(c.id, it.ID))))
			delete(nst.Held, it.ID)
			nst.Sent.Deletes = append(nst.Sent.Deletes, it.ID)
		}
		for _, it := range d.softDeletes {
			cmds = append(cmds, wbxml.E(wbxml.AirSyncSoftDelete, wbxml.T(wbxml.AirSyncServerId, itemServerID(c.id, it.ID))))
			delete(nst.Held, it.ID)
			nst.Sent.SoftDeletes = append(nst.Sent.SoftDeletes, it.ID)
		}
		// An item that fails to render is left out, not recorded as sent
		// (a changed one stays as the device has it): tried again later.
		for _, it := range d.changes {
			n, failure := p.itemNode(wbxml.AirSyncChange, it, o)
			if failure != nil {
				g.fail(itemServerID(c.id, it.ID), failure)
				continue
			}
			g.ok(itemServerID(c.id, it.ID))
			cmds = append(cmds, n)
			nst.Held[it.ID] = endUnix(it.End)
			nst.Sent.Changes = append(nst.Sent.Changes, it.ID)
		}
		for _, it := range d.adds {
			n, failure := p.itemNode(wbxml.AirSyncAdd, it, o)
			if failure != nil {
				g.fail(itemServerID(c.id, it.ID), failure)
				continue
			}
			g.ok(itemServerID(c.id, it.ID))
			cmds = append(cmds, n)
			nst.Held[it.ID] = endUnix(it.End)
			nst.Sent.Adds = append(nst.Sent.Adds, it.ID)
		}
		nst.Filter = c.filter
		nst.Cursor = d.cursor
		if d.done {
			nst.Base = d.cursor
		}
		nst.Sent.More = d.more
	}
	if len(cmds) == 0 && !p.dirty && len(p.responses) == 0 && !nst.Sent.More {
		// Nothing either way: the same key; a moved cursor (changes the
		// device need not see) is kept under it.
		if nst.Cursor != st.Cursor || nst.Base != st.Base || nst.Filter != st.Filter {
			keep := *st
			keep.Cursor, keep.Base, keep.Filter = nst.Cursor, nst.Base, nst.Filter
			if err := h.putPimState(ctx, p.s, c.id, &keep); err != nil {
				return nil, err
			}
		}
		p.s.BeforeSend(g.commit) // strikes of items that failed, if any
		return h.collResponse(c, c.key, syncOK, nil), nil
	}
	if len(p.responses) > 0 {
		var b bytes.Buffer
		if err := wbxml.Encode(&b, wbxml.E(wbxml.AirSyncResponses, p.responses...)); err != nil {
			return nil, err
		}
		nst.Replies = b.Bytes()
	} else {
		nst.Replies = nil
	}
	p.s.BeforeSend(func(ctx context.Context) error {
		if err := h.putPimState(ctx, p.s, c.id, &nst); err != nil {
			return err
		}
		return g.commit(ctx)
	})
	return h.collResponse(c, nst.key(), syncOK, func(n *wbxml.Node) {
		if len(p.responses) > 0 {
			n.Append(wbxml.E(wbxml.AirSyncResponses, p.responses...))
		}
		if len(cmds) > 0 {
			n.Append(wbxml.E(wbxml.AirSyncCommands, cmds...))
		}
		if nst.Sent.More {
			n.Append(wbxml.E(wbxml.AirSyncMoreAvailable))
		}
	}), nil
}

// itemNode renders an Add or Change of a stored item; failure is the
// item's own: its codec failed or panicked.
func (p *pimSync) itemNode(tag wbxml.Tag, it store.Item, o item.Options) (*wbxml.Node, error) {
	app, failure := p.render(it, o)
	if failure != nil {
		return nil, failure
	}
	n := wbxml.E(tag)
	if p.c.opts.Version == "12.1" && tag == wbxml.AirSyncAdd {
		n.Append(wbxml.T(wbxml.AirSyncClass, p.f.class))
	}
	return n.Append(wbxml.T(wbxml.AirSyncServerId, itemServerID(p.c.id, it.ID)), app), nil
}

// replay answers a retried request as the first answer did: the same
// Responses and the same items (as they are now) under the same key.
func (p *pimSync) replay(ctx context.Context, next *pimState) (*wbxml.Node, error) {
	var replies *wbxml.Node
	if len(next.Replies) > 0 {
		var err error
		if replies, err = wbxml.DecodeBytes(next.Replies, wbxml.Limits{}); err != nil {
			return nil, err
		}
	}
	g, err := p.h.guard(ctx, p.s, p.c.id, p.f.DisplayName)
	if err != nil {
		return nil, err
	}
	var failed []int64 // items that went out the first time and fail now
	p.s.BeforeSend(func(ctx context.Context) error {
		if len(failed) > 0 {
			// Not sent this time: the state must not say the device has
			// them (a changed one stays as the device has it).
			for _, id := range failed {
				if slices.Contains(next.Sent.Adds, id) {
					delete(next.Held, id)
				}
			}
			drop := func(id int64) bool { return slices.Contains(failed, id) }
			next.Sent.Adds = slices.DeleteFunc(next.Sent.Adds, drop)
			next.Sent.Changes = slices.DeleteFunc(next.Sent.Changes, drop)
			if err := p.h.putPimState(ctx, p.s, p.c.id, next); err != nil {
				return err
			}
		}
		return g.commit(ctx)
	})
	o := p.options()
	var cmds []*wbxml.Node
	for _, id := range next.Sent.Deletes {
		cmds = append(cmds, wbxml.E(wbxml.AirSyncDelete, wbxml.T(wbxml.AirSyncServerId, itemServerID(p.c.id, id))))
	}
	for _, id := range next.Sent.SoftDeletes {
		cmds = append(cmds, wbxml.E(wbxml.AirSyncSoftDelete, wbxml.T(wbxml.AirSyncServerId, itemServerID(p.c.id, id))))
	}
	for _, l := range []struct {
		tag wbxml.Tag
		ids []int64
	}{{wbxml.AirSyncChange, next.Sent.Changes}, {wbxml.AirSyncAdd, next.Sent.Adds}} {
		for _, id := range l.ids {
			it, err := p.h.deps.Items.Item(ctx, p.f.coll, id)
			if errors.Is(err, store.ErrNotFound) {
				// Deleted since: the next Sync says so.
				continue
			}
			if err != nil {
				return nil, err
			}
			n, failure := p.itemNode(l.tag, it, o)
			if failure != nil {
				g.fail(itemServerID(p.c.id, id), failure)
				failed = append(failed, id)
				continue
			}
			cmds = append(cmds, n)
		}
	}
	return p.h.collResponse(p.c, next.key(), syncOK, func(n *wbxml.Node) {
		if replies != nil {
			n.Append(replies)
		}
		if len(cmds) > 0 {
			n.Append(wbxml.E(wbxml.AirSyncCommands, cmds...))
		}
		if next.Sent.More {
			n.Append(wbxml.E(wbxml.AirSyncMoreAvailable))
		}
	}), nil
}

// itemsChanged reports whether a Sync of the device's store collection
// would now send anything (Ping, Sync with Wait): the same diff Sync
// makes, counting only.
func (h *Handler) itemsChanged(ctx context.Context, s *Session, pc *pushColl) (bool, error) {
	st, err := h.latestPimState(ctx, s, pc.id)
	if err != nil || st == nil {
		return false, err
	}
	if st.Sent.More {
		return true, nil
	}
	c, err := h.deps.Items.Collection(ctx, s.User.ID, pc.coll)
	if errors.Is(err, store.ErrNotFound) {
		return false, ErrMailFolderGone
	}
	if err != nil {
		return false, err
	}
	since := filterSince(h.deps.Now(), st.Filter)
	aged := false
	if !since.IsZero() {
		for _, end := range st.Held {
			if end != 0 && end < since.Unix() {
				aged = true
				break
			}
		}
	}
	if c.ModSeq == st.Cursor && !aged {
		return false, nil
	}
	// Items that failed for the device are no news (quarantine.go).
	g, err := h.guard(ctx, s, pc.id, "")
	if err != nil {
		return false, err
	}
	d, err := h.pimDiff(ctx, pc.coll, st, st.Filter, 1, nil, func(id int64) bool { return g.known(itemServerID(pc.id, id)) })
	if err != nil {
		return false, err
	}
	return d.count() > 0, nil
}

// render is the codec's Render with a panic turned into an error: either
// is the item's failure.
func (p *pimSync) render(it store.Item, o item.Options) (app *wbxml.Node, failure error) {
	id := itemServerID(p.c.id, it.ID)
	defer func() {
		if r := recover(); r != nil {
			app, failure = nil, recovered(p.s, "rendering item "+id, r)
		}
	}()
	app, err := p.codec.Render(it.Data, o)
	if err != nil {
		return nil, fmt.Errorf("rendering item %s: %w", id, err)
	}
	return app, nil
}

// retries adds to d the items that failed before and are to be tried
// again, within the window's room left (MoreAvailable if they do not fit);
// failed items that are gone or out of the window are forgotten.
func (p *pimSync) retries(ctx context.Context, g *itemGuard, d *pimDiff) error {
	for _, id := range d.gone {
		g.ok(itemServerID(p.c.id, id))
	}
	since := filterSince(p.h.deps.Now(), p.c.filter)
	room := p.c.window - d.count()
	for _, sid := range g.retrying() {
		id := parseItemServerID(sid, p.c.id)
		if id == 0 || slices.Contains(d.gone, id) {
			g.ok(sid)
			continue
		}
		if room <= 0 {
			d.more = true
			return nil
		}
		it, err := p.h.deps.Items.Item(ctx, p.f.coll, id)
		if errors.Is(err, store.ErrNotFound) {
			g.ok(sid)
			continue
		}
		if err != nil {
			return err
		}
		if !inWindow(it.End, since) {
			g.ok(sid)
			continue
		}
		if _, held := p.st.Held[id]; held {
			d.changes = append(d.changes, it)
		} else {
			d.adds = append(d.adds, it)
		}
		room--
	}
	return nil
}
