package client_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/wbxml"
	"github.com/google/go-cmp/cmp"
)

func TestMoveItems(t *testing.T) {
	resp := wbxml.E(wbxml.MoveMoveItems,
		wbxml.E(wbxml.MoveResponse, wbxml.T(wbxml.MoveSrcMsgId, "5:1"), wbxml.T(wbxml.MoveStatus, "3"), wbxml.T(wbxml.MoveDstMsgId, "9:4")),
		wbxml.E(wbxml.MoveResponse, wbxml.T(wbxml.MoveSrcMsgId, "5:2"), wbxml.T(wbxml.MoveStatus, "1")))
	c, cs := cannedClient(t, "14.1", func(w http.ResponseWriter, r *http.Request, _ *wbxml.Node, _ int) {
		writeWBXML(t, w, resp)
	})
	got, err := c.MoveItems(context.Background(), []client.Move{{"5:1", "5", "9"}, {"5:2", "5", "9"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []client.MoveResult{{SrcMsgID: "5:1", Status: 3, DstMsgID: "9:4"}, {SrcMsgID: "5:2", Status: 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	reqs := cs.requests()
	wantReq := xmlOf(wbxml.E(wbxml.MoveMoveItems,
		wbxml.E(wbxml.MoveMove, wbxml.T(wbxml.MoveSrcMsgId, "5:1"), wbxml.T(wbxml.MoveSrcFldId, "5"), wbxml.T(wbxml.MoveDstFldId, "9")),
		wbxml.E(wbxml.MoveMove, wbxml.T(wbxml.MoveSrcMsgId, "5:2"), wbxml.T(wbxml.MoveSrcFldId, "5"), wbxml.T(wbxml.MoveDstFldId, "9"))))
	if len(reqs) != 1 || reqs[0].Body != wantReq || reqs[0].Query.Get("Cmd") != "MoveItems" {
		t.Errorf("requests %+v; want one MoveItems with %s", reqs, wantReq)
	}
}

func TestMoveItemsTopStatus(t *testing.T) {
	c, _ := cannedClient(t, "14.1", func(w http.ResponseWriter, r *http.Request, _ *wbxml.Node, _ int) {
		writeWBXML(t, w, wbxml.E(wbxml.MoveMoveItems, wbxml.T(wbxml.MoveStatus, "101")))
	})
	_, err := c.MoveItems(context.Background(), []client.Move{{"5:1", "5", "9"}})
	var se *client.StatusError
	if !errors.As(err, &se) || se.Status != 101 {
		t.Errorf("MoveItems with status 101: %v; want a *StatusError", err)
	}
}
