package eas

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzParseRequest feeds arbitrary request lines and headers to
// parseRequest, in both query forms (MS-ASHTTP 2.2.1.1.1.1): the plain
// form (Cmd=...&User=...&DeviceId=...&DeviceType=...) and the base64 one.
// It must never panic; it returns either an *Error answered with HTTP 400
// (the only code a malformed request line gets, MS-ASHTTP 3.2.5.1) or a
// request with a Cmd and a printable DeviceId and DeviceType of at most
// 128 bytes, whose PolicyKey is the header's (plain form) and whose form
// is the one the query has.
func FuzzParseRequest(f *testing.F) {
	f.Add("Cmd=Sync&User=alice&DeviceId=DEV1&DeviceType=iPhone", "14.1", "123", "T")
	f.Add("cmd=Provision&user=alice%40example.com&deviceid=A%20B&devicetype=SmartPhone", "12.1", "", "")
	f.Add("Cmd=SendMail&User=a&DeviceId=D&DeviceType=t&SaveInSent=T&CollectionId=5&ItemId=5%3A1&LongId=x&Occurrence=2026-01-01T00:00:00.000Z&AttachmentName=1%3A2", "14.0", "0", "t")
	f.Add("CMD=Ping&Cmd=Sync&DeviceId=&DeviceId=X", " 14.1 ", "4294967296", "")
	f.Add("Cmd=Sync&DeviceId=%00&DeviceType=x", "", "-1", "")
	f.Add("Cmd=Sync&DeviceId="+strings.Repeat("A", 129), "", "", "")
	f.Add("Cmd=Sync&DeviceId=%zz", "", "", "")
	f.Add("", "14.1", "1", "T")
	f.Add(base64.StdEncoding.EncodeToString([]byte{141, 0, 9, 4, 4, 0xde, 0xad, 0xbe, 0xef, 4, 1, 0, 0, 0, 6, 'A', 'n', 'd', 'r', 'o', 'i', 'd', 7, 1, 3, 8, 5, 'a', 'l', 'i', 'c', 'e'}), "", "", "")
	f.Add(base64.RawStdEncoding.EncodeToString([]byte{121, 20, 9, 4, 1, 'x', 0, 0}), "", "", "")
	f.Add(url.PathEscape(base64.StdEncoding.EncodeToString([]byte{141, 18, 0, 0, 16, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0})), "", "", "")
	f.Add("jQkEBAAAAAAA%", "", "", "")
	f.Fuzz(func(t *testing.T, query, version, policyKey, multipart string) {
		r := httptest.NewRequest(http.MethodPost, "/Microsoft-Server-ActiveSync", nil)
		r.URL.RawQuery = query
		// Header values as net/http would deliver them: no CR, LF or NUL.
		clean := func(s string) string { return strings.Map(headerRune, s) }
		r.Header.Set("MS-ASProtocolVersion", clean(version))
		r.Header.Set("X-MS-PolicyKey", clean(policyKey))
		r.Header.Set("MS-ASAcceptMultiPart", clean(multipart))
		req, err := parseRequest(r)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v, want *Error", err, err)
			}
			code := e.HTTP
			if code == 0 {
				code = httpFor(e.Status)
			}
			if code != http.StatusBadRequest {
				t.Fatalf("HTTP %d for a malformed request line, want 400: %v", code, err)
			}
			return
		}
		if req.Cmd == "" || req.DeviceID == "" {
			t.Fatalf("accepted without Cmd or DeviceId: %+v", req)
		}
		for name, v := range map[string]string{"DeviceId": req.DeviceID, "DeviceType": req.DeviceType} {
			if len(v) > 128 || !printable(v) {
				t.Fatalf("%s %q accepted", name, v)
			}
		}
		_, plain := foldKeys(r.URL.Query())["cmd"]
		if plain == req.Base64 {
			t.Fatalf("query %q: plain form %v but Base64 %v", query, plain, req.Base64)
		}
		if !req.Base64 {
			if req.Version != strings.TrimSpace(clean(version)) {
				t.Fatalf("Version %q from header %q", req.Version, version)
			}
			if pk := strings.TrimSpace(clean(policyKey)); (pk == "") != (req.PolicyKey == nil) {
				t.Fatalf("PolicyKey %v from header %q", req.PolicyKey, policyKey)
			}
		}
		if req.Base64 && strings.ToUpper(req.DeviceID) != req.DeviceID {
			t.Fatalf("base64 DeviceId %q is not upper-case hex", req.DeviceID)
		}
		if req.Base64 && req.Version != "0.0" && versionNum(req.Version) == 0 {
			t.Fatalf("base64 version %q does not parse", req.Version)
		}
	})
}

// headerRune drops the runes net/http never delivers in a header value.
func headerRune(r rune) rune {
	if r == '\r' || r == '\n' || r == 0 {
		return -1
	}
	return r
}
