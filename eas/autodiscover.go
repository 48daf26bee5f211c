package eas

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/easd/easd/store"
)

// Autodiscover (MS-ASCMD 2.2.1.1 with the mobilesync schemas of MS-ASCMD
// 6.2-6.4, looked up as MS-OXDSCLI describes) tells a phone where the
// ActiveSync endpoint is, from the user's e-mail address. How a domain
// publishes it (DNS records, certificate) is in docs/autodiscover.md.
//
// Two forms are served:
//   - POX: POST /autodiscover/autodiscover.xml with the mobilesync request
//     schema, Basic authentication required (iOS Mail, Android mail apps).
//   - JSON: GET /autodiscover/autodiscover.json?Email=a@b&Protocol=ActiveSync
//     and /autodiscover/autodiscover.json/v1.0/a@b?Protocol=ActiveSync,
//     unauthenticated like Microsoft's endpoint (Outlook for iOS/Android
//     asks it from Microsoft's cloud service). It only returns the
//     configured URL, the same for every address, so it reveals nothing
//     about users.

// Autodiscover response namespaces (MS-ASCMD 6.2, 6.4); the struct tags
// below spell them out too.
const (
	adResponseNS   = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
	adMobileSyncNS = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
)

// Autodiscover error codes (MS-ASCMD 2.2.3.64, MS-OXDSCLI 2.2.4.1.1.3.1).
const (
	adInvalidRequest = 600 // the XML request was malformed
	adNoProvider     = 601 // no provider for the AcceptableResponseSchema
)

const (
	autodiscoverXMLPath  = "/autodiscover/autodiscover.xml"
	autodiscoverJSONPath = "/autodiscover/autodiscover.json"
	defaultADMaxBody     = 64 << 10
	maxEmailLen          = 320
)

// IsAutodiscoverPath reports whether p (a URL path) is served by
// Autodiscover: /autodiscover/autodiscover.xml, /autodiscover/autodiscover.json
// and /autodiscover/autodiscover.json/v1.0/{address}, in any letter case.
func IsAutodiscoverPath(p string) bool {
	if strings.EqualFold(p, autodiscoverXMLPath) {
		return true
	}
	_, ok := jsonPathEmail(p)
	return ok
}

// jsonPathEmail matches the JSON paths; email is the address of the
// /v1.0/{address} form, "" for the query form.
func jsonPathEmail(p string) (email string, ok bool) {
	n := len(autodiscoverJSONPath)
	if len(p) < n || !strings.EqualFold(p[:n], autodiscoverJSONPath) {
		return "", false
	}
	if len(p) == n {
		return "", true
	}
	const v1 = "/v1.0/"
	rest := p[n:]
	if len(rest) <= len(v1) || !strings.EqualFold(rest[:len(v1)], v1) || strings.Contains(rest[len(v1):], "/") {
		return "", false
	}
	return rest[len(v1):], true
}

// AutodiscoverConfig configures Autodiscover.
type AutodiscoverConfig struct {
	// URL is the external URL phones use: the ActiveSync endpoint
	// (https://mail.example.com/Microsoft-Server-ActiveSync) or the server
	// (https://mail.example.com, or a prefix behind a proxy), to which
	// /Microsoft-Server-ActiveSync is appended. Empty: built from each
	// request's Host as https://<Host>/Microsoft-Server-ActiveSync.
	URL string
	// Domain completes addresses of users whose login has no '@'.
	Domain string
	// Realm is the Basic authentication realm; "easd" when empty.
	Realm string
	// LoggerFrom returns the request-scoped logger; the constructor's
	// logger when nil.
	LoggerFrom func(ctx context.Context, def *slog.Logger) *slog.Logger
	// MaxBodyBytes bounds a POX request (larger gets HTTP 413); 64 KiB
	// when 0.
	MaxBodyBytes int64
	// LoginFailures and LoginWindow set the failed-login lockout of
	// NewAutodiscover (defaults as in Config); Handler.Autodiscover shares
	// the ActiveSync handler's lockout instead.
	LoginFailures int
	LoginWindow   time.Duration
	// TrustedProxies are reverse proxies whose X-Forwarded-Host is taken
	// for the request's host when URL is empty (for a proxy that does not
	// pass Host on); Handler.Autodiscover takes the handler's when nil. The
	// scheme is https whatever X-Forwarded-Proto says: phones need https.
	TrustedProxies []netip.Prefix
}

// Autodiscover serves the Autodiscover paths (see IsAutodiscoverPath); it
// implements http.Handler.
type Autodiscover struct {
	cfg          AutodiscoverConfig
	log          *slog.Logger
	authenticate func(*http.Request) (store.User, error)
	// easURL and xmlURL are fixed when cfg.URL is set, else "" and built
	// per request.
	easURL, xmlURL string
	// cfgErr is cfg.URL's problem; non-nil fails every request.
	cfgErr error
}

// NewAutodiscover returns Autodiscover checking passwords with auth, with
// its own failed-login lockout; log may be nil. A cfg that fails Validate
// is logged, and then every request gets HTTP 500 rather than a wrong URL
// (phones fall back to manual setup): check it with Validate at startup.
func NewAutodiscover(cfg AutodiscoverConfig, auth Authenticator, log *slog.Logger) *Autodiscover {
	c := Config{Realm: cfg.Realm, LoginFailures: cfg.LoginFailures, LoginWindow: cfg.LoginWindow}
	c.defaults()
	// A handler without commands: only its authenticate (Basic parsing,
	// normalizeLogin, lockout, error mapping) is used.
	h := &Handler{cfg: c, deps: Deps{Auth: auth}, throttle: newThrottle(c.LoginFailures, c.LoginWindow, time.Now), checks: newChecks()}
	cfg.Realm = c.Realm
	return newAutodiscover(cfg, h.authenticate, log)
}

// Autodiscover returns Autodiscover sharing h's authenticator and
// failed-login lockout, so that it is no way around the lockout of the
// ActiveSync endpoint. Empty Realm, Domain and LoggerFrom in cfg take h's;
// an invalid cfg is handled as by NewAutodiscover.
func (h *Handler) Autodiscover(cfg AutodiscoverConfig) *Autodiscover {
	if cfg.Realm == "" {
		cfg.Realm = h.cfg.Realm
	}
	if cfg.Domain == "" {
		cfg.Domain = h.cfg.Domain
	}
	if cfg.LoggerFrom == nil {
		cfg.LoggerFrom = h.deps.LoggerFrom
	}
	if cfg.TrustedProxies == nil {
		cfg.TrustedProxies = h.cfg.TrustedProxies
	}
	return newAutodiscover(cfg, h.authenticate, h.deps.Logger)
}

// Validate reports whether URL is empty or an absolute http(s) URL without
// user info, query or fragment.
func (c AutodiscoverConfig) Validate() error {
	_, _, err := baseURLs(c.URL)
	return err
}

// baseURLs turns AutodiscoverConfig.URL into the ActiveSync and POX URLs;
// both "" for an empty URL.
func baseURLs(s string) (eas, pox string, err error) {
	if s == "" {
		return "", "", nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("eas: autodiscover URL %q: want an absolute https URL without query, e.g. https://mail.example.com", s)
	}
	prefix := strings.TrimRight(u.Path, "/")
	if len(prefix) >= len(Path) && strings.EqualFold(prefix[len(prefix)-len(Path):], Path) {
		prefix = prefix[:len(prefix)-len(Path)]
	}
	base := u.Scheme + "://" + u.Host + prefix
	return base + Path, base + autodiscoverXMLPath, nil
}

func newAutodiscover(cfg AutodiscoverConfig, authenticate func(*http.Request) (store.User, error), log *slog.Logger) *Autodiscover {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.LoggerFrom == nil {
		cfg.LoggerFrom = func(_ context.Context, def *slog.Logger) *slog.Logger { return def }
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = defaultADMaxBody
	}
	if cfg.Realm == "" {
		cfg.Realm = "easd"
	}
	a := &Autodiscover{cfg: cfg, log: log, authenticate: authenticate}
	a.easURL, a.xmlURL, a.cfgErr = baseURLs(cfg.URL)
	switch {
	case a.cfgErr != nil:
		log.Error("autodiscover disabled: every request gets HTTP 500", "err", a.cfgErr)
	case strings.HasPrefix(a.easURL, "http:"):
		log.Warn("autodiscover URL is plain http; phones expect https", "url", cfg.URL)
	}
	return a
}

// urls returns the ActiveSync and POX Autodiscover URLs for r.
func (a *Autodiscover) urls(r *http.Request) (eas, pox string, err error) {
	if a.easURL != "" {
		return a.easURL, a.xmlURL, nil
	}
	host := a.requestHost(r)
	if !validHost(host) {
		return "", "", fmt.Errorf("request Host %q is not a host name", host)
	}
	base := "https://" + strings.ToLower(host)
	return base + Path, base + autodiscoverXMLPath, nil
}

// requestHost is the host the phone asked for: r.Host, or the first
// X-Forwarded-Host when the request comes straight from a trusted proxy.
func (a *Autodiscover) requestHost(r *http.Request) string {
	if len(a.cfg.TrustedProxies) == 0 {
		return r.Host
	}
	peer := r.RemoteAddr
	if ap, err := netip.ParseAddrPort(peer); err == nil {
		peer = ap.Addr().Unmap().String()
	}
	if !inPrefixes(peer, a.cfg.TrustedProxies) {
		return r.Host
	}
	first, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Host"), ",")
	if first = strings.TrimSpace(first); first != "" {
		return first
	}
	return r.Host
}

// validHost accepts host[:port] made of letters, digits, '.', '-', and an
// IPv6 literal in brackets: nothing that could break out of a URL.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, c := range h {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '-', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}

// ServeHTTP implements http.Handler.
func (a *Autodiscover) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := a.cfg.LoggerFrom(r.Context(), a.log)
	w.Header().Set("Cache-Control", "private")
	if a.cfgErr != nil {
		log.Error("autodiscover misconfigured", "err", a.cfgErr)
		http.Error(w, "autodiscover is misconfigured", http.StatusInternalServerError)
		return
	}
	if strings.EqualFold(r.URL.Path, autodiscoverXMLPath) {
		a.servePOX(w, r, log)
		return
	}
	if email, ok := jsonPathEmail(r.URL.Path); ok {
		a.serveJSON(w, r, email, log)
		return
	}
	http.NotFound(w, r)
}

// adRequest is the mobilesync request (MS-ASCMD 6.3), matched by local
// names so that any namespace parses; the schema asked for decides.
type adRequest struct {
	XMLName xml.Name
	Request struct {
		EMailAddress             string `xml:"EMailAddress"`
		AcceptableResponseSchema string `xml:"AcceptableResponseSchema"`
	} `xml:"Request"`
}

// servePOX answers the POX form. Without valid credentials: 401. A GET
// with credentials (a browser or a probe) gets the Exchange answer, error
// 600 Invalid Request with HTTP 200. A malformed request also gets 600
// (MS-ASCMD 4.2.3), another schema than mobilesync (desktop Outlook's
// outlook/responseschema/2006a) 601 (2.2.3.64); a missing
// AcceptableResponseSchema is taken as mobilesync. Any address gets the
// same URL, echoed back; DisplayName is sent only when the address is the
// authenticated user's, and the directory is never consulted, so the
// answer does not tell whether another address exists.
func (a *Autodiscover) servePOX(w http.ResponseWriter, r *http.Request, log *slog.Logger) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	user, err := a.authenticate(r)
	if err != nil {
		a.authError(w, r, err, log)
		return
	}
	log = log.With("user", user.Name)
	if user.Disabled {
		log.Info("autodiscover: user is disabled")
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	easURL, _, err := a.urls(r)
	if err != nil {
		log.Info("autodiscover: no URL to give", "err", err)
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if r.Method == http.MethodGet {
		log.Debug("autodiscover: GET probe")
		a.writeXMLError(w, r, adInvalidRequest, "Invalid Request")
		return
	}
	if r.ContentLength > a.cfg.MaxBodyBytes {
		http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		log.Info("autodiscover: reading request", "err", err)
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var req adRequest
	err = xml.Unmarshal(raw, &req)
	email := strings.TrimSpace(req.Request.EMailAddress)
	schema := strings.TrimSpace(req.Request.AcceptableResponseSchema)
	switch {
	case err != nil || req.XMLName.Local != "Autodiscover" || email == "" || len(email) > maxEmailLen:
		log.Info("autodiscover: invalid request", "err", err, "root", req.XMLName.Local)
		a.writeXMLError(w, r, adInvalidRequest, "Invalid Request")
		return
	case schema != "" && schema != adMobileSyncNS:
		log.Info("autodiscover: response schema not served", "schema", schema)
		a.writeXMLError(w, r, adNoProvider, "The requested schema is not available")
		return
	}
	resp := adMobileSyncResponse{Culture: "en:us"}
	resp.User.EMailAddress = email
	if strings.EqualFold(email, primaryAddress(user.Name, a.cfg.Domain)) || strings.EqualFold(email, user.Name) {
		resp.User.DisplayName = user.Name
	}
	resp.Action.Settings.Server = []adServer{{Type: "MobileSync", URL: easURL, Name: easURL}}
	log.Info("autodiscover", "address", email, "url", easURL)
	writeXML(w, http.StatusOK, adDocument{Response: resp}, log)
}

// authError answers a failed authentication: 401 with a Basic challenge,
// 503 with Retry-After when the backend is down or the login locked out.
func (a *Autodiscover) authError(w http.ResponseWriter, r *http.Request, err error, log *slog.Logger) {
	e := asError(err)
	code := e.HTTP
	if code == 0 {
		code = httpFor(e.Status)
	}
	lv := slog.LevelInfo
	if code >= 500 {
		lv = slog.LevelWarn
	}
	log.Log(r.Context(), lv, "autodiscover: authentication failed", "http", code, "err", e.Err)
	switch code {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Basic realm="`+a.cfg.Realm+`"`)
	case http.StatusServiceUnavailable:
		// The lockout's own remaining time when there is one.
		retry := 30
		if e.RetryAfter > 0 {
			retry = e.RetryAfter
		}
		w.Header().Set("Retry-After", strconv.Itoa(retry))
	}
	http.Error(w, http.StatusText(code), code)
}

// adDocument is the success response (MS-ASCMD 6.4 with 6.2, example
// 4.2.4): Autodiscover in the generic namespace around a mobilesync
// Response.
type adDocument struct {
	XMLName  xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
	Response adMobileSyncResponse
}

type adMobileSyncResponse struct {
	XMLName xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006 Response"`
	Culture string   `xml:"Culture"`
	User    struct {
		DisplayName  string `xml:"DisplayName,omitempty"`
		EMailAddress string `xml:"EMailAddress"`
	} `xml:"User"`
	Action struct {
		Settings struct {
			Server []adServer `xml:"Server"`
		} `xml:"Settings"`
	} `xml:"Action"`
}

type adServer struct {
	Type string `xml:"Type"`
	URL  string `xml:"Url"`
	Name string `xml:"Name"`
}

// adErrorDocument is the error response for codes 600 and 601 (MS-ASCMD
// 6.4, 2.2.3.63-64): Autodiscover > Response > Error in the generic
// namespace, as Exchange sends it.
type adErrorDocument struct {
	XMLName  xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
	Response struct {
		Error struct {
			Time      string `xml:"Time,attr"`
			ID        string `xml:"Id,attr"`
			ErrorCode int    `xml:"ErrorCode"`
			Message   string `xml:"Message"`
			DebugData string `xml:"DebugData"`
		} `xml:"Error"`
	} `xml:"Response"`
}

// writeXMLError sends an Autodiscover error with HTTP 200, as Exchange
// does; Id is a hash of the serving host name (MS-OXDSCLI 2.2.4.1.1.3).
func (a *Autodiscover) writeXMLError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	var doc adErrorDocument
	e := &doc.Response.Error
	e.Time = time.Now().UTC().Format("15:04:05.0000000")
	host := a.requestHost(r)
	if u, err := url.Parse(a.easURL); err == nil && u.Host != "" {
		host = u.Host
	}
	e.ID = strconv.FormatUint(uint64(crc32.ChecksumIEEE([]byte(strings.ToLower(host)))), 10)
	e.ErrorCode, e.Message = code, msg
	writeXML(w, http.StatusOK, doc, a.cfg.LoggerFrom(r.Context(), a.log))
}

func writeXML(w http.ResponseWriter, code int, doc any, log *slog.Logger) {
	b, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		log.Error("autodiscover: encoding response", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	b = append(append([]byte(xml.Header), b...), '\n')
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	w.Write(b)
}

// Protocols of the JSON form.
const (
	adProtocolActiveSync = "ActiveSync"
	adProtocolV1         = "AutodiscoverV1"
)

// serveJSON answers the JSON form: Protocol ActiveSync gets the ActiveSync
// URL, AutodiscoverV1 the POX URL (as Microsoft's endpoint does), anything
// else HTTP 400 with an InvalidProtocol error; a missing or malformed
// address HTTP 400 with InvalidUser. No authentication, no lookup.
func (a *Autodiscover) serveJSON(w http.ResponseWriter, r *http.Request, email string, log *slog.Logger) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	if email == "" {
		email = queryValue(q, "Email")
	}
	proto := queryValue(q, "Protocol")
	if at := strings.IndexByte(email, '@'); at <= 0 || at == len(email)-1 || len(email) > maxEmailLen {
		writeJSON(w, http.StatusBadRequest, jsonError{"InvalidUser", "The given e-mail address is invalid."}, log)
		return
	}
	easURL, xmlURL, err := a.urls(r)
	if err != nil {
		log.Info("autodiscover: no URL to give", "err", err)
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var out jsonAnswer
	switch {
	case strings.EqualFold(proto, adProtocolActiveSync):
		out = jsonAnswer{adProtocolActiveSync, easURL}
	case strings.EqualFold(proto, adProtocolV1):
		out = jsonAnswer{adProtocolV1, xmlURL}
	default:
		writeJSON(w, http.StatusBadRequest, jsonError{"InvalidProtocol",
			fmt.Sprintf("The given protocol value '%s' is invalid. Supported values are '%s,%s'.", truncate(proto, 64), adProtocolActiveSync, adProtocolV1)}, log)
		return
	}
	log.Info("autodiscover json", "protocol", out.Protocol, "url", out.URL)
	writeJSON(w, http.StatusOK, out, log)
}

// queryValue returns the first value of the query parameter name, matched
// case-insensitively.
func queryValue(q url.Values, name string) string {
	if v := q.Get(name); v != "" {
		return v
	}
	for k, v := range q {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

type jsonAnswer struct {
	Protocol string `json:"Protocol"`
	URL      string `json:"Url"`
}

type jsonError struct {
	ErrorCode    string `json:"ErrorCode"`
	ErrorMessage string `json:"ErrorMessage"`
}

func writeJSON(w http.ResponseWriter, code int, v any, log *slog.Logger) {
	b, err := json.Marshal(v)
	if err != nil {
		log.Error("autodiscover: encoding response", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	w.Write(b)
}
