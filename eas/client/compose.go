package client

import (
	"context"
	"crypto/rand"

	"github.com/easd/easd/wbxml"
)

// ComposeOptions are the parameters of SendMail, SmartReply and
// SmartForward besides the message.
type ComposeOptions struct {
	// ClientID identifies the message for the server's de-duplication of
	// retries (14.0+; required there, so one is made up when empty).
	ClientID string
	// SaveInSent asks the server to keep a copy in Sent Items
	// (SaveInSentItems, or SaveInSent=T in 12.1).
	SaveInSent bool
	// ReplaceMime says the message is complete: the server must not add
	// the original (14.0+ Smart* only).
	ReplaceMime bool
	// FolderID and ItemID (a collection and a ServerId), or LongID, name
	// the message replied to or forwarded.
	FolderID, ItemID, LongID string
}

// SendMail sends the RFC 5322 message mime (MS-ASCMD 2.2.1.17): for 12.1
// as the body (message/rfc822) with SaveInSent=T on the request line,
// from 14.0 as ComposeMail:SendMail with the message as Mime (OPAQUE).
// Success is the empty answer; a failure is an *HTTPError (12.1) or a
// *StatusError (14.0+, e.g. 120 submission failed).
func (c *Client) SendMail(ctx context.Context, mime []byte, o ComposeOptions) error {
	return c.compose(ctx, "SendMail", mime, o)
}

// SmartReply sends a reply to the message named by o (MS-ASCMD 2.2.1.20);
// without ReplaceMime the server quotes the original. See SendMail.
func (c *Client) SmartReply(ctx context.Context, mime []byte, o ComposeOptions) error {
	return c.compose(ctx, "SmartReply", mime, o)
}

// SmartForward forwards the message named by o (MS-ASCMD 2.2.1.19);
// without ReplaceMime the server adds the original's text and
// attachments. See SendMail.
func (c *Client) SmartForward(ctx context.Context, mime []byte, o ComposeOptions) error {
	return c.compose(ctx, "SmartForward", mime, o)
}

func (c *Client) compose(ctx context.Context, cmd string, mime []byte, o ComposeOptions) error {
	if err := c.ensureVersion(ctx); err != nil {
		return err
	}
	if !c.atLeast("14.0") {
		_, err := c.Send(ctx, &Request{Cmd: cmd, Raw: mime, ContentType: "message/rfc822",
			Params: Params{SaveInSent: o.SaveInSent, CollectionID: o.FolderID, ItemID: o.ItemID, LongID: o.LongID}})
		return err
	}
	top := map[string]wbxml.Tag{"SendMail": wbxml.ComposeMailSendMail, "SmartReply": wbxml.ComposeMailSmartReply,
		"SmartForward": wbxml.ComposeMailSmartForward}[cmd]
	id := o.ClientID
	if id == "" {
		id = randomID()
	}
	body := wbxml.E(top, wbxml.T(wbxml.ComposeMailClientId, id))
	if cmd != "SendMail" {
		src := wbxml.E(wbxml.ComposeMailSource)
		if o.LongID != "" {
			src.Append(wbxml.T(wbxml.ComposeMailLongId, o.LongID))
		} else {
			src.Append(wbxml.T(wbxml.ComposeMailFolderId, o.FolderID), wbxml.T(wbxml.ComposeMailItemId, o.ItemID))
		}
		body.Append(src)
	}
	if o.SaveInSent {
		body.Append(wbxml.E(wbxml.ComposeMailSaveInSentItems))
	}
	if o.ReplaceMime && cmd != "SendMail" {
		body.Append(wbxml.E(wbxml.ComposeMailReplaceMime))
	}
	body.Append(wbxml.O(wbxml.ComposeMailMime, mime))
	_, err := c.Do(ctx, cmd, body)
	return err
}

// randomID returns a fresh ClientId.
func randomID() string { return rand.Text() }
