package eas

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/easd/easd/store"
)

// folderMapKey is the per-user setting holding the folder ServerId table.
const folderMapKey = "mail.folders"

// outboxID is the ServerId of the Outbox, a folder IMAP does not have:
// it is always empty (mail is sent with SendMail, never parked there), but
// clients expect one folder of type 6 (MS-ASCMD 2.2.3.186.3).
const outboxID = "ob"

// folderEntry ties a folder's ServerId to its upstream name.
type folderEntry struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	UIDValidity uint32 `json:"uv,omitempty"`
	// The rest is the folder as last listed, so that Sync can find a
	// collection's folder without listing them all again.
	Parent   string `json:"p,omitempty"`
	Display  string `json:"d,omitempty"`
	Type     int    `json:"t,omitempty"`
	Delim    rune   `json:"dl,omitempty"`
	NoSelect bool   `json:"ns,omitempty"`
}

// folderMap is a user's table of folder ServerIds. An id, once given to a
// folder, stays with it across renames (matched by UIDVALIDITY, which
// Dovecot keeps on RENAME) and is never given to another folder.
type folderMap struct {
	Next    int           `json:"next"`
	Entries []folderEntry `json:"entries"`
}

// folderView is a folder as the client sees it (FolderSync Add/Update).
type folderView struct {
	ID          string `json:"i"`
	ParentID    string `json:"p"`
	DisplayName string `json:"n"`
	Type        int    `json:"t"`

	name     string // upstream name; "" for the Outbox and store collections
	delim    rune
	noSelect bool
	coll     int64  // store collection id; 0 for mail folders
	class    string // store collection class; "" for mail
}

// hierarchy is the mailbox's folder tree with ServerIds.
type hierarchy struct {
	views  []folderView
	byID   map[string]*folderView
	byName map[string]*folderView
}

func (hr *hierarchy) index() {
	hr.byID = make(map[string]*folderView, len(hr.views))
	hr.byName = make(map[string]*folderView, len(hr.views))
	for i := range hr.views {
		v := &hr.views[i]
		hr.byID[v.ID] = v
		if v.name != "" {
			hr.byName[v.name] = v
		}
	}
}

// ofType returns the first folder of an EAS type, or nil.
func (hr *hierarchy) ofType(t int) *folderView {
	for i := range hr.views {
		if hr.views[i].Type == t {
			return &hr.views[i]
		}
	}
	return nil
}

// assign gives every listed folder its ServerId, allocating new ones, and
// reports whether the map changed.
func (m *folderMap) assign(list []MailFolder) bool {
	byName := make(map[string]int, len(m.Entries))
	for i, e := range m.Entries {
		byName[e.Name] = i
	}
	used := make([]bool, len(m.Entries))
	var fresh []int // indexes into list of folders without an entry by name
	ids := make([]string, len(list))
	changed := false
	for i, f := range list {
		if j, ok := byName[f.Name]; ok {
			used[j] = true
			ids[i] = m.Entries[j].ID
			if f.UIDValidity != 0 && m.Entries[j].UIDValidity != f.UIDValidity {
				m.Entries[j].UIDValidity = f.UIDValidity
				changed = true
			}
			continue
		}
		fresh = append(fresh, i)
	}
	// A folder that appeared may be one that vanished, renamed: pair them
	// by UIDVALIDITY when exactly one vanished entry has it.
	entryOf := make(map[string]int, len(list)) // listed name -> entry
	for i, f := range list {
		if ids[i] != "" {
			entryOf[f.Name] = byName[f.Name]
		}
	}
	var rest []int
	for _, i := range fresh {
		f := list[i]
		match := -1
		if f.UIDValidity != 0 {
			for j, e := range m.Entries {
				if !used[j] && e.UIDValidity == f.UIDValidity {
					if match >= 0 {
						match = -2
						break
					}
					match = j
				}
			}
		}
		if match < 0 {
			rest = append(rest, i)
			continue
		}
		used[match] = true
		entryOf[f.Name] = match
		ids[i] = m.Entries[match].ID
		changed = true
	}
	// A folder without UIDVALIDITY (a \Noselect parent) renamed: its
	// children, matched above, name it as their new parent and a vanished
	// entry as their old one.
	for _, i := range rest {
		f := list[i]
		match := -1
		for _, c := range list {
			j, ok := entryOf[c.Name]
			if c.Parent != f.Name || !ok || m.Entries[j].Parent == "" {
				continue
			}
			if k, ok := byName[m.Entries[j].Parent]; ok && !used[k] {
				match = k
				break
			}
		}
		if match >= 0 {
			used[match] = true
			entryOf[f.Name] = match
			ids[i] = m.Entries[match].ID
		} else {
			m.Next++
			ids[i] = strconv.Itoa(m.Next)
			m.Entries = append(m.Entries, folderEntry{ID: ids[i], Name: f.Name, UIDValidity: f.UIDValidity})
			used = append(used, true)
			entryOf[f.Name] = len(m.Entries) - 1
		}
		changed = true
	}
	for _, f := range list {
		if j, ok := entryOf[f.Name]; ok {
			m.Entries[j].Name = f.Name
		}
	}
	// Entries of folders that are gone are dropped; their ids are not
	// reused (Next only grows).
	kept := m.Entries[:0]
	for j, e := range m.Entries {
		if used[j] {
			kept = append(kept, e)
		} else {
			changed = true
		}
	}
	m.Entries = kept
	return changed
}

// hierarchy lists the user's folders (IMAP LIST) with their ServerIds,
// updating the user's folder map when folders appeared, vanished, were
// renamed or changed.
func (h *Handler) hierarchy(ctx context.Context, s *Session) (*hierarchy, error) {
	var list []MailFolder
	if h.deps.Mail != nil {
		var err error
		if list, err = h.deps.Mail.Folders(ctx, s.Account); err != nil {
			return nil, mailError(err)
		}
	}
	// The map is read, changed and written under the user's lock: ids
	// are handed out once (within this process; several instances on
	// one database may race, see docs/architecture.md).
	unlock := h.locks.lock(-s.User.ID, []string{folderMapKey})
	defer unlock()
	m, raw, err := h.loadFolderMap(ctx, s)
	if err != nil {
		return nil, err
	}
	m.assign(list)
	idx := make(map[string]int, len(m.Entries))
	for i, e := range m.Entries {
		idx[e.Name] = i
	}
	for _, f := range list {
		e := &m.Entries[idx[f.Name]]
		e.Parent, e.Display, e.Type, e.Delim, e.NoSelect = f.Parent, f.DisplayName, f.Type, f.Delimiter, f.NoSelect
	}
	// Listing order: parents before children.
	ordered := make([]folderEntry, 0, len(list))
	for _, f := range list {
		ordered = append(ordered, m.Entries[idx[f.Name]])
	}
	m.Entries = ordered
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(b, raw) {
		if err := h.deps.Store.PutUserSetting(ctx, s.User.ID, folderMapKey, b); err != nil {
			return nil, err
		}
	}
	return h.withCollections(ctx, s, m.hierarchy())
}

// renameInMap renames a folder and its subfolders in the user's folder
// map, as a rename made through easd did upstream.
func (h *Handler) renameInMap(ctx context.Context, s *Session, from, to string, delim rune) error {
	unlock := h.locks.lock(-s.User.ID, []string{folderMapKey})
	defer unlock()
	m, _, err := h.loadFolderMap(ctx, s)
	if err != nil {
		return err
	}
	prefix := from + string(delim)
	for i, e := range m.Entries {
		switch {
		case e.Name == from:
			m.Entries[i].Name = to
		case delim != 0 && strings.HasPrefix(e.Name, prefix):
			m.Entries[i].Name = to + string(delim) + e.Name[len(prefix):]
		default:
			continue
		}
		if p := m.Entries[i].Parent; p == from || (delim != 0 && strings.HasPrefix(p, prefix)) {
			m.Entries[i].Parent = to + p[len(from):]
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return h.deps.Store.PutUserSetting(ctx, s.User.ID, folderMapKey, b)
}

// knownHierarchy is the hierarchy as last listed, without asking the
// upstream, unless it lacks one of the ids (or was never listed).
func (h *Handler) knownHierarchy(ctx context.Context, s *Session, ids ...string) (*hierarchy, error) {
	m, raw, err := h.loadFolderMap(ctx, s)
	if err != nil {
		return nil, err
	}
	if raw != nil || h.deps.Mail == nil {
		hr, err := h.withCollections(ctx, s, m.hierarchy())
		if err != nil {
			return nil, err
		}
		complete := true
		for _, id := range ids {
			if id != "" && hr.byID[id] == nil {
				complete = false
				break
			}
		}
		if complete {
			return hr, nil
		}
	}
	return h.hierarchy(ctx, s)
}

func (h *Handler) loadFolderMap(ctx context.Context, s *Session) (*folderMap, []byte, error) {
	var m folderMap
	raw, err := h.deps.Store.UserSetting(ctx, s.User.ID, folderMapKey)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &m, nil, nil
	case err != nil:
		return nil, nil, err
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		s.Log.Warn("unreadable folder map: folders are listed afresh", "err", err)
		return &folderMap{}, nil, nil
	}
	return &m, raw, nil
}

// hierarchy builds the client's view of the map, with the Outbox.
func (m *folderMap) hierarchy() *hierarchy {
	idOf := make(map[string]string, len(m.Entries))
	for _, e := range m.Entries {
		idOf[e.Name] = e.ID
	}
	hr := &hierarchy{}
	for _, e := range m.Entries {
		parent := "0"
		if e.Parent != "" {
			parent = idOf[e.Parent]
		}
		typ := e.Type
		if typ == 0 {
			typ = folderUserMail
		}
		display := e.Display
		if typ == folderInbox && strings.EqualFold(display, "INBOX") {
			display = "Inbox" // as Exchange names it
		}
		hr.views = append(hr.views, folderView{ID: e.ID, ParentID: parent, DisplayName: display, Type: typ,
			name: e.Name, delim: e.Delim, noSelect: e.NoSelect})
	}
	if len(m.Entries) > 0 {
		// With a mailbox, the Outbox phones expect; none without mail.
		hr.views = append(hr.views, folderView{ID: outboxID, ParentID: "0", DisplayName: "Outbox", Type: folderOutbox})
	}
	hr.index()
	return hr
}

// EAS folder types, MS-ASCMD 2.2.3.186.3.
const (
	folderInbox    = 2
	folderDrafts   = 3
	folderDeleted  = 4
	folderSent     = 5
	folderOutbox   = 6
	folderUserMail = 12
)

// mailError turns a MailBackend error into the protocol's answer: a
// refused upstream login is 401 (the phone asks for the password), any
// other upstream failure 503 with Retry-After (MS-ASHTTP 3.2.5.1) so the
// client retries the same request; the sync state has not advanced.
func mailError(err error) error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return err
	case errors.Is(err, ErrBadCredentials):
		return &Error{HTTP: http.StatusUnauthorized, Err: err}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &Error{HTTP: http.StatusServiceUnavailable, RetryAfter: 5, Err: err}
	}
	return &Error{Status: StatusServerErrorRetryLater, HTTP: http.StatusServiceUnavailable, RetryAfter: 30, Err: err}
}

// folderState is what one device knows of the hierarchy: the FolderSync
// state stored under the device's FolderSync key (collection "").
type folderState struct {
	Epoch   string       `json:"e"`
	N       int          `json:"n"`
	Folders []folderView `json:"f"`
}

func (st *folderState) key() string { return st.Epoch + "-" + strconv.Itoa(st.N) }

// newEpoch returns a random prefix that keeps keys of a reset state apart
// from those of the state before it.
func (h *Handler) newEpoch() string {
	b := make([]byte, 4)
	h.random(b)
	return fmt.Sprintf("%x", b)
}

// loadFolderState returns the device's FolderSync state for key; nil
// when the key is unknown.
func (h *Handler) loadFolderState(ctx context.Context, s *Session, key string) (*folderState, error) {
	if key == "" {
		return nil, nil
	}
	ss, err := h.deps.Store.SyncState(ctx, s.Device.ID, "", key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st folderState
	if err := json.Unmarshal(ss.Data, &st); err != nil {
		return nil, fmt.Errorf("folder state %q: %w", key, err)
	}
	return &st, nil
}

func (h *Handler) saveFolderState(ctx context.Context, s *Session, st *folderState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return h.deps.Store.PutSyncState(ctx, store.SyncState{DeviceID: s.Device.ID, Collection: "", SyncKey: st.key(), Data: b, CreatedAt: h.deps.Now()})
}

// folderDiff compares what the device knows with the current hierarchy.
func folderDiff(known []folderView, cur *hierarchy) (adds, updates []folderView, deletes []string) {
	had := make(map[string]folderView, len(known))
	for _, v := range known {
		had[v.ID] = v
	}
	for _, v := range cur.views {
		old, ok := had[v.ID]
		switch {
		case !ok:
			adds = append(adds, v)
		case old.ParentID != v.ParentID || old.DisplayName != v.DisplayName || old.Type != v.Type:
			updates = append(updates, v)
		}
		delete(had, v.ID)
	}
	for id := range had {
		deletes = append(deletes, id)
	}
	slices.Sort(deletes)
	return adds, updates, deletes
}

// viewsOf returns the client-visible part of the hierarchy, for states.
func viewsOf(hr *hierarchy) []folderView {
	out := make([]folderView, len(hr.views))
	for i, v := range hr.views {
		out[i] = folderView{ID: v.ID, ParentID: v.ParentID, DisplayName: v.DisplayName, Type: v.Type}
	}
	return out
}

// childName builds the upstream name of a folder named display under
// parent ("0" = top level).
func childName(hr *hierarchy, parentID, display string) (string, rune, error) {
	if display == "" || strings.ContainsAny(display, "\x00\r\n") {
		return "", 0, errFolderBadName
	}
	if parentID == "" || parentID == "0" {
		var delim rune = '/'
		if in := hr.ofType(folderInbox); in != nil && in.delim != 0 {
			delim = in.delim
		}
		if strings.ContainsRune(display, delim) {
			return "", 0, errFolderBadName
		}
		return display, delim, nil
	}
	p := hr.byID[parentID]
	if p == nil || p.name == "" {
		return "", 0, errFolderNoParent
	}
	if p.delim == 0 || strings.ContainsRune(display, p.delim) {
		return "", 0, errFolderBadName
	}
	return p.name + string(p.delim) + display, p.delim, nil
}

var (
	errFolderBadName  = errors.New("bad folder name")
	errFolderNoParent = errors.New("parent folder not found")
)

// isSpecial reports folders that cannot be renamed or deleted (MS-ASCMD
// FolderUpdate/FolderDelete status 3: special system folder).
func isSpecial(v *folderView) bool {
	return v.Type != folderUserMail && v.Type != 1
}

// random fills b from Deps.Rand, or crypto/rand.
func (h *Handler) random(b []byte) {
	r := h.deps.Rand
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, b); err != nil {
		rand.Read(b)
	}
}
