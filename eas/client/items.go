package client

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/easd/easd/wbxml"
)

// EstimateRequest is one Collection of GetItemEstimate.
type EstimateRequest struct {
	// SyncKey is the collection's current Sync key (not "0": the server
	// answers status 3 until the collection was primed with Sync).
	SyncKey      string
	CollectionID string
	// Class is "Email", "Calendar" …: Collection > Class for 12.1 and
	// earlier, Options > Class for 14.0 and later; "" leaves it out.
	Class string
	// FilterType is as in SyncOptions; "" leaves it out.
	FilterType string
}

// EstimateResponse is one Response of GetItemEstimate.
type EstimateResponse struct {
	// Status is 1 success, 2 unknown collection, 3 sync state not primed,
	// 4 invalid sync key (0 if missing).
	Status       int
	CollectionID string
	// Estimate is the number of items a Sync would return (-1 if the
	// server sent none).
	Estimate int
}

// Err returns a *StatusError (Element "Response") unless Status is 1.
func (r EstimateResponse) Err() error {
	if r.Status == 1 {
		return nil
	}
	return &StatusError{Command: "GetItemEstimate", Element: "Response", Status: r.Status}
}

// GetItemEstimate asks how many items Sync would return for each
// collection, in the 12.1 form (Class, SyncKey, CollectionId, FilterType)
// or the 14.0+ form (SyncKey, CollectionId, Options > FilterType, Class)
// by the version in use. Per-collection statuses are left in the
// responses; a failing top-level Status is a *StatusError.
func (c *Client) GetItemEstimate(ctx context.Context, collections []EstimateRequest) ([]EstimateResponse, error) {
	if err := c.ensureVersion(ctx); err != nil {
		return nil, err
	}
	old := !c.atLeast("14.0")
	colls := wbxml.E(wbxml.GetItemEstimateCollections)
	for _, r := range collections {
		n := wbxml.E(wbxml.GetItemEstimateCollection)
		if old {
			if r.Class != "" {
				n.Append(wbxml.T(wbxml.GetItemEstimateClass, r.Class))
			}
			n.Append(wbxml.T(wbxml.AirSyncSyncKey, r.SyncKey), wbxml.T(wbxml.GetItemEstimateCollectionId, r.CollectionID))
			if r.FilterType != "" {
				n.Append(wbxml.T(wbxml.AirSyncFilterType, r.FilterType))
			}
		} else {
			n.Append(wbxml.T(wbxml.AirSyncSyncKey, r.SyncKey), wbxml.T(wbxml.GetItemEstimateCollectionId, r.CollectionID))
			opts := wbxml.E(wbxml.AirSyncOptions)
			if r.FilterType != "" {
				opts.Append(wbxml.T(wbxml.AirSyncFilterType, r.FilterType))
			}
			if r.Class != "" {
				opts.Append(wbxml.T(wbxml.AirSyncClass, r.Class))
			}
			if len(opts.Children) > 0 {
				n.Append(opts)
			}
		}
		colls.Append(n)
	}
	resp, err := c.Do(ctx, "GetItemEstimate", wbxml.E(wbxml.GetItemEstimateGetItemEstimate, colls))
	if err != nil {
		return nil, err
	}
	if resp.Body == nil {
		return nil, errors.New("client: GetItemEstimate: empty response")
	}
	var out []EstimateResponse
	for r := range resp.Body.Each(wbxml.GetItemEstimateResponse) {
		coll := r.Child(wbxml.GetItemEstimateCollection)
		est := -1
		if e := coll.Child(wbxml.GetItemEstimateEstimate); e != nil {
			if v, err := strconv.Atoi(strings.TrimSpace(e.Text())); err == nil {
				est = v
			}
		}
		out = append(out, EstimateResponse{
			Status:       atoi(r.ChildText(wbxml.GetItemEstimateStatus)),
			CollectionID: coll.ChildText(wbxml.GetItemEstimateCollectionId),
			Estimate:     est,
		})
	}
	return out, nil
}

// MultipartType is the Content-Type of a multipart ItemOperations
// response.
const MultipartType = "application/vnd.ms-sync.multipart"

// ItemOperationsResponse is a decoded ItemOperations response.
type ItemOperationsResponse struct {
	// Body is the ItemOperations element.
	Body *wbxml.Node
	// Parts are the parts of a multipart response (MS-ASCMD
	// 2.2.1.10.1.1): Parts[0] holds the WBXML of Body, and an element
	// Part N refers to Parts[N]. Nil for a plain response.
	Parts [][]byte
}

// Part returns the part named by the Part child of n (Properties or
// airsyncbase:Body), or nil and false when n has none or it is out of
// range.
func (r *ItemOperationsResponse) Part(n *wbxml.Node) ([]byte, bool) {
	p := n.Child(wbxml.ItemOperationsPart)
	if p == nil {
		return nil, false
	}
	i, err := strconv.Atoi(strings.TrimSpace(p.Text()))
	if err != nil || i < 0 || i >= len(r.Parts) {
		return nil, false
	}
	return r.Parts[i], true
}

// ItemOperations sends an ItemOperations request (root
// itemoperations:ItemOperations). With multipart it sends
// MS-ASAcceptMultiPart: T and splits a multipart answer into its parts;
// the server may still answer with plain WBXML. A failing top-level Status
// is a *StatusError, returned with the response.
func (c *Client) ItemOperations(ctx context.Context, req *wbxml.Node, multipart bool) (*ItemOperationsResponse, error) {
	resp, err := c.Send(ctx, &Request{Cmd: "ItemOperations", Body: req, AcceptMultiPart: multipart})
	if resp == nil || (err != nil && resp.Body == nil) {
		return nil, err
	}
	out := &ItemOperationsResponse{Body: resp.Body}
	if resp.Raw != nil {
		ct := strings.ToLower(resp.Header.Get("Content-Type"))
		if !strings.Contains(ct, "vnd.ms-sync.multipart") {
			return nil, fmt.Errorf("client: ItemOperations: unexpected %q response", ct)
		}
		if out.Parts, err = SplitMultipart(resp.Raw); err != nil {
			return nil, err
		}
		out.Body, err = wbxml.DecodeBytes(out.Parts[0], wbxml.Limits{MaxTotal: c.cfg.MaxResponseBytes, MaxOpaqueLen: c.cfg.MaxResponseBytes})
		if err != nil {
			return nil, fmt.Errorf("client: ItemOperations: decoding part 0: %w", err)
		}
		err = checkStatus("ItemOperations", out.Body)
	}
	if out.Body == nil {
		return nil, errors.New("client: ItemOperations: empty response")
	}
	return out, err
}

// SplitMultipart splits a MultiPartResponse (MS-ASCMD 2.2.1.10.1.1): a
// 4-byte part count, then per part a 4-byte offset from the start of the
// body and a 4-byte length, all little-endian signed integers, then the
// parts. It needs at least one part (the WBXML).
func SplitMultipart(b []byte) ([][]byte, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("client: multipart response of %d bytes", len(b))
	}
	n := int64(int32(binary.LittleEndian.Uint32(b)))
	if n < 1 || 4+8*n > int64(len(b)) {
		return nil, fmt.Errorf("client: multipart response of %d bytes claims %d parts", len(b), n)
	}
	parts := make([][]byte, n)
	for i := range parts {
		off := int64(int32(binary.LittleEndian.Uint32(b[4+8*i:])))
		l := int64(int32(binary.LittleEndian.Uint32(b[8+8*i:])))
		if off < 4+8*n || l < 0 || off+l > int64(len(b)) {
			return nil, fmt.Errorf("client: multipart part %d (offset %d, length %d) outside the %d-byte response", i, off, l, len(b))
		}
		parts[i] = b[off : off+l : off+l]
	}
	return parts, nil
}

// FetchOptions are the Options of an ItemOperations Fetch of an item.
type FetchOptions struct {
	// BodyPreferences and MIMESupport are as in SyncOptions.
	BodyPreferences []BodyPreference
	MIMESupport     int
	// MultiPart asks for the body as a binary part (MS-ASAcceptMultiPart).
	MultiPart bool
}

// FetchResult is one Fetch of an ItemOperations response.
type FetchResult struct {
	// Status is 1 success, 6 object not found, 15 invalid attachment …
	Status int
	// CollectionID and ServerID, or FileReference, name what was fetched.
	CollectionID, ServerID, FileReference string
	// Class is the item's class when sent.
	Class string
	// Properties is the Properties element: the item's fields, or an
	// attachment's ContentType and Data/Part.
	Properties *wbxml.Node
	// ContentType is Properties > airsyncbase:ContentType (attachments).
	ContentType string
	// Data is Properties > Data decoded (attachments: base64 text or
	// OPAQUE), or the part named by Properties > Part or Properties >
	// airsyncbase:Body > Part in a multipart response; else nil.
	Data []byte
	// Raw is the Fetch element.
	Raw *wbxml.Node
}

// fetchResult parses the first Response > Fetch of r.
func fetchResult(r *ItemOperationsResponse) (*FetchResult, error) {
	f := r.Body.Path(wbxml.ItemOperationsResponse, wbxml.ItemOperationsFetch)
	if f == nil {
		return nil, errors.New("client: ItemOperations: no Fetch in the response")
	}
	props := f.Child(wbxml.ItemOperationsProperties)
	fr := &FetchResult{
		Status:        atoi(f.ChildText(wbxml.ItemOperationsStatus)),
		CollectionID:  f.ChildText(wbxml.AirSyncCollectionId),
		ServerID:      f.ChildText(wbxml.AirSyncServerId),
		FileReference: f.ChildText(wbxml.AirSyncBaseFileReference),
		Class:         f.ChildText(wbxml.AirSyncClass),
		Properties:    props,
		ContentType:   props.ChildText(wbxml.AirSyncBaseContentType),
		Raw:           f,
	}
	if d := props.Child(wbxml.ItemOperationsData); d != nil {
		if d.Opaque {
			fr.Data = d.Value
		} else {
			s := strings.Map(func(r rune) rune {
				if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
					return -1
				}
				return r
			}, d.Text())
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return fr, fmt.Errorf("client: ItemOperations: Data is not base64: %w", err)
			}
			fr.Data = b
		}
	} else if p, ok := r.Part(props); ok {
		fr.Data = p
	} else if p, ok := r.Part(props.Child(wbxml.AirSyncBaseBody)); ok {
		fr.Data = p
	}
	if fr.Status != 1 {
		return fr, &StatusError{Command: "ItemOperations", Element: "Fetch", Status: fr.Status}
	}
	return fr, nil
}

// FetchItem fetches one item of a collection with ItemOperations (Store
// Mailbox), e.g. a message's full body after Sync sent it truncated. A
// Fetch status other than 1 is a *StatusError (Element "Fetch"),
// returned with the result.
func (c *Client) FetchItem(ctx context.Context, collectionID, serverID string, opts FetchOptions) (*FetchResult, error) {
	fetch := wbxml.E(wbxml.ItemOperationsFetch,
		wbxml.T(wbxml.ItemOperationsStore, "Mailbox"),
		wbxml.T(wbxml.AirSyncCollectionId, collectionID),
		wbxml.T(wbxml.AirSyncServerId, serverID))
	if len(opts.BodyPreferences) > 0 || opts.MIMESupport > 0 {
		o := wbxml.E(wbxml.ItemOperationsOptions)
		if opts.MIMESupport > 0 {
			o.Append(wbxml.T(wbxml.AirSyncMIMESupport, strconv.Itoa(opts.MIMESupport)))
		}
		for _, p := range opts.BodyPreferences {
			o.Append(p.node())
		}
		fetch.Append(o)
	}
	r, err := c.ItemOperations(ctx, wbxml.E(wbxml.ItemOperationsItemOperations, fetch), opts.MultiPart)
	if err != nil {
		return nil, err
	}
	return fetchResult(r)
}

// FetchAttachment fetches an attachment by its airsyncbase:FileReference
// with ItemOperations (12.0+). With multipart the data comes as a binary
// part, else as base64 in Properties > Data. A Fetch status other than 1
// is a *StatusError (Element "Fetch").
func (c *Client) FetchAttachment(ctx context.Context, fileReference string, multipart bool) (contentType string, data []byte, err error) {
	r, err := c.ItemOperations(ctx, wbxml.E(wbxml.ItemOperationsItemOperations, wbxml.E(wbxml.ItemOperationsFetch,
		wbxml.T(wbxml.ItemOperationsStore, "Mailbox"),
		wbxml.T(wbxml.AirSyncBaseFileReference, fileReference))), multipart)
	if err != nil {
		return "", nil, err
	}
	fr, err := fetchResult(r)
	if err != nil {
		return "", nil, err
	}
	if fr.Data == nil {
		return fr.ContentType, nil, errors.New("client: ItemOperations: attachment without Data or Part")
	}
	return fr.ContentType, fr.Data, nil
}

// EmptyFolderContents deletes every item of a collection (ItemOperations
// EmptyFolderContents), and its subfolders with deleteSubFolders. A status
// other than 1 is a *StatusError (Element "EmptyFolderContents").
func (c *Client) EmptyFolderContents(ctx context.Context, collectionID string, deleteSubFolders bool) error {
	efc := wbxml.E(wbxml.ItemOperationsEmptyFolderContents, wbxml.T(wbxml.AirSyncCollectionId, collectionID))
	if deleteSubFolders {
		efc.Append(wbxml.E(wbxml.ItemOperationsOptions, wbxml.E(wbxml.ItemOperationsDeleteSubFolders)))
	}
	r, err := c.ItemOperations(ctx, wbxml.E(wbxml.ItemOperationsItemOperations, efc), false)
	if err != nil {
		return err
	}
	n := r.Body.Path(wbxml.ItemOperationsResponse, wbxml.ItemOperationsEmptyFolderContents)
	if n == nil {
		return errors.New("client: ItemOperations: no EmptyFolderContents in the response")
	}
	if st := n.ChildText(wbxml.ItemOperationsStatus); st != "1" {
		return statusErr("ItemOperations", "EmptyFolderContents", st)
	}
	return nil
}

// GetAttachment fetches an attachment with the GetAttachment command of
// 12.1 and earlier (AttachmentName= on the request line), as iOS still
// does on 12.1. The body is the attachment's bytes, with its Content-Type.
func (c *Client) GetAttachment(ctx context.Context, name string) (contentType string, data []byte, err error) {
	resp, err := c.Send(ctx, &Request{Cmd: "GetAttachment", Params: Params{AttachmentName: name}})
	if err != nil {
		return "", nil, err
	}
	if resp.Body != nil {
		return "", nil, errors.New("client: GetAttachment: WBXML answer instead of the attachment")
	}
	data = resp.Raw
	if data == nil {
		data = []byte{}
	}
	return resp.Header.Get("Content-Type"), data, nil
}
