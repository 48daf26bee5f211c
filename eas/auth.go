package eas

import (
	"context"
	"errors"
	"fmt"
	"strings"

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

// LocalAuth authenticates against users and password hashes in the store.
type LocalAuth struct {
	Users UserStore
}

// Authenticate implements Authenticator.
func (a LocalAuth) Authenticate(ctx context.Context, login, password string) (store.User, error) {
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
