package client

import (
	"context"
	"errors"
	"strconv"

	"github.com/easd/easd/wbxml"
)

// folderCommand sends a FolderCreate, FolderUpdate or FolderDelete request
// and returns the response root, which has a SyncKey. A failing Status (2
// exists, 3 special folder, 4 not found, 5 parent not found, 9 invalid
// key …) is a *StatusError.
func (c *Client) folderCommand(ctx context.Context, cmd string, req *wbxml.Node) (*wbxml.Node, error) {
	resp, err := c.Do(ctx, cmd, req)
	if err != nil {
		return nil, err
	}
	if resp.Body == nil {
		return nil, errors.New("client: " + cmd + ": empty response")
	}
	if resp.Body.ChildText(wbxml.FolderHierarchyStatus) != "1" {
		return nil, statusErr(cmd, "", resp.Body.ChildText(wbxml.FolderHierarchyStatus))
	}
	return resp.Body, nil
}

// FolderCreate creates a folder under parentID ("0" for the root) with
// the FolderSync key syncKey. It returns the new hierarchy key and the
// folder's ServerId.
func (c *Client) FolderCreate(ctx context.Context, syncKey, parentID, displayName string, folderType int) (newKey, serverID string, err error) {
	body, err := c.folderCommand(ctx, "FolderCreate", wbxml.E(wbxml.FolderHierarchyFolderCreate,
		wbxml.T(wbxml.FolderHierarchySyncKey, syncKey),
		wbxml.T(wbxml.FolderHierarchyParentId, parentID),
		wbxml.T(wbxml.FolderHierarchyDisplayName, displayName),
		wbxml.T(wbxml.FolderHierarchyType, strconv.Itoa(folderType))))
	if err != nil {
		return "", "", err
	}
	return body.ChildText(wbxml.FolderHierarchySyncKey), body.ChildText(wbxml.FolderHierarchyServerId), nil
}

// FolderUpdate renames and/or moves folder serverID under parentID. It
// returns the new hierarchy key.
func (c *Client) FolderUpdate(ctx context.Context, syncKey, serverID, parentID, displayName string) (newKey string, err error) {
	body, err := c.folderCommand(ctx, "FolderUpdate", wbxml.E(wbxml.FolderHierarchyFolderUpdate,
		wbxml.T(wbxml.FolderHierarchySyncKey, syncKey),
		wbxml.T(wbxml.FolderHierarchyServerId, serverID),
		wbxml.T(wbxml.FolderHierarchyParentId, parentID),
		wbxml.T(wbxml.FolderHierarchyDisplayName, displayName)))
	if err != nil {
		return "", err
	}
	return body.ChildText(wbxml.FolderHierarchySyncKey), nil
}

// FolderDelete deletes folder serverID. It returns the new hierarchy key.
func (c *Client) FolderDelete(ctx context.Context, syncKey, serverID string) (newKey string, err error) {
	body, err := c.folderCommand(ctx, "FolderDelete", wbxml.E(wbxml.FolderHierarchyFolderDelete,
		wbxml.T(wbxml.FolderHierarchySyncKey, syncKey),
		wbxml.T(wbxml.FolderHierarchyServerId, serverID)))
	if err != nil {
		return "", err
	}
	return body.ChildText(wbxml.FolderHierarchySyncKey), nil
}
