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
)

func TestMeetingResponse(t *testing.T) {
	resp := wbxml.E(wbxml.MeetingResponseMeetingResponse,
		wbxml.E(wbxml.MeetingResponseResult, wbxml.T(wbxml.MeetingResponseRequestId, "5:7"),
			wbxml.T(wbxml.MeetingResponseStatus, "1"), wbxml.T(wbxml.MeetingResponseCalendarId, "c1:3")),
		wbxml.E(wbxml.MeetingResponseResult, wbxml.T(wbxml.MeetingResponseRequestId, "5:9"), wbxml.T(wbxml.MeetingResponseStatus, "2")))
	c, cs := cannedClient(t, "14.1", func(w http.ResponseWriter, r *http.Request, _ *wbxml.Node, _ int) {
		writeWBXML(t, w, resp)
	})
	got, err := c.MeetingResponse(context.Background(), []client.MeetingReply{
		{Response: client.MeetingAccept, CollectionID: "5", RequestID: "5:7"},
		{Response: client.MeetingDecline, LongID: "5:9", Instance: time.Date(2026, 3, 17, 9, 0, 0, 0, time.UTC)},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []client.MeetingResult{{RequestID: "5:7", Status: 1, CalendarID: "c1:3"}, {RequestID: "5:9", Status: 2}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	wantReq := xmlOf(wbxml.E(wbxml.MeetingResponseMeetingResponse,
		wbxml.E(wbxml.MeetingResponseRequest, wbxml.T(wbxml.MeetingResponseUserResponse, "1"),
			wbxml.T(wbxml.MeetingResponseCollectionId, "5"), wbxml.T(wbxml.MeetingResponseRequestId, "5:7")),
		wbxml.E(wbxml.MeetingResponseRequest, wbxml.T(wbxml.MeetingResponseUserResponse, "3"),
			wbxml.T(wbxml.SearchLongId, "5:9"), wbxml.T(wbxml.MeetingResponseInstanceId, "2026-03-17T09:00:00.000Z"))))
	if reqs := cs.requests(); len(reqs) != 1 || reqs[0].Body != wantReq || reqs[0].Query.Get("Cmd") != "MeetingResponse" {
		t.Errorf("requests %+v; want one MeetingResponse with %s", reqs, wantReq)
	}
}

func TestMeetingResponseTopStatus(t *testing.T) {
	c, _ := cannedClient(t, "14.1", func(w http.ResponseWriter, r *http.Request, _ *wbxml.Node, _ int) {
		writeWBXML(t, w, wbxml.E(wbxml.MeetingResponseMeetingResponse, wbxml.T(wbxml.MeetingResponseStatus, "101")))
	})
	_, err := c.MeetingResponse(context.Background(), []client.MeetingReply{{Response: client.MeetingAccept, CollectionID: "5", RequestID: "5:1"}})
	var se *client.StatusError
	if !errors.As(err, &se) || se.Status != 101 {
		t.Errorf("MeetingResponse with status 101: %v; want a *StatusError", err)
	}
}
