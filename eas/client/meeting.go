package client

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/easd/easd/wbxml"
)

// UserResponse values of MeetingResponse (MS-ASCMD 2.2.3.194).
const (
	MeetingAccept    = 1
	MeetingTentative = 2
	MeetingDecline   = 3
)

// MeetingReply is one Request of MeetingResponse (MS-ASCMD 2.2.1.11):
// the user's answer to a meeting request.
type MeetingReply struct {
	// Response is MeetingAccept, MeetingTentative or MeetingDecline.
	Response int
	// CollectionID and RequestID name the meeting request: its folder
	// (Inbox, or a calendar folder for a meeting there) and ServerId.
	CollectionID, RequestID string
	// LongID names a Search result instead (search:LongId).
	LongID string
	// Instance, when not zero, answers one occurrence of a recurring
	// meeting (its original start; InstanceId, 14.1 and later).
	Instance time.Time
}

// MeetingResult is the server's Result for one MeetingReply.
type MeetingResult struct {
	// RequestID is the request's id as the server echoes it.
	RequestID string
	// Status is MS-ASCMD 2.2.3.177.9: 1 success, 2 invalid meeting
	// request, 3 mailbox error, 4 server error (0 if missing).
	Status int
	// CalendarID is the ServerId of the meeting in the calendar; "" after
	// a decline.
	CalendarID string
}

// MeetingResponse sends the replies and returns the server's Results in
// the order received. A failing top-level Status (a request the server
// could not read) is a *StatusError. Before 16.0 the server does not
// tell the organizer: the client mails the iTIP REPLY itself (SendMail).
func (c *Client) MeetingResponse(ctx context.Context, replies []MeetingReply) ([]MeetingResult, error) {
	req := wbxml.E(wbxml.MeetingResponseMeetingResponse)
	for _, r := range replies {
		n := wbxml.E(wbxml.MeetingResponseRequest, wbxml.T(wbxml.MeetingResponseUserResponse, strconv.Itoa(r.Response)))
		if r.CollectionID != "" {
			n.Append(wbxml.T(wbxml.MeetingResponseCollectionId, r.CollectionID))
		}
		if r.RequestID != "" {
			n.Append(wbxml.T(wbxml.MeetingResponseRequestId, r.RequestID))
		}
		if r.LongID != "" {
			n.Append(wbxml.T(wbxml.SearchLongId, r.LongID))
		}
		if !r.Instance.IsZero() {
			n.Append(wbxml.T(wbxml.MeetingResponseInstanceId, r.Instance.UTC().Format("2006-01-02T15:04:05.000Z")))
		}
		req.Append(n)
	}
	resp, err := c.Do(ctx, "MeetingResponse", req)
	if err != nil {
		return nil, err
	}
	if resp.Body == nil {
		return nil, errors.New("client: MeetingResponse: empty response")
	}
	var out []MeetingResult
	for r := range resp.Body.Each(wbxml.MeetingResponseResult) {
		st, _ := strconv.Atoi(r.ChildText(wbxml.MeetingResponseStatus))
		out = append(out, MeetingResult{
			RequestID:  r.ChildText(wbxml.MeetingResponseRequestId),
			Status:     st,
			CalendarID: r.ChildText(wbxml.MeetingResponseCalendarId),
		})
	}
	return out, nil
}
