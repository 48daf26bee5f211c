package eas

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/easd/easd/internal/passwd"
	"github.com/easd/easd/store"
)

// ErrBadCredentials reports a wrong user name or password (HTTP 401).
var ErrBadCredentials = errors.New("eas: bad credentials")

// ErrAuthUnavailable reports that credentials could not be checked, e.g.
// the upstream IMAP server is down (HTTP 503, never 401: the phone must not
// ask the user for a new password because our upstream is unreachable).
var ErrAuthUnavailable = errors.New("eas: authentication backend unavailable")

// Authenticator checks HTTP Basic credentials and returns the user.
// login is already normalised by normalizeLogin.
type Authenticator interface {
	Authenticate(ctx context.Context, login, password string) (store.User, error)
}

// UserStore is the part of the store that authentication needs.
type UserStore interface {
	User(ctx context.Context, name string) (store.User, error)
	CreateUser(ctx context.Context, name, passwordHash string) (store.User, error)
}

// DeviceAuthenticator is an Authenticator that also knows which device a
// request comes from, for credentials bound to one device (app passwords
// made with 'easd user app-password add --device').
//
// deviceID is the DeviceId the request names. It is "" for requests that
// name no device (OPTIONS without a query, Autodiscover): those reach no
// mailbox data and write nothing, and a phone sends them while its account
// is being set up, so a device-bound credential is accepted there. Every
// command (POST) names its device, and there a device-bound credential
// from another device is refused.
type DeviceAuthenticator interface {
	Authenticator
	AuthenticateDevice(ctx context.Context, login, password, deviceID string) (store.User, error)
}

// AppPasswordStore is the part of the store that app passwords need
// (store.AdminStore has it).
type AppPasswordStore interface {
	AppPasswords(ctx context.Context, userID int64) ([]store.AppPassword, error)
	TouchAppPassword(ctx context.Context, id int64, at time.Time) error
}

// LocalAuth authenticates against users and password hashes in the store:
// the account password (argon2id), or any app password of the user
// (store.AppPassword; see NewAppPassword). Nothing is cached: a revoked app
// password or a changed account password fails from the next request on.
type LocalAuth struct {
	Users UserStore
	// AppPasswords finds the users' app passwords; when nil, Users is
	// used if it is an AppPasswordStore (both stores are), else app
	// passwords are not accepted.
	AppPasswords AppPasswordStore
	// Now is the clock for recording app password use; time.Now when nil.
	Now func() time.Time
}

var _ DeviceAuthenticator = LocalAuth{}

// appPasswordTouchEvery is how stale an app password's LastUsed may get
// before a login records the use again: a phone logs in with every
// request, and that costs no store write each time.
const appPasswordTouchEvery = time.Minute

// Authenticate implements Authenticator. A device-bound app password is
// refused: the caller did not say which device asks.
func (a LocalAuth) Authenticate(ctx context.Context, login, password string) (store.User, error) {
	return a.authenticate(ctx, login, password, "", false)
}

// AuthenticateDevice implements DeviceAuthenticator.
func (a LocalAuth) AuthenticateDevice(ctx context.Context, login, password, deviceID string) (store.User, error) {
	return a.authenticate(ctx, login, password, deviceID, true)
}

func (a LocalAuth) authenticate(ctx context.Context, login, password, deviceID string, deviceKnown bool) (store.User, error) {
	u, err := lookupUser(ctx, a.Users, login)
	if errors.Is(err, store.ErrNotFound) {
		// Spend the same time as a real check so that response timing does
		// not reveal which user names exist.
		passwd.Verify(dummyHash, password)
		return store.User{}, ErrBadCredentials
	}
	if err != nil {
		return store.User{}, fmt.Errorf("%w: %v", ErrAuthUnavailable, err)
	}
	// Only a password of the app password form is looked up among them,
	// so an ordinary login costs no extra query.
	if digest, ok := HashAppPassword(password); ok {
		if apps := a.appPasswords(); apps != nil {
			switch ok, err := a.appPassword(ctx, apps, u, digest, deviceID, deviceKnown); {
			case err != nil:
				return store.User{}, err
			case ok:
				return u, nil
			}
		}
	}
	if u.PasswordHash == "" {
		return store.User{}, ErrBadCredentials
	}
	switch err := passwd.Verify(u.PasswordHash, password); {
	case err == nil:
		return u, nil
	case errors.Is(err, passwd.ErrMismatch):
		return store.User{}, ErrBadCredentials
	default:
		return store.User{}, fmt.Errorf("user %s: %w", u.Name, err)
	}
}

func (a LocalAuth) appPasswords() AppPasswordStore {
	if a.AppPasswords != nil {
		return a.AppPasswords
	}
	aps, _ := a.Users.(AppPasswordStore)
	return aps
}

// appPassword reports whether digest is one of u's app passwords usable
// from deviceID, and records the use (at most once per
// appPasswordTouchEvery).
func (a LocalAuth) appPassword(ctx context.Context, apps AppPasswordStore, u store.User, digest, deviceID string, deviceKnown bool) (bool, error) {
	ps, err := apps.AppPasswords(ctx, u.ID)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrAuthUnavailable, err)
	}
	match := -1
	for i, p := range ps {
		// Every digest is compared, in constant time each.
		if subtle.ConstantTimeCompare([]byte(p.Hash), []byte(digest)) == 1 {
			match = i
		}
	}
	if match < 0 {
		return false, nil
	}
	p := ps[match]
	if p.DeviceID != "" && (!deviceKnown || deviceID != "" && deviceID != p.DeviceID) {
		return false, nil
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	if t := now(); t.Sub(p.LastUsed) >= appPasswordTouchEvery {
		// Best effort: failing to note the use must not fail the login
		// (ErrNotFound: revoked since the list was read; this request
		// was already under way).
		_ = apps.TouchAppPassword(ctx, p.ID, t)
	}
	return true, nil
}

// checkPassword runs the handler's Authenticator for request r; a
// DeviceAuthenticator is told the DeviceId the request names.
func (h *Handler) checkPassword(ctx context.Context, r *http.Request, login, password string) (store.User, error) {
	if da, ok := h.deps.Auth.(DeviceAuthenticator); ok {
		return da.AuthenticateDevice(ctx, login, password, requestDeviceID(r))
	}
	return h.deps.Auth.Authenticate(ctx, login, password)
}

// requestDeviceID returns the DeviceId r names: the one parseRequest
// finds for commands (so authentication and the device record agree), else
// a DeviceId parameter of the plain query (OPTIONS may carry one), else "".
func requestDeviceID(r *http.Request) string {
	if req, err := parseRequest(r); err == nil {
		return req.DeviceID
	}
	return foldKeys(r.URL.Query()).Get("deviceid")
}

// dummyHash is verified for unknown users (argon2id of a random string).
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$wXG+dSolqGhoC6cawRLTUA$Esk0rS6CtAgabTbFA2XcSv8gw9YDrFVWmymwhmDFnB4"

// PasswordVerifier checks a password against an upstream service;
// imapbridge's IMAP LOGIN check implements it.
type PasswordVerifier interface {
	// Verify returns nil for a good password, an error wrapping
	// ErrBadCredentials for a wrong one, and any other error when the
	// upstream cannot be asked.
	Verify(ctx context.Context, user, password string) error
}

// PassThroughAuth verifies passwords with the upstream (IMAP LOGIN) and
// keeps only a user record in the store, created on first login; the
// password itself is never stored.
type PassThroughAuth struct {
	Users    UserStore
	Upstream PasswordVerifier
	// IsBadCredentials classifies the upstream's error; errors.Is with
	// ErrBadCredentials when nil.
	IsBadCredentials func(error) bool
}

// Authenticate implements Authenticator.
func (a PassThroughAuth) Authenticate(ctx context.Context, login, password string) (store.User, error) {
	if err := a.Upstream.Verify(ctx, login, password); err != nil {
		bad := errors.Is(err, ErrBadCredentials)
		if a.IsBadCredentials != nil {
			bad = bad || a.IsBadCredentials(err)
		}
		if bad {
			return store.User{}, ErrBadCredentials
		}
		return store.User{}, fmt.Errorf("%w: %v", ErrAuthUnavailable, err)
	}
	u, err := a.Users.User(ctx, login)
	if errors.Is(err, store.ErrNotFound) {
		u, err = a.Users.CreateUser(ctx, login, "")
		if errors.Is(err, store.ErrExists) { // created by a concurrent login
			u, err = a.Users.User(ctx, login)
		}
	}
	if err != nil {
		return store.User{}, fmt.Errorf("%w: %v", ErrAuthUnavailable, err)
	}
	return u, nil
}

// normalizeLogin turns the forms phones send (user, user@domain,
// DOMAIN\user) into the login name: the DOMAIN\ prefix is dropped, the
// rest lower-cased.
func normalizeLogin(s string) string {
	if i := strings.LastIndexByte(s, '\\'); i >= 0 {
		s = s[i+1:]
	}
	return strings.ToLower(strings.TrimSpace(s))
}

// lookupUser finds a local user by login, then by the local part of an
// address login (alice@example.com signs in as alice).
func lookupUser(ctx context.Context, users UserStore, login string) (store.User, error) {
	u, err := users.User(ctx, login)
	if errors.Is(err, store.ErrNotFound) {
		if local, _, ok := strings.Cut(login, "@"); ok && local != "" {
			return users.User(ctx, local)
		}
	}
	return u, err
}
