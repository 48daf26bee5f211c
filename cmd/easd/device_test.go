package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/easd/easd/store"
	"github.com/easd/easd/store/sqlite"
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
