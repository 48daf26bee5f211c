// Command load is the load generator of the push benchmark (issue #7):
// it plays many phones of many users against one easd, each with its own
// HTTP connection, and parks a Ping per phone. It sets the devices up
// (Provision, FolderSync, Sync of the INBOX), parks a Ping of the INBOX
// per device, then optionally keeps quiet for an idle window and runs the
// latency test: APPENDs straight to the IMAP server (not through easd),
// each waking every device of the message's user, which then Syncs the
// INBOX and pings again.
//
// It prints one JSON event per line on stdout (see package
// github.com/easd/easd/bench/push) and stops at checkpoints until a line
// arrives on stdin, so that the driver (bench/push/bench_test.go, run by
// run.sh) can measure easd from /proc in between; with stdin at end of
// file (e.g. </dev/null) it does not wait. Progress goes to stderr. It
// talks to loopback addresses only, and every phase is bounded in count
// and time. By hand:
//
//	load -url http://127.0.0.1:8080 -imap 127.0.0.1:143 -users 20 -per-user 10 \
//	    -idle 10s -appends 30 </dev/null
//
// where easd runs `serve --auth imap` against that IMAP server and the
// users push0 … push19 exist there with password -password.
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

	"github.com/easd/easd/bench/push"
)

// Bounds on what one run may ask for.
const (
	maxDevices     = 20_000
	maxPerUser     = 100
	maxAppends     = 10_000
	maxRate        = 100
	maxWindow      = 10 * time.Minute
	maxTimeout     = time.Hour
	maxConcurrency = 256
)

// config is one run of the generator.
type config struct {
	URL      string
	IMAPAddr string
	Version  string

	Users, PerUser int
	UserFormat     string
	Password       string
	RunID          string

	Concurrency int
	KeepConns   bool
	Heartbeat   int
	ParkRate    float64
	ParkTimeout time.Duration

	Idle time.Duration

	Appends int
	Rate    float64
	Grace   time.Duration

	Timeout time.Duration
}

// devices is the number of simulated phones.
func (cfg *config) devices() int { return cfg.Users * cfg.PerUser }

// user returns the name of user u.
func (cfg *config) user(u int) string { return fmt.Sprintf(cfg.UserFormat, u) }

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "easd base URL (loopback only)")
	fs.StringVar(&cfg.IMAPAddr, "imap", "127.0.0.1:143", "the IMAP server easd reads, plain text (loopback only), for the APPENDs of the latency test")
	fs.StringVar(&cfg.Version, "eas-version", "14.1", "ActiveSync version the devices speak")
	fs.IntVar(&cfg.Users, "users", 100, "users (accounts on the IMAP server, named by -user-format)")
	fs.IntVar(&cfg.PerUser, "per-user", 10, "devices per user")
	fs.StringVar(&cfg.UserFormat, "user-format", "push%d", "name of user i (fmt verb %d)")
	fs.StringVar(&cfg.Password, "password", "push-pw", "password of every user")
	fs.StringVar(&cfg.RunID, "run-id", strconv.FormatInt(time.Now().UnixNano()%1e10, 36), "tag of this run's device ids and messages (letters and digits)")
	fs.IntVar(&cfg.Concurrency, "concurrency", 48, "devices set up, and Pings opened, at once")
	fs.BoolVar(&cfg.KeepConns, "keep-conns", false, "keep the devices' idle HTTP connections after set-up (by default they are closed before the set-up checkpoint, so that parking opens one connection per device)")
	fs.IntVar(&cfg.Heartbeat, "heartbeat", 1800, "Ping HeartbeatInterval, seconds")
	fs.Float64Var(&cfg.ParkRate, "park-rate", 250, "first Pings sent per second at most (0: as fast as -concurrency allows)")
	fs.DurationVar(&cfg.ParkTimeout, "park-timeout", 3*time.Minute, "bound on parking every device's Ping")
	fs.DurationVar(&cfg.Idle, "idle", 0, "idle window after parking (the driver measures during it); 0 skips it")
	fs.IntVar(&cfg.Appends, "appends", 0, "messages APPENDed for the latency test, one user after the other; 0 skips it")
	fs.Float64Var(&cfg.Rate, "rate", 10, "APPENDs per second")
	fs.DurationVar(&cfg.Grace, "grace", 15*time.Second, "how long after the last APPEND to wait for its pushes")
	fs.DurationVar(&cfg.Timeout, "timeout", 30*time.Minute, "bound on the whole run")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return cfg, nil
}

// check enforces the bounds and the loopback-only rule.
func (cfg *config) check() error {
	switch {
	case cfg.Users < 1 || cfg.PerUser < 1 || cfg.PerUser > maxPerUser || cfg.devices() > maxDevices:
		return fmt.Errorf("-users %d × -per-user %d: want 1–%d devices, 1–%d per user", cfg.Users, cfg.PerUser, maxDevices, maxPerUser)
	case cfg.Appends < 0 || cfg.Appends > maxAppends:
		return fmt.Errorf("-appends %d: want 0–%d", cfg.Appends, maxAppends)
	case cfg.Rate <= 0 || cfg.Rate > maxRate:
		return fmt.Errorf("-rate %v: want above 0, up to %d", cfg.Rate, maxRate)
	case cfg.Idle < 0 || cfg.Idle > maxWindow, cfg.Grace < 0 || cfg.Grace > maxWindow, cfg.ParkTimeout <= 0 || cfg.ParkTimeout > maxWindow:
		return fmt.Errorf("-idle, -grace and -park-timeout: want up to %v", maxWindow)
	case cfg.Timeout <= 0 || cfg.Timeout > maxTimeout:
		return fmt.Errorf("-timeout %v: want up to %v", cfg.Timeout, maxTimeout)
	case cfg.Concurrency < 1 || cfg.Concurrency > maxConcurrency:
		return fmt.Errorf("-concurrency %d: want 1–%d", cfg.Concurrency, maxConcurrency)
	case cfg.ParkRate < 0:
		return fmt.Errorf("-park-rate %v", cfg.ParkRate)
	case cfg.Heartbeat < 0:
		return fmt.Errorf("-heartbeat %d", cfg.Heartbeat)
	case !strings.Contains(cfg.UserFormat, "%d"):
		return fmt.Errorf("-user-format %q has no %%d", cfg.UserFormat)
	case cfg.RunID == "" || strings.Trim(strings.ToLower(cfg.RunID), "abcdefghijklmnopqrstuvwxyz0123456789") != "":
		return fmt.Errorf("-run-id %q: want letters and digits", cfg.RunID)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("-url %q: want http://host:port", cfg.URL)
	}
	if err := loopback("-url", u.Hostname()); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(cfg.IMAPAddr)
	if err != nil {
		return fmt.Errorf("-imap %q: %v", cfg.IMAPAddr, err)
	}
	return loopback("-imap", host)
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

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err == nil {
		err = cfg.check()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	}
	if n, err := push.RaiseOpenFiles(); err != nil {
		fmt.Fprintln(os.Stderr, "load: raising the open-file limit:", err)
	} else if need := uint64(cfg.devices()*2 + cfg.Users + 200); n < need {
		fmt.Fprintf(os.Stderr, "load: warning: open-file limit %d, below the %d this run may need\n", n, need)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	g := newGen(cfg, os.Stdout, os.Stdin, os.Stderr)
	err = g.run(ctx)
	g.finish(err)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		cancel()
		stop()
		os.Exit(1)
	}
}
