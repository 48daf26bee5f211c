package eas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/easd/easd/store"
)

// MailAccount says whose mailbox a MailBackend call reaches and how: the
// user, and the login and password the upstream accepts for them. With
// pass-through authentication they are the phone's own credentials; they
// are held in memory for the request only and never logged.
type MailAccount struct {
	User     store.User
	Login    string
	Password string
}

// String hides the password from logs and fmt verbs.
func (a MailAccount) String() string { return a.Login }

// LogValue keeps the password out of structured logs: slog's JSON handler
// would otherwise write every field.
func (a MailAccount) LogValue() slog.Value { return slog.StringValue(a.Login) }

// MailBackend is the mailbox behind FolderSync, Sync, ItemOperations and
// GetItemEstimate for the email class; imapbridge.Backend implements it
// over IMAP. Folders are named by their full upstream (IMAP) name, as
// MailFolder.Name gives it; messages by their UID in that folder.
//
// Errors: ErrMailFolderGone when the folder no longer exists,
// ErrBadCredentials when the upstream refuses the login, and anything
// else for an upstream that failed (the command answers "server error,
// retry", and its state does not advance).
type MailBackend interface {
	// Folders lists all folders, parents before children.
	Folders(ctx context.Context, a MailAccount) ([]MailFolder, error)
	// Status returns a folder's counters, cheaply (IMAP STATUS).
	Status(ctx context.Context, a MailAccount, folder string) (MailStatus, error)
	// Scan lists the messages of a folder as Sync needs them; see MailScan.
	Scan(ctx context.Context, a MailAccount, folder string, q ScanQuery) (MailScan, error)
	// Fetch streams the full RFC 5322 text of the messages uids, calling
	// fn once per message that still exists, in any order; body is valid
	// only during the call, and fn need not read it to the end. An error
	// from fn stops Fetch and is returned. Messages the upstream refuses
	// one by one (not a failed connection) are left out: Fetch gives the
	// others to fn, then returns a *MailItemError naming them.
	Fetch(ctx context.Context, a MailAccount, folder string, uids []uint32, fn func(m MailMeta, body io.Reader) error) error
	// SetFlags changes flags and keywords of one message; absent fields
	// stay as they are. A message that no longer exists is not an error.
	SetFlags(ctx context.Context, a MailAccount, folder string, uid uint32, ch FlagChange) error
	// Delete removes messages: moved to the folder trash when trash is not
	// "" (and not folder itself), else expunged. Messages already gone
	// are skipped.
	Delete(ctx context.Context, a MailAccount, folder string, uids []uint32, trash string) error
	// CreateFolder creates a folder with the full name given.
	CreateFolder(ctx context.Context, a MailAccount, name string) error
	// RenameFolder renames (and so may move) a folder.
	RenameFolder(ctx context.Context, a MailAccount, from, to string) error
	// DeleteFolder deletes a folder and its messages.
	DeleteFolder(ctx context.Context, a MailAccount, name string) error
}

// MailItemError is the error of a Fetch that left messages out because
// the upstream refused them, each on its own (an IMAP NO or BAD to a FETCH
// of that message alone, or an answer without its body), while the other
// messages were given to the callback. Sync skips those messages and
// counts a strike against each for the device (quarantine.go); other
// commands treat it as any upstream failure.
type MailItemError struct {
	// Failed maps each message left out (UID) to the upstream's answer.
	Failed map[uint32]error
}

// Error lists the messages left out, by UID.
func (e *MailItemError) Error() string {
	uids := slices.Sorted(maps.Keys(e.Failed))
	var b strings.Builder
	fmt.Fprintf(&b, "%d message(s) refused by the upstream:", len(uids))
	for _, u := range uids {
		fmt.Fprintf(&b, " %d (%v);", u, e.Failed[u])
	}
	return strings.TrimSuffix(b.String(), ";")
}

// ErrMailFolderGone reports a folder that does not exist (any more).
var ErrMailFolderGone = errors.New("eas: mail folder does not exist")

// MailFolder is a folder of the upstream mailbox.
type MailFolder struct {
	// Name is the full upstream name (IMAP, UTF-8).
	Name string
	// Parent is the full name of the parent folder, "" at the top.
	Parent string
	// DisplayName is the last component of Name.
	DisplayName string
	// Delimiter separates the components of Name; 0 for a flat namespace.
	Delimiter rune
	// Type is the EAS folder type (MS-ASCMD 2.2.3.186.3): 2 Inbox,
	// 3 Drafts, 4 Deleted Items, 5 Sent Items, 12 other mail.
	Type int
	// UIDValidity survives a rename on servers that keep it (Dovecot),
	// so FolderSync can tell a renamed folder from a new one; 0 unknown.
	UIDValidity uint32
	// NoSelect marks a folder that holds no messages, only children.
	NoSelect bool
}

// MailStatus are a folder's counters (IMAP STATUS).
type MailStatus struct {
	UIDValidity uint32
	UIDNext     uint32
	Messages    uint32
	// HighestModSeq is the CONDSTORE HIGHESTMODSEQ (RFC 7162); 0 when the
	// server has no CONDSTORE.
	HighestModSeq uint64
}

// ScanQuery selects what Scan returns.
type ScanQuery struct {
	// Since limits the scan to messages received on or after this day
	// (IMAP SEARCH SINCE, by internal date); zero for all messages.
	Since time.Time
	// ChangedSince, when not 0 and the server has CONDSTORE, limits
	// MailScan.Changed to messages whose mod-sequence is greater (FETCH
	// CHANGEDSINCE); otherwise Changed holds every message in the window.
	ChangedSince uint64
}

// MailScan is one look at a folder.
type MailScan struct {
	// Status are the counters, read before the listing: a change after it
	// is seen by the next scan.
	Status MailStatus
	// UIDs are all messages within the window, ascending.
	UIDs []uint32
	// Changed are the flags and dates of the messages selected by
	// ScanQuery.ChangedSince, within the window, in any order.
	Changed []MailMeta
}

// MailMeta is what Sync tracks of a message.
type MailMeta struct {
	UID      uint32
	Flags    MailFlags
	Keywords []string  // IMAP keywords other than the system flags, as categories
	Date     time.Time // internal date (arrival)
	Size     int64     // RFC822.SIZE; 0 when not known
}

// MailFlags are the IMAP system flags EAS cares about.
type MailFlags uint8

// Flag bits.
const (
	FlagSeen MailFlags = 1 << iota
	FlagFlagged
	FlagAnswered
	FlagForwarded // the $Forwarded keyword
	FlagDeleted
)

// FlagChange is a change of flags and keywords; nil fields stay unchanged.
type FlagChange struct {
	Seen      *bool
	Flagged   *bool
	Answered  *bool
	Forwarded *bool
	// Keywords, when not nil, replaces the category keywords of the
	// message (those IsCategoryKeyword reports); system flags and other
	// keywords ($label1, $MailFlagBit0, $Junk ...) are not touched.
	Keywords *[]string
}

// IsCategoryKeyword reports whether an IMAP keyword is an EAS category:
// an atom without a leading '$', or one easd encoded ("$cat_...", for
// category names that are not atoms). Other '$' keywords belong to the
// server or to other clients.
func IsCategoryKeyword(kw string) bool {
	return kw != "" && kw[0] != '\\' && (kw[0] != '$' || strings.HasPrefix(kw, catPrefix))
}

// MailMover is the optional capability of a MailBackend that MoveItems
// needs.
type MailMover interface {
	// Move moves messages from one folder to another (IMAP MOVE, or COPY
	// + STORE \Deleted + UID EXPUNGE) and returns the new UID of each
	// moved message, by old UID; a message without a known new UID (no
	// UIDPLUS) maps to 0. Messages already gone are left out of the map.
	// ErrMailFolderGone when either folder does not exist; nothing is
	// moved then.
	Move(ctx context.Context, a MailAccount, from string, uids []uint32, to string) (map[uint32]uint32, error)
}

// MailSearcher is the optional capability of a MailBackend that Search
// needs.
type MailSearcher interface {
	// Search returns the UIDs of the messages of folder that match q,
	// newest first.
	Search(ctx context.Context, a MailAccount, folder string, q SearchQuery) ([]uint32, error)
}

// SearchQuery is a mailbox search (IMAP SEARCH).
type SearchQuery struct {
	// Text is matched against headers and body (IMAP TEXT); "" matches
	// everything.
	Text string
	// Since and Before bound the internal date (zero: unbounded).
	Since, Before time.Time
}

// MailAppender is the optional capability of a MailBackend that saving
// sent mail (and drafts) needs.
type MailAppender interface {
	// Append stores a message of size bytes read from r in folder with
	// the flags, and returns its UID (0 when the server does not say).
	Append(ctx context.Context, a MailAccount, folder string, flags MailFlags, r io.Reader, size int64) (uint32, error)
}

// Submitter sends mail (SMTP submission as the user).
type Submitter interface {
	// Submit sends the message read from r to the recipients, from the
	// envelope sender from, authenticated as a. An error wrapping
	// ErrRecipientRefused names refused recipients; other errors are
	// temporary or permanent failures of the submission server.
	Submit(ctx context.Context, a MailAccount, from string, to []string, r io.Reader) error
}

// ErrRecipientRefused reports a recipient the submission server refused.
var ErrRecipientRefused = errors.New("eas: recipient refused")

// MailWatcher is the optional capability of a MailBackend that push
// (Ping, Sync with Wait) uses to learn, without polling per device, that
// folders of a mailbox may have changed. imapbridge implements it with
// one IMAP connection per user, shared by every Watch of that user.
type MailWatcher interface {
	// Watch starts reporting changes of the given folders (full
	// upstream names) of a's mailbox to fn, and of the folder list itself,
	// until stop is called. It returns at once: the watch is set up in the
	// background, and fn may be called from another goroutine, never
	// concurrently for one Watch. fn must not block. Calling stop more
	// than once is harmless.
	Watch(a MailAccount, folders []string, fn func(MailEvent)) (stop func())
}

// MailEvent tells a watcher that something may have changed. Events are
// hints: whoever receives one compares with its own state, so a
// spurious event costs a check, never a wrong answer.
type MailEvent struct {
	// Folder is the folder that may have changed; "" for none.
	Folder string
	// Status, when not zero, are Folder's counters as the watcher last
	// read them (after the change).
	Status MailStatus
	// Hierarchy: folders may have been created, deleted or renamed.
	Hierarchy bool
	// Resync: the watcher was (re)connected or lost events; every folder
	// may have changed.
	Resync bool
}
