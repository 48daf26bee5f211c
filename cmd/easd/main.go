// Command easd is an Exchange ActiveSync server. One binary holds every
// tool: serve, migrate, user, device, audit, wbxml, version and more;
// `easd help` lists them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/term"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version or VCS revision from the build info is used.
var version = ""

// env is everything a command may touch of the outside world, so that tests
// run commands in-process with their own stdin, stdout and environment.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	// isTerminal reports whether f (stdin or stderr) is a terminal; it
	// chooses between a no-echo prompt and reading a line, and text or JSON logs.
	isTerminal func(f any) bool
	// signals returns a context cancelled on SIGINT/SIGTERM.
	signals func(ctx context.Context) (context.Context, context.CancelFunc)
}

// command is one subcommand.
type command struct {
	name     string
	synopsis string
	summary  string
	run      func(ctx context.Context, e *env, args []string) error
}

// errUsage marks an error caused by a wrong command line: exit status 2.
var errUsage = errors.New("usage")

// errUsagePrinted marks a usage error whose usage text the flag package has
// already printed.
var errUsagePrinted = fmt.Errorf("%w: (printed)", errUsage)

// usageError returns an error that main reports with exit status 2.
func usageError(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

func commands() map[string]*command {
	cmds := []*command{
		{"serve", "easd serve [flags]", "run the ActiveSync server", runServe},
		{"migrate", "easd migrate [flags]", "apply database migrations and exit", runMigrate},
		{"user", "easd user add|list|passwd|disable|enable|delete|profile|app-password [flags] [NAME]", "manage local users and their app passwords", runUser},
		{"device", "easd device list|show|wipe|account-wipe|block|allow|remove [flags] [USER [DEVICEID]]", "manage users' phones: list, block, allow, remote wipe", runDevice},
		{"audit", "easd audit [--user NAME] [--since DURATION] [--limit N] [flags]", "show the audit log of administrative actions", runAudit},
		{"import", "easd import [flags] USER FILE...", "import .ics and .vcf files into a user's calendar, contacts, tasks and notes", runImport},
		{"export", "easd export [flags] USER FOLDER", "write a user's calendar, contacts, tasks or notes as .ics or .vcf", runExport},
		{"wbxml", "easd wbxml decode|encode < in > out", "convert between WBXML and its XML text form", runWBXML},
		{"probe", "easd probe [flags] URL USER", "check that a server works for a phone, step by step", runProbe},
		{"healthcheck", "easd healthcheck [flags]", "ask a running server's /healthz (for container health checks)", runHealthcheck},
		{"version", "easd version", "print the version", runVersion},
	}
	m := map[string]*command{}
	for _, c := range cmds {
		m[c.name] = c
	}
	return m
}

func main() {
	e := &env{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv,
		isTerminal: func(f any) bool {
			if fd, ok := f.(interface{ Fd() uintptr }); ok {
				return term.IsTerminal(int(fd.Fd()))
			}
			return false
		},
		signals: func(ctx context.Context) (context.Context, context.CancelFunc) {
			return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		},
	}
	os.Exit(run(context.Background(), e, os.Args[1:]))
}

// run executes one command line and returns the process exit status:
// 0 success, 1 failure, 2 usage error.
func run(ctx context.Context, e *env, args []string) int {
	cmds := commands()
	if len(args) == 0 {
		printHelp(e.stderr, cmds)
		return 2
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c, ok := cmds[args[1]]; ok {
				return run(ctx, e, []string{c.name, "-h"})
			}
		}
		printHelp(e.stdout, cmds)
		return 0
	case "-version", "--version":
		name = "version"
	}
	c, ok := cmds[name]
	if !ok {
		fmt.Fprintf(e.stderr, "easd: unknown command %q\n\n", name)
		printHelp(e.stderr, cmds)
		return 2
	}
	err := c.run(ctx, e, args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsagePrinted):
		return 2
	case errors.Is(err, errUsage):
		msg := strings.TrimPrefix(err.Error(), errUsage.Error()+": ")
		if msg != "" && msg != errUsage.Error() {
			fmt.Fprintf(e.stderr, "easd %s: %s\n", c.name, msg)
		}
		fmt.Fprintf(e.stderr, "usage: %s\n(run 'easd %s -h' for details)\n", c.synopsis, c.name)
		return 2
	default:
		fmt.Fprintf(e.stderr, "easd %s: %v\n", c.name, err)
		return 1
	}
}

func printHelp(w io.Writer, cmds map[string]*command) {
	fmt.Fprintf(w, "easd is an Exchange ActiveSync server.\n\nusage: easd COMMAND [flags]\n\ncommands:\n")
	var names []string
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintf(w, "\nRun 'easd COMMAND -h' for a command's flags. Every flag can also be set\nwith the EASD_* environment variable shown in its help.\n")
}

// parseFlags parses args and turns flag errors into usage errors.
func parseFlags(fs interface{ Parse([]string) error }, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsagePrinted
	}
	return nil
}

// parseSubcommand parses "SUB [ARG...]" with flags allowed before, between
// and after the arguments, and returns SUB and the arguments.
func parseSubcommand(fs interface {
	Parse([]string) error
	Args() []string
}, args []string) (sub string, pos []string, err error) {
	if err := parseFlags(fs, args); err != nil {
		return "", nil, err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return "", nil, usageError("missing subcommand")
	}
	sub, rest = rest[0], rest[1:]
	for len(rest) > 0 {
		if err := parseFlags(fs, rest); err != nil {
			return "", nil, err
		}
		rest = fs.Args()
		if len(rest) > 0 {
			pos = append(pos, rest[0])
			rest = rest[1:]
		}
	}
	return sub, pos, nil
}

func runVersion(_ context.Context, e *env, args []string) error {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" {
			fmt.Fprintln(e.stdout, "usage: easd version")
			return flag.ErrHelp
		}
		return usageError("version takes no arguments")
	}
	fmt.Fprintf(e.stdout, "easd %s\n", versionString())
	return nil
}

func versionString() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		return "devel-" + rev + dirty + " " + bi.GoVersion
	}
	return "devel " + bi.GoVersion
}
