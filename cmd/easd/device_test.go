package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/easd/easd/eas"
	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/eas/item"
	"github.com/easd/easd/eas/notes"
	"github.com/easd/easd/store"
	"github.com/easd/easd/store/sqlite"
	"github.com/easd/easd/wbxml"
)

// seedDevice registers a device for user directly in the store at dir.
func seedDevice(t *testing.T, dir, user, deviceID, version string) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "easd.db"), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.User(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.TouchDevice(context.Background(), store.Device{UserID: u.ID, DeviceID: deviceID, DeviceType: "iPhone",
		UserAgent: "Apple-iPhone15C2/2104.112", ProtocolVersion: version}); err != nil {
		t.Fatal(err)
	}
}

func TestDeviceCommands(t *testing.T) {
	dir := t.TempDir()
	environ := map[string]string{"EASD_DATA_DIR": dir}
	for _, u := range []string{"alice", "bob"} {
		if r := easd(t, "pw\n", environ, "user", "add", u); r.code != 0 {
			t.Fatal(r)
		}
	}
	seedDevice(t, dir, "alice", "IPHONE1", "14.1")
	seedDevice(t, dir, "bob", "PIXEL1", "16.1")

	r := easd(t, "", environ, "device", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "IPHONE1") || !strings.Contains(r.stdout, "PIXEL1") {
		t.Fatalf("device list: %+v", r)
	}
	if r := easd(t, "", environ, "device", "list", "bob"); strings.Contains(r.stdout, "IPHONE1") {
		t.Errorf("list bob shows alice's device:\n%s", r.stdout)
	}
	steps := []struct {
		args []string
		want string // in stdout
		show string // in 'device show' afterwards
	}{
		{[]string{"block", "alice", "IPHONE1"}, "blocked", "blocked"},
		{[]string{"allow", "alice", "IPHONE1"}, "allowed", "allowed"},
		{[]string{"wipe", "alice", "IPHONE1"}, "wiped on its next contact", "pending"},
		{[]string{"allow", "alice", "IPHONE1"}, "pending wipe is cancelled", "wipe:           -"},
		{[]string{"account-wipe", "alice", "IPHONE1"}, "no account-only wipe", "account"},
	}
	for _, s := range steps {
		r := easd(t, "", environ, append([]string{"device"}, s.args...)...)
		if r.code != 0 || !strings.Contains(r.stdout, s.want) {
			t.Errorf("device %v: %+v, want %q", s.args, r, s.want)
		}
		r = easd(t, "", environ, "device", "show", "alice", "IPHONE1")
		if !strings.Contains(r.stdout, s.show) {
			t.Errorf("after device %v, show lacks %q:\n%s", s.args, s.show, r.stdout)
		}
	}
	if r := easd(t, "", environ, "device", "account-wipe", "bob", "PIXEL1"); r.code != 0 || strings.Contains(r.stdout, "no account-only") {
		t.Errorf("account-wipe of a 16.1 device: %+v", r)
	}
	if r := easd(t, "", environ, "device", "remove", "alice", "IPHONE1"); r.code != 0 {
		t.Errorf("remove: %+v", r)
	}
	if r := easd(t, "", environ, "device", "show", "alice", "IPHONE1"); r.code != 1 || !strings.Contains(r.stderr, "no device") {
		t.Errorf("show after remove: %+v", r)
	}
	// Every action is in the audit log, newest first, with who did it.
	r = easd(t, "", environ, "audit", "--user", "alice")
	var got []string
	for _, line := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(line); len(f) > 3 && strings.HasPrefix(f[3], "device.") {
			got = append(got, f[3])
		}
	}
	want := []string{"device.remove", "device.account-wipe", "device.allow", "device.wipe", "device.allow", "device.block"}
	if fmt.Sprint(got) != fmt.Sprint(want) || !strings.Contains(r.stdout, "IPHONE1") {
		t.Errorf("audit --user alice: actions %v, want %v:\n%s", got, want, r.stdout)
	}
	for _, bad := range []struct {
		args []string
		code int
	}{
		{[]string{"device"}, 2},
		{[]string{"device", "frob"}, 2},
		{[]string{"device", "wipe", "alice"}, 2},
		{[]string{"device", "list", "a", "b"}, 2},
		{[]string{"device", "wipe", "nobody", "X"}, 1},
	} {
		if r := easd(t, "", environ, bad.args...); r.code != bad.code {
			t.Errorf("%v = exit %d, want %d: %s", bad.args, r.code, bad.code, r.stderr)
		}
	}
}

func TestParseDeviceRules(t *testing.T) {
	rules, err := parseDeviceRules("quarantine:SAMSUNG*, block:*/Nokia*,allowed:iPhone")
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 3 || rules[0].Access != store.DeviceQuarantined || rules[0].DeviceType != "SAMSUNG*" ||
		rules[1].Access != store.DeviceBlocked || rules[1].DeviceType != "" || rules[1].Model != "Nokia*" ||
		rules[2].Access != store.DeviceAllowed {
		t.Errorf("rules = %+v", rules)
	}
	for _, bad := range []string{"nocolon", "maybe:x"} {
		if _, err := parseDeviceRules(bad); err == nil {
			t.Errorf("parseDeviceRules(%q) accepted", bad)
		}
	}
}

// failingNotes is the notes codec failing to render any note whose text
// holds "FAIL": a stand-in for a codec bug met by one stored item.
type failingNotes struct{ notes.Codec }

func (c failingNotes) Render(stored []byte, o item.Options) (*wbxml.Node, error) {
	if bytes.Contains(stored, []byte("FAIL")) {
		return nil, errors.New("failingNotes: cannot render this note")
	}
	return c.Codec.Render(stored, o)
}

// TestDeviceQuarantineResync: a note that fails three Syncs of a real
// server is listed by 'device show'; 'device resync' (USER DEVICEID FOLDER
// or DEVICEID FOLDER, FOLDER by name or ServerId) resets the folder for
// that device, which then gets status 3 for its old key.
func TestDeviceQuarantineResync(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	environ := map[string]string{"EASD_DATA_DIR": dir}
	for _, u := range []string{"alice", "bob"} {
		if r := easd(t, u+"-pw\n", environ, "user", "add", u); r.code != 0 {
			t.Fatal(r)
		}
	}
	seedDevice(t, dir, "bob", "IPHONE1", "14.1") // the same DeviceId as alice's
	st, err := sqlite.Open(ctx, filepath.Join(dir, "easd.db"), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := eas.NewHandler(eas.Config{Domain: "example.test"}, eas.Deps{Store: st, Auth: eas.LocalAuth{Users: st},
		Logger: slog.New(slog.DiscardHandler), Items: st, Codecs: map[string]item.Codec{store.ClassNotes: failingNotes{}}})
	srv := httptest.NewServer(h)
	defer func() { h.Drain(); srv.Close() }()
	phone := func(id string) *client.Client {
		c, err := client.New(client.Config{URL: srv.URL, User: "alice", Password: "alice-pw", DeviceID: id, DeviceType: "iPhone", Version: "14.1"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	sync := func(c *client.Client, coll, key string) *client.SyncCollectionResponse {
		t.Helper()
		r, err := c.Sync(ctx, client.SyncRequest{Collections: []client.SyncCollection{{SyncKey: key, CollectionID: coll}}})
		if err != nil {
			t.Fatal(err)
		}
		cr := r.Collection(coll)
		if cr == nil {
			t.Fatalf("Sync of %s: no collection in %+v", coll, r)
		}
		return cr
	}
	c := phone("IPHONE1")
	fc, err := c.FolderSync(ctx, "0")
	if err != nil {
		t.Fatal(err)
	}
	var notesID string
	for _, f := range fc.Added {
		if f.DisplayName == "Notes" {
			notesID = f.ServerID
		}
	}
	var coll int64
	if _, err := fmt.Sscanf(notesID, "c%d", &coll); err != nil {
		t.Fatalf("Notes folder %q: %v", notesID, err)
	}
	data := []byte("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VJOURNAL\r\nUID:n1\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:FAIL\r\nEND:VJOURNAL\r\nEND:VCALENDAR\r\n")
	note, err := st.PutItem(ctx, store.Item{CollectionID: coll, UID: "n1", Data: data})
	if err != nil {
		t.Fatal(err)
	}
	key := sync(c, notesID, "0").SyncKey
	for range 3 {
		key = sync(c, notesID, key).SyncKey
	}
	r := easd(t, "", environ, "device", "show", "alice", "IPHONE1")
	itemID := fmt.Sprintf("%s:%d", notesID, note.ID)
	for _, want := range []string{"failed items: 1, 1 quarantined", "Notes", itemID, "quarantined", "failingNotes: cannot render"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("device show lacks %q: %+v", want, r)
		}
	}

	// USER DEVICEID FOLDER, by name.
	r = easd(t, "", environ, "device", "resync", "alice", "IPHONE1", "notes")
	if r.code != 0 || !strings.Contains(r.stdout, "reset") || !strings.Contains(r.stdout, key) || !strings.Contains(r.stdout, "1 failed or quarantined") {
		t.Fatalf("device resync by name: %+v", r)
	}
	if got := sync(c, notesID, key); got.Status != 3 {
		t.Errorf("old key after the resync: status %d, want 3", got.Status)
	}
	if r := easd(t, "", environ, "device", "show", "alice", "IPHONE1"); !strings.Contains(r.stdout, "failed items: none") {
		t.Errorf("device show after the resync:\n%s", r.stdout)
	}

	// DEVICEID FOLDER (the DeviceId is alice's alone), by ServerId.
	c2 := phone("IPHONE2")
	if _, err := c2.FolderSync(ctx, "0"); err != nil {
		t.Fatal(err)
	}
	key2 := sync(c2, notesID, "0").SyncKey
	r = easd(t, "", environ, "device", "resync", "IPHONE2", notesID)
	if r.code != 0 || !strings.Contains(r.stdout, "device IPHONE2 of alice") || !strings.Contains(r.stdout, key2) {
		t.Fatalf("device resync DEVICEID FOLDER: %+v", r)
	}
	if got := sync(c2, notesID, key2); got.Status != 3 {
		t.Errorf("IPHONE2's old key after its resync: status %d, want 3", got.Status)
	}

	for _, bad := range []struct {
		args []string
		code int
		want string // in stderr
	}{
		{[]string{"resync", "alice", "IPHONE1", "Nowhere"}, 1, "Notes (ServerId " + notesID + ")"},
		{[]string{"resync", "NOPHONE", "Notes"}, 1, "no user has a device"},
		{[]string{"resync", "IPHONE1", "Notes"}, 1, "several users (alice, bob)"},
		{[]string{"resync", "alice", "NOPHONE", "Notes"}, 1, "no device"},
		{[]string{"resync", "alice"}, 2, "resync takes"},
		{[]string{"resync", "a", "b", "c", "d"}, 2, "resync takes"},
	} {
		r := easd(t, "", environ, append([]string{"device"}, bad.args...)...)
		if r.code != bad.code || !strings.Contains(r.stderr, bad.want) {
			t.Errorf("device %v = exit %d %q; want %d with %q", bad.args, r.code, r.stderr, bad.code, bad.want)
		}
	}

	// Removing the device drops its failed items with it.
	key = sync(c, notesID, "0").SyncKey
	sync(c, notesID, key)
	u, _ := st.User(ctx, "alice")
	dev, err := st.Device(ctx, u.ID, "IPHONE1")
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := eas.QuarantinedItems(ctx, st, dev.UserID, dev.ID); len(l) != 1 {
		t.Fatalf("failed items before the removal: %+v", l)
	}
	if r := easd(t, "", environ, "device", "remove", "alice", "IPHONE1"); r.code != 0 {
		t.Fatalf("device remove: %+v", r)
	}
	if l, err := eas.QuarantinedItems(ctx, st, dev.UserID, dev.ID); err != nil || len(l) != 0 {
		t.Errorf("failed items after the removal: %+v, %v", l, err)
	}
}
