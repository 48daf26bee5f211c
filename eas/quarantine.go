package eas

// Loop protection. An item that makes a Sync response fail (a message
// the upstream refuses to give, a conversion that fails or panics, a
// calendar or contacts item its codec cannot render) is left out of the
// response instead of failing it, and not recorded as sent, so nothing is
// lost: the next Sync of the collection tries it again. Each failure is a
// strike for (device, collection, item), kept with its reason in the
// user setting quarantine/<device>; at quarantineStrikes the item is
// quarantined for that device: no longer tried, no longer counted as a
// change (no MoreAvailable, no Ping), until an administrator resyncs the
// folder (ResyncFolder, 'easd device resync'). Without this a phone
// retries the failed response forever.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/easd/easd/store"
)

const (
	// quarantineStrikes is how many failures quarantine an item.
	quarantineStrikes = 3
	// quarantineMax bounds the entries kept per device; past it the
	// entries failed longest ago are dropped.
	quarantineMax = 1000
	// quarantineReasonMax bounds a stored reason, in bytes.
	quarantineReasonMax = 400
	// quarantineLock names the per-device lock (keyLocks) under which the
	// list is read, changed and written; no collection id starts with a
	// NUL byte.
	quarantineLock = "\x00quarantine"
)

// quarantineKey is the user setting holding a device's failed items.
func quarantineKey(device int64) string { return "quarantine/" + strconv.FormatInt(device, 10) }

// QuarantinedItem is an item that failed to be sent to one device: still
// tried again while Strikes is below the threshold, quarantined (skipped)
// from then on.
type QuarantinedItem struct {
	// Collection is the ServerId of the item's folder.
	Collection string `json:"c"`
	// Folder is the folder's name when the item last failed: the full
	// upstream name of a mail folder, the display name of a calendar,
	// contacts, tasks or notes folder.
	Folder string `json:"f,omitempty"`
	// Item is the item's ServerId.
	Item string `json:"i"`
	// Strikes counts the responses the item failed in.
	Strikes int `json:"n"`
	// First and Last are when it failed first and last.
	First time.Time `json:"t0"`
	Last  time.Time `json:"t1"`
	// Reason is the last failure's error.
	Reason string `json:"r"`
}

// Quarantined reports whether the item is no longer tried.
func (q QuarantinedItem) Quarantined() bool { return q.Strikes >= quarantineStrikes }

// quarantineList is the stored form.
type quarantineList struct {
	Items []QuarantinedItem `json:"items"`
}

// SettingStore is the part of the store the quarantine list needs.
type SettingStore interface {
	UserSetting(ctx context.Context, userID int64, key string) ([]byte, error)
	PutUserSetting(ctx context.Context, userID int64, key string, value []byte) error
}

// DeviceStateStore is what ResyncFolder needs of the store; store.Store
// has it.
type DeviceStateStore interface {
	SettingStore
	LatestSyncState(ctx context.Context, deviceID int64, collection string) (store.SyncState, error)
	PutSyncState(ctx context.Context, s store.SyncState) error
	DeleteSyncStates(ctx context.Context, deviceID int64, collection string) error
	Collections(ctx context.Context, userID int64) ([]store.Collection, error)
}

func loadQuarantine(ctx context.Context, st SettingStore, userID, device int64) (*quarantineList, error) {
	raw, err := st.UserSetting(ctx, userID, quarantineKey(device))
	var l quarantineList
	switch {
	case errors.Is(err, store.ErrNotFound), err == nil && len(raw) == 0:
		return &l, nil
	case err != nil:
		return nil, err
	}
	if err := json.Unmarshal(raw, &l); err != nil {
		// Unreadable: start afresh rather than fail every Sync.
		return &quarantineList{}, nil
	}
	return &l, nil
}

func (l *quarantineList) save(ctx context.Context, st SettingStore, userID, device int64) error {
	if len(l.Items) > quarantineMax {
		// Keep the newest failures.
		slices.SortStableFunc(l.Items, func(a, b QuarantinedItem) int { return b.Last.Compare(a.Last) })
		l.Items = l.Items[:quarantineMax]
	}
	slices.SortFunc(l.Items, func(a, b QuarantinedItem) int {
		return cmp.Or(cmp.Compare(a.Collection, b.Collection), compareServerIDs(a.Item, b.Item))
	})
	if len(l.Items) == 0 {
		return st.PutUserSetting(ctx, userID, quarantineKey(device), nil)
	}
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return st.PutUserSetting(ctx, userID, quarantineKey(device), b)
}

// compareServerIDs orders "coll:n" ids by their number.
func compareServerIDs(a, b string) int {
	na, errA := strconv.ParseInt(a[strings.LastIndexByte(a, ':')+1:], 10, 64)
	nb, errB := strconv.ParseInt(b[strings.LastIndexByte(b, ':')+1:], 10, 64)
	if errA != nil || errB != nil {
		return cmp.Compare(a, b)
	}
	return cmp.Compare(na, nb)
}

// QuarantinedItems lists the items that failed for a device (by its row
// id, store.Device.ID): those quarantined and those still tried again,
// ordered by collection and item.
func QuarantinedItems(ctx context.Context, st SettingStore, userID, deviceID int64) ([]QuarantinedItem, error) {
	l, err := loadQuarantine(ctx, st, userID, deviceID)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(l.Items, func(a, b QuarantinedItem) int {
		return cmp.Or(cmp.Compare(a.Collection, b.Collection), compareServerIDs(a.Item, b.Item))
	})
	return l.Items, nil
}

// itemGuard is one collection's failed items as one Sync response uses
// them: which to skip, which to try again, and the outcome to record.
type itemGuard struct {
	h            *Handler
	s            *Session
	coll, folder string
	strikes      map[string]int // item ServerId -> strikes so far

	failed map[string]string // item -> reason, in this response
	order  []string          // failed items in the order they failed
	done   map[string]bool   // items that went out or are gone: forget them
}

// guard loads the failed items of the device's collection coll.
func (h *Handler) guard(ctx context.Context, s *Session, coll, folder string) (*itemGuard, error) {
	l, err := loadQuarantine(ctx, h.deps.Store, s.User.ID, s.Device.ID)
	if err != nil {
		return nil, err
	}
	g := &itemGuard{h: h, s: s, coll: coll, folder: folder, strikes: map[string]int{}, failed: map[string]string{}, done: map[string]bool{}}
	for _, q := range l.Items {
		if q.Collection == coll {
			g.strikes[q.Item] = q.Strikes
		}
	}
	return g, nil
}

// quarantined reports whether an item is no longer tried.
func (g *itemGuard) quarantined(id string) bool { return g.strikes[id] >= quarantineStrikes }

// known reports whether an item failed before (quarantined or not).
func (g *itemGuard) known(id string) bool { _, ok := g.strikes[id]; return ok }

// retrying lists the items that failed before and are still tried,
// ordered.
func (g *itemGuard) retrying() []string {
	var out []string
	for id, n := range g.strikes {
		if n < quarantineStrikes {
			out = append(out, id)
		}
	}
	slices.SortFunc(out, compareServerIDs)
	return out
}

// fail records a failure of the item in this response.
func (g *itemGuard) fail(id string, err error) {
	if _, ok := g.failed[id]; ok {
		return
	}
	reason := err.Error()
	if len(reason) > quarantineReasonMax {
		reason = strings.ToValidUTF8(reason[:quarantineReasonMax], "") + "…"
	}
	g.failed[id] = reason
	g.order = append(g.order, id)
}

// ok records that an item went out, or is gone: a failure it had is
// forgotten.
func (g *itemGuard) ok(id string) {
	if _, ok := g.strikes[id]; ok {
		g.done[id] = true
	}
}

// commit records the strikes of this response and forgets the items that
// went out, under the device's lock. Every strike is logged; the one that
// quarantines the item says so.
func (g *itemGuard) commit(ctx context.Context) error {
	if len(g.failed) == 0 && len(g.done) == 0 {
		return nil
	}
	h, s := g.h, g.s
	unlock := h.locks.lock(s.Device.ID, []string{quarantineLock})
	defer unlock()
	l, err := loadQuarantine(ctx, h.deps.Store, s.User.ID, s.Device.ID)
	if err != nil {
		return err
	}
	now := h.deps.Now()
	idx := map[string]int{}
	for i, q := range l.Items {
		if q.Collection == g.coll {
			idx[q.Item] = i
		}
	}
	for _, id := range g.order {
		reason := g.failed[id]
		i, ok := idx[id]
		if !ok {
			l.Items = append(l.Items, QuarantinedItem{Collection: g.coll, Item: id, First: now})
			i = len(l.Items) - 1
			idx[id] = i
		}
		q := &l.Items[i]
		q.Strikes++
		q.Last, q.Reason, q.Folder = now, reason, g.folder
		if q.Strikes == quarantineStrikes {
			s.Log.Warn("item quarantined for this device: no longer sent until the folder is resynced",
				"collection", g.coll, "folder", g.folder, "item", id, "strikes", q.Strikes, "reason", reason)
		} else {
			s.Log.Warn("item failed: left out of this response, tried again later",
				"collection", g.coll, "folder", g.folder, "item", id, "strike", q.Strikes, "of", quarantineStrikes, "reason", reason)
		}
	}
	if len(g.done) > 0 {
		l.Items = slices.DeleteFunc(l.Items, func(q QuarantinedItem) bool {
			_, again := g.failed[q.Item]
			return q.Collection == g.coll && g.done[q.Item] && !again
		})
	}
	return l.save(ctx, h.deps.Store, s.User.ID, s.Device.ID)
}

// forgetCollection drops a collection's entries (its items are named
// anew: UIDVALIDITY changed, or an administrator resynced it) and
// returns how many there were.
func forgetCollection(ctx context.Context, st SettingStore, userID, device int64, coll string) (int, error) {
	l, err := loadQuarantine(ctx, st, userID, device)
	if err != nil {
		return 0, err
	}
	n := len(l.Items)
	l.Items = slices.DeleteFunc(l.Items, func(q QuarantinedItem) bool { return q.Collection == coll })
	if n == len(l.Items) {
		return 0, nil
	}
	return n - len(l.Items), l.save(ctx, st, userID, device)
}

// forgetCollection is forgetCollection for the session's device, under
// its lock.
func (h *Handler) forgetCollection(ctx context.Context, s *Session, coll string) error {
	unlock := h.locks.lock(s.Device.ID, []string{quarantineLock})
	defer unlock()
	_, err := forgetCollection(ctx, h.deps.Store, s.User.ID, s.Device.ID, coll)
	return err
}

// hideFailed removes from a scan the messages the device does not hold
// that failed for it before: Ping and Sync with Wait do not report them
// as changes (a quarantined one would wake the device for nothing, for
// ever; one still tried again is retried by the device's next Sync).
func (h *Handler) hideFailed(ctx context.Context, s *Session, coll string, items map[uint32]itemState, scan MailScan) (MailScan, error) {
	g, err := h.guard(ctx, s, coll, "")
	if err != nil || len(g.strikes) == 0 {
		return scan, err
	}
	hide := func(uid uint32) bool {
		_, held := items[uid]
		return !held && g.known(serverID(coll, uid))
	}
	scan.UIDs = slices.DeleteFunc(slices.Clone(scan.UIDs), hide)
	scan.Changed = slices.DeleteFunc(slices.Clone(scan.Changed), func(mm MailMeta) bool { return hide(mm.UID) })
	return scan, nil
}

// recovered turns a panic value into an item failure, logging the stack.
func recovered(s *Session, what string, r any) error {
	s.Log.Error("panic "+what, "panic", r, "stack", string(debug.Stack()))
	return fmt.Errorf("panic %s: %v", what, r)
}

// environmentFailure reports an error that is not an item's fault: the
// request ended, or a write to a spool file failed (a failed read of the
// item itself is caught by watchedReader). Such errors fail the response
// (the client retries) and count no strike.
func environmentFailure(ctx context.Context, err error) bool {
	var pe *fs.PathError
	return ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &pe) || errors.Is(err, syscall.ENOSPC)
}

// watchedReader remembers the first error of reads other than io.EOF,
// to tell a failed conversion from a failed read of its input.
type watchedReader struct {
	r   io.Reader
	err error
}

func (w *watchedReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if err != nil && err != io.EOF && w.err == nil {
		w.err = err
	}
	return n, err
}

// resyncMarker replaces the newest sync state of a folder an
// administrator resynced (ResyncFolder). No state decodes from it, so the
// device's key is answered with status 3 (MS-ASCMD 2.2.3.177.17: invalid
// SyncKey, start over from 0), while the key stays known to the cached
// Sync request (synccache.go): an empty or partial Sync, which names the
// folder by the newest key, is told too, instead of the folder being
// silently left out of it.
const resyncMarker = "easd:resync"

// ErrUnknownFolder reports a folder ResyncFolder cannot find.
var ErrUnknownFolder = errors.New("eas: no such folder")

// ResyncResult says what ResyncFolder did.
type ResyncResult struct {
	// ServerID and Name are the folder's ServerId and name (the full
	// upstream name of a mail folder, the display name of the others).
	ServerID, Name string
	// Key is the device's newest SyncKey of the folder, now answered with
	// status 3; "" when the device never synced the folder.
	Key string
	// Cleared counts the failed and quarantined items forgotten.
	Cleared int
}

// ResyncFolder makes one device fetch one folder again from scratch,
// leaving its other folders and the user's other devices alone: the
// folder's sync states of the device are deleted (the newest key is kept
// as resyncMarker, so that the device's next Sync of the folder, cached
// request included, gets status 3 and starts over from SyncKey 0), its
// failed and quarantined items are forgotten, and so are the device's
// pending moves in it. folder is the folder's ServerId, its full name or
// its display name (when only one folder has it); an unknown folder is an
// error wrapping ErrUnknownFolder that lists the folders.
//
// The server is not told: a Sync of that folder running at that very
// moment may save one more state after the reset; resyncing again then
// is harmless.
func ResyncFolder(ctx context.Context, st DeviceStateStore, user store.User, device store.Device, folder string) (ResyncResult, error) {
	id, name, err := resolveFolder(ctx, st, user.ID, folder)
	if err != nil {
		return ResyncResult{}, err
	}
	res := ResyncResult{ServerID: id, Name: name}
	latest, err := st.LatestSyncState(ctx, device.ID, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return res, err
	default:
		res.Key = latest.SyncKey
	}
	if err := st.DeleteSyncStates(ctx, device.ID, id); err != nil {
		return res, err
	}
	if res.Key != "" {
		if err := st.PutSyncState(ctx, store.SyncState{DeviceID: device.ID, Collection: id, SyncKey: res.Key,
			Data: []byte(resyncMarker), CreatedAt: latest.CreatedAt}); err != nil {
			return res, err
		}
	}
	// The device starts from nothing: moves it made are not known to it
	// any more (as with SyncKey 0).
	if _, err := st.UserSetting(ctx, user.ID, movesKey(device.ID, id)); err == nil {
		if err := st.PutUserSetting(ctx, user.ID, movesKey(device.ID, id), nil); err != nil {
			return res, err
		}
	}
	if res.Cleared, err = forgetCollection(ctx, st, user.ID, device.ID, id); err != nil {
		return res, err
	}
	return res, nil
}

// resolveFolder finds a folder of the user by ServerId, full name or
// display name: mail folders from the user's folder map (as last listed),
// store collections from the store.
func resolveFolder(ctx context.Context, st DeviceStateStore, userID int64, folder string) (id, name string, err error) {
	type cand struct{ id, name, display string }
	var cands []cand
	raw, err := st.UserSetting(ctx, userID, folderMapKey)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", "", err
	}
	var m folderMap
	if len(raw) > 0 && json.Unmarshal(raw, &m) != nil {
		m = folderMap{}
	}
	for _, v := range m.hierarchy().views {
		if v.ID != outboxID {
			cands = append(cands, cand{v.ID, v.name, v.DisplayName})
		}
	}
	cs, err := st.Collections(ctx, userID)
	if err != nil {
		return "", "", err
	}
	for _, c := range cs {
		cands = append(cands, cand{collServerID(c.ID), c.Name, c.Name})
	}
	pick := func(match func(c cand) bool) []cand {
		var out []cand
		for _, c := range cands {
			if match(c) {
				out = append(out, c)
			}
		}
		return out
	}
	for _, match := range []func(c cand) bool{
		func(c cand) bool { return c.id == folder },
		func(c cand) bool {
			return c.name == folder || strings.EqualFold(c.name, "INBOX") && strings.EqualFold(folder, "INBOX")
		},
		func(c cand) bool { return strings.EqualFold(c.display, folder) },
	} {
		switch found := pick(match); len(found) {
		case 0:
			continue
		case 1:
			name := cmp.Or(found[0].name, found[0].display)
			return found[0].id, name, nil
		default:
			var l []string
			for _, c := range found {
				l = append(l, fmt.Sprintf("%s (ServerId %s)", cmp.Or(c.name, c.display), c.id))
			}
			return "", "", fmt.Errorf("folder %q is ambiguous: %s; give its ServerId", folder, strings.Join(l, ", "))
		}
	}
	var l []string
	for _, c := range cands {
		if c.name != "" && c.name != c.display {
			l = append(l, fmt.Sprintf("%s (%s, ServerId %s)", c.display, c.name, c.id))
		} else {
			l = append(l, fmt.Sprintf("%s (ServerId %s)", c.display, c.id))
		}
	}
	if len(l) == 0 {
		return "", "", fmt.Errorf("%w %q: the user has no folders yet (none listed by a FolderSync)", ErrUnknownFolder, folder)
	}
	return "", "", fmt.Errorf("%w %q; the folders are: %s", ErrUnknownFolder, folder, strings.Join(l, ", "))
}

// ForgetDeviceFailures drops the failed and quarantined items of a device
// (by its row id), for a device being removed: a device given the same
// row id later must not inherit them.
func ForgetDeviceFailures(ctx context.Context, st SettingStore, userID, deviceID int64) error {
	_, err := st.UserSetting(ctx, userID, quarantineKey(deviceID))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	return st.PutUserSetting(ctx, userID, quarantineKey(deviceID), nil)
}
