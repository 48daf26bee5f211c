package eas_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/wbxml"
)

// heapWatch samples the live heap until stopped and returns its peak.
func heapWatch() (stop func() uint64) {
	var mu sync.Mutex
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			mu.Lock()
			peak = max(peak, ms.HeapInuse)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak
	}
}

// post sends one command as a phone would and returns the response.
func (e *mailEnv) post(t *testing.T, cmd string, body *wbxml.Node, multipart bool) *http.Response {
	t.Helper()
	var buf bytes.Buffer
	if err := wbxml.Encode(&buf, body); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", e.srv.URL+"/Microsoft-Server-ActiveSync?Cmd="+cmd+"&User=alice&DeviceId=MEM1&DeviceType=iPhone", &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("alice", mailUsers["alice"])
	req.Header.Set("MS-ASProtocolVersion", "14.1")
	req.Header.Set("Content-Type", "application/vnd.ms-sync.wbxml")
	if multipart {
		req.Header.Set("MS-ASAcceptMultiPart", "T")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("%s: HTTP %s", cmd, resp.Status)
	}
	return resp
}

// TestMailLargeMessageMemory fetches a 50 MB message and its 36 MiB
// attachment: both stream from IMAP to the phone without costing their
// size in memory.
func TestMailLargeMessageMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MB message")
	}
	e := newMailEnv(t)
	raw, att := attachmentMessage(36 << 20)
	e.dc.Deliver(t, "alice", "", raw)
	rawSize, attSum := len(raw), sha256.Sum256(att)
	raw, att = nil, nil
	c, err := client.New(client.Config{URL: e.srv.URL, User: "alice", Password: mailUsers["alice"], DeviceID: "MEM1", DeviceType: "iPhone", Version: "14.1"})
	if err != nil {
		t.Fatal(err)
	}
	fs, _ := folders(t, c)
	inbox := fs["Inbox"].ServerID
	items, _ := syncAll(t, c, inbox, client.SyncOptions{BodyPreferences: []client.BodyPreference{{Type: 1, TruncationSize: 100}}})
	var ref, id string
	for _, it := range items {
		id = it.ServerID
		for a := range it.ApplicationData.Child(wbxml.AirSyncBaseAttachments).Each(wbxml.AirSyncBaseAttachment) {
			if a.ChildText(wbxml.AirSyncBaseDisplayName) == "data.bin" {
				ref = a.ChildText(wbxml.AirSyncBaseFileReference)
			}
		}
	}
	if ref == "" {
		t.Fatal("no attachment listed")
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	stop := heapWatch()

	// The attachment, multipart: part 1 holds the bytes.
	resp := e.post(t, "ItemOperations", wbxml.E(wbxml.ItemOperationsItemOperations, wbxml.E(wbxml.ItemOperationsFetch,
		wbxml.T(wbxml.ItemOperationsStore, "Mailbox"), wbxml.T(wbxml.AirSyncBaseFileReference, ref))), true)
	var hdr [4]byte
	if _, err := io.ReadFull(resp.Body, hdr[:]); err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	table := make([]byte, 8*n)
	if _, err := io.ReadFull(resp.Body, table); err != nil || n != 2 {
		t.Fatalf("multipart header: %d parts, %v", n, err)
	}
	off1, len1 := binary.LittleEndian.Uint32(table[8:]), binary.LittleEndian.Uint32(table[12:])
	if _, err := io.CopyN(io.Discard, resp.Body, int64(off1)-int64(4+8*n)); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(h, resp.Body, int64(len1)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.Sum(nil), attSum[:]) {
		t.Errorf("attachment bytes differ from the original")
	}

	// The whole message as MIME, inline in the WBXML response.
	resp = e.post(t, "ItemOperations", wbxml.E(wbxml.ItemOperationsItemOperations, wbxml.E(wbxml.ItemOperationsFetch,
		wbxml.T(wbxml.ItemOperationsStore, "Mailbox"), wbxml.T(wbxml.AirSyncCollectionId, inbox), wbxml.T(wbxml.AirSyncServerId, id),
		wbxml.E(wbxml.ItemOperationsOptions, wbxml.T(wbxml.AirSyncMIMESupport, "2"),
			wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, "4"))))), false)
	got, err := io.Copy(io.Discard, resp.Body)
	if err != nil || got < int64(rawSize) {
		t.Errorf("MIME fetch: %d bytes (%v), want more than the %d of the message", got, err, rawSize)
	}
	peak := stop()
	if grew := int64(peak) - int64(base); grew > 24<<20 {
		t.Errorf("heap grew by %d MiB while serving a %d MiB message", grew>>20, rawSize>>20)
	} else {
		t.Logf("heap grew by %.1f MiB while serving a %d MiB message", float64(grew)/(1<<20), rawSize>>20)
	}
	_ = context.Background
}
