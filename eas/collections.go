package eas

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/store"
	"github.com/easd/easd/wbxml"
)

// ItemStore is the store of calendar, contacts, tasks and notes
// (store.ItemStore); Deps.Items.
type ItemStore = store.ItemStore

// EAS folder types of the store-backed classes, MS-ASCMD 2.2.3.186.3.
const (
	folderTasks        = 7
	folderCalendar     = 8
	folderContacts     = 9
	folderNotes        = 10
	folderUserCalendar = 13
	folderUserContacts = 14
	folderUserTasks    = 15
	folderUserNotes    = 17
)

// classTypes maps a class to its default and user-created folder types.
var classTypes = map[string][2]int{
	store.ClassCalendar: {folderCalendar, folderUserCalendar},
	store.ClassContacts: {folderContacts, folderUserContacts},
	store.ClassTasks:    {folderTasks, folderUserTasks},
	store.ClassNotes:    {folderNotes, folderUserNotes},
}

// classOfType is the class of a folder type FolderCreate may make.
func classOfType(t int) string {
	for class, ts := range classTypes {
		if ts[1] == t {
			return class
		}
	}
	return ""
}

// defaultClasses are created for every user, in this order.
var defaultClasses = []string{store.ClassCalendar, store.ClassContacts, store.ClassTasks, store.ClassNotes}

// collPrefix starts the ServerId of a store collection ("c" + id), which
// mail folder ids (decimal numbers and "ob") never do.
const collPrefix = "c"

func collServerID(id int64) string { return collPrefix + strconv.FormatInt(id, 10) }

// codecs are the converters of the store-backed classes.
func (h *Handler) codec(class string) item.Codec { return h.deps.Codecs[class] }

// withCollections adds the user's store collections to hr, creating the
// default ones on first use.
func (h *Handler) withCollections(ctx context.Context, s *Session, hr *hierarchy) (*hierarchy, error) {
	if h.deps.Items == nil {
		return hr, nil
	}
	cs, err := h.collections(ctx, s)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		parent := "0"
		if c.ParentID != 0 {
			parent = collServerID(c.ParentID)
		}
		t := classTypes[c.Class]
		typ := t[1]
		if c.Default {
			typ = t[0]
		}
		hr.views = append(hr.views, folderView{ID: collServerID(c.ID), ParentID: parent, DisplayName: c.Name, Type: typ, coll: c.ID, class: c.Class})
	}
	hr.index()
	return hr, nil
}

// collections lists the user's collections of the classes served (a
// codec is registered), creating the missing default ones.
func (h *Handler) collections(ctx context.Context, s *Session) ([]store.Collection, error) {
	cs, err := h.deps.Items.Collections(ctx, s.User.ID)
	if err != nil {
		return nil, err
	}
	created := false
	for _, class := range defaultClasses {
		if h.codec(class) == nil {
			continue
		}
		has := false
		for _, c := range cs {
			if c.Class == class && c.Default {
				has = true
				break
			}
		}
		if has {
			continue
		}
		_, err := h.deps.Items.CreateCollection(ctx, store.Collection{UserID: s.User.ID, Class: class, Name: class, Default: true})
		if err != nil && !errors.Is(err, store.ErrExists) {
			return nil, err
		}
		created = true
	}
	if created {
		if cs, err = h.deps.Items.Collections(ctx, s.User.ID); err != nil {
			return nil, err
		}
	}
	out := cs[:0]
	for _, c := range cs {
		if h.codec(c.Class) != nil {
			out = append(out, c)
		}
	}
	return out, nil
}

// collectionOp runs FolderCreate, FolderUpdate or FolderDelete on a store
// collection (MS-ASCMD 2.2.1.2-4). v is the folder (nil for a create).
func (h *Handler) collectionOp(ctx context.Context, s *Session, hr *hierarchy, top wbxml.Tag, v *folderView, body *wbxml.Node) (int, error) {
	parentID := int64(0)
	if top != wbxml.FolderHierarchyFolderDelete {
		p := body.ChildText(wbxml.FolderHierarchyParentId)
		if p != "0" && p != "" {
			pv := hr.byID[p]
			if pv == nil || pv.coll == 0 {
				return folderParentGone, nil
			}
			parentID = pv.coll
		}
	}
	name := strings.TrimSpace(body.ChildText(wbxml.FolderHierarchyDisplayName))
	if top != wbxml.FolderHierarchyFolderDelete && (name == "" || len(name) > 256) {
		return folderBadRequest, nil
	}
	var err error
	switch top {
	case wbxml.FolderHierarchyFolderCreate:
		typ, _ := strconv.Atoi(body.ChildText(wbxml.FolderHierarchyType))
		class := classOfType(typ)
		if class == "" || h.codec(class) == nil {
			return folderBadRequest, nil
		}
		_, err = h.deps.Items.CreateCollection(ctx, store.Collection{UserID: s.User.ID, Class: class, ParentID: parentID, Name: name})
	case wbxml.FolderHierarchyFolderUpdate:
		if v.Type == classTypes[v.class][0] {
			return folderSpecial, nil // a default folder keeps its name
		}
		err = h.deps.Items.UpdateCollection(ctx, store.Collection{ID: v.coll, UserID: s.User.ID, ParentID: parentID, Name: name})
	case wbxml.FolderHierarchyFolderDelete:
		if v.Type == classTypes[v.class][0] {
			return folderSpecial, nil
		}
		err = h.deps.Items.DeleteCollection(ctx, s.User.ID, v.coll)
	}
	switch {
	case errors.Is(err, store.ErrExists):
		return folderExists, nil
	case errors.Is(err, store.ErrNotFound):
		return folderNotFound, nil
	}
	return folderOK, err
}
