package eas

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"time"

	"github.com/easd/easd/store"
)

// pushColl is one collection a parked request watches: what it needs of
// the folder, copied so that the hierarchy is not held while parked.
type pushColl struct {
	id, name string
	noSelect bool
	coll     int64 // store collection, for items; 0 for mail
	// base is the folder's status when the request began, for a
	// collection the device holds no state of.
	base MailStatus
}

// mailChanged reports whether a Sync of the device's collection would now
// send anything. Ping and Sync with Wait ask it, so what they report as
// changed is what the following Sync returns (no phantom pushes, none
// missed): it makes the same comparison as Sync (mailSync.changes) with
// the device's newest state, its FilterType and its pending moves.
// known, when not zero, is the folder's status as the watcher read it.
func (h *Handler) mailChanged(ctx context.Context, s *Session, pc *pushColl, known MailStatus) (bool, error) {
	if pc.coll != 0 {
		return h.itemsChanged(ctx, s, pc)
	}
	if pc.name == "" || pc.noSelect {
		return false, nil // the Outbox and \Noselect folders never change
	}
	st, err := h.latestMailState(ctx, s, pc.id)
	if err != nil {
		return false, err
	}
	if known == (MailStatus{}) {
		if known, err = h.deps.Mail.Status(ctx, s.Account, pc.name); err != nil {
			return false, err
		}
	}
	if st == nil {
		// Never synced: report any change since the request began.
		return known != pc.base, nil
	}
	if st.Sent.More {
		return true, nil // the last Sync left items behind MoreAvailable
	}
	since := filterSince(h.deps.Now(), st.Filter)
	if st.UIDValidity != 0 && known.UIDValidity != st.UIDValidity {
		return true, nil // Sync answers 3: the client must hear of it
	}
	if known == st.Last && st.Last.HighestModSeq != 0 && !agedOut(st, st.Filter, since) {
		return false, nil
	}
	scan, err := h.deps.Mail.Scan(ctx, s.Account, pc.name, ScanQuery{Since: since, ChangedSince: st.ModSeq})
	if err != nil {
		return false, err
	}
	if st.UIDValidity != 0 && scan.Status.UIDValidity != st.UIDValidity {
		return true, nil
	}
	items := st.Items
	pm, err := h.loadMoves(ctx, s, pc.id)
	if err != nil {
		return false, err
	}
	if len(pm.Gone) > 0 || len(pm.Added) > 0 {
		// The device's own moves are not news to it (MS-ASCMD 2.2.1.12).
		items = maps.Clone(items)
		for _, u := range pm.Gone {
			delete(items, u)
		}
		maps.Copy(items, pm.Added)
	}
	// Messages that failed for the device are no news (quarantine.go).
	if scan, err = h.hideFailed(ctx, s, pc.id, items, scan); err != nil {
		return false, err
	}
	return countChanges(items, scan) > 0, nil
}

// latestMailState is the newest state of a device's mail collection, nil
// when there is none (or it is unreadable: Sync then answers 3).
func (h *Handler) latestMailState(ctx context.Context, s *Session, coll string) (*mailState, error) {
	ss, err := h.deps.Store.LatestSyncState(ctx, s.Device.ID, coll)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	st, err := unmarshalMailState(ss.Data)
	if err != nil {
		return nil, nil
	}
	return st, nil
}

// countChanges counts the commands a Sync would send from the items a
// device holds, given a scan of the folder (as mailSync.changes decides
// them: Add, Delete or SoftDelete, Change of flags or categories).
func countChanges(items map[uint32]itemState, scan MailScan) int {
	n := 0
	inWin := make(map[uint32]bool, len(scan.UIDs))
	for _, u := range scan.UIDs {
		inWin[u] = true
		if _, ok := items[u]; !ok {
			n++
		}
	}
	for u := range items {
		if !inWin[u] {
			n++
		}
	}
	for _, mm := range scan.Changed {
		if it, ok := items[mm.UID]; ok && inWin[mm.UID] && (it.Flags != mm.Flags&flagMask || it.Kw != kwHash(categoriesOf(mm.Keywords))) {
			n++
		}
	}
	return n
}

// agedOut reports whether an item of st fell out of the FilterType window.
func agedOut(st *mailState, filter int, since time.Time) bool {
	if filter == 0 {
		return false
	}
	s := since.Unix()
	for _, it := range st.Items {
		if it.Date < s {
			return true
		}
	}
	return false
}

// hierarchyChanged reports whether a FolderSync of the device would now
// send anything (Ping status 7). It lists the upstream folders.
func (h *Handler) hierarchyChanged(ctx context.Context, s *Session) (*hierarchy, bool, error) {
	hr, err := h.hierarchy(ctx, s)
	if err != nil {
		return nil, false, err
	}
	ss, err := h.deps.Store.LatestSyncState(ctx, s.Device.ID, "")
	if errors.Is(err, store.ErrNotFound) {
		return hr, true, nil // never ran FolderSync
	}
	if err != nil {
		return nil, false, err
	}
	var st folderState
	if json.Unmarshal(ss.Data, &st) != nil {
		return hr, true, nil
	}
	adds, updates, deletes := folderDiff(st.Folders, hr)
	return hr, len(adds)+len(updates)+len(deletes) > 0, nil
}
