package eas

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/easd/easd/eas/email"
	"github.com/easd/easd/store"
	"github.com/easd/easd/wbxml"
)

// Sync status values, MS-ASCMD 2.2.3.177.17.
const (
	syncOK              = 1
	syncInvalidKey      = 3  // client must start over with SyncKey 0
	syncProtocolError   = 4  // malformed request
	syncServerError     = 5  // retry later
	syncConversionError = 6  // item-level: client data could not be applied
	syncObjectNotFound  = 8  // item-level: no such ServerId
	syncHierarchyChange = 12 // FolderSync needed
	syncIncomplete      = 13 // empty or partial request without a cached one
)

// Window sizes, MS-ASCMD 2.2.3.199: 100 by default, 512 at most.
const (
	defaultWindow = 100
	maxWindow     = 512
)

// syncBudget bounds the message bytes (RFC822.SIZE) one Sync response
// carries; past it the rest waits behind MoreAvailable. At least one
// message is always sent.
const syncBudget = 32 << 20

// syncSpoolMemory is the RAM a MIME body may take while its message is
// converted and encoded (one at a time); beyond it, a temporary file.
const syncSpoolMemory = 1 << 20

// collReq is one Collection of a Sync request.
type collReq struct {
	key, id        string
	getChanges     bool
	window         int
	deletesAsMoves bool
	filter         int
	opts           email.Options
	commands       *wbxml.Node
	hasOptions     bool // false: keep the options of the last request
}

// sync runs Sync, MS-ASCMD 2.2.1.21, for email collections.
func (h *Handler) sync(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error) {
	colls := body.Child(wbxml.AirSyncCollections)
	if body == nil || colls == nil {
		// An empty Sync means "the same as last time" (MS-ASCMD 2.2.3.
		// 175); nothing is cached yet, so the client sends it in full.
		return wbxml.E(wbxml.AirSyncSync, wbxml.T(wbxml.AirSyncStatus, strconv.Itoa(syncIncomplete))), nil
	}
	global := 0
	if w := body.ChildText(wbxml.AirSyncWindowSize); w != "" {
		global, _ = strconv.Atoi(w)
	}
	var ids []string
	for c := range colls.Each(wbxml.AirSyncCollection) {
		ids = append(ids, c.ChildText(wbxml.AirSyncCollectionId))
	}
	hr, err := h.knownHierarchy(ctx, s, ids...)
	if err != nil {
		return nil, err
	}
	// One request at a time per (device, collection): a duplicate sent
	// while the first is running waits, then finds the state the first
	// saved and is answered as its retry.
	unlock := h.locks.lock(s.Device.ID, ids)
	s.OnDone(unlock)
	out := wbxml.E(wbxml.AirSyncCollections)
	for c := range colls.Each(wbxml.AirSyncCollection) {
		req, status := h.parseCollection(s, c, global)
		var n *wbxml.Node
		switch {
		case status != syncOK:
			n = collStatus(req, status)
		default:
			n, err = h.syncCollection(ctx, s, hr, req)
			if err != nil {
				return nil, err
			}
		}
		out.Append(n)
	}
	// Released once the states are saved, before the response is sent.
	s.BeforeSend(func(context.Context) error { unlock(); return nil })
	return wbxml.E(wbxml.AirSyncSync, out), nil
}

// collStatus is a Collection answered with a status only.
func collStatus(c *collReq, status int) *wbxml.Node {
	n := wbxml.E(wbxml.AirSyncCollection)
	if c.key != "" {
		n.Append(wbxml.T(wbxml.AirSyncSyncKey, c.key))
	}
	return n.Append(wbxml.T(wbxml.AirSyncCollectionId, c.id), wbxml.T(wbxml.AirSyncStatus, strconv.Itoa(status)))
}

// parseCollection reads a request Collection (MS-ASCMD 2.2.3.29.2).
func (h *Handler) parseCollection(s *Session, c *wbxml.Node, global int) (*collReq, int) {
	r := &collReq{
		key:            c.ChildText(wbxml.AirSyncSyncKey),
		id:             c.ChildText(wbxml.AirSyncCollectionId),
		getChanges:     true,
		deletesAsMoves: true, // MS-ASCMD 2.2.3.43.2: absent means true
		window:         defaultWindow,
	}
	if r.key == "" || r.id == "" {
		return r, syncProtocolError
	}
	if g := c.Child(wbxml.AirSyncGetChanges); g != nil {
		// An empty element means true (MS-ASCMD 2.2.3.79).
		r.getChanges = g.Text() != "0"
	}
	if d := c.Child(wbxml.AirSyncDeletesAsMoves); d != nil {
		r.deletesAsMoves = d.Text() != "0"
	}
	if global > 0 {
		r.window = global
	}
	if w := c.ChildText(wbxml.AirSyncWindowSize); w != "" {
		if n, err := strconv.Atoi(w); err == nil && n > 0 {
			r.window = n
		}
	}
	r.window = min(max(r.window, 1), maxWindow)
	r.opts = email.Options{Version: s.Req.Version}
	for o := range c.Each(wbxml.AirSyncOptions) {
		r.hasOptions = true
		if cl := o.ChildText(wbxml.AirSyncClass); cl != "" && cl != "Email" {
			continue // SMS options (14.0+): no SMS here
		}
		parseBodyOptions(o, &r.opts)
		if f := o.ChildText(wbxml.AirSyncFilterType); f != "" {
			r.filter, _ = strconv.Atoi(f)
		}
	}
	r.commands = c.Child(wbxml.AirSyncCommands)
	return r, syncOK
}

// parseBodyOptions reads BodyPreference and MIMESupport from Sync,
// ItemOperations or Search options (MS-ASAIRS 2.2.2.7, MS-ASCMD
// 2.2.3.110).
func parseBodyOptions(o *wbxml.Node, opts *email.Options) {
	for bp := range o.Each(wbxml.AirSyncBaseBodyPreference) {
		p := email.BodyPreference{}
		p.Type, _ = strconv.Atoi(bp.ChildText(wbxml.AirSyncBaseType))
		p.TruncationSize, _ = strconv.ParseInt(bp.ChildText(wbxml.AirSyncBaseTruncationSize), 10, 64)
		p.AllOrNone = bp.ChildText(wbxml.AirSyncBaseAllOrNone) == "1"
		p.Preview, _ = strconv.Atoi(bp.ChildText(wbxml.AirSyncBasePreview))
		if p.Type > 0 {
			opts.BodyPrefs = append(opts.BodyPrefs, p)
		}
	}
	if m := o.ChildText(wbxml.AirSyncMIMESupport); m != "" {
		opts.MIMESupport, _ = strconv.Atoi(m)
	}
}

// filterSince is the first day a FilterType keeps (MS-ASCMD 2.2.3.70.1);
// zero for "all". Ping and GetItemEstimate use it too, so what they count
// is what Sync sends.
func filterSince(now time.Time, ft int) time.Time {
	var d time.Duration
	switch ft {
	case 1:
		d = 24 * time.Hour
	case 2:
		d = 3 * 24 * time.Hour
	case 3:
		d = 7 * 24 * time.Hour
	case 4:
		d = 14 * 24 * time.Hour
	case 5:
		d = 30 * 24 * time.Hour
	case 6:
		d = 90 * 24 * time.Hour
	case 7:
		d = 180 * 24 * time.Hour
	default:
		return time.Time{}
	}
	t := now.UTC().Add(-d)
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// syncCollection answers one collection.
func (h *Handler) syncCollection(ctx context.Context, s *Session, hr *hierarchy, c *collReq) (*wbxml.Node, error) {
	f := hr.byID[c.id]
	if f == nil {
		// A collection the hierarchy no longer has: FolderSync first.
		return collStatus(c, syncHierarchyChange), nil
	}
	if c.key == "0" {
		// SyncKey 0 resets the collection and returns no items (MS-ASCMD
		// 2.2.3.166.4).
		if err := h.deps.Store.DeleteSyncStates(ctx, s.Device.ID, c.id); err != nil {
			return nil, err
		}
		// The device starts from nothing: moves it made are not known to
		// it any more.
		if err := h.deps.Store.PutUserSetting(ctx, s.User.ID, movesKey(s.Device.ID, c.id), nil); err != nil {
			return nil, err
		}
		st := &mailState{Epoch: h.newEpoch(), N: 1, Filter: c.filter, Prefs: c.opts.BodyPrefs, MIMESupport: c.opts.MIMESupport, Items: map[uint32]itemState{}}
		if err := h.putMailState(ctx, s, c.id, st); err != nil {
			return nil, err
		}
		return h.collResponse(c, st.key(), syncOK, nil), nil
	}
	st, err := h.loadMailState(ctx, s, c.id, c.key)
	if err != nil {
		return nil, err
	}
	if st == nil {
		s.Log.Info("Sync key unknown", "collection", c.id, "synckey", c.key)
		return collStatus(c, syncInvalidKey), nil
	}
	if !c.hasOptions {
		// No Options: the last ones stand (MS-ASCMD 2.2.3.125.6).
		c.filter, c.opts.BodyPrefs, c.opts.MIMESupport = st.Filter, st.Prefs, st.MIMESupport
	}
	if f.name == "" || f.noSelect {
		// The Outbox and folders that hold no messages: always empty.
		return h.collResponse(c, c.key, syncOK, nil), nil
	}
	ms := &mailSync{ctx: ctx, h: h, s: s, hr: hr, f: f, c: c, st: st}
	n, err := ms.run(ctx)
	if errors.Is(err, ErrMailFolderGone) {
		// Gone upstream since the last FolderSync: this collection asks
		// for one, the others go on.
		s.Log.Info("folder gone upstream", "collection", c.id, "folder", f.name)
		return collStatus(c, syncHierarchyChange), nil
	}
	return n, err
}

// collResponse builds a response Collection (MS-ASCMD 2.2.3.29.2).
func (h *Handler) collResponse(c *collReq, key string, status int, fill func(n *wbxml.Node)) *wbxml.Node {
	n := wbxml.E(wbxml.AirSyncCollection)
	if c.opts.Version == "12.1" {
		n.Append(wbxml.T(wbxml.AirSyncClass, "Email"))
	}
	n.Append(wbxml.T(wbxml.AirSyncSyncKey, key), wbxml.T(wbxml.AirSyncCollectionId, c.id), wbxml.T(wbxml.AirSyncStatus, strconv.Itoa(status)))
	if fill != nil {
		fill(n)
	}
	return n
}

func (h *Handler) loadMailState(ctx context.Context, s *Session, coll, key string) (*mailState, error) {
	ss, err := h.deps.Store.SyncState(ctx, s.Device.ID, coll, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	st, err := unmarshalMailState(ss.Data)
	if err != nil {
		s.Log.Warn("unreadable sync state: client starts over", "collection", coll, "err", err)
		return nil, nil
	}
	return st, nil
}

func (h *Handler) putMailState(ctx context.Context, s *Session, coll string, st *mailState) error {
	return h.deps.Store.PutSyncState(ctx, store.SyncState{DeviceID: s.Device.ID, Collection: coll, SyncKey: st.key(), Data: st.marshal(), CreatedAt: h.deps.Now()})
}
