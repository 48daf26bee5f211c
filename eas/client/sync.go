package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/easd/easd/wbxml"
)

// Body types of airsyncbase:BodyPreference > Type (MS-ASAIRS 2.2.2.22.1).
const (
	BodyPlain = 1
	BodyHTML  = 2
	BodyRTF   = 3
	BodyMIME  = 4
)

// BodyPreference is one airsyncbase:BodyPreference of Sync, ItemOperations
// or Search options.
type BodyPreference struct {
	// Type is the body type wanted: BodyPlain, BodyHTML, BodyRTF or
	// BodyMIME.
	Type int
	// TruncationSize is the largest body in bytes the client wants; 0
	// leaves the element out (no truncation).
	TruncationSize uint32
	// AllOrNone asks for no body at all rather than a truncated one.
	AllOrNone bool
	// Preview is the length of the plain-text preview wanted (14.0+); 0
	// leaves it out.
	Preview int
}

func (p BodyPreference) node() *wbxml.Node {
	n := wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, strconv.Itoa(p.Type)))
	if p.TruncationSize > 0 {
		n.Append(wbxml.T(wbxml.AirSyncBaseTruncationSize, strconv.FormatUint(uint64(p.TruncationSize), 10)))
	}
	if p.AllOrNone {
		n.Append(wbxml.T(wbxml.AirSyncBaseAllOrNone, "1"))
	}
	if p.Preview > 0 {
		n.Append(wbxml.T(wbxml.AirSyncBasePreview, strconv.Itoa(p.Preview)))
	}
	return n
}

// SyncOptions are the Options of a Sync collection.
type SyncOptions struct {
	// FilterType is the age window (MS-ASCMD 2.2.3.68.2): "0" all items,
	// "1" one day … "7" six months, "8" incomplete tasks; "" leaves it
	// out.
	FilterType string
	// Class is the collection's class ("Email", "Calendar" …). It is sent
	// as Collection > Class for 12.1 and earlier only; 14.0 and later
	// infer the class from the folder.
	Class string
	// BodyPreferences are sent in order, one element each.
	BodyPreferences []BodyPreference
	// MIMESupport is 1 (MIME for S/MIME only) or 2 (always MIME, as iOS
	// asks with a BodyMIME preference); 0 leaves it out (never MIME).
	MIMESupport int
	// MIMETruncation is the MIMETruncation code ("0"–"8"); "" leaves it
	// out.
	MIMETruncation string
	// Conflict is "0" (client wins) or "1" (server wins); "" leaves it out.
	Conflict string
	// WindowSize is the collection's WindowSize (an element of Collection,
	// not of Options) used by SyncAll, and by Sync when
	// SyncCollection.WindowSize is 0; 0 leaves it out.
	WindowSize int
}

// node renders the Options element; nil when it would be empty.
func (o *SyncOptions) node() *wbxml.Node {
	n := wbxml.E(wbxml.AirSyncOptions)
	if o.FilterType != "" {
		n.Append(wbxml.T(wbxml.AirSyncFilterType, o.FilterType))
	}
	for _, p := range o.BodyPreferences {
		n.Append(p.node())
	}
	if o.Conflict != "" {
		n.Append(wbxml.T(wbxml.AirSyncConflict, o.Conflict))
	}
	if o.MIMESupport > 0 {
		n.Append(wbxml.T(wbxml.AirSyncMIMESupport, strconv.Itoa(o.MIMESupport)))
	}
	if o.MIMETruncation != "" {
		n.Append(wbxml.T(wbxml.AirSyncMIMETruncation, o.MIMETruncation))
	}
	if len(n.Children) == 0 {
		return nil
	}
	return n
}

// SyncAdd is a client Add (Commands > Add).
type SyncAdd struct {
	// ClientID is the client's temporary id, answered with the new
	// ServerId in Responses > Add.
	ClientID string
	// ApplicationData is the airsync:ApplicationData element; any other
	// element is sent wrapped in one.
	ApplicationData *wbxml.Node
}

// SyncChange is a client Change (Commands > Change).
type SyncChange struct {
	// ServerID names the item.
	ServerID string
	// ApplicationData is the airsync:ApplicationData element (e.g. holding
	// only email:Read to mark a message read); any other element is sent
	// wrapped in one.
	ApplicationData *wbxml.Node
}

// SyncCollection is one Collection of a Sync request.
type SyncCollection struct {
	// SyncKey is "0" for the first Sync of the collection, else the key of
	// the previous response.
	SyncKey string
	// CollectionID is the folder's ServerId from FolderSync.
	CollectionID string
	// GetChanges, when not nil, is sent as 1 or 0. Left out, the server
	// returns changes for every key but "0".
	GetChanges *bool
	// WindowSize is the most items the server may return for this
	// collection (≤ 512); 0 sends Options.WindowSize, if any.
	WindowSize int
	// DeletesAsMoves, when not nil, is sent as 1 or 0 (left out: 1).
	DeletesAsMoves *bool
	// Supported, when not nil, lists the properties the client handles
	// (MS-ASCMD 2.2.3.168), sent with SyncKey 0: the server keeps the
	// others (ghosted) when a Change leaves them out.
	Supported []wbxml.Tag
	// Options are sent when not nil and not empty.
	Options *SyncOptions
	// Adds, Changes, Deletes (ServerIds) and Fetches (ServerIds) are the
	// client's commands, sent in that order.
	Adds    []SyncAdd
	Changes []SyncChange
	Deletes []string
	Fetches []string
}

// SyncRequest is one Sync command.
type SyncRequest struct {
	// Collections are the collections to synchronise. A request without
	// collections, Wait, HeartbeatInterval, WindowSize and Partial is sent
	// with an empty body: "the same as my last Sync" (MS-ASCMD
	// 2.2.1.21.1).
	Collections []SyncCollection
	// Wait (minutes, 12.1) or HeartbeatInterval (seconds, 14.0+) make the
	// request a long poll; 0 leaves them out.
	Wait              int
	HeartbeatInterval int
	// WindowSize is the global window over all collections; 0 leaves it
	// out.
	WindowSize int
	// Partial says the collections are a subset of the cached request's.
	Partial bool
}

// SyncItem is a server Add or Change, or a Fetch answer.
type SyncItem struct {
	// ServerID names the item.
	ServerID string
	// Class is the item's class when the server sends it (12.1, mixed
	// collections), else "".
	Class string
	// ApplicationData is the airsync:ApplicationData element.
	ApplicationData *wbxml.Node
}

// SyncItemResponse is one element of a collection's Responses: the
// server's answer to a client Add, Change or Fetch.
type SyncItemResponse struct {
	// Command is "Add", "Change" or "Fetch".
	Command string
	// ClientID is the client's id of an Add; ServerID the item's
	// ServerId (the new one for an Add).
	ClientID, ServerID string
	// Status is the item's status (1 success, 6 conversion error, 7
	// conflict, 8 not found …; 0 if missing).
	Status int
	// ApplicationData is the fetched item (Fetch only), or nil.
	ApplicationData *wbxml.Node
}

// SyncCollectionResponse is one Collection of a Sync response.
type SyncCollectionResponse struct {
	// SyncKey is the key for the next Sync of the collection.
	SyncKey      string
	CollectionID string
	// Class is sent by 12.1 servers, else "".
	Class string
	// Status is the collection's status: 1 success, 3 invalid sync key
	// (start again from "0"), 12 hierarchy changed … (0 if missing).
	Status int
	// MoreAvailable says more changes wait beyond the window.
	MoreAvailable bool
	// Adds and Changes are the server's new and changed items; Deletes
	// and SoftDeletes the ServerIds it removed or filtered out.
	Adds        []SyncItem
	Changes     []SyncItem
	Deletes     []string
	SoftDeletes []string
	// Responses answer the client's own commands.
	Responses []SyncItemResponse
	// Raw is the Collection element as received.
	Raw *wbxml.Node
}

// Err returns a *StatusError (Element "Collection") unless Status is 1.
func (r *SyncCollectionResponse) Err() error {
	if r.Status == 1 {
		return nil
	}
	return &StatusError{Command: "Sync", Element: "Collection", Status: r.Status}
}

// ItemCount is the number of Adds, Changes, Deletes and SoftDeletes.
func (r *SyncCollectionResponse) ItemCount() int {
	return len(r.Adds) + len(r.Changes) + len(r.Deletes) + len(r.SoftDeletes)
}

// SyncResponse is a decoded Sync response.
type SyncResponse struct {
	// Empty is true for the empty 200 answer: nothing changed, or a long
	// poll expired (the client keeps its keys).
	Empty bool
	// Limit is the allowed Wait/HeartbeatInterval sent with status 14, or
	// "".
	Limit string
	// Collections are the collections in the server's order.
	Collections []SyncCollectionResponse
	// Raw is the Sync element as received; nil when Empty.
	Raw *wbxml.Node
}

// Collection returns the response for collection id, or nil.
func (r *SyncResponse) Collection(id string) *SyncCollectionResponse {
	for i := range r.Collections {
		if r.Collections[i].CollectionID == id {
			return &r.Collections[i]
		}
	}
	return nil
}

// Sync sends one Sync request. Per-collection statuses are left in the
// response (see SyncCollectionResponse.Err); a failing top-level Status
// (4 protocol error, 12 hierarchy changed, 13 send the full request, 14
// bad Wait …) is a *StatusError, returned together with the response.
func (c *Client) Sync(ctx context.Context, req SyncRequest) (*SyncResponse, error) {
	body := c.syncBody(req)
	resp, err := c.Do(ctx, "Sync", body)
	if resp == nil {
		return nil, err
	}
	sr := &SyncResponse{}
	if resp.Body == nil {
		if err == nil && resp.Raw != nil {
			err = fmt.Errorf("client: Sync: unexpected %q response", resp.Header.Get("Content-Type"))
		}
		sr.Empty = err == nil
		return sr, err
	}
	if resp.Body.Tag != wbxml.AirSyncSync {
		return sr, fmt.Errorf("client: Sync: response root is %v", resp.Body.Tag)
	}
	sr.Raw = resp.Body
	sr.Limit = resp.Body.ChildText(wbxml.AirSyncLimit)
	for n := range resp.Body.Child(wbxml.AirSyncCollections).Each(wbxml.AirSyncCollection) {
		sr.Collections = append(sr.Collections, parseSyncCollection(n))
	}
	return sr, err
}

// syncBody renders req; nil for the empty request.
func (c *Client) syncBody(req SyncRequest) *wbxml.Node {
	if len(req.Collections) == 0 && req.Wait == 0 && req.HeartbeatInterval == 0 && req.WindowSize == 0 && !req.Partial {
		return nil
	}
	old := !c.atLeast("14.0")
	root := wbxml.E(wbxml.AirSyncSync)
	if len(req.Collections) > 0 {
		colls := wbxml.E(wbxml.AirSyncCollections)
		for _, sc := range req.Collections {
			colls.Append(syncCollectionNode(sc, old))
		}
		root.Append(colls)
	}
	if req.Wait > 0 {
		root.Append(wbxml.T(wbxml.AirSyncWait, strconv.Itoa(req.Wait)))
	}
	if req.HeartbeatInterval > 0 {
		root.Append(wbxml.T(wbxml.AirSyncHeartbeatInterval, strconv.Itoa(req.HeartbeatInterval)))
	}
	if req.WindowSize > 0 {
		root.Append(wbxml.T(wbxml.AirSyncWindowSize, strconv.Itoa(req.WindowSize)))
	}
	if req.Partial {
		root.Append(wbxml.E(wbxml.AirSyncPartial))
	}
	return root
}

// syncCollectionNode renders one Collection in schema order; old (12.1
// and earlier) puts Class first.
func syncCollectionNode(sc SyncCollection, old bool) *wbxml.Node {
	n := wbxml.E(wbxml.AirSyncCollection)
	if old && sc.Options != nil && sc.Options.Class != "" {
		n.Append(wbxml.T(wbxml.AirSyncClass, sc.Options.Class))
	}
	n.Append(wbxml.T(wbxml.AirSyncSyncKey, sc.SyncKey), wbxml.T(wbxml.AirSyncCollectionId, sc.CollectionID))
	if sc.Supported != nil {
		sup := wbxml.E(wbxml.AirSyncSupported)
		for _, t := range sc.Supported {
			sup.Append(wbxml.E(t))
		}
		n.Append(sup)
	}
	if sc.DeletesAsMoves != nil {
		n.Append(wbxml.T(wbxml.AirSyncDeletesAsMoves, boolText(*sc.DeletesAsMoves)))
	}
	if sc.GetChanges != nil {
		n.Append(wbxml.T(wbxml.AirSyncGetChanges, boolText(*sc.GetChanges)))
	}
	ws := sc.WindowSize
	if ws == 0 && sc.Options != nil {
		ws = sc.Options.WindowSize
	}
	if ws > 0 {
		n.Append(wbxml.T(wbxml.AirSyncWindowSize, strconv.Itoa(ws)))
	}
	if sc.Options != nil {
		if o := sc.Options.node(); o != nil {
			n.Append(o)
		}
	}
	if len(sc.Adds)+len(sc.Changes)+len(sc.Deletes)+len(sc.Fetches) > 0 {
		cmds := wbxml.E(wbxml.AirSyncCommands)
		for _, a := range sc.Adds {
			cmds.Append(wbxml.E(wbxml.AirSyncAdd, wbxml.T(wbxml.AirSyncClientId, a.ClientID), applicationData(a.ApplicationData)))
		}
		for _, ch := range sc.Changes {
			cmds.Append(wbxml.E(wbxml.AirSyncChange, wbxml.T(wbxml.AirSyncServerId, ch.ServerID), applicationData(ch.ApplicationData)))
		}
		for _, id := range sc.Deletes {
			cmds.Append(wbxml.E(wbxml.AirSyncDelete, wbxml.T(wbxml.AirSyncServerId, id)))
		}
		for _, id := range sc.Fetches {
			cmds.Append(wbxml.E(wbxml.AirSyncFetch, wbxml.T(wbxml.AirSyncServerId, id)))
		}
		n.Append(cmds)
	}
	return n
}

func boolText(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// applicationData returns n if it is an ApplicationData element, else an
// ApplicationData element holding n (empty for nil).
func applicationData(n *wbxml.Node) *wbxml.Node {
	switch {
	case n == nil:
		return wbxml.E(wbxml.AirSyncApplicationData)
	case n.Tag == wbxml.AirSyncApplicationData:
		return n
	}
	return wbxml.E(wbxml.AirSyncApplicationData, n)
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// children returns n's children; nil for a nil n.
func children(n *wbxml.Node) []*wbxml.Node {
	if n == nil {
		return nil
	}
	return n.Children
}

func parseSyncCollection(n *wbxml.Node) SyncCollectionResponse {
	r := SyncCollectionResponse{
		SyncKey:       n.ChildText(wbxml.AirSyncSyncKey),
		CollectionID:  n.ChildText(wbxml.AirSyncCollectionId),
		Class:         n.ChildText(wbxml.AirSyncClass),
		Status:        atoi(n.ChildText(wbxml.AirSyncStatus)),
		MoreAvailable: n.Child(wbxml.AirSyncMoreAvailable) != nil,
		Raw:           n,
	}
	item := func(c *wbxml.Node) SyncItem {
		return SyncItem{ServerID: c.ChildText(wbxml.AirSyncServerId), Class: c.ChildText(wbxml.AirSyncClass),
			ApplicationData: c.Child(wbxml.AirSyncApplicationData)}
	}
	for _, c := range children(n.Child(wbxml.AirSyncCommands)) {
		switch c.Tag {
		case wbxml.AirSyncAdd:
			r.Adds = append(r.Adds, item(c))
		case wbxml.AirSyncChange:
			r.Changes = append(r.Changes, item(c))
		case wbxml.AirSyncDelete:
			r.Deletes = append(r.Deletes, c.ChildText(wbxml.AirSyncServerId))
		case wbxml.AirSyncSoftDelete:
			r.SoftDeletes = append(r.SoftDeletes, c.ChildText(wbxml.AirSyncServerId))
		}
	}
	for _, c := range children(n.Child(wbxml.AirSyncResponses)) {
		var cmd string
		switch c.Tag {
		case wbxml.AirSyncAdd:
			cmd = "Add"
		case wbxml.AirSyncChange:
			cmd = "Change"
		case wbxml.AirSyncFetch:
			cmd = "Fetch"
		case wbxml.AirSyncDelete:
			cmd = "Delete"
		default:
			continue
		}
		r.Responses = append(r.Responses, SyncItemResponse{
			Command:         cmd,
			ClientID:        c.ChildText(wbxml.AirSyncClientId),
			ServerID:        c.ChildText(wbxml.AirSyncServerId),
			Status:          atoi(c.ChildText(wbxml.AirSyncStatus)),
			ApplicationData: c.Child(wbxml.AirSyncApplicationData),
		})
	}
	return r
}

// maxEmptyMore bounds SyncAll's run of responses that say MoreAvailable
// but carry nothing, so that a faulty server cannot loop it forever.
const maxEmptyMore = 20

// SyncAll runs a phone's initial sync of one collection: Sync with key
// "0", then Sync with each new key, GetChanges and opts (WindowSize
// included) while the server says MoreAvailable. fn, if not nil, sees
// every collection response, the key-0 one included; an error from fn
// stops the loop and is returned. SyncAll returns the last key, with
// which the caller can go on syncing changes.
//
// A collection status other than 1 is a *StatusError (Element
// "Collection"; status 3 means the key was refused).
func (c *Client) SyncAll(ctx context.Context, collectionID string, opts SyncOptions, fn func(*SyncCollectionResponse) error) (key string, err error) {
	key = "0"
	empty := 0
	for first := true; ; first = false {
		coll := SyncCollection{SyncKey: key, CollectionID: collectionID, Options: &opts}
		if !first {
			coll.GetChanges = new(true)
		}
		resp, err := c.Sync(ctx, SyncRequest{Collections: []SyncCollection{coll}})
		if err != nil {
			return key, err
		}
		if resp.Empty {
			if first {
				return key, errors.New("client: Sync: empty response to SyncKey 0")
			}
			return key, nil // nothing (more) to send
		}
		r := resp.Collection(collectionID)
		if r == nil {
			return key, fmt.Errorf("client: Sync: no collection %q in the response", collectionID)
		}
		if err := r.Err(); err != nil {
			return key, err
		}
		if r.SyncKey == "" {
			return key, errors.New("client: Sync: response without a SyncKey")
		}
		key = r.SyncKey
		if fn != nil {
			if err := fn(r); err != nil {
				return key, err
			}
		}
		if first {
			continue
		}
		if !r.MoreAvailable {
			return key, nil
		}
		if r.ItemCount() > 0 {
			empty = 0
		} else if empty++; empty >= maxEmptyMore {
			return key, fmt.Errorf("client: Sync: %d responses in a row said MoreAvailable without any item", empty)
		}
	}
}
