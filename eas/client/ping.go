package client

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/easd/easd/wbxml"
)

// Ping statuses (MS-ASCMD 2.2.3.162.10).
const (
	// PingExpired: the heartbeat interval passed without changes; ping
	// again.
	PingExpired = 1
	// PingChanges: folders changed (PingResponse.Folders); sync them.
	PingChanges = 2
	// PingMissingParameters: the request left out parameters the server
	// had not cached; send the full request.
	PingMissingParameters = 3
	// PingSyntaxError: the request was malformed.
	PingSyntaxError = 4
	// PingBadHeartbeat: the heartbeat interval is out of range;
	// PingResponse.HeartbeatInterval is the nearest allowed one.
	PingBadHeartbeat = 5
	// PingTooManyFolders: PingResponse.MaxFolders is the most allowed.
	PingTooManyFolders = 6
	// PingFolderSyncRequired: the hierarchy changed; FolderSync first.
	PingFolderSyncRequired = 7
	// PingServerError: the server failed; retry later.
	PingServerError = 8
)

// PingFolder is one folder to watch.
type PingFolder struct {
	// ID is the folder's ServerId from FolderSync.
	ID string
	// Class is "Email", "Calendar", "Contacts", "Tasks" or "Notes".
	Class string
}

// PingRequest is one Ping (MS-ASCMD 2.2.1.13).
type PingRequest struct {
	// HeartbeatInterval is how long, in seconds, the server may hold the
	// request before answering PingExpired; 0 leaves it out.
	HeartbeatInterval int
	// Folders are the folders to watch; empty leaves the element out. A
	// request with neither HeartbeatInterval nor Folders is sent with an
	// empty body: the server reuses the parameters of the device's last
	// Ping.
	Folders []PingFolder
}

// PingResponse is a decoded Ping response.
type PingResponse struct {
	// Status is one of the Ping* statuses.
	Status int
	// Folders are the ServerIds of the changed folders (PingChanges).
	Folders []string
	// HeartbeatInterval is the allowed interval sent with
	// PingBadHeartbeat, else 0.
	HeartbeatInterval int
	// MaxFolders is the most folders allowed, sent with
	// PingTooManyFolders, else 0.
	MaxFolders int
	// FirstByte is when the first byte of the answer (of its status
	// line) arrived, for latency measurements: a parked Ping answers
	// nothing before. It is the zero time when the HTTP transport does
	// not report it (httptrace). Should the client provision and send the
	// request again, it is the time of the last answer.
	FirstByte time.Time
}

// Ping asks the server to answer when one of the folders changes or the
// heartbeat interval passes. It blocks as long as the server holds the
// request, so ctx and the HTTP client's timeout must allow for
// HeartbeatInterval.
//
// Statuses PingExpired and PingChanges are success. Any other status is a
// *StatusError returned together with the decoded response (whose
// HeartbeatInterval or MaxFolders the caller may need).
func (c *Client) Ping(ctx context.Context, req PingRequest) (*PingResponse, error) {
	var (
		mu        sync.Mutex
		firstByte time.Time
	)
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotFirstResponseByte: func() {
			now := time.Now()
			mu.Lock()
			firstByte = now
			mu.Unlock()
		},
	})
	resp, err := c.Do(ctx, "Ping", pingBody(req))
	if resp == nil {
		return nil, err
	}
	mu.Lock()
	pr := &PingResponse{FirstByte: firstByte}
	mu.Unlock()
	if resp.Body == nil {
		if err == nil {
			if resp.Raw != nil {
				err = fmt.Errorf("client: Ping: unexpected %q response", resp.Header.Get("Content-Type"))
			} else {
				err = errors.New("client: Ping: empty response")
			}
		}
		return pr, err
	}
	if resp.Body.Tag != wbxml.PingPing {
		return pr, fmt.Errorf("client: Ping: response root is %v", resp.Body.Tag)
	}
	st := strings.TrimSpace(resp.Body.ChildText(wbxml.PingStatus))
	pr.Status, _ = strconv.Atoi(st)
	if pr.Status == 0 && err == nil {
		return pr, fmt.Errorf("client: Ping: status %q", st)
	}
	for n := range resp.Body.Child(wbxml.PingFolders).Each(wbxml.PingFolder) {
		pr.Folders = append(pr.Folders, strings.TrimSpace(n.Text()))
	}
	pr.HeartbeatInterval = atoi(resp.Body.ChildText(wbxml.PingHeartbeatInterval))
	pr.MaxFolders = atoi(resp.Body.ChildText(wbxml.PingMaxFolders))
	return pr, err
}

// pingBody renders req; nil (an empty body) for the empty request.
func pingBody(req PingRequest) *wbxml.Node {
	if req.HeartbeatInterval == 0 && len(req.Folders) == 0 {
		return nil
	}
	root := wbxml.E(wbxml.PingPing)
	if req.HeartbeatInterval > 0 {
		root.Append(wbxml.T(wbxml.PingHeartbeatInterval, strconv.Itoa(req.HeartbeatInterval)))
	}
	if len(req.Folders) > 0 {
		folders := wbxml.E(wbxml.PingFolders)
		for _, f := range req.Folders {
			folders.Append(wbxml.E(wbxml.PingFolder,
				wbxml.T(wbxml.PingId, f.ID), wbxml.T(wbxml.PingClass, f.Class)))
		}
		root.Append(folders)
	}
	return root
}
