package eas_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/easd/easd/eas"
	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/eas/tz"
	"github.com/easd/easd/internal/passwd"
	"github.com/easd/easd/internal/testenv"
	"github.com/easd/easd/store/sqlite"
	"github.com/easd/easd/wbxml"
)

// berlin is the EAS Timezone blob of Europe/Berlin.
func berlin() string {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		panic(err)
	}
	return tz.FromLocation(loc, 2026).Encode()
}

// pimItem is an item a phone creates, with the folder type it goes to.
type pimItem struct {
	folderType int
	app        *wbxml.Node
}

// pimItems are one contact, event, task and note with many fields each,
// as phones send them (14.1).
func pimItems() map[string]pimItem {
	return map[string]pimItem{
		"contact": {9, wbxml.E(wbxml.AirSyncApplicationData,
			wbxml.T(wbxml.ContactsFileAs, "Doe, Jane"),
			wbxml.T(wbxml.ContactsFirstName, "Jane"),
			wbxml.T(wbxml.ContactsLastName, "Doe"),
			wbxml.T(wbxml.ContactsCompanyName, "Acme"),
			wbxml.T(wbxml.ContactsJobTitle, "Engineer"),
			wbxml.T(wbxml.ContactsEmail1Address, "\"Jane Doe\" <jane@example.test>"),
			wbxml.T(wbxml.ContactsMobilePhoneNumber, "+49 170 1234567"),
			wbxml.T(wbxml.ContactsBusinessPhoneNumber, "+49 30 123456"),
			wbxml.T(wbxml.ContactsBusinessAddressCity, "Berlin"),
			wbxml.T(wbxml.ContactsBirthday, "1980-05-17T00:00:00.000Z"),
			wbxml.E(wbxml.ContactsCategories, wbxml.T(wbxml.ContactsCategory, "Work")),
		)},
		"event": {8, wbxml.E(wbxml.AirSyncApplicationData,
			wbxml.T(wbxml.CalendarTimezone, berlin()),
			wbxml.T(wbxml.CalendarAllDayEvent, "0"),
			wbxml.T(wbxml.CalendarStartTime, "20261201T090000Z"),
			wbxml.T(wbxml.CalendarEndTime, "20261201T100000Z"),
			wbxml.T(wbxml.CalendarSubject, "Planning"),
			wbxml.T(wbxml.CalendarLocation, "Room 1"),
			wbxml.T(wbxml.CalendarBusyStatus, "2"),
			wbxml.T(wbxml.CalendarSensitivity, "0"),
			wbxml.T(wbxml.CalendarReminder, "15"),
			wbxml.T(wbxml.CalendarMeetingStatus, "0"),
		)},
		"task": {7, wbxml.E(wbxml.AirSyncApplicationData,
			wbxml.T(wbxml.TasksSubject, "Send the report"),
			wbxml.T(wbxml.TasksImportance, "2"),
			wbxml.T(wbxml.TasksUtcDueDate, "2026-12-05T17:00:00.000Z"),
			wbxml.T(wbxml.TasksDueDate, "2026-12-05T17:00:00.000Z"),
			wbxml.T(wbxml.TasksComplete, "0"),
		)},
		"note": {10, wbxml.E(wbxml.AirSyncApplicationData,
			wbxml.T(wbxml.NotesSubject, "Ideas"),
			wbxml.E(wbxml.AirSyncBaseBody, wbxml.T(wbxml.AirSyncBaseType, "1"), wbxml.T(wbxml.AirSyncBaseData, "Push, with numbers.")),
		)},
	}
}

// TestPIMCreatedOnOneDeviceAppearsOnAnother: what device A creates in
// each class arrives on device B of the same user with the same fields
// (the real converters, through the store).
func TestPIMCreatedOnOneDeviceAppearsOnAnother(t *testing.T) {
	st, err := sqlite.Open(context.Background(), testenv.SQLitePath(t), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hash, err := passwd.Hash("alice-pw", passwd.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(context.Background(), "alice", hash); err != nil {
		t.Fatal(err)
	}
	h := eas.NewHandler(eas.Config{Domain: "example.test"}, eas.Deps{Store: st, Auth: eas.LocalAuth{Users: st},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Items: st, Codecs: eas.DefaultCodecs()})
	srv := httptest.NewServer(h)
	t.Cleanup(func() { h.Drain(); srv.Close() })
	ctx := context.Background()
	phone := func(id string) (*client.Client, map[int]string) {
		c, err := client.New(client.Config{URL: srv.URL, User: "alice", Password: "alice-pw", DeviceID: id, DeviceType: "iPhone", Version: "14.1"})
		if err != nil {
			t.Fatal(err)
		}
		fc, err := c.FolderSync(ctx, "0")
		if err != nil {
			t.Fatal(err)
		}
		byType := map[int]string{}
		for _, f := range fc.Added {
			byType[f.Type] = f.ServerID
		}
		return c, byType
	}
	a, fa := phone("PIMA")
	b, fb := phone("PIMB")
	// B waits on its contacts with Ping; A's new contact wakes it.
	if _, err := b.SyncAll(ctx, fb[9], client.SyncOptions{}, func(*client.SyncCollectionResponse) error { return nil }); err != nil {
		t.Fatal(err)
	}
	woke := make(chan *client.PingResponse, 1)
	go func() {
		r, err := b.Ping(ctx, client.PingRequest{HeartbeatInterval: 300, Folders: []client.PingFolder{{ID: fb[9], Class: "Contacts"}}})
		if err != nil {
			t.Error(err)
		}
		woke <- r
	}()
	for deadline := time.Now().Add(10 * time.Second); h.Parked() != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("B's Ping is not parked")
		}
	}
	for name, it := range pimItems() {
		coll := fa[it.folderType]
		if coll == "" || fb[it.folderType] != coll {
			t.Errorf("%s: no folder of type %d (A %v, B %v)", name, it.folderType, fa, fb)
			continue
		}
		keyA, err := a.SyncAll(ctx, coll, client.SyncOptions{}, func(*client.SyncCollectionResponse) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		r, err := a.Sync(ctx, client.SyncRequest{Collections: []client.SyncCollection{{SyncKey: keyA, CollectionID: coll,
			Adds: []client.SyncAdd{{ClientID: "new-" + name, ApplicationData: it.app}}}}})
		if err != nil || r.Collection(coll) == nil || len(r.Collection(coll).Responses) != 1 || r.Collection(coll).Responses[0].Status != 1 {
			t.Fatalf("%s: Add on A: %+v, %v", name, r, err)
		}
		var got *wbxml.Node
		if _, err := b.SyncAll(ctx, coll, client.SyncOptions{}, func(cr *client.SyncCollectionResponse) error {
			for _, ad := range cr.Adds {
				got = ad.ApplicationData
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got == nil {
			t.Errorf("%s: B received nothing", name)
			continue
		}
		if name == "contact" {
			select {
			case r := <-woke:
				if r == nil || r.Status != client.PingChanges || len(r.Folders) != 1 || r.Folders[0] != fb[9] {
					t.Errorf("B's Ping after A's contact: %+v, want status 2 for Contacts", r)
				}
			case <-time.After(10 * time.Second):
				t.Error("A's new contact did not wake B's Ping")
			}
		}
		// Every field A sent comes to B with the same value.
		for _, want := range it.app.Children {
			g := got.Child(want.Tag)
			if g == nil {
				t.Errorf("%s: B lacks %v", name, want.Tag)
				continue
			}
			if want.Tag == wbxml.AirSyncBaseBody {
				// The server adds EstimatedDataSize: compare the rest.
				for _, c := range want.Children {
					if g.ChildText(c.Tag) != c.Text() {
						t.Errorf("%s: body %v is %q, want %q", name, c.Tag, g.ChildText(c.Tag), c.Text())
					}
				}
				continue
			}
			if diff := cmp.Diff(want.String(), g.String()); diff != "" {
				t.Errorf("%s: %v differs (-A +B):\n%s", name, want.Tag, diff)
			}
		}
	}
}
