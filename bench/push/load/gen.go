package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/easd/easd/bench/push"
)

// Phases of a run, for attributing Ping answers.
const (
	phaseSetUp   = "set-up"
	phasePark    = "park"
	phaseIdle    = "idle"
	phaseBetween = "between"
	phaseLatency = "latency"
	phaseEnd     = "end"
)

// gen is one run of the generator.
type gen struct {
	cfg  *config
	out  io.Writer
	in   *bufio.Reader
	logw io.Writer

	outMu  sync.Mutex
	noWait bool // stdin ended: checkpoints do not wait

	devs []*device

	// inflight counts Pings written and not yet answered.
	inflight atomic.Int64
	loops    sync.WaitGroup

	mu    sync.Mutex
	phase string
	// answers counts Ping answers by phase and status ("error" for
	// failures); phantom status-2 answers whose Sync returned nothing.
	answers     map[string]map[string]int
	phantom     map[string]int
	wrongFolder map[string]int
	status2     map[string]int
	duplicates  int
	errs        map[string]*push.Problems
	// deliveries of the latency test, by append id and device index.
	deliveries map[[2]int]delivery
}

// delivery is one message of the latency test taken by one device.
type delivery struct {
	// firstByte and answered are when the Ping answer that woke the
	// device began and ended; synced when the Sync that returned the
	// message ended.
	firstByte, answered, synced time.Time
}

func newGen(cfg *config, out io.Writer, in io.Reader, logw io.Writer) *gen {
	return &gen{cfg: cfg, out: out, in: bufio.NewReader(in), logw: logw, phase: phaseSetUp,
		answers: map[string]map[string]int{}, phantom: map[string]int{}, wrongFolder: map[string]int{},
		status2: map[string]int{}, errs: map[string]*push.Problems{}, deliveries: map[[2]int]delivery{}}
}

func (g *gen) logf(format string, args ...any) {
	fmt.Fprintf(g.logw, "load: %s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// emit prints one event.
func (g *gen) emit(ev push.Event) {
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	g.outMu.Lock()
	defer g.outMu.Unlock()
	_, _ = g.out.Write(append(b, '\n'))
}

// checkpoint prints ev with its checkpoint name and waits for the
// driver's line on stdin, or for ctx.
// Without a driver (stdin at its end) it waits out ev.Window itself.
func (g *gen) checkpoint(ctx context.Context, ev push.Event) error {
	g.emit(ev)
	if !g.noWait {
		got := make(chan error, 1)
		go func() {
			_, err := g.in.ReadString('\n')
			got <- err
		}()
		select {
		case err := <-got:
			if !errors.Is(err, io.EOF) {
				return err
			}
			g.noWait = true
			g.logf("stdin ended: checkpoints no longer wait")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if g.noWait && ev.Window > 0 && !sleepCtx(ctx, ev.Window) {
		return ctx.Err()
	}
	return nil
}

func (g *gen) setPhase(p string) {
	g.mu.Lock()
	g.phase = p
	g.mu.Unlock()
}

// problem records an error of kind in the current phase.
func (g *gen) problem(kind string, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	key := g.phase + ": " + kind
	p := g.errs[key]
	if p == nil {
		p = &push.Problems{}
		g.errs[key] = p
	}
	p.Add(kind + ": " + err.Error())
}

// phaseProblems merges the problems of phase; g.mu must be held.
func (g *gen) phaseProblems(phase string) push.Problems {
	var all push.Problems
	for key, p := range g.errs {
		if strings.HasPrefix(key, phase+": ") {
			all.Count += p.Count
			for _, e := range p.Examples {
				if len(all.Examples) < 5 {
					all.Examples = append(all.Examples, e)
				}
			}
		}
	}
	return all
}

// answered records a Ping answer (status, or "error") in the current
// phase and returns the phase.
func (g *gen) answered(status string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.answers[g.phase]
	if m == nil {
		m = map[string]int{}
		g.answers[g.phase] = m
	}
	m[status]++
	if status == "2" {
		g.status2[g.phase]++
	}
	return g.phase
}

// answerCount returns the number of answers counted in phase.
func (g *gen) answerCount(phase string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, c := range g.answers[phase] {
		n += c
	}
	return n
}

// answersIn returns a copy of the answers counted in phase.
func (g *gen) answersIn(phase string) map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return maps.Clone(g.answers[phase])
}

// run sets up, parks, and runs the phases asked for.
func (g *gen) run(ctx context.Context) error {
	cfg := g.cfg
	g.logf("%d users × %d devices = %d devices, run %s", cfg.Users, cfg.PerUser, cfg.devices(), cfg.RunID)
	su := g.setUp(ctx)
	if err := g.checkpoint(ctx, push.Event{Checkpoint: push.CheckpointSetUp, SetUp: su}); err != nil {
		return err
	}
	if su.Ready == 0 {
		return fmt.Errorf("no device could be set up: %v", su.Errors.Examples)
	}
	loopCtx, stopLoops := context.WithCancel(ctx)
	defer func() {
		stopLoops()
		g.loops.Wait()
	}()
	pr := g.park(ctx, loopCtx)
	if err := g.checkpoint(ctx, push.Event{Checkpoint: push.CheckpointParked, Park: pr}); err != nil {
		return err
	}
	if pr.Parked == 0 {
		return fmt.Errorf("no Ping stayed parked; answers: %v", pr.Early)
	}
	if cfg.Idle > 0 {
		g.setPhase(phaseIdle)
		start := time.Now()
		if err := g.checkpoint(ctx, push.Event{Checkpoint: push.CheckpointIdle, Window: cfg.Idle}); err != nil {
			return err
		}
		g.setPhase(phaseBetween)
		g.mu.Lock()
		ir := &push.IdleResult{Seconds: time.Since(start).Seconds(), Answers: maps.Clone(g.answers[phaseIdle]),
			Phantom: g.phantom[phaseIdle]}
		g.mu.Unlock()
		g.emit(push.Event{Idle: ir})
	}
	if cfg.Appends > 0 {
		lr, err := g.latency(ctx)
		if err != nil {
			return err
		}
		if err := g.checkpoint(ctx, push.Event{Checkpoint: push.CheckpointLatencyDone, Latency: lr}); err != nil {
			return err
		}
	}
	g.setPhase(phaseEnd)
	return nil
}

// finish prints the last event: err, and the answers of every phase.
func (g *gen) finish(err error) {
	ev := push.Event{Done: true}
	if err != nil {
		ev.Error = err.Error()
	}
	g.mu.Lock()
	ev.Answers, ev.Problems = map[string]map[string]int{}, map[string]push.Problems{}
	for phase, m := range g.answers {
		g.logf("Ping answers during %s: %v", phase, m)
		ev.Answers[phase] = maps.Clone(m)
	}
	for kind, p := range g.errs {
		g.logf("%d errors of %s, e.g. %q", p.Count, kind, p.Examples)
		ev.Problems[kind] = *p
	}
	g.mu.Unlock()
	g.emit(ev)
}

// setUp creates the devices and sets them up, cfg.Concurrency at a time,
// user after user.
func (g *gen) setUp(ctx context.Context) *push.SetUpResult {
	cfg := g.cfg
	res := &push.SetUpResult{Users: cfg.Users, DevicesPerUser: cfg.PerUser, Devices: cfg.devices(), KeptConns: cfg.KeepConns}
	g.devs = make([]*device, cfg.devices())
	for i := range g.devs {
		d, err := newDevice(cfg, i)
		if err != nil {
			res.Errors.Add(err.Error())
			continue
		}
		g.devs[i] = d
	}
	start := time.Now()
	next := atomic.Int64{}
	var done, ready atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range min(cfg.Concurrency, len(g.devs)) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(g.devs) {
					return
				}
				d := g.devs[i]
				if d == nil {
					continue
				}
				err := d.setUp(ctx)
				mu.Lock()
				if err != nil {
					res.Errors.Add(fmt.Sprintf("%s/%s: %v", d.user, d.id, err))
				} else {
					res.InboxItems = max(res.InboxItems, d.items)
				}
				mu.Unlock()
				if err == nil {
					ready.Add(1)
				}
				if n := done.Add(1); n%int64(max(len(g.devs)/10, 1)) == 0 {
					g.logf("set-up: %d of %d devices (%d ready) in %v", n, len(g.devs), ready.Load(), time.Since(start).Round(time.Millisecond))
				}
			}
		})
	}
	wg.Wait()
	res.Ready = int(ready.Load())
	res.Seconds = time.Since(start).Seconds()
	if !cfg.KeepConns {
		for _, d := range g.devs {
			if d != nil {
				d.tr.CloseIdleConnections()
			}
		}
	}
	g.logf("set-up: %d of %d devices ready in %.1f s (%d errors)", res.Ready, res.Devices, res.Seconds, res.Errors.Count)
	return res
}

// park starts every ready device's Ping loop, opening cfg.Concurrency
// at a time, and waits until each has a Ping in flight (or
// cfg.ParkTimeout passes).
func (g *gen) park(ctx, loopCtx context.Context) *push.ParkResult {
	cfg := g.cfg
	g.setPhase(phasePark)
	res := &push.ParkResult{Heartbeat: cfg.Heartbeat}
	start := time.Now()
	sem := make(chan struct{}, cfg.Concurrency)
	want := 0
	for _, d := range g.devs {
		if d != nil && d.ready {
			want++
		}
	}
	g.loops.Go(func() {
		// Start the loops at cfg.ParkRate at most; each first Ping
		// also waits for a slot of sem.
		i := 0
		for _, d := range g.devs {
			if d == nil || !d.ready {
				continue
			}
			if cfg.ParkRate > 0 && !sleepCtx(loopCtx, time.Until(start.Add(time.Duration(float64(i)/cfg.ParkRate*float64(time.Second))))) {
				return
			}
			i++
			g.loops.Go(func() { g.pingLoop(loopCtx, d, sem) })
		}
	})
	deadline := time.Now().Add(cfg.ParkTimeout)
	last := time.Now()
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if int(g.inflight.Load()) >= want {
			break
		}
		if n := g.answerCount(phasePark); n >= 2*want {
			g.logf("park: %d answers to %d devices already: giving up", n, want)
			break
		}
		if time.Since(last) > 5*time.Second {
			g.logf("park: %d of %d Pings in flight", g.inflight.Load(), want)
			last = time.Now()
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.Parked = int(g.inflight.Load())
	res.Seconds = time.Since(start).Seconds()
	res.Early = g.answersIn(phasePark)
	g.mu.Lock()
	res.Errors = g.phaseProblems(phasePark)
	g.mu.Unlock()
	g.logf("park: %d of %d Pings in flight after %.1f s", res.Parked, want, res.Seconds)
	return res
}
