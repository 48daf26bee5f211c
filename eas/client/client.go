// Package client is an Exchange ActiveSync client that behaves like a
// phone: it negotiates the protocol version from OPTIONS, provisions (and
// re-provisions when the server asks with HTTP 449 or status 142/143/144),
// acknowledges remote wipes, and speaks both query forms of MS-ASHTTP. The
// end-to-end tests, the probe command and load tools drive easd with it.
//
// A Client is safe for concurrent use.
package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/easd/easd/wbxml"
)

// EndpointPath is the ActiveSync path appended to a base URL.
const EndpointPath = "/Microsoft-Server-ActiveSync"

// SupportedVersions returns the protocol versions the client speaks,
// ascending.
func SupportedVersions() []string { return []string{"12.1", "14.0", "14.1", "16.0", "16.1"} }

// Config describes the account and the device the client pretends to be.
type Config struct {
	// URL is the server: a base such as https://mail.example.com, or the
	// full https://mail.example.com/Microsoft-Server-ActiveSync. Without a
	// scheme, https is assumed.
	URL string
	// User is the login (user, user@domain or DOMAIN\user) and Password
	// its password, sent with Basic authentication.
	User, Password string
	// DeviceID identifies the device (required; up to 32 alphanumerics for
	// real phones). In the base64 query form an even-length hex DeviceID is
	// sent as the bytes it spells, which servers show hex-encoded again.
	DeviceID string
	// DeviceType is e.g. "iPhone" or "Android"; "easd" when empty.
	DeviceType string
	// UserAgent is the User-Agent header; "easd-client/1.0" when empty.
	UserAgent string
	// Version forces the protocol version; empty negotiates the highest
	// version both sides support from OPTIONS, on first use.
	Version string
	// HTTPClient sends the requests; a plain http.Client when nil.
	HTTPClient *http.Client
	// Base64Query sends the base64-encoded query (MS-ASHTTP 2.2.1.1.1.1)
	// instead of Cmd=…&User=…&DeviceId=…&DeviceType=….
	Base64Query bool
	// Locale is the LCID of the base64 query; 0x0409 (en-US) when 0.
	Locale uint16
	// DeviceInfo is sent inside Provision for 14.1 and later, as iOS does.
	// Empty fields are left out; Model defaults to DeviceType and UserAgent
	// to the User-Agent.
	DeviceInfo DeviceInfo
	// PolicyAckStatus is the Status acknowledging a policy (MS-ASPROV
	// 2.2.2.54.1): 1 applied (the default), 2 partially, 3 not applied,
	// 4 externally managed.
	PolicyAckStatus int
	// MaxResponseBytes bounds a response body; 64 MiB when 0.
	MaxResponseBytes int64
}

// Client is one device of one account talking to one server.
type Client struct {
	cfg      Config
	endpoint url.URL
	hc       *http.Client

	provMu sync.Mutex // serialises provisioning

	mu        sync.Mutex
	version   string
	policyKey uint32
	wiped     *WipeError
}

// New returns a client for cfg. It does not contact the server.
func New(cfg Config) (*Client, error) {
	if cfg.User == "" {
		return nil, errors.New("client: no user")
	}
	if cfg.DeviceID == "" {
		return nil, errors.New("client: no device id")
	}
	u, err := EndpointURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.DeviceType == "" {
		cfg.DeviceType = "easd"
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "easd-client/1.0"
	}
	if cfg.Locale == 0 {
		cfg.Locale = 0x0409
	}
	if cfg.PolicyAckStatus == 0 {
		cfg.PolicyAckStatus = 1
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = 64 << 20
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{cfg: cfg, endpoint: *u, hc: hc, version: cfg.Version}, nil
}

// EndpointURL turns a server address (host, base URL or full endpoint URL)
// into the ActiveSync endpoint URL.
func EndpointURL(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("client: no server URL")
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("client: server URL: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("client: server URL %q: scheme must be https or http", s)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("client: server URL %q has no host", s)
	}
	p := strings.TrimRight(u.Path, "/")
	if !strings.HasSuffix(strings.ToLower(p), strings.ToLower(EndpointPath)) {
		p += EndpointPath
	}
	u.Path, u.RawPath, u.RawQuery, u.Fragment, u.User = p, "", "", "", nil
	return u, nil
}

// Endpoint returns the ActiveSync URL the client posts to.
func (c *Client) Endpoint() string { return c.endpoint.String() }

// Version returns the protocol version in use; "" before negotiation.
func (c *Client) Version() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version
}

// PolicyKey returns the current policy key; 0 when not provisioned.
func (c *Client) PolicyKey() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.policyKey
}

// SetPolicyKey sets the policy key sent with later requests, e.g. to resume
// a device provisioned earlier or to send a stale key on purpose.
func (c *Client) SetPolicyKey(k uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.policyKey = k
}

// Wiped returns the remote wipe the client acknowledged, or nil. Once
// wiped, the client refuses to send anything.
func (c *Client) Wiped() *WipeError {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wiped
}

// Params are the command parameters of the request line (MS-ASHTTP
// 2.2.1.1.1.2), used by 12.1 and earlier for attachments and Smart*.
type Params struct {
	AttachmentName string
	CollectionID   string
	ItemID         string
	LongID         string
	Occurrence     string
	SaveInSent     bool
}

// Request is one command to send.
type Request struct {
	// Cmd is the command name, e.g. "Sync".
	Cmd string
	// Body is the WBXML body; nil sends none (unless Raw is set).
	Body *wbxml.Node
	// Raw is sent instead of Body, with ContentType (e.g. message/rfc822
	// for SendMail in 12.1).
	Raw         []byte
	ContentType string
	// Params go on the request line.
	Params Params
	// AcceptMultiPart asks ItemOperations for a multipart response.
	AcceptMultiPart bool
}

// Response is the server's answer.
type Response struct {
	// HTTPStatus is the HTTP status code.
	HTTPStatus int
	// Header holds the response headers.
	Header http.Header
	// Body is the decoded WBXML body; nil for an empty body or one of
	// another content type.
	Body *wbxml.Node
	// Raw holds a non-WBXML body (attachments, multipart), else nil.
	Raw []byte
}

// Do sends cmd with body; see Send.
func (c *Client) Do(ctx context.Context, cmd string, body *wbxml.Node) (*Response, error) {
	return c.Send(ctx, &Request{Cmd: cmd, Body: body})
}

// Send sends a command as a phone would: it negotiates the version first
// if needed, and when the server asks for provisioning (HTTP 449, status
// 140, 142, 143 or 144) it runs Provision and retries the command once.
//
// A non-200 answer is an *HTTPError; a 200 whose top-level Status reports
// failure is a *StatusError, returned together with the Response so the
// caller can inspect it. A remote wipe is a *WipeError (errors.Is ErrWiped).
func (c *Client) Send(ctx context.Context, req *Request) (*Response, error) {
	if req.Cmd == "" {
		return nil, errors.New("client: no command")
	}
	if w := c.Wiped(); w != nil {
		return nil, w
	}
	if err := c.ensureVersion(ctx); err != nil {
		return nil, err
	}
	body, ctype, err := encodeBody(req)
	if err != nil {
		return nil, err
	}
	usedKey := c.PolicyKey()
	resp, err := c.roundTrip(ctx, req, body, ctype)
	if req.Cmd == "Provision" {
		return resp, err
	}
	need, wipe := provisionNeeded(err)
	if !need {
		return resp, err
	}
	if err := c.reprovision(ctx, usedKey, wipe); err != nil {
		return resp, err
	}
	return c.roundTrip(ctx, req, body, ctype)
}

// provisionNeeded reports whether err asks the client to provision, and
// whether it announced a remote wipe (status 140).
func provisionNeeded(err error) (need, wipe bool) {
	var he *HTTPError
	if errors.As(err, &he) && he.Status == 449 {
		return true, false
	}
	var se *StatusError
	if errors.As(err, &se) && se.Element == "" {
		switch se.Status {
		case StatusRemoteWipeRequested:
			return true, true
		case StatusDeviceNotProvisioned, StatusPolicyRefresh, StatusInvalidPolicyKey:
			return true, false
		}
	}
	return false, false
}

func encodeBody(req *Request) ([]byte, string, error) {
	switch {
	case req.Raw != nil:
		return req.Raw, req.ContentType, nil
	case req.Body != nil:
		var b bytes.Buffer
		if err := wbxml.Encode(&b, req.Body); err != nil {
			return nil, "", fmt.Errorf("client: %s: encoding request: %w", req.Cmd, err)
		}
		return b.Bytes(), wbxmlType, nil
	}
	return nil, "", nil
}

const wbxmlType = "application/vnd.ms-sync.wbxml"

// roundTrip sends one request without any provisioning logic.
func (c *Client) roundTrip(ctx context.Context, req *Request, body []byte, ctype string) (*Response, error) {
	c.mu.Lock()
	version, key := c.version, c.policyKey
	c.mu.Unlock()
	u := c.endpoint
	var err error
	if c.cfg.Base64Query {
		u.RawQuery, err = c.base64Query(req, version, key)
	} else {
		u.RawQuery = c.plainQuery(req.Cmd, req.Params)
	}
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("client: %s: %w", req.Cmd, err)
	}
	c.setCommonHeaders(hr)
	if ctype != "" {
		hr.Header.Set("Content-Type", ctype)
	}
	if !c.cfg.Base64Query {
		hr.Header.Set("MS-ASProtocolVersion", version)
		// The initial Provision sends no key (MS-ASPROV 2.2.2.42).
		if key != 0 {
			hr.Header.Set("X-MS-PolicyKey", strconv.FormatUint(uint64(key), 10))
		}
		if req.AcceptMultiPart {
			hr.Header.Set("MS-ASAcceptMultiPart", "T")
		}
	}
	hresp, err := c.hc.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("client: %s: %w", req.Cmd, err)
	}
	defer hresp.Body.Close()
	resp := &Response{HTTPStatus: hresp.StatusCode, Header: hresp.Header}
	if hresp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(hresp.Body, 64<<10))
		return resp, &HTTPError{Command: req.Cmd, Status: hresp.StatusCode, Header: hresp.Header}
	}
	raw, err := io.ReadAll(io.LimitReader(hresp.Body, c.cfg.MaxResponseBytes+1))
	if err != nil {
		return resp, fmt.Errorf("client: %s: reading response: %w", req.Cmd, err)
	}
	if int64(len(raw)) > c.cfg.MaxResponseBytes {
		return resp, fmt.Errorf("client: %s: response over %d bytes", req.Cmd, c.cfg.MaxResponseBytes)
	}
	if len(raw) == 0 {
		return resp, nil
	}
	ct := hresp.Header.Get("Content-Type")
	if !strings.Contains(strings.ToLower(ct), "vnd.ms-sync.wbxml") && !(ct == "" && raw[0] == 0x03) {
		resp.Raw = raw
		return resp, nil
	}
	resp.Body, err = wbxml.DecodeBytes(raw, wbxml.Limits{MaxTotal: c.cfg.MaxResponseBytes, MaxOpaqueLen: c.cfg.MaxResponseBytes})
	if err != nil {
		return resp, fmt.Errorf("client: %s: decoding response: %w", req.Cmd, err)
	}
	return resp, checkStatus(req.Cmd, resp.Body)
}

func (c *Client) setCommonHeaders(hr *http.Request) {
	hr.SetBasicAuth(c.cfg.User, c.cfg.Password)
	hr.Header.Set("User-Agent", c.cfg.UserAgent)
}

// checkStatus returns a *StatusError when the top-level Status of body
// reports failure. Ping's status 2 (changes) is success; so is a missing
// Status (Sync, MoveItems).
func checkStatus(cmd string, body *wbxml.Node) error {
	st, ok := wbxml.LookupTag(body.Tag.Namespace(), "Status")
	if !ok {
		return nil
	}
	n := body.Child(st)
	if n == nil {
		return nil
	}
	s := strings.TrimSpace(n.Text())
	if s == "1" || (cmd == "Ping" && s == "2") {
		return nil
	}
	code, _ := strconv.Atoi(s)
	return &StatusError{Command: cmd, Status: code}
}

// plainQuery builds Cmd=…&User=…&DeviceId=…&DeviceType=… in the order
// phones send it, then the command parameters; no Cmd when cmd is "".
func (c *Client) plainQuery(cmd string, p Params) string {
	var b strings.Builder
	add := func(k, v string) {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(v))
	}
	if cmd != "" {
		add("Cmd", cmd)
	}
	add("User", c.cfg.User)
	add("DeviceId", c.cfg.DeviceID)
	add("DeviceType", c.cfg.DeviceType)
	for _, kv := range [][2]string{
		{"AttachmentName", p.AttachmentName}, {"CollectionId", p.CollectionID},
		{"ItemId", p.ItemID}, {"LongId", p.LongID}, {"Occurrence", p.Occurrence},
	} {
		if kv[1] != "" {
			add(kv[0], kv[1])
		}
	}
	if p.SaveInSent {
		add("SaveInSent", "T")
	}
	return b.String()
}

// commandCode returns a command's code in the base64 query (MS-ASHTTP
// 2.2.1.1.1.1.2).
func commandCode(cmd string) (byte, bool) {
	codes := [...]string{0: "Sync", 1: "SendMail", 2: "SmartForward", 3: "SmartReply", 4: "GetAttachment",
		9: "FolderSync", 10: "FolderCreate", 11: "FolderDelete", 12: "FolderUpdate",
		13: "MoveItems", 14: "GetItemEstimate", 15: "MeetingResponse", 16: "Search",
		17: "Settings", 18: "Ping", 19: "ItemOperations", 20: "Provision",
		21: "ResolveRecipients", 22: "ValidateCert", 23: "Find"}
	for i, c := range codes {
		if c != "" && c == cmd {
			return byte(i), true
		}
	}
	return 0, false
}

// base64Query builds the MS-ASHTTP 2.2.1.1.1.1 query: version, command,
// locale, DeviceId, PolicyKey, DeviceType, then tagged parameters.
func (c *Client) base64Query(req *Request, version string, key uint32) (string, error) {
	code, ok := commandCode(req.Cmd)
	if !ok {
		return "", fmt.Errorf("client: command %q has no base64 query code", req.Cmd)
	}
	v := versionNum(version)
	if v == 0 {
		return "", fmt.Errorf("client: version %q cannot be sent in the base64 query", version)
	}
	id := []byte(c.cfg.DeviceID)
	if b, err := hex.DecodeString(c.cfg.DeviceID); err == nil && len(b) > 0 {
		id = b
	}
	b := []byte{byte(v), code}
	b = binary.LittleEndian.AppendUint16(b, c.cfg.Locale)
	var err error
	field := func(name string, v []byte) {
		if len(v) > 255 {
			err = fmt.Errorf("client: %s of %d bytes is too long for the base64 query", name, len(v))
			return
		}
		b = append(b, byte(len(v)))
		b = append(b, v...)
	}
	field("DeviceId", id)
	var pk []byte
	if key != 0 {
		pk = binary.LittleEndian.AppendUint32(nil, key)
	}
	field("PolicyKey", pk)
	field("DeviceType", []byte(c.cfg.DeviceType))
	param := func(tag byte, name, v string) {
		if v != "" {
			b = append(b, tag)
			field(name, []byte(v))
		}
	}
	p := req.Params
	param(0, "AttachmentName", p.AttachmentName)
	param(1, "CollectionId", p.CollectionID)
	param(3, "ItemId", p.ItemID)
	param(4, "LongId", p.LongID)
	param(6, "Occurrence", p.Occurrence)
	var opts byte
	if p.SaveInSent {
		opts |= 0x01
	}
	if req.AcceptMultiPart {
		opts |= 0x02
	}
	if opts != 0 {
		b = append(b, 7, 1, opts)
	}
	param(8, "User", c.cfg.User)
	if err != nil {
		return "", err
	}
	return url.QueryEscape(base64.StdEncoding.EncodeToString(b)), nil
}

// versionNum turns "14.1" into 141; 0 when malformed.
func versionNum(v string) int {
	major, minor, ok := strings.Cut(v, ".")
	if !ok {
		return 0
	}
	a, err1 := strconv.Atoi(major)
	b, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil || a < 0 || b < 0 || b > 9 || a > 25 {
		return 0
	}
	return a*10 + b
}

// atLeast reports whether the client speaks version min or later.
func (c *Client) atLeast(min string) bool { return versionNum(c.Version()) >= versionNum(min) }
