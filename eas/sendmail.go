package eas

import (
	"context"

	"github.com/easd/easd/wbxml"
)

// sendMail runs SendMail, MS-ASCMD 2.2.1.17. (Being written.)
func (h *Handler) sendMail(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error) {
	return nil, Errorf(StatusCommandNotSupported, "SendMail not yet served")
}

// smartReply runs SmartReply, MS-ASCMD 2.2.1.20. (Being written.)
func (h *Handler) smartReply(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error) {
	return nil, Errorf(StatusCommandNotSupported, "SmartReply not yet served")
}

// smartForward runs SmartForward, MS-ASCMD 2.2.1.19. (Being written.)
func (h *Handler) smartForward(ctx context.Context, s *Session, body *wbxml.Node) (*wbxml.Node, error) {
	return nil, Errorf(StatusCommandNotSupported, "SmartForward not yet served")
}
