package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/easd/easd/eas"
	"github.com/easd/easd/internal/config"
	"github.com/easd/easd/internal/passwd"
	"github.com/easd/easd/store"
	"golang.org/x/term"
)

const userSynopsis = `easd user add|list|passwd|disable|enable|delete|profile [flags] [NAME]

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

Passwords are never taken from the command line, where other local users
could read them. They are stored as argon2id hashes.`

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
	sub, pos, err := parseSubcommand(fs, args)
	if err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	wantName := sub != "list"
	switch sub {
	case "add", "list", "passwd", "disable", "enable", "delete":
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
	case "passwd":
		return notFound(name, s.SetPassword(ctx, name, hash), e, "password changed")
	case "disable":
		return notFound(name, s.SetDisabled(ctx, name, true), e, "disabled")
	case "enable":
		return notFound(name, s.SetDisabled(ctx, name, false), e, "enabled")
	case "delete":
		return notFound(name, s.DeleteUser(ctx, name), e, "deleted")
	case "profile":
		return userProfile(ctx, e, s, name, func(p *eas.Profile) bool {
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
// changed it, it is validated and stored first.
func userProfile(ctx context.Context, e *env, s store.Store, name string, edit func(*eas.Profile) bool) error {
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
