package eas

import (
	"context"

	"github.com/easd/easd/wbxml"
)

// moveItems runs MoveItems, MS-ASCMD 2.2.1.12. (Being written.)
func (h *Handler) moveItems(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error) {
	return nil, Errorf(StatusCommandNotSupported, "MoveItems not yet served")
}
