package push

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/easd/easd/bench/internal/easdproc"
	"github.com/easd/easd/bench/internal/imapproxy"
	"github.com/easd/easd/bench/internal/procstat"
	"github.com/easd/easd/internal/testenv"
)

// benchConfig is the driver's configuration, from EASD_BENCH_ARGS.
type benchConfig struct {
	// RSS, Latency and Idle are the device counts to run each phase at;
	// each count is one run (one Dovecot, one easd), with the phases
	// that name it. Parking, and so the RSS figures, happen in every run.
	RSS, Latency, Idle []int
	PerUser            int
	Appends            int
	Rate               float64
	Grace              time.Duration
	Window             time.Duration
	ReapWait           time.Duration
	Heartbeat          int
	Concurrency        int
	ParkRate           float64
	KeepConns          bool
	Settle             time.Duration
	EasdArgs           []string
	RunTimeout         time.Duration
}

func parseBenchFlags(args []string) (*benchConfig, error) {
	cfg := &benchConfig{}
	fs := flag.NewFlagSet("push bench", flag.ContinueOnError)
	rss := fs.String("rss", "1000,10000", "comma-separated parked-device counts to measure RSS at (every run measures it)")
	lat := fs.String("latency", "1000", "device counts to run the latency test at (0: none)")
	idle := fs.String("idle", "10000", "device counts to run the idle window at (0: none)")
	smoke := fs.Bool("smoke", false, "small and quick: 200 devices (20 users), every phase, 30 appends, a 10 s window")
	fs.IntVar(&cfg.PerUser, "per-user", 10, "devices per user")
	fs.IntVar(&cfg.Appends, "appends", 300, "APPENDs of the latency test")
	fs.Float64Var(&cfg.Rate, "rate", 10, "APPENDs per second")
	fs.DurationVar(&cfg.Grace, "grace", 15*time.Second, "wait for pushes after the last APPEND")
	fs.DurationVar(&cfg.Window, "window", 60*time.Second, "idle window")
	fs.DurationVar(&cfg.ReapWait, "reap-wait", 6*time.Minute, "before the idle window, wait up to this long for easd's IMAP connections to fall to one per user (its pool closes connections idle for 5 minutes); 0 does not wait")
	fs.IntVar(&cfg.Heartbeat, "heartbeat", 1800, "Ping HeartbeatInterval, seconds")
	fs.IntVar(&cfg.Concurrency, "concurrency", 48, "devices set up, and Pings opened, at once")
	fs.Float64Var(&cfg.ParkRate, "park-rate", 250, "first Pings sent per second at most (0: unpaced)")
	fs.BoolVar(&cfg.KeepConns, "keep-conns", false, "keep the devices' HTTP connections open after set-up (RSS per device then leaves out the connection)")
	fs.DurationVar(&cfg.Settle, "settle", 5*time.Second, "wait before measuring RSS (after a forced GC), then until it is stable")
	fs.Func("easd-arg", "an extra argument for easd serve, e.g. --imap-watch-sweep=1m (repeatable)", func(s string) error {
		cfg.EasdArgs = append(cfg.EasdArgs, s)
		return nil
	})
	fs.DurationVar(&cfg.RunTimeout, "run-timeout", 25*time.Minute, "bound on one run")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	for _, l := range []struct {
		dst *[]int
		s   string
	}{{&cfg.RSS, *rss}, {&cfg.Latency, *lat}, {&cfg.Idle, *idle}} {
		if *l.dst, err = parseInts(l.s); err != nil {
			return nil, err
		}
	}
	if *smoke {
		cfg.RSS, cfg.Latency, cfg.Idle = []int{200}, []int{200}, []int{200}
		cfg.Appends, cfg.Window, cfg.Grace, cfg.Settle, cfg.ReapWait = 30, 10*time.Second, 5*time.Second, 2*time.Second, 0
	}
	if cfg.PerUser < 1 {
		return nil, fmt.Errorf("-per-user %d", cfg.PerUser)
	}
	return cfg, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a device count", f)
		}
		if n > 0 { // 0: none
			out = append(out, n)
		}
	}
	return out, nil
}

// TestBench runs the push benchmark of issue #7 against a throwaway
// Dovecot (internal/testenv, with its limits raised) and easd started as
// a separate process with pass-through IMAP authentication through the
// counting proxy; the load generator (bench/push/load) is a third
// process. It only runs with EASD_BENCH=1 (see run.sh). EASD_BENCH_ARGS
// holds the driver's flags (e.g. "-smoke"), EASD_BENCH_BIN and
// EASD_BENCH_LOAD binaries to use instead of building them,
// EASD_BENCH_OUT a file to write the Markdown to as well as stdout,
// EASD_BENCH_LOG a file to copy easd's log to (suffixed with the run),
// EASD_BENCH_PROFILE a directory to save easd's heap profile and
// goroutine dump to once the devices are parked.
func TestBench(t *testing.T) {
	if os.Getenv("EASD_BENCH") == "" {
		t.Skip("set EASD_BENCH=1 to run the push benchmark (bench/push/run.sh)")
	}
	cfg, err := parseBenchFlags(strings.Fields(os.Getenv("EASD_BENCH_ARGS")))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := RaiseOpenFiles(); err != nil {
		t.Logf("raising the open-file limit: %v", err)
	} else {
		t.Logf("open-file limit %d", n)
	}
	easd := os.Getenv("EASD_BENCH_BIN")
	if easd == "" {
		easd = easdproc.Build(t, "github.com/easd/easd/cmd/easd", "easd")
	}
	load := os.Getenv("EASD_BENCH_LOAD")
	if load == "" {
		load = easdproc.Build(t, "github.com/easd/easd/bench/push/load", "load")
	}
	counts := slices.Concat(cfg.RSS, cfg.Latency, cfg.Idle)
	slices.Sort(counts)
	counts = slices.Compact(counts)
	var reports []*RunReport
	for _, n := range counts {
		// A failed run is reported by TestBench, not by the subtest, so
		// that testenv does not print the whole Dovecot log.
		t.Run("devices="+strconv.Itoa(n), func(t *testing.T) {
			r := &runner{cfg: cfg, easdBin: easd, loadBin: load, n: n,
				latency: slices.Contains(cfg.Latency, n), idle: slices.Contains(cfg.Idle, n)}
			reports = append(reports, r.run(t))
		})
	}
	defer func() {
		for _, rep := range reports {
			if rep.Err != "" {
				t.Errorf("%d devices: %s", rep.N, rep.Err)
			}
		}
	}()
	var md bytes.Buffer
	WriteReport(io.MultiWriter(os.Stdout, &md), reports)
	if out := os.Getenv("EASD_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, md.Bytes(), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// runner is one run: n devices on one Dovecot and one easd.
type runner struct {
	cfg              *benchConfig
	easdBin, loadBin string
	n                int
	latency, idle    bool

	users   int
	dovecot *testenv.DovecotServer
	proxy   *imapproxy.Proxy
	easd    *easdproc.Proc
}

func (r *runner) run(t *testing.T) *RunReport {
	cfg := r.cfg
	r.users = (r.n + cfg.PerUser - 1) / cfg.PerUser
	rep := &RunReport{N: r.users * cfg.PerUser, Users: r.users, PerUser: cfg.PerUser, EasdArgs: cfg.EasdArgs}
	args := []string{"-users", strconv.Itoa(r.users), "-per-user", strconv.Itoa(cfg.PerUser), "-password", "push-pw",
		"-concurrency", strconv.Itoa(cfg.Concurrency), "-heartbeat", strconv.Itoa(cfg.Heartbeat),
		"-park-rate", strconv.FormatFloat(cfg.ParkRate, 'f', -1, 64), "-timeout", cfg.RunTimeout.String()}
	if cfg.KeepConns {
		args = append(args, "-keep-conns")
	}
	if r.idle {
		rep.Phases = append(rep.Phases, "idle")
		args = append(args, "-idle", cfg.Window.String())
	}
	if r.latency {
		rep.Phases = append(rep.Phases, "latency")
		args = append(args, "-appends", strconv.Itoa(cfg.Appends), "-rate", strconv.FormatFloat(cfg.Rate, 'f', -1, 64),
			"-grace", cfg.Grace.String())
	}

	users := map[string]string{}
	for u := range r.users {
		users[fmt.Sprintf("push%d", u)] = "push-pw"
	}
	// Per user: easd's watcher and pool (3), logins being checked, the
	// generator's APPEND connection.
	r.dovecot = testenv.DovecotWith(t, users, testenv.DovecotOptions{
		MaxConnections: max(1024, 6*r.users+500), MaxUserIPConnections: 2*cfg.PerUser + 20})
	var err error
	if r.proxy, err = imapproxy.Start("127.0.0.1:0", r.dovecot.Addr, imapproxy.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.proxy.Close() })
	r.easd = startEasd(t, r.easdBin, r.proxy.Addr(), cfg.EasdArgs, strconv.Itoa(r.n))

	ctx, cancel := context.WithTimeout(t.Context(), cfg.RunTimeout+time.Minute)
	defer cancel()
	rep.Fresh = r.measure(ctx, t, 0)
	t.Logf("easd fresh: RSS %s", mib(rep.Fresh.RSS))

	args = append(args, "-url", r.easd.URL, "-imap", r.dovecot.Addr)
	cmd := exec.CommandContext(ctx, r.loadBin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("load %s", strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var cpu0 time.Duration
	var imap0 Counts
	last := CheckpointParked
	if r.latency {
		last = CheckpointLatencyDone
	} else if r.idle {
		last = CheckpointIdle
	}
	for sc.Scan() {
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Logf("load: %s", sc.Bytes())
			continue
		}
		switch ev.Checkpoint {
		case CheckpointSetUp:
			rep.SetUpResult = ev.SetUp
			rep.SetUp = r.measure(ctx, t, 0)
			t.Logf("set up: %d of %d devices in %.1f s; easd RSS %s", ev.SetUp.Ready, ev.SetUp.Devices, ev.SetUp.Seconds, mib(rep.SetUp.RSS))
		case CheckpointParked:
			rep.Park = ev.Park
			rep.Parked = r.measure(ctx, t, ev.Park.Parked)
			t.Logf("parked: %d Pings; easd RSS %s, %.1f KiB per device; IMAP conns %d (%d users)", ev.Park.Parked,
				mib(rep.Parked.RSS), rep.PerDevice()/1024, rep.Parked.IMAP.Open, rep.Parked.IMAP.Users)
			if dir := os.Getenv("EASD_BENCH_PROFILE"); dir != "" {
				r.saveProfiles(ctx, t, dir)
			}
		case CheckpointIdle:
			rep.Idle = r.idleWindow(ctx, t, ev.Window)
		case CheckpointLatency:
			cpu0, imap0 = procstat.ReadCPU(r.easd.PID), r.proxy.Snapshot()
		case CheckpointLatencyDone:
			rep.Latency = &LatencyReport{CPU: procstat.ReadCPU(r.easd.PID) - cpu0, IMAP: r.proxy.Snapshot().Sub(imap0), Generator: ev.Latency}
		}
		if ev.Checkpoint != "" && ev.Checkpoint == last {
			// The devices are still parked.
			if m, err := Scrape(ctx, r.easd.Admin+"/metrics"); err != nil {
				t.Logf("scraping /metrics: %v", err)
			} else {
				rep.Metrics = m.WithPrefix("easd_push_", "easd_imap_", "easd_http_in_flight")
			}
		}
		if ev.Checkpoint != "" {
			if _, err := io.WriteString(stdin, "ok\n"); err != nil {
				t.Logf("answering the generator: %v", err)
			}
		}
		if ev.Idle != nil && rep.Idle != nil {
			rep.Idle.Generator = ev.Idle
		}
		if ev.Done {
			rep.Answers, rep.Problems, rep.Err = ev.Answers, ev.Problems, ev.Error
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil && rep.Err == "" {
		rep.Err = "load generator: " + err.Error()
	}
	if problems := easdproc.LogProblems(r.easd.LogPath, 20); problems != "" {
		t.Logf("easd warnings and errors (first 20):\n%s", problems)
	}
	return rep
}

// measure waits until easd serves at least inFlight requests (parked
// Pings count), forces a GC, waits cfg.Settle and then until its RSS is
// stable, and reads it.
func (r *runner) measure(ctx context.Context, t *testing.T, inFlight int) Snapshot {
	start := time.Now()
	if inFlight > 0 {
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			m, err := Scrape(ctx, r.easd.Admin+"/metrics")
			if v, ok := m.Value("easd_http_in_flight_requests"); err == nil && ok && v >= float64(inFlight) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if err := ForceGC(ctx, r.easd.Admin); err != nil {
		t.Logf("forcing a GC in easd: %v", err)
	}
	sleep(ctx, r.cfg.Settle)
	prev, stable := procstat.ReadMemory(r.easd.PID).RSS, 0
	for i := 0; i < 30 && stable < 3 && ctx.Err() == nil; i++ {
		sleep(ctx, time.Second)
		cur := procstat.ReadMemory(r.easd.PID).RSS
		if d := cur - prev; d <= max(256, prev/500) && d >= -max(256, prev/500) {
			stable++
		} else {
			stable = 0
		}
		prev = cur
	}
	s := Snapshot{RSS: prev, HeapInuse: -1, StackInuse: -1, Goroutines: -1, InFlight: -1, IMAP: r.proxy.OpenConns(),
		Dovecot: ChildProcesses(filepath.Join(r.dovecot.Dir, "dovecot.conf"), "imap"), Settled: time.Since(start)}
	if m, err := Scrape(ctx, r.easd.Admin+"/metrics"); err == nil {
		if v, ok := m.Value("go_memstats_heap_inuse_bytes"); ok {
			s.HeapInuse = v
		}
		if v, ok := m.Value("go_memstats_stack_inuse_bytes"); ok {
			s.StackInuse = v
		}
		if v, ok := m.Value("go_goroutines"); ok {
			s.Goroutines = v
		}
		if v, ok := m.Value("easd_http_in_flight_requests"); ok {
			s.InFlight = v
		}
	}
	return s
}

// saveProfiles writes easd's heap profile and goroutine dump, taken
// from its admin listener, into dir as heap-N.pb.gz and goroutines-N.txt.
func (r *runner) saveProfiles(ctx context.Context, t *testing.T, dir string) {
	for name, path := range map[string]string{
		"heap-" + strconv.Itoa(r.n) + ".pb.gz":     "/debug/pprof/heap?gc=1",
		"goroutines-" + strconv.Itoa(r.n) + ".txt": "/debug/pprof/goroutine?debug=1",
	} {
		b, err := get(ctx, r.easd.Admin+path, 256<<20)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name), b, 0o644)
		}
		if err != nil {
			t.Logf("saving %s: %v", name, err)
		} else {
			t.Logf("saved %s", filepath.Join(dir, name))
		}
	}
}

// idleWindow measures easd for window while the devices stay parked,
// after waiting (up to cfg.ReapWait) for its IMAP connections to fall to
// one per user.
func (r *runner) idleWindow(ctx context.Context, t *testing.T, window time.Duration) *IdleReport {
	ir := &IdleReport{}
	if r.cfg.ReapWait > 0 {
		start := time.Now()
		for time.Since(start) < r.cfg.ReapWait && r.proxy.OpenConns().Open > r.users && ctx.Err() == nil {
			sleep(ctx, time.Second)
		}
		ir.ReapWait = time.Since(start)
		t.Logf("idle: %d IMAP connections open after waiting %v for the pool to reap", r.proxy.OpenConns().Open, ir.ReapWait.Round(time.Second))
	}
	ir.Start = r.proxy.OpenConns()
	imap0, cpu0, t0 := r.proxy.Snapshot(), procstat.ReadCPU(r.easd.PID), time.Now()
	sleep(ctx, window)
	ir.Window, ir.CPU, ir.IMAP = time.Since(t0), procstat.ReadCPU(r.easd.PID)-cpu0, r.proxy.Snapshot().Sub(imap0)
	ir.RSSEnd = procstat.ReadMemory(r.easd.PID).RSS
	ir.End = r.proxy.OpenConns()
	ir.DovecotEnd = ChildProcesses(filepath.Join(r.dovecot.Dir, "dovecot.conf"), "imap")
	if m, err := Scrape(ctx, r.easd.Admin+"/metrics"); err == nil {
		ir.InFlightAtEnd, _ = m.Value("easd_http_in_flight_requests")
	}
	t.Logf("idle: %v, easd CPU %v (%.2f%% of a core), IMAP %s; connections %d → %d", ir.Window.Round(time.Millisecond),
		ir.CPU, 100*ir.CPU.Seconds()/ir.Window.Seconds(), ir.IMAP.Top(6), ir.Start.Open, ir.End.Open)
	return ir
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
