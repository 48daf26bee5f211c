package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/easd/easd/bench/internal/imapproxy"
	"github.com/easd/easd/wbxml"
)

func TestGenMessage(t *testing.T) {
	withAtt := 0
	for i := range 200 {
		m := genMessage(5, "INBOX", i)
		if !bytes.Equal(m.raw, genMessage(5, "INBOX", i).raw) {
			t.Fatalf("message %d is not deterministic", i)
		}
		size := len(m.raw)
		if m.attachment {
			withAtt++
			if size < minMessageSize+minAttachmentSize || !bytes.Contains(m.raw, []byte("Content-Disposition: attachment")) {
				t.Errorf("message %d: %d bytes with attachment", i, size)
			}
		} else if size < minMessageSize || size > maxMessageSize+100 {
			t.Errorf("message %d: %d bytes", i, size)
		}
		if !bytes.HasSuffix(m.raw, []byte("\r\n")) || bytes.Contains(bytes.ReplaceAll(m.raw, []byte("\r\n"), nil), []byte("\n")) {
			t.Errorf("message %d: bare LF", i)
		}
	}
	if withAtt != 10 {
		t.Errorf("%d of 200 messages have attachments, want 10", withAtt)
	}
}

func TestCheck(t *testing.T) {
	base := func() *config {
		cfg, _, err := parseFlags(nil, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	if err := base().check(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, mod := range map[string]func(*config){
		"remote url":     func(c *config) { c.URL = "https://mail.example.com" },
		"remote ip":      func(c *config) { c.URL = "http://192.0.2.1:8080" },
		"remote imap":    func(c *config) { c.IMAPAddr = "imap.example.com:143" },
		"remote proxy":   func(c *config) { c.Proxy = "0.0.0.0:1143" },
		"many messages":  func(c *config) { c.Messages = maxMessages + 1 },
		"big window":     func(c *config) { c.Windows = []int{513} },
		"long duration":  func(c *config) { c.Duration = time.Hour },
		"many clients":   func(c *config) { c.Clients = maxClients + 1 },
		"bad body type":  func(c *config) { c.BodyType = 3 },
		"ka format":      func(c *config) { c.KAUsers, c.KAUserFormat = 3, "ka" },
		"no timeout":     func(c *config) { c.Timeout = 0 },
		"ipv6 wildcard ": func(c *config) { c.IMAPAddr = "[::]:143" },
	} {
		cfg := base()
		mod(cfg)
		if err := cfg.check(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	cfg := base()
	cfg.URL, cfg.IMAPAddr = "http://[::1]:8080", "localhost:143"
	if err := cfg.check(); err != nil {
		t.Errorf("IPv6 loopback and localhost: %v", err)
	}
}

// fakeEAS answers FolderSync with an Inbox and a BenchKA folder, and Sync
// by paging items messages of 1000 bytes in the windows asked for; later
// Syncs get the empty answer.
func fakeEAS(t *testing.T, items int) *httptest.Server {
	var mu sync.Mutex
	sent := map[string]int{} // by device
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		body, err := wbxml.Decode(r.Body, wbxml.Limits{})
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		var resp *wbxml.Node
		switch r.URL.Query().Get("Cmd") {
		case "FolderSync":
			resp = wbxml.E(wbxml.FolderHierarchyFolderSync, wbxml.T(wbxml.FolderHierarchyStatus, "1"), wbxml.T(wbxml.FolderHierarchySyncKey, "1"),
				wbxml.E(wbxml.FolderHierarchyChanges,
					wbxml.E(wbxml.FolderHierarchyAdd, wbxml.T(wbxml.FolderHierarchyServerId, "1"), wbxml.T(wbxml.FolderHierarchyParentId, "0"),
						wbxml.T(wbxml.FolderHierarchyDisplayName, "Inbox"), wbxml.T(wbxml.FolderHierarchyType, "2")),
					wbxml.E(wbxml.FolderHierarchyAdd, wbxml.T(wbxml.FolderHierarchyServerId, "7"), wbxml.T(wbxml.FolderHierarchyParentId, "0"),
						wbxml.T(wbxml.FolderHierarchyDisplayName, "BenchKA"), wbxml.T(wbxml.FolderHierarchyType, "12"))))
		case "Sync":
			coll := body.Path(wbxml.AirSyncCollections, wbxml.AirSyncCollection)
			key, _ := strconv.Atoi(coll.ChildText(wbxml.AirSyncSyncKey))
			dev := r.URL.Query().Get("DeviceId")
			out := wbxml.E(wbxml.AirSyncCollection, wbxml.T(wbxml.AirSyncSyncKey, strconv.Itoa(key+1)),
				wbxml.T(wbxml.AirSyncCollectionId, coll.ChildText(wbxml.AirSyncCollectionId)), wbxml.T(wbxml.AirSyncStatus, "1"))
			if key > 0 {
				if sent[dev] >= items {
					return // unchanged: empty 200
				}
				ws, _ := strconv.Atoi(coll.ChildText(wbxml.AirSyncWindowSize))
				cmds := wbxml.E(wbxml.AirSyncCommands)
				for ; sent[dev] < items && len(cmds.Children) < ws; sent[dev]++ {
					ad := wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.EmailSubject, "s"),
						wbxml.E(wbxml.AirSyncBaseBody, wbxml.T(wbxml.AirSyncBaseType, "4"), wbxml.T(wbxml.AirSyncBaseData, strings.Repeat("x", 1000))))
					if sent[dev]%20 == 10 {
						ad.Append(wbxml.E(wbxml.AirSyncBaseAttachments, wbxml.E(wbxml.AirSyncBaseAttachment, wbxml.T(wbxml.AirSyncBaseFileReference, "f"))))
					}
					cmds.Append(wbxml.E(wbxml.AirSyncAdd, wbxml.T(wbxml.AirSyncServerId, "1:"+strconv.Itoa(sent[dev])), ad))
				}
				if sent[dev] < items {
					out.Append(wbxml.E(wbxml.AirSyncMoreAvailable))
				}
				out.Append(cmds)
			}
			resp = wbxml.E(wbxml.AirSyncSync, wbxml.E(wbxml.AirSyncCollections, out))
		default:
			http.Error(w, "unexpected", 400)
			return
		}
		var b bytes.Buffer
		if err := wbxml.Encode(&b, resp); err != nil {
			t.Error(err)
		}
		w.Header().Set("Content-Type", "application/vnd.ms-sync.wbxml")
		w.Write(b.Bytes())
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestInitialSyncAndKeepAliveAgainstFake(t *testing.T) {
	srv := fakeEAS(t, 250)
	cfg, _, err := parseFlags([]string{"-url", srv.URL, "-eas-version", "14.1", "-clients", "3", "-duration", "300ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var counter *imapproxy.Proxy // counts nothing: no IMAP behind the fake
	r := initialSync(context.Background(), cfg, counter, 100)
	if r.Err != nil || r.Messages != 250 || r.Attachments != 12 || r.Data != 250_000 || r.Wire < r.Data {
		t.Errorf("initial sync: %+v", r)
	}
	ka := keepAlive(context.Background(), cfg, counter, t.Logf)
	if ka.Err != nil || ka.Requests == 0 || ka.Errors != 0 || ka.Changed != 0 || ka.FolderItems != 250 || ka.P99 < ka.P50 || ka.P50 == 0 {
		t.Errorf("keep-alive: %+v", ka)
	}
	var md bytes.Buffer
	writeReport(&md, cfg, true, 250, []syncResult{r}, &ka)
	for _, want := range []string{"| EAS initial Sync | 100 | 250 | 12 |", "| unchanged-folder Sync, keep-alive | 3 | 1 | 250 |"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, md.String())
		}
	}
}
