package imapbridge

// This file holds Submitter, the eas.Submitter over SMTP submission
// (RFC 6409): mail a phone sends goes out through the user's own
// submission server, authenticated as the user, as any mail client's would.

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/easd/easd/eas"
)

// DefaultSubmitTimeout is the default of SubmitterOptions.Timeout.
const DefaultSubmitTimeout = 5 * time.Minute

// SMTPConfig says how to reach the submission server.
type SMTPConfig struct {
	// Addr is the submission server's host:port (usually port 587 with
	// TLSStartTLS, or 465 with TLSImplicit).
	Addr string
	// TLS is TLSNone, TLSStartTLS or TLSImplicit, as in Config. With
	// TLSStartTLS the password is sent only after the upgrade.
	TLS TLSMode
	// InsecureSkipVerify accepts any certificate. DANGER: then anyone who
	// can intercept the connection can collect every user's password.
	InsecureSkipVerify bool
	// MasterUser and MasterPassword, when MasterUser is set, authenticate
	// every submission with a service account instead of the account's own
	// credentials, as BackendOptions does: the SASL PLAIN authentication
	// identity is the user's name, MasterSeparator and MasterUser
	// ("alice*easd"), which a submission server authenticating against
	// Dovecot (Postfix's smtpd_sasl_type = dovecot) accepts as the user.
	MasterUser, MasterPassword string
	// MasterSeparator joins user and master user; "*" when empty.
	MasterSeparator string
}

// Validate reports whether the configuration is usable.
func (c SMTPConfig) Validate() error {
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("imapbridge: submission address %q: want host:port", c.Addr)
	}
	switch c.TLS {
	case TLSNone, TLSStartTLS, TLSImplicit:
	default:
		return fmt.Errorf("imapbridge: submission TLS mode %q: want %q, %q or %q", c.TLS, TLSNone, TLSStartTLS, TLSImplicit)
	}
	if c.MasterUser != "" && c.MasterPassword == "" {
		return errors.New("imapbridge: submission master user without a password")
	}
	return nil
}

// SubmitterOptions configures a Submitter.
type SubmitterOptions struct {
	// Logger receives debug records of failed submissions; nil discards
	// them. Records name users and recipients, never passwords.
	Logger *slog.Logger
	// LocalName is the name sent in EHLO; "localhost" when empty.
	LocalName string
	// Timeout bounds one whole submission (connect, TLS, AUTH, the
	// transaction, QUIT) on top of the caller's context; 0 means
	// DefaultSubmitTimeout.
	Timeout time.Duration
}

// Submitter is the eas.Submitter over SMTP submission. Every Submit opens
// one connection and closes it: submissions are rare next to mailbox
// reads, and a connection per message keeps no password around. It is
// safe for concurrent use.
//
// Errors wrap eas.ErrBadCredentials (and ErrBadCredentials) when the
// server refuses the authentication (535), eas.ErrRecipientRefused when it
// refuses a recipient at RCPT with a permanent (5xx) reply,
// eas.ErrMessageTooLarge and eas.ErrMessageRefused for other permanent
// refusals of the message, and ErrUnavailable otherwise: the server could
// not be reached, failed, or answered with a temporary (4xx) reply, or ctx
// ended. The *smtp.SMTPError of a reply is wrapped too.
type Submitter struct {
	cfg     SMTPConfig
	cfgErr  error
	log     *slog.Logger
	local   string
	timeout time.Duration
}

var _ eas.Submitter = (*Submitter)(nil)

// NewSubmitter returns a Submitter for cfg. It does not connect; an
// invalid cfg makes every Submit fail with the error of cfg.Validate,
// wrapping ErrUnavailable.
func NewSubmitter(cfg SMTPConfig, opts SubmitterOptions) *Submitter {
	s := &Submitter{cfg: cfg, log: opts.Logger, local: cmp.Or(opts.LocalName, "localhost"), timeout: opts.Timeout}
	if err := cfg.Validate(); err != nil {
		s.cfgErr = fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if s.cfg.MasterUser != "" {
		s.cfg.MasterSeparator = cmp.Or(s.cfg.MasterSeparator, "*")
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.timeout <= 0 {
		s.timeout = DefaultSubmitTimeout
	}
	return s
}

// Submit sends the message read from r from the envelope sender from to
// the recipients to: EHLO, STARTTLS (TLSStartTLS), AUTH PLAIN as a (or as
// the service account for a), MAIL FROM, one RCPT TO per recipient, DATA
// streaming r, QUIT.
//
// Recipients are all or nothing: if the server refuses any of them, the
// transaction is aborted (RSET) and nothing is sent, and the error wraps
// eas.ErrRecipientRefused and names every refused recipient with the
// server's reply. A phone's Outbox knows no partial success: sending to
// the others and reporting a failure would invite a retry that sends them
// the message twice.
//
// ctx bounds the whole submission: when it ends, the connection is closed.
func (s *Submitter) Submit(ctx context.Context, a eas.MailAccount, from string, to []string, r io.Reader) error {
	if s.cfgErr != nil {
		return s.cfgErr
	}
	if len(to) == 0 {
		return fmt.Errorf("%w: no recipients", eas.ErrRecipientRefused)
	}
	login, password := a.Login, a.Password
	if s.cfg.MasterUser != "" {
		login, password = a.User.Name+s.cfg.MasterSeparator+s.cfg.MasterUser, s.cfg.MasterPassword
	}
	if login == "" || password == "" || strings.ContainsRune(login, 0) || strings.ContainsRune(password, 0) {
		return fmt.Errorf("%w: %w: empty or unsendable user name or password", eas.ErrBadCredentials, ErrBadCredentials)
	}
	err := s.submit(ctx, login, password, from, to, r)
	if err != nil {
		s.log.Debug("smtp submission failed", "user", a.Login, "from", from, "rcpts", len(to), "err", err)
	}
	return err
}

func (s *Submitter) submit(ctx context.Context, login, password, from string, to []string, r io.Reader) (err error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	step := "connecting"
	// Every error leaves through here: a context that ended explains a
	// closed connection better than the connection's own error.
	defer func() {
		if err == nil {
			return
		}
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w: %s: %s: %w (%v)", ErrUnavailable, s.cfg.Addr, step, cerr, err)
		}
	}()
	conn, err := s.dial(ctx)
	if err != nil {
		return fmt.Errorf("%w: %s: %s: %w", ErrUnavailable, s.cfg.Addr, step, err)
	}
	// go-smtp sets its own per-command deadlines on conn, so ctx is
	// honoured by closing the connection when it ends.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var c *smtp.Client
	if s.cfg.TLS == TLSStartTLS {
		// NewClientStartTLS greets, says EHLO, upgrades (failing if the
		// server does not offer STARTTLS); the EHLO below is the one
		// after the upgrade.
		step = "STARTTLS"
		if c, err = smtp.NewClientStartTLS(conn, s.tlsConfig()); err != nil {
			conn.Close()
			return s.replyError(step, err)
		}
	} else {
		c = smtp.NewClient(conn)
	}
	defer c.Close()
	c.CommandTimeout, c.SubmissionTimeout = s.timeout, s.timeout
	step = "EHLO"
	if err := c.Hello(s.local); err != nil {
		// Before MAIL FROM a refusal says nothing of the message: the
		// server or its configuration is at fault, and a retry may pass.
		return fmt.Errorf("%w: %s: %s: %w", ErrUnavailable, s.cfg.Addr, step, err)
	}
	step = "AUTH"
	if !c.SupportsAuth(sasl.Plain) {
		return fmt.Errorf("%w: %s: server does not offer AUTH PLAIN on this connection", ErrUnavailable, s.cfg.Addr)
	}
	if err := c.Auth(sasl.NewPlainClient("", login, password)); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code == 535 {
			return fmt.Errorf("%w: %w: user %q at %s: %v", eas.ErrBadCredentials, ErrBadCredentials, login, s.cfg.Addr, se)
		}
		return fmt.Errorf("%w: %s: %s: %w", ErrUnavailable, s.cfg.Addr, step, err)
	}
	step = "MAIL FROM"
	if err := c.Mail(from, nil); err != nil {
		return s.replyError(step, err)
	}
	step = "RCPT TO"
	var refused []string
	for _, rcpt := range to {
		err := c.Rcpt(rcpt, nil)
		var se *smtp.SMTPError
		switch {
		case err == nil:
		case errors.As(err, &se) && !se.Temporary():
			refused = append(refused, fmt.Sprintf("<%s>: %d %s", rcpt, se.Code, se.Message))
		case !errors.As(err, &se) && !errors.Is(err, io.EOF) && !isNetError(err):
			// The client library refused the address itself (CR, LF):
			// as permanent as a server's refusal.
			refused = append(refused, fmt.Sprintf("<%q>: %v", rcpt, err))
		default:
			return s.replyError(step+" <"+rcpt+">", err)
		}
	}
	if len(refused) > 0 {
		_ = c.Reset() // abort the transaction; the connection is closed anyway
		_ = c.Quit()
		return fmt.Errorf("%w: %s: %s", eas.ErrRecipientRefused, s.cfg.Addr, strings.Join(refused, "; "))
	}
	step = "DATA"
	w, err := c.Data()
	if err != nil {
		return s.replyError(step, err)
	}
	if _, err := io.Copy(w, r); err != nil {
		return fmt.Errorf("%w: %s: %s: %w", ErrUnavailable, s.cfg.Addr, step, err)
	}
	if err := w.Close(); err != nil {
		return s.replyError(step, err)
	}
	step = "QUIT"
	_ = c.Quit() // the message is accepted: a failing QUIT changes nothing
	return nil
}

// isNetError reports a network failure (the connection, not the address).
func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// replyError maps an error of step: a permanent (5xx) reply refuses the
// message; anything else leaves the server unavailable for now.
func (s *Submitter) replyError(step string, err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) && !se.Temporary() && se.Code >= 500 {
		if se.Code == 552 || se.EnhancedCode == (smtp.EnhancedCode{5, 3, 4}) {
			return fmt.Errorf("%w: %s: %s: %w", eas.ErrMessageTooLarge, s.cfg.Addr, step, err)
		}
		return fmt.Errorf("%w: %s: %s: %w", eas.ErrMessageRefused, s.cfg.Addr, step, err)
	}
	return fmt.Errorf("%w: %s: %s: %w", ErrUnavailable, s.cfg.Addr, step, err)
}

// dial connects, with the TLS handshake for TLSImplicit.
func (s *Submitter) dial(ctx context.Context) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, DefaultDialTimeout)
	defer cancel()
	d := &net.Dialer{}
	if s.cfg.TLS != TLSImplicit {
		return d.DialContext(dctx, "tcp", s.cfg.Addr)
	}
	return (&tls.Dialer{NetDialer: d, Config: s.tlsConfig()}).DialContext(dctx, "tcp", s.cfg.Addr)
}

func (s *Submitter) tlsConfig() *tls.Config {
	host, _, _ := net.SplitHostPort(s.cfg.Addr)
	return &tls.Config{ServerName: host, InsecureSkipVerify: s.cfg.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
}
