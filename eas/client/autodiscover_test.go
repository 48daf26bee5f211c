package client_test

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/easd/easd/eas/client"
	"github.com/google/go-cmp/cmp"
)

// autodiscoverServer answers the mobilesync schema for alice@example.com
// (password pw), redirects old@example.com to her, and moves
// /moved/… to the real path with HTTP 302.
func autodiscoverServer(t *testing.T) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	mux := http.NewServeMux()
	mux.HandleFunc("/moved/autodiscover/autodiscover.xml", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+"/autodiscover/autodiscover.xml", http.StatusFound)
	})
	mux.HandleFunc("/autodiscover/autodiscover.xml", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		var req struct {
			Request struct {
				EMailAddress             string
				AcceptableResponseSchema string
			}
		}
		if err := xml.NewDecoder(r.Body).Decode(&req); err != nil || !strings.Contains(req.Request.AcceptableResponseSchema, "mobilesync") {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		user, pw, _ := r.BasicAuth()
		if pw != "pw" || !strings.EqualFold(user, req.Request.EMailAddress) {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		var action string
		switch req.Request.EMailAddress {
		case "alice@example.com":
			action = fmt.Sprintf(`<Settings><Server><Type>MobileSync</Type><Url>%s/Microsoft-Server-ActiveSync</Url><Name>x</Name></Server></Settings>`, srv.URL)
		case "old@example.com":
			action = `<Redirect>alice@example.com</Redirect>`
		default:
			action = `<Error><Status>1</Status><Message>unknown user</Message><DebugData/></Error>`
		}
		fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006">
    <Culture>en:us</Culture><User><EMailAddress>%s</EMailAddress></User>
    <Action>%s</Action>
  </Response>
</Autodiscover>`, req.Request.EMailAddress, action)
	})
	srv = httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestAutodiscover(t *testing.T) {
	srv := autodiscoverServer(t)
	want := srv.URL + "/Microsoft-Server-ActiveSync"
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		email, pw  string
		candidates []string
		wantErr    string
	}{
		{name: "base URL", email: "alice@example.com", pw: "pw", candidates: []string{srv.URL}},
		{name: "full URL", email: "alice@example.com", pw: "pw", candidates: []string{srv.URL + "/autodiscover/autodiscover.xml"}},
		{name: "first candidate fails", email: "alice@example.com", pw: "pw",
			candidates: []string{"https://127.0.0.1:1", srv.URL + "/nothing/autodiscover.xml", srv.URL}},
		{name: "HTTP redirect re-posted", email: "alice@example.com", pw: "pw", candidates: []string{srv.URL + "/moved/autodiscover/autodiscover.xml"}},
		{name: "address redirect", email: "old@example.com", pw: "pw", candidates: []string{srv.URL}},
		{name: "wrong password", email: "alice@example.com", pw: "nope", candidates: []string{srv.URL}, wantErr: "HTTP 401"},
		{name: "server error", email: "carol@example.com", pw: "pw", candidates: []string{srv.URL}, wantErr: "unknown user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := client.Autodiscover(ctx, srv.Client(), tc.email, tc.pw, tc.candidates...)
			if tc.wantErr != "" {
				var ae *client.AutodiscoverError
				if !errors.As(err, &ae) || !strings.Contains(err.Error(), tc.wantErr) || len(ae.Attempts) != len(tc.candidates) {
					t.Fatalf("Autodiscover = %q, %v; want an error with %q", got, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), tc.pw) {
					t.Errorf("password in the error: %v", err)
				}
				return
			}
			if err != nil || got != want {
				t.Fatalf("Autodiscover = %q, %v; want %q", got, err, want)
			}
		})
	}
	// The discovered URL is usable as a client URL.
	if _, err := client.New(client.Config{URL: want, User: "alice", DeviceID: "D"}); err != nil {
		t.Error(err)
	}
}

func TestAutodiscoverCandidates(t *testing.T) {
	got, err := client.AutodiscoverCandidates("alice@example.com")
	want := []string{"https://example.com/autodiscover/autodiscover.xml", "https://autodiscover.example.com/autodiscover/autodiscover.xml"}
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("candidates (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"alice", "alice@", "a@b/c"} {
		if _, err := client.AutodiscoverCandidates(bad); err == nil {
			t.Errorf("AutodiscoverCandidates(%q) succeeded", bad)
		}
	}
}
