package eas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/easd/easd/store"
	"github.com/easd/easd/wbxml"
)

// Ping status values, MS-ASCMD 2.2.3.177.10.
const (
	pingExpired        = 1 // the heartbeat ended without changes
	pingChanged        = 2 // the Folders listed changed
	pingMissing        = 3 // empty Ping without cached parameters
	pingSyntax         = 4 // malformed request
	pingBadInterval    = 5 // HeartbeatInterval out of bounds; the bound is returned
	pingTooManyFolders = 6 // too many folders; MaxFolders is returned
	pingHierarchy      = 7 // FolderSync needed
)

// pingParams are a device's Ping parameters, cached (user setting
// ping/<device>) so that an empty Ping reuses them, across restarts too
// (MS-ASCMD 2.2.1.13).
type pingParams struct {
	Interval int           `json:"i"`
	Folders  []pingFolderP `json:"f"`
}

type pingFolderP struct {
	ID    string `json:"id"`
	Class string `json:"c"`
}

func pingKey(device int64) string { return "ping/" + strconv.FormatInt(device, 10) }

// pingClasses are the Class values of a Ping Folder (MS-ASCMD 2.2.3.27.4).
var pingClasses = map[string]bool{"Email": true, "Calendar": true, "Contacts": true, "Tasks": true, "Notes": true, "SMS": true}

func pingStatus(status int, extra ...*wbxml.Node) *wbxml.Node {
	return wbxml.E(wbxml.PingPing, append([]*wbxml.Node{wbxml.T(wbxml.PingStatus, strconv.Itoa(status))}, extra...)...)
}

// ping runs Ping, MS-ASCMD 2.2.1.13: it holds the request until one of
// the folders changes (status 2, the same changes the next Sync returns),
// the hierarchy changes (7) or the heartbeat ends (1).
func (h *Handler) ping(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error) {
	p, resp, err := h.pingParams(ctx, s, body)
	if err != nil || resp != nil {
		return resp, err
	}
	hr, changed, err := h.hierarchyChanged(ctx, s)
	if err != nil {
		return nil, err
	}
	if changed {
		return pingStatus(pingHierarchy), nil
	}
	colls := make([]*pushColl, 0, len(p.Folders))
	folders := map[string]string{}
	for _, pf := range p.Folders {
		f := hr.byID[pf.ID]
		if f == nil {
			// A folder the device should not know: FolderSync first.
			s.Log.Info("Ping of an unknown folder", "collection", pf.ID)
			return pingStatus(pingHierarchy), nil
		}
		if (f.coll != 0) != (pf.Class != "Email") {
			s.Log.Info("Ping of a folder with another class", "collection", pf.ID, "class", pf.Class)
			return pingStatus(pingHierarchy), nil
		}
		pc := &pushColl{id: f.ID, name: f.name, noSelect: f.noSelect, coll: f.coll}
		colls = append(colls, pc)
		if pc.name != "" && !pc.noSelect {
			folders[pc.name] = pc.id
		}
	}
	hr = nil // not held while parked
	// Collections never synced are compared with their status now.
	for _, pc := range colls {
		if pc.name == "" || pc.noSelect || pc.coll != 0 {
			continue
		}
		st, err := h.latestMailState(ctx, s, pc.id)
		if err != nil {
			return nil, err
		}
		if st == nil {
			pc.base, err = h.deps.Mail.Status(ctx, s.Account, pc.name)
			if errors.Is(err, ErrMailFolderGone) {
				return pingStatus(pingHierarchy), nil
			}
			if err != nil {
				return nil, mailError(err)
			}
		}
	}
	var hit []string
	hierarchy := false
	check := func(ctx context.Context, notified map[string]MailStatus, all bool) (bool, error) {
		if _, ok := notified[""]; ok && !all {
			// The folder list may have changed: only a change the
			// device would see counts.
			_, changed, err := h.hierarchyChanged(ctx, s)
			if err != nil || changed {
				hierarchy = changed
				return changed, err
			}
		}
		for _, pc := range colls {
			known, ok := notified[pc.id]
			if !ok && !all {
				continue
			}
			changed, err := h.mailChanged(ctx, s, pc, known)
			if errors.Is(err, ErrMailFolderGone) {
				hierarchy = true
				return true, nil
			}
			if err != nil {
				return false, mailError(err)
			}
			if changed {
				hit = append(hit, pc.id)
			}
		}
		return len(hit) > 0, nil
	}
	interval := time.Duration(p.Interval) * time.Second
	end, err := h.park(ctx, s, parkSpec{hold: h.holdFor(s, interval), folders: folders, check: check})
	if err != nil {
		return nil, err
	}
	switch {
	case hierarchy:
		return pingStatus(pingHierarchy), nil
	case end == parkChanged:
		fs := wbxml.E(wbxml.PingFolders)
		for _, id := range hit {
			fs.Append(wbxml.T(wbxml.PingFolder, id))
		}
		return pingStatus(pingChanged, fs), nil
	}
	s.Log.Debug("Ping ends without changes", "why", end)
	return pingStatus(pingExpired), nil
}

// pingParams merges the request with the cached parameters, checks them
// and caches what changed. A non-nil node is the answer to send at once.
func (h *Handler) pingParams(ctx context.Context, s *Session, body *wbxml.Node) (*pingParams, *wbxml.Node, error) {
	key := pingKey(s.Device.ID)
	raw, err := h.deps.Store.UserSetting(ctx, s.User.ID, key)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, nil, err
	}
	var p pingParams
	if len(raw) > 0 && json.Unmarshal(raw, &p) != nil {
		p = pingParams{}
	}
	if body != nil {
		if hb := body.Child(wbxml.PingHeartbeatInterval); hb != nil {
			n, err := strconv.Atoi(hb.Text())
			if err != nil {
				return nil, pingStatus(pingSyntax), nil
			}
			p.Interval = n
		}
		if fs := body.Child(wbxml.PingFolders); fs != nil {
			p.Folders = p.Folders[:0:0]
			seen := map[string]bool{}
			for f := range fs.Each(wbxml.PingFolder) {
				pf := pingFolderP{ID: f.ChildText(wbxml.PingId), Class: f.ChildText(wbxml.PingClass)}
				if pf.ID == "" || !pingClasses[pf.Class] {
					return nil, pingStatus(pingSyntax), nil
				}
				if !seen[pf.ID] {
					seen[pf.ID] = true
					p.Folders = append(p.Folders, pf)
				}
			}
		}
	}
	if p.Interval == 0 || len(p.Folders) == 0 {
		return nil, pingStatus(pingMissing), nil
	}
	lo, hi := int(h.cfg.HeartbeatMin/time.Second), int(h.cfg.HeartbeatMax/time.Second)
	switch {
	case p.Interval < lo:
		return nil, pingStatus(pingBadInterval, wbxml.T(wbxml.PingHeartbeatInterval, strconv.Itoa(lo))), nil
	case p.Interval > hi:
		return nil, pingStatus(pingBadInterval, wbxml.T(wbxml.PingHeartbeatInterval, strconv.Itoa(hi))), nil
	case len(p.Folders) > h.cfg.MaxPingFolders:
		return nil, pingStatus(pingTooManyFolders, wbxml.T(wbxml.PingMaxFolders, strconv.Itoa(h.cfg.MaxPingFolders))), nil
	}
	b, err := json.Marshal(&p)
	if err != nil {
		return nil, nil, err
	}
	if !bytes.Equal(b, raw) {
		if err := h.deps.Store.PutUserSetting(ctx, s.User.ID, key, b); err != nil {
			return nil, nil, err
		}
	}
	return &p, nil, nil
}
