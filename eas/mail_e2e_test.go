package eas_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/easd/easd/eas"
	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/imapbridge"
	"github.com/easd/easd/internal/testenv"
	"github.com/easd/easd/store/sqlite"
	"github.com/easd/easd/wbxml"
)

// mailEnv is easd with the IMAP bridge over a real Dovecot, served on
// loopback, with phones driven by the project's EAS client.
type mailEnv struct {
	t     testing.TB
	dc    *testenv.DovecotServer
	st    *sqlite.Store
	srv   *httptest.Server
	pool  *imapbridge.Pool
	proxy *cutProxy
	logs  *syncBuffer
	deps  eas.Deps // as the server was started, for restart
	cfg   eas.Config
	bopts imapbridge.BackendOptions
	h     *eas.Handler
	pf    *testenv.PostfixServer // with submit
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var mailUsers = map[string]string{"alice": "alice-pw", "bob": "bob-pw"}

func newMailEnv(t testing.TB) *mailEnv { return startMailEnv(t, false) }

// startMailEnv starts the environment; with submit, a real Postfix
// (delivering into the Dovecot) is behind Deps.Submit.
func startMailEnv(t testing.TB, submit bool) *mailEnv {
	t.Helper()
	return startMailEnvWith(t, submit, eas.Config{Domain: "example.test"}, imapbridge.BackendOptions{})
}

// startMailEnvWith is startMailEnv with the given protocol settings and
// IMAP bridge options.
func startMailEnvWith(t testing.TB, submit bool, cfg eas.Config, bopts imapbridge.BackendOptions) *mailEnv {
	t.Helper()
	e := &mailEnv{t: t, dc: testenv.Dovecot(t, mailUsers), logs: &syncBuffer{}, cfg: cfg}
	st, err := sqlite.Open(context.Background(), testenv.SQLitePath(t), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.st = st
	// The bridge reaches Dovecot through a proxy the tests can cut.
	e.proxy = newCutProxy(t, e.dc.Addr)
	icfg := imapbridge.Config{Addr: e.proxy.addr, TLS: imapbridge.TLSNone}
	up, err := imapbridge.NewIMAPAuthenticator(imapbridge.Config{Addr: e.dc.Addr, TLS: imapbridge.TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	bopts.Logger = log
	e.bopts = bopts
	e.pool = imapbridge.NewPool(icfg, imapbridge.PoolOptions{MaxPerUser: 3})
	t.Cleanup(e.pool.Close)
	deps := eas.Deps{
		Store: st, Logger: log,
		Auth: eas.PassThroughAuth{Users: st, Upstream: up, IsBadCredentials: func(err error) bool {
			return errors.Is(err, imapbridge.ErrBadCredentials)
		}},
		Mail: imapbridge.NewBackend(e.pool, bopts),
	}
	if submit {
		pf := testenv.Postfix(t, e.dc)
		e.pf = pf
		deps.Submit = imapbridge.NewSubmitter(imapbridge.SMTPConfig{Addr: pf.SubmissionAddr, TLS: imapbridge.TLSNone}, imapbridge.SubmitterOptions{Logger: log})
	}
	e.deps = deps
	e.serve()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("easd log:\n%s", e.logs.String())
		}
	})
	return e
}

// restart replaces the server by a new one on the same store, with new
// IMAP connections and nothing kept in memory, as after a process restart.
func (e *mailEnv) restart() {
	e.h.Drain()
	e.srv.Close()
	if b, ok := e.deps.Mail.(*imapbridge.Backend); ok {
		b.CloseWatchers()
	}
	e.pool.Close()
	e.pool = imapbridge.NewPool(imapbridge.Config{Addr: e.proxy.addr, TLS: imapbridge.TLSNone}, imapbridge.PoolOptions{MaxPerUser: 3})
	e.t.Cleanup(e.pool.Close)
	e.deps.Mail = imapbridge.NewBackend(e.pool, e.bopts)
	e.serve()
}

// serve starts a handler on e.deps behind a new test server. Parked
// requests are answered (Drain) before the server closes, as on a real
// shutdown.
func (e *mailEnv) serve() {
	e.h = eas.NewHandler(e.cfg, e.deps)
	e.srv = httptest.NewServer(e.h)
	h, srv := e.h, e.srv
	e.t.Cleanup(func() {
		h.Drain()
		srv.Close()
		if b, ok := e.deps.Mail.(*imapbridge.Backend); ok {
			b.CloseWatchers()
		}
	})
}

// phone returns a client for user with its own device id.
func (e *mailEnv) phone(user, device, devType, version string) *client.Client {
	e.t.Helper()
	c, err := client.New(client.Config{URL: e.srv.URL, User: user, Password: mailUsers[user], DeviceID: device, DeviceType: devType, Version: version})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// imap logs in to Dovecot directly, as another mail client of the user.
func (e *mailEnv) imap(user string) *imapclient.Client {
	e.t.Helper()
	c, err := imapclient.DialInsecure(e.dc.Addr, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	if err := c.Login(user, mailUsers[user]).Wait(); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// message builds a plain RFC 5322 message.
func message(i int, subject, body string) []byte {
	return fmt.Appendf(nil, "From: Bob <bob@example.test>\r\nTo: Alice <alice@example.test>\r\nSubject: %s\r\nDate: Mon, 23 Nov 2026 10:%02d:00 +0000\r\nMessage-ID: <m%d@example.test>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n", subject, i%60, i, body)
}

// folders runs FolderSync 0 and returns the folders by display name.
func folders(t testing.TB, c *client.Client) (map[string]client.Folder, string) {
	t.Helper()
	fc, err := c.FolderSync(context.Background(), "0")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]client.Folder{}
	for _, f := range fc.Added {
		m[f.DisplayName] = f
	}
	return m, fc.SyncKey
}

func TestMailFolderSync(t *testing.T) {
	e := newMailEnv(t)
	e.dc.Deliver(t, "alice", "Work.Projects", message(1, "hello", "x"))
	ctx := context.Background()
	c := e.phone("alice", "IPHONE1", "iPhone", "14.1")
	fs, key := folders(t, c)
	want := map[string]int{"Inbox": 2, "Drafts": 3, "Trash": 4, "Sent": 5, "Outbox": 6, "Junk": 12, "Work": 12, "Projects": 12}
	for name, typ := range want {
		f, ok := fs[name]
		if !ok {
			t.Errorf("no folder %q in %v", name, fs)
			continue
		}
		if f.Type != typ {
			t.Errorf("folder %q type %d, want %d", name, f.Type, typ)
		}
	}
	if fs["Projects"].ParentID != fs["Work"].ServerID || fs["Inbox"].ParentID != "0" {
		t.Errorf("parents: Projects under %q (Work is %q), Inbox under %q", fs["Projects"].ParentID, fs["Work"].ServerID, fs["Inbox"].ParentID)
	}
	// Nothing changed: same key, no changes.
	fc, err := c.FolderSync(ctx, key)
	if err != nil || fc.SyncKey != key || len(fc.Added)+len(fc.Updated)+len(fc.Deleted) != 0 {
		t.Fatalf("unchanged FolderSync: %+v, %v", fc, err)
	}
	// Changes made by another IMAP client are noticed; a rename keeps the id.
	ic := e.imap("alice")
	if err := ic.Create("Receipts", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := ic.Rename("Work", "Job", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	fc, err = c.FolderSync(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(fc.Added) != 1 || fc.Added[0].DisplayName != "Receipts" || fc.Added[0].Type != 12 {
		t.Errorf("added %+v, want Receipts", fc.Added)
	}
	if len(fc.Updated) != 1 || fc.Updated[0].ServerID != fs["Work"].ServerID || fc.Updated[0].DisplayName != "Job" {
		t.Errorf("updated %+v, want Work renamed Job with id %s", fc.Updated, fs["Work"].ServerID)
	}
	if len(fc.Deleted) != 0 {
		t.Errorf("deleted %v after a rename", fc.Deleted)
	}
	// A retry of the old key gets the same answer.
	again, err := c.FolderSync(ctx, key)
	if err != nil || again.SyncKey != fc.SyncKey || len(again.Added) != 1 || len(again.Updated) != 1 {
		t.Errorf("retried FolderSync: %+v, %v; first answer key %s", again, err, fc.SyncKey)
	}
	key = fc.SyncKey
	// A second device sees the same ids.
	other, _ := folders(t, e.phone("alice", "ANDROID1", "Android", "14.0"))
	if other["Job"].ServerID != fs["Work"].ServerID || other["Inbox"].ServerID != fs["Inbox"].ServerID {
		t.Errorf("second device ids: Job %q Inbox %q; first device Work %q Inbox %q", other["Job"].ServerID, other["Inbox"].ServerID, fs["Work"].ServerID, fs["Inbox"].ServerID)
	}

	// FolderCreate, FolderUpdate, FolderDelete from the phone.
	key2, id, err := c.FolderCreate(ctx, key, fs["Inbox"].ServerID, "Travel", 12)
	if err != nil {
		t.Fatal(err)
	}
	key = key2
	if key2, err = c.FolderUpdate(ctx, key, id, "0", "Trips"); err != nil {
		t.Fatal(err)
	}
	key = key2
	ls, err := ic.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range ls {
		names = append(names, l.Mailbox)
	}
	if !contains(names, "Trips") || contains(names, "INBOX.Travel") {
		t.Errorf("IMAP folders after create+rename: %v", names)
	}
	// The phone's own changes are not reported back to it.
	fc, err = c.FolderSync(ctx, key)
	if err != nil || len(fc.Added)+len(fc.Updated)+len(fc.Deleted) != 0 {
		t.Errorf("FolderSync after own changes: %+v, %v", fc, err)
	}
	if key2, err = c.FolderDelete(ctx, key, id); err != nil {
		t.Fatal(err)
	}
	key = key2
	var se *client.StatusError
	if _, err := c.FolderDelete(ctx, key, fs["Inbox"].ServerID); !errors.As(err, &se) || se.Status != 3 {
		t.Errorf("deleting the Inbox: %v, want status 3", err)
	}
	if _, err := c.FolderSync(ctx, "bogus-1"); !errors.As(err, &se) || se.Status != 9 {
		t.Errorf("unknown FolderSync key: %v, want status 9", err)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// cutProxy forwards TCP connections to an upstream and can cut them all.
type cutProxy struct {
	addr    string
	mu      sync.Mutex
	conns   []net.Conn
	down    bool
	accepts int
}

// setDown makes the proxy close new connections at once (upstream down).
func (p *cutProxy) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

func newCutProxy(t testing.TB, upstream string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			down := p.down
			p.mu.Unlock()
			if down {
				c.Close()
				continue
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.accepts++
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

// cut closes every connection through the proxy.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepts
}

// appendMsg appends raw to folder with flags and a date, returning its UID.
func appendMsg(t testing.TB, c *imapclient.Client, folder string, raw []byte, date time.Time, flags ...imap.Flag) imap.UID {
	t.Helper()
	cmd := c.Append(folder, int64(len(raw)), &imap.AppendOptions{Flags: flags, Time: date})
	if _, err := cmd.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	d, err := cmd.Wait()
	if err != nil {
		t.Fatal(err)
	}
	return d.UID
}

// appData returns the text of a child of an item's ApplicationData.
func appText(item client.SyncItem, tag wbxml.Tag) string {
	return item.ApplicationData.ChildText(tag)
}

var _ = strings.Contains
