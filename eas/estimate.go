package eas

import (
	"context"
	"errors"
	"strconv"

	"github.com/easd/easd/wbxml"
)

// GetItemEstimate status values, MS-ASCMD 2.2.3.177.6.
const (
	estimateOK             = 1
	estimateBadCollection  = 2
	estimateNotPrimed      = 3
	estimateInvalidSyncKey = 4
)

// getItemEstimate runs GetItemEstimate, MS-ASCMD 2.2.1.9: how many
// commands the next Sync of each collection would carry, with the same
// FilterType window as Sync. Android asks before its first Sync; then
// the estimate is every message in the window.
func (h *Handler) getItemEstimate(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error) {
	colls := body.Child(wbxml.GetItemEstimateCollections)
	if colls == nil {
		return wbxml.E(wbxml.GetItemEstimateGetItemEstimate, wbxml.T(wbxml.GetItemEstimateStatus, strconv.Itoa(StatusInvalidContent))), nil
	}
	var ids []string
	for c := range colls.Each(wbxml.GetItemEstimateCollection) {
		ids = append(ids, c.ChildText(wbxml.GetItemEstimateCollectionId))
	}
	hr, err := h.knownHierarchy(ctx, s, ids...)
	if err != nil {
		return nil, err
	}
	resp := wbxml.E(wbxml.GetItemEstimateGetItemEstimate)
	for c := range colls.Each(wbxml.GetItemEstimateCollection) {
		id := c.ChildText(wbxml.GetItemEstimateCollectionId)
		// 12.1 puts SyncKey and FilterType in the AirSync page directly
		// under Collection; 14.0+ puts FilterType in airsync:Options.
		key := c.ChildText(wbxml.AirSyncSyncKey)
		filterText := c.ChildText(wbxml.AirSyncFilterType)
		for o := range c.Each(wbxml.AirSyncOptions) {
			if cl := o.ChildText(wbxml.AirSyncClass); cl == "SMS" {
				continue
			}
			if f := o.ChildText(wbxml.AirSyncFilterType); f != "" {
				filterText = f
			}
		}
		filter := -1 // none given: the collection's own (from its state)
		if filterText != "" {
			filter, _ = strconv.Atoi(filterText)
		}
		status, n, err := h.estimate(ctx, s, hr, id, key, filter)
		if err != nil {
			return nil, err
		}
		r := wbxml.E(wbxml.GetItemEstimateResponse, wbxml.T(wbxml.GetItemEstimateStatus, strconv.Itoa(status)))
		coll := wbxml.E(wbxml.GetItemEstimateCollection, wbxml.T(wbxml.GetItemEstimateCollectionId, id))
		if status == estimateOK {
			coll.Append(wbxml.T(wbxml.GetItemEstimateEstimate, strconv.Itoa(n)))
		}
		resp.Append(r.Append(coll))
	}
	return resp, nil
}

// estimate counts what Sync would send from the state under key.
func (h *Handler) estimate(ctx context.Context, s *Session, hr *hierarchy, id, key string, filter int) (int, int, error) {
	f := hr.byID[id]
	if f == nil {
		return estimateBadCollection, 0, nil
	}
	if f.coll != 0 {
		return h.estimateItems(ctx, s, f, key, filter)
	}
	var st *mailState
	switch key {
	case "":
		return estimateNotPrimed, 0, nil
	case "0":
		st = &mailState{Items: map[uint32]itemState{}}
	default:
		var err error
		if st, err = h.loadMailState(ctx, s, id, key); err != nil {
			return 0, 0, err
		}
		if st == nil {
			return estimateInvalidSyncKey, 0, nil
		}
	}
	if filter < 0 {
		filter = st.Filter
	}
	if f.name == "" || f.noSelect {
		return estimateOK, 0, nil
	}
	since := filterSince(h.deps.Now(), filter)
	q := ScanQuery{Since: since}
	if st.Filter == filter {
		q.ChangedSince = st.ModSeq
	}
	scan, err := h.deps.Mail.Scan(ctx, s.Account, f.name, q)
	if err != nil {
		if !errors.Is(err, ErrMailFolderGone) {
			return 0, 0, mailError(err)
		}
		s.Log.Warn("estimate failed", "folder", f.name, "err", err)
		return estimateBadCollection, 0, nil
	}
	// Items that failed for this device are not counted (quarantine.go):
	// an estimate that never reaches zero would keep the phone syncing.
	if scan, err = h.hideFailed(ctx, s, f.ID, st.Items, scan); err != nil {
		return 0, 0, err
	}
	n := countChanges(st.Items, scan)
	return estimateOK, n, nil
}

// estimateItems counts what Sync would send of a store collection.
func (h *Handler) estimateItems(ctx context.Context, s *Session, f *folderView, key string, filter int) (int, int, error) {
	var st *pimState
	switch key {
	case "":
		return estimateNotPrimed, 0, nil
	case "0":
		st = &pimState{Held: map[int64]int64{}}
	default:
		var err error
		if st, err = h.loadPimState(ctx, s, f.ID, key); err != nil {
			return 0, 0, err
		}
		if st == nil {
			return estimateInvalidSyncKey, 0, nil
		}
	}
	if filter < 0 {
		filter = st.Filter
	}
	g, err := h.guard(ctx, s, f.ID, "")
	if err != nil {
		return 0, 0, err
	}
	d, err := h.pimDiff(ctx, f.coll, st, filter, 1<<20, nil, func(id int64) bool { return g.known(itemServerID(f.ID, id)) })
	if err != nil {
		return 0, 0, err
	}
	return estimateOK, d.count(), nil
}
