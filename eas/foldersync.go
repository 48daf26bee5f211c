package eas

import (
	"context"
	"errors"
	"strconv"

	"github.com/easd/easd/wbxml"
)

// FolderSync status values, MS-ASCMD 2.2.3.177.5; FolderCreate,
// FolderUpdate and FolderDelete share them (2.2.3.177.2-4).
const (
	folderOK           = 1
	folderExists       = 2  // FolderCreate/Update: a folder of that name exists
	folderSpecial      = 3  // system folder: cannot be changed
	folderNotFound     = 4  // FolderUpdate/Delete: no such folder
	folderParentGone   = 5  // parent folder not found
	folderServerError  = 6  // server error
	folderBadSyncKey   = 9  // synchronization key mismatch or invalid
	folderBadRequest   = 10 // incorrectly formatted request
	folderUnknownError = 11
)

// mailCommands registers the commands served by the mail backend.
func (h *Handler) mailCommands() {
	// FolderSync, Sync, Ping and GetItemEstimate serve mail folders and
	// store collections alike; the rest needs the mailbox.
	h.commands["FolderSync"] = command{tag: wbxml.FolderHierarchyFolderSync, maxBody: smallBody, run: h.folderSync}
	h.commands["FolderCreate"] = command{tag: wbxml.FolderHierarchyFolderCreate, maxBody: smallBody, run: h.folderCreate}
	h.commands["FolderUpdate"] = command{tag: wbxml.FolderHierarchyFolderUpdate, maxBody: smallBody, run: h.folderUpdate}
	h.commands["FolderDelete"] = command{tag: wbxml.FolderHierarchyFolderDelete, maxBody: smallBody, run: h.folderDelete}
	h.commands["Sync"] = command{tag: wbxml.AirSyncSync, run: h.sync}
	h.commands["Ping"] = command{tag: wbxml.PingPing, maxBody: smallBody, run: h.ping}
	h.commands["GetItemEstimate"] = command{tag: wbxml.GetItemEstimateGetItemEstimate, maxBody: smallBody, run: h.getItemEstimate}
	if h.deps.Mail == nil {
		return
	}
	h.commands["ItemOperations"] = command{tag: wbxml.ItemOperationsItemOperations, maxBody: smallBody, raw: h.itemOperations}
	h.commands["GetAttachment"] = command{maxBody: smallBody, raw: h.getAttachment}
	h.meetingCommands() // MeetingResponse (meetingresponse.go)
	if _, ok := h.deps.Mail.(MailMover); ok {
		h.commands["MoveItems"] = command{tag: wbxml.MoveMoveItems, maxBody: smallBody, run: h.moveItems}
	}
	if _, ok := h.deps.Mail.(MailSearcher); ok {
		h.commands["Search"] = command{tag: wbxml.SearchSearch, maxBody: smallBody, run: h.search}
	}
	if h.deps.Submit != nil {
		h.commands["SendMail"] = command{tag: wbxml.ComposeMailSendMail, rawBody: true, run: h.sendMail}
		h.commands["SmartReply"] = command{tag: wbxml.ComposeMailSmartReply, rawBody: true, run: h.smartReply}
		h.commands["SmartForward"] = command{tag: wbxml.ComposeMailSmartForward, rawBody: true, run: h.smartForward}
	}
}

// folderStatus answers a folder command with only a status.
func folderStatus(top wbxml.Tag, status int) *wbxml.Node {
	t, _ := wbxml.LookupTag(top.Namespace(), "Status")
	return wbxml.E(top, wbxml.T(t, strconv.Itoa(status)))
}

// folderSync runs FolderSync, MS-ASCMD 2.2.1.5: SyncKey 0 starts over
// (and drops the device's item sync states, which the client drops too);
// otherwise the changes since the state under the key are sent. A key
// that is neither the newest nor the one before is status 9. Without
// changes the key stays the same and nothing is written.
func (h *Handler) folderSync(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error) {
	keyNode := body.Child(wbxml.FolderHierarchySyncKey)
	if keyNode == nil {
		return folderStatus(wbxml.FolderHierarchyFolderSync, folderBadRequest), nil
	}
	key := keyNode.Text()
	unlock := h.locks.lock(s.Device.ID, []string{""})
	defer unlock()
	var st *folderState
	if key == "0" {
		if err := h.deps.Store.DeleteSyncStates(ctx, s.Device.ID, "*"); err != nil {
			return nil, err
		}
		st = &folderState{Epoch: h.newEpoch()}
	} else {
		var err error
		if st, err = h.loadFolderState(ctx, s, key); err != nil {
			return nil, err
		}
		if st == nil {
			s.Log.Info("FolderSync key unknown", "synckey", key)
			return folderStatus(wbxml.FolderHierarchyFolderSync, folderBadSyncKey), nil
		}
	}
	hr, err := h.hierarchy(ctx, s)
	if err != nil {
		return nil, err
	}
	adds, updates, deletes := folderDiff(st.Folders, hr)
	if key != "0" && len(adds)+len(updates)+len(deletes) == 0 {
		return h.folderSyncResponse(key, nil, nil, nil), nil
	}
	next := &folderState{Epoch: st.Epoch, N: st.N + 1, Folders: viewsOf(hr)}
	if err := h.saveFolderState(ctx, s, next); err != nil {
		return nil, err
	}
	return h.folderSyncResponse(next.key(), adds, updates, deletes), nil
}

func (h *Handler) folderSyncResponse(key string, adds, updates []folderView, deletes []string) *wbxml.Node {
	changes := wbxml.E(wbxml.FolderHierarchyChanges, wbxml.T(wbxml.FolderHierarchyCount, strconv.Itoa(len(adds)+len(updates)+len(deletes))))
	for _, d := range deletes {
		changes.Append(wbxml.E(wbxml.FolderHierarchyDelete, wbxml.T(wbxml.FolderHierarchyServerId, d)))
	}
	for _, tv := range []struct {
		tag   wbxml.Tag
		views []folderView
	}{{wbxml.FolderHierarchyAdd, adds}, {wbxml.FolderHierarchyUpdate, updates}} {
		for _, v := range tv.views {
			changes.Append(wbxml.E(tv.tag,
				wbxml.T(wbxml.FolderHierarchyServerId, v.ID),
				wbxml.T(wbxml.FolderHierarchyParentId, v.ParentID),
				wbxml.T(wbxml.FolderHierarchyDisplayName, v.DisplayName),
				wbxml.T(wbxml.FolderHierarchyType, strconv.Itoa(v.Type))))
		}
	}
	return wbxml.E(wbxml.FolderHierarchyFolderSync,
		wbxml.T(wbxml.FolderHierarchyStatus, strconv.Itoa(folderOK)),
		wbxml.T(wbxml.FolderHierarchySyncKey, key),
		changes)
}

// folderOp is the common frame of FolderCreate, FolderUpdate and
// FolderDelete: they check and advance the FolderSync key (MS-ASCMD
// 2.2.1.2-4), and the device's state records the change so the next
// FolderSync does not report it back.
func (h *Handler) folderOp(ctx context.Context, s *Session, body *wbxml.Node, top wbxml.Tag,
	op func(hr *hierarchy) (status int, err error)) (*wbxml.Node, error) {
	key := body.ChildText(wbxml.FolderHierarchySyncKey)
	unlock := h.locks.lock(s.Device.ID, []string{""})
	defer unlock()
	st, err := h.loadFolderState(ctx, s, key)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return folderStatus(top, folderBadSyncKey), nil
	}
	hr, err := h.hierarchy(ctx, s)
	if err != nil {
		return nil, err
	}
	status, err := op(hr)
	if err != nil {
		if errors.Is(err, ErrBadCredentials) {
			return nil, mailError(err)
		}
		s.Log.Warn("folder operation failed", "err", err)
		return folderStatus(top, folderServerError), nil
	}
	if status != folderOK {
		return folderStatus(top, status), nil
	}
	// What the device knows now: its old view plus exactly this change.
	after, err := h.hierarchy(ctx, s)
	if err != nil {
		return nil, err
	}
	next := &folderState{Epoch: st.Epoch, N: st.N + 1, Folders: applyOp(st.Folders, hr, after)}
	if err := h.saveFolderState(ctx, s, next); err != nil {
		return nil, err
	}
	// The user's other devices hear of it (Ping status 7).
	s.OnDone(func() { h.publish(ctx, s.User.ID, "") })
	resp := wbxml.E(top, wbxml.T(statusTagOf(top), strconv.Itoa(folderOK)), wbxml.T(wbxml.FolderHierarchySyncKey, next.key()))
	if top == wbxml.FolderHierarchyFolderCreate {
		// The new folder is the one in after and not in hr.
		for _, v := range after.views {
			if hr.byID[v.ID] == nil {
				resp.Append(wbxml.T(wbxml.FolderHierarchyServerId, v.ID))
				break
			}
		}
	}
	return resp, nil
}

// applyOp returns known updated by the difference between before and
// after (the device's own change), leaving changes made elsewhere for the
// next FolderSync to report.
func applyOp(known []folderView, before, after *hierarchy) []folderView {
	out := make([]folderView, 0, len(known)+1)
	for _, v := range known {
		a, inAfter := after.byID[v.ID]
		_, inBefore := before.byID[v.ID]
		switch {
		case inBefore && !inAfter: // deleted by this operation
		case inBefore && inAfter:
			out = append(out, folderView{ID: a.ID, ParentID: a.ParentID, DisplayName: a.DisplayName, Type: a.Type})
		default:
			out = append(out, v)
		}
	}
	for _, a := range after.views {
		if before.byID[a.ID] == nil {
			out = append(out, folderView{ID: a.ID, ParentID: a.ParentID, DisplayName: a.DisplayName, Type: a.Type})
		}
	}
	return out
}

func statusTagOf(top wbxml.Tag) wbxml.Tag {
	t, _ := wbxml.LookupTag(top.Namespace(), "Status")
	return t
}

// newFolderName is the upstream name a FolderCreate or FolderUpdate asks
// for (ParentId, DisplayName), or the status refusing it.
func newFolderName(hr *hierarchy, body *wbxml.Node) (string, int) {
	name, _, err := childName(hr, body.ChildText(wbxml.FolderHierarchyParentId), body.ChildText(wbxml.FolderHierarchyDisplayName))
	switch {
	case errors.Is(err, errFolderNoParent):
		return "", folderParentGone
	case err != nil:
		return "", folderBadRequest
	}
	return name, folderOK
}

// folderCreate runs FolderCreate, MS-ASCMD 2.2.1.3. Mail folders only
// (type 1 or 12); other types are for the store-backed classes.
func (h *Handler) folderCreate(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error) {
	return h.folderOp(ctx, s, body, wbxml.FolderHierarchyFolderCreate, func(hr *hierarchy) (int, error) {
		typ, _ := strconv.Atoi(body.ChildText(wbxml.FolderHierarchyType))
		if classOfType(typ) != "" && h.deps.Items != nil {
			return h.collectionOp(ctx, s, hr, wbxml.FolderHierarchyFolderCreate, nil, body)
		}
		if (typ != 1 && typ != folderUserMail) || h.deps.Mail == nil {
			return folderBadRequest, nil
		}
		name, status := newFolderName(hr, body)
		switch {
		case status != folderOK:
			return status, nil
		case hr.byName[name] != nil:
			return folderExists, nil
		}
		return folderOK, h.deps.Mail.CreateFolder(ctx, s.Account, name)
	})
}

// folderUpdate runs FolderUpdate, MS-ASCMD 2.2.1.4: rename and/or move.
func (h *Handler) folderUpdate(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error) {
	return h.folderOp(ctx, s, body, wbxml.FolderHierarchyFolderUpdate, func(hr *hierarchy) (int, error) {
		v := hr.byID[body.ChildText(wbxml.FolderHierarchyServerId)]
		switch {
		case v == nil:
			return folderNotFound, nil
		case v.coll != 0:
			return h.collectionOp(ctx, s, hr, wbxml.FolderHierarchyFolderUpdate, v, body)
		case isSpecial(v):
			return folderSpecial, nil
		}
		name, status := newFolderName(hr, body)
		switch {
		case status != folderOK:
			return status, nil
		case name == v.name:
			return folderOK, nil
		case hr.byName[name] != nil:
			return folderExists, nil
		}
		if err := h.deps.Mail.RenameFolder(ctx, s.Account, v.name, name); err != nil {
			return 0, err
		}
		// Keep the ids of the folder and its subfolders whether or not the
		// server keeps UIDVALIDITY across the rename.
		return folderOK, h.renameInMap(ctx, s, v.name, name, v.delim)
	})
}

// folderDelete runs FolderDelete, MS-ASCMD 2.2.1.2.
func (h *Handler) folderDelete(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error) {
	return h.folderOp(ctx, s, body, wbxml.FolderHierarchyFolderDelete, func(hr *hierarchy) (int, error) {
		v := hr.byID[body.ChildText(wbxml.FolderHierarchyServerId)]
		switch {
		case v == nil:
			return folderNotFound, nil
		case v.coll != 0:
			return h.collectionOp(ctx, s, hr, wbxml.FolderHierarchyFolderDelete, v, body)
		case isSpecial(v):
			return folderSpecial, nil
		}
		return folderOK, h.deps.Mail.DeleteFolder(ctx, s.Account, v.name)
	})
}
