// Package store defines easd's persistence contract: users, devices and
// per-device sync state. Two implementations exist, store/sqlite (the
// embedded default) and store/postgres (production, many instances); both
// must pass the one conformance suite in store/storetest.
//
// Every method is safe for concurrent use. Every state change is a single
// transaction: a crash mid-call leaves the previous state valid.
package store

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Sentinel errors. Implementations wrap or return these so callers can test
// with errors.Is regardless of the backing database.
var (
	// ErrNotFound reports that the named user, device or state does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrExists reports that a unique name (user name, device id) is taken.
	ErrExists = errors.New("store: already exists")
	// ErrLimit reports that a per-user limit (devices) refuses a new record.
	ErrLimit = errors.New("store: limit reached")
	// ErrUnavailable reports that the database could not be reached or
	// went away during the call (restart, crash, failover): nothing was
	// decided, and the same call may succeed later.
	ErrUnavailable = errors.New("store: database unavailable")
)

// User is an account that may sign in. PasswordHash is a PHC-format hash
// (argon2id or bcrypt) produced by internal/passwd; it is never a clear-text
// password. Users authenticated by IMAP pass-through may have an empty hash.
type User struct {
	ID           int64
	Name         string // login name, unique, lower-cased by callers
	PasswordHash string
	Disabled     bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// LogValue keeps the password hash out of structured logs (slog's JSON
// handler would otherwise write every field).
func (u User) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("id", u.ID), slog.String("name", u.Name))
}

// DeviceAccess is the administrator's decision about a device.
type DeviceAccess string

// Device access states (MS-ASHTTP 3.2.5.1 HTTP 403; MS-ASCMD status 129
// DeviceBlockedForUser).
const (
	DeviceAllowed     DeviceAccess = "allowed"
	DeviceBlocked     DeviceAccess = "blocked"
	DeviceQuarantined DeviceAccess = "quarantined"
)

// WipeState tracks a remote wipe (MS-ASPROV 3.2.5.1.2).
type WipeState string

// Remote wipe states.
const (
	WipeNone         WipeState = ""             // no wipe requested
	WipePending      WipeState = "pending"      // full wipe requested, not yet sent
	WipeAccountOnly  WipeState = "account"      // AccountOnlyRemoteWipe requested (16.1)
	WipeAcknowledged WipeState = "acknowledged" // device confirmed the wipe
)

// Device is one phone (or app) of one user, keyed by (UserID, DeviceID) as
// MS-ASHTTP 2.2.1.1.1.2.3 requires: several devices per user, each with its
// own sync state.
type Device struct {
	ID         int64  // surrogate key
	UserID     int64  // owner
	DeviceID   string // the client's DeviceId query parameter
	DeviceType string // DeviceType query parameter, e.g. "iPhone"
	UserAgent  string

	// Settings DeviceInformation (MS-ASCMD 2.2.3.45), when the client sent it.
	Model           string
	IMEI            string
	FriendlyName    string
	OS              string
	OSLanguage      string
	PhoneNumber     string
	MobileOperator  string
	ProtocolVersion string // last negotiated MS-ASProtocolVersion

	Access    DeviceAccess
	PolicyKey uint32 // 0 = not provisioned (MS-ASPROV 3.1.5.1)
	// PolicyHash identifies the policy the device acknowledged with
	// PolicyKey; "" while a temporary key awaits acknowledgement.
	PolicyHash string
	Wipe       WipeState

	FirstSeen time.Time
	LastSeen  time.Time
}

// SyncState is an opaque blob that the eas layer keeps per (device,
// collection, sync key). The store keeps the newest state and the one before
// it for each collection, so that a client retrying a request with the
// previous SyncKey gets the same answer (MS-ASCMD 2.2.3.166.4).
type SyncState struct {
	DeviceID   int64  // Device.ID
	Collection string // CollectionId, or "" for the folder hierarchy
	SyncKey    string
	Data       []byte
	CreatedAt  time.Time
}

// Item classes kept in the store (the mail class lives upstream, in IMAP).
const (
	ClassCalendar = "Calendar"
	ClassContacts = "Contacts"
	ClassTasks    = "Tasks"
	ClassNotes    = "Notes"
)

// Collection is a folder of store-side items of one class: a user's
// calendar, address book, task list or notes.
type Collection struct {
	ID     int64
	UserID int64
	// Class is one of the Class* constants.
	Class string
	// ParentID is the containing collection, 0 at the top level.
	ParentID int64
	// Name is the display name, unique among the user's collections with
	// the same parent.
	Name string
	// Default marks the user's default collection of its class (EAS
	// folder types 7-10); at most one per user and class. Others are
	// user-created (types 13-17).
	Default bool
	// ModSeq is the highest item ModSeq in the collection (0 when none
	// was ever written): unchanged ModSeq means unchanged items.
	ModSeq    int64
	CreatedAt time.Time
}

// Item is one stored item: its standard form (iCalendar or vCard text)
// and the index sync needs, or the tombstone of a deleted item.
type Item struct {
	ID           int64
	CollectionID int64
	// UID is the iCalendar or vCard UID; unique among the collection's
	// live items.
	UID string
	// Data is the item's text; nil for a tombstone.
	Data []byte
	// ModSeq orders the changes of one collection: every write or
	// delete gives the item the collection's next ModSeq.
	ModSeq int64
	// Deleted marks a tombstone, kept so that devices learn of the
	// deletion.
	Deleted bool
	// Start and End bound the item in time for sync windows (FilterType);
	// zero when not set (End zero: no end).
	Start, End time.Time
	// Summary is a short label (subject, name) for logs and admin tools.
	Summary   string
	UpdatedAt time.Time
}

// ItemStore is the part of the store holding calendar, contacts, tasks
// and notes. Every write is one transaction. The item methods take a
// collection id only: callers check that the collection is the user's
// (Collection, Collections) before touching its items. Item ids are
// unique across collections; a UID is required (callers make one up for
// classes without, such as notes). Tombstones are kept (not pruned yet).
type ItemStore interface {
	// Collections lists a user's collections ordered by ID.
	Collections(ctx context.Context, userID int64) ([]Collection, error)
	// CreateCollection adds a collection (ID, ModSeq and CreatedAt are
	// assigned). ErrExists if the user has one with the same parent and
	// name, or already a default one of the class; ErrNotFound if the user
	// or the parent (of the same user) does not exist.
	CreateCollection(ctx context.Context, c Collection) (Collection, error)
	// UpdateCollection renames or moves a collection of c.UserID (Name,
	// ParentID). ErrNotFound if absent, ErrExists on a name clash.
	UpdateCollection(ctx context.Context, c Collection) error
	// DeleteCollection removes a collection of the user with its items
	// and its child collections. ErrNotFound if absent.
	DeleteCollection(ctx context.Context, userID, id int64) error
	// PutItem stores it in it.CollectionID: an insert when it.ID is 0
	// (ErrExists if a live item has the same UID), else a replace of the
	// live item it.ID (ErrNotFound if absent or deleted). The item gets
	// the collection's next ModSeq and UpdatedAt; the stored item is
	// returned.
	PutItem(ctx context.Context, it Item) (Item, error)
	// DeleteItem turns a live item into a tombstone with the next ModSeq
	// (its Data dropped). ErrNotFound if absent or already deleted.
	DeleteItem(ctx context.Context, collectionID, id int64) (Item, error)
	// Item returns a live item. ErrNotFound if absent or deleted.
	Item(ctx context.Context, collectionID, id int64) (Item, error)
	// ItemByUID returns the live item with that UID. ErrNotFound if none.
	ItemByUID(ctx context.Context, collectionID int64, uid string) (Item, error)
	// ItemChanges returns the items and tombstones of a collection with
	// ModSeq > since, ascending by ModSeq, at most limit (0: no limit);
	// tombstones have no Data.
	ItemChanges(ctx context.Context, collectionID, since int64, limit int) ([]Item, error)
	// Collection returns one collection of the user. ErrNotFound if
	// absent.
	Collection(ctx context.Context, userID, id int64) (Collection, error)
}

// Store is the persistence contract. Implementations: store/sqlite,
// store/postgres.
type Store interface {
	ItemStore
	// Ping checks that the database answers; /healthz calls it.
	Ping(ctx context.Context) error
	// Close releases the database handle.
	Close() error

	// CreateUser adds a user. ErrExists if the name is taken.
	CreateUser(ctx context.Context, name, passwordHash string) (User, error)
	// User returns the user by name. ErrNotFound if absent.
	User(ctx context.Context, name string) (User, error)
	// Users lists all users ordered by name.
	Users(ctx context.Context) ([]User, error)
	// SetPassword replaces the user's password hash. ErrNotFound if absent.
	SetPassword(ctx context.Context, name, passwordHash string) error
	// SetDisabled enables or disables the user. ErrNotFound if absent.
	SetDisabled(ctx context.Context, name string, disabled bool) error
	// DeleteUser removes the user with all devices and sync state.
	// ErrNotFound if absent.
	DeleteUser(ctx context.Context, name string) error

	// TouchDevice registers the device on first contact or updates its
	// DeviceType, UserAgent, ProtocolVersion and LastSeen, and returns the
	// stored record. New devices start with Access d.Access (DeviceAllowed
	// when empty). d.UserID and d.DeviceID identify the device.
	TouchDevice(ctx context.Context, d Device) (Device, error)
	// AddDevice is TouchDevice for a device that may be new, with a bound:
	// when the user already has maxPerUser (> 0) devices and d is not one
	// of them, nothing is written and ErrLimit is returned. The count and
	// the insert are one transaction, so concurrent first contacts of
	// several phones cannot exceed the bound. maxPerUser <= 0: no bound.
	AddDevice(ctx context.Context, d Device, maxPerUser int) (Device, error)
	// Device returns one device of a user. ErrNotFound if absent.
	Device(ctx context.Context, userID int64, deviceID string) (Device, error)
	// Devices lists a user's devices ordered by DeviceID.
	Devices(ctx context.Context, userID int64) ([]Device, error)
	// UpdateDevice stores the protocol-owned fields of d, selected by d.ID:
	// DeviceType, UserAgent, the DeviceInformation fields (Model, IMEI,
	// FriendlyName, OS, OSLanguage, PhoneNumber, MobileOperator),
	// ProtocolVersion, PolicyKey and PolicyHash. It never changes Access or
	// Wipe, which belong to the administrator and change only through
	// SetDeviceAccess and SetDeviceWipe, so a request writing back a copy
	// loaded earlier cannot undo a concurrent block or wipe. UserID,
	// DeviceID, FirstSeen and LastSeen are not changed either. ErrNotFound
	// if absent.
	UpdateDevice(ctx context.Context, d Device) error
	// SetDeviceAccess sets only the device's Access, selected by id.
	// ErrNotFound if absent.
	SetDeviceAccess(ctx context.Context, id int64, access DeviceAccess) error
	// SetDeviceWipe sets only the device's Wipe state to to, atomically: with
	// no from states the change is unconditional, otherwise it happens only
	// if the current state is one of from (compare-and-set). It reports
	// whether the row was updated; false with a nil error means the current
	// state matched none of from and nothing changed. ErrNotFound if the
	// device does not exist.
	SetDeviceWipe(ctx context.Context, id int64, to WipeState, from ...WipeState) (bool, error)
	// DeleteDevice removes a device and all its sync state. ErrNotFound if absent.
	DeleteDevice(ctx context.Context, id int64) error

	// PutSyncState stores s as the newest state of its collection and, in
	// the same transaction, deletes all but the newest two states of that
	// collection. Storing the same (device, collection, key) again replaces
	// its data.
	PutSyncState(ctx context.Context, s SyncState) error
	// SyncState returns the state stored under the key. ErrNotFound if absent.
	SyncState(ctx context.Context, deviceID int64, collection, syncKey string) (SyncState, error)
	// LatestSyncState returns the newest state of one collection of a
	// device (the last one PutSyncState stored). ErrNotFound if none.
	LatestSyncState(ctx context.Context, deviceID int64, collection string) (SyncState, error)
	// UserSetting returns a per-user setting (e.g. "oof"), stored as an
	// opaque value. ErrNotFound if never set.
	UserSetting(ctx context.Context, userID int64, key string) ([]byte, error)
	// PutUserSetting stores a per-user setting, replacing any previous
	// value. ErrNotFound if the user does not exist.
	PutUserSetting(ctx context.Context, userID int64, key string, value []byte) error

	// DeleteSyncStates removes every state of one collection of a device,
	// or of every collection when collection is "*".
	DeleteSyncStates(ctx context.Context, deviceID int64, collection string) error

	AdminStore
}

// AuditEntry is one administrative action (wipe, block, remove, password
// change...), kept for review. Entries name users and devices by name, not
// by id, and outlive them: deleting a user keeps its entries.
type AuditEntry struct {
	ID     int64
	Time   time.Time // set by the store when zero; stored UTC, to the microsecond
	Actor  string    // who acted: "cli:<os user>", "server"; required
	Action string    // e.g. "device.wipe", "user.delete", "app-password.add"; required
	User   string    // user name acted on; "" when none
	Device string    // DeviceID acted on; "" when none
	Detail string    // free text; never a secret
}

// AuditFilter selects audit entries.
type AuditFilter struct {
	User  string    // only this user's entries when set
	Since time.Time // only entries at or after Since when set
	Limit int       // at most Limit, newest first; 0 for all
}

// AppPassword is a revocable password for one user, optionally bound to one
// device, so that a lost phone's credential can be withdrawn without
// changing the account password. Only a digest of it is stored.
type AppPassword struct {
	ID       int64
	UserID   int64
	Label    string
	DeviceID string // when set, the password is accepted only from this DeviceId
	// Hash is the digest eas.HashAppPassword makes ("$sha256$..."), never
	// the password. App passwords are generated with at least 120 bits of
	// entropy, so a fast digest is as safe as a slow hash would be (no
	// dictionary to try) and a login compares it with all of a user's app
	// passwords at the cost of one SHA-256.
	Hash     string
	Created  time.Time // set by the store
	LastUsed time.Time // zero when never used
}

// AdminStore holds the audit log and app passwords.
type AdminStore interface {
	// AddAudit appends an entry and returns it with ID and Time set (Time
	// is kept when given). An empty Actor or Action is an error.
	AddAudit(ctx context.Context, e AuditEntry) (AuditEntry, error)
	// Audit returns entries matching f, newest first (by Time, then ID).
	Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)

	// AddAppPassword stores p (UserID, Label, DeviceID, Hash) and returns it
	// with ID and Created set. ErrNotFound if the user does not exist; an
	// empty Hash is an error. IDs are never reused.
	AddAppPassword(ctx context.Context, p AppPassword) (AppPassword, error)
	// AppPasswords lists a user's app passwords ordered by ID; none (and
	// no error) for an unknown user. Deleting the user deletes them.
	AppPasswords(ctx context.Context, userID int64) ([]AppPassword, error)
	// DeleteAppPassword revokes one app password of a user. ErrNotFound if
	// absent, or if it belongs to another user.
	DeleteAppPassword(ctx context.Context, userID, id int64) error
	// TouchAppPassword records a successful use at time at (LastUsed).
	// ErrNotFound if absent (revoked meanwhile).
	TouchAppPassword(ctx context.Context, id int64, at time.Time) error
}
