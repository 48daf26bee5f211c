// Command mailsync measures easd's mail sync for issue #5: the initial
// Sync of a large INBOX to one device at several window sizes (messages/s,
// bytes/s, easd's peak RSS) against a plain IMAP client's
// `UID FETCH 1:* BODY.PEEK[]` of the same folder as the ceiling, and
// unchanged-folder Sync requests/s with many keep-alive clients (req/s,
// p50/p99 latency, and the IMAP commands easd sent, counted by a proxy).
//
// It prints Markdown tables on stdout and progress on stderr. It talks to
// loopback addresses only. run.sh runs it against a throwaway Dovecot and
// a freshly built easd; by hand:
//
//	mailsync -url http://127.0.0.1:8080 -user bench -password pw \
//	    -imap 127.0.0.1:143 -proxy 127.0.0.1:1143 -populate -pid $(pidof easd)
//
// where easd runs with --auth imap --imap-addr 127.0.0.1:1143 --imap-tls
// none, so that its IMAP traffic crosses the counting proxy, and with a
// high --login-failures: all the simulated phones come from 127.0.0.1,
// and easd's login throttle counts logins in flight per address.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/easd/easd/bench/internal/imapproxy"
)

// Bounds on what one run may ask for.
const (
	maxMessages   = 200_000
	maxClients    = 2_000
	maxKAUsers    = 2_000
	maxKAMessages = 10_000
	maxWindows    = 8
	maxWindowSize = 512
	maxDuration   = 10 * time.Minute
	maxTimeout    = 6 * time.Hour
)

// config is one benchmark run.
type config struct {
	URL, User, Password string
	// IMAPAddr is Dovecot itself: for populating and the ceiling.
	IMAPAddr string
	// Proxy, if set, is where the counting proxy listens (forwarding to
	// IMAPAddr); easd must use it as its --imap-addr.
	Proxy    string
	Insecure bool
	Version  string

	Messages int
	Populate bool
	Seed     uint64
	Windows  []int
	BodyType int

	Clients      int
	Duration     time.Duration
	KAUsers      int
	KAUserFormat string
	KAFolder     string
	KAMessages   int

	PID     int
	Timeout time.Duration
}

// parseFlags reads the command line; set reports the flags given.
func parseFlags(args []string, stderr io.Writer) (cfg *config, set map[string]bool, err error) {
	cfg = &config{}
	fs := flag.NewFlagSet("mailsync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "easd base URL (loopback only)")
	fs.StringVar(&cfg.User, "user", "bench", "account for the initial sync (IMAP and ActiveSync)")
	fs.StringVar(&cfg.Password, "password", "bench-pw", "its password (also of the -ka-users accounts)")
	fs.StringVar(&cfg.IMAPAddr, "imap", "127.0.0.1:143", "IMAP server host:port, plain text (loopback only): populating and the raw-fetch ceiling")
	fs.StringVar(&cfg.Proxy, "proxy", "", "listen here with a counting IMAP proxy to -imap; run easd with --imap-addr set to it to count its IMAP commands")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "accept any TLS certificate from easd (https URLs)")
	fs.StringVar(&cfg.Version, "eas-version", "", "ActiveSync version to force; empty negotiates")
	fs.IntVar(&cfg.Messages, "messages", 10_000, "INBOX size for the initial sync")
	fs.BoolVar(&cfg.Populate, "populate", false, "APPEND generated messages (2–50 KB, 5% with a 20–200 KB attachment) until INBOX and the keep-alive folders hold enough")
	var seed uint64
	fs.Uint64Var(&seed, "seed", 5, "seed of the generated messages")
	windows := fs.String("windows", "100,512", "comma-separated WindowSizes for the initial sync")
	fs.IntVar(&cfg.BodyType, "body", 4, "BodyPreference Type of the initial sync: 1 text, 2 HTML, 4 MIME (whole message, as iOS)")
	fs.IntVar(&cfg.Clients, "clients", 100, "keep-alive clients (devices) for the unchanged-folder Sync test; 0 skips it")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "length of the unchanged-folder Sync test")
	fs.IntVar(&cfg.KAUsers, "ka-users", 0, "accounts the keep-alive clients spread over (named by -ka-user-format); 0 puts them all on -user")
	fs.StringVar(&cfg.KAUserFormat, "ka-user-format", "ka%d", "name of keep-alive account i (fmt verb %d)")
	fs.StringVar(&cfg.KAFolder, "ka-folder", "BenchKA", "folder the keep-alive clients sync (INBOX is allowed, but every client then first syncs all of it)")
	fs.IntVar(&cfg.KAMessages, "ka-messages", 50, "messages -populate puts in each keep-alive folder")
	fs.IntVar(&cfg.PID, "pid", 0, "easd's process id, to report its peak RSS (VmHWM) and RSS from /proc")
	fs.DurationVar(&cfg.Timeout, "timeout", time.Hour, "bound on the whole run")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg.Seed = seed
	for f := range strings.SplitSeq(*windows, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		w, err := strconv.Atoi(f)
		if err != nil {
			return nil, nil, fmt.Errorf("-windows: %q is not a number", f)
		}
		cfg.Windows = append(cfg.Windows, w)
	}
	set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return cfg, set, nil
}

// check enforces the bounds and the loopback-only rule.
func (cfg *config) check() error {
	switch {
	case cfg.Messages < 1 || cfg.Messages > maxMessages:
		return fmt.Errorf("-messages %d: want 1–%d", cfg.Messages, maxMessages)
	case len(cfg.Windows) > maxWindows:
		return fmt.Errorf("-windows: at most %d sizes", maxWindows)
	case cfg.Clients < 0 || cfg.Clients > maxClients:
		return fmt.Errorf("-clients %d: want 0–%d", cfg.Clients, maxClients)
	case cfg.KAUsers < 0 || cfg.KAUsers > maxKAUsers:
		return fmt.Errorf("-ka-users %d: want 0–%d", cfg.KAUsers, maxKAUsers)
	case cfg.KAMessages < 0 || cfg.KAMessages > maxKAMessages:
		return fmt.Errorf("-ka-messages %d: want 0–%d", cfg.KAMessages, maxKAMessages)
	case cfg.Duration <= 0 || cfg.Duration > maxDuration:
		return fmt.Errorf("-duration %v: want up to %v", cfg.Duration, maxDuration)
	case cfg.Timeout <= 0 || cfg.Timeout > maxTimeout:
		return fmt.Errorf("-timeout %v: want up to %v", cfg.Timeout, maxTimeout)
	case cfg.BodyType != 1 && cfg.BodyType != 2 && cfg.BodyType != 4:
		return fmt.Errorf("-body %d: want 1, 2 or 4", cfg.BodyType)
	case cfg.KAFolder == "":
		return errors.New("-ka-folder is empty")
	case cfg.PID < 0:
		return fmt.Errorf("-pid %d", cfg.PID)
	}
	for _, w := range cfg.Windows {
		if w < 1 || w > maxWindowSize {
			return fmt.Errorf("-windows: %d is not in 1–%d", w, maxWindowSize)
		}
	}
	if cfg.KAUsers > 0 && !strings.Contains(cfg.KAUserFormat, "%d") {
		return fmt.Errorf("-ka-user-format %q has no %%d", cfg.KAUserFormat)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-url %q: want http(s)://host:port", cfg.URL)
	}
	if err := loopback("-url", u.Hostname()); err != nil {
		return err
	}
	for _, a := range []struct{ name, addr string }{{"-imap", cfg.IMAPAddr}, {"-proxy", cfg.Proxy}} {
		if a.addr == "" && a.name == "-proxy" {
			continue
		}
		host, _, err := net.SplitHostPort(a.addr)
		if err != nil {
			return fmt.Errorf("%s %q: %v", a.name, a.addr, err)
		}
		if err := loopback(a.name, host); err != nil {
			return err
		}
	}
	return nil
}

// loopback refuses any host but localhost and loopback addresses; names
// are not resolved.
func loopback(flagName, host string) error {
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s: %q is not a loopback address; the benchmark only talks to this machine", flagName, host)
	}
	return nil
}

// kaUser returns the account of keep-alive client i.
func (cfg *config) kaUser(i int) string {
	if cfg.KAUsers == 0 {
		return cfg.User
	}
	return fmt.Sprintf(cfg.KAUserFormat, i%cfg.KAUsers)
}

// proxyOptions configure the counting IMAP proxy: the report gives the
// megabytes easd read from IMAP (Counts.Down).
var proxyOptions = imapproxy.Options{CountBytes: true, ReadBuffer: 64 << 10}

func main() {
	cfg, _, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err == nil {
		err = cfg.check()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mailsync:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var counter *imapproxy.Proxy
	if cfg.Proxy != "" {
		p, err := imapproxy.Start(cfg.Proxy, cfg.IMAPAddr, proxyOptions)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mailsync: proxy:", err)
			os.Exit(1)
		}
		defer p.Close()
		counter = p
		fmt.Fprintf(os.Stderr, "mailsync: counting IMAP proxy on %s → %s\n", p.Addr(), cfg.IMAPAddr)
	}
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "mailsync: "+format+"\n", args...) }
	if err := run(ctx, cfg, counter, os.Stdout, logf); err != nil {
		fmt.Fprintln(os.Stderr, "mailsync:", err)
		stop()
		os.Exit(1)
	}
}
