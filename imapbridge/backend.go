package imapbridge

// This file holds Backend, the eas.MailBackend over IMAP: how it gets a
// connection for a call, how it maps errors, and the folder operations.
// The message operations are in backend_messages.go.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/easd/easd/eas"
)

// DefaultFetchBatch is the default of BackendOptions.FetchBatch.
const DefaultFetchBatch = 256

// storeBatch bounds the UIDs of one UID STORE, COPY, MOVE or EXPUNGE, so
// that a command line stays far below the server's limit (Dovecot's
// imap_max_line_length is 64 KiB) however sparse the UIDs.
const storeBatch = 1000

// ErrFolderExists is returned (wrapped) by Backend.CreateFolder and
// Backend.RenameFolder when a folder of the new name already exists
// (IMAP NO [ALREADYEXISTS]). Test it with errors.Is.
var ErrFolderExists = errors.New("imapbridge: mail folder already exists")

// BackendOptions configures a Backend.
type BackendOptions struct {
	// Logger receives debug records of failed calls; nil discards them.
	// Records name users and folders, never passwords.
	Logger *slog.Logger
	// FetchBatch is how many messages one UID FETCH of Backend.Fetch
	// asks for; 0 means DefaultFetchBatch.
	FetchBatch int
	// MasterUser and MasterPassword, when MasterUser is set, open every
	// mailbox with a service account instead of the account's own
	// credentials: the login is the user's name, MasterSeparator and
	// MasterUser ("alice*easd", a Dovecot master user), for servers
	// where easd checks passwords itself (local users) and so has none.
	MasterUser, MasterPassword string
	// MasterSeparator joins user and master user; "*" when empty
	// (Dovecot's auth_master_user_separator).
	MasterSeparator string
	// WatchSweep is how often a user's watcher (Backend.Watch) looks at
	// the watched folders it does not IDLE on (STATUS) and at the folder
	// list (LIST); 0 means DefaultWatchSweep.
	WatchSweep time.Duration
	// WatchSweepMax bounds the folders one sweep STATUSes; more are
	// looked at in turn over several sweeps. 0 means
	// DefaultWatchSweepMax.
	WatchSweepMax int
	// WatchLinger is how long a user's watcher connection stays open
	// after the last Watch of the user stopped, for the next one (a
	// phone's next Ping); 0 means DefaultWatchLinger.
	WatchLinger time.Duration
}

// Backend is the mailbox of eas.MailBackend over IMAP, through a Pool.
// It is safe for concurrent use; each call acquires a connection of the
// account's user from the pool for its duration, so a user's concurrent
// calls are bounded by the pool's MaxPerUser.
//
// Every call returns promptly when its context ends: the connection is
// then closed (Conn.Discard), as it is after a network error or anything
// else that leaves it in an unknown state; after success, or a NO or BAD
// answer, it goes back to the pool. A connection may go back with a
// mailbox selected (read-only or read-write): every call SELECTs or
// EXAMINEs the mailbox it needs, and none sends CLOSE, so nothing is
// expunged that the call did not mean to.
//
// Errors wrap eas.ErrBadCredentials (and ErrBadCredentials) when the
// upstream refuses the login, eas.ErrMailFolderGone when the folder does
// not exist (NO [NONEXISTENT], or a NO to its SELECT, EXAMINE or STATUS
// that is not a temporary failure), ErrFolderExists as CreateFolder and
// RenameFolder say, and ErrUnavailable otherwise (with the context's
// error when it ended). An error returned by Fetch's callback is returned
// as is.
type Backend struct {
	pool   *Pool
	log    *slog.Logger
	batch  int
	master BackendOptions // the Master* fields
	// without lists capabilities to ignore although the server has them,
	// for tests of the fallbacks.
	without []imap.Cap
	// watch holds the change watchers (watcher.go).
	watch watchHub
}

var _ eas.MailBackend = (*Backend)(nil)

// NewBackend returns a Backend that reaches the upstream through pool.
func NewBackend(pool *Pool, opts BackendOptions) *Backend {
	b := &Backend{pool: pool, log: opts.Logger, batch: opts.FetchBatch}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.batch <= 0 {
		b.batch = DefaultFetchBatch
	}
	if opts.MasterUser != "" {
		b.master = BackendOptions{MasterUser: opts.MasterUser, MasterPassword: opts.MasterPassword, MasterSeparator: cmp.Or(opts.MasterSeparator, "*")}
	}
	b.watch.configure(opts)
	return b
}

// session is one call's connection.
type session struct {
	b *Backend
	c *imapclient.Client
	// abort closes the connection from another goroutine, at once, so
	// that a command in progress (a FETCH of a large body) ends quickly.
	abort func()
}

// has reports whether the server has capability cp (and the Backend does
// not ignore it).
func (s *session) has(cp imap.Cap) bool {
	return !slices.Contains(s.b.without, cp) && s.c.Caps().Has(cp)
}

// callbackError is an error returned by Fetch's callback, which Fetch
// returns as is.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }
func (e callbackError) Unwrap() error { return e.err }

// run acquires a connection for a, calls fn with it, and gives it back:
// released if fn succeeded or failed with a NO or BAD answer, discarded
// otherwise. When ctx ends, the connection is closed at once (which makes
// the command in progress fail), and run returns an error wrapping
// ErrUnavailable and ctx's error. op and folder name the call in errors.
//
// fn must leave no command in progress: it closes every FETCH, STORE and
// EXPUNGE command it starts (their Close drains them, quickly once the
// connection is closed), else closing the connection would wait for it.
func (b *Backend) run(ctx context.Context, a eas.MailAccount, op, folder string, fn func(s *session) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %s %q: %w", ErrUnavailable, op, folder, err)
	}
	login, password := a.Login, a.Password
	if b.master.MasterUser != "" {
		login, password = a.User.Name+b.master.MasterSeparator+b.master.MasterUser, b.master.MasterPassword
	}
	conn, err := b.pool.Acquire(ctx, login, password)
	if err != nil {
		if errors.Is(err, ErrBadCredentials) {
			err = fmt.Errorf("%w: %w", eas.ErrBadCredentials, err)
		}
		b.log.Debug("imap backend: no connection", "op", op, "user", a.Login, "folder", folder, "err", err)
		return err
	}
	actx, abort := context.WithCancel(ctx)
	defer abort()
	discarded := make(chan struct{})
	stop := context.AfterFunc(actx, func() {
		conn.Discard()
		close(discarded)
	})
	err = fn(&session{b: b, c: conn.Client(), abort: abort})
	if stop() {
		if err == nil || answered(err) {
			conn.Release()
		} else {
			conn.Discard()
		}
	} else {
		<-discarded
	}
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		err = fmt.Errorf("%w: %s %q: %w (%v)", ErrUnavailable, op, folder, cerr, err)
	} else {
		err = mapError(op, folder, err)
	}
	b.log.Debug("imap backend: call failed", "op", op, "user", a.Login, "folder", folder, "err", err)
	return err
}

// answered reports whether err is the server's NO or BAD answer to a
// command, after which the connection is in a known state.
func answered(err error) bool {
	var ierr *imap.Error
	return errors.As(err, &ierr) && (ierr.Type == imap.StatusResponseTypeNo || ierr.Type == imap.StatusResponseTypeBad)
}

// mapError maps an error of the call op on folder to the errors of
// eas.MailBackend.
func mapError(op, folder string, err error) error {
	var cb callbackError
	if errors.As(err, &cb) {
		return cb.err
	}
	if errors.Is(err, eas.ErrMailFolderGone) || errors.Is(err, ErrFolderExists) || errors.Is(err, ErrUnavailable) {
		return fmt.Errorf("%s %q: %w", op, folder, err)
	}
	var ierr *imap.Error
	if errors.As(err, &ierr) && ierr.Type == imap.StatusResponseTypeNo {
		switch ierr.Code {
		case imap.ResponseCodeNonExistent:
			return fmt.Errorf("%w: %s %q: %w", eas.ErrMailFolderGone, op, folder, err)
		case imap.ResponseCodeAlreadyExists:
			return fmt.Errorf("%w: %s %q: %w", ErrFolderExists, op, folder, err)
		}
	}
	return fmt.Errorf("%w: %s %q: %w", ErrUnavailable, op, folder, err)
}

// folderError marks err, the answer to a command naming the mailbox
// (SELECT, EXAMINE, STATUS), as telling that it does not exist, unless it
// is a temporary failure.
func folderError(cmd, mailbox string, err error) error {
	var ierr *imap.Error
	if errors.As(err, &ierr) && ierr.Type == imap.StatusResponseTypeNo && !temporaryFailure(ierr.Code) {
		return fmt.Errorf("%w: %s %q: %w", eas.ErrMailFolderGone, cmd, mailbox, err)
	}
	return fmt.Errorf("%s %q: %w", cmd, mailbox, err)
}

// unselect leaves the selected mailbox, if any, without expunging
// (UNSELECT), before a RENAME or DELETE: Dovecot disconnects a session
// whose selected mailbox is renamed or deleted. Without UNSELECT, it does
// nothing.
func (s *session) unselect() error {
	if s.c.State() != imap.ConnStateSelected || !s.has(imap.CapUnselect) {
		return nil
	}
	if err := s.c.Unselect().Wait(); err != nil {
		return fmt.Errorf("UNSELECT: %w", err)
	}
	return nil
}

// selectFolder SELECTs folder, or EXAMINEs it if readOnly, with CONDSTORE
// when the server has it.
func (s *session) selectFolder(folder string, readOnly bool) (*imap.SelectData, error) {
	opts := &imap.SelectOptions{ReadOnly: readOnly, CondStore: s.has(imap.CapCondStore)}
	data, err := s.c.Select(folder, opts).Wait()
	if err != nil {
		cmd := "SELECT"
		if readOnly {
			cmd = "EXAMINE"
		}
		return nil, folderError(cmd, folder, err)
	}
	return data, nil
}

// Folders lists the folders of a's mailbox, as ListFolders does (one
// LIST command, extended when the server can).
func (b *Backend) Folders(ctx context.Context, a eas.MailAccount) ([]eas.MailFolder, error) {
	var out []eas.MailFolder
	err := b.run(ctx, a, "Folders", "", func(s *session) error {
		folders, err := ListFolders(ctx, s.c)
		if err != nil {
			return err
		}
		out = make([]eas.MailFolder, len(folders))
		for i, f := range folders {
			out[i] = eas.MailFolder{
				Name:        f.Name,
				Parent:      f.Parent,
				DisplayName: f.DisplayName,
				Delimiter:   f.Delimiter,
				Type:        f.Type,
				UIDValidity: f.UIDValidity,
				NoSelect:    f.NoSelect,
			}
		}
		return nil
	})
	return out, err
}

// Status returns the counters of folder with one STATUS command
// (MESSAGES UIDNEXT UIDVALIDITY, and HIGHESTMODSEQ when the server has
// CONDSTORE).
func (b *Backend) Status(ctx context.Context, a eas.MailAccount, folder string) (eas.MailStatus, error) {
	var st eas.MailStatus
	err := b.run(ctx, a, "Status", folder, func(s *session) error {
		// STATUS of the selected mailbox may report what this session
		// last saw rather than what is there now (RFC 9051 6.3.11):
		// leave it first.
		if err := s.unselect(); err != nil {
			return err
		}
		opts := &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, HighestModSeq: s.has(imap.CapCondStore)}
		data, err := s.c.Status(folder, opts).Wait()
		if err != nil {
			return folderError("STATUS", folder, err)
		}
		st = eas.MailStatus{UIDValidity: data.UIDValidity, UIDNext: uint32(data.UIDNext), HighestModSeq: data.HighestModSeq}
		if data.NumMessages != nil {
			st.Messages = *data.NumMessages
		}
		return nil
	})
	return st, err
}

// CreateFolder creates the folder name (CREATE), and subscribes to it
// (SUBSCRIBE, whose failure is ignored) so that other mail clients show
// it. If it exists already, the error wraps ErrFolderExists.
func (b *Backend) CreateFolder(ctx context.Context, a eas.MailAccount, name string) error {
	return b.run(ctx, a, "CreateFolder", name, func(s *session) error {
		if err := s.c.Create(name, nil).Wait(); err != nil {
			return fmt.Errorf("CREATE: %w", err)
		}
		if err := s.c.Subscribe(name).Wait(); err != nil && !answered(err) {
			return fmt.Errorf("SUBSCRIBE: %w", err)
		}
		return nil
	})
}

// RenameFolder renames the folder from, and its children with it, to to
// (RENAME, after UNSELECT if the connection has a mailbox selected). The error wraps eas.ErrMailFolderGone if from does not exist,
// and ErrFolderExists if to does.
func (b *Backend) RenameFolder(ctx context.Context, a eas.MailAccount, from, to string) error {
	return b.run(ctx, a, "RenameFolder", from, func(s *session) error {
		if err := s.unselect(); err != nil {
			return err
		}
		if err := s.c.Rename(from, to, nil).Wait(); err != nil {
			return fmt.Errorf("RENAME to %q: %w", to, err)
		}
		return nil
	})
}

// DeleteFolder deletes the folder name with its messages, and its
// children first: IMAP servers keep, or refuse to delete, a mailbox with
// children, but an EAS FolderDelete removes the subtree. It sends
// UNSELECT if the connection has a mailbox selected, LIST ""
// "" (for the hierarchy delimiter), LIST "" "name<delim>*", then one
// DELETE per child, deepest first, and DELETE name. The error wraps
// eas.ErrMailFolderGone if name does not exist and has no children.
func (b *Backend) DeleteFolder(ctx context.Context, a eas.MailAccount, name string) error {
	return b.run(ctx, a, "DeleteFolder", name, func(s *session) error {
		if err := s.unselect(); err != nil {
			return err
		}
		root, err := s.c.List("", "", nil).Collect()
		if err != nil {
			return fmt.Errorf("LIST: %w", err)
		}
		var children []string
		if len(root) > 0 && root[0].Delim != 0 {
			prefix := name + string(root[0].Delim)
			list, err := s.c.List("", prefix+"*", nil).Collect()
			if err != nil {
				return fmt.Errorf("LIST: %w", err)
			}
			for _, l := range list {
				// The name may hold LIST wildcards: match exactly.
				if strings.HasPrefix(l.Mailbox, prefix) && !slices.Contains(l.Attrs, imap.MailboxAttrNonExistent) {
					children = append(children, l.Mailbox)
				}
			}
		}
		// Deepest first: a longer name cannot be an ancestor.
		slices.SortFunc(children, func(x, y string) int { return len(y) - len(x) })
		for _, child := range children {
			if err := s.c.Delete(child).Wait(); err != nil && !isNo(err, imap.ResponseCodeNonExistent) {
				return fmt.Errorf("DELETE %q: %w", child, err)
			}
		}
		err = s.c.Delete(name).Wait()
		if err != nil && !(len(children) > 0 && isNo(err, imap.ResponseCodeNonExistent)) {
			return fmt.Errorf("DELETE: %w", err)
		}
		return nil
	})
}

// isNo reports whether err is a NO answer with code.
func isNo(err error, code imap.ResponseCode) bool {
	var ierr *imap.Error
	return errors.As(err, &ierr) && ierr.Type == imap.StatusResponseTypeNo && ierr.Code == code
}
