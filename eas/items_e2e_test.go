package eas_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/easd/easd/eas"
	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/internal/passwd"
	"github.com/easd/easd/internal/testenv"
	"github.com/easd/easd/store"
	"github.com/easd/easd/store/sqlite"
	"github.com/easd/easd/wbxml"
)

// wbxmlCodec is a stand-in codec that stores ApplicationData as WBXML
// behind a UID line: it exercises the Sync engine (journal, windows,
// retries, conflicts, ghosting) apart from the real converters.
type wbxmlCodec struct{}

func (wbxmlCodec) Apply(stored []byte, app *wbxml.Node, o item.Options) ([]byte, item.Index, error) {
	if app == nil {
		return nil, item.Index{}, fmt.Errorf("no ApplicationData: %w", item.ErrInvalid)
	}
	uid := ""
	merged := wbxml.E(wbxml.AirSyncApplicationData)
	if stored != nil {
		var old *wbxml.Node
		var err error
		uid, old, err = splitStored(stored)
		if err != nil {
			return nil, item.Index{}, err
		}
		for _, c := range old.Children {
			if app.Child(c.Tag) == nil && o.Ghosted != nil && o.Ghosted(c.Tag) {
				merged.Append(c) // ghosted: kept
			}
		}
	} else {
		uid = o.NewUID()
	}
	merged.Append(app.Children...)
	var b bytes.Buffer
	b.WriteString(uid + "\n")
	if err := wbxml.Encode(&b, merged); err != nil {
		return nil, item.Index{}, err
	}
	return b.Bytes(), item.Index{UID: uid, Summary: merged.ChildText(wbxml.ContactsFileAs)}, nil
}

func (wbxmlCodec) Render(stored []byte, o item.Options) (*wbxml.Node, error) {
	_, n, err := splitStored(stored)
	return n, err
}

func (wbxmlCodec) Index(stored []byte) (item.Index, error) {
	uid, n, err := splitStored(stored)
	return item.Index{UID: uid, Summary: n.ChildText(wbxml.ContactsFileAs)}, err
}

func splitStored(b []byte) (string, *wbxml.Node, error) {
	uid, rest, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		return "", nil, errors.New("no UID line")
	}
	n, err := wbxml.DecodeBytes(rest, wbxml.Limits{})
	return string(uid), n, err
}

// itemsEnv is easd with only the store-backed classes (no mailbox): the
// contacts class served by wbxmlCodec.
type itemsEnv struct {
	t   *testing.T
	st  *sqlite.Store
	h   *eas.Handler
	srv *httptest.Server
}

func newItemsEnv(t *testing.T) *itemsEnv {
	t.Helper()
	st, err := sqlite.Open(context.Background(), testenv.SQLitePath(t), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h, err := passwd.Hash("alice-pw", passwd.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(context.Background(), "alice", h); err != nil {
		t.Fatal(err)
	}
	e := &itemsEnv{t: t, st: st}
	e.h = eas.NewHandler(eas.Config{Domain: "example.test", HeartbeatMin: time.Second}, eas.Deps{
		Store: st, Auth: eas.LocalAuth{Users: st}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Items: st, Codecs: map[string]item.Codec{store.ClassContacts: wbxmlCodec{}},
	})
	e.srv = httptest.NewServer(e.h)
	t.Cleanup(func() { e.h.Drain(); e.srv.Close() })
	return e
}

// contactsPhone is a device holding the default contacts folder.
type contactsPhone struct {
	t    *testing.T
	c    *client.Client
	coll string
	key  string
}

func (e *itemsEnv) phone(device string, supported ...wbxml.Tag) *contactsPhone {
	e.t.Helper()
	c, err := client.New(client.Config{URL: e.srv.URL, User: "alice", Password: "alice-pw", DeviceID: device, DeviceType: "iPhone", Version: "14.1"})
	if err != nil {
		e.t.Fatal(err)
	}
	fs, _ := folders(e.t, c)
	f, ok := fs["Contacts"]
	if !ok || f.Type != 9 {
		e.t.Fatalf("no default Contacts folder of type 9: %+v", fs)
	}
	for name, typ := range map[string]int{"Calendar": 8, "Tasks": 7, "Notes": 10} {
		if _, ok := fs[name]; ok && fs[name].Type != typ {
			e.t.Errorf("folder %s has type %d, want %d", name, fs[name].Type, typ)
		}
	}
	p := &contactsPhone{t: e.t, c: c, coll: f.ServerID}
	req := client.SyncCollection{SyncKey: "0", CollectionID: p.coll}
	if len(supported) > 0 {
		req.Supported = supported
	}
	resp, err := c.Sync(context.Background(), client.SyncRequest{Collections: []client.SyncCollection{req}})
	if err != nil || resp.Collection(p.coll) == nil {
		e.t.Fatalf("Sync 0: %+v, %v", resp, err)
	}
	p.key = resp.Collection(p.coll).SyncKey
	return p
}

// sync sends one Sync of the collection with the given commands.
func (p *contactsPhone) sync(window int, adds []client.SyncAdd, changes []client.SyncChange, deletes []string) *client.SyncCollectionResponse {
	p.t.Helper()
	r, err := p.c.Sync(context.Background(), client.SyncRequest{Collections: []client.SyncCollection{{SyncKey: p.key, CollectionID: p.coll,
		GetChanges: new(true), WindowSize: window, Adds: adds, Changes: changes, Deletes: deletes}}})
	if err != nil {
		p.t.Fatal(err)
	}
	cr := r.Collection(p.coll)
	if cr == nil || cr.Status != 1 {
		p.t.Fatalf("Sync: %+v", r)
	}
	p.key = cr.SyncKey
	return cr
}

func contact(fileAs, company string) *wbxml.Node {
	n := wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.ContactsFileAs, fileAs))
	if company != "" {
		n.Append(wbxml.T(wbxml.ContactsCompanyName, company))
	}
	return n
}

func TestItemsSyncBetweenDevices(t *testing.T) {
	e := newItemsEnv(t)
	a, b := e.phone("DEVA"), e.phone("DEVB")

	// A adds a contact; B gets it with the same fields.
	r := a.sync(0, []client.SyncAdd{{ClientID: "c1", ApplicationData: contact("Doe, Jane", "Acme")}}, nil, nil)
	if len(r.Responses) != 1 || r.Responses[0].Status != 1 || r.Responses[0].ServerID == "" {
		t.Fatalf("Add response: %+v", r.Responses)
	}
	id := r.Responses[0].ServerID
	if len(r.Adds)+len(r.Changes) != 0 {
		t.Errorf("the adding device got its own item back: %+v", r)
	}
	rb := b.sync(0, nil, nil, nil)
	if len(rb.Adds) != 1 || rb.Adds[0].ServerID != id || rb.Adds[0].ApplicationData.ChildText(wbxml.ContactsCompanyName) != "Acme" {
		t.Fatalf("B's Sync: %+v", rb)
	}
	// B changes it; A gets the change, B does not get it back.
	rb = b.sync(0, nil, []client.SyncChange{{ServerID: id, ApplicationData: contact("Doe, Jane", "Initech")}}, nil)
	if len(rb.Changes)+len(rb.Adds) != 0 {
		t.Errorf("B got its own change back: %+v", rb)
	}
	r = a.sync(0, nil, nil, nil)
	if len(r.Changes) != 1 || r.Changes[0].ApplicationData.ChildText(wbxml.ContactsCompanyName) != "Initech" {
		t.Fatalf("A after B's change: %+v", r)
	}
	// A deletes it; B gets the Delete.
	a.sync(0, nil, nil, []string{id})
	if rb = b.sync(0, nil, nil, nil); !slices.Equal(rb.Deletes, []string{id}) {
		t.Fatalf("B after A's delete: %+v", rb)
	}
}

func TestItemsSyncRetryAndWindows(t *testing.T) {
	e := newItemsEnv(t)
	a := e.phone("DEVA")
	// A retried Add (the first answer lost) gets the same answer and
	// makes no second contact.
	key := a.key
	first := a.sync(0, []client.SyncAdd{{ClientID: "c1", ApplicationData: contact("Once", "")}}, nil, nil)
	a.key = key
	again := a.sync(0, []client.SyncAdd{{ClientID: "c1", ApplicationData: contact("Once", "")}}, nil, nil)
	if again.SyncKey != first.SyncKey || len(again.Responses) != 1 || again.Responses[0].ServerID != first.Responses[0].ServerID {
		t.Fatalf("retried Add: %+v, first %+v", again, first)
	}
	colls, err := e.st.Collections(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	var contacts store.Collection
	for _, c := range colls {
		if c.Class == store.ClassContacts {
			contacts = c
		}
	}
	chs, err := e.st.ItemChanges(context.Background(), contacts.ID, 0, 0)
	if err != nil || len(chs) != 1 {
		t.Fatalf("items after a retried Add: %d, %v; want 1", len(chs), err)
	}
	// 25 contacts from elsewhere arrive in windows of 10: no gap, no
	// duplicate.
	for i := range 25 {
		var b bytes.Buffer
		b.WriteString(fmt.Sprintf("uid-%d\n", i))
		if err := wbxml.Encode(&b, contact(fmt.Sprintf("Person %02d", i), "")); err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.PutItem(context.Background(), store.Item{CollectionID: contacts.ID, UID: fmt.Sprintf("uid-%d", i), Data: b.Bytes()}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for round := 0; ; round++ {
		r := a.sync(10, nil, nil, nil)
		for _, ad := range r.Adds {
			name := ad.ApplicationData.ChildText(wbxml.ContactsFileAs)
			if seen[name] {
				t.Errorf("%s sent twice", name)
			}
			seen[name] = true
		}
		if !r.MoreAvailable {
			break
		}
		if round > 5 {
			t.Fatal("MoreAvailable never ends")
		}
	}
	if len(seen) != 25 {
		t.Errorf("%d contacts arrived, want 25", len(seen))
	}
}

func TestItemsConflictAndGhosting(t *testing.T) {
	e := newItemsEnv(t)
	// A declares only FileAs supported: CompanyName is ghosted for it.
	a := e.phone("DEVA", wbxml.ContactsFileAs)
	b := e.phone("DEVB")
	r := b.sync(0, []client.SyncAdd{{ClientID: "c1", ApplicationData: contact("Roe, Rick", "Acme")}}, nil, nil)
	id := r.Responses[0].ServerID
	a.sync(0, nil, nil, nil)
	// A changes FileAs only: the company stays.
	a.sync(0, nil, []client.SyncChange{{ServerID: id, ApplicationData: contact("Roe, Richard", "")}}, nil)
	rb := b.sync(0, nil, nil, nil)
	if len(rb.Changes) != 1 || rb.Changes[0].ApplicationData.ChildText(wbxml.ContactsCompanyName) != "Acme" || rb.Changes[0].ApplicationData.ChildText(wbxml.ContactsFileAs) != "Roe, Richard" {
		t.Fatalf("after a ghosted change: %+v", rb)
	}
	// Both change it: B first; A's change, made without B's, loses and A
	// is sent B's version.
	b.sync(0, nil, []client.SyncChange{{ServerID: id, ApplicationData: contact("B's name", "Acme")}}, nil)
	ra := a.sync(0, nil, []client.SyncChange{{ServerID: id, ApplicationData: contact("A's name", "")}}, nil)
	if len(ra.Changes) != 1 || ra.Changes[0].ApplicationData.ChildText(wbxml.ContactsFileAs) != "B's name" {
		t.Fatalf("conflict: A got %+v, want B's version", ra)
	}
}

func TestItemsPushAndFolders(t *testing.T) {
	e := newItemsEnv(t)
	a, b := e.phone("DEVA"), e.phone("DEVB")
	// A contact added by device A wakes device B's Ping.
	ch := make(chan *client.PingResponse, 1)
	go func() {
		r, err := b.c.Ping(context.Background(), client.PingRequest{HeartbeatInterval: 60, Folders: []client.PingFolder{{ID: b.coll, Class: "Contacts"}}})
		if err != nil {
			t.Error(err)
		}
		ch <- r
	}()
	deadline := time.Now().Add(10 * time.Second)
	for e.h.Parked() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("B's Ping is not parked")
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.sync(0, []client.SyncAdd{{ClientID: "c1", ApplicationData: contact("New, Person", "")}}, nil, nil)
	select {
	case r := <-ch:
		if r == nil || r.Status != client.PingChanges || !slices.Equal(r.Folders, []string{b.coll}) {
			t.Fatalf("B's Ping: %+v, want 2 for contacts", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("B's Ping was not woken")
	}
	if r := b.sync(0, nil, nil, nil); len(r.Adds) != 1 {
		t.Fatalf("B's Sync after the push: %+v", r)
	}
	// A's own add does not wake A.
	r, err := a.c.Ping(context.Background(), client.PingRequest{HeartbeatInterval: 1, Folders: []client.PingFolder{{ID: a.coll, Class: "Contacts"}}})
	if err != nil || r.Status != client.PingExpired {
		t.Fatalf("A's Ping: %+v, %v; want 1", r, err)
	}

	// A user-created contacts folder, renamed, deleted; the default one
	// cannot be.
	fs, key := folders(t, a.c)
	key, sid, err := a.c.FolderCreate(context.Background(), key, "0", "Suppliers", 14)
	if err != nil || !strings.HasPrefix(sid, "c") {
		t.Fatalf("FolderCreate type 14: %q, %v", sid, err)
	}
	if key, err = a.c.FolderUpdate(context.Background(), key, sid, "0", "Vendors"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.c.FolderDelete(context.Background(), key, fs["Contacts"].ServerID); err == nil {
		t.Error("deleting the default Contacts folder succeeded")
	}
	fc, err := b.c.FolderSync(context.Background(), "0")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range fc.Added {
		if f.ServerID == sid && f.DisplayName == "Vendors" && f.Type == 14 {
			found = true
		}
	}
	if !found {
		t.Errorf("B's FolderSync lacks the renamed folder: %+v", fc.Added)
	}
}
