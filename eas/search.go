package eas

import (
	"context"

	"github.com/easd/easd/wbxml"
)

// search runs Search, MS-ASCMD 2.2.1.16. (Being written.)
func (h *Handler) search(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error) {
	return nil, Errorf(StatusCommandNotSupported, "Search not yet served")
}
