package eas

import (
	"context"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/easd/easd/store"
)

// FuzzParseBase64Query feeds arbitrary bytes to the base64 query decoder
// (MS-ASHTTP 2.2.1.1.1.1): it must return a request or an *Error, never
// panic, and never a request without Cmd or DeviceId.
func FuzzParseBase64Query(f *testing.F) {
	f.Add([]byte{141, 20, 9, 4, 4, 0xde, 0xad, 0xbe, 0xef, 0, 6, 'A', 'n', 'd', 'r', 'o', 'i'})
	f.Add([]byte{121, 3, 9, 4, 2, 'I', 'D', 4, 1, 0, 0, 0, 1, 'T', 1, 2, 'c', '1', 7, 1, 3, 8, 5, 'a', 'l', 'i', 'c', 'e'})
	f.Add([]byte{161, 255, 0, 0, 0, 0, 0})
	f.Add([]byte{141, 20, 9, 4, 200})
	f.Fuzz(func(t *testing.T, b []byte) {
		q := base64.StdEncoding.EncodeToString(b)
		r := httptest.NewRequest(http.MethodPost, "/Microsoft-Server-ActiveSync?"+q, nil)
		req, err := parseRequest(r)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T %v, want *Error", err, err)
			}
			return
		}
		if req.Cmd == "" || req.DeviceID == "" || !req.Base64 {
			t.Fatalf("accepted request without Cmd or DeviceId: %+v", req)
		}
	})
}

// fuzzAuth accepts alice/pw.
type fuzzAuth struct{}

func (fuzzAuth) Authenticate(_ context.Context, login, pw string) (store.User, error) {
	if login == "alice" && pw == "pw" {
		return store.User{ID: 1, Name: "alice"}, nil
	}
	return store.User{}, ErrBadCredentials
}

// FuzzAutodiscoverPOX posts arbitrary bodies to the Autodiscover XML
// endpoint: every answer is a well-formed HTTP response below 500.
func FuzzAutodiscoverPOX(f *testing.F) {
	f.Add(`<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006"><Request><EMailAddress>alice@example.com</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006</AcceptableResponseSchema></Request></Autodiscover>`)
	f.Add(`<Autodiscover><Request><EMailAddress></EMailAddress></Request></Autodiscover>`)
	f.Add(`<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><Autodiscover>&a;</Autodiscover>`)
	f.Add(`<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>a@b</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>`)
	f.Add("<")
	ad := NewAutodiscover(AutodiscoverConfig{URL: "https://mail.example.com"}, fuzzAuth{}, slog.New(slog.DiscardHandler))
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/autodiscover/autodiscover.xml", strings.NewReader(body))
		r.SetBasicAuth("alice", "pw")
		w := httptest.NewRecorder()
		ad.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("HTTP %d for body %q", w.Code, body)
		}
		if w.Code == 200 && !strings.Contains(w.Body.String(), "<Autodiscover") {
			t.Fatalf("200 without an Autodiscover document: %q", w.Body.String())
		}
	})
}
