// Package imapbridge is easd's mail backend over IMAP: it talks to the
// user's existing IMAP server (the upstream) on the user's behalf.
//
// This file holds authentication by pass-through: a user's password is
// checked with an IMAP LOGIN at the upstream, and is never stored in clear
// (see CachedAuthenticator for the short-lived cache of verified logins).
// User name forms (DOMAIN\user, user@domain) are the HTTP layer's business;
// this package sends the user name it is given as is.
package imapbridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// ErrBadCredentials is returned (wrapped) when the upstream IMAP server
// rejected the user name or password: the HTTP layer answers 401. Test it
// with errors.Is.
var ErrBadCredentials = errors.New("imapbridge: bad user name or password")

// ErrUnavailable is returned (wrapped) when the credentials could not be
// checked: the upstream is unreachable, too slow for the context, talks
// nonsense, fails the TLS handshake or certificate check, refuses to take
// a password on this connection, or reports a temporary failure of its own.
// The HTTP layer answers 503. Test it with errors.Is; a context's error is
// wrapped too, so errors.Is(err, context.DeadlineExceeded) works.
var ErrUnavailable = errors.New("imapbridge: upstream IMAP server unavailable")

// TLSMode says how the connection to the upstream is protected.
type TLSMode string

// The TLS modes of Config.TLS.
const (
	// TLSNone is plain TCP: the password crosses the network in clear.
	// Use it only for an upstream on loopback or a trusted link.
	TLSNone TLSMode = "none"
	// TLSStartTLS is plain TCP upgraded with STARTTLS (usually port 143).
	// The password is sent only after the upgrade succeeded.
	TLSStartTLS TLSMode = "starttls"
	// TLSImplicit is TLS from the first byte (IMAPS, usually port 993).
	TLSImplicit TLSMode = "tls"
)

// Default timeouts of Config.
const (
	DefaultDialTimeout = 10 * time.Second
	DefaultTimeout     = 30 * time.Second
)

// Config says how to reach the upstream IMAP server.
type Config struct {
	// Addr is the upstream's host:port.
	Addr string
	// TLS is TLSNone, TLSStartTLS or TLSImplicit.
	TLS TLSMode
	// ServerName is the name the upstream's certificate must be valid
	// for; empty means the host of Addr.
	ServerName string
	// RootCAs verifies the upstream's certificate; nil means the
	// system's roots.
	RootCAs *x509.CertPool
	// InsecureSkipVerify accepts any certificate, e.g. a self-signed one.
	// DANGER: then anyone who can intercept the connection can pose as
	// the upstream and collect every user's password. Prefer RootCAs
	// with the upstream's own certificate or CA.
	InsecureSkipVerify bool
	// DialTimeout bounds connecting, including the TLS handshake of
	// TLSImplicit; 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// Timeout bounds a whole verification (connect, greeting, STARTTLS,
	// LOGIN, LOGOUT) on top of the caller's context; 0 means
	// DefaultTimeout.
	Timeout time.Duration
}

// Authenticator verifies a user's password.
type Authenticator interface {
	// Verify returns nil if password is user's password, an error
	// wrapping ErrBadCredentials if it is not (or the user is unknown),
	// and an error wrapping ErrUnavailable if that could not be
	// determined.
	Verify(ctx context.Context, user, password string) error
}

// IMAPAuthenticator is an Authenticator that logs in to the upstream IMAP
// server with the user's credentials, and logs out at once. It keeps no
// state between calls and is safe for concurrent use. It never logs; its
// errors name the user and the upstream but never hold the password.
type IMAPAuthenticator struct {
	cfg Config
}

var _ Authenticator = (*IMAPAuthenticator)(nil)

// NewIMAPAuthenticator checks cfg and returns an IMAPAuthenticator for it.
// It does not connect.
func NewIMAPAuthenticator(cfg Config) (*IMAPAuthenticator, error) {
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("imapbridge: upstream address %q: want host:port", cfg.Addr)
	}
	switch cfg.TLS {
	case TLSNone, TLSStartTLS, TLSImplicit:
	default:
		return nil, fmt.Errorf("imapbridge: upstream TLS mode %q: want %q, %q or %q", cfg.TLS, TLSNone, TLSStartTLS, TLSImplicit)
	}
	if cfg.DialTimeout < 0 || cfg.Timeout < 0 {
		return nil, errors.New("imapbridge: negative upstream timeout")
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	return &IMAPAuthenticator{cfg: cfg}, nil
}

// Verify logs in to the upstream as user with password, then logs out.
// It honours ctx's deadline and cancellation on every step. An empty user
// name or password, or one holding a NUL byte (which IMAP cannot carry),
// is rejected with ErrBadCredentials without connecting.
func (a *IMAPAuthenticator) Verify(ctx context.Context, user, password string) error {
	if user == "" || password == "" || strings.ContainsRune(user, 0) || strings.ContainsRune(password, 0) {
		return fmt.Errorf("%w: empty or unsendable user name or password", ErrBadCredentials)
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()

	conn, err := a.dial(ctx)
	if err != nil {
		return a.unavailable(ctx, "connecting", err)
	}
	// Bound every read and write by ctx: its deadline, and its
	// cancellation, which closes the connection under imapclient.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	// DebugWriter stays nil: it would see the password.
	opts := &imapclient.Options{TLSConfig: a.tlsConfig()}
	var c *imapclient.Client
	if a.cfg.TLS == TLSStartTLS {
		// NewStartTLS waits for the greeting, upgrades, and refuses
		// PREAUTH; it closes conn on failure.
		if c, err = imapclient.NewStartTLS(conn, opts); err != nil {
			return a.unavailable(ctx, "STARTTLS", err)
		}
	} else {
		c = imapclient.New(conn, opts)
	}
	defer c.Close()
	if err := c.WaitGreeting(); err != nil {
		return a.unavailable(ctx, "greeting", err)
	}
	if c.State() != imap.ConnStateNotAuthenticated {
		// PREAUTH: the server logged us in without a password, so it
		// cannot tell whether the password is right.
		return a.unavailable(ctx, "greeting", errors.New("server sent PREAUTH; it cannot verify passwords"))
	}
	if c.Caps().Has(imap.CapLoginDisabled) {
		// Never send a password the server announced it will refuse,
		// typically over a connection without TLS.
		return a.unavailable(ctx, "capabilities", errors.New("server announces LOGINDISABLED (use TLS mode starttls or tls)"))
	}

	err = c.Login(user, password).Wait()
	_ = c.Logout().Wait() // best effort, bounded by ctx
	if err == nil {
		return nil
	}
	var ierr *imap.Error
	if errors.As(err, &ierr) && ierr.Type == imap.StatusResponseTypeNo && !temporaryFailure(ierr.Code) {
		return fmt.Errorf("%w: user %q at %s: %v", ErrBadCredentials, user, a.cfg.Addr, ierr)
	}
	return a.unavailable(ctx, "LOGIN", err)
}

// temporaryFailure reports whether a NO answer to LOGIN with code means
// the server could not check the password, rather than that it is wrong.
func temporaryFailure(code imap.ResponseCode) bool {
	switch code {
	case imap.ResponseCodeUnavailable, imap.ResponseCodeServerBug, imap.ResponseCodePrivacyRequired,
		imap.ResponseCodeLimit, imap.ResponseCodeInUse:
		return true
	}
	return false
}

// dial connects to the upstream, with the TLS handshake for TLSImplicit.
func (a *IMAPAuthenticator) dial(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.DialTimeout)
	defer cancel()
	d := &net.Dialer{}
	if a.cfg.TLS != TLSImplicit {
		return d.DialContext(ctx, "tcp", a.cfg.Addr)
	}
	cfg := a.tlsConfig()
	cfg.NextProtos = []string{"imap"}
	return (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, "tcp", a.cfg.Addr)
}

func (a *IMAPAuthenticator) tlsConfig() *tls.Config {
	return &tls.Config{
		ServerName:         a.cfg.ServerName,
		RootCAs:            a.cfg.RootCAs,
		InsecureSkipVerify: a.cfg.InsecureSkipVerify,
		MinVersion:         tls.VersionTLS12,
	}
}

// unavailable wraps err, from step, in ErrUnavailable. When ctx has ended,
// err is usually just "use of closed connection" or a timeout, so ctx's
// error is wrapped as well.
func (a *IMAPAuthenticator) unavailable(ctx context.Context, step string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %s: %s: %w (%v)", ErrUnavailable, a.cfg.Addr, step, cerr, err)
	}
	return fmt.Errorf("%w: %s: %s: %w", ErrUnavailable, a.cfg.Addr, step, err)
}
