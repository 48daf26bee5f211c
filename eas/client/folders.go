package client

import (
	"context"
	"errors"
	"strconv"

	"github.com/easd/easd/wbxml"
)

// Folder types of FolderSync (MS-ASCMD 2.2.3.186.3) that clients treat
// specially.
const (
	FolderInbox    = 2
	FolderDrafts   = 3
	FolderDeleted  = 4
	FolderSent     = 5
	FolderOutbox   = 6
	FolderTasks    = 7
	FolderCalendar = 8
	FolderContacts = 9
)

// Folder is one folder of the hierarchy.
type Folder struct {
	ServerID    string
	ParentID    string
	DisplayName string
	Type        int
}

// FolderChanges is a decoded FolderSync response.
type FolderChanges struct {
	// SyncKey is the new hierarchy key, for the next FolderSync.
	SyncKey string
	Added   []Folder
	Updated []Folder
	Deleted []string // ServerIds
}

// FolderSync asks for hierarchy changes since syncKey ("0" for all
// folders). A failing Status (9: invalid key, start again from "0") is a
// *StatusError.
func (c *Client) FolderSync(ctx context.Context, syncKey string) (*FolderChanges, error) {
	resp, err := c.Do(ctx, "FolderSync", wbxml.E(wbxml.FolderHierarchyFolderSync,
		wbxml.T(wbxml.FolderHierarchySyncKey, syncKey)))
	if err != nil {
		return nil, err
	}
	if resp.Body == nil {
		return nil, errors.New("client: FolderSync: empty response")
	}
	fc := &FolderChanges{SyncKey: resp.Body.ChildText(wbxml.FolderHierarchySyncKey)}
	changes := resp.Body.Child(wbxml.FolderHierarchyChanges)
	folder := func(n *wbxml.Node) Folder {
		t, _ := strconv.Atoi(n.ChildText(wbxml.FolderHierarchyType))
		return Folder{
			ServerID:    n.ChildText(wbxml.FolderHierarchyServerId),
			ParentID:    n.ChildText(wbxml.FolderHierarchyParentId),
			DisplayName: n.ChildText(wbxml.FolderHierarchyDisplayName),
			Type:        t,
		}
	}
	for n := range changes.Each(wbxml.FolderHierarchyAdd) {
		fc.Added = append(fc.Added, folder(n))
	}
	for n := range changes.Each(wbxml.FolderHierarchyUpdate) {
		fc.Updated = append(fc.Updated, folder(n))
	}
	for n := range changes.Each(wbxml.FolderHierarchyDelete) {
		fc.Deleted = append(fc.Deleted, n.ChildText(wbxml.FolderHierarchyServerId))
	}
	return fc, nil
}
