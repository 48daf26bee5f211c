package eas_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset"

	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/wbxml"
)

// newSendEnv is newMailEnv with a real Postfix behind Deps.Submit.
func newSendEnv(t testing.TB) *mailEnv { return startMailEnv(t, true) }

// folderMessages returns the raw messages of a user's folder, waiting up
// to 30 s until one has the subject want (none when want is "").
func (e *mailEnv) folderMessages(user, folder, want string) []string {
	e.t.Helper()
	c := e.imap(user)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			e.t.Fatal(err)
		}
		var msgs []string
		found := want == ""
		if sel.NumMessages > 0 {
			var set imap.SeqSet
			set.AddRange(1, 0)
			bufs, err := c.Fetch(set, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
			if err != nil {
				e.t.Fatal(err)
			}
			for _, b := range bufs {
				for _, sec := range b.BodySection {
					msgs = append(msgs, string(sec.Bytes))
					if want != "" && strings.Contains(string(sec.Bytes), "\r\nSubject: "+want+"\r\n") {
						found = true
					}
				}
			}
		}
		if found {
			return msgs
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no message %q in %s's %s; it has %d", want, user, folder, len(msgs))
		}
	}
}

// withSubject returns the messages with a subject.
func withSubject(msgs []string, subject string) []string {
	var out []string
	for _, m := range msgs {
		if strings.Contains(m, "\r\nSubject: "+subject+"\r\n") || strings.HasPrefix(m, "Subject: "+subject+"\r\n") {
			out = append(out, m)
		}
	}
	return out
}

// mimeParts returns a message's header and decoded leaf parts by type.
func mimeParts(t testing.TB, raw string) (gomessage.Header, map[string][]string) {
	t.Helper()
	e, err := gomessage.Read(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]string{}
	err = e.Walk(func(_ []int, p *gomessage.Entity, err error) error {
		if err != nil {
			return err
		}
		if mt, _, _ := p.Header.ContentType(); !strings.HasPrefix(mt, "multipart/") {
			b, err := io.ReadAll(p.Body)
			m[mt] = append(m[mt], string(b))
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v:\n%s", err, raw)
	}
	return e.Header, m
}

func TestSendMailE2E(t *testing.T) {
	e := newSendEnv(t)
	ctx := context.Background()
	phone := e.phone("alice", "IPHONEA", "iPhone", "14.1")
	fs, _ := folders(t, phone)
	mime := []byte("From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\nBcc: alice@example.test\r\nSubject: dinner\r\nMessage-ID: <dinner@example.test>\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\nDinner at eight?\r\n")
	if err := phone.SendMail(ctx, mime, client.ComposeOptions{ClientID: "c1", SaveInSent: true}); err != nil {
		t.Fatal(err)
	}
	got := withSubject(e.folderMessages("bob", "INBOX", "dinner"), "dinner")
	if len(got) != 1 || strings.Contains(strings.ToLower(got[0]), "bcc:") || !strings.Contains(got[0], "Authenticated sender: alice") {
		t.Fatalf("bob's INBOX: %q", got)
	}
	// The Bcc recipient got it too.
	e.folderMessages("alice", "INBOX", "dinner")

	// Bob's phone syncs it.
	bobPhone := e.phone("bob", "ANDROIDB", "Android", "14.1")
	bfs, _ := folders(t, bobPhone)
	items, _ := syncAll(t, bobPhone, bfs["Inbox"].ServerID, client.SyncOptions{})
	var subjects []string
	for _, it := range items {
		subjects = append(subjects, appText(it, wbxml.EmailSubject))
	}
	if strings.Join(subjects, ",") != "dinner" {
		t.Errorf("bob's phone synced %q", subjects)
	}

	// Alice's Sent has the copy, with its Bcc, read; her phone syncs it.
	sent := e.folderMessages("alice", "Sent", "dinner")
	if len(sent) != 1 || !strings.Contains(sent[0], "Bcc: alice@example.test\r\n") {
		t.Fatalf("alice's Sent: %q", sent)
	}
	sentItems, _ := syncAll(t, phone, fs["Sent"].ServerID, client.SyncOptions{})
	if len(sentItems) != 1 {
		t.Errorf("alice's phone syncs %d items in Sent", len(sentItems))
	}
	for _, it := range sentItems {
		if appText(it, wbxml.EmailRead) != "1" {
			t.Errorf("Sent copy not read: %q", appText(it, wbxml.EmailRead))
		}
	}

	// A retry with the same ClientId succeeds without sending again.
	if err := phone.SendMail(ctx, mime, client.ComposeOptions{ClientID: "c1", SaveInSent: true}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	// A ClientId used again for another message (a client counting from
	// 1 again) sends that message.
	again := []byte("To: bob@example.test\r\nSubject: reused id\r\n\r\nanother message\r\n")
	if err := phone.SendMail(ctx, again, client.ComposeOptions{ClientID: "c1"}); err != nil {
		t.Fatal(err)
	}
	marker := []byte("To: bob@example.test\r\nSubject: marker\r\n\r\nafter the retry\r\n")
	if err := phone.SendMail(ctx, marker, client.ComposeOptions{ClientID: "c2"}); err != nil {
		t.Fatal(err)
	}
	inbox := e.folderMessages("bob", "INBOX", "marker")
	if n := len(withSubject(inbox, "reused id")); n != 1 {
		t.Errorf("bob has %d copies of the message sent under a reused ClientId, want 1", n)
	}
	if n := len(withSubject(inbox, "dinner")); n != 1 {
		t.Errorf("bob has %d copies of the retried message", n)
	}
	if n := len(withSubject(e.folderMessages("alice", "Sent", ""), "dinner")); n != 1 {
		t.Errorf("alice's Sent has %d copies", n)
	}
	// The marker had no From: the user's address; no SaveInSent: not in Sent.
	if m := withSubject(inbox, "marker"); len(m) != 1 || !strings.Contains(m[0], "From: <alice@example.test>") {
		t.Errorf("marker: %q", m)
	}
	if n := len(withSubject(e.folderMessages("alice", "Sent", ""), "marker")); n != 0 {
		t.Errorf("unsaved message in Sent")
	}

	// No recipient: 119.
	var se *client.StatusError
	err := phone.SendMail(ctx, []byte("Subject: nobody\r\n\r\nx\r\n"), client.ComposeOptions{ClientID: "c3"})
	if !errors.As(err, &se) || se.Status != 119 {
		t.Errorf("no recipient: %v, want status 119", err)
	}
}

func TestSendMail121E2E(t *testing.T) {
	e := newSendEnv(t)
	phone := e.phone("alice", "IPHONEOLD", "iPhone", "12.1")
	mime := []byte("From: alice@example.test\r\nTo: bob@example.test\r\nSubject: old phone\r\n\r\nfrom 12.1\r\n")
	if err := phone.SendMail(context.Background(), mime, client.ComposeOptions{SaveInSent: true}); err != nil {
		t.Fatal(err)
	}
	if got := withSubject(e.folderMessages("bob", "INBOX", "old phone"), "old phone"); len(got) != 1 || !strings.Contains(got[0], "from 12.1") {
		t.Errorf("bob's INBOX: %q", got)
	}
	if got := withSubject(e.folderMessages("alice", "Sent", "old phone"), "old phone"); len(got) != 1 {
		t.Errorf("alice's Sent: %q", got)
	}
	// 12.1 has no ClientId: a retry is recognised by its Message-ID.
	twice := []byte("To: bob@example.test\r\nSubject: twice\r\nMessage-ID: <twice@example.test>\r\n\r\nonce\r\n")
	for range 2 {
		if err := phone.SendMail(context.Background(), twice, client.ComposeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := phone.SendMail(context.Background(), []byte("To: bob@example.test\r\nSubject: marker\r\n\r\nx\r\n"), client.ComposeOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := withSubject(e.folderMessages("bob", "INBOX", "marker"), "twice"); len(got) != 1 {
		t.Errorf("bob got %d copies of a retried 12.1 message", len(got))
	}
	// A refused message is HTTP 500 in 12.1, and kept in Drafts.
	err := phone.SendMail(context.Background(), []byte("To: nobody@example.test\r\nSubject: lost?\r\n\r\nx\r\n"), client.ComposeOptions{SaveInSent: true})
	var he *client.HTTPError
	if !errors.As(err, &he) || he.Status != 500 {
		t.Errorf("refused in 12.1: %v", err)
	}
	e.folderMessages("alice", "Drafts", "lost?")
}

// originalMessage is what Bob sent Alice: text, HTML and a PDF.
const originalMessage = "From: Bob <bob@example.test>\r\nTo: Alice <alice@example.test>\r\nSubject: lunch\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <lunch@example.test>\r\n" +
	"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n" +
	"--outer\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n" +
	"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nShall we eat at noon?\r\n" +
	"--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Shall we eat at <b>noon</b>?</p></body></html>\r\n" +
	"--alt--\r\n" +
	"--outer\r\nContent-Type: application/pdf; name=menu.pdf\r\nContent-Disposition: attachment; filename=menu.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n" +
	"--outer--\r\n"

// smartEnv delivers the original to Alice and syncs her phone's Inbox.
func smartEnv(t *testing.T) (e *mailEnv, phone *client.Client, inbox, serverID string) {
	e = newSendEnv(t)
	e.dc.Deliver(t, "alice", "", []byte(originalMessage))
	phone = e.phone("alice", "IPHONEA", "iPhone", "14.1")
	fs, _ := folders(t, phone)
	inbox = fs["Inbox"].ServerID
	items, _ := syncAll(t, phone, inbox, client.SyncOptions{})
	if len(items) != 1 {
		t.Fatalf("%d items in Inbox", len(items))
	}
	for id := range items {
		serverID = id
	}
	return e, phone, inbox, serverID
}

func TestSmartReplyE2E(t *testing.T) {
	e, phone, inbox, id := smartEnv(t)
	ctx := context.Background()
	reply := "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: Re: lunch\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=r1\r\n\r\n" +
		"--r1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nYes!\r\n" +
		"--r1\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n<html><body><div>Yes!</div></body></html>\r\n" +
		"--r1--\r\n"
	if err := phone.SmartReply(ctx, []byte(reply), client.ComposeOptions{ClientID: "r1", FolderID: inbox, ItemID: id, SaveInSent: true}); err != nil {
		t.Fatal(err)
	}
	got := withSubject(e.folderMessages("bob", "INBOX", "Re: lunch"), "Re: lunch")
	if len(got) != 1 {
		t.Fatalf("bob got %d replies", len(got))
	}
	h, parts := mimeParts(t, got[0])
	if h.Get("In-Reply-To") != "<lunch@example.test>" || !strings.Contains(h.Get("References"), "<lunch@example.test>") {
		t.Errorf("In-Reply-To %q References %q", h.Get("In-Reply-To"), h.Get("References"))
	}
	if text := strings.Join(parts["text/plain"], ""); !strings.HasPrefix(text, "Yes!") || strings.Count(text, "> Shall we eat at noon?") != 1 || strings.Count(text, "Shall we eat") != 1 {
		t.Errorf("text part:\n%s", text)
	}
	htm := strings.Join(parts["text/html"], "")
	body, after, _ := strings.Cut(htm, "</body>")
	if strings.Count(body, "<b>noon</b>") != 1 || strings.Contains(after, "noon") || !strings.Contains(body, "<div>Yes!</div>") {
		t.Errorf("html part (quote not inside <body> once):\n%s", htm)
	}
	if len(parts["application/pdf"]) != 0 {
		t.Errorf("reply carries the attachment")
	}
	// The original is flagged answered; Sent has the reply.
	if !e.hasFlag("alice", id, imap.FlagAnswered) {
		t.Errorf("original not flagged \\Answered")
	}
	e.folderMessages("alice", "Sent", "Re: lunch")

	// ReplaceMime: sent as is, but threaded.
	full := "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: Re: lunch again\r\nContent-Type: text/plain\r\n\r\nMy own quote:\r\n> noon\r\n"
	if err := phone.SmartReply(ctx, []byte(full), client.ComposeOptions{ClientID: "r2", FolderID: inbox, ItemID: id, ReplaceMime: true}); err != nil {
		t.Fatal(err)
	}
	got = withSubject(e.folderMessages("bob", "INBOX", "Re: lunch again"), "Re: lunch again")
	if len(got) != 1 || !strings.HasSuffix(got[0], "\r\n\r\nMy own quote:\r\n> noon\r\n") || !strings.Contains(got[0], "In-Reply-To: <lunch@example.test>") {
		t.Errorf("ReplaceMime reply: %q", got)
	}
	// An unknown source is 150.
	var se *client.StatusError
	err := phone.SmartReply(ctx, []byte(full), client.ComposeOptions{ClientID: "r3", FolderID: inbox, ItemID: inbox + ":999"})
	if !errors.As(err, &se) || se.Status != 150 {
		t.Errorf("unknown source: %v, want status 150", err)
	}
}

// hasFlag reports whether the message of a ServerId ("folder:uid") in the
// user's INBOX has flag.
func (e *mailEnv) hasFlag(user, serverID string, flag imap.Flag) bool {
	e.t.Helper()
	uid, err := strconv.ParseUint(serverID[strings.LastIndexByte(serverID, ':')+1:], 10, 32)
	if err != nil {
		e.t.Fatal(err)
	}
	c := e.imap(user)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		e.t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(imap.UID(uid)), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || len(msgs) != 1 {
		e.t.Fatalf("fetching flags of UID %d: %d messages, %v", uid, len(msgs), err)
	}
	return slices.Contains(msgs[0].Flags, flag)
}

func TestSmartForwardE2E(t *testing.T) {
	e, phone, inbox, id := smartEnv(t)
	ctx := context.Background()
	fwd := "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: Fwd: lunch\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee below.\r\n"
	if err := phone.SmartForward(ctx, []byte(fwd), client.ComposeOptions{ClientID: "f1", FolderID: inbox, ItemID: id}); err != nil {
		t.Fatal(err)
	}
	got := withSubject(e.folderMessages("bob", "INBOX", "Fwd: lunch"), "Fwd: lunch")
	if len(got) != 1 {
		t.Fatalf("bob got %d forwards", len(got))
	}
	_, parts := mimeParts(t, got[0])
	if pdf := parts["application/pdf"]; len(pdf) != 1 || pdf[0] != "%PDF-1.4\n" {
		t.Errorf("attachments: %q", pdf)
	}
	if text := strings.Join(parts["text/plain"], ""); !strings.HasPrefix(text, "See below.") || strings.Count(text, "Shall we eat at noon?") != 1 {
		t.Errorf("text:\n%s", text)
	}

	// ReplaceMime: the phone's message carries the attachment itself.
	full := "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: Fwd: lunch (full)\r\nContent-Type: multipart/mixed; boundary=f\r\n\r\n" +
		"--f\r\nContent-Type: text/plain\r\n\r\nHere.\r\n" +
		"--f\r\nContent-Type: application/pdf; name=menu.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--f--\r\n"
	if err := phone.SmartForward(ctx, []byte(full), client.ComposeOptions{ClientID: "f2", FolderID: inbox, ItemID: id, ReplaceMime: true}); err != nil {
		t.Fatal(err)
	}
	got = withSubject(e.folderMessages("bob", "INBOX", "Fwd: lunch (full)"), "Fwd: lunch (full)")
	if len(got) != 1 {
		t.Fatalf("bob got %d", len(got))
	}
	_, parts = mimeParts(t, got[0])
	if !e.hasFlag("alice", id, "$Forwarded") {
		t.Errorf("original not flagged $Forwarded")
	}
	if len(parts["application/pdf"]) != 1 || strings.Join(parts["text/plain"], "") != "Here." || !strings.HasSuffix(got[0], full[strings.Index(full, "\r\n\r\n")+4:]) {
		t.Errorf("ReplaceMime forward changed: %q", got[0])
	}
}

func TestSendMailRefusedE2E(t *testing.T) {
	e := newSendEnv(t)
	phone := e.phone("alice", "IPHONEA", "iPhone", "14.1")
	mime := []byte("From: alice@example.test\r\nTo: bob@example.test, nobody@example.test\r\nSubject: typo\r\n\r\nDid it arrive?\r\n")
	var se *client.StatusError
	err := phone.SendMail(context.Background(), mime, client.ComposeOptions{ClientID: "t1", SaveInSent: true})
	if !errors.As(err, &se) || se.Status != 120 {
		t.Fatalf("refused recipient: %v, want status 120", err)
	}
	if got := withSubject(e.folderMessages("alice", "Drafts", "typo"), "typo"); len(got) != 1 {
		t.Errorf("Drafts: %q", got)
	}
	// The retry answers the same, without another copy; nothing in Sent,
	// nothing sent to bob.
	err = phone.SendMail(context.Background(), mime, client.ComposeOptions{ClientID: "t1", SaveInSent: true})
	if !errors.As(err, &se) || se.Status != 120 {
		t.Errorf("retry: %v, want status 120", err)
	}
	if got := withSubject(e.folderMessages("alice", "Drafts", ""), "typo"); len(got) != 1 {
		t.Errorf("Drafts after the retry: %d copies", len(got))
	}
	if got := withSubject(e.folderMessages("alice", "Sent", ""), "typo"); len(got) != 0 {
		t.Errorf("Sent: %q", got)
	}
	if err := phone.SendMail(context.Background(), []byte("To: bob@example.test\r\nSubject: marker\r\n\r\nx\r\n"), client.ComposeOptions{ClientID: "t2"}); err != nil {
		t.Fatal(err)
	}
	if got := withSubject(e.folderMessages("bob", "INBOX", "marker"), "typo"); len(got) != 0 {
		t.Errorf("bob got the refused message")
	}
}
