package eas

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Request is the parsed request line and headers of an ActiveSync POST,
// from either query form (MS-ASHTTP 2.2.1.1.1).
type Request struct {
	Cmd        string
	User       string // the User parameter; authentication uses Basic auth, not this
	DeviceID   string
	DeviceType string
	Version    string  // MS-ASProtocolVersion, e.g. "14.1"
	PolicyKey  *uint32 // X-MS-PolicyKey; nil when absent
	Locale     uint16  // base64 form only

	// Command parameters (MS-ASHTTP 2.2.1.1.1.1.3), mostly ≤12.1.
	AttachmentName  string
	CollectionID    string
	ItemID          string
	LongID          string
	Occurrence      string
	SaveInSent      bool
	AcceptMultiPart bool

	// Base64 is true when the request used the base64-encoded query.
	Base64 bool
}

// commandCodes are the base64 form's command codes (MS-ASHTTP 2.2.1.1.1.1.2).
var commandCodes = map[byte]string{
	0: "Sync", 1: "SendMail", 2: "SmartForward", 3: "SmartReply", 4: "GetAttachment",
	9: "FolderSync", 10: "FolderCreate", 11: "FolderDelete", 12: "FolderUpdate",
	13: "MoveItems", 14: "GetItemEstimate", 15: "MeetingResponse", 16: "Search",
	17: "Settings", 18: "Ping", 19: "ItemOperations", 20: "Provision",
	21: "ResolveRecipients", 22: "ValidateCert", 23: "Find",
}

// parseRequest reads the query in its plain or base64 form and the
// headers. A missing Cmd or DeviceId is an HTTP 400 (MS-ASHTTP 3.2.5.1).
func parseRequest(r *http.Request) (*Request, error) {
	raw := r.URL.RawQuery
	var req *Request
	var err error
	// The plain form always has a Cmd parameter (any letter case); without
	// one the query is the base64 form (MS-ASHTTP 2.2.1.1.1.1).
	q := foldKeys(r.URL.Query())
	if _, plain := q["cmd"]; plain || raw == "" {
		req, err = parsePlainQuery(q)
	} else {
		req, err = parseBase64Query(raw)
	}
	if err != nil {
		return nil, err
	}
	if !req.Base64 {
		req.Version = strings.TrimSpace(r.Header.Get("MS-ASProtocolVersion"))
		if pk := strings.TrimSpace(r.Header.Get("X-MS-PolicyKey")); pk != "" {
			n, err := strconv.ParseUint(pk, 10, 32)
			if err != nil {
				return nil, HTTPError(http.StatusBadRequest, "X-MS-PolicyKey %q is not a uint32", pk)
			}
			k := uint32(n)
			req.PolicyKey = &k
		}
		if strings.EqualFold(r.Header.Get("MS-ASAcceptMultiPart"), "T") {
			req.AcceptMultiPart = true
		}
	}
	if req.Cmd == "" {
		return nil, HTTPError(http.StatusBadRequest, "missing Cmd")
	}
	if req.DeviceID == "" {
		return nil, &Error{Status: StatusDeviceIDMissing, HTTP: http.StatusBadRequest, Err: fmt.Errorf("missing DeviceId")}
	}
	if len(req.DeviceID) > 128 || !printable(req.DeviceID) {
		return nil, HTTPError(http.StatusBadRequest, "DeviceId is too long or not printable")
	}
	if len(req.DeviceType) > 128 || !printable(req.DeviceType) {
		return nil, HTTPError(http.StatusBadRequest, "DeviceType is too long or not printable")
	}
	return req, nil
}

// printable reports whether s is valid UTF-8 without control characters
// (the store keeps DeviceId and DeviceType as text; PostgreSQL refuses
// invalid UTF-8).
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// foldKeys lower-cases the parameter names: clients vary in case.
func foldKeys(q url.Values) url.Values {
	out := make(url.Values, len(q))
	for k, v := range q {
		lk := strings.ToLower(k)
		out[lk] = append(out[lk], v...)
	}
	return out
}

// parsePlainQuery reads the plain form from parameters with lower-cased names.
func parsePlainQuery(q url.Values) (*Request, error) {
	req := &Request{
		Cmd:            q.Get("cmd"),
		User:           q.Get("user"),
		DeviceID:       q.Get("deviceid"),
		DeviceType:     q.Get("devicetype"),
		AttachmentName: q.Get("attachmentname"),
		CollectionID:   q.Get("collectionid"),
		ItemID:         q.Get("itemid"),
		LongID:         q.Get("longid"),
		Occurrence:     q.Get("occurrence"),
		SaveInSent:     strings.EqualFold(q.Get("saveinsent"), "T"),
	}
	return req, nil
}

// parseBase64Query decodes MS-ASHTTP 2.2.1.1.1.1: version, command code,
// locale, DeviceId, PolicyKey, DeviceType, then tagged parameters.
func parseBase64Query(raw string) (*Request, error) {
	// PathUnescape, not QueryUnescape: '+' is a base64 digit, not a space.
	s, err := url.PathUnescape(raw)
	if err != nil {
		return nil, HTTPError(http.StatusBadRequest, "base64 query: %v", err)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		if b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "=")); err != nil {
			return nil, HTTPError(http.StatusBadRequest, "base64 query: %v", err)
		}
	}
	bad := func(what string) error {
		return HTTPError(http.StatusBadRequest, "base64 query: truncated at %s", what)
	}
	if len(b) < 5 {
		return nil, bad("header")
	}
	req := &Request{Base64: true}
	req.Version = fmt.Sprintf("%d.%d", b[0]/10, b[0]%10)
	cmd, ok := commandCodes[b[1]]
	if !ok {
		cmd = fmt.Sprintf("#%d", b[1]) // unknown code: answered as an unknown command
	}
	req.Cmd = cmd
	req.Locale = binary.LittleEndian.Uint16(b[2:4])
	p := 4
	take := func(what string) ([]byte, error) {
		if p >= len(b) {
			return nil, bad(what)
		}
		n := int(b[p])
		p++
		if p+n > len(b) {
			return nil, bad(what)
		}
		v := b[p : p+n]
		p += n
		return v, nil
	}
	id, err := take("DeviceId")
	if err != nil {
		return nil, err
	}
	// The DeviceId is binary in this form (often a GUID); hex keeps it a
	// stable printable key.
	req.DeviceID = strings.ToUpper(hex.EncodeToString(id))
	pk, err := take("PolicyKey")
	if err != nil {
		return nil, err
	}
	switch len(pk) {
	case 0:
	case 4:
		k := binary.LittleEndian.Uint32(pk)
		req.PolicyKey = &k
	default:
		return nil, HTTPError(http.StatusBadRequest, "base64 query: PolicyKey of %d bytes", len(pk))
	}
	dt, err := take("DeviceType")
	if err != nil {
		return nil, err
	}
	req.DeviceType = string(dt)
	for p < len(b) {
		tag := b[p]
		p++
		v, err := take("parameter")
		if err != nil {
			return nil, err
		}
		switch tag {
		case 0:
			req.AttachmentName = string(v)
		case 1:
			req.CollectionID = string(v)
		case 3:
			req.ItemID = string(v)
		case 4:
			req.LongID = string(v)
		case 6:
			req.Occurrence = string(v)
		case 7:
			if len(v) > 0 {
				req.SaveInSent = v[0]&0x01 != 0
				req.AcceptMultiPart = v[0]&0x02 != 0
			}
		case 8:
			req.User = string(v)
		}
	}
	return req, nil
}

// versionAtLeast reports whether protocol version v (e.g. "14.1") is at
// least min; malformed versions compare as 0.
func versionAtLeast(v, min string) bool { return versionNum(v) >= versionNum(min) }

// versionNum turns "14.1" into 141.
func versionNum(v string) int {
	major, minor, ok := strings.Cut(v, ".")
	if !ok {
		return 0
	}
	a, err1 := strconv.Atoi(major)
	b, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil || b > 9 || a > 99 {
		return 0
	}
	return a*10 + b
}
