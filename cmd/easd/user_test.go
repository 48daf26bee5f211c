package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
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

// appPasswordLine finds the app password printed by 'app-password add'.
var appPasswordLine = regexp.MustCompile(`(?m)^    ([a-z2-9]{5}(?:-[a-z2-9]{5}){4})$`)

func TestUserAppPassword(t *testing.T) {
	for name, environ := range stores(t) {
		t.Run(name, func(t *testing.T) {
			if r := easd(t, "alice-pw\n", environ, "user", "add", "alice"); r.code != 0 {
				t.Fatal(r)
			}
			r := easd(t, "", environ, "user", "app-password", "add", "Alice", "--label", "work phone", "--device", "IPHONE1")
			m := appPasswordLine.FindStringSubmatch(r.stdout)
			if r.code != 0 || m == nil || !strings.Contains(r.stdout, "only from device IPHONE1") {
				t.Fatalf("app-password add: %+v", r)
			}
			if !strings.Contains(r.stderr, `no device "IPHONE1" yet`) {
				t.Errorf("no note that the device is unknown: %s", r.stderr)
			}
			first := m[1]
			// Flags may come first; no device: any.
			r = easd(t, "", environ, "user", "--label", "tablet", "app-password", "add", "alice")
			m = appPasswordLine.FindStringSubmatch(r.stdout)
			if r.code != 0 || m == nil || m[1] == first || !strings.Contains(r.stdout, "from any device") {
				t.Fatalf("second app-password add: %+v", r)
			}
			second := m[1]

			r = easd(t, "", environ, "user", "app-password", "list", "alice")
			rows := strings.Split(strings.TrimSpace(r.stdout), "\n")
			if r.code != 0 || len(rows) != 3 || !strings.HasPrefix(rows[0], "ID") ||
				!strings.Contains(rows[1], "work phone") || !strings.Contains(rows[1], "IPHONE1") || !strings.Contains(rows[1], "never") ||
				!strings.Contains(rows[2], "tablet") || !strings.Contains(rows[2], "any") {
				t.Errorf("app-password list: %+v", r)
			}
			if strings.Contains(r.stdout, first) || strings.Contains(r.stdout, second) || strings.Contains(r.stdout, "$sha256$") {
				t.Errorf("list shows a password or its digest:\n%s", r.stdout)
			}

			if r := easd(t, "", environ, "user", "app-password", "revoke", "alice", "1"); r.code != 0 || !strings.Contains(r.stdout, "revoked") {
				t.Errorf("revoke: %+v", r)
			}
			if r := easd(t, "", environ, "user", "app-password", "revoke", "alice", "1"); r.code != 1 || !strings.Contains(r.stderr, "has no app password 1") {
				t.Errorf("revoke twice: %+v", r)
			}
			if r := easd(t, "pw\n", environ, "user", "add", "bob"); r.code != 0 {
				t.Fatal(r)
			}
			if r := easd(t, "", environ, "user", "app-password", "revoke", "bob", "2"); r.code != 1 {
				t.Errorf("revoke another user's app password: %+v", r)
			}
			if r := easd(t, "", environ, "user", "app-password", "list", "alice"); strings.Contains(r.stdout, "work phone") || !strings.Contains(r.stdout, "tablet") {
				t.Errorf("list after revoke:\n%s", r.stdout)
			}
			if r := easd(t, "", environ, "user", "app-password", "list", "nobody"); r.code != 1 || !strings.Contains(r.stderr, `no user "nobody"`) {
				t.Errorf("list of an unknown user: %+v", r)
			}
			for _, args := range [][]string{
				{"app-password"}, {"app-password", "frob", "alice"}, {"app-password", "add"}, {"app-password", "list", "a", "b"},
				{"app-password", "revoke", "alice"}, {"app-password", "revoke", "alice", "x"}, {"app-password", "revoke", "alice", "0"},
				{"app-password", "list", "alice", "--label", "x"}, {"passwd", "alice", "--device", "X"},
				{"app-password", "add", "alice", "--label", "a\x01b"},
			} {
				if r := easd(t, "pw\n", environ, append([]string{"user"}, args...)...); r.code != 2 {
					t.Errorf("easd user %q = %d, want 2 (usage): %s", args, r.code, r.stderr)
				}
			}
		})
	}
}

// TestUserAppPasswordStored: only the digest is stored, and the user's
// app passwords go with the user.
func TestUserAppPasswordStored(t *testing.T) {
	dir := t.TempDir()
	environ := map[string]string{"EASD_DATA_DIR": dir}
	if r := easd(t, "pw\n", environ, "user", "add", "alice"); r.code != 0 {
		t.Fatal(r)
	}
	r := easd(t, "", environ, "user", "app-password", "add", "alice")
	m := appPasswordLine.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("app-password add: %+v", r)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "easd.db"), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.User(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	ps, err := st.AppPasswords(context.Background(), u.ID)
	want, _ := eas.HashAppPassword(m[1])
	if err != nil || len(ps) != 1 || ps[0].Hash != want || strings.Contains(ps[0].Hash, m[1]) {
		t.Fatalf("stored app passwords = %+v, %v; want one with digest %q", ps, err, want)
	}
	if r := easd(t, "", environ, "user", "delete", "alice"); r.code != 0 {
		t.Fatal(r)
	}
	if ps, err := st.AppPasswords(context.Background(), u.ID); err != nil || len(ps) != 0 {
		t.Errorf("app passwords after the user's deletion = %+v, %v", ps, err)
	}
}

// TestUserAppPasswordServe uses app passwords against a real server: a
// phone logs in with one, its use shows in 'app-password list', and once
// revoked (while the server runs) the next request is refused while the
// account password and the other app password keep working.
func TestUserAppPasswordServe(t *testing.T) {
	bin := buildEasd(t)
	dir := t.TempDir()
	environ := map[string]string{"EASD_DATA_DIR": filepath.Join(dir, "data")}
	if r := easd(t, "alice-pw\n", environ, "user", "add", "alice"); r.code != 0 {
		t.Fatal(r)
	}
	var pws []string
	for _, label := range []string{"phone", "tablet"} {
		r := easd(t, "", environ, "user", "app-password", "add", "alice", "--label", label)
		m := appPasswordLine.FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("app-password add: %+v", r)
		}
		pws = append(pws, m[1])
	}
	cmd, addr, _, logOf := startServe(t, bin, dir, "EASD_DATA_DIR="+environ["EASD_DATA_DIR"])
	phoneWith := func(pw, dev string) *client.Client {
		c, err := client.New(client.Config{URL: "http://" + addr, User: "alice", Password: pw, DeviceID: dev, DeviceType: "iPhone"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	phone := phoneWith(pws[0], "APPPW1")
	if _, _, err := phone.Provision(t.Context()); err != nil {
		t.Fatalf("Provision with an app password: %v", err)
	}
	if _, err := phone.UserInformation(t.Context()); err != nil {
		t.Fatalf("Settings with an app password: %v", err)
	}
	// Typed as a phone keyboard might: capitalised.
	if _, _, err := phoneWith(strings.ToUpper(pws[1][:1])+pws[1][1:], "APPPW2").Provision(t.Context()); err != nil {
		t.Errorf("the other app password, capitalised: %v", err)
	}
	r := easd(t, "", environ, "user", "app-password", "list", "alice")
	if strings.Count(r.stdout, "never") != 0 {
		t.Errorf("use not recorded:\n%s", r.stdout)
	}
	if r := easd(t, "", environ, "user", "app-password", "revoke", "alice", "1"); r.code != 0 {
		t.Fatal(r)
	}
	var he *client.HTTPError
	if _, err := phone.UserInformation(t.Context()); !errors.As(err, &he) || he.Status != 401 {
		t.Errorf("request after revocation = %v, want HTTP 401", err)
	}
	if _, err := phoneWith(pws[1], "APPPW2").UserInformation(t.Context()); err != nil {
		t.Errorf("the other app password after a revocation: %v", err)
	}
	if _, err := phoneWith("alice-pw", "APPPW1").UserInformation(t.Context()); err != nil {
		t.Errorf("the account password after a revocation: %v", err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if logs := logOf(); strings.Contains(logs, pws[0]) || strings.Contains(logs, pws[1]) {
		t.Error("an app password is in the server log")
	}
}

// TestUserAppPasswordDeviceServe: an app password made with --device works
// from that phone only (OPTIONS naming no device too, for account setup).
// It needs eas.Handler.authenticate to call checkPassword (DeviceId known
// at authentication).
func TestUserAppPasswordDeviceServe(t *testing.T) {
	bin := buildEasd(t)
	dir := t.TempDir()
	environ := map[string]string{"EASD_DATA_DIR": filepath.Join(dir, "data")}
	if r := easd(t, "alice-pw\n", environ, "user", "add", "alice"); r.code != 0 {
		t.Fatal(r)
	}
	r := easd(t, "", environ, "user", "app-password", "add", "alice", "--device", "IPHONE1")
	m := appPasswordLine.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("app-password add: %+v", r)
	}
	cmd, addr, _, _ := startServe(t, bin, dir, "EASD_DATA_DIR="+environ["EASD_DATA_DIR"])
	defer cmd.Process.Signal(syscall.SIGTERM)
	req, _ := http.NewRequest(http.MethodOptions, "http://"+addr+eas.Path, nil)
	req.SetBasicAuth("alice", m[1])
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("OPTIONS naming no device: %v %v; want 200", resp, err)
	} else {
		resp.Body.Close()
	}
	for dev, want := range map[string]int{"IPHONE1": 200, "IPHONE2": 401} {
		phone, err := client.New(client.Config{URL: "http://" + addr, User: "alice", Password: m[1], DeviceID: dev, DeviceType: "iPhone"})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = phone.Provision(t.Context())
		var he *client.HTTPError
		switch {
		case want == 200 && err != nil:
			t.Errorf("Provision from %s: %v; want success", dev, err)
		case want == 401 && (!errors.As(err, &he) || he.Status != 401):
			t.Errorf("Provision from %s: %v; want HTTP 401", dev, err)
		}
	}
}
