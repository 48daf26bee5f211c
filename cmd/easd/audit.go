package main

import (
	"context"
	"fmt"
	"log/slog"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/easd/easd/internal/config"
	"github.com/easd/easd/internal/server"
	"github.com/easd/easd/store"
)

const auditSynopsis = `easd audit [--user NAME] [--since DURATION] [--limit N] [flags]

Show the audit log, newest first: what administrators did with 'easd user'
and 'easd device' (actor cli:<OS user>: users added, deleted, disabled or
enabled, passwords and app passwords set or revoked, devices wiped,
blocked, allowed, removed), and remote wipes that phones confirmed (actor
server). Entries outlive the users and devices they name. They never
hold a password.`

// runAudit is 'easd audit'.
func runAudit(ctx context.Context, e *env, args []string) error {
	fs := config.NewFlagSet("easd audit", auditSynopsis, e.getenv, e.stderr)
	sf := addStoreFlags(fs)
	who := fs.String("user", "", "", "only entries about this user")
	since := fs.Duration("since", "", 0, "only entries of the last DURATION, e.g. 24h or 30m; 0 for all")
	limit := fs.Int("limit", "", 50, "at most N entries, the newest; 0 for all")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q", fs.Arg(0))
	}
	if *since < 0 || *limit < 0 {
		return usageError("--since and --limit must not be negative")
	}
	f := store.AuditFilter{Limit: *limit}
	if *who != "" {
		name, err := normalizeName(*who)
		if err != nil {
			return usageError("--user: %v", err)
		}
		f.User = name
	}
	if *since > 0 {
		f.Since = time.Now().Add(-*since)
	}
	s, _, err := sf.open(ctx, true)
	if err != nil {
		return err
	}
	defer s.Close()
	entries, err := s.Audit(ctx, f)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTOR\tACTION\tUSER\tDEVICE\tDETAIL")
	for _, en := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", en.Time.UTC().Format("2006-01-02 15:04:05Z"),
			cell(en.Actor), cell(en.Action), cell(en.User), cell(en.Device), cell(en.Detail))
	}
	return tw.Flush()
}

// cell makes a value one table cell: "-" when empty, control characters
// (tabs, newlines) as spaces.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// recordAudit appends an administrative action of this command to the
// audit log of s, and logs it at info on standard error (text on a
// terminal, else JSON; EASD_LOG_FORMAT chooses). action names what was
// done ("user.delete", "device.wipe"); user and device what it was done
// to ("" when none); detail is free text and must never hold a secret. The
// actor is "cli:" and the OS user (see auditActor).
//
// Call it once the action has succeeded; its error means only the entry
// is missing.
func recordAudit(ctx context.Context, e *env, s store.Store, action, user, device, detail string) error {
	en := store.AuditEntry{Actor: auditActor(e), Action: action, User: user, Device: device, Detail: detail}
	format := e.getenv("EASD_LOG_FORMAT")
	log, err := server.NewLogger(e.stderr, format, "info", e.isTerminal(e.stderr))
	if err != nil {
		log = slog.New(slog.NewTextHandler(e.stderr, nil))
	}
	log.Info("audit", "actor", en.Actor, "action", action, "user", user, "device", device, "detail", detail)
	if _, err := s.AddAudit(ctx, en); err != nil {
		return fmt.Errorf("%s done, but not recorded in the audit log: %w", action, err)
	}
	return nil
}

// auditActor names who runs this command: "cli:" and the OS user from
// the environment (USER, else LOGNAME), else from the system; through
// sudo, the user who ran sudo ("cli:alice via sudo"). It is what the
// environment says, not a proof: anyone who can write to the database can
// write anything into the log.
func auditActor(e *env) string {
	if su := e.getenv("SUDO_USER"); su != "" {
		return "cli:" + su + " via sudo"
	}
	name := e.getenv("USER")
	if name == "" {
		name = e.getenv("LOGNAME")
	}
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	if name == "" {
		name = "unknown"
	}
	return "cli:" + name
}
