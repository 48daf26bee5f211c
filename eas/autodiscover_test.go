package eas

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// adServer serves Autodiscover (sharing ts.h's lockout) and ActiveSync as
// cmd/easd routes them.
func (ts *testServer) adServer(cfg AutodiscoverConfig) *httptest.Server {
	ts.t.Helper()
	ad := ts.h.Autodiscover(cfg)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if IsAutodiscoverPath(r.URL.Path) {
			ad.ServeHTTP(w, r)
			return
		}
		ts.h.ServeHTTP(w, r)
	}))
	ts.t.Cleanup(srv.Close)
	return srv
}

// adCall is one Autodiscover request.
type adCall struct {
	method     string // POST when empty
	path       string // /autodiscover/autodiscover.xml when empty
	user, pass string // alice@example.com / alice-pw when empty; pass "-" sends none
	body       string
	chunked    bool // send the body without Content-Length
}

type adReply struct {
	code   int
	header http.Header
	body   []byte
}

func adDo(t *testing.T, srv *httptest.Server, c adCall) adReply {
	t.Helper()
	if c.method == "" {
		c.method = http.MethodPost
	}
	if c.path == "" {
		c.path = "/autodiscover/autodiscover.xml"
	}
	if c.user == "" {
		c.user = "alice@example.com"
	}
	if c.pass == "" {
		c.pass = "alice-pw"
	}
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
		if c.chunked {
			body = io.MultiReader(body) // hides the length from http.NewRequest
		}
	}
	req, err := http.NewRequest(c.method, srv.URL+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if c.pass != "-" {
		req.SetBasicAuth(c.user, c.pass)
	}
	req.Header.Set("Content-Type", "text/xml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return adReply{resp.StatusCode, resp.Header, b}
}

// poxRequest is a mobilesync request for email asking for schema.
func poxRequest(email, schema string) string {
	return `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006">
  <Request>
    <EMailAddress>` + email + `</EMailAddress>
    <AcceptableResponseSchema>` + schema + `</AcceptableResponseSchema>
  </Request>
</Autodiscover>`
}

// The response as parsed back, with the namespaces the schema requires.
type poxResult struct {
	ResponseNS  string
	Culture     string
	DisplayName string
	Email       string
	Servers     []poxServer
	ErrorCode   int
	Message     string
}

type poxServer struct{ Type, URL, Name string }

func parsePOX(t *testing.T, r adReply) poxResult {
	t.Helper()
	if r.code != 200 || r.header.Get("Content-Type") != "text/xml; charset=utf-8" {
		t.Fatalf("HTTP %d %q: %s", r.code, r.header.Get("Content-Type"), r.body)
	}
	var doc struct {
		XMLName  xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
		Response struct {
			XMLName xml.Name
			Culture string `xml:"http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006 Culture"`
			User    struct {
				DisplayName  string `xml:"http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006 DisplayName"`
				EMailAddress string `xml:"http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006 EMailAddress"`
			} `xml:"http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006 User"`
			Servers []struct {
				Type string `xml:"http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006 Type"`
				URL  string `xml:"http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006 Url"`
				Name string `xml:"http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006 Name"`
			} `xml:"http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006 Action>Settings>Server"`
			Error struct {
				Time      string `xml:"Time,attr"`
				ErrorCode int    `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 ErrorCode"`
				Message   string `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Message"`
			} `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Error"`
		}
	}
	if err := xml.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("response does not parse: %v\n%s", err, r.body)
	}
	res := poxResult{
		ResponseNS: doc.Response.XMLName.Space, Culture: doc.Response.Culture,
		DisplayName: doc.Response.User.DisplayName, Email: doc.Response.User.EMailAddress,
		ErrorCode: doc.Response.Error.ErrorCode, Message: doc.Response.Error.Message,
	}
	for _, s := range doc.Response.Servers {
		res.Servers = append(res.Servers, poxServer{s.Type, s.URL, s.Name})
	}
	if res.ErrorCode != 0 && doc.Response.Error.Time == "" {
		t.Errorf("error without Time: %s", r.body)
	}
	return res
}

const easURL = "https://mail.example.com/Microsoft-Server-ActiveSync"

func TestAutodiscoverPOX(t *testing.T) {
	ts := newTestServer(t, nil)
	srv := ts.adServer(AutodiscoverConfig{URL: "https://mail.example.com"})
	success := poxResult{ResponseNS: adMobileSyncNS, Culture: "en:us", DisplayName: "alice", Email: "alice@example.com",
		Servers: []poxServer{{"MobileSync", easURL, easURL}}}

	for _, p := range []string{"/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml", "/AUTODISCOVER/AUTODISCOVER.XML"} {
		r := adDo(t, srv, adCall{path: p, body: poxRequest("alice@example.com", adMobileSyncNS)})
		if diff := cmp.Diff(success, parsePOX(t, r)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", p, diff)
		}
	}
	// The bare login works as well as the address.
	r := adDo(t, srv, adCall{user: "alice", body: poxRequest("Alice@Example.com", adMobileSyncNS)})
	want := success
	want.Email = "Alice@Example.com"
	if diff := cmp.Diff(want, parsePOX(t, r)); diff != "" {
		t.Errorf("login alice (-want +got):\n%s", diff)
	}
	// Without AcceptableResponseSchema the mobilesync answer is given.
	r = adDo(t, srv, adCall{body: `<Autodiscover><Request><EMailAddress>alice@example.com</EMailAddress></Request></Autodiscover>`})
	if diff := cmp.Diff(success, parsePOX(t, r)); diff != "" {
		t.Errorf("no schema (-want +got):\n%s", diff)
	}

	// Another address, existing or not, gets the same URL and no display
	// name: the answer does not tell them apart.
	other := func(addr string) poxResult {
		return poxResult{ResponseNS: adMobileSyncNS, Culture: "en:us", Email: addr, Servers: []poxServer{{"MobileSync", easURL, easURL}}}
	}
	for _, addr := range []string{"bob@example.com", "nobody@example.com"} {
		r := adDo(t, srv, adCall{body: poxRequest(addr, adMobileSyncNS)})
		if diff := cmp.Diff(other(addr), parsePOX(t, r)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", addr, diff)
		}
	}
}

func TestAutodiscoverPOXErrors(t *testing.T) {
	ts := newTestServer(t, nil)
	srv := ts.adServer(AutodiscoverConfig{URL: "https://mail.example.com/Microsoft-Server-ActiveSync", MaxBodyBytes: 1024})
	invalid := poxResult{ResponseNS: adResponseNS, ErrorCode: 600, Message: "Invalid Request"}
	for _, tc := range []struct {
		name string
		c    adCall
		want poxResult
	}{
		{"malformed XML", adCall{body: "<Autodiscover><Request><EMailAddress>alice@"}, invalid},
		{"not XML", adCall{body: "hello"}, invalid},
		{"other root", adCall{body: `<Discover><Request><EMailAddress>alice@example.com</EMailAddress></Request></Discover>`}, invalid},
		{"no address", adCall{body: poxRequest("", adMobileSyncNS)}, invalid},
		{"empty body", adCall{}, invalid},
		{"GET probe with credentials", adCall{method: http.MethodGet}, invalid},
		{"Outlook desktop schema", adCall{body: `<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request>` +
			`<EMailAddress>alice@example.com</EMailAddress>` +
			`<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>` +
			`</Request></Autodiscover>`},
			poxResult{ResponseNS: adResponseNS, ErrorCode: 601, Message: "The requested schema is not available"}},
	} {
		if diff := cmp.Diff(tc.want, parsePOX(t, adDo(t, srv, tc.c))); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}

	for _, tc := range []struct {
		name string
		c    adCall
		code int
	}{
		{"no credentials", adCall{pass: "-", body: poxRequest("alice@example.com", adMobileSyncNS)}, 401},
		{"wrong password", adCall{pass: "wrong", body: poxRequest("alice@example.com", adMobileSyncNS)}, 401},
		{"unknown user", adCall{user: "mallory@example.com", pass: "x", body: poxRequest("mallory@example.com", adMobileSyncNS)}, 401},
		{"GET without credentials", adCall{method: http.MethodGet, pass: "-"}, 401},
		{"PUT", adCall{method: http.MethodPut}, 405},
		{"oversized body", adCall{body: poxRequest(strings.Repeat("a", 2000)+"@example.com", adMobileSyncNS)}, 413},
		{"oversized chunked body", adCall{chunked: true, body: poxRequest(strings.Repeat("a", 2000)+"@example.com", adMobileSyncNS)}, 413},
	} {
		r := adDo(t, srv, tc.c)
		if r.code != tc.code {
			t.Errorf("%s: HTTP %d, want %d", tc.name, r.code, tc.code)
		}
		if tc.code == 401 && r.header.Get("WWW-Authenticate") != `Basic realm="easd"` {
			t.Errorf("%s: WWW-Authenticate %q", tc.name, r.header.Get("WWW-Authenticate"))
		}
	}

	// A disabled user gets 403.
	if err := ts.st.SetDisabled(context.Background(), "bob", true); err != nil {
		t.Fatal(err)
	}
	if r := adDo(t, srv, adCall{user: "bob", pass: "bob-pw", body: poxRequest("bob@example.com", adMobileSyncNS)}); r.code != 403 {
		t.Errorf("disabled user: HTTP %d, want 403", r.code)
	}
}

// TestAutodiscoverLockout: failed logins on Autodiscover count toward the
// ActiveSync lockout, so it is no way around it.
func TestAutodiscoverLockout(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.LoginFailures = 3 })
	srv := ts.adServer(AutodiscoverConfig{URL: "https://mail.example.com"})
	for range 3 {
		if r := adDo(t, srv, adCall{pass: "guess", body: poxRequest("alice@example.com", adMobileSyncNS)}); r.code != 401 {
			t.Fatalf("wrong password: HTTP %d", r.code)
		}
	}
	if r := adDo(t, srv, adCall{body: poxRequest("alice@example.com", adMobileSyncNS)}); r.code != 503 || r.header.Get("Retry-After") == "" {
		t.Errorf("right password while locked out: HTTP %d Retry-After %q, want 503", r.code, r.header.Get("Retry-After"))
	}
	if r := ts.do(call{method: http.MethodOptions}); r.code != 503 {
		t.Errorf("ActiveSync OPTIONS while locked out: HTTP %d, want 503", r.code)
	}

	// NewAutodiscover has a lockout of its own.
	ad := NewAutodiscover(AutodiscoverConfig{URL: "https://mail.example.com", LoginFailures: 2}, LocalAuth{Users: ts.st}, nil)
	own := httptest.NewServer(ad)
	defer own.Close()
	for _, want := range []int{401, 401, 503} {
		if r := adDo(t, own, adCall{user: "bob", pass: "guess", body: poxRequest("bob@example.com", adMobileSyncNS)}); r.code != want {
			t.Errorf("standalone, wrong password: HTTP %d, want %d", r.code, want)
		}
	}
}

func TestAutodiscoverJSON(t *testing.T) {
	ts := newTestServer(t, nil)
	srv := ts.adServer(AutodiscoverConfig{URL: "https://mail.example.com/"})
	type answer struct {
		Protocol, Url, ErrorCode string
	}
	for _, tc := range []struct {
		name   string
		method string
		path   string
		code   int
		want   answer
	}{
		{"query form", "", "/autodiscover/autodiscover.json?Email=alice%40example.com&Protocol=ActiveSync&RedirectCount=1", 200,
			answer{Protocol: "ActiveSync", Url: easURL}},
		{"path form", "", "/autodiscover/autodiscover.json/v1.0/alice@example.com?Protocol=ActiveSync", 200,
			answer{Protocol: "ActiveSync", Url: easURL}},
		{"path form, escaped, other case", "", "/AutoDiscover/AutoDiscover.json/V1.0/bob%40example.com?protocol=activesync", 200,
			answer{Protocol: "ActiveSync", Url: easURL}},
		{"unknown address, same answer", "", "/autodiscover/autodiscover.json?Email=nobody%40example.com&Protocol=ActiveSync", 200,
			answer{Protocol: "ActiveSync", Url: easURL}},
		{"AutodiscoverV1", "", "/autodiscover/autodiscover.json/v1.0/alice@example.com?Protocol=Autodiscoverv1&RedirectCount=1", 200,
			answer{Protocol: "AutodiscoverV1", Url: "https://mail.example.com/autodiscover/autodiscover.xml"}},
		{"EWS is not served", "", "/autodiscover/autodiscover.json?Email=alice%40example.com&Protocol=Ews", 400,
			answer{ErrorCode: "InvalidProtocol"}},
		{"no protocol", "", "/autodiscover/autodiscover.json?Email=alice%40example.com", 400, answer{ErrorCode: "InvalidProtocol"}},
		{"no address", "", "/autodiscover/autodiscover.json?Protocol=ActiveSync", 400, answer{ErrorCode: "InvalidUser"}},
		{"not an address", "", "/autodiscover/autodiscover.json/v1.0/alice?Protocol=ActiveSync", 400, answer{ErrorCode: "InvalidUser"}},
		{"POST", http.MethodPost, "/autodiscover/autodiscover.json?Email=alice%40example.com&Protocol=ActiveSync", 405, answer{}},
	} {
		method := tc.method
		if method == "" {
			method = http.MethodGet
		}
		// No credentials: the JSON form is public.
		r := adDo(t, srv, adCall{method: method, path: tc.path, pass: "-"})
		if r.code != tc.code {
			t.Errorf("%s: HTTP %d, want %d: %s", tc.name, r.code, tc.code, r.body)
			continue
		}
		if tc.code == 405 {
			continue
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
			t.Errorf("%s: Content-Type %q", tc.name, ct)
		}
		var got answer
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Errorf("%s: %v: %s", tc.name, err, r.body)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	// Other paths under /autodiscover are not ours.
	if r := adDo(t, srv, adCall{method: http.MethodGet, path: "/autodiscover/autodiscover.json/v2.0/a@b", pass: "-"}); r.code != 404 {
		t.Errorf("v2.0 path: HTTP %d, want 404", r.code)
	}
}

func TestAutodiscoverURLs(t *testing.T) {
	for _, tc := range []struct {
		url, eas, pox string
	}{
		{"https://mail.example.com", easURL, "https://mail.example.com/autodiscover/autodiscover.xml"},
		{"https://mail.example.com/", easURL, "https://mail.example.com/autodiscover/autodiscover.xml"},
		{"https://mail.example.com/microsoft-server-activesync", easURL, "https://mail.example.com/autodiscover/autodiscover.xml"},
		{"https://mail.example.com:8443/eas/", "https://mail.example.com:8443/eas/Microsoft-Server-ActiveSync",
			"https://mail.example.com:8443/eas/autodiscover/autodiscover.xml"},
	} {
		a := newAutodiscover(AutodiscoverConfig{URL: tc.url}, nil, nil)
		if err := (AutodiscoverConfig{URL: tc.url}).Validate(); err != nil || a.cfgErr != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if a.easURL != tc.eas || a.xmlURL != tc.pox {
			t.Errorf("%s: %s %s, want %s %s", tc.url, a.easURL, a.xmlURL, tc.eas, tc.pox)
		}
	}
	for _, bad := range []string{"mail.example.com", "ftp://mail.example.com", "https://", "https://u:p@mail.example.com", "https://mail.example.com/?x=1", "://"} {
		if err := (AutodiscoverConfig{URL: bad}).Validate(); err == nil {
			t.Errorf("%q accepted", bad)
		}
		// A handler built anyway fails closed.
		srv := httptest.NewServer(NewAutodiscover(AutodiscoverConfig{URL: bad}, nil, nil))
		r := adDo(t, srv, adCall{method: http.MethodGet, path: "/autodiscover/autodiscover.json?Email=a%40b.c&Protocol=ActiveSync", pass: "-"})
		srv.Close()
		if r.code != 500 {
			t.Errorf("%q: HTTP %d, want 500", bad, r.code)
		}
	}

	// Without a URL, the request's Host decides; a Host that is no host
	// name is refused.
	a := newAutodiscover(AutodiscoverConfig{}, nil, nil)
	for _, tc := range []struct{ host, eas string }{
		{"Mail.Example.com", easURL},
		{"mail.example.com:8443", "https://mail.example.com:8443/Microsoft-Server-ActiveSync"},
		{"evil.example/x?", ""},
		{"", ""},
	} {
		r := httptest.NewRequest(http.MethodGet, "/autodiscover/autodiscover.json", nil)
		r.Host = tc.host
		got, _, err := a.urls(r)
		if got != tc.eas || (err != nil) != (tc.eas == "") {
			t.Errorf("Host %q: %q, %v; want %q", tc.host, got, err, tc.eas)
		}
	}
}

func TestIsAutodiscoverPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/autodiscover/autodiscover.xml":                   true,
		"/Autodiscover/Autodiscover.xml":                   true,
		"/autodiscover/autodiscover.json":                  true,
		"/autodiscover/autodiscover.json/v1.0/a@b.example": true,
		"/AUTODISCOVER/AUTODISCOVER.JSON/V1.0/a@b.example": true,
		"/autodiscover/autodiscover.json/v1.0/":            false,
		"/autodiscover/autodiscover.json/v1.0/a/b":         false,
		"/autodiscover/autodiscover.jsonx":                 false,
		"/autodiscover/autodiscover.xml/":                  false,
		"/autodiscover":                                    false,
		"/Microsoft-Server-ActiveSync":                     false,
		"":                                                 false,
	} {
		if got := IsAutodiscoverPath(p); got != want {
			t.Errorf("IsAutodiscoverPath(%q) = %v, want %v", p, got, want)
		}
	}
}
