package imapbridge

// This file holds Backend.Move, the eas.MailMover over IMAP (MoveItems).

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/emersion/go-imap/v2"

	"github.com/easd/easd/eas"
)

var _ eas.MailMover = (*Backend)(nil)

// errSameFolder is returned by Move when source and destination are the
// same folder: MoveItems answers that itself (MS-ASCMD 2.2.3.177.9,
// status 4) and never asks.
var errSameFolder = errors.New("imapbridge: move within one folder")

// Move moves the messages uids of folder from to folder to, and returns
// the new UID of each moved message by its old UID. It sends SELECT from,
// UID SEARCH UID set (which of the UIDs still exist), then per 1000 UIDs:
// UID MOVE set to if the server has MOVE; else UID COPY set to, UID STORE
// set +FLAGS.SILENT (\Deleted) and UID EXPUNGE set (without UIDPLUS, the
// EXPUNGE dance of Delete, which spares messages others flagged
// \Deleted).
//
// New UIDs come from the COPYUID response code (UIDPLUS, RFC 4315, or
// IMAP4rev2); without it each moved message maps to 0. UIDs that no
// longer exist are left out of the map, and are no error.
//
// If to does not exist (NO [TRYCREATE] to the MOVE or COPY, which then
// moved nothing), the error wraps eas.ErrMailFolderGone and no message is
// flagged or expunged in from; so it does when from does not exist. A
// MOVE or COPY answered NO [EXPUNGEISSUED] (a message expunged by another
// session meanwhile) is retried once after a NOOP.
func (b *Backend) Move(ctx context.Context, a eas.MailAccount, from string, uids []uint32, to string) (map[uint32]uint32, error) {
	uids = slices.Compact(slices.Sorted(slices.Values(uids)))
	if len(uids) > 0 && uids[0] == 0 {
		uids = uids[1:]
	}
	moved := make(map[uint32]uint32, len(uids))
	if len(uids) == 0 {
		return moved, nil
	}
	if from == to {
		return nil, fmt.Errorf("%w: %q", errSameFolder, from)
	}
	err := b.run(ctx, a, "Move", from, func(s *session) error {
		if _, err := s.selectFolder(from, false); err != nil {
			return err
		}
		data, err := s.c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{uidSet(uids)}}, nil).Wait()
		if err != nil {
			return fmt.Errorf("UID SEARCH: %w", err)
		}
		existing := searchUIDs(data, uint32(len(uids))) // asked about these only
		uidPlus := s.has(imap.CapUIDPlus) || s.has(imap.CapIMAP4rev2)
		for batch := range slices.Chunk(existing, storeBatch) {
			var set imap.UIDSet
			set.AddNum(batch...)
			src, dst, err := s.moveBatch(set, to)
			if err != nil {
				return err
			}
			if uidPlus {
				srcs, ok1 := src.Nums()
				dsts, ok2 := dst.Nums()
				if ok1 && ok2 && len(srcs) == len(dsts) {
					// COPYUID lists what was moved; an OK without it moved
					// nothing: the messages were gone by then (expunged, or
					// moved by another session: NO [EXPUNGEISSUED] first).
					for i, u := range srcs {
						moved[uint32(u)] = uint32(dsts[i])
					}
					continue
				}
			}
			// No usable COPYUID: moved, under UIDs unknown.
			for _, u := range batch {
				moved[uint32(u)] = 0
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return moved, nil
}

// moveBatch moves the messages set of the selected folder to to, and
// returns the COPYUID source and destination sets (nil when the server
// gave none).
func (s *session) moveBatch(set imap.UIDSet, to string) (src, dst imap.UIDSet, err error) {
	useMove := s.has(imap.CapMove)
	try := func() error {
		if useMove {
			data, err := s.c.Move(set, to).Wait()
			if err != nil {
				return err
			}
			src, _ = data.SourceUIDs.(imap.UIDSet)
			dst, _ = data.DestUIDs.(imap.UIDSet)
			return nil
		}
		data, err := s.c.Copy(set, to).Wait()
		if err != nil {
			return err
		}
		src, dst = data.SourceUIDs, data.DestUIDs
		return nil
	}
	err = try()
	if isNo(err, responseCodeExpungeIssued) {
		if nerr := s.c.Noop().Wait(); nerr != nil {
			return nil, nil, fmt.Errorf("NOOP: %w", nerr)
		}
		err = try()
	}
	cmd := "UID COPY"
	if useMove {
		cmd = "UID MOVE"
	}
	switch {
	case isNo(err, imap.ResponseCodeTryCreate):
		return nil, nil, fmt.Errorf("%w: %s to %q: %w", eas.ErrMailFolderGone, cmd, to, err)
	case err != nil:
		return nil, nil, fmt.Errorf("%s to %q: %w", cmd, to, err)
	}
	if useMove {
		return src, dst, nil
	}
	// Copied: now remove the originals, those COPYUID names if it did.
	del := set
	if len(src) > 0 {
		del = src
	}
	if err := s.store(del, imap.StoreFlagsAdd, imap.FlagDeleted); err != nil {
		return nil, nil, err
	}
	if err := s.expunge(del); err != nil {
		return nil, nil, err
	}
	return src, dst, nil
}
