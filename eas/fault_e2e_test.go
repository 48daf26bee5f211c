package eas_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/easd/easd/eas"
	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/imapbridge"
	"github.com/easd/easd/store"
	"github.com/easd/easd/wbxml"
)

// Client faults (issue #9): a phone hanging up in the middle of a
// response, a response larger than the Sync byte budget, and a phone
// sending the same request twice at once. What other tests already
// prove is not repeated here: a Sync retried after its answer was lost
// (TestMailSyncChanges), one window sent twice at once
// (TestMailSyncEdgeCases), a retried PIM Add (TestItemsSyncRetryAndWindows),
// a retried MoveItems (TestMailMoveItemsErrors) and SendMail
// (TestSendMailE2E, TestSendMail121E2E), the IMAP server going away
// (TestMailSyncIMAPCut), a restart (TestMailSyncAcrossRestart).

// settleWait bounds how long the server may take to notice a phone that
// hung up and give back what its request held.
const settleWait = 15 * time.Second

// faultPhone is a phone with its own HTTP transport, so that its idle
// connections can be closed before goroutines are counted.
type faultPhone struct {
	*client.Client
	tr     *http.Transport
	e      *mailEnv
	user   string
	device string
}

func (e *mailEnv) faultPhone(user, device string) *faultPhone {
	e.t.Helper()
	// A small fixed receive buffer (no autotuning): what the phone has
	// not read stays on the server's side, which keeps writing.
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if err := c.(*net.TCPConn).SetReadBuffer(64 << 10); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}}
	c, err := client.New(client.Config{URL: e.srv.URL, User: user, Password: mailUsers[user], DeviceID: device,
		DeviceType: "iPhone", Version: "14.1", HTTPClient: &http.Client{Transport: tr, Timeout: time.Minute}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &faultPhone{Client: c, tr: tr, e: e, user: user, device: device}
}

// post sends one command of the phone by hand and returns the response
// unread, so that the test can read part of it and hang up.
func (p *faultPhone) post(t *testing.T, cmd string, body *wbxml.Node, multipart bool) *http.Response {
	t.Helper()
	var buf bytes.Buffer
	if err := wbxml.Encode(&buf, body); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", p.e.srv.URL+eas.Path+"?Cmd="+cmd+"&User="+p.user+"&DeviceId="+p.device+"&DeviceType=iPhone", &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(p.user, mailUsers[p.user])
	req.Header.Set("MS-ASProtocolVersion", "14.1")
	req.Header.Set("Content-Type", "application/vnd.ms-sync.wbxml")
	if multipart {
		req.Header.Set("MS-ASAcceptMultiPart", "T")
	}
	resp, err := (&http.Client{Transport: p.tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		t.Fatalf("%s: HTTP %s", cmd, resp.Status)
	}
	return resp
}

// hangUp reads n bytes of resp and closes the connection with the rest
// unread, as a phone that loses its link does.
func hangUp(t *testing.T, resp *http.Response, n int) []byte {
	t.Helper()
	head := make([]byte, n)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatalf("reading the first %d bytes: %v", n, err)
	}
	return head
}

// spoolFiles counts this process's open temporary files of
// internal/spool (unlinked at creation, so only /proc shows them); -1
// where /proc is not there.
func spoolFiles() int {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.Contains(target, "easd-spool-") {
			n++
		}
	}
	return n
}

// eventually polls cond until it holds or settleWait passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(settleWait); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, settleWait)
		}
	}
}

// goroutines is the goroutine count once idle connections are closed.
func goroutines(phones ...*faultPhone) int {
	for _, p := range phones {
		p.tr.CloseIdleConnections()
	}
	return runtime.NumGoroutine()
}

// bigMessage is a plain message of about size bytes.
func bigMessage(i, size int, subject string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Bob <bob@example.test>\r\nTo: Alice <alice@example.test>\r\nSubject: %s\r\nMessage-ID: <big%d@example.test>\r\n"+
		"Date: Mon, 23 Nov 2026 10:%02d:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", subject, i, i%60)
	line := fmt.Sprintf("%s: all work and no play makes Jack a dull boy\r\n", subject)
	for b.Len() < size {
		b.WriteString(line)
	}
	return []byte(b.String())
}

// TestFaultClientHangsUpMidResponse: a phone reads part of a large Sync
// answer (spooled to a temporary file) and of a large attachment
// (ItemOperations, inline and multipart), then hangs up. While the
// server writes, the command slot (MaxConcurrent 1) is taken; once the
// phone is gone the slot is given back, the spool file closed and the
// goroutines are back where they were. The same Sync again (same key) is
// answered as a retry with the same bytes, and the phone ends up with
// every message once; the attachment fetched again is whole.
func TestFaultClientHangsUpMidResponse(t *testing.T) {
	e := startMailEnvWith(t, false, eas.Config{Domain: "example.test", MaxConcurrent: 1}, imapbridge.BackendOptions{})
	const n, size, window = 40, 256 << 10, 30 // an answer of 30 x 256 KB: 7.5 MB, beyond the socket buffers
	for i := range n {
		e.dc.Deliver(t, "alice", "", bigMessage(i, size, fmt.Sprintf("big %02d", i)))
	}
	raw, att := attachmentMessage(8 << 20)
	e.dc.Deliver(t, "alice", "Files", raw)
	ctx := context.Background()
	p := e.faultPhone("alice", "FAULT1")
	fs, fkey := folders(t, p.Client)
	inbox, files := fs["Inbox"].ServerID, fs["Files"].ServerID
	var ref string
	for _, it := range mustSyncAll(t, p, files) {
		for a := range it.ApplicationData.Child(wbxml.AirSyncBaseAttachments).Each(wbxml.AirSyncBaseAttachment) {
			if a.ChildText(wbxml.AirSyncBaseDisplayName) == "data.bin" {
				ref = a.ChildText(wbxml.AirSyncBaseFileReference)
			}
		}
	}
	if ref == "" {
		t.Fatal("no attachment listed in Files")
	}
	r := syncOnce(t, p.Client, client.SyncCollection{SyncKey: "0", CollectionID: inbox})
	key := r.SyncKey
	// busy is a small command (nothing changed since fkey).
	busy := func() error {
		_, err := p.FolderSync(ctx, fkey)
		return err
	}
	if err := busy(); err != nil {
		t.Fatal(err)
	}
	base := goroutines(p)
	if n := spoolFiles(); n > 0 {
		t.Fatalf("%d spool files open before the test", n)
	}
	t.Logf("goroutines before: %d", base)

	// settled checks what a request that ended must give back.
	settled := func(what string) {
		t.Helper()
		eventually(t, what+": command slot given back", func() bool { return busy() == nil })
		if spoolFiles() >= 0 {
			eventually(t, what+": spool files closed", func() bool { return spoolFiles() == 0 })
		}
		eventually(t, what+": goroutines back", func() bool { return goroutines(p) <= base+4 })
	}
	// heldWhileSending checks that the request is still being written
	// out: its slot taken, its spool file open.
	heldWhileSending := func(what string) {
		t.Helper()
		var he *client.HTTPError
		if err := busy(); !errors.As(err, &he) || he.Status != http.StatusServiceUnavailable {
			t.Errorf("%s: another command while the answer is written: %v, want HTTP 503 (the one slot taken)", what, err)
		}
		if spoolFiles() == 0 {
			t.Errorf("%s: no spool file open while a %d MB answer is written", what, window*size>>20)
		}
	}

	// Sync: 64 KB of a 7.5 MB answer, then the phone is gone. The state
	// the answer reports was saved before its first byte.
	syncReq := wbxml.E(wbxml.AirSyncSync, wbxml.E(wbxml.AirSyncCollections, wbxml.E(wbxml.AirSyncCollection,
		wbxml.T(wbxml.AirSyncSyncKey, key), wbxml.T(wbxml.AirSyncCollectionId, inbox), wbxml.T(wbxml.AirSyncGetChanges, "1"),
		wbxml.T(wbxml.AirSyncWindowSize, fmt.Sprint(window)),
		wbxml.E(wbxml.AirSyncOptions, wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, "1"))))))
	resp := p.post(t, "Sync", syncReq, false)
	if resp.ContentLength < int64(window*size) {
		t.Errorf("Sync answer of %d bytes, want over %d", resp.ContentLength, window*size)
	}
	head := hangUp(t, resp, 64<<10)
	heldWhileSending("Sync")
	resp.Body.Close()
	settled("Sync")

	// The retry (same key) is answered from that state: the same answer,
	// byte for byte.
	replays := strings.Count(e.logs.String(), "Sync retried: same answer again")
	resp = p.post(t, "Sync", syncReq, false)
	again, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(again, head) {
		t.Errorf("the retried Sync differs from the answer the phone hung up on")
	}
	if n := strings.Count(e.logs.String(), "Sync retried: same answer again") - replays; n != 1 {
		t.Errorf("the retried Sync was answered as a retry %d times, want 1", n)
	}
	doc, err := wbxml.DecodeBytes(again, wbxml.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	coll := doc.Path(wbxml.AirSyncCollections, wbxml.AirSyncCollection)
	got := map[string]int{}
	var adds int
	for a := range coll.Child(wbxml.AirSyncCommands).Each(wbxml.AirSyncAdd) {
		got[a.Path(wbxml.AirSyncApplicationData, wbxml.EmailSubject).Text()]++
		adds++
	}
	if adds != window || coll.Child(wbxml.AirSyncMoreAvailable) == nil {
		t.Errorf("retried answer: %d adds (MoreAvailable %v), want %d and more", adds, coll.Child(wbxml.AirSyncMoreAvailable) != nil, window)
	}
	key = coll.ChildText(wbxml.AirSyncSyncKey)
	for {
		r := syncOnce(t, p.Client, client.SyncCollection{SyncKey: key, CollectionID: inbox, WindowSize: window,
			Options: &client.SyncOptions{BodyPreferences: []client.BodyPreference{{Type: 1, TruncationSize: 100}}}})
		for _, a := range r.Adds {
			got[appText(a, wbxml.EmailSubject)]++
		}
		key = r.SyncKey
		if !r.MoreAvailable {
			break
		}
	}
	for i := range n {
		if s := fmt.Sprintf("big %02d", i); got[s] != 1 {
			t.Errorf("%s arrived %d times, want once", s, got[s])
		}
	}
	if len(got) != n {
		t.Errorf("%d distinct messages arrived, want %d", len(got), n)
	}
	settled("Sync retried")

	// ItemOperations of the 8 MB attachment, inline (base64 in WBXML)
	// and multipart: 64 KB read, then the phone is gone.
	fetch := wbxml.E(wbxml.ItemOperationsItemOperations, wbxml.E(wbxml.ItemOperationsFetch,
		wbxml.T(wbxml.ItemOperationsStore, "Mailbox"), wbxml.T(wbxml.AirSyncBaseFileReference, ref)))
	for _, multipart := range []bool{false, true} {
		what := fmt.Sprintf("ItemOperations (multipart %v)", multipart)
		resp := p.post(t, "ItemOperations", fetch, multipart)
		hangUp(t, resp, 64<<10)
		heldWhileSending(what)
		resp.Body.Close()
		settled(what)
		if _, data, err := p.FetchAttachment(ctx, ref, multipart); err != nil || !bytes.Equal(data, att) {
			t.Errorf("%s fetched again: %d bytes (%v), want the %d of the attachment", what, len(data), err, len(att))
		}
	}
	settled("all")
	t.Logf("goroutines after: %d", goroutines(p))
}

// mustSyncAll syncs a folder from key 0 and returns its items.
func mustSyncAll(t *testing.T, p *faultPhone, coll string) map[string]client.SyncItem {
	t.Helper()
	items, _ := syncAll(t, p.Client, coll, client.SyncOptions{BodyPreferences: []client.BodyPreference{{Type: 1, TruncationSize: 100}}})
	return items
}

// syncBudget is eas's byte budget of one Sync answer (eas/sync.go): the
// RFC822.SIZE of the messages it carries, past which the rest waits
// behind MoreAvailable.
const syncBudget = 32 << 20

// TestFaultSyncOverBudget: a message larger than the Sync byte budget
// and several that exceed it together. Every answer carries at least one
// message, more than one only within the budget; MoreAvailable is set
// until the last; every message arrives exactly once.
func TestFaultSyncOverBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("66 MB of messages")
	}
	e := newMailEnv(t)
	sizes := map[string]int{}
	// Delivered in this order (ascending UIDs); Sync sends the newest
	// first.
	for i, m := range []struct {
		subject string
		size    int
	}{
		{"small 1", 2 << 10}, {"large 1", 11 << 20}, {"small 2", 2 << 10}, {"huge", syncBudget + 1<<20},
		{"large 2", 11 << 20}, {"small 3", 2 << 10}, {"large 3", 11 << 20}, {"small 4", 2 << 10}, {"small 5", 2 << 10},
	} {
		raw := bigMessage(i, m.size, m.subject)
		sizes[m.subject] = len(raw)
		e.dc.Deliver(t, "alice", "", raw)
	}
	p := e.faultPhone("alice", "BUDGET1")
	fs, _ := folders(t, p.Client)
	inbox := fs["Inbox"].ServerID
	opts := &client.SyncOptions{WindowSize: 100, BodyPreferences: []client.BodyPreference{{Type: 1, TruncationSize: 200}}}
	key := syncOnce(t, p.Client, client.SyncCollection{SyncKey: "0", CollectionID: inbox, Options: opts}).SyncKey
	got := map[string]int{}
	var answers [][]string
	for round := 0; ; round++ {
		if round == len(sizes) {
			t.Fatalf("still MoreAvailable after %d answers: %v", round, answers)
		}
		r := syncOnce(t, p.Client, client.SyncCollection{SyncKey: key, CollectionID: inbox, GetChanges: new(true), Options: opts})
		if r.Status != 1 {
			t.Fatalf("answer %d: status %d", round, r.Status)
		}
		var subjects []string
		total := 0
		for _, a := range r.Adds {
			s := appText(a, wbxml.EmailSubject)
			subjects = append(subjects, s)
			got[s]++
			total += sizes[s]
		}
		answers = append(answers, subjects)
		if len(subjects) == 0 && r.MoreAvailable {
			t.Errorf("answer %d carries nothing but says MoreAvailable", round)
		}
		if len(subjects) > 1 && total > syncBudget {
			t.Errorf("answer %d carries %d messages of %d bytes together, over the %d budget: %v", round, len(subjects), total, syncBudget, subjects)
		}
		key = r.SyncKey
		if !r.MoreAvailable {
			break
		}
	}
	t.Logf("answers: %q", answers)
	for s := range sizes {
		if got[s] != 1 {
			t.Errorf("%s arrived %d times, want once", s, got[s])
		}
	}
	if len(answers) < 3 {
		t.Errorf("%d answers for %d MB of messages with a %d MB budget: %q", len(answers), totalOf(sizes)>>20, syncBudget>>20, answers)
	}
	for i, a := range answers {
		if len(a) == 0 && i < len(answers)-1 {
			t.Errorf("answer %d is empty", i)
		}
	}
}

func totalOf(sizes map[string]int) int {
	n := 0
	for _, s := range sizes {
		n += s
	}
	return n
}

// twice runs f twice at once, as a phone that sends a request again
// before the first answer came.
func twice[T any](f func() (T, error)) ([2]T, [2]error) {
	var res [2]T
	var errs [2]error
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 2 {
		wg.Go(func() {
			<-start
			res[i], errs[i] = f()
		})
	}
	close(start)
	wg.Wait()
	return res, errs
}

// TestFaultSameRequestTwiceAtOnce: a phone sends each request twice at
// once. Sync of mail in windows with a client Change: both answers are
// the same (one is the other's retry), the phone gets each message once,
// the change is applied. Sync of contacts with an Add, then a Change:
// one contact, changed once. MoveItems of a message (twelve times, one
// message each): moved once, the answers agree on the new ServerId (or
// the second says the source is gone), a later retry gets the same
// answer, the phone is sent neither a Delete nor a second Add. SendMail
// with one ClientId: sent once.
func TestFaultSameRequestTwiceAtOnce(t *testing.T) {
	e := startMailEnv(t, true)
	e.deps.Items, e.deps.Codecs = e.st, eas.DefaultCodecs()
	e.restart()
	ctx := context.Background()
	const n = 30
	for i := range n {
		e.dc.Deliver(t, "alice", "", message(i, fmt.Sprintf("twice %02d", i), "x"))
	}
	p := e.faultPhone("alice", "TWICE1")
	fs, fkey := folders(t, p.Client)
	inbox := fs["Inbox"].ServerID
	opts := &client.SyncOptions{BodyPreferences: []client.BodyPreference{{Type: 1, TruncationSize: 100}}}
	syncTwice := func(sc client.SyncCollection) [2]*client.SyncCollectionResponse {
		t.Helper()
		res, errs := twice(func() (*client.SyncCollectionResponse, error) {
			resp, err := p.Sync(ctx, client.SyncRequest{Collections: []client.SyncCollection{sc}})
			if err != nil {
				return nil, err
			}
			if r := resp.Collection(sc.CollectionID); r != nil {
				return r, nil
			}
			return nil, fmt.Errorf("no collection %s in %v", sc.CollectionID, resp.Raw)
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("request %d of the pair: %v", i, err)
			}
		}
		a, b := res[0], res[1]
		if a.Status != 1 || b.Status != 1 || a.SyncKey != b.SyncKey || a.MoreAvailable != b.MoreAvailable ||
			!slices.Equal(ids(a.Adds), ids(b.Adds)) || !slices.Equal(ids(a.Changes), ids(b.Changes)) ||
			!slices.Equal(a.Deletes, b.Deletes) || len(a.Responses) != len(b.Responses) {
			t.Fatalf("the two answers differ: status %d/%d key %s/%s more %v/%v adds %v/%v changes %v/%v deletes %v/%v responses %+v/%+v",
				a.Status, b.Status, a.SyncKey, b.SyncKey, a.MoreAvailable, b.MoreAvailable, ids(a.Adds), ids(b.Adds),
				ids(a.Changes), ids(b.Changes), a.Deletes, b.Deletes, a.Responses, b.Responses)
		}
		return res
	}

	// Sync of mail in windows of 7, each request twice, one with a Change.
	{
		key := syncOnce(t, p.Client, client.SyncCollection{SyncKey: "0", CollectionID: inbox, Options: opts}).SyncKey
		replays := strings.Count(e.logs.String(), "Sync retried: same answer again")
		held := map[string]string{} // ServerId -> subject
		var read string             // the ServerId marked read
		rounds := 0
		for round := 0; ; round++ {
			if round > n {
				t.Fatal("MoreAvailable never ends")
			}
			sc := client.SyncCollection{SyncKey: key, CollectionID: inbox, GetChanges: new(true), WindowSize: 7, Options: opts}
			if round == 2 {
				read = slices.Sorted(maps.Keys(held))[0]
				sc.Changes = []client.SyncChange{{ServerID: read, ApplicationData: wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.EmailRead, "1"))}}
			}
			r := syncTwice(sc)[0]
			for _, a := range r.Adds {
				if _, dup := held[a.ServerID]; dup {
					t.Errorf("%s sent again", a.ServerID)
				}
				held[a.ServerID] = appText(a, wbxml.EmailSubject)
			}
			if len(r.Changes)+len(r.Deletes)+len(r.Responses) > 0 {
				t.Errorf("round %d: changes %v deletes %v responses %+v; want only Adds", round, ids(r.Changes), r.Deletes, r.Responses)
			}
			key = r.SyncKey
			rounds++
			if !r.MoreAvailable {
				break
			}
		}
		// Each pair ran one after the other (the device's lock on the
		// collection): the second was answered as the first's retry.
		if got := strings.Count(e.logs.String(), "Sync retried: same answer again") - replays; got != rounds {
			t.Errorf("%d of the %d second requests were answered as retries", got, rounds)
		}
		subjects := map[string]bool{}
		for _, s := range held {
			subjects[s] = true
		}
		if len(held) != n || len(subjects) != n {
			t.Errorf("the phone holds %d messages (%d subjects), want %d", len(held), len(subjects), n)
		}
		// The change was applied (once is all \Seen can tell) and is not
		// echoed.
		if r := syncOnce(t, p.Client, client.SyncCollection{SyncKey: key, CollectionID: inbox, Options: opts}); r.ItemCount() != 0 {
			t.Errorf("after the sync: %d commands (changes %v)", r.ItemCount(), ids(r.Changes))
		}
		ic := e.imap("alice")
		if _, err := ic.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatal(err)
		}
		var all imap.UIDSet
		all.AddRange(1, 0)
		msgs, err := ic.Fetch(all, &imap.FetchOptions{UID: true, Flags: true}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			want := fmt.Sprintf("%s:%d", inbox, m.UID) == read
			if slices.Contains(m.Flags, imap.FlagSeen) != want {
				t.Errorf("UID %d: flags %v; marked read by the phone: %v", m.UID, m.Flags, want)
			}
		}
	}

	// Sync of contacts: an Add twice, then a Change twice.
	{
		contacts := fs["Contacts"].ServerID
		if fs["Contacts"].Type != client.FolderContacts {
			t.Fatalf("no Contacts folder: %+v", fs)
		}
		collID, err := strconv.ParseInt(strings.TrimPrefix(contacts, "c"), 10, 64)
		if err != nil {
			t.Fatalf("Contacts ServerId %q: %v", contacts, err)
		}
		stored := func() []store.Item {
			t.Helper()
			items, err := e.st.ItemChanges(ctx, collID, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			return items
		}
		key := syncOnce(t, p.Client, client.SyncCollection{SyncKey: "0", CollectionID: contacts}).SyncKey
		jane := func(title string) *wbxml.Node {
			return wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.ContactsFileAs, "Doe, Jane"),
				wbxml.T(wbxml.ContactsFirstName, "Jane"), wbxml.T(wbxml.ContactsLastName, "Doe"), wbxml.T(wbxml.ContactsJobTitle, title))
		}
		r := syncTwice(client.SyncCollection{SyncKey: key, CollectionID: contacts, GetChanges: new(true),
			Adds: []client.SyncAdd{{ClientID: "jane-1", ApplicationData: jane("Engineer")}}})[0]
		if len(r.Responses) != 1 || r.Responses[0].Status != 1 || r.Responses[0].ServerID == "" {
			t.Fatalf("Add answered %+v", r.Responses)
		}
		sid := r.Responses[0].ServerID
		items := stored()
		if len(items) != 1 {
			t.Fatalf("%d contacts stored after the Add sent twice, want 1", len(items))
		}
		seq := items[0].ModSeq
		r = syncTwice(client.SyncCollection{SyncKey: r.SyncKey, CollectionID: contacts, GetChanges: new(true),
			Changes: []client.SyncChange{{ServerID: sid, ApplicationData: jane("Manager")}}})[0]
		if len(r.Responses) != 0 || r.ItemCount() != 0 {
			t.Errorf("Change answered responses %+v, %d commands", r.Responses, r.ItemCount())
		}
		if items = stored(); len(items) != 1 {
			t.Fatalf("%d contacts stored after the Change sent twice, want 1", len(items))
		}
		if items[0].ModSeq != seq+1 || !strings.Contains(string(items[0].Data), "Manager") {
			t.Errorf("after the Change sent twice: ModSeq %d (was %d, want one more: written once): %q", items[0].ModSeq, seq, items[0].Data)
		}
		// Another phone gets the one contact, changed.
		other := e.faultPhone("alice", "TWICE2")
		ofs, _ := folders(t, other.Client)
		got, _ := syncAll(t, other.Client, ofs["Contacts"].ServerID, client.SyncOptions{})
		if len(got) != 1 {
			t.Fatalf("another phone has %d contacts, want 1", len(got))
		}
		for _, it := range got {
			if title := appText(it, wbxml.ContactsJobTitle); title != "Manager" {
				t.Errorf("another phone's contact has title %q", title)
			}
		}
	}

	// MoveItems twice.
	{
		ic := e.imap("alice")
		if err := ic.Create("Archive", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		fc, err := p.FolderSync(ctx, fkey)
		if err != nil || len(fc.Added) != 1 || fc.Added[0].DisplayName != "Archive" {
			t.Fatalf("FolderSync after Archive was created: %+v, %v", fc, err)
		}
		archive := fc.Added[0].ServerID
		inboxItems, inboxKey := syncAll(t, p.Client, inbox, *opts)
		_, archiveKey := syncAll(t, p.Client, archive, *opts)
		// Several messages, each moved by a pair of requests: the second
		// of a pair may find the message gone between its look at the
		// Inbox and its MOVE, a window a single pair seldom hits.
		const pairs = 12
		var outcomes []string
		moved := map[string]string{} // ServerId in the Inbox -> in Archive
		for i, id := range slices.Sorted(maps.Keys(inboxItems))[:pairs] {
			res, errs := twice(func() ([]client.MoveResult, error) {
				return p.MoveItems(ctx, []client.Move{{SrcMsgID: id, SrcFldID: inbox, DstFldID: archive}})
			})
			dst := ""
			for k := range 2 {
				if errs[k] != nil || len(res[k]) != 1 {
					t.Fatalf("pair %d, MoveItems %d: %+v, %v", i, k, res[k], errs[k])
				}
				m := res[k][0]
				outcomes = append(outcomes, fmt.Sprintf("%d:%s", m.Status, m.DstMsgID))
				switch {
				case m.Status == 3 && m.DstMsgID != "" && (dst == "" || dst == m.DstMsgID):
					dst = m.DstMsgID
				case m.Status == 1: // MS-ASCMD 2.2.3.177.10: the source item is gone (the other request moved it)
				default:
					// BUG, two causes. (1) eas moveItems does not serialise
					// moves out of a folder: both requests MOVE the message,
					// and Dovecot (Maildir) copies it twice, so the answers
					// name two new ServerIds (and Archive holds it twice,
					// checked below). (2) imapbridge Backend.Move: a MOVE of a
					// message the other request moved meanwhile (NO
					// [EXPUNGEISSUED], then OK without COPYUID) is taken as
					// moved under an unknown UID: status 3 without DstMsgId,
					// recorded over the first answer's.
					t.Errorf("BUG: pair %d, MoveItems %d answered %+v; want 3 with the new ServerId both agree on, or 1", i, k, m)
				}
			}
			if dst == "" {
				t.Fatalf("pair %d: neither answer reports the move: %+v", i, res)
			}
			moved[id] = dst
			// A retry of the lost answer, later, is answered the same.
			again, err := p.MoveItems(ctx, []client.Move{{SrcMsgID: id, SrcFldID: inbox, DstFldID: archive}})
			if err != nil || len(again) != 1 || again[0].Status != 3 || again[0].DstMsgID != dst {
				// BUG: the second request's record replaced the first's (see above).
				t.Errorf("BUG: pair %d retried later: %+v, %v; want status 3 to %s again", i, again, err, dst)
			}
		}
		t.Logf("answers (status:DstMsgId): %v", outcomes)
		subjects := map[string]bool{}
		for id := range moved {
			subjects[appText(inboxItems[id], wbxml.EmailSubject)] = true
		}
		count := func(folder string) int {
			k := 0
			for _, raw := range imapBodies(t, ic, folder) {
				for s := range subjects {
					if strings.Contains(raw, "\r\nSubject: "+s+"\r\n") {
						k++
					}
				}
			}
			return k
		}
		if in, arch := count("INBOX"), count("Archive"); in != 0 || arch != pairs {
			// BUG (1) above: the same message MOVEd by two sessions at once.
			t.Errorf("BUG: after %d moves each sent twice: %d of them in INBOX, %d in Archive; want 0 and %d", pairs, in, arch, pairs)
		}
		// The phone is told of none of its own moves.
		r := syncOnce(t, p.Client, client.SyncCollection{SyncKey: inboxKey, CollectionID: inbox, Options: opts})
		if r.ItemCount() != 0 {
			t.Errorf("Inbox after the moves: deletes %v adds %v", r.Deletes, ids(r.Adds))
		}
		r = syncOnce(t, p.Client, client.SyncCollection{SyncKey: archiveKey, CollectionID: archive, Options: opts})
		if r.ItemCount() != 0 {
			t.Errorf("Archive after the moves: adds %v (the phone holds %v)", ids(r.Adds), slices.Sorted(maps.Values(moved)))
		}
	}

	// SendMail twice with one ClientId.
	{
		mime := []byte("From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\nSubject: sent twice at once\r\n" +
			"Message-ID: <twice-at-once@example.test>\r\n\r\nonce, please\r\n")
		_, errs := twice(func() (struct{}, error) {
			return struct{}{}, p.SendMail(ctx, mime, client.ComposeOptions{ClientID: "twice-1", SaveInSent: true})
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("SendMail %d of the pair: %v", i, err)
			}
		}
		if err := p.SendMail(ctx, []byte("To: bob@example.test\r\nSubject: marker\r\n\r\nafter\r\n"), client.ComposeOptions{ClientID: "twice-2"}); err != nil {
			t.Fatal(err)
		}
		if got := len(withSubject(e.folderMessages("bob", "INBOX", "marker"), "sent twice at once")); got != 1 {
			t.Errorf("bob got %d copies of the message sent twice at once, want 1", got)
		}
		if got := len(withSubject(e.folderMessages("alice", "Sent", "sent twice at once"), "sent twice at once")); got != 1 {
			t.Errorf("alice's Sent holds %d copies, want 1", got)
		}
	}
}
