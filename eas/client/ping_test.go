package client_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/wbxml"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestPingRequestAndResponse(t *testing.T) {
	c, cs := cannedClient(t, "14.1", func(w http.ResponseWriter, r *http.Request, _ *wbxml.Node, n int) {
		if n == 0 {
			writeWBXML(t, w, wbxml.E(wbxml.PingPing, wbxml.T(wbxml.PingStatus, "2"),
				wbxml.E(wbxml.PingFolders, wbxml.T(wbxml.PingFolder, "5"), wbxml.T(wbxml.PingFolder, "9"))))
			return
		}
		writeWBXML(t, w, wbxml.E(wbxml.PingPing, wbxml.T(wbxml.PingStatus, "1")))
	})
	ctx := context.Background()
	start := time.Now()
	resp, err := c.Ping(ctx, client.PingRequest{HeartbeatInterval: 480,
		Folders: []client.PingFolder{{ID: "5", Class: "Email"}, {ID: "9", Class: "Calendar"}}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.FirstByte.Before(start) || resp.FirstByte.After(time.Now()) {
		t.Errorf("FirstByte %v not within the call (from %v)", resp.FirstByte, start)
	}
	want := &client.PingResponse{Status: client.PingChanges, Folders: []string{"5", "9"}}
	if diff := cmp.Diff(want, resp, cmpopts.IgnoreFields(client.PingResponse{}, "FirstByte")); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}

	// The empty request (MS-ASCMD 2.2.1.13: reuse the cached parameters).
	resp, err = c.Ping(ctx, client.PingRequest{})
	if err != nil || resp.Status != client.PingExpired || len(resp.Folders) != 0 {
		t.Errorf("empty Ping: %+v, %v", resp, err)
	}

	reqs := cs.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	wantReq := wbxml.E(wbxml.PingPing,
		wbxml.T(wbxml.PingHeartbeatInterval, "480"),
		wbxml.E(wbxml.PingFolders,
			wbxml.E(wbxml.PingFolder, wbxml.T(wbxml.PingId, "5"), wbxml.T(wbxml.PingClass, "Email")),
			wbxml.E(wbxml.PingFolder, wbxml.T(wbxml.PingId, "9"), wbxml.T(wbxml.PingClass, "Calendar"))))
	if diff := cmp.Diff(xmlOf(wantReq), reqs[0].Body); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	if reqs[0].Query.Get("Cmd") != "Ping" || reqs[0].Header.Get("Content-Type") != "application/vnd.ms-sync.wbxml" {
		t.Errorf("request line %v, headers %v", reqs[0].Query, reqs[0].Header)
	}
	if reqs[1].Body != "" || reqs[1].Header.Get("Content-Type") != "" {
		t.Errorf("empty request sent a body %q (%q)", reqs[1].Body, reqs[1].Header.Get("Content-Type"))
	}
}

func TestPingOnlyInterval(t *testing.T) {
	c, cs := cannedClient(t, "14.1", func(w http.ResponseWriter, r *http.Request, _ *wbxml.Node, n int) {
		writeWBXML(t, w, wbxml.E(wbxml.PingPing, wbxml.T(wbxml.PingStatus, "1")))
	})
	if _, err := c.Ping(context.Background(), client.PingRequest{HeartbeatInterval: 60}); err != nil {
		t.Fatal(err)
	}
	want := xmlOf(wbxml.E(wbxml.PingPing, wbxml.T(wbxml.PingHeartbeatInterval, "60")))
	if diff := cmp.Diff(want, cs.requests()[0].Body); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
}

func TestPingFailureStatuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		body *wbxml.Node
		want client.PingResponse
	}{
		{"heartbeat out of range", wbxml.E(wbxml.PingPing, wbxml.T(wbxml.PingStatus, "5"), wbxml.T(wbxml.PingHeartbeatInterval, "60")),
			client.PingResponse{Status: client.PingBadHeartbeat, HeartbeatInterval: 60}},
		{"too many folders", wbxml.E(wbxml.PingPing, wbxml.T(wbxml.PingStatus, "6"), wbxml.T(wbxml.PingMaxFolders, "200")),
			client.PingResponse{Status: client.PingTooManyFolders, MaxFolders: 200}},
		{"missing parameters", wbxml.E(wbxml.PingPing, wbxml.T(wbxml.PingStatus, "3")),
			client.PingResponse{Status: client.PingMissingParameters}},
		{"folder sync required", wbxml.E(wbxml.PingPing, wbxml.T(wbxml.PingStatus, "7")),
			client.PingResponse{Status: client.PingFolderSyncRequired}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := cannedClient(t, "14.1", func(w http.ResponseWriter, r *http.Request, _ *wbxml.Node, n int) {
				writeWBXML(t, w, tc.body)
			})
			resp, err := c.Ping(context.Background(), client.PingRequest{})
			var se *client.StatusError
			if !errors.As(err, &se) || se.Command != "Ping" || se.Status != tc.want.Status {
				t.Errorf("error %v, want a Ping StatusError %d", err, tc.want.Status)
			}
			if resp == nil {
				t.Fatal("no response with the status error")
			}
			if diff := cmp.Diff(&tc.want, resp, cmpopts.IgnoreFields(client.PingResponse{}, "FirstByte")); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPingMalformedAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(t *testing.T, w http.ResponseWriter)
	}{
		{"empty 200", func(t *testing.T, w http.ResponseWriter) {}},
		{"other root", func(t *testing.T, w http.ResponseWriter) {
			writeWBXML(t, w, wbxml.E(wbxml.AirSyncSync, wbxml.T(wbxml.AirSyncStatus, "1")))
		}},
		{"no status", func(t *testing.T, w http.ResponseWriter) {
			writeWBXML(t, w, wbxml.E(wbxml.PingPing, wbxml.E(wbxml.PingFolders)))
		}},
		{"not WBXML", func(t *testing.T, w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<html>"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := cannedClient(t, "14.1", func(w http.ResponseWriter, r *http.Request, _ *wbxml.Node, n int) {
				tc.answer(t, w)
			})
			if resp, err := c.Ping(context.Background(), client.PingRequest{}); err == nil {
				t.Errorf("no error; response %+v", resp)
			}
		})
	}
}

// TestPingFirstByte checks that FirstByte is when the parked request was
// answered, not when it was sent, and that the body may come later.
func TestPingFirstByte(t *testing.T) {
	const hold = 150 * time.Millisecond
	c, _ := cannedClient(t, "14.1", func(w http.ResponseWriter, r *http.Request, _ *wbxml.Node, n int) {
		time.Sleep(hold)
		w.Header().Set("Content-Type", "application/vnd.ms-sync.wbxml")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		time.Sleep(hold)
		if err := wbxml.Encode(w, wbxml.E(wbxml.PingPing, wbxml.T(wbxml.PingStatus, "2"),
			wbxml.E(wbxml.PingFolders, wbxml.T(wbxml.PingFolder, "5")))); err != nil {
			t.Error(err)
		}
	})
	start := time.Now()
	resp, err := c.Ping(context.Background(), client.PingRequest{HeartbeatInterval: 60,
		Folders: []client.PingFolder{{ID: "5", Class: "Email"}}})
	end := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if d := resp.FirstByte.Sub(start); d < hold || end.Sub(resp.FirstByte) < hold-10*time.Millisecond {
		t.Errorf("first byte %v after the start and %v before the end; want about %v and %v",
			d, end.Sub(resp.FirstByte), hold, hold)
	}
}
