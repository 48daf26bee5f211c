package eas

import (
	"context"
	"errors"
	"strconv"

	"github.com/easd/easd/wbxml"
)

// MoveItems status values, MS-ASCMD 2.2.3.177.10 (Status (MoveItems);
// numbered 2.2.3.177.9 in older revisions). 7, "source or destination
// item locked", is never sent: IMAP has no locks.
const (
	moveBadSource  = 1 // invalid source collection id or item id
	moveBadDest    = 2 // invalid destination collection id
	moveOK         = 3 // success
	moveSameFolder = 4 // source and destination collection are the same
	moveFailed     = 5 // failure, the client may retry
)

// moveReq is one Move of a MoveItems request.
type moveReq struct {
	srcMsg, srcFld, dstFld string
	uid                    uint32

	status int
	dstMsg string // DstMsgId, "" when not known
}

// moveItems runs MoveItems, MS-ASCMD 2.2.1.12: it moves email between
// folders, one IMAP command (MailMover.Move) per source and destination
// pair, and answers one Response per Move, in request order.
//
// A Move is answered with status 1 when its SrcMsgId is not a ServerId of
// its SrcFldId, when the source folder is unknown, the Outbox or a folder
// that holds no messages, gone upstream, or when the message is no longer
// there; 2 likewise for the destination folder; 4 when both are the same;
// 5 when the upstream failed otherwise (nothing of that pair moved, the
// client retries); 3 when moved, with DstMsgId the message's new ServerId
// (MS-ASCMD 2.2.3.52).
//
// Without UIDPLUS the upstream does not tell new UIDs: the move is then
// still status 3, without DstMsgId (the element is optional), and the
// destination's next Sync sends the message as an Add, as it would to any
// other device; the device can't hold it under an id it was never given.
//
// The moving device's pending moves (recordMoves) take the moved messages
// as gone from the source and, with the flags, keywords and date they
// have upstream after the move, as known in the destination: its next
// Syncs send neither a Delete nor a duplicate Add for them (quirks.md),
// while other devices see both.
func (h *Handler) moveItems(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error) {
	mover, ok := h.deps.Mail.(MailMover)
	if !ok {
		return nil, Errorf(StatusCommandNotSupported, "the mail backend cannot move messages")
	}
	var moves []*moveReq
	var ids []string
	for n := range body.Each(wbxml.MoveMove) {
		m := &moveReq{
			srcMsg: n.ChildText(wbxml.MoveSrcMsgId),
			srcFld: n.ChildText(wbxml.MoveSrcFldId),
			dstFld: n.ChildText(wbxml.MoveDstFldId),
		}
		moves = append(moves, m)
		ids = append(ids, m.srcFld, m.dstFld)
	}
	if len(moves) == 0 {
		return nil, Errorf(StatusInvalidContent, "MoveItems without Move")
	}
	hr, err := h.knownHierarchy(ctx, s, ids...)
	if err != nil {
		return nil, err
	}

	// Check each Move, and group the others by folder pair, in order.
	type pair struct{ src, dst string }
	groups := map[pair][]*moveReq{}
	var order []pair
	for _, m := range moves {
		if m.status = h.checkMove(hr, m); m.status != 0 {
			continue
		}
		p := pair{m.srcFld, m.dstFld}
		if groups[p] == nil {
			order = append(order, p)
		}
		groups[p] = append(groups[p], m)
	}
	// Moves out of one folder of a user run one at a time (in this
	// process): two IMAP sessions MOVEing the same message at once both
	// copy it (Dovecot's Maildir does), so a MoveItems sent twice would
	// leave the message twice in the destination. The second waits, then
	// finds the message gone: moved by this device (the first answer
	// again, from the recorded moves) or by another (status 1).
	srcLocks := make([]string, 0, len(order))
	for _, p := range order {
		srcLocks = append(srcLocks, "move/"+p.src)
	}
	unlock := h.locks.lock(-s.User.ID, srcLocks)
	defer unlock()
	for i, p := range order {
		if err := h.movePair(ctx, s, mover, hr.byID[p.src], hr.byID[p.dst], groups[p]); err != nil {
			if i == 0 {
				// Nothing moved yet: the command fails as a whole (401,
				// 503) and the phone retries it.
				return nil, err
			}
			// Earlier pairs moved and were recorded: answer them, and
			// status 5 (retry) for what this failure left.
			s.Log.Warn("moving failed after other moves succeeded", "err", err)
			for _, m := range groups[p] {
				if m.status == 0 {
					m.status = moveFailed
				}
			}
		}
	}

	for _, p := range order {
		s.OnDone(func() {
			h.publish(ctx, s.User.ID, p.src)
			h.publish(ctx, s.User.ID, p.dst)
		})
	}
	resp := wbxml.E(wbxml.MoveMoveItems)
	for _, m := range moves {
		r := wbxml.E(wbxml.MoveResponse, wbxml.T(wbxml.MoveSrcMsgId, m.srcMsg), wbxml.T(wbxml.MoveStatus, strconv.Itoa(m.status)))
		if m.dstMsg != "" {
			r.Append(wbxml.T(wbxml.MoveDstMsgId, m.dstMsg))
		}
		resp.Append(r)
	}
	return resp, nil
}

// checkMove validates a Move against the hierarchy: its status when it
// cannot be done (MS-ASCMD 2.2.3.177.10), else 0 with m.uid set.
func (h *Handler) checkMove(hr *hierarchy, m *moveReq) int {
	fld, uid, ok := parseServerID(m.srcMsg)
	src := hr.byID[m.srcFld]
	if !ok || fld != m.srcFld || src == nil || src.name == "" || src.noSelect {
		return moveBadSource
	}
	dst := hr.byID[m.dstFld]
	if dst == nil || dst.name == "" || dst.noSelect {
		return moveBadDest
	}
	if src.ID == dst.ID {
		return moveSameFolder
	}
	m.uid = uid
	return 0
}

// movePair moves the messages of ms from src to dst with one
// MailMover.Move, sets their status and DstMsgId, and records the moves
// for the session's device. Only a failure that the whole command must
// answer (credentials, the request's end, the store) is returned.
func (h *Handler) movePair(ctx context.Context, s *Session, mover MailMover, src, dst *folderView, ms []*moveReq) error {
	setAll := func(status int) {
		for _, m := range ms {
			m.status = status
		}
	}
	fatal := func(err error) bool {
		return errors.Is(err, ErrBadCredentials) || ctx.Err() != nil
	}
	// The destination's counters before the move: it must exist, and the
	// moved messages are among those changed since its HIGHESTMODSEQ.
	before, err := h.deps.Mail.Status(ctx, s.Account, dst.name)
	switch {
	case errors.Is(err, ErrMailFolderGone):
		s.Log.Info("MoveItems: destination gone upstream", "folder", dst.name)
		setAll(moveBadDest)
		return nil
	case err != nil && fatal(err):
		return mailError(err)
	case err != nil:
		s.Log.Warn("MoveItems: destination status failed", "folder", dst.name, "err", err)
		setAll(moveFailed)
		return nil
	}
	uids := make([]uint32, 0, len(ms))
	for _, m := range ms {
		uids = append(uids, m.uid)
	}
	moved, err := mover.Move(ctx, s.Account, src.name, uids, dst.name)
	switch {
	case errors.Is(err, ErrMailFolderGone):
		// Which one? Nothing was moved either way.
		status := moveBadDest
		if _, serr := h.deps.Mail.Status(ctx, s.Account, src.name); errors.Is(serr, ErrMailFolderGone) {
			status = moveBadSource
		}
		s.Log.Info("MoveItems: folder gone upstream", "from", src.name, "to", dst.name, "status", status)
		setAll(status)
		return nil
	case err != nil && fatal(err):
		return mailError(err)
	case err != nil:
		s.Log.Warn("MoveItems failed", "from", src.name, "to", dst.name, "err", err)
		setAll(moveFailed)
		return nil
	}

	var gone []uint32
	known := map[uint32]bool{}     // new UIDs
	answers := map[uint32]string{} // old UID -> new ServerId
	var earlier *pendingMoves      // this device's moves not yet synced
	for _, m := range ms {
		nu, ok := moved[m.uid]
		if !ok {
			// No longer in the source: moved by this very device, whose
			// first answer got lost? Then the same answer again.
			if earlier == nil {
				if earlier, err = h.loadMoves(ctx, s, src.ID); err != nil {
					return err
				}
			}
			if id, done := earlier.Moved[m.uid]; done {
				m.status, m.dstMsg = moveOK, id
				continue
			}
			m.status = moveBadSource
			continue
		}
		m.status = moveOK
		if nu != 0 {
			m.dstMsg = serverID(dst.ID, nu)
			known[nu] = true
		}
		answers[m.uid] = m.dstMsg
	}
	for old := range moved {
		gone = append(gone, old)
	}
	if len(gone) == 0 {
		return nil
	}
	if err := h.recordMoves(ctx, s, src.ID, gone, nil, answers); err != nil {
		return err
	}
	if len(known) == 0 {
		return nil
	}
	// What the device holds of the moved messages is what they are
	// upstream now: the flags and keywords they had, the arrival date
	// they kept.
	scan, err := h.deps.Mail.Scan(ctx, s.Account, dst.name, ScanQuery{ChangedSince: before.HighestModSeq})
	if err != nil {
		if fatal(err) {
			return mailError(err)
		}
		// Moved all the same: the device gets them again as Adds.
		s.Log.Warn("MoveItems: listing the destination failed", "folder", dst.name, "err", err)
		return nil
	}
	added := make(map[uint32]itemState, len(known))
	for _, mm := range scan.Changed {
		if known[mm.UID] {
			added[mm.UID] = itemState{Flags: mm.Flags & flagMask, Date: mm.Date.Unix(), Kw: kwHash(categoriesOf(mm.Keywords))}
		}
	}
	if len(added) == 0 {
		return nil
	}
	return h.recordMoves(ctx, s, dst.ID, nil, added, nil)
}
