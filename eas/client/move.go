package client

import (
	"context"
	"errors"
	"strconv"

	"github.com/easd/easd/wbxml"
)

// Move is one item of a MoveItems request (MS-ASCMD 2.2.1.12).
type Move struct {
	// SrcMsgID is the item's ServerId, SrcFldID its folder's and
	// DstFldID the destination folder's.
	SrcMsgID, SrcFldID, DstFldID string
}

// MoveResult is the server's answer for one Move.
type MoveResult struct {
	// SrcMsgID is the item's ServerId as sent.
	SrcMsgID string
	// Status is the item's status (MS-ASCMD 2.2.3.177.10): 1 invalid
	// source, 2 invalid destination, 3 success, 4 same source and
	// destination, 5 failure (retry), 7 locked; 0 if missing.
	Status int
	// DstMsgID is the item's new ServerId; "" when the server gave none.
	DstMsgID string
}

// MoveItems moves items between folders and returns the server's
// Responses, in the order received. A failing top-level Status (a
// request the server could not read) is a *StatusError.
func (c *Client) MoveItems(ctx context.Context, moves []Move) ([]MoveResult, error) {
	req := wbxml.E(wbxml.MoveMoveItems)
	for _, m := range moves {
		req.Append(wbxml.E(wbxml.MoveMove,
			wbxml.T(wbxml.MoveSrcMsgId, m.SrcMsgID),
			wbxml.T(wbxml.MoveSrcFldId, m.SrcFldID),
			wbxml.T(wbxml.MoveDstFldId, m.DstFldID)))
	}
	resp, err := c.Do(ctx, "MoveItems", req)
	if err != nil {
		return nil, err
	}
	if resp.Body == nil {
		return nil, errors.New("client: MoveItems: empty response")
	}
	var out []MoveResult
	for r := range resp.Body.Each(wbxml.MoveResponse) {
		st, _ := strconv.Atoi(r.ChildText(wbxml.MoveStatus))
		out = append(out, MoveResult{
			SrcMsgID: r.ChildText(wbxml.MoveSrcMsgId),
			Status:   st,
			DstMsgID: r.ChildText(wbxml.MoveDstMsgId),
		})
	}
	return out, nil
}
