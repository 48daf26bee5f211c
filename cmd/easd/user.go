package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/easd/easd/eas"
	"github.com/easd/easd/internal/config"
	"github.com/easd/easd/internal/passwd"
	"github.com/easd/easd/store"
	"golang.org/x/term"
)

const userSynopsis = `easd user add|list|passwd|disable|enable|delete|profile|app-password [flags] [NAME]

  add NAME       create a local user; the password is read from a prompt on a
                 terminal, else from the first line of standard input
  list           list users
  passwd NAME    set a new password (read like add)
  disable NAME   refuse the user's logins and syncs, keeping their data
  enable NAME    undo disable
  delete NAME    remove the user with their devices and sync state
  profile NAME   show the user's address list entry, or change it with
                 --display-name, --first-name, --last-name, --title,
                 --company, --office, --phone, --home-phone, --mobile-phone,
                 --alias, --email (an empty value clears a field),
                 --photo FILE.jpg (at most 100 KiB) or --no-photo
  app-password add NAME [--label TEXT] [--device DEVICEID]
                 make a new app password for the user and print it, once;
                 with --device it is accepted only from that phone
  app-password list NAME
                 list the user's app passwords (never the passwords)
  app-password revoke NAME ID
                 withdraw one at once; the account password and the
                 other app passwords keep working

Passwords are never taken from the command line, where other local users
could read them. They are stored as argon2id hashes. App passwords are
generated (125 random bits) and work with serve --auth local: one per
phone, each revocable without changing the account password. Every change
is recorded in the audit log ('easd audit').`

// profileFields are the text flags of 'user profile' and the Profile field
// each sets.
var profileFields = []struct {
	flag, label string
	field       func(p *eas.Profile) *string
}{
	{"display-name", "display name", func(p *eas.Profile) *string { return &p.DisplayName }},
	{"first-name", "first name", func(p *eas.Profile) *string { return &p.FirstName }},
	{"last-name", "last name", func(p *eas.Profile) *string { return &p.LastName }},
	{"title", "title", func(p *eas.Profile) *string { return &p.Title }},
	{"company", "company", func(p *eas.Profile) *string { return &p.Company }},
	{"office", "office", func(p *eas.Profile) *string { return &p.Office }},
	{"phone", "phone", func(p *eas.Profile) *string { return &p.Phone }},
	{"home-phone", "home phone", func(p *eas.Profile) *string { return &p.HomePhone }},
	{"mobile-phone", "mobile phone", func(p *eas.Profile) *string { return &p.MobilePhone }},
	{"alias", "alias", func(p *eas.Profile) *string { return &p.Alias }},
	{"email", "email", func(p *eas.Profile) *string { return &p.EmailAddress }},
}

func runUser(ctx context.Context, e *env, args []string) error {
	fs := config.NewFlagSet("easd user", userSynopsis, e.getenv, e.stderr)
	sf := addStoreFlags(fs)
	// The flags of 'user profile' have no environment variable: they
	// describe one user.
	text := map[string]*string{}
	for _, f := range profileFields {
		text[f.flag] = fs.String(f.flag, "", "", "profile: the user's "+f.label)
	}
	photo := fs.String("photo", "", "", "profile: a JPEG file of at most 100 KiB, the user's picture")
	noPhoto := fs.Bool("no-photo", "", false, "profile: remove the user's picture")
	label := fs.String("label", "", "", "app-password add: a note to tell it apart, e.g. the phone's name")
	device := fs.String("device", "", "", "app-password add: accept it only from this DeviceId (as 'easd device list' shows)")
	sub, pos, err := parseSubcommand(fs, args)
	if err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	wantName := sub != "list"
	switch sub {
	case "add", "list", "passwd", "disable", "enable", "delete", "app-password":
		for n := range given {
			if _, ok := text[n]; ok || n == "photo" || n == "no-photo" {
				return usageError("--%s goes with 'easd user profile'", n)
			}
		}
	case "profile":
		if given["photo"] && *noPhoto {
			return usageError("--photo and --no-photo exclude each other")
		}
	default:
		return usageError("unknown subcommand %q", sub)
	}
	if sub != "app-password" && (given["label"] || given["device"]) {
		return usageError("--label and --device go with 'easd user app-password add'")
	}
	if sub == "app-password" {
		return runAppPassword(ctx, e, sf, pos, given, *label, *device)
	}
	if wantName && len(pos) != 1 {
		return usageError("%s takes exactly one NAME", sub)
	}
	if !wantName && len(pos) != 0 {
		return usageError("list takes no arguments")
	}
	var name string
	if wantName {
		var err error
		if name, err = normalizeName(pos[0]); err != nil {
			return usageError("%v", err)
		}
	}

	// Read the photo before opening the store, so a bad file costs nothing.
	var picture []byte
	if sub == "profile" && given["photo"] {
		if picture, err = readPhoto(*photo); err != nil {
			return err
		}
	}

	// Read the password before opening the store, so a prompt is not held
	// up by (or holding) a database connection.
	var hash string
	if sub == "add" || sub == "passwd" {
		pw, err := readPassword(e)
		if err != nil {
			return err
		}
		if hash, err = passwd.Hash(pw, passwd.Default, nil); err != nil {
			return err
		}
	}

	s, _, err := sf.open(ctx, true)
	if err != nil {
		return err
	}
	defer s.Close()

	switch sub {
	case "add":
		if _, err := s.CreateUser(ctx, name, hash); err != nil {
			if errors.Is(err, store.ErrExists) {
				return fmt.Errorf("user %q already exists (use 'easd user passwd %s' to change the password)", name, name)
			}
			return err
		}
		fmt.Fprintf(e.stdout, "user %s added\n", name)
		return recordAudit(ctx, e, s, "user.add", name, "", "")
	case "list":
		users, err := s.Users(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSTATUS\tCREATED")
		for _, u := range users {
			status := "enabled"
			if u.Disabled {
				status = "disabled"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, status, u.CreatedAt.UTC().Format("2006-01-02 15:04:05Z"))
		}
		return tw.Flush()
	case "passwd", "disable", "enable", "delete":
		var err error
		var done string
		switch sub {
		case "passwd":
			err, done = s.SetPassword(ctx, name, hash), "password changed"
		case "disable":
			err, done = s.SetDisabled(ctx, name, true), "disabled"
		case "enable":
			err, done = s.SetDisabled(ctx, name, false), "enabled"
		case "delete":
			err, done = s.DeleteUser(ctx, name), "deleted"
		}
		if err := notFound(name, err, e, done); err != nil {
			return err
		}
		return recordAudit(ctx, e, s, "user."+sub, name, "", "")
	case "profile":
		var changed []string
		for _, f := range profileFields {
			if given[f.flag] {
				changed = append(changed, f.flag)
			}
		}
		if given["photo"] || given["no-photo"] && *noPhoto {
			changed = append(changed, "photo")
		}
		return userProfile(ctx, e, s, name, changed, func(p *eas.Profile) bool {
			changed := false
			for _, f := range profileFields {
				if given[f.flag] {
					*f.field(p) = strings.TrimSpace(*text[f.flag])
					changed = true
				}
			}
			switch {
			case given["photo"]:
				p.Picture, changed = picture, true
			case given["no-photo"] && *noPhoto:
				p.Picture, changed = nil, true
			}
			return changed
		})
	}
	return nil
}

// userProfile shows a user's profile (the address list entry, stored in
// the user setting eas.ProfileSettingKey) after applying edit; when edit
// changed it, it is validated and stored first, and the change (of the
// fields named changed) is recorded in the audit log.
func userProfile(ctx context.Context, e *env, s store.Store, name string, changed []string, edit func(*eas.Profile) bool) error {
	u, err := s.User(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no user %q", name)
	}
	if err != nil {
		return err
	}
	var p eas.Profile
	b, err := s.UserSetting(ctx, u.ID, eas.ProfileSettingKey)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(b, &p); err != nil {
			fmt.Fprintf(e.stderr, "warning: the stored profile of %s does not decode (%v); starting from an empty one\n", name, err)
			p = eas.Profile{}
		}
	}
	if edit(&p) {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("profile of %s: %w", name, err)
		}
		b, err := json.Marshal(p)
		if err != nil {
			return err
		}
		if err := s.PutUserSetting(ctx, u.ID, eas.ProfileSettingKey, b); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "user %s profile updated\n", name)
		if err := recordAudit(ctx, e, s, "user.profile", name, "", "changed: "+strings.Join(changed, ", ")); err != nil {
			return err
		}
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "user\t%s\n", u.Name)
	for _, f := range profileFields {
		v := *f.field(&p)
		switch {
		case v != "":
		case f.flag == "email" && strings.Contains(u.Name, "@"):
			v = "- (default: " + u.Name + ")"
		case f.flag == "email":
			v = "- (default: " + u.Name + "@DOMAIN, DOMAIN being serve's --domain)"
		case f.flag == "display-name":
			v = "- (default: first and last name, else " + u.Name + ")"
		default:
			v = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\n", f.label, v)
	}
	pic := "-"
	if len(p.Picture) > 0 {
		pic = fmt.Sprintf("%d bytes (JPEG)", len(p.Picture))
	}
	fmt.Fprintf(tw, "photo\t%s\n", pic)
	return tw.Flush()
}

// readPhoto reads a profile picture: a JPEG file of at most
// eas.MaxPictureBytes.
func readPhoto(path string) ([]byte, error) {
	if path == "" {
		return nil, usageError("--photo needs a file (use --no-photo to remove the picture)")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, eas.MaxPictureBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	switch {
	case len(b) > eas.MaxPictureBytes:
		return nil, fmt.Errorf("%s is larger than %d bytes (100 KiB): make a smaller JPEG", path, eas.MaxPictureBytes)
	case !eas.IsJPEG(b):
		return nil, fmt.Errorf("%s is not a JPEG file", path)
	}
	return b, nil
}

func notFound(name string, err error, e *env, done string) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no user %q", name)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "user %s %s\n", name, done)
	return nil
}

// normalizeName lower-cases a login name and rejects ones that cannot be
// typed into a phone's account screen.
func normalizeName(n string) (string, error) {
	n = strings.ToLower(strings.TrimSpace(n))
	if n == "" || len(n) > 256 {
		return "", fmt.Errorf("user name must be 1 to 256 characters")
	}
	for _, r := range n {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '\\' || r == ':' {
			return "", fmt.Errorf("user name %q: no spaces, control characters, '\\' or ':'", n)
		}
	}
	return n, nil
}

// readPassword prompts twice without echo on a terminal; otherwise it reads
// the first line of standard input (for scripts: echo pw | easd user add x).
func readPassword(e *env) (string, error) {
	if f, ok := e.stdin.(*os.File); ok && e.isTerminal(f) {
		fmt.Fprint(e.stderr, "Password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", fmt.Errorf("reading password: %w", err)
		}
		fmt.Fprint(e.stderr, "Repeat password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", fmt.Errorf("reading password: %w", err)
		}
		if string(a) != string(b) {
			return "", errors.New("passwords do not match")
		}
		return checkPassword(string(a))
	}
	line, err := bufio.NewReaderSize(io.LimitReader(e.stdin, 4096), 4096).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading password from stdin: %w", err)
	}
	return checkPassword(strings.TrimRight(line, "\r\n"))
}

func checkPassword(pw string) (string, error) {
	if pw == "" {
		return "", errors.New("empty password (give it on standard input or at the prompt)")
	}
	if len(pw) > 1024 {
		return "", errors.New("password longer than 1024 bytes")
	}
	return pw, nil
}

// runAppPassword is 'easd user app-password add|list|revoke NAME [ID]'.
func runAppPassword(ctx context.Context, e *env, sf storeFlags, pos []string, given map[string]bool, label, device string) error {
	if len(pos) == 0 {
		return usageError("app-password needs add, list or revoke")
	}
	action, pos := pos[0], pos[1:]
	want := map[string]int{"add": 1, "list": 1, "revoke": 2}[action]
	switch {
	case want == 0:
		return usageError("unknown app-password subcommand %q (want add, list or revoke)", action)
	case len(pos) != want && action == "revoke":
		return usageError("app-password revoke takes NAME and ID")
	case len(pos) != want:
		return usageError("app-password %s takes exactly one NAME", action)
	case action != "add" && (given["label"] || given["device"]):
		return usageError("--label and --device go with 'easd user app-password add'")
	}
	name, err := normalizeName(pos[0])
	if err != nil {
		return usageError("%v", err)
	}
	var id int64
	if action == "revoke" {
		if id, err = strconv.ParseInt(pos[1], 10, 64); err != nil || id <= 0 {
			return usageError("app password ID %q: want the number 'easd user app-password list %s' shows", pos[1], name)
		}
	}
	label, device = strings.TrimSpace(label), strings.TrimSpace(device)
	if len(label) > 200 || !printableText(label) {
		return usageError("--label: at most 200 printable characters")
	}
	if len(device) > 128 || !printableText(device) {
		return usageError("--device: at most 128 printable characters")
	}

	s, _, err := sf.open(ctx, true)
	if err != nil {
		return err
	}
	defer s.Close()
	u, err := s.User(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no user %q", name)
	}
	if err != nil {
		return err
	}
	switch action {
	case "add":
		return addAppPassword(ctx, e, s, u, label, device)
	case "list":
		ps, err := s.AppPasswords(ctx, u.ID)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tLABEL\tDEVICE\tCREATED\tLAST USED")
		for _, p := range ps {
			used := "never"
			if !p.LastUsed.IsZero() {
				used = p.LastUsed.UTC().Format("2006-01-02 15:04Z")
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", p.ID, cmp.Or(p.Label, "-"), cmp.Or(p.DeviceID, "any"),
				p.Created.UTC().Format("2006-01-02 15:04:05Z"), used)
		}
		return tw.Flush()
	default: // revoke
		var gone store.AppPassword
		if ps, err := s.AppPasswords(ctx, u.ID); err == nil {
			for _, p := range ps {
				if p.ID == id {
					gone = p
				}
			}
		}
		if err := s.DeleteAppPassword(ctx, u.ID, id); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("user %s has no app password %d ('easd user app-password list %s' shows them)", name, id, name)
		} else if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "app password %d of %s revoked: it is refused from the next request on\n", id, name)
		return recordAudit(ctx, e, s, "app-password.revoke", name, gone.DeviceID, appPasswordDetail(id, gone.Label))
	}
}

// addAppPassword makes an app password for u and prints it: the only time
// it is ever shown. Only its digest is stored.
func addAppPassword(ctx context.Context, e *env, s store.Store, u store.User, label, device string) error {
	if u.PasswordHash == "" {
		fmt.Fprintf(e.stderr, "note: %s has no local password (a user made by an --auth imap login?); app passwords are checked by serve --auth local only\n", u.Name)
	}
	if device != "" {
		if _, err := s.Device(ctx, u.ID, device); errors.Is(err, store.ErrNotFound) {
			fmt.Fprintf(e.stderr, "note: %s has no device %q yet; the password will work only from a phone sending this DeviceId\n", u.Name, device)
		}
	}
	pw, hash, err := eas.NewAppPassword(nil)
	if err != nil {
		return err
	}
	p, err := s.AddAppPassword(ctx, store.AppPassword{UserID: u.ID, Label: label, DeviceID: device, Hash: hash})
	if err != nil {
		return err
	}
	where := "from any device"
	if device != "" {
		where = "only from device " + device
	}
	fmt.Fprintf(e.stdout, "app password %d for %s (%s):\n\n    %s\n\n", p.ID, u.Name, where, pw)
	fmt.Fprintf(e.stdout, "Enter it on the phone as the account's password. It is not shown again;\n"+
		"'easd user app-password revoke %s %d' withdraws it.\n", u.Name, p.ID)
	return recordAudit(ctx, e, s, "app-password.add", u.Name, device, appPasswordDetail(p.ID, label))
}

// appPasswordDetail is the audit log detail naming an app password.
func appPasswordDetail(id int64, label string) string {
	if label == "" {
		return fmt.Sprintf("id %d", id)
	}
	return fmt.Sprintf("id %d, label %q", id, label)
}

// printableText reports whether s has no control characters.
func printableText(s string) bool {
	return !strings.ContainsFunc(s, unicode.IsControl)
}
