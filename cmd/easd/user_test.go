package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/easd/easd/eas"
	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/store/sqlite"
	"github.com/google/go-cmp/cmp"
)

// storedProfile reads user's profile straight from the SQLite store in dir.
func storedProfile(t *testing.T, dir, user string) (eas.Profile, bool) {
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
	b, err := st.UserSetting(context.Background(), u.ID, eas.ProfileSettingKey)
	if err != nil {
		return eas.Profile{}, false
	}
	var p eas.Profile
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p, true
}

func TestUserProfile(t *testing.T) {
	for name, environ := range stores(t) {
		t.Run(name, func(t *testing.T) {
			if r := easd(t, "pw\n", environ, "user", "add", "alice"); r.code != 0 {
				t.Fatal(r)
			}
			// Nothing set: the defaults are shown.
			r := easd(t, "", environ, "user", "profile", "alice")
			if r.code != 0 || !strings.Contains(r.stdout, "alice@DOMAIN") || !strings.Contains(r.stdout, "photo") {
				t.Fatalf("show empty profile: %+v", r)
			}
			jpeg := filepath.Join(t.TempDir(), "alice.jpg")
			if err := os.WriteFile(jpeg, append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, make([]byte, 596)...), 0o600); err != nil {
				t.Fatal(err)
			}
			r = easd(t, "", environ, "user", "profile", "Alice", "--display-name", "Alice Smith", "--first-name", "Alice",
				"--last-name", "Smith", "--title", "Engineer", "--company", "Example Corp", "--office", "B12",
				"--phone", "+1 555 0100", "--home-phone", "+1 555 0101", "--mobile-phone", "+1 555 0102",
				"--alias", "asmith", "--email", "alice.smith@example.com", "--photo", jpeg)
			if r.code != 0 || !strings.Contains(r.stdout, "profile updated") {
				t.Fatalf("set profile: %+v", r)
			}
			for _, want := range []string{"Alice Smith", "Engineer", "Example Corp", "+1 555 0102", "asmith", "alice.smith@example.com", "600 bytes (JPEG)"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("profile output lacks %q:\n%s", want, r.stdout)
				}
			}
			// Flags may come before the name; an empty value clears a field;
			// the others stay.
			r = easd(t, "", environ, "user", "profile", "--title", "", "--mobile-phone", " +1 555 0199 ", "alice")
			if r.code != 0 || strings.Contains(r.stdout, "Engineer") || !strings.Contains(r.stdout, "+1 555 0199") ||
				!strings.Contains(r.stdout, "600 bytes") {
				t.Errorf("change two fields: %+v", r)
			}
			if r := easd(t, "", environ, "user", "profile", "alice", "--no-photo"); r.code != 0 || strings.Contains(r.stdout, "bytes (JPEG)") {
				t.Errorf("--no-photo: %+v", r)
			}
			// Showing changes nothing.
			if r := easd(t, "", environ, "user", "profile", "alice"); r.code != 0 || strings.Contains(r.stdout, "updated") ||
				!strings.Contains(r.stdout, "Alice Smith") {
				t.Errorf("show: %+v", r)
			}
		})
	}
}

func TestUserProfileStored(t *testing.T) {
	dir := t.TempDir()
	environ := map[string]string{"EASD_DATA_DIR": dir}
	if r := easd(t, "pw\n", environ, "user", "add", "bob"); r.code != 0 {
		t.Fatal(r)
	}
	if _, ok := storedProfile(t, dir, "bob"); ok {
		t.Fatal("a profile exists before any was set")
	}
	if r := easd(t, "", environ, "user", "profile", "bob", "--first-name", "Bob", "--last-name", "Jones"); r.code != 0 {
		t.Fatal(r)
	}
	got, _ := storedProfile(t, dir, "bob")
	if diff := cmp.Diff(eas.Profile{FirstName: "Bob", LastName: "Jones"}, got); diff != "" {
		t.Errorf("stored profile (-want +got):\n%s", diff)
	}
}

func TestUserProfileErrors(t *testing.T) {
	dir := t.TempDir()
	environ := map[string]string{"EASD_DATA_DIR": dir}
	if r := easd(t, "pw\n", environ, "user", "add", "alice"); r.code != 0 {
		t.Fatal(r)
	}
	tmp := t.TempDir()
	gif := filepath.Join(tmp, "a.gif")
	os.WriteFile(gif, []byte("GIF89a............"), 0o600)
	big := filepath.Join(tmp, "big.jpg")
	os.WriteFile(big, append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, make([]byte, eas.MaxPictureBytes)...), 0o600)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"profile"}, 2, "exactly one NAME"},
		{[]string{"profile", "nobody"}, 1, `no user "nobody"`},
		{[]string{"profile", "alice", "--photo", gif}, 1, "not a JPEG"},
		{[]string{"profile", "alice", "--photo", big}, 1, "larger than 102400 bytes"},
		{[]string{"profile", "alice", "--photo", filepath.Join(tmp, "missing.jpg")}, 1, "missing.jpg"},
		{[]string{"profile", "alice", "--photo", ""}, 2, "--photo needs a file"},
		{[]string{"profile", "alice", "--photo", big, "--no-photo"}, 2, "exclude each other"},
		{[]string{"profile", "alice", "--email", "Alice <a@example.com>"}, 1, "bare address"},
		{[]string{"profile", "alice", "--email", "alice"}, 1, "bare address"},
		{[]string{"profile", "alice", "--office", strings.Repeat("x", 300)}, 1, "longer than 256"},
		{[]string{"add", "carol", "--display-name", "Carol"}, 2, "--display-name goes with 'easd user profile'"},
		{[]string{"list", "--no-photo"}, 2, "--no-photo goes with"},
	} {
		r := easd(t, "pw\n", environ, append([]string{"user"}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.want) {
			t.Errorf("easd user %q = exit %d, output:\n%s%s\nwant exit %d containing %q", tc.args, r.code, r.stdout, r.stderr, tc.code, tc.want)
		}
	}
	// Nothing was stored by the refused commands.
	if _, ok := storedProfile(t, dir, "alice"); ok {
		t.Error("a refused change stored a profile")
	}
}

// TestUserProfileServeGAL: profiles set with 'easd user profile' are the
// address list a phone searches and resolves against on a running
// 'easd serve'; a disabled user drops out of it at once.
func TestUserProfileServeGAL(t *testing.T) {
	bin := buildEasd(t)
	dir := t.TempDir()
	environ := map[string]string{"EASD_DATA_DIR": filepath.Join(dir, "data")}
	for _, u := range []string{"alice", "bob"} {
		if r := easd(t, u+"-pw\n", environ, "user", "add", u); r.code != 0 {
			t.Fatal(r)
		}
	}
	jpeg := filepath.Join(dir, "bob.jpg")
	photo := append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, []byte("bob's face")...)
	if err := os.WriteFile(jpeg, photo, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := easd(t, "", environ, "user", "profile", "bob", "--display-name", "Bob Jones", "--title", "Plumber", "--photo", jpeg); r.code != 0 {
		t.Fatal(r)
	}
	cmd, addr, _, logOf := startServe(t, bin, dir, "EASD_DOMAIN=example.com")
	phone, err := client.New(client.Config{URL: "http://" + addr, User: "alice", Password: "alice-pw", DeviceID: "GALCLI1", DeviceType: "iPhone"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := phone.SearchGAL(t.Context(), client.GALQuery{Query: "jon", Picture: &client.PictureOptions{}})
	if err != nil {
		t.Fatalf("SearchGAL: %v\n%s", err, logOf())
	}
	want := []client.GALEntry{{DisplayName: "Bob Jones", Title: "Plumber", EmailAddress: "bob@example.com",
		Picture: &client.Picture{Status: 1, Data: photo}}}
	if diff := cmp.Diff(want, res.Entries); diff != "" || res.Total != 1 {
		t.Errorf("SearchGAL total %d (-want +got):\n%s", res.Total, diff)
	}
	rr, err := phone.ResolveRecipients(t.Context(), []string{"bob@example.com"}, client.ResolveOptions{})
	if err != nil || len(rr.Responses) != 1 || rr.Responses[0].Status != 1 || len(rr.Responses[0].Recipients) != 1 ||
		rr.Responses[0].Recipients[0].DisplayName != "Bob Jones" {
		t.Errorf("ResolveRecipients: %+v, %v", rr, err)
	}
	if r := easd(t, "", environ, "user", "disable", "bob"); r.code != 0 {
		t.Fatal(r)
	}
	if res, err := phone.SearchGAL(t.Context(), client.GALQuery{Query: "bob"}); err != nil || len(res.Entries) != 0 {
		t.Errorf("disabled bob still listed: %+v, %v", res, err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("serve exit: %v\n%s", err, logOf())
	}
}
