package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/easd/easd/eas"
	"github.com/easd/easd/imapbridge"
	"github.com/easd/easd/internal/config"
	"github.com/easd/easd/store"
)

// easFlags are serve's protocol settings.
type easFlags struct {
	maxVersion    *string
	externalURL   *string
	domain        *string
	auth          *string
	imapAddr      *string
	imapTLS       *string
	imapInsecure  *bool
	authCacheTTL  *time.Duration
	imapConns     *int
	masterUser    *string
	masterPwFile  *string
	smtpAddr      *string
	smtpTLS       *string
	smtpInsecure  *bool
	maxBody       *int
	maxDevices    *int
	deviceRules   *string
	loginFailures *int
	loginWindow   *time.Duration
	maxConcurrent *int
	maxUserConc   *int
	trusted       *string
	hbMin, hbMax  *time.Duration
	pingFolders   *int
	maxParked     *int
	holdLimits    *string
	watchSweep    *time.Duration

	enforce, pwRequired, alnum, encryption, noAttachments *bool
	minLength, wipeAfter, maxAttachment                   *int
	lockAfter                                             *time.Duration
}

func addEASFlags(fs *config.FlagSet) *easFlags {
	f := &easFlags{}
	f.maxVersion = fs.String("max-version", "EASD_MAX_VERSION", "14.1", "highest ActiveSync version to advertise (implemented: "+strings.Join(eas.DefaultVersions, ", ")+")")
	f.externalURL = fs.String("external-url", "EASD_EXTERNAL_URL", "", "public https URL of the server as phones reach it, e.g. https://mail.example.com (for Autodiscover); empty: taken from each request's Host")
	f.domain = fs.String("domain", "EASD_DOMAIN", "", "mail domain completing addresses of users whose login has no @, e.g. example.com")
	f.auth = fs.String("auth", "EASD_AUTH", "local", "how passwords are checked: local (users added with 'easd user') or imap (an IMAP LOGIN at --imap-addr; nothing stored)")
	f.imapAddr = fs.String("imap-addr", "EASD_IMAP_ADDR", "", "upstream IMAP server host:port")
	f.imapTLS = fs.String("imap-tls", "EASD_IMAP_TLS", "starttls", "upstream IMAP protection: tls (port 993), starttls (port 143) or none (loopback only)")
	f.imapInsecure = fs.Bool("imap-insecure", "EASD_IMAP_INSECURE", false, "accept any upstream certificate (DANGER: lets an interceptor collect passwords)")
	f.imapConns = fs.Int("imap-conns", "EASD_IMAP_CONNS", imapbridge.DefaultPoolMaxPerUser, "most IMAP connections easd opens per user for mail, whatever the number of devices and folders (keep it below the server's per-user limit, Dovecot's is 10)")
	f.masterUser = fs.String("imap-master-user", "EASD_IMAP_MASTER_USER", "", "with --auth local: the IMAP service account (a Dovecot master user) that opens each user's mailbox as USER*MASTER; empty: no mail for local users")
	f.masterPwFile = fs.String("imap-master-password-file", "EASD_IMAP_MASTER_PASSWORD_FILE", "", "file holding the password of --imap-master-user (first line; never on the command line)")
	f.smtpAddr = fs.String("smtp-addr", "EASD_SMTP_ADDR", "", "SMTP submission server host:port for mail sent from phones (SendMail, SmartReply, SmartForward), authenticated as the user (or as --imap-master-user with --auth local); empty: phones cannot send")
	f.smtpTLS = fs.String("smtp-tls", "EASD_SMTP_TLS", "starttls", "submission protection: starttls (port 587), tls (port 465) or none (loopback only)")
	f.smtpInsecure = fs.Bool("smtp-insecure", "EASD_SMTP_INSECURE", false, "accept any submission server certificate, or --smtp-tls none to a host other than loopback (DANGER: lets an interceptor collect passwords)")
	f.authCacheTTL = fs.Duration("auth-cache-ttl", "EASD_AUTH_CACHE_TTL", 5*time.Minute, "with --auth imap: how long a verified login is remembered (as a salted hash); 0 disables")
	f.maxBody = fs.Int("max-body", "EASD_MAX_BODY", 50<<20, "largest request body in bytes (larger gets HTTP 413)")
	f.maxDevices = fs.Int("max-devices", "EASD_MAX_DEVICES", 100, "devices per user (Exchange's EasMaxDevices is 100); 0 no limit (beyond it, status 177)")
	f.deviceRules = fs.String("device-rules", "EASD_DEVICE_RULES", "", "access of new devices, first match wins: ACCESS:TYPE[/MODEL],... with globs, e.g. quarantine:SAMSUNG*,block:*/Nokia*")
	f.loginFailures = fs.Int("login-failures", "EASD_LOGIN_FAILURES", 10, "failed logins per user or client address before a lockout")
	f.maxConcurrent = fs.Int("max-concurrent", "EASD_MAX_CONCURRENT", 500, "ActiveSync commands running at once; beyond it HTTP 503 with Retry-After; 0 no bound")
	f.maxUserConc = fs.Int("max-user-concurrent", "EASD_MAX_USER_CONCURRENT", 10, "ActiveSync commands one user runs at once, all devices together (Exchange's EasMaxConcurrency is 10; parked Ping and Sync do not count); beyond it HTTP 503 with Retry-After; 0 no bound")
	f.trusted = fs.String("trusted-proxies", "EASD_TRUSTED_PROXIES", "", "comma-separated CIDRs of reverse proxies whose X-Forwarded-For names the client (for login throttling and logs)")
	f.hbMin = fs.Duration("heartbeat-min", "EASD_HEARTBEAT_MIN", 60*time.Second, "shortest interval a phone may ask Ping or Sync to be held (shorter: Ping status 5, Sync status 14, with the bound)")
	f.hbMax = fs.Duration("heartbeat-max", "EASD_HEARTBEAT_MAX", 3540*time.Second, "longest interval a phone may ask Ping or Sync to be held")
	f.pingFolders = fs.Int("ping-max-folders", "EASD_PING_MAX_FOLDERS", 300, "most folders one Ping may watch (more: status 6)")
	f.maxParked = fs.Int("max-parked", "EASD_MAX_PARKED", 20000, "most Ping and waiting Sync requests held at once; beyond it HTTP 503 with Retry-After; 0 no bound (each holds a connection: mind the open-file limit)")
	f.holdLimits = fs.String("hold-limits", "EASD_HOLD_LIMITS", "", "cap how long requests of a device type are held, whatever they ask, for carriers and proxies that cut idle connections: TYPE=DURATION,... with * for the rest, e.g. iPhone=25m,*=28m")
	f.watchSweep = fs.Duration("imap-watch-sweep", "EASD_IMAP_WATCH_SWEEP", 30*time.Second, "how often the one IMAP connection watching a user with phones waiting checks folders other than the Inbox (STATUS) and the folder list (LIST); the Inbox is watched with IDLE")
	f.loginWindow = fs.Duration("login-window", "EASD_LOGIN_WINDOW", 15*time.Minute, "window for --login-failures, and the lockout's length")

	f.enforce = fs.Bool("policy-enforce", "EASD_POLICY_ENFORCE", true, "require devices to provision (accept the policy) before syncing; needed for remote wipe")
	f.pwRequired = fs.Bool("policy-password", "EASD_POLICY_PASSWORD", false, "require a device passcode")
	f.minLength = fs.Int("policy-min-length", "EASD_POLICY_MIN_LENGTH", 0, "minimum passcode length; 0 none")
	f.alnum = fs.Bool("policy-alphanumeric", "EASD_POLICY_ALPHANUMERIC", false, "require an alphanumeric passcode, and no simple ones like 1234")
	f.lockAfter = fs.Duration("policy-lock-after", "EASD_POLICY_LOCK_AFTER", 0, "lock the device after this much inactivity; 0 none")
	f.wipeAfter = fs.Int("policy-wipe-after", "EASD_POLICY_WIPE_AFTER", 0, "wipe the device after this many wrong passcodes; 0 never")
	f.encryption = fs.Bool("policy-encryption", "EASD_POLICY_ENCRYPTION", false, "require device encryption")
	f.noAttachments = fs.Bool("policy-no-attachments", "EASD_POLICY_NO_ATTACHMENTS", false, "forbid downloading attachments")
	f.maxAttachment = fs.Int("policy-max-attachment", "EASD_POLICY_MAX_ATTACHMENT", 0, "largest attachment a device may download, bytes; 0 no limit")
	return f
}

// config builds the protocol configuration.
func (f *easFlags) config() (eas.Config, error) {
	var c eas.Config
	i := slices.Index(eas.DefaultVersions, *f.maxVersion)
	if i < 0 {
		return c, usageError("--max-version %q: want one of %s", *f.maxVersion, strings.Join(eas.DefaultVersions, ", "))
	}
	c.Versions = eas.DefaultVersions[:i+1]
	c.Domain = strings.TrimPrefix(strings.ToLower(*f.domain), "@")
	c.MaxBodyBytes = int64(*f.maxBody)
	c.MaxDevicesPerUser = *f.maxDevices
	c.LoginFailures, c.LoginWindow = *f.loginFailures, *f.loginWindow
	c.MaxConcurrent = *f.maxConcurrent
	c.MaxUserConcurrent = *f.maxUserConc
	if c.MaxConcurrent < 0 || c.MaxUserConcurrent < 0 || c.MaxDevicesPerUser < 0 {
		return c, usageError("--max-concurrent, --max-user-concurrent and --max-devices must not be negative")
	}
	if *f.hbMin < time.Second || *f.hbMax < *f.hbMin {
		return c, usageError("--heartbeat-min %v, --heartbeat-max %v: want 1s <= min <= max", *f.hbMin, *f.hbMax)
	}
	c.HeartbeatMin, c.HeartbeatMax = *f.hbMin, *f.hbMax
	c.MaxPingFolders, c.MaxParked = *f.pingFolders, *f.maxParked
	hl, err := parseHoldLimits(*f.holdLimits)
	if err != nil {
		return c, usageError("--hold-limits: %v", err)
	}
	c.HoldLimits = hl
	for p := range strings.SplitSeq(*f.trusted, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			if ip, err2 := netip.ParseAddr(p); err2 == nil {
				pfx = netip.PrefixFrom(ip, ip.BitLen())
			} else {
				return c, usageError("--trusted-proxies: %v", err)
			}
		}
		c.TrustedProxies = append(c.TrustedProxies, pfx.Masked())
	}
	rules, err := parseDeviceRules(*f.deviceRules)
	if err != nil {
		return c, usageError("--device-rules: %v", err)
	}
	c.AccessRules = rules
	c.Policy = eas.Policy{
		Enforce:            *f.enforce,
		PasswordRequired:   *f.pwRequired || *f.minLength > 0 || *f.alnum,
		AlphanumericPIN:    *f.alnum,
		AllowSimplePIN:     !*f.alnum,
		MinPasswordLength:  *f.minLength,
		InactivityLockSecs: int(f.lockAfter.Seconds()),
		WipeAfterFailures:  *f.wipeAfter,
		RequireEncryption:  *f.encryption,
		AttachmentsBlocked: *f.noAttachments,
		MaxAttachmentSize:  *f.maxAttachment,
	}
	return c, nil
}

// parseDeviceRules reads ACCESS:TYPE[/MODEL] items separated by commas.
func parseDeviceRules(s string) ([]eas.AccessRule, error) {
	var rules []eas.AccessRule
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		access, match, ok := strings.Cut(item, ":")
		if !ok {
			return nil, fmt.Errorf("%q: want ACCESS:TYPE[/MODEL]", item)
		}
		var r eas.AccessRule
		switch a := store.DeviceAccess(strings.ToLower(strings.TrimSpace(access))); a {
		case store.DeviceAllowed, store.DeviceBlocked, store.DeviceQuarantined:
			r.Access = a
		case "allow", "block", "quarantine":
			r.Access = map[store.DeviceAccess]store.DeviceAccess{"allow": store.DeviceAllowed, "block": store.DeviceBlocked, "quarantine": store.DeviceQuarantined}[a]
		default:
			return nil, fmt.Errorf("%q: access %q: want allow, block or quarantine", item, access)
		}
		r.DeviceType, r.Model, _ = strings.Cut(strings.TrimSpace(match), "/")
		if r.DeviceType == "*" {
			r.DeviceType = ""
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// authenticator builds the configured password check.
func (f *easFlags) authenticator(st store.Store) (eas.Authenticator, error) {
	switch *f.auth {
	case "local":
		return eas.LocalAuth{Users: st}, nil
	case "imap":
		if *f.imapAddr == "" {
			return nil, usageError("--auth imap needs --imap-addr")
		}
		if imapbridge.TLSMode(*f.imapTLS) == imapbridge.TLSNone && !*f.imapInsecure && !loopback(*f.imapAddr) {
			return nil, usageError("--imap-tls none would send passwords in clear to %s: use starttls or tls, or add --imap-insecure for a trusted private network", *f.imapAddr)
		}
		up, err := imapbridge.NewIMAPAuthenticator(imapbridge.Config{
			Addr: *f.imapAddr, TLS: imapbridge.TLSMode(*f.imapTLS), InsecureSkipVerify: *f.imapInsecure,
		})
		if err != nil {
			return nil, usageError("%v", err)
		}
		var v eas.PasswordVerifier = up
		if *f.authCacheTTL > 0 {
			v = imapbridge.NewCachedAuthenticator(up, imapbridge.CacheOptions{TTL: *f.authCacheTTL})
		}
		return eas.PassThroughAuth{Users: st, Upstream: v, IsBadCredentials: func(err error) bool {
			return errors.Is(err, imapbridge.ErrBadCredentials)
		}}, nil
	}
	return nil, usageError("--auth %q: want local or imap", *f.auth)
}

// mailBackend builds the IMAP mail backend when the upstream is set; it
// uses the phone's own credentials, so it needs --auth imap. The returned
// close function stops the connection pool.
func (f *easFlags) mailBackend(log *slog.Logger) (*imapbridge.Backend, *imapbridge.Pool, error) {
	opts := imapbridge.BackendOptions{Logger: log, WatchSweep: *f.watchSweep}
	switch {
	case *f.imapAddr == "":
		return nil, nil, nil
	case *f.auth == "imap":
	case *f.masterUser != "":
		// Local users: their mailboxes are opened by the service account.
		pw, err := f.masterPassword()
		if err != nil {
			return nil, nil, err
		}
		if imapbridge.TLSMode(*f.imapTLS) == imapbridge.TLSNone && !*f.imapInsecure && !loopback(*f.imapAddr) {
			return nil, nil, usageError("--imap-tls none would send the service account's password in clear to %s: use starttls or tls, or add --imap-insecure for a trusted private network", *f.imapAddr)
		}
		opts.MasterUser, opts.MasterPassword = *f.masterUser, pw
	default:
		return nil, nil, nil
	}
	if *f.imapConns < 1 {
		return nil, nil, usageError("--imap-conns must be at least 1")
	}
	pool := imapbridge.NewPool(imapbridge.Config{
		Addr: *f.imapAddr, TLS: imapbridge.TLSMode(*f.imapTLS), InsecureSkipVerify: *f.imapInsecure,
	}, imapbridge.PoolOptions{MaxPerUser: *f.imapConns, Logger: log})
	return imapbridge.NewBackend(pool, opts), pool, nil
}

// masterPassword reads the first line of --imap-master-password-file.
func (f *easFlags) masterPassword() (string, error) {
	if *f.masterPwFile == "" {
		return "", usageError("--imap-master-user needs --imap-master-password-file")
	}
	b, err := os.ReadFile(*f.masterPwFile)
	if err != nil {
		return "", fmt.Errorf("--imap-master-password-file: %w", err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return "", fmt.Errorf("--imap-master-password-file %s: empty", *f.masterPwFile)
	}
	return pw, nil
}

// submitter builds the SMTP submitter when --smtp-addr is set. It
// authenticates the way mailBackend opens mailboxes: with the phone's own
// credentials under --auth imap, with the IMAP service account under
// --auth local (Dovecot's SASL, which Postfix submission usually uses,
// knows the master user); without either there is no mail, so no sending.
func (f *easFlags) submitter(log *slog.Logger) (eas.Submitter, error) {
	if *f.smtpAddr == "" {
		return nil, nil
	}
	if *f.imapAddr == "" {
		return nil, usageError("--smtp-addr needs --imap-addr: sending is served along with the mailbox")
	}
	cfg := imapbridge.SMTPConfig{Addr: *f.smtpAddr, TLS: imapbridge.TLSMode(*f.smtpTLS), InsecureSkipVerify: *f.smtpInsecure}
	switch {
	case *f.auth == "imap":
	case *f.masterUser != "":
		pw, err := f.masterPassword()
		if err != nil {
			return nil, err
		}
		cfg.MasterUser, cfg.MasterPassword = *f.masterUser, pw
	default:
		return nil, nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, usageError("--smtp-addr/--smtp-tls: %v", err)
	}
	if cfg.TLS == imapbridge.TLSNone && !*f.smtpInsecure && !loopback(*f.smtpAddr) {
		return nil, usageError("--smtp-tls none would send passwords in clear to %s: use starttls or tls, or add --smtp-insecure for a trusted private network", *f.smtpAddr)
	}
	return imapbridge.NewSubmitter(cfg, imapbridge.SubmitterOptions{Logger: log}), nil
}

// loopback reports whether host:port names this machine.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// appHandler routes the public paths: ActiveSync and Autodiscover, matched
// case-insensitively as phones vary.
func appHandler(as http.Handler, autodiscover http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.EqualFold(r.URL.Path, eas.Path):
			as.ServeHTTP(w, r)
		case autodiscover != nil && eas.IsAutodiscoverPath(r.URL.Path):
			autodiscover.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// parseHoldLimits reads TYPE=DURATION,... (device types matched case-
// insensitively, * for any other).
func parseHoldLimits(s string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		typ, dur, ok := strings.Cut(item, "=")
		if !ok || strings.TrimSpace(typ) == "" {
			return nil, fmt.Errorf("%q: want TYPE=DURATION", item)
		}
		d, err := time.ParseDuration(strings.TrimSpace(dur))
		if err != nil || d < time.Second {
			return nil, fmt.Errorf("%q: want a duration of at least 1s", item)
		}
		out[strings.ToLower(strings.TrimSpace(typ))] = d
	}
	return out, nil
}
