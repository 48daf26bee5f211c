package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/internal/config"
	"github.com/easd/easd/wbxml"
	"golang.org/x/term"
)

const probeSynopsis = `easd probe [flags] URL USER

Check step by step that a server works for a phone: DNS, Autodiscover, TLS,
OPTIONS, login, Provision, FolderSync and a Sync of the Inbox. One line per
step: PASS, WARN (works, but look at it), FAIL (with a hint) or SKIP.

URL is the server (https://mail.example.com), its full ActiveSync URL, or
just a domain or e-mail address, in which case Autodiscover finds the server
as a phone would. USER is the login typed on the phone.

The password comes from EASD_PROBE_PASSWORD, else a prompt on a terminal,
else the first line of standard input; never from the command line.
The probe shows up as a device of USER (type EasdProbe) and syncs nothing
but the first window of the Inbox; 'easd device remove' forgets it.
Exit status 1 when a step failed; warnings and skipped steps do not count.`

// prober runs the steps of one probe and prints a line for each.
type prober struct {
	out      io.Writer
	timeout  time.Duration
	insecure bool
	roots    *x509.CertPool // nil: system roots
	hc       *http.Client
	user     string
	password string
	ccfg     client.Config // client template; URL set once known

	host     string   // host to resolve
	endpoint *url.URL // ActiveSync URL once known
	caps     client.Capabilities
	c        *client.Client
	inboxID  string

	blocked string // why later steps are skipped
	steps   int
	failed  []string
}

// stepResult is one step's outcome.
type stepResult struct {
	status string // PASS, WARN, FAIL or SKIP
	msg    string
}

func stepPass(format string, a ...any) stepResult {
	return stepResult{"PASS", fmt.Sprintf(format, a...)}
}
func stepWarn(format string, a ...any) stepResult {
	return stepResult{"WARN", fmt.Sprintf(format, a...)}
}
func stepFail(format string, a ...any) stepResult {
	return stepResult{"FAIL", fmt.Sprintf(format, a...)}
}
func stepSkip(format string, a ...any) stepResult {
	return stepResult{"SKIP", fmt.Sprintf(format, a...)}
}

func runProbe(ctx context.Context, e *env, args []string) error {
	fs := config.NewFlagSet("easd probe", probeSynopsis, e.getenv, e.stderr)
	insecure := fs.Bool("insecure", "EASD_PROBE_INSECURE", false, "accept a certificate that does not verify (still reported), as the phones' \"accept all certificates\" setting")
	caFile := fs.String("ca-file", "EASD_PROBE_CA_FILE", "", "PEM file of extra CA certificates to trust (a private CA)")
	deviceID := fs.String("device-id", "EASD_PROBE_DEVICE_ID", "", "DeviceId to use; default easdprobe plus a hash of USER and the host, stable across runs")
	version := fs.String("version", "EASD_PROBE_VERSION", "", "protocol version to use, e.g. 14.0; default the highest both sides support")
	timeout := fs.Duration("timeout", "EASD_PROBE_TIMEOUT", 30*time.Second, "time limit of each step")
	autodiscover := fs.Bool("autodiscover", "EASD_PROBE_AUTODISCOVER", false, "find the server with Autodiscover even though URL names it")
	emailFlag := fs.String("email", "EASD_PROBE_EMAIL", "", "e-mail address for Autodiscover; default USER when it is one, else USER@domain of URL")
	b64 := fs.Bool("base64-query", "EASD_PROBE_BASE64_QUERY", false, "send the base64-encoded query (as Windows Phone and Outlook did)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// Flags may also follow URL and USER.
	var pos []string
	for rest := fs.Args(); len(rest) > 0; rest = fs.Args() {
		pos = append(pos, rest[0])
		if err := parseFlags(fs, rest[1:]); err != nil {
			return err
		}
	}
	if len(pos) != 2 {
		return usageError("want URL and USER, got %d arguments", len(pos))
	}
	if *version != "" && !slices.Contains(client.SupportedVersions(), *version) {
		return usageError("--version %q: want one of %s", *version, strings.Join(client.SupportedVersions(), ", "))
	}
	if *timeout <= 0 {
		return usageError("--timeout must be positive")
	}
	target, user := strings.TrimSpace(pos[0]), strings.TrimSpace(pos[1])
	if target == "" || user == "" {
		return usageError("URL and USER must not be empty")
	}
	p := &prober{out: e.stdout, timeout: *timeout, insecure: *insecure, user: user}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return usageError("--ca-file: %v", err)
		}
		if p.roots, err = x509.SystemCertPool(); err != nil || p.roots == nil {
			p.roots = x509.NewCertPool()
		}
		if !p.roots.AppendCertsFromPEM(pem) {
			return usageError("--ca-file %s holds no PEM certificate", *caFile)
		}
	}
	pw, err := probePassword(e, user)
	if err != nil {
		return err
	}
	p.password = pw

	// What was given: an e-mail address, a bare domain, or a URL.
	var email, fallback string
	implicitAD := false
	switch {
	case !strings.Contains(target, "://") && strings.Contains(target, "@"):
		email, implicitAD = target, true
		_, p.host, _ = strings.Cut(target, "@")
		fallback = p.host
	case !strings.Contains(target, "://") && !strings.Contains(target, "/"):
		p.host, implicitAD, fallback = target, true, target
	default:
		u, err := client.EndpointURL(target)
		if err != nil {
			return usageError("%v", err)
		}
		p.endpoint, p.host = u, u.Hostname()
	}
	if implicitAD && strings.Contains(p.host, ":") {
		p.host, _, _ = net.SplitHostPort(p.host)
	}
	if *emailFlag != "" {
		email = *emailFlag
	}
	if email == "" {
		email = user
		if !strings.Contains(user, "@") {
			email = user + "@" + strings.TrimPrefix(p.host, "mail.")
		}
	}
	if *deviceID == "" {
		sum := sha256.Sum256([]byte(strings.ToLower(user) + "\x00" + strings.ToLower(p.host)))
		*deviceID = "easdprobe" + hex.EncodeToString(sum[:6])
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: p.roots, InsecureSkipVerify: *insecure}
	defer tr.CloseIdleConnections()
	// ActiveSync is never redirected by HTTP: show a redirect as it is.
	p.hc = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	p.ccfg = client.Config{User: user, Password: pw, DeviceID: *deviceID, DeviceType: "EasdProbe",
		UserAgent: probeUserAgent(), Version: *version, HTTPClient: p.hc, Base64Query: *b64}

	ctx, stop := e.signals(ctx)
	defer stop()
	p.run(ctx, "dns", p.dns)
	p.run(ctx, "autodiscover", func(ctx context.Context) stepResult {
		return p.autodiscover(ctx, email, fallback, implicitAD, *autodiscover)
	})
	p.run(ctx, "tls", p.tls)
	p.run(ctx, "options", p.options)
	p.run(ctx, "auth", p.auth)
	p.run(ctx, "provision", p.provision)
	p.run(ctx, "foldersync", p.folderSync)
	p.run(ctx, "sync", p.sync)
	if len(p.failed) > 0 {
		return fmt.Errorf("%d of %d steps failed: %s", len(p.failed), p.steps, strings.Join(p.failed, ", "))
	}
	return nil
}

// probeUserAgent is easd-probe/ and the version's first word.
func probeUserAgent() string {
	v, _, _ := strings.Cut(versionString(), " ")
	return "easd-probe/" + v
}

// probePassword reads the password: environment, terminal prompt, or the
// first line of standard input.
func probePassword(e *env, user string) (string, error) {
	if pw := e.getenv("EASD_PROBE_PASSWORD"); pw != "" {
		return pw, nil
	}
	if f, ok := e.stdin.(*os.File); ok && e.isTerminal(f) {
		fmt.Fprintf(e.stderr, "Password for %s: ", user)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", fmt.Errorf("reading password: %w", err)
		}
		if len(b) == 0 {
			return "", errors.New("empty password")
		}
		return string(b), nil
	}
	line, err := bufio.NewReaderSize(io.LimitReader(e.stdin, 4096), 4096).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading password from stdin: %w", err)
	}
	if line = strings.TrimRight(line, "\r\n"); line == "" {
		return "", errors.New("no password: set EASD_PROBE_PASSWORD or give it on the first line of standard input")
	}
	return line, nil
}

// run times one step, prints its line, and skips it after a failure.
func (p *prober) run(ctx context.Context, name string, step func(context.Context) stepResult) {
	p.steps++
	if p.blocked != "" {
		p.print("SKIP", name, "", p.blocked)
		return
	}
	sctx, cancel := context.WithTimeout(ctx, p.timeout)
	start := time.Now()
	r := step(sctx)
	d := time.Since(start)
	cancel()
	dur := ""
	if r.status != "SKIP" {
		dur = probeDuration(d)
	}
	p.print(r.status, name, dur, r.msg)
	if r.status == "FAIL" {
		p.failed = append(p.failed, name)
		p.blocked = "after the failure of " + name
	}
}

func (p *prober) print(status, name, dur, msg string) {
	if dur == "" {
		dur = "-"
	}
	fmt.Fprintf(p.out, "%-4s  %-12s %6s  %s\n", status, name, dur, msg)
}

func probeDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < 10*time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	}
	return d.Round(time.Second).String()
}

func (p *prober) dns(ctx context.Context) stepResult {
	if ip := net.ParseIP(p.host); ip != nil {
		return stepPass("%s is an IP address: nothing to resolve", p.host)
	}
	addrs, err := net.DefaultResolver.LookupHost(ctx, p.host)
	if err != nil {
		var de *net.DNSError
		switch {
		case errors.As(err, &de) && de.IsNotFound:
			return stepFail("%s: no such host (check the spelling and the DNS A/AAAA record)", p.host)
		case errors.As(err, &de) && de.IsTimeout, ctx.Err() != nil:
			return stepFail("%s: the DNS server did not answer within %s", p.host, p.timeout)
		}
		return stepFail("%s: %v", p.host, err)
	}
	if len(addrs) > 4 {
		addrs = append(addrs[:4], "…")
	}
	return stepPass("%s → %s", p.host, strings.Join(addrs, ", "))
}

func (p *prober) autodiscover(ctx context.Context, email, fallback string, implicit, asked bool) stepResult {
	if !implicit && !asked {
		return stepSkip("not asked (use --autodiscover, or give a domain or e-mail address as URL)")
	}
	var cands []string
	if p.endpoint != nil {
		cands = []string{p.endpoint.Scheme + "://" + p.endpoint.Host}
	}
	found, err := client.Autodiscover(ctx, p.hc, email, p.password, cands...)
	if err == nil {
		u, perr := client.EndpointURL(found)
		if perr != nil {
			return stepFail("for %s: the answer %q is not a usable URL: %v", email, found, perr)
		}
		p.endpoint = u
		p.host = u.Hostname()
		return stepPass("%s → %s", email, u)
	}
	hint := "phones then ask for the server by hand; serve /autodiscover/autodiscover.xml on https://DOMAIN or https://autodiscover.DOMAIN"
	if !implicit {
		return stepFail("%v (%s)", probeTrim(err), hint)
	}
	u, perr := client.EndpointURL(fallback)
	if perr != nil {
		return stepFail("%v", probeTrim(err))
	}
	p.endpoint = u
	return stepWarn("%v (%s); trying %s", probeTrim(err), hint, u)
}

func (p *prober) tls(ctx context.Context) stepResult {
	if p.endpoint.Scheme == "http" {
		return stepWarn("plain HTTP: phones want HTTPS (iOS refuses plain HTTP unless SSL is switched off); fine only behind a TLS proxy")
	}
	host, port := p.endpoint.Hostname(), p.endpoint.Port()
	if port == "" {
		port = "443"
	}
	d := tls.Dialer{Config: &tls.Config{ServerName: host, InsecureSkipVerify: true}}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return stepFail("%s", probeNetHint(err, net.JoinHostPort(host, port), p.timeout))
	}
	cs := conn.(*tls.Conn).ConnectionState()
	conn.Close()
	leaf := cs.PeerCertificates[0]
	opts := x509.VerifyOptions{DNSName: host, Roots: p.roots, Intermediates: x509.NewCertPool()}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, verr := leaf.Verify(opts)
	name := leaf.Subject.CommonName
	if name == "" && len(leaf.DNSNames) > 0 {
		name = leaf.DNSNames[0]
	}
	days := int(time.Until(leaf.NotAfter).Hours() / 24)
	desc := fmt.Sprintf("certificate CN=%s issued by %s valid until %s (%d days), %s", name, probeIssuer(leaf),
		leaf.NotAfter.UTC().Format("2006-01-02"), days, tls.VersionName(cs.Version))
	switch {
	case time.Now().After(leaf.NotAfter):
		desc = fmt.Sprintf("certificate CN=%s expired on %s: phones refuse it; renew it", name, leaf.NotAfter.UTC().Format("2006-01-02"))
		if p.insecure {
			return stepWarn("%s (continuing because of --insecure)", desc)
		}
		return stepFail("%s", desc)
	case verr != nil:
		if p.insecure {
			return stepWarn("%s; NOT trusted: %v (continuing because of --insecure)", desc, verr)
		}
		return stepFail("%s; not trusted: %v (phones refuse it: use a certificate from a public CA such as Let's Encrypt, with the full chain; --insecure continues anyway)", desc, verr)
	case days < 14:
		return stepWarn("%s: renew it soon", desc)
	}
	return stepPass("%s", desc)
}

func probeIssuer(c *x509.Certificate) string {
	if c.Issuer.CommonName != "" {
		return c.Issuer.CommonName
	}
	if len(c.Issuer.Organization) > 0 {
		return c.Issuer.Organization[0]
	}
	return "?"
}

// options sends the authenticated OPTIONS phones start with. A 401 still
// shows the endpoint exists; the auth step reports it.
func (p *prober) options(ctx context.Context) stepResult {
	c, err := p.newClient(p.ccfg.Version)
	if err != nil {
		return stepFail("%v", err)
	}
	p.c = c
	p.caps, err = c.Options(ctx)
	var he *client.HTTPError
	switch {
	case err == nil:
	case errors.As(err, &he) && (he.Status == http.StatusUnauthorized || he.Status == http.StatusForbidden):
		return stepPass("ActiveSync endpoint %s answers (HTTP %d for these credentials)", p.endpoint, he.Status)
	case errors.As(err, &he):
		return stepFail("%s", probeHTTPHint(he, p.endpoint.String()))
	default:
		return stepFail("%s", probeNetHint(err, p.endpoint.Host, p.timeout))
	}
	if len(p.caps.Versions) == 0 {
		return stepFail("no MS-ASProtocolVersions header: %s does not look like an ActiveSync server (a proxy or web page answered?)", p.endpoint)
	}
	v := p.ccfg.Version
	note := ""
	if v == "" {
		if v = client.HighestCommon(p.caps.Versions, client.SupportedVersions()); v == "" {
			return stepFail("server offers versions %s; phones speak %s", strings.Join(p.caps.Versions, ","), strings.Join(client.SupportedVersions(), ","))
		}
	} else if !slices.Contains(p.caps.Versions, v) {
		note = fmt.Sprintf("; version %s is not advertised", v)
	}
	if p.c, err = p.newClient(v); err != nil {
		return stepFail("%v", err)
	}
	msg := fmt.Sprintf("server %s, versions %s (using %s), commands %s", probeOrDash(p.caps.Server), strings.Join(p.caps.Versions, ","),
		v, strings.Join(p.caps.Commands, ","))
	if note != "" {
		return stepWarn("%s%s", msg, note)
	}
	return stepPass("%s", msg)
}

func probeOrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (p *prober) newClient(version string) (*client.Client, error) {
	cfg := p.ccfg
	cfg.URL, cfg.Version = p.endpoint.String(), version
	return client.New(cfg)
}

func (p *prober) auth(ctx context.Context) stepResult {
	if len(p.caps.Versions) > 0 {
		return stepPass("user %s accepted", p.user)
	}
	// OPTIONS was refused: ask again to report why.
	_, err := p.c.Options(ctx)
	if err == nil {
		return stepPass("user %s accepted on the second try", p.user)
	}
	var he *client.HTTPError
	if errors.As(err, &he) {
		return stepFail("%s", probeHTTPHint(he, p.endpoint.String()))
	}
	return stepFail("%s", probeNetHint(err, p.endpoint.Host, p.timeout))
}

func (p *prober) provision(ctx context.Context) stepResult {
	if !p.caps.Supports("Provision") {
		return stepSkip("not advertised by the server (phones then sync without a policy)")
	}
	key, doc, err := p.c.Provision(ctx)
	var se *client.StatusError
	switch {
	case errors.As(err, &se) && se.Element == "Policy" && se.Status == 2:
		return stepPass("the server has no policy for this device (policy status 2)")
	case err != nil:
		return stepFail("%s", p.easHint(err))
	}
	return stepPass("policy key %d acknowledged; policy: %s", key, probePolicySummary(doc))
}

// probePolicySummary names what an EASProvisionDoc demands of the phone.
func probePolicySummary(doc *wbxml.Node) string {
	if doc == nil {
		return "none sent"
	}
	var parts []string
	if doc.ChildText(wbxml.ProvisionDevicePasswordEnabled) == "1" {
		s := "device password required"
		if n := doc.ChildText(wbxml.ProvisionMinDevicePasswordLength); n != "" {
			s += " (at least " + n + " characters)"
		}
		parts = append(parts, s)
	} else {
		parts = append(parts, "no device password")
	}
	if doc.ChildText(wbxml.ProvisionRequireDeviceEncryption) == "1" {
		parts = append(parts, "encryption required")
	}
	if n := doc.ChildText(wbxml.ProvisionMaxInactivityTimeDeviceLock); n != "" {
		parts = append(parts, "lock after "+n+"s idle")
	}
	if n := doc.ChildText(wbxml.ProvisionMaxDevicePasswordFailedAttempts); n != "" {
		parts = append(parts, "wipe after "+n+" failed unlocks")
	}
	if doc.ChildText(wbxml.ProvisionAttachmentsEnabled) == "0" {
		parts = append(parts, "attachments blocked")
	}
	return strings.Join(parts, ", ")
}

// probeDefaultFolders are the folder types phones expect exactly once.
func probeDefaultFolders() []probeFolder {
	return []probeFolder{
		{client.FolderInbox, "Inbox"}, {client.FolderDrafts, "Drafts"}, {client.FolderDeleted, "Deleted Items"},
		{client.FolderSent, "Sent Items"}, {client.FolderOutbox, "Outbox"}, {client.FolderTasks, "Tasks"},
		{client.FolderCalendar, "Calendar"}, {client.FolderContacts, "Contacts"},
	}
}

type probeFolder struct {
	typ  int
	name string
}

func (p *prober) folderSync(ctx context.Context) stepResult {
	if !p.caps.Supports("FolderSync") {
		return stepSkip("not advertised by the server")
	}
	fc, err := p.c.FolderSync(ctx, "0")
	if err != nil {
		return stepFail("%s", p.easHint(err))
	}
	if fc.SyncKey == "" || fc.SyncKey == "0" {
		return stepFail("the answer carries no new SyncKey (got %q): phones would loop", fc.SyncKey)
	}
	count := map[int]int{}
	for _, f := range fc.Added {
		count[f.Type]++
		if f.Type == client.FolderInbox && p.inboxID == "" {
			p.inboxID = f.ServerID
		}
	}
	var missing, doubled []string
	for _, d := range probeDefaultFolders() {
		switch n := count[d.typ]; {
		case n == 0:
			missing = append(missing, fmt.Sprintf("%s (type %d)", d.name, d.typ))
		case n > 1:
			doubled = append(doubled, fmt.Sprintf("%s (type %d) ×%d", d.name, d.typ, n))
		}
	}
	msg := fmt.Sprintf("%d folders, Inbox has id %s", len(fc.Added), p.inboxID)
	switch {
	case p.inboxID == "" && count[client.FolderContacts]+count[client.FolderCalendar] > 0:
		// A server without mail (no IMAP upstream) serves contacts and
		// calendars only: phones sync them, and show no mail.
		return stepWarn("%d folders, no Inbox: the server serves no mail (calendar and contacts only)", len(fc.Added))
	case p.inboxID == "":
		return stepFail("%d folders but no Inbox (type 2): phones need one", len(fc.Added))
	case len(doubled) > 0:
		return stepWarn("%s; more than one %s: phones expect exactly one each", msg, strings.Join(doubled, ", "))
	case len(missing) > 0:
		return stepWarn("%s; missing %s", msg, strings.Join(missing, ", "))
	}
	return stepPass("%s", msg)
}

// sync fetches the first window of the Inbox: key 0, then one window of
// at most 5 items with short plain-text bodies.
func (p *prober) sync(ctx context.Context) stepResult {
	switch {
	case !p.caps.Supports("Sync"):
		return stepSkip("not advertised by the server")
	case p.inboxID == "":
		return stepSkip("needs the Inbox from FolderSync")
	}
	req := func(key string) *wbxml.Node {
		col := wbxml.E(wbxml.AirSyncCollection, wbxml.T(wbxml.AirSyncSyncKey, key), wbxml.T(wbxml.AirSyncCollectionId, p.inboxID))
		if key != "0" {
			col.Append(wbxml.T(wbxml.AirSyncWindowSize, "5"), wbxml.E(wbxml.AirSyncOptions,
				wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, "1"), wbxml.T(wbxml.AirSyncBaseTruncationSize, "256"))))
		}
		return wbxml.E(wbxml.AirSyncSync, wbxml.E(wbxml.AirSyncCollections, col))
	}
	key := "0"
	var col *wbxml.Node
	for round := 0; round < 2; round++ {
		resp, err := p.c.Do(ctx, "Sync", req(key))
		if err != nil {
			return stepFail("%s", p.easHint(err))
		}
		if resp.Body == nil {
			if round == 0 {
				return stepFail("empty answer to SyncKey 0: the server must return a new key")
			}
			return stepPass("Inbox is empty or in sync (empty answer)")
		}
		col = resp.Body.Path(wbxml.AirSyncCollections, wbxml.AirSyncCollection)
		if st := col.ChildText(wbxml.AirSyncStatus); st != "1" {
			return stepFail("Sync with key %s: collection status %q%s", key, st, probeSyncHint(st))
		}
		next := col.ChildText(wbxml.AirSyncSyncKey)
		if next == "" || next == key {
			return stepFail("Sync with key %s returned key %q: phones would loop", key, next)
		}
		key = next
	}
	n := 0
	for range col.Child(wbxml.AirSyncCommands).Each(wbxml.AirSyncAdd) {
		n++
	}
	more := ""
	if col.Child(wbxml.AirSyncMoreAvailable) != nil {
		more = ", more available"
	}
	return stepPass("Inbox: %d items in the first window%s", n, more)
}

func probeSyncHint(st string) string {
	switch st {
	case "3":
		return " (invalid sync key right after the server issued it: sync state is lost)"
	case "12":
		return " (folder hierarchy changed: the Inbox id from FolderSync is not known)"
	case "5", "16":
		return " (server error: see the server log)"
	}
	return ""
}

// easHint explains a command's error.
func (p *prober) easHint(err error) string {
	var he *client.HTTPError
	var se *client.StatusError
	switch {
	case errors.Is(err, client.ErrWiped):
		return "the server ordered a remote wipe of the probe's device " + p.ccfg.DeviceID +
			" (acknowledged; nothing was wiped): 'easd device remove' forgets the device"
	case errors.As(err, &he):
		return probeHTTPHint(he, p.endpoint.String())
	case errors.As(err, &se):
		msg := strings.TrimPrefix(se.Error(), "client: ")
		switch se.Status {
		case 126:
			return msg + ": the user is disabled ('easd user enable')"
		case 129:
			return msg + ": device " + p.ccfg.DeviceID + " is blocked or quarantined ('easd device allow USER " + p.ccfg.DeviceID + "')"
		case 177:
			return msg + ": the user has too many devices ('easd device remove' an old one)"
		case 110, 111:
			return msg + ": see the server log"
		case 142, 143, 144:
			return msg + ": the server still wants provisioning after Provision succeeded"
		case 137:
			return msg + ": advertised but not implemented"
		}
		return msg
	}
	return probeNetHint(err, p.endpoint.Host, p.timeout)
}

// probeHTTPHint explains an HTTP status.
func probeHTTPHint(he *client.HTTPError, endpoint string) string {
	msg := fmt.Sprintf("HTTP %d", he.Status)
	switch he.Status {
	case http.StatusUnauthorized:
		msg += ": wrong user name or password (check the login form: user, user@domain or DOMAIN\\user)"
		if wa := he.Header.Get("WWW-Authenticate"); wa != "" && !strings.Contains(strings.ToLower(wa), "basic") {
			msg += fmt.Sprintf("; the server offers %q but phones use Basic", wa)
		}
	case http.StatusForbidden:
		msg += ": the user may not use ActiveSync, or the device is blocked or quarantined ('easd device list USER')"
	case http.StatusNotFound:
		msg += ": no ActiveSync endpoint at " + endpoint + " (check the path /Microsoft-Server-ActiveSync and the reverse proxy)"
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		msg += fmt.Sprintf(": redirected to %s; phones do not follow redirects here, use that URL", he.Header.Get("Location"))
	case http.StatusBadRequest:
		msg += ": the server rejected the request (protocol version? it offers " + probeOrDash(he.Header.Get("MS-ASProtocolVersions")) + ")"
	case 449:
		msg += ": the server still wants provisioning after Provision succeeded"
	case 451:
		msg += ": the server redirects the account to " + he.Header.Get("X-MS-Location")
	case http.StatusNotImplemented:
		msg += ": command not implemented by the server"
	case http.StatusServiceUnavailable:
		msg += ": busy, or logins locked out after repeated failures, or the login backend is down"
		if ra := he.Header.Get("Retry-After"); ra != "" {
			msg += "; retry after " + ra + "s"
		}
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		msg += ": the reverse proxy cannot reach the server"
	default:
		if he.Status >= 500 {
			msg += ": server error, see the server log"
		}
	}
	return msg
}

// probeNetHint explains a connection error.
func probeNetHint(err error, addr string, timeout time.Duration) string {
	var de *net.DNSError
	var rh tls.RecordHeaderError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var op *net.OpError
	short := probeTrim(err)
	if errors.As(err, &op) {
		short = op.Error()
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return short + " (nothing listens on " + addr + ": server not running? firewall or port forwarding?)"
	case errors.As(err, &de):
		return short + " (DNS lookup failed)"
	case errors.Is(err, context.DeadlineExceeded) || probeIsTimeout(err):
		return fmt.Sprintf("%s (no answer within %s: a firewall dropping packets, or a hung server)", short, timeout)
	case errors.As(err, &rh):
		return short + " (the server does not speak TLS on this port: plain HTTP? then use http://)"
	case errors.As(err, &ua), errors.As(err, &hn), errors.As(err, &ci):
		return short + " (certificate not trusted; --insecure continues anyway)"
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
		return short + " (the connection was closed: TLS versions or ciphers not shared? a proxy in the way?)"
	}
	return short
}

func probeIsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func probeTrim(err error) string { return strings.TrimPrefix(err.Error(), "client: ") }
