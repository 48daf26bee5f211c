package eas

import (
	"cmp"
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
	// conflict is Options > Conflict (MS-ASCMD 2.2.3.34): 1 (default) the
	// server's version wins, 0 the client's.
	conflict int
	class    string // "Email", or the store collection's class
	// supported is the Supported element (MS-ASCMD 2.2.3.168) of an
	// initial Sync: the properties the client handles; nil when absent.
	supported *wbxml.Node
}

// sync runs Sync, MS-ASCMD 2.2.1.21, for email collections. An empty or
// partial request is completed from the device's last one (2.2.1.21.1);
// with Wait or HeartbeatInterval a request that finds nothing to send is
// held until something changes (3.1.5.4), then answered in full, or
// with an empty response once the interval ends.
func (h *Handler) sync(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error) {
	body, resp, err := h.syncRequest(ctx, s, body)
	if err != nil || resp != nil {
		return resp, err
	}
	hold, resp := h.syncHold(body)
	if resp != nil {
		return resp, nil
	}
	if hold > 0 {
		hold = h.holdFor(s, hold)
	}
	deadline := time.Now().Add(hold) // wall clock: how long a socket is held
	for round := 0; ; round++ {
		out, quiet, colls, err := h.syncOnce(ctx, s, body)
		if err != nil || !quiet || hold <= 0 || round == maxWaitRounds {
			return out, err
		}
		// Nothing to send: the states are as they were; release the
		// collections (the device may send another Sync meanwhile) and
		// wait for a change.
		for _, f := range s.beforeSend {
			if err := f(ctx); err != nil {
				return nil, err
			}
		}
		s.beforeSend = nil
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil
		}
		folders := map[string]string{}
		for _, pc := range colls {
			if pc.name != "" && !pc.noSelect {
				folders[pc.name] = pc.id
			}
		}
		check := func(ctx context.Context, notified map[string]MailStatus, all bool) (bool, error) {
			if _, ok := notified[""]; ok {
				return true, nil // folders may be gone: Sync again says so
			}
			for _, pc := range colls {
				known, ok := notified[pc.id]
				if !ok && !all {
					continue
				}
				changed, err := h.mailChanged(ctx, s, pc, known)
				if errors.Is(err, ErrMailFolderGone) || changed {
					return true, nil
				}
				if err != nil {
					return false, mailError(err)
				}
			}
			return false, nil
		}
		// The first check of park finds what changed while this request
		// ran: answer at once then.
		end, err := h.park(ctx, s, parkSpec{hold: left, folders: folders, check: check})
		if err != nil {
			return nil, err
		}
		if end != parkChanged {
			// MS-ASCMD 2.2.1.21.2: an empty response, nothing changed.
			return nil, nil
		}
	}
}

// maxWaitRounds bounds how often one held Sync runs again after being
// woken without finding anything to send.
const maxWaitRounds = 8

// syncOnce answers a Sync request once. quiet reports that nothing is to
// be sent: every collection keeps its key and carries no command; colls
// are then the collections to watch.
func (h *Handler) syncOnce(ctx context.Context, s *Session, body *wbxml.Node) (out *wbxml.Node, quiet bool, colls []*pushColl, err error) {
	collsNode := body.Child(wbxml.AirSyncCollections)
	global := 0
	if w := body.ChildText(wbxml.AirSyncWindowSize); w != "" {
		global, _ = strconv.Atoi(w)
	}
	var ids []string
	for c := range collsNode.Each(wbxml.AirSyncCollection) {
		ids = append(ids, c.ChildText(wbxml.AirSyncCollectionId))
	}
	hr, err := h.knownHierarchy(ctx, s, ids...)
	if err != nil {
		return nil, false, nil, err
	}
	// One request at a time per (device, collection): a duplicate sent
	// while the first is running waits, then finds the state the first
	// saved and is answered as its retry.
	unlock := h.locks.lock(s.Device.ID, ids)
	s.OnDone(unlock)
	res := wbxml.E(wbxml.AirSyncCollections)
	quiet = true
	for c := range collsNode.Each(wbxml.AirSyncCollection) {
		class := "Email"
		if f := hr.byID[c.ChildText(wbxml.AirSyncCollectionId)]; f != nil && f.class != "" {
			class = f.class
		}
		req, status := h.parseCollection(s, c, global, class)
		var n *wbxml.Node
		switch {
		case status != syncOK:
			n = collStatus(req, status)
		default:
			n, err = h.syncCollection(ctx, s, hr, req)
			if err != nil {
				return nil, false, nil, err
			}
		}
		if quiet && isQuiet(n, req.key) {
			if f := hr.byID[req.id]; f != nil {
				colls = append(colls, &pushColl{id: f.ID, name: f.name, noSelect: f.noSelect, coll: f.coll})
			}
		} else {
			quiet = false
		}
		if req.commands != nil && len(req.commands.Children) > 0 && status == syncOK {
			// Other devices of the user hear of the change once it is
			// saved and answered.
			id := req.id
			s.OnDone(func() { h.publish(ctx, s.User.ID, id) })
		}
		res.Append(n)
	}
	// Released once the states are saved, before the response is sent.
	s.BeforeSend(func(context.Context) error { unlock(); return nil })
	return wbxml.E(wbxml.AirSyncSync, res), quiet, colls, nil
}

// isQuiet reports whether a response Collection sends nothing: status 1,
// the request's key, no commands, responses or MoreAvailable.
func isQuiet(n *wbxml.Node, key string) bool {
	for _, c := range n.Children {
		switch {
		case c.Gen != nil:
			return false
		case c.Tag == wbxml.AirSyncSyncKey:
			if c.Text() != key {
				return false
			}
		case c.Tag == wbxml.AirSyncStatus:
			if c.Text() != "1" {
				return false
			}
		case c.Tag == wbxml.AirSyncCommands, c.Tag == wbxml.AirSyncResponses, c.Tag == wbxml.AirSyncMoreAvailable:
			return false
		}
	}
	return true
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
func (h *Handler) parseCollection(s *Session, c *wbxml.Node, global int, class string) (*collReq, int) {
	r := &collReq{
		class:          class,
		conflict:       1,
		supported:      c.Child(wbxml.AirSyncSupported),
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
		if cl := o.ChildText(wbxml.AirSyncClass); cl != "" && cl != class {
			continue // SMS options (14.0+): no SMS here
		}
		parseBodyOptions(o, &r.opts)
		if cf := o.ChildText(wbxml.AirSyncConflict); cf != "" {
			r.conflict, _ = strconv.Atoi(cf)
		}
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
	if f.coll != 0 {
		return h.syncItems(ctx, s, f, c)
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
		n.Append(wbxml.T(wbxml.AirSyncClass, cmp.Or(c.class, "Email")))
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
	if string(ss.Data) == resyncMarker {
		// 'easd device resync' reset the folder (quarantine.go).
		s.Log.Info("folder was reset by an administrator: client starts over", "collection", coll)
		return nil, nil
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
