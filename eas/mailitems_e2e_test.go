package eas_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/wbxml"
)

// TestMailSyncLargeFolder syncs a 10,000-message INBOX in windows of 512:
// every message arrives exactly once, none is missing.
func TestMailSyncLargeFolder(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 messages")
	}
	e := newMailEnv(t)
	const n = 10000
	start := time.Now()
	for i := range n {
		e.dc.Deliver(t, "alice", "", message(i, "bulk "+strconv.Itoa(i), "body of "+strconv.Itoa(i)))
	}
	t.Logf("delivered %d messages in %v", n, time.Since(start))
	start = time.Now()
	c := e.phone("alice", "ANDROID1", "Android", "14.1")
	fs, _ := folders(t, c)
	inbox := fs["Inbox"].ServerID
	defer func() { t.Logf("synced in %v", time.Since(start)) }()
	items, _ := syncAll(t, c, inbox, client.SyncOptions{WindowSize: 512, BodyPreferences: []client.BodyPreference{{Type: 1, TruncationSize: 100}}})
	if len(items) != n {
		t.Fatalf("synced %d messages, want %d", len(items), n)
	}
	seen := make(map[string]bool, n)
	for _, it := range items {
		seen[appText(it, wbxml.EmailSubject)] = true
	}
	for i := range n {
		if !seen["bulk "+strconv.Itoa(i)] {
			t.Fatalf("message %d missing", i)
		}
	}
	if e.proxy.count() > 3 {
		t.Errorf("%d IMAP connections opened, the pool allows 3", e.proxy.count())
	}
}

// attachmentMessage builds a multipart message with an inline image and a
// binary attachment, returning it and the attachment bytes.
func attachmentMessage(size int) ([]byte, []byte) {
	att := make([]byte, size)
	rand.Read(att)
	img := []byte("\x89PNG fake image bytes")
	var b bytes.Buffer
	b.WriteString("From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nSubject: Report\r\nMessage-ID: <att@example.test>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n" +
		"--outer\r\nContent-Type: multipart/related; boundary=\"rel\"\r\n\r\n" +
		"--rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>See the <b>report</b> <img src=\"cid:logo@x\"></p></body></html>\r\n" +
		"--rel\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	b.WriteString(base64.StdEncoding.EncodeToString(img) + "\r\n--rel--\r\n")
	b.WriteString("--outer\r\nContent-Type: application/octet-stream; name=\"data.bin\"\r\nContent-Disposition: attachment; filename=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(att)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--outer--\r\n")
	return b.Bytes(), att
}

func TestMailBodiesAndAttachments(t *testing.T) {
	e := newMailEnv(t)
	raw, att := attachmentMessage(300 << 10)
	e.dc.Deliver(t, "alice", "", raw)
	ctx := context.Background()
	c := e.phone("alice", "IPHONE1", "iPhone", "14.1")
	fs, _ := folders(t, c)
	inbox := fs["Inbox"].ServerID

	// HTML, truncated.
	items, _ := syncAll(t, c, inbox, client.SyncOptions{BodyPreferences: []client.BodyPreference{{Type: 2, TruncationSize: 20}}})
	if len(items) != 1 {
		t.Fatalf("%d items", len(items))
	}
	var it client.SyncItem
	for _, v := range items {
		it = v
	}
	body := it.ApplicationData.Child(wbxml.AirSyncBaseBody)
	if body.ChildText(wbxml.AirSyncBaseType) != "2" || body.ChildText(wbxml.AirSyncBaseTruncated) != "1" || len(body.ChildText(wbxml.AirSyncBaseData)) > 20 {
		t.Errorf("truncated HTML body: %v", body)
	}
	if it.ApplicationData.ChildText(wbxml.AirSyncBaseNativeBodyType) != "2" {
		t.Errorf("NativeBodyType %q", it.ApplicationData.ChildText(wbxml.AirSyncBaseNativeBodyType))
	}
	var refs []string
	var inline int
	for a := range it.ApplicationData.Child(wbxml.AirSyncBaseAttachments).Each(wbxml.AirSyncBaseAttachment) {
		refs = append(refs, a.ChildText(wbxml.AirSyncBaseFileReference))
		if a.ChildText(wbxml.AirSyncBaseContentId) == "logo@x" {
			inline++
		}
		if a.ChildText(wbxml.AirSyncBaseDisplayName) == "data.bin" {
			refs = append([]string{a.ChildText(wbxml.AirSyncBaseFileReference)}, refs...)
		}
	}
	if len(refs) < 2 || inline != 1 {
		t.Fatalf("attachments: refs %v, inline %d", refs, inline)
	}
	ref := refs[0]

	// The attachment through ItemOperations, inline base64 and multipart,
	// with a range, and through GetAttachment (12.1).
	for _, multipart := range []bool{false, true} {
		ct, data, err := c.FetchAttachment(ctx, ref, multipart)
		if err != nil {
			t.Fatalf("multipart %v: %v", multipart, err)
		}
		if !bytes.Equal(data, att) || ct != "application/octet-stream" {
			t.Errorf("multipart %v: %d bytes of type %q; want the %d original bytes", multipart, len(data), ct, len(att))
		}
	}
	old := e.phone("alice", "IPHONE1", "iPhone", "12.1")
	if _, data, err := old.GetAttachment(ctx, ref); err != nil || !bytes.Equal(data, att) {
		t.Errorf("GetAttachment: %d bytes, %v", len(data), err)
	}
	req := wbxml.E(wbxml.ItemOperationsItemOperations, wbxml.E(wbxml.ItemOperationsFetch,
		wbxml.T(wbxml.ItemOperationsStore, "Mailbox"), wbxml.T(wbxml.AirSyncBaseFileReference, ref),
		wbxml.E(wbxml.ItemOperationsOptions, wbxml.T(wbxml.ItemOperationsRange, "10-19"))))
	resp, err := c.ItemOperations(ctx, req, false)
	if err != nil {
		t.Fatal(err)
	}
	props := resp.Body.Path(wbxml.ItemOperationsResponse, wbxml.ItemOperationsFetch, wbxml.ItemOperationsProperties)
	got, _ := base64.StdEncoding.DecodeString(props.ChildText(wbxml.ItemOperationsData))
	if !bytes.Equal(got, att[10:20]) || props.ChildText(wbxml.ItemOperationsTotal) != strconv.Itoa(len(att)) {
		t.Errorf("range 10-19: %x total %q", got, props.ChildText(wbxml.ItemOperationsTotal))
	}
	if _, _, err := c.FetchAttachment(ctx, inbox+":999:2", false); err == nil {
		t.Errorf("fetching a missing attachment succeeded")
	}

	// The whole message as MIME through ItemOperations.
	fr, err := c.FetchItem(ctx, inbox, it.ServerID, client.FetchOptions{MIMESupport: 2, BodyPreferences: []client.BodyPreference{{Type: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	mime := fr.Properties.Path(wbxml.AirSyncBaseBody, wbxml.AirSyncBaseData).Text()
	if mime != string(raw) {
		t.Errorf("MIME body: %d bytes, want the %d original bytes", len(mime), len(raw))
	}
	// Plain text from HTML, with a preview.
	fr, err = c.FetchItem(ctx, inbox, it.ServerID, client.FetchOptions{BodyPreferences: []client.BodyPreference{{Type: 1, Preview: 50}}})
	if err != nil {
		t.Fatal(err)
	}
	text := fr.Properties.Path(wbxml.AirSyncBaseBody, wbxml.AirSyncBaseData).Text()
	if !strings.Contains(text, "See the report") || strings.Contains(text, "<") {
		t.Errorf("text body from HTML: %q", text)
	}

	// EmptyFolderContents empties a folder.
	e.dc.Deliver(t, "alice", "Trash", []byte("Subject: x\r\n\r\nx\r\n"))
	if err := c.EmptyFolderContents(ctx, fs["Trash"].ServerID, false); err != nil {
		t.Fatal(err)
	}
	trash, _ := syncAll(t, c, fs["Trash"].ServerID, client.SyncOptions{})
	if len(trash) != 0 {
		t.Errorf("Trash holds %d items after EmptyFolderContents", len(trash))
	}
	_ = fmt.Sprint
}

// TestMailConnectionBound: ten devices of one user syncing five folders at
// once share the user's few pooled IMAP connections.
func TestMailConnectionBound(t *testing.T) {
	e := newMailEnv(t)
	names := []string{"", "A", "B", "C", "D"}
	for _, f := range names {
		for i := range 5 {
			e.dc.Deliver(t, "alice", f, message(i, "m "+f, "x"))
		}
	}
	first := e.phone("alice", "DEV0", "iPhone", "14.1")
	fs, _ := folders(t, first)
	var wg sync.WaitGroup
	for d := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := e.phone("alice", fmt.Sprintf("DEV%d", d), "Android", "14.1")
			if _, err := c.FolderSync(context.Background(), "0"); err != nil {
				t.Error(err)
				return
			}
			for _, f := range names {
				id := fs["Inbox"].ServerID
				if f != "" {
					id = fs[f].ServerID
				}
				items := 0
				if _, err := c.SyncAll(context.Background(), id, client.SyncOptions{}, func(r *client.SyncCollectionResponse) error {
					items += len(r.Adds)
					return nil
				}); err != nil || items != 5 {
					t.Errorf("device %d folder %q: %d items, %v", d, f, items, err)
				}
			}
		}()
	}
	wg.Wait()
	if n := e.proxy.count(); n > 3 {
		t.Errorf("%d IMAP connections for 10 devices x 5 folders; the pool allows 3", n)
	} else {
		t.Logf("10 devices x 5 folders: %d IMAP connections", n)
	}
}
