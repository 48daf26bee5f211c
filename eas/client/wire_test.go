package client_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/wbxml"
	"github.com/google/go-cmp/cmp"
)

// fake serves canned answers per command, for the client's own handling
// of responses that the real server does not (yet) produce.
func fake(t *testing.T, h http.HandlerFunc) *client.Client {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	c, err := client.New(client.Config{URL: srv.URL + "/microsoft-server-activesync/", User: "alice", Password: "pw",
		DeviceID: "DEV1", Version: "14.1", HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeWBXML(t *testing.T, w http.ResponseWriter, n *wbxml.Node) {
	var b bytes.Buffer
	if err := wbxml.Encode(&b, n); err != nil {
		t.Error(err)
	}
	w.Header().Set("Content-Type", "application/vnd.ms-sync.wbxml")
	w.Write(b.Bytes())
}

func TestResponses(t *testing.T) {
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("Cmd") {
		case "SendMail":
			w.Header().Set("Content-Length", "0")
		case "Ping":
			writeWBXML(t, w, wbxml.E(wbxml.PingPing, wbxml.T(wbxml.PingStatus, "2")))
		case "Search":
			writeWBXML(t, w, wbxml.E(wbxml.SearchSearch, wbxml.T(wbxml.SearchStatus, "3")))
		case "GetAttachment":
			w.Header().Set("Content-Type", "image/png")
			w.Write([]byte("\x89PNG"))
		case "MoveItems":
			w.Header().Set("X-MS-Location", "https://other.example.com/Microsoft-Server-ActiveSync")
			w.WriteHeader(451)
		}
	})
	ctx := context.Background()

	resp, err := c.Do(ctx, "SendMail", wbxml.E(wbxml.ComposeMailSendMail))
	if err != nil || resp.Body != nil || resp.Raw != nil || resp.HTTPStatus != 200 {
		t.Errorf("empty 200: %+v, %v", resp, err)
	}
	if resp, err := c.Do(ctx, "Ping", nil); err != nil || resp.Body.ChildText(wbxml.PingStatus) != "2" {
		t.Errorf("Ping status 2 (changes) is not an error: %v", err)
	}
	resp, err = c.Do(ctx, "Search", wbxml.E(wbxml.SearchSearch))
	var se *client.StatusError
	if !errors.As(err, &se) || se.Status != 3 || se.Command != "Search" || resp == nil || resp.Body == nil {
		t.Errorf("Search status 3: %+v, %v", resp, err)
	}
	resp, err = c.Send(ctx, &client.Request{Cmd: "GetAttachment", Params: client.Params{AttachmentName: "5:1:0"}})
	if err != nil || string(resp.Raw) != "\x89PNG" || resp.Body != nil {
		t.Errorf("attachment: %+v, %v", resp, err)
	}
	_, err = c.Do(ctx, "MoveItems", wbxml.E(wbxml.MoveMoveItems))
	var he *client.HTTPError
	if !errors.As(err, &he) || he.Status != 451 || he.Header.Get("X-MS-Location") == "" {
		t.Errorf("451: %v", err)
	}
	// The path given keeps its spelling; a trailing slash goes.
	if !strings.HasSuffix(c.Endpoint(), "/microsoft-server-activesync") {
		t.Errorf("endpoint %s", c.Endpoint())
	}
}

func TestPlainQuery(t *testing.T) {
	var got []url.Values
	var headers []http.Header
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.URL.Query())
		headers = append(headers, r.Header.Clone())
	})
	c.SetPolicyKey(3141592653)
	_, err := c.Send(context.Background(), &client.Request{Cmd: "SmartReply", Raw: []byte("From: a\r\n\r\nhi"), ContentType: "message/rfc822",
		Params: client.Params{ItemID: "5:7", CollectionID: "5", SaveInSent: true}})
	if err != nil {
		t.Fatal(err)
	}
	want := url.Values{"Cmd": {"SmartReply"}, "User": {"alice"}, "DeviceId": {"DEV1"}, "DeviceType": {"easd"},
		"ItemId": {"5:7"}, "CollectionId": {"5"}, "SaveInSent": {"T"}}
	if diff := cmp.Diff(want, got[0]); diff != "" {
		t.Errorf("query (-want +got):\n%s", diff)
	}
	h := headers[0]
	if h.Get("X-MS-PolicyKey") != "3141592653" || h.Get("MS-ASProtocolVersion") != "14.1" || h.Get("Content-Type") != "message/rfc822" {
		t.Errorf("headers %v", h)
	}
	if u, p, ok := (&http.Request{Header: h}).BasicAuth(); !ok || u != "alice" || p != "pw" {
		t.Errorf("credentials %q %q %v", u, p, ok)
	}
}

func TestBase64Query(t *testing.T) {
	var raw []string
	var headers []http.Header
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw = append(raw, r.URL.RawQuery)
		headers = append(headers, r.Header.Clone())
	}))
	defer srv.Close()
	c, err := client.New(client.Config{URL: srv.URL, User: "alice", Password: "pw", DeviceID: "a1b2c3", DeviceType: "WP",
		Version: "12.1", Base64Query: true, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	c.SetPolicyKey(0x01020304)
	_, err = c.Send(context.Background(), &client.Request{Cmd: "SendMail", Raw: []byte("x"), ContentType: "message/rfc822",
		Params: client.Params{CollectionID: "5", SaveInSent: true}, AcceptMultiPart: true})
	if err != nil {
		t.Fatal(err)
	}
	s, err := url.QueryUnescape(raw[0])
	if err != nil {
		t.Fatal(err)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		121, 1, 0x09, 0x04, // version 12.1, SendMail, locale en-US
		3, 0xa1, 0xb2, 0xc3, // DeviceId bytes
		4, 0x04, 0x03, 0x02, 0x01, // PolicyKey, little-endian
		2, 'W', 'P', // DeviceType
		1, 1, '5', // CollectionId
		7, 1, 0x03, // Options: SaveInSent | AcceptMultiPart
		8, 5, 'a', 'l', 'i', 'c', 'e', // User
	}
	if diff := cmp.Diff(want, b); diff != "" {
		t.Errorf("base64 query bytes (-want +got):\n%s", diff)
	}
	if h := headers[0]; h.Get("X-MS-PolicyKey") != "" || h.Get("MS-ASProtocolVersion") != "" {
		t.Errorf("base64 form also sent the headers it replaces: %v", h)
	}
	if _, err := c.Do(context.Background(), "Frobnicate", nil); err == nil {
		t.Error("a command without a base64 code was sent")
	}
}

func TestNewErrors(t *testing.T) {
	for _, cfg := range []client.Config{
		{User: "alice", DeviceID: "D"},
		{URL: "ftp://host", User: "alice", DeviceID: "D"},
		{URL: "https://host", DeviceID: "D"},
		{URL: "https://host", User: "alice"},
	} {
		if _, err := client.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	for in, want := range map[string]string{
		"mail.example.com":                     "https://mail.example.com/Microsoft-Server-ActiveSync",
		"https://h:8443/":                      "https://h:8443/Microsoft-Server-ActiveSync",
		"https://h/eas/?x=1":                   "https://h/eas/Microsoft-Server-ActiveSync",
		"http://h/Microsoft-Server-ActiveSync": "http://h/Microsoft-Server-ActiveSync",
	} {
		u, err := client.EndpointURL(in)
		if err != nil || u.String() != want {
			t.Errorf("EndpointURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
}
