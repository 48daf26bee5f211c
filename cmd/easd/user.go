package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/easd/easd/internal/config"
	"github.com/easd/easd/internal/passwd"
	"github.com/easd/easd/store"
	"golang.org/x/term"
)

const userSynopsis = `easd user add|list|passwd|disable|enable|delete [flags] [NAME]

  add NAME       create a local user; the password is read from a prompt on a
                 terminal, else from the first line of standard input
  list           list users
  passwd NAME    set a new password (read like add)
  disable NAME   refuse the user's logins and syncs, keeping their data
  enable NAME    undo disable
  delete NAME    remove the user with their devices and sync state

Passwords are never taken from the command line, where other local users
could read them. They are stored as argon2id hashes.`

func runUser(ctx context.Context, e *env, args []string) error {
	fs := config.NewFlagSet("easd user", userSynopsis, e.getenv, e.stderr)
	sf := addStoreFlags(fs)
	sub, pos, err := parseSubcommand(fs, args)
	if err != nil {
		return err
	}
	wantName := sub != "list"
	switch sub {
	case "add", "list", "passwd", "disable", "enable", "delete":
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
	}
	return nil
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
