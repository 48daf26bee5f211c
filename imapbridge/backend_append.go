package imapbridge

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-imap/v2"

	"github.com/easd/easd/eas"
)

var _ eas.MailAppender = (*Backend)(nil)

// Append stores the message of size bytes read from r in folder, with the
// flags (\Seen, \Flagged, \Answered, $Forwarded; \Deleted is ignored), and
// returns its UID from the server's APPENDUID answer (UIDPLUS, RFC 4315),
// or 0 when the server gives none. It sends one APPEND with a literal of
// size bytes: r must hold at least size bytes, and only size are read.
// The error wraps eas.ErrMailFolderGone when the folder does not exist (NO
// [TRYCREATE] or [NONEXISTENT]); the folder is not created.
func (b *Backend) Append(ctx context.Context, a eas.MailAccount, folder string, flags eas.MailFlags, r io.Reader, size int64) (uint32, error) {
	if size < 0 {
		return 0, fmt.Errorf("imapbridge: Append to %q: negative size %d", folder, size)
	}
	var opts imap.AppendOptions
	for _, f := range []struct {
		bit  eas.MailFlags
		flag imap.Flag
	}{
		{eas.FlagSeen, imap.FlagSeen},
		{eas.FlagFlagged, imap.FlagFlagged},
		{eas.FlagAnswered, imap.FlagAnswered},
		{eas.FlagForwarded, flagForwarded},
	} {
		if flags&f.bit != 0 {
			opts.Flags = append(opts.Flags, f.flag)
		}
	}
	var uid uint32
	err := b.run(ctx, a, "Append", folder, func(s *session) error {
		cmd := s.c.Append(folder, size, &opts)
		n, werr := io.CopyN(cmd, r, size)
		if werr != nil {
			// The literal cannot be cut short: the command is broken, and
			// so is the connection (run discards it on this error).
			s.abort()
			cmd.Close()
			return fmt.Errorf("APPEND: reading the message after %d of %d bytes: %w", n, size, werr)
		}
		if err := cmd.Close(); err != nil {
			return fmt.Errorf("APPEND: %w", err)
		}
		data, err := cmd.Wait()
		if err != nil {
			if isNo(err, imap.ResponseCodeTryCreate) || isNo(err, imap.ResponseCodeNonExistent) {
				return fmt.Errorf("%w: APPEND %q: %w", eas.ErrMailFolderGone, folder, err)
			}
			return fmt.Errorf("APPEND: %w", err)
		}
		if data != nil {
			uid = uint32(data.UID)
		}
		return nil
	})
	if err != nil {
		var ierr *imap.Error
		if errors.As(err, &ierr) && ierr.Type == imap.StatusResponseTypeNo && ierr.Code == imap.ResponseCodeOverQuota {
			return 0, fmt.Errorf("%w: %w", eas.ErrMailboxFull, err)
		}
		return 0, err
	}
	return uid, nil
}
