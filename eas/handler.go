// Package eas serves Exchange ActiveSync over HTTP: request parsing in both
// query forms (MS-ASHTTP), authentication, devices and their access rules,
// the Provision policy gate, and one file per command. Items and folders
// come from backends through interfaces this package defines; it never
// talks to a database or an IMAP server itself.
package eas

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/internal/spool"
	"github.com/easd/easd/store"
	"github.com/easd/easd/wbxml"
)

// Path is the ActiveSync endpoint; it is matched case-insensitively.
const Path = "/Microsoft-Server-ActiveSync"

// Store is the part of the store the protocol core uses.
type Store interface {
	UserStore
	Device(ctx context.Context, userID int64, deviceID string) (store.Device, error)
	TouchDevice(ctx context.Context, d store.Device) (store.Device, error)
	AddDevice(ctx context.Context, d store.Device, maxPerUser int) (store.Device, error)
	Devices(ctx context.Context, userID int64) ([]store.Device, error)
	UpdateDevice(ctx context.Context, d store.Device) error
	SetDeviceAccess(ctx context.Context, id int64, access store.DeviceAccess) error
	SetDeviceWipe(ctx context.Context, id int64, to store.WipeState, from ...store.WipeState) (bool, error)
	UserSetting(ctx context.Context, userID int64, key string) ([]byte, error)
	PutUserSetting(ctx context.Context, userID int64, key string, value []byte) error
	SyncState(ctx context.Context, deviceID int64, collection, syncKey string) (store.SyncState, error)
	LatestSyncState(ctx context.Context, deviceID int64, collection string) (store.SyncState, error)
	PutSyncState(ctx context.Context, s store.SyncState) error
	DeleteSyncStates(ctx context.Context, deviceID int64, collection string) error
}

// Config holds the protocol settings.
type Config struct {
	// Versions advertised in MS-ASProtocolVersions, ascending. Only fully
	// implemented versions belong here: clients pick the highest.
	Versions []string
	// ServerVersion is sent as MS-Server-ActiveSync.
	ServerVersion string
	// MaxBodyBytes bounds a request body; larger gets HTTP 413.
	MaxBodyBytes int64
	// Realm is the Basic authentication realm.
	Realm string
	// Policy is the device policy sent by Provision.
	Policy Policy
	// AccessRules decide the access state of a device on first contact;
	// the first match wins, no match allows.
	AccessRules []AccessRule
	// MaxDevicesPerUser refuses new devices beyond this count (status 177,
	// HTTP 403); 0 means no limit. The count and the registration are one
	// store transaction (store.Store.AddDevice), so phones of one user
	// making first contact at the same time cannot exceed it.
	MaxDevicesPerUser int
	// Domain completes addresses of users whose login has no '@'.
	Domain string
	// LoginFailures failed logins per user or client address within
	// LoginWindow lock that user or address out for the rest of the window.
	LoginFailures int
	LoginWindow   time.Duration
	// TrustedProxies are reverse proxies whose X-Forwarded-For is believed
	// for the client address (login throttling, logs).
	TrustedProxies []netip.Prefix
	// MaxConcurrent bounds commands running at once; beyond it requests
	// get HTTP 503 with Retry-After (MS-ASHTTP 3.2.5.1) instead of piling
	// up. 0 means no bound. Long polls give up their slot while parked.
	MaxConcurrent int
	// MaxUserConcurrent bounds the commands one user runs at once, all
	// devices together, in the spirit of Exchange's EasMaxConcurrency
	// (Set-ThrottlingPolicy, default 10); beyond it HTTP 503 with
	// Retry-After (MS-ASHTTP 3.2.5.1). Parked long polls hold no slot.
	// 0 means no bound.
	MaxUserConcurrent int
	// HeartbeatMin and HeartbeatMax bound the interval Ping and Sync may
	// ask to be held for (MS-ASCMD 2.2.3.88; Exchange allows 60 s to
	// 3540 s, the defaults). Outside it: Ping status 5, Sync status 14.
	HeartbeatMin, HeartbeatMax time.Duration
	// MaxPingFolders bounds the folders one Ping watches (status 6 past
	// it); 300 by default.
	MaxPingFolders int
	// MaxParked bounds the requests parked at once (Ping, Sync with
	// Wait); past it HTTP 503 with Retry-After. 0 means no bound.
	MaxParked int
	// HoldLimits caps how long requests of a device type (lower case,
	// "*" for any other) are held whatever interval they ask for:
	// carriers and proxies cut idle connections earlier. The answer is
	// then "nothing changed" and the phone asks again.
	HoldLimits map[string]time.Duration
}

// smallBody caps the body of commands that carry no MIME or attachments.
const smallBody = 1 << 20

// bodyTimeout bounds reading a request body, so a client trickling bytes
// cannot hold a command slot forever.
const bodyTimeout = 5 * time.Minute

// DefaultVersions are the protocol versions easd implements.
var DefaultVersions = []string{"12.1", "14.0", "14.1"}

func (c *Config) defaults() {
	if len(c.Versions) == 0 {
		c.Versions = DefaultVersions
	}
	if c.ServerVersion == "" {
		c.ServerVersion = c.Versions[len(c.Versions)-1]
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 50 << 20
	}
	if c.Realm == "" {
		c.Realm = "easd"
	}
	if c.LoginFailures <= 0 {
		c.LoginFailures = 10
	}
	if c.LoginWindow <= 0 {
		c.LoginWindow = 15 * time.Minute
	}
	if c.HeartbeatMin <= 0 {
		c.HeartbeatMin = 60 * time.Second
	}
	if c.HeartbeatMax <= 0 {
		c.HeartbeatMax = 3540 * time.Second
	}
	if c.MaxPingFolders <= 0 {
		c.MaxPingFolders = 300
	}
}

// Deps are the handler's collaborators.
type Deps struct {
	Store  Store
	Auth   Authenticator
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Rand fills policy keys; crypto/rand when nil.
	Rand io.Reader
	// LoggerFrom returns the request-scoped logger; Logger when nil.
	LoggerFrom func(ctx context.Context, def *slog.Logger) *slog.Logger
	// Mail is the mailbox backend; nil serves no mail commands (FolderSync,
	// Sync, GetItemEstimate, ItemOperations, GetAttachment). MoveItems and
	// Search need it to be a MailMover and a MailSearcher too.
	Mail MailBackend
	// Submit sends mail (SendMail, SmartReply, SmartForward); nil serves
	// none of them.
	Submit Submitter
	// Items keeps calendar, contacts, tasks and notes, converted by
	// Codecs (by class: "Calendar", "Contacts", "Tasks", "Notes"); a
	// class without a codec is not served. Nil serves none.
	Items  ItemStore
	Codecs map[string]item.Codec
	// Bus carries change notices to and from other easd instances
	// sharing the store; nil with one instance.
	Bus ChangeBus
	// ObservePush, when set, is told how long a parked request took from
	// the notice that woke it to the decision to answer (a metric).
	ObservePush func(time.Duration)
	// Observe, when set, is told the outcome of every POST: the command
	// (one of the MS-ASHTTP command names, or "other") and "ok",
	// "status_N" or "http_N". Metrics hang off it.
	Observe func(cmd, result string)
}

// command is one ActiveSync command.
type command struct {
	// tag is the top-level element of its WBXML request and response; 0 for
	// commands without one (GetAttachment).
	tag wbxml.Tag
	// noPolicy lets the command run without a current policy key.
	noPolicy bool
	// maxBody caps this command's request body below Config.MaxBodyBytes
	// (only commands carrying MIME need the large limit); 0 for no cap.
	maxBody int64
	run     func(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error)
	// raw, when set instead of run, writes its own response (binary
	// bodies: GetAttachment, multipart ItemOperations); it returns an error
	// only before writing anything.
	raw func(ctx context.Context, s *Session, body *wbxml.Node, w http.ResponseWriter) error
	// rawBody leaves the request body undecoded in Session.Body (12.1
	// SendMail and friends carry RFC 822 MIME, not WBXML, when
	// Content-Type is message/rfc822).
	rawBody bool
}

// Session is one authenticated request on its way through a command.
type Session struct {
	Req    *Request
	User   store.User
	Device store.Device
	Log    *slog.Logger
	// Account reaches the user's mailbox (credentials kept for this
	// request only).
	Account MailAccount
	// Body is the undecoded request body of commands that take MIME
	// (rawBody; bounded by the body limit), else nil. ContentType is the
	// request's Content-Type.
	Body        io.Reader
	ContentType string

	done       []func()                      // run after the response is written
	release    func()                        // gives the command slots back; idempotent
	beforeSend []func(context.Context) error // run once the response is encoded, before it is sent
}

// BeforeSend registers f to run after the response was encoded and before
// it is sent: sync state that the response reports is saved there, so a
// response that fails to build leaves the state as it was. An error from
// f is answered instead of the response.
func (s *Session) BeforeSend(f func(context.Context) error) { s.beforeSend = append(s.beforeSend, f) }

// releaseSlot gives up the command slots (Config.MaxConcurrent and
// Config.MaxUserConcurrent) early: a parked request holds none.
func (s *Session) releaseSlot() {
	if s.release != nil {
		s.release()
	}
}

// OnDone registers f to run once the response has been written (releasing
// spooled bodies the response streams from).
func (s *Session) OnDone(f func()) { s.done = append(s.done, f) }

// Handler serves /Microsoft-Server-ActiveSync.
type Handler struct {
	cfg        Config
	deps       Deps
	commands   map[string]command
	throttle   *throttle
	policyHash string
	busy       chan struct{} // one token per running command; nil when unbounded
	userBusy   *userSlots    // running commands per user; nil when unbounded
	locks      keyLocks      // per (device, collection) sync state
	checks     chan struct{} // one token per password check running
	hub        *hub          // parked requests of this process
	drain      chan struct{} // closed by Drain
	drainOnce  sync.Once
}

// NewHandler returns the ActiveSync handler.
func NewHandler(cfg Config, deps Deps) *Handler {
	cfg.defaults()
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.LoggerFrom == nil {
		deps.LoggerFrom = func(_ context.Context, def *slog.Logger) *slog.Logger { return def }
	}
	h := &Handler{cfg: cfg, deps: deps, throttle: newThrottle(cfg.LoginFailures, cfg.LoginWindow, deps.Now)}
	h.policyHash = cfg.Policy.Hash()
	if cfg.MaxConcurrent > 0 {
		h.busy = make(chan struct{}, cfg.MaxConcurrent)
	}
	if cfg.MaxUserConcurrent > 0 {
		h.userBusy = newUserSlots(cfg.MaxUserConcurrent)
	}
	h.checks = newChecks()
	h.hub = newHub()
	h.drain = make(chan struct{})
	h.commands = map[string]command{
		"Provision": {tag: wbxml.ProvisionProvision, noPolicy: true, maxBody: smallBody, run: h.provision},
		"Settings":  {tag: wbxml.SettingsSettings, maxBody: smallBody, run: h.settings},
	}
	if deps.Mail != nil || (deps.Items != nil && len(deps.Codecs) > 0) {
		h.mailCommands()
	}
	h.galCommands() // ResolveRecipients and Search of the GAL: the store is enough
	return h
}

// Commands lists the served commands, for MS-ASProtocolCommands.
func (h *Handler) Commands() []string {
	var names []string
	for n := range h.commands {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.URL.Path, Path) {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "private")
	w.Header().Set("MS-Server-ActiveSync", h.cfg.ServerVersion)
	switch r.Method {
	case http.MethodOptions:
		h.options(w, r)
	case http.MethodPost:
		h.post(w, r)
	case http.MethodGet:
		// Some clients probe with GET: answer 401 or an empty 200 (MS-ASHTTP
		// defines only OPTIONS and POST).
		if _, err := h.authenticate(r); err != nil {
			h.writeError(w, r, nil, 0, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	default:
		w.Header().Set("Allow", "OPTIONS, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// options answers the capability probe, MS-ASHTTP 2.2.3 / 3.2.5.
func (h *Handler) options(w http.ResponseWriter, r *http.Request) {
	if _, err := h.authenticate(r); err != nil {
		h.writeError(w, r, nil, 0, err)
		return
	}
	hd := w.Header()
	hd.Set("Allow", "OPTIONS,POST")
	hd.Set("Public", "OPTIONS,POST")
	hd.Set("MS-ASProtocolVersions", strings.Join(h.cfg.Versions, ","))
	hd.Set("MS-ASProtocolCommands", strings.Join(h.Commands(), ","))
	w.WriteHeader(http.StatusOK)
}

func (h *Handler) post(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	req, err := parseRequest(r)
	if err != nil {
		h.writeError(w, r, nil, 0, err)
		return
	}
	cmd, known := h.commands[req.Cmd]
	if !slices.Contains(h.cfg.Versions, req.Version) {
		w.Header().Set("MS-ASProtocolVersions", strings.Join(h.cfg.Versions, ","))
		h.writeError(w, r, nil, 0, HTTPError(http.StatusBadRequest, "protocol version %q not supported", req.Version))
		return
	}
	user, err := h.authenticate(r)
	if err != nil {
		h.writeError(w, r, req, 0, err)
		return
	}
	// The command slots are taken after authentication, so that a flood
	// of unauthenticated requests cannot crowd out real users.
	release, err := h.takeSlots(user)
	if err != nil {
		h.writeError(w, r, req, 0, err)
		return
	}
	defer release()
	// client: the phone's address, through trusted proxies (the access
	// log's remote is the proxy's).
	log := h.deps.LoggerFrom(ctx, h.deps.Logger).With("user", user.Name, "device", req.DeviceID, "cmd", req.Cmd,
		"client", clientAddr(r, h.cfg.TrustedProxies))
	if user.Disabled {
		h.writeError(w, r, req, cmd.tag, &Error{Status: StatusUserDisabledForSync, HTTP: http.StatusForbidden, Err: fmt.Errorf("user %s is disabled", user.Name)})
		return
	}
	if !known {
		// A command we do not serve: status 137 when it has a WBXML body we
		// can answer in (14.0+), else HTTP 501 (MS-ASHTTP 3.2.5.1).
		h.writeError(w, r, req, topTag(req.Cmd), &Error{Status: StatusCommandNotSupported, HTTP: http.StatusNotImplemented, Err: fmt.Errorf("command %q not served", req.Cmd)})
		return
	}
	dev, err := h.device(ctx, user, req, r.UserAgent())
	if err != nil {
		h.writeError(w, r, req, cmd.tag, err)
		return
	}
	if !cmd.noPolicy {
		if err := h.checkPolicy(dev, req); err != nil {
			h.writeError(w, r, req, cmd.tag, err)
			return
		}
	}
	limit := h.cfg.MaxBodyBytes
	if cmd.maxBody > 0 && cmd.maxBody < limit {
		limit = cmd.maxBody
	}
	var body *wbxml.Node
	var rawBody io.Reader
	if cmd.rawBody && !strings.Contains(strings.ToLower(r.Header.Get("Content-Type")), "wbxml") {
		if r.ContentLength > limit {
			h.writeError(w, r, req, cmd.tag, HTTPError(http.StatusRequestEntityTooLarge, "body of %d bytes over the %d limit", r.ContentLength, limit))
			return
		}
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyTimeout)) // wall clock: a network deadline
		rawBody = http.MaxBytesReader(w, r.Body, limit)
	} else if body, err = h.readBody(w, r, limit); err != nil {
		h.writeError(w, r, req, cmd.tag, err)
		return
	}
	if body != nil && cmd.tag != 0 && body.Tag != cmd.tag {
		h.writeError(w, r, req, cmd.tag, Errorf(StatusInvalidContent, "top-level element %v, want %v", body.Tag, cmd.tag))
		return
	}
	// A wiped device stays refused, Provision included, until an
	// administrator removes it ('easd device remove'); only a repeated
	// wipe acknowledgement is answered, the same way as the first.
	if dev.Wipe == store.WipeAcknowledged && !isWipeAck(req.Cmd, body) {
		h.writeError(w, r, req, cmd.tag, &Error{Status: StatusDeviceBlocked, HTTP: http.StatusForbidden,
			Err: fmt.Errorf("device %s was wiped", dev.DeviceID)})
		return
	}
	login, pw, _ := r.BasicAuth()
	s := &Session{Req: req, User: user, Device: dev, Log: log,
		Account: MailAccount{User: user, Login: normalizeLogin(login), Password: pw},
		Body:    rawBody, ContentType: r.Header.Get("Content-Type"), release: release}
	defer func() {
		for _, f := range s.done {
			f()
		}
	}()
	if cmd.raw != nil {
		if err := cmd.raw(ctx, s, body, w); err != nil {
			h.writeError(w, r, req, cmd.tag, err)
			return
		}
		h.observe(req, "ok")
		return
	}
	resp, err := cmd.run(ctx, s, body)
	if err != nil {
		h.writeError(w, r, req, cmd.tag, err)
		return
	}
	// The response is encoded in full (generated parts fetch from the
	// backend now) before the state it reports is saved, and saved before
	// a byte is sent: a failure on the way leaves the previous state.
	var sp *spool.Spool
	if resp != nil {
		if sp, err = encodeResponse(resp); err != nil {
			h.writeError(w, r, req, cmd.tag, err)
			return
		}
		defer sp.Close()
	}
	for _, f := range s.beforeSend {
		if err := f(ctx); err != nil {
			h.writeError(w, r, req, cmd.tag, err)
			return
		}
	}
	sendWBXML(w, sp, log)
	h.observe(req, "ok")
}

// observe reports a POST's outcome with bounded label values.
func (h *Handler) observe(req *Request, result string) {
	if h.deps.Observe == nil {
		return
	}
	cmd := "other"
	if req != nil && (topTag(req.Cmd) != 0 || req.Cmd == "GetAttachment") {
		cmd = req.Cmd
	}
	h.deps.Observe(cmd, result)
}

// readBody decodes the WBXML body, or returns nil for an empty one.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, limit int64) (*wbxml.Node, error) {
	if r.ContentLength > limit {
		return nil, HTTPError(http.StatusRequestEntityTooLarge, "body of %d bytes over the %d limit", r.ContentLength, limit)
	}
	if r.ContentLength == 0 {
		return nil, nil
	}
	// Not every ResponseWriter supports deadlines (httptest's recorder);
	// the real server's does.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyTimeout)) // wall clock: a network deadline
	body := http.MaxBytesReader(w, r.Body, limit)
	// About one element per 4 bytes at most: bound the tree by the body,
	// and by maxElements whatever the body (~130 bytes each while
	// decoding). Depth and string length keep wbxml.DefaultLimits (64
	// levels; a string cannot outgrow the body).
	lim := wbxml.Limits{MaxTotal: limit, MaxOpaqueLen: limit, MaxElements: int(min(limit/4+64, maxElements))}
	// Peek one byte: chunked requests have ContentLength -1 and may be empty.
	var first [1]byte
	n, err := io.ReadFull(body, first[:])
	if n == 0 {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil
		}
		return nil, bodyError(err)
	}
	node, err := wbxml.Decode(io.MultiReader(bytes.NewReader(first[:]), body), lim)
	if err != nil {
		return nil, bodyError(err)
	}
	return node, nil
}

// bodyError answers a body that could not be decoded: 413 when it is, or
// declares itself, over the byte limit (an OPAQUE longer than the limit
// is refused before it is read, chunked or not), else status 102
// InvalidWBXML (MS-ASCMD 2.2.2), HTTP 400 before 14.0.
func bodyError(err error) error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return HTTPError(http.StatusRequestEntityTooLarge, "body over the %d byte limit", mb.Limit)
	}
	var le *wbxml.LimitError
	if errors.As(err, &le) && (le.Limit == "MaxTotal" || le.Limit == "MaxOpaqueLen") {
		// readBody sets both to the body limit.
		return &Error{HTTP: http.StatusRequestEntityTooLarge, Err: err}
	}
	// MS-ASCMD 2.2.2: 102 InvalidWBXML.
	return &Error{Status: StatusInvalidWBXML, HTTP: http.StatusBadRequest, Err: err}
}

// writeWBXML encodes and sends resp; nil is an empty 200.
func writeWBXML(w http.ResponseWriter, resp *wbxml.Node, log *slog.Logger) {
	if resp == nil {
		sendWBXML(w, nil, log)
		return
	}
	sp, err := encodeResponse(resp)
	if err != nil {
		log.Error("encoding response", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	defer sp.Close()
	sendWBXML(w, sp, log)
}

// encodeResponse encodes a document into a spool (memory, then a
// temporary file), so that it goes out with a Content-Length and a large
// body costs bounded memory.
func encodeResponse(resp *wbxml.Node) (*spool.Spool, error) {
	sp := spool.New(0)
	if err := wbxml.Encode(sp, resp); err != nil {
		sp.Close()
		return nil, err
	}
	return sp, nil
}

// sendWBXML sends an encoded document; nil is an empty 200 (MS-ASHTTP
// 2.2.2: no body, no Content-Type).
func sendWBXML(w http.ResponseWriter, sp *spool.Spool, log *slog.Logger) {
	if sp == nil {
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.ms-sync.wbxml")
	w.Header().Set("Content-Length", strconv.FormatInt(sp.Len(), 10))
	w.WriteHeader(http.StatusOK)
	if _, err := sp.WriteTo(w); err != nil {
		log.Info("writing response", "err", err)
	}
}

// writeError is the one place errors become responses. For 14.0+ clients a
// status goes in the command's Status element (MS-ASCMD 2.2.2); otherwise
// the HTTP code carries it (MS-ASHTTP 3.2.5.1).
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, req *Request, tag wbxml.Tag, err error) {
	e := asError(err)
	code := e.HTTP
	if code == 0 {
		code = httpFor(e.Status)
	}
	log := h.deps.LoggerFrom(r.Context(), h.deps.Logger)
	lv := slog.LevelInfo
	if code >= 500 && code != http.StatusNotImplemented && code != http.StatusServiceUnavailable {
		lv = slog.LevelError
	}
	log.Log(r.Context(), lv, "eas error", "status", e.Status, "http", code, "err", e.Err)
	if r.Method == http.MethodPost {
		if e.Status != 0 {
			h.observe(req, "status_"+strconv.Itoa(e.Status))
		} else {
			h.observe(req, "http_"+strconv.Itoa(code))
		}
	}
	if req != nil && e.Status != 0 && tag != 0 && versionAtLeast(req.Version, "14.0") && bodyStatusOK(code) {
		writeWBXML(w, wbxml.E(tag, wbxml.T(statusTag(tag), strconv.Itoa(e.Status))), log)
		return
	}
	switch code {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Basic realm="`+h.cfg.Realm+`"`)
	case http.StatusServiceUnavailable:
		switch {
		case e.RetryAfter > 0:
			w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
		case w.Header().Get("Retry-After") == "":
			w.Header().Set("Retry-After", "30")
		}
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(code)
}

// bodyStatusOK reports whether an error with this HTTP code may instead be
// sent as a status in the body: authentication, size and availability
// problems stay HTTP codes whatever the version.
func bodyStatusOK(code int) bool {
	switch code {
	case http.StatusUnauthorized, http.StatusRequestEntityTooLarge, http.StatusServiceUnavailable:
		return false
	}
	return true
}

// authenticate checks Basic credentials, with failed-login throttling per
// user and per client network, and a bound on password checks running at
// once (each argon2id check takes ~19 MiB).
func (h *Handler) authenticate(r *http.Request) (store.User, error) {
	login, pw, ok := r.BasicAuth()
	if !ok || login == "" {
		return store.User{}, HTTPError(http.StatusUnauthorized, "no credentials")
	}
	login = normalizeLogin(login)
	addr := clientAddr(r, h.cfg.TrustedProxies)
	keys := []string{userKey(login), addrKey(addr)}
	if wait := h.throttle.begin(keys...); wait > 0 {
		return store.User{}, throttled(wait, login, addr)
	}
	ctx := r.Context()
	if !utf8.ValidString(login) || strings.ContainsRune(login, 0) {
		// Basic credentials are base64: any byte can arrive. No user has
		// such a name; the store is not asked (PostgreSQL would refuse it
		// and the phone would hear "retry later" instead of 401).
		h.throttle.end(true, keys...)
		return store.User{}, &Error{HTTP: http.StatusUnauthorized, Err: fmt.Errorf("login %q from %s: %w", login, addr, ErrBadCredentials)}
	}
	select {
	case h.checks <- struct{}{}:
	case <-ctx.Done():
		h.throttle.end(false, keys...)
		return store.User{}, &Error{HTTP: http.StatusServiceUnavailable, Err: ctx.Err()}
	case <-time.After(10 * time.Second):
		h.throttle.end(false, keys...)
		return store.User{}, &Error{HTTP: http.StatusServiceUnavailable, Err: errors.New("too many password checks waiting")}
	}
	u, err := h.checkPassword(ctx, r, login, pw)
	<-h.checks
	switch {
	case err == nil:
		h.throttle.end(false, keys...)
		return u, nil
	case errors.Is(err, ErrBadCredentials):
		h.throttle.end(true, keys...)
		return store.User{}, &Error{HTTP: http.StatusUnauthorized, Err: fmt.Errorf("login %q from %s: %w", login, addr, err)}
	default:
		h.throttle.end(false, keys...)
		// The store or the upstream could not check the password (a
		// restart, a network blip): ask again soon, not in the default 30 s.
		return store.User{}, &Error{Status: StatusServerErrorRetryLater, HTTP: http.StatusServiceUnavailable, RetryAfter: 5, Err: err}
	}
}

// newChecks bounds concurrent password checks to a few per core.
func newChecks() chan struct{} { return make(chan struct{}, max(4, 2*runtime.GOMAXPROCS(0))) }

func throttled(wait time.Duration, login, addr string) error {
	secs := int(wait.Seconds() + 0.999)
	return &Error{HTTP: http.StatusServiceUnavailable, RetryAfter: secs,
		Err: fmt.Errorf("login %q from %s locked out for %ds after repeated failures", login, addr, secs)}
}

// device registers the device on first contact, applying access rules and
// the per-user limit, and refuses blocked, quarantined and wiped devices.
func (h *Handler) device(ctx context.Context, u store.User, req *Request, ua string) (store.Device, error) {
	ua = strings.ToValidUTF8(ua, "\uFFFD") // stored as text; any byte can arrive in a header
	d, err := h.deps.Store.Device(ctx, u.ID, req.DeviceID)
	added := false
	if errors.Is(err, store.ErrNotFound) {
		// First contact: registered with the count of the user's devices
		// in one transaction, so the limit holds under concurrency.
		d = store.Device{UserID: u.ID, DeviceID: req.DeviceID, DeviceType: req.DeviceType, UserAgent: ua,
			ProtocolVersion: req.Version, Access: accessFor(h.cfg.AccessRules, req.DeviceType, "")}
		d, err = h.deps.Store.AddDevice(ctx, d, h.cfg.MaxDevicesPerUser)
		if errors.Is(err, store.ErrLimit) {
			// MS-ASCMD 2.2.2: 177 MaximumDevicesReached (HTTP 403 before 14.0).
			return d, &Error{Status: StatusMaximumDevicesReached, HTTP: http.StatusForbidden,
				Err: fmt.Errorf("user %s has %d devices, the limit: %w", u.Name, h.cfg.MaxDevicesPerUser, err)}
		}
		if err != nil {
			return d, err
		}
		added = true
	} else if err != nil {
		return d, err
	}
	// A device seen within the last minute with the same identity is not
	// written again: LastSeen is kept to the minute, and a busy phone
	// costs no store write per request.
	fresh := d.ID != 0 && d.DeviceType == req.DeviceType && d.UserAgent == ua && d.ProtocolVersion == req.Version &&
		h.deps.Now().Sub(d.LastSeen) < time.Minute
	if !fresh && !added {
		d.UserID, d.DeviceID, d.DeviceType, d.UserAgent, d.ProtocolVersion = u.ID, req.DeviceID, req.DeviceType, ua, req.Version
		d, err = h.deps.Store.TouchDevice(ctx, d)
		if err != nil {
			return d, err
		}
	}
	switch {
	case d.Access == store.DeviceBlocked:
		return d, &Error{Status: StatusDeviceBlocked, HTTP: http.StatusForbidden, Err: fmt.Errorf("device %s is blocked", d.DeviceID)}
	case d.Access == store.DeviceQuarantined:
		return d, &Error{Status: StatusDeviceBlocked, HTTP: http.StatusForbidden,
			Err: fmt.Errorf("device %s is quarantined until an administrator runs 'easd device allow'", d.DeviceID)}
	}
	return d, nil
}

// isWipeAck reports whether a request only acknowledges a remote wipe.
func isWipeAck(cmd string, body *wbxml.Node) bool {
	return cmd == "Provision" && body != nil &&
		(body.Child(wbxml.ProvisionRemoteWipe) != nil || body.Child(wbxml.ProvisionAccountOnlyRemoteWipe) != nil)
}

// checkPolicy is the provisioning gate, MS-ASPROV 3.2.5.1: a pending wipe,
// a missing, stale or outdated policy key sends the client to Provision.
func (h *Handler) checkPolicy(d store.Device, req *Request) error {
	switch d.Wipe {
	case store.WipePending:
		return Errorf(StatusRemoteWipeRequested, "remote wipe pending for device %s", d.DeviceID)
	case store.WipeAccountOnly:
		if versionAtLeast(req.Version, "16.1") {
			return Errorf(StatusRemoteWipeRequested, "account-only wipe pending for device %s", d.DeviceID)
		}
		// Before 16.1 there is no account-only wipe; a full wipe was not
		// asked for, so the device is refused instead.
		return &Error{Status: StatusDeviceBlocked, HTTP: http.StatusForbidden,
			Err: fmt.Errorf("account-only wipe pending for device %s, which speaks %s (needs 16.1): refused", d.DeviceID, req.Version)}
	}
	if !h.cfg.Policy.Enforce {
		return nil
	}
	switch {
	case req.PolicyKey == nil || *req.PolicyKey == 0 || d.PolicyKey == 0 || d.PolicyHash == "":
		return Errorf(StatusDeviceNotProvisioned, "device %s not provisioned", d.DeviceID)
	case *req.PolicyKey != d.PolicyKey:
		return Errorf(StatusInvalidPolicyKey, "device %s sent policy key %d, want %d", d.DeviceID, *req.PolicyKey, d.PolicyKey)
	case d.PolicyHash != h.policyHash:
		return Errorf(StatusPolicyRefresh, "policy changed since device %s provisioned", d.DeviceID)
	}
	return nil
}

// topTag returns the top-level element of a command's WBXML body.
func topTag(cmd string) wbxml.Tag {
	switch cmd {
	case "Sync":
		return wbxml.AirSyncSync
	case "FolderSync":
		return wbxml.FolderHierarchyFolderSync
	case "FolderCreate":
		return wbxml.FolderHierarchyFolderCreate
	case "FolderDelete":
		return wbxml.FolderHierarchyFolderDelete
	case "FolderUpdate":
		return wbxml.FolderHierarchyFolderUpdate
	case "GetItemEstimate":
		return wbxml.GetItemEstimateGetItemEstimate
	case "MoveItems":
		return wbxml.MoveMoveItems
	case "MeetingResponse":
		return wbxml.MeetingResponseMeetingResponse
	case "Search":
		return wbxml.SearchSearch
	case "Settings":
		return wbxml.SettingsSettings
	case "Ping":
		return wbxml.PingPing
	case "ItemOperations":
		return wbxml.ItemOperationsItemOperations
	case "Provision":
		return wbxml.ProvisionProvision
	case "ResolveRecipients":
		return wbxml.ResolveRecipientsResolveRecipients
	case "ValidateCert":
		return wbxml.ValidateCertValidateCert
	case "SendMail":
		return wbxml.ComposeMailSendMail
	case "SmartReply":
		return wbxml.ComposeMailSmartReply
	case "SmartForward":
		return wbxml.ComposeMailSmartForward
	case "Find":
		return wbxml.FindFind
	}
	return 0
}

// statusTag returns the Status element in the code page of top.
func statusTag(top wbxml.Tag) wbxml.Tag {
	if t, ok := wbxml.LookupTag(top.Namespace(), "Status"); ok {
		return t
	}
	return wbxml.AirSyncStatus
}
