package eas

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/easd/easd/eas/email"
	"github.com/easd/easd/internal/spool"
	"github.com/easd/easd/wbxml"
)

// ItemOperations status values, MS-ASCMD 2.2.3.177.8.
const (
	itemOpsOK            = 1
	itemOpsProtocolError = 2
	itemOpsServerError   = 3
	itemOpsNotFound      = 6  // object not found
	itemOpsBadRange      = 8  // byte range invalid or too large
	itemOpsStoreUnknown  = 9  // store not known
	itemOpsTooLarge      = 11 // requested data size too large: over the policy's MaxAttachmentSize
	itemOpsConversion    = 14 // the item failed conversion (here: the upstream refuses to hand it out)
	itemOpsBadAttachment = 15 // attachment or attachment id invalid
)

// fileRef is an airsyncbase:FileReference: message ServerId and the MIME
// part path of the attachment ("5:1234:2.1").
func parseFileRef(ref string) (folderID string, uid uint32, part string, ok bool) {
	i := strings.LastIndexByte(ref, ':')
	if i <= 0 {
		return "", 0, "", false
	}
	fid, uid, ok := parseServerID(ref[:i])
	part = ref[i+1:]
	if !ok || part == "" {
		return "", 0, "", false
	}
	return fid, uid, part, true
}

// itemOpsResult collects the parts of a multipart response (MS-ASCMD
// 2.2.2.10.1: the WBXML document is part 0, binary data parts follow).
type itemOpsResult struct {
	multipart bool
	parts     []*spool.Spool
}

// itemOperations runs ItemOperations, MS-ASCMD 2.2.1.10: Fetch of a whole
// message (Store Mailbox, CollectionId + ServerId), Fetch of one
// attachment by FileReference (with Range), and EmptyFolderContents.
// Data streams from IMAP through spools (memory, then temporary files).
func (h *Handler) itemOperations(ctx context.Context, s *Session, body *wbxml.Node, w http.ResponseWriter) error {
	if body == nil {
		return Errorf(StatusInvalidContent, "empty ItemOperations")
	}
	res := &itemOpsResult{multipart: s.Req.AcceptMultiPart}
	defer func() {
		for _, p := range res.parts {
			p.Close()
		}
	}()
	var ids []string
	for _, op := range body.Children {
		ids = append(ids, op.ChildText(wbxml.AirSyncCollectionId))
		if fid, _, ok := parseServerID(op.ChildText(wbxml.SearchLongId)); ok {
			ids = append(ids, fid)
		}
		if fid, _, _, ok := parseFileRef(op.ChildText(wbxml.AirSyncBaseFileReference)); ok {
			ids = append(ids, fid)
		}
	}
	hr, err := h.knownHierarchy(ctx, s, ids...)
	if err != nil {
		return err
	}
	response := wbxml.E(wbxml.ItemOperationsResponse)
	for _, op := range body.Children {
		var n *wbxml.Node
		switch op.Tag {
		case wbxml.ItemOperationsFetch:
			n, err = h.itemFetch(ctx, s, hr, op, res)
		case wbxml.ItemOperationsEmptyFolderContents:
			n, err = h.emptyFolder(ctx, s, hr, op)
		default:
			return Errorf(StatusInvalidContent, "ItemOperations %v not supported", op.Tag)
		}
		if err != nil {
			return err
		}
		response.Append(n)
	}
	doc := wbxml.E(wbxml.ItemOperationsItemOperations, wbxml.T(wbxml.ItemOperationsStatus, strconv.Itoa(itemOpsOK)), response)
	if !res.multipart {
		writeWBXML(w, doc, s.Log)
		return nil
	}
	return writeMultipart(w, doc, res.parts, s)
}

// writeMultipart writes application/vnd.ms-sync.multipart (MS-ASCMD
// 2.2.2.10.1): the part count, an (offset, length) pair per part, all
// little-endian int32, then the parts; part 0 is the WBXML document.
func writeMultipart(w http.ResponseWriter, doc *wbxml.Node, parts []*spool.Spool, s *Session) error {
	head := spool.New(0)
	defer head.Close()
	if err := wbxml.Encode(head, doc); err != nil {
		return err
	}
	all := append([]*spool.Spool{head}, parts...)
	hdr := make([]byte, 0, 4+8*len(all))
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(len(all)))
	off := int64(4 + 8*len(all))
	for _, p := range all {
		if off+p.Len() > 1<<31-1 {
			return HTTPError(http.StatusRequestEntityTooLarge, "multipart response over 2 GiB")
		}
		hdr = binary.LittleEndian.AppendUint32(hdr, uint32(off))
		hdr = binary.LittleEndian.AppendUint32(hdr, uint32(p.Len()))
		off += p.Len()
	}
	w.Header().Set("Content-Type", "application/vnd.ms-sync.multipart")
	w.Header().Set("Content-Length", strconv.FormatInt(off, 10))
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(hdr); err != nil {
		s.Log.Info("writing response", "err", err)
		return nil
	}
	for _, p := range all {
		if _, err := p.WriteTo(w); err != nil {
			s.Log.Info("writing response", "err", err)
			return nil
		}
	}
	return nil
}

func fetchStatus(status int, ids ...*wbxml.Node) *wbxml.Node {
	n := wbxml.E(wbxml.ItemOperationsFetch, wbxml.T(wbxml.ItemOperationsStatus, strconv.Itoa(status)))
	return n.Append(ids...)
}

// itemFetch answers one Fetch.
func (h *Handler) itemFetch(ctx context.Context, s *Session, hr *hierarchy, op *wbxml.Node, res *itemOpsResult) (*wbxml.Node, error) {
	opts := email.Options{Version: s.Req.Version}
	var rng string
	if o := op.Child(wbxml.ItemOperationsOptions); o != nil {
		parseBodyOptions(o, &opts)
		rng = o.ChildText(wbxml.ItemOperationsRange)
	}
	if store := op.ChildText(wbxml.ItemOperationsStore); store != "" && !strings.EqualFold(store, "Mailbox") {
		return fetchStatus(itemOpsStoreUnknown), nil
	}
	if ref := op.ChildText(wbxml.AirSyncBaseFileReference); ref != "" {
		return h.fetchAttachment(ctx, s, hr, ref, rng, res)
	}
	coll, id := op.ChildText(wbxml.AirSyncCollectionId), op.ChildText(wbxml.AirSyncServerId)
	ids := []*wbxml.Node{wbxml.T(wbxml.AirSyncCollectionId, coll), wbxml.T(wbxml.AirSyncServerId, id)}
	if long := op.ChildText(wbxml.SearchLongId); long != "" {
		// A Search result (MS-ASCMD 2.2.3.101): its LongId is the
		// message's ServerId, which names the folder too.
		id = long
		coll, _, _ = strings.Cut(long, ":")
		ids = []*wbxml.Node{wbxml.T(wbxml.SearchLongId, long)}
	}
	fid, uid, ok := parseServerID(id)
	f := hr.byID[coll]
	if !ok || f == nil || fid != coll || f.name == "" {
		return fetchStatus(itemOpsNotFound, ids...), nil
	}
	var app *wbxml.Node
	err := h.deps.Mail.Fetch(ctx, s.Account, f.name, []uint32{uid}, func(mm MailMeta, body io.Reader) error {
		n, err := h.convertNode(ctx, s, f, mm, body, opts)
		app = n
		return err
	})
	var ie *MailItemError
	switch {
	case errors.Is(err, ErrMailFolderGone):
		return fetchStatus(itemOpsNotFound, ids...), nil
	case errors.As(err, &ie):
		// The upstream refuses this one message: its own status, not a
		// 503 the phone would retry for ever.
		s.Log.Warn("fetch refused by the upstream", "item", coll+":"+strconv.FormatUint(uint64(uid), 10), "err", err)
		return fetchStatus(itemOpsConversion, ids...), nil
	case err != nil:
		return nil, mailError(err)
	case app == nil:
		return fetchStatus(itemOpsNotFound, ids...), nil
	}
	props := wbxml.E(wbxml.ItemOperationsProperties, app.Children...)
	return fetchStatus(itemOpsOK, ids...).Append(wbxml.T(wbxml.AirSyncClass, "Email"), props), nil
}

// attachment finds an attachment and spools its decoded bytes. An
// attachment over the policy's MaxAttachmentSize is errAttachmentTooLarge,
// found out after spooling at most one byte more than the limit.
func (h *Handler) attachment(ctx context.Context, s *Session, hr *hierarchy, ref string) (contentType string, data *spool.Spool, err error) {
	fid, uid, part, ok := parseFileRef(ref)
	f := hr.byID[fid]
	if !ok || f == nil || f.name == "" {
		return "", nil, nil
	}
	var found, tooLarge bool
	limit := h.maxAttachment()
	sp := spool.New(0)
	err = h.deps.Mail.Fetch(ctx, s.Account, f.name, []uint32{uid}, func(_ MailMeta, body io.Reader) error {
		err := email.OpenPart(body, part, func(p email.PartInfo, content io.Reader) error {
			found = true
			contentType = p.ContentType
			if limit > 0 {
				n, err := io.Copy(sp, io.LimitReader(content, limit+1))
				tooLarge = n > limit
				return err
			}
			_, err := io.Copy(sp, content)
			return err
		})
		if errors.Is(err, email.ErrNoPart) {
			return nil
		}
		return err
	})
	if err != nil || !found {
		sp.Close()
		if errors.Is(err, ErrMailFolderGone) {
			err = nil
		}
		if err != nil {
			err = mailError(err)
		}
		return "", nil, err
	}
	if tooLarge {
		sp.Close()
		return "", nil, fmt.Errorf("%s: %w (%d bytes)", ref, errAttachmentTooLarge, limit)
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	return contentType, sp, nil
}

// fetchAttachment answers a Fetch by FileReference (MS-ASCMD 2.2.3.68.2).
func (h *Handler) fetchAttachment(ctx context.Context, s *Session, hr *hierarchy, ref, rng string, res *itemOpsResult) (*wbxml.Node, error) {
	idNode := wbxml.T(wbxml.AirSyncBaseFileReference, ref)
	ct, sp, err := h.attachment(ctx, s, hr, ref)
	if errors.Is(err, errAttachmentTooLarge) {
		s.Log.Info("attachment refused", "err", err)
		return fetchStatus(itemOpsTooLarge, idNode), nil
	}
	if err != nil {
		return nil, err
	}
	if sp == nil {
		return fetchStatus(itemOpsBadAttachment, idNode), nil
	}
	res.parts = append(res.parts, sp)
	total := sp.Len()
	var src io.Reader
	if src, err = sp.Reader(); err != nil {
		return nil, err
	}
	props := wbxml.E(wbxml.ItemOperationsProperties, wbxml.T(wbxml.AirSyncBaseContentType, ct))
	n := total
	if rng != "" {
		// Range "first-last", inclusive byte offsets (MS-ASCMD 2.2.3.140.1).
		a, b, ok := strings.Cut(rng, "-")
		first, err1 := strconv.ParseInt(a, 10, 64)
		last, err2 := strconv.ParseInt(b, 10, 64)
		if !ok || err1 != nil || err2 != nil || first < 0 || last < first || (total > 0 && first >= total) {
			return fetchStatus(itemOpsBadRange, idNode), nil
		}
		last = min(last, total-1)
		n = max(last-first+1, 0)
		if _, err := io.CopyN(io.Discard, src, first); err != nil {
			return nil, err
		}
		src = io.LimitReader(src, n)
		props.Append(wbxml.T(wbxml.ItemOperationsRange, fmt.Sprintf("%d-%d", first, max(last, first))), wbxml.T(wbxml.ItemOperationsTotal, strconv.FormatInt(total, 10)))
	}
	if res.multipart {
		if rng != "" {
			// The part is the range only.
			part := spool.New(0)
			if _, err := io.Copy(part, src); err != nil {
				part.Close()
				return nil, err
			}
			res.parts[len(res.parts)-1] = part
			sp.Close()
		}
		props.Append(wbxml.T(wbxml.ItemOperationsPart, strconv.Itoa(len(res.parts))))
	} else {
		pr, pw := io.Pipe()
		go func() {
			enc := base64.NewEncoder(base64.StdEncoding, pw)
			_, err := io.Copy(enc, src)
			if err == nil {
				err = enc.Close()
			}
			pw.CloseWithError(err)
		}()
		s.OnDone(func() { pr.Close() })
		props.Append(wbxml.TStream(wbxml.ItemOperationsData, pr))
	}
	return fetchStatus(itemOpsOK, idNode).Append(props), nil
}

// emptyFolder runs EmptyFolderContents (MS-ASCMD 2.2.3.56): every
// message of the folder is expunged. Subfolders stay (DeleteSubFolders is
// not offered).
func (h *Handler) emptyFolder(ctx context.Context, s *Session, hr *hierarchy, op *wbxml.Node) (*wbxml.Node, error) {
	coll := op.ChildText(wbxml.AirSyncCollectionId)
	resp := func(status int) *wbxml.Node {
		return wbxml.E(wbxml.ItemOperationsEmptyFolderContents, wbxml.T(wbxml.ItemOperationsStatus, strconv.Itoa(status)), wbxml.T(wbxml.AirSyncCollectionId, coll))
	}
	f := hr.byID[coll]
	if f == nil {
		return resp(itemOpsNotFound), nil
	}
	if f.name == "" || f.noSelect {
		return resp(itemOpsOK), nil
	}
	scan, err := h.deps.Mail.Scan(ctx, s.Account, f.name, ScanQuery{})
	if err == nil && len(scan.UIDs) > 0 {
		err = h.deps.Mail.Delete(ctx, s.Account, f.name, scan.UIDs, "")
	}
	switch {
	case errors.Is(err, ErrMailFolderGone):
		return resp(itemOpsNotFound), nil
	case err != nil:
		return nil, mailError(err)
	}
	return resp(itemOpsOK), nil
}

// getAttachment runs GetAttachment (MS-ASCMD 2.2.1.7, protocol 12.1 and
// earlier; iOS still uses it on 12.1): the raw attachment named by the
// AttachmentName parameter, a FileReference. An unknown attachment is
// HTTP 500, as the command has no status codes; one over the policy's
// MaxAttachmentSize is HTTP 403 (MS-ASHTTP 3.2.5.1: refused, not to be
// retried).
func (h *Handler) getAttachment(ctx context.Context, s *Session, _ *wbxml.Node, w http.ResponseWriter) error {
	if s.Req.AttachmentName == "" {
		return HTTPError(http.StatusBadRequest, "GetAttachment without AttachmentName")
	}
	fid, _, _, _ := parseFileRef(s.Req.AttachmentName)
	hr, err := h.knownHierarchy(ctx, s, fid)
	if err != nil {
		return err
	}
	ct, sp, err := h.attachment(ctx, s, hr, s.Req.AttachmentName)
	if errors.Is(err, errAttachmentTooLarge) {
		return &Error{HTTP: http.StatusForbidden, Err: err}
	}
	if err != nil {
		return err
	}
	if sp == nil {
		return HTTPError(http.StatusInternalServerError, "attachment %q not found", s.Req.AttachmentName)
	}
	defer sp.Close()
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.FormatInt(sp.Len(), 10))
	w.WriteHeader(http.StatusOK)
	if _, err := sp.WriteTo(w); err != nil {
		s.Log.Info("writing attachment", "err", err)
	}
	return nil
}
