package push

import (
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Targets of issue #7.
const (
	TargetBytesPerDevice = 24 << 10
	TargetP50            = 50 * time.Millisecond
	TargetP99            = 250 * time.Millisecond
	TargetIdleCPU        = 2.0 // percent of one core
)

// Snapshot is easd measured at one checkpoint, once settled.
type Snapshot struct {
	// RSS is easd's VmRSS in KiB.
	RSS int64
	// HeapInuse and StackInuse (bytes), Goroutines and InFlight (HTTP
	// requests being served, parked ones included) come from easd's
	// /metrics; negative when unknown.
	HeapInuse, StackInuse, Goroutines, InFlight float64
	// IMAP is what the counting proxy saw open; Dovecot the imap
	// processes of Dovecot.
	IMAP    Conns
	Dovecot Processes
	// Settled is how long the settling took.
	Settled time.Duration
}

// IdleReport is the idle window as the driver measured it.
type IdleReport struct {
	Window time.Duration
	// ReapWait is how long the driver waited, before the window, for the
	// IMAP connections to fall to one per user.
	ReapWait time.Duration
	// CPU is easd's CPU time during the window.
	CPU  time.Duration
	IMAP Counts
	// Start and End are the IMAP connections open at either end.
	Start, End    Conns
	DovecotEnd    Processes
	InFlightAtEnd float64
	// RSSEnd is easd's VmRSS (KiB) at the end of the window.
	RSSEnd    int64
	Generator *IdleResult
}

// LatencyReport is the latency test with easd's side.
type LatencyReport struct {
	CPU       time.Duration
	IMAP      Counts
	Generator *LatencyResult
}

// RunReport is one run: one easd, N parked devices.
type RunReport struct {
	N, Users, PerUser int
	Phases            []string
	EasdArgs          []string
	Fresh, SetUp      Snapshot
	Parked            Snapshot
	SetUpResult       *SetUpResult
	Park              *ParkResult
	Idle              *IdleReport
	Latency           *LatencyReport
	// Metrics are the push and IMAP lines of easd's /metrics at the last
	// checkpoint, the devices still parked.
	Metrics  []string
	Answers  map[string]map[string]int
	Problems map[string]Problems
	Err      string
}

// PerDevice is the RSS growth per parked device, in bytes.
func (r *RunReport) PerDevice() float64 {
	if r.Park == nil || r.Park.Parked == 0 {
		return 0
	}
	return float64(r.Parked.RSS-r.SetUp.RSS) * 1024 / float64(r.Park.Parked)
}

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

func per(delta, n float64) string {
	if n == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", delta/n)
}

func miss(ok bool) string {
	if ok {
		return ""
	}
	return " **(target missed)**"
}

// WriteReport prints runs as Markdown.
func WriteReport(w io.Writer, runs []*RunReport) {
	fmt.Fprintf(w, "\n### easd push benchmark (issue #7), %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "%d CPUs, %s/%s, %s; loopback, no TLS; easd `serve --auth imap`, SQLite; IMAP through a counting proxy. ",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprint(w, "RSS is VmRSS of easd after four forced GCs (pprof heap?gc=1, as a few minutes of running would) and settling; \"per device\" is (parked − set-up) / parked.\n\n")

	fmt.Fprintln(w, "| parked devices | users × devices | set-up s | easd RSS fresh | RSS set up, idle | RSS parked | RSS per parked device | Go heap in use per device | Go stacks per device | goroutines per device | IMAP conns open (users) | Dovecot imap processes |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
	for _, r := range runs {
		if r.Park == nil || r.SetUpResult == nil {
			fmt.Fprintf(w, "| %d | %d × %d | – | %s | – | – | – | – | – | – | – | – |\n", r.N, r.Users, r.PerUser, mib(r.Fresh.RSS))
			continue
		}
		pd, n := r.PerDevice(), float64(r.Park.Parked)
		fmt.Fprintf(w, "| %d | %d × %d | %.1f | %s | %s | %s | %.1f KiB%s | %s B | %s B | %s | %d (%d) | %d |\n",
			r.Park.Parked, r.Users, r.PerUser, r.SetUpResult.Seconds, mib(r.Fresh.RSS), mib(r.SetUp.RSS), mib(r.Parked.RSS),
			pd/1024, miss(pd <= TargetBytesPerDevice),
			per(r.Parked.HeapInuse-r.SetUp.HeapInuse, n), per(r.Parked.StackInuse-r.SetUp.StackInuse, n),
			per(r.Parked.Goroutines-r.SetUp.Goroutines, n),
			r.Parked.IMAP.Open, r.Parked.IMAP.Users, r.Parked.Dovecot.Count)
	}

	var lat, idle []*RunReport
	for _, r := range runs {
		if r.Latency != nil && r.Latency.Generator != nil {
			lat = append(lat, r)
		}
		if r.Idle != nil {
			idle = append(idle, r)
		}
	}
	if len(lat) > 0 {
		fmt.Fprintln(w, "\nPush latency: APPEND (tagged OK, straight to Dovecot) to the first byte of the Ping answer, per woken device.")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| parked | appends (rate) | status-2 answers | pushes taken / expected | p50 | p90 | p99 | max | to end of Sync p50 / p99 | plain IMAP IDLE to EXISTS p50 / p99 (ceiling) | phantom | missed | APPEND p50 | easd CPU s | IMAP commands |")
		fmt.Fprintln(w, "|---:|---|---:|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---|")
		for _, r := range lat {
			g := r.Latency.Generator
			parked := 0
			if r.Park != nil {
				parked = r.Park.Parked
			}
			fmt.Fprintf(w, "| %d | %d (%.0f/s) | %d | %d / %d | %.1f ms%s | %.1f ms | %.1f ms%s | %.1f ms | %.1f / %.1f ms | %.1f / %.1f ms (%d appends to %d users) | %d | %d | %.1f ms | %.2f | %s |\n",
				parked, g.Appends, g.Rate, g.Status2, g.Pushed, g.Expected,
				g.LatencyMs.P50, miss(g.LatencyMs.P50 <= ms(TargetP50)), g.LatencyMs.P90, g.LatencyMs.P99, miss(g.LatencyMs.P99 <= ms(TargetP99)),
				g.LatencyMs.Max, g.SyncMs.P50, g.SyncMs.P99, g.CeilingMs.P50, g.CeilingMs.P99, g.CeilingMs.Count, g.CeilingUsers,
				g.Phantom, g.Missed, g.AppendMs.P50,
				r.Latency.CPU.Seconds(), r.Latency.IMAP.Top(6))
		}
		for _, r := range lat {
			g := r.Latency.Generator
			var notes []string
			if g.BeforeOK > 0 {
				notes = append(notes, fmt.Sprintf("%d answers came before the APPEND's OK (negative latency; min %.1f ms)", g.BeforeOK, g.LatencyMs.Min))
			}
			if g.Coalesced > 0 {
				notes = append(notes, fmt.Sprintf("%d messages came with a Sync woken before their APPEND (not in the latencies)", g.Coalesced))
			}
			if g.CeilingMissed > 0 {
				notes = append(notes, fmt.Sprintf("the plain IDLE client saw no EXISTS for %d appends", g.CeilingMissed))
			}
			if g.WrongFolder > 0 {
				notes = append(notes, fmt.Sprintf("%d status-2 answers did not name the INBOX", g.WrongFolder))
			}
			if g.Duplicates > 0 {
				notes = append(notes, fmt.Sprintf("%d messages came twice to a device", g.Duplicates))
			}
			if g.AppendErrors.Count > 0 {
				notes = append(notes, fmt.Sprintf("%d APPENDs failed, e.g. %q", g.AppendErrors.Count, g.AppendErrors.Examples))
			}
			if len(g.MissedExamples) > 0 {
				notes = append(notes, fmt.Sprintf("missed, e.g. %q", g.MissedExamples))
			}
			if g.Errors.Count > 0 {
				notes = append(notes, fmt.Sprintf("%d errors, e.g. %q", g.Errors.Count, g.Errors.Examples))
			}
			notes = append(notes, "Ping answers by status: "+statuses(g.Answers))
			fmt.Fprintf(w, "\n%d parked: %s.\n", r.Park.Parked, strings.Join(notes, "; "))
		}
	}
	if len(idle) > 0 {
		fmt.Fprintln(w, "\nIdle: parked devices, no mail.")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| parked | window | easd CPU % of a core | easd RSS (end) | IMAP commands / min | per user / min | by name | IMAP conns open, start → end (users, most per user) | by last command (end) | Dovecot imap processes (PSS) | Ping answers |")
		fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---|---|---|---|---|")
		for _, r := range idle {
			d := r.Idle
			mins := d.Window.Minutes()
			cpu := 100 * d.CPU.Seconds() / d.Window.Seconds()
			answers := "none"
			if d.Generator != nil && len(d.Generator.Answers) > 0 {
				answers = statuses(d.Generator.Answers) + fmt.Sprintf(", %d phantom", d.Generator.Phantom)
			}
			parked := 0
			if r.Park != nil {
				parked = r.Park.Parked
			}
			fmt.Fprintf(w, "| %d | %.0f s | %.2f %%%s | %s | %.1f | %.3f | %s | %d → %d (%d, %d) | %s | %d (%s) | %s |\n",
				parked, d.Window.Seconds(), cpu, miss(cpu <= TargetIdleCPU), mib(d.RSSEnd), float64(d.IMAP.Total)/mins,
				float64(d.IMAP.Total)/mins/float64(max(r.Users, 1)), d.IMAP.Top(6),
				d.Start.Open, d.End.Open, d.End.Users, d.End.MaxPerUser, byLast(d.End.ByLast),
				d.DovecotEnd.Count, mib(d.DovecotEnd.PSS), answers)
		}
		for _, r := range idle {
			if r.Idle.ReapWait > 0 {
				fmt.Fprintf(w, "\n%d parked: waited %.0f s before the window for easd's pooled IMAP connections to be reaped.\n",
					r.Park.Parked, r.Idle.ReapWait.Seconds())
			}
		}
	}
	for _, r := range runs {
		fmt.Fprintf(w, "\n%d devices: easd `serve %s`", r.N, strings.Join(r.EasdArgs, " "))
		if r.SetUpResult != nil && r.SetUpResult.Errors.Count > 0 {
			fmt.Fprintf(w, "; %d set-up errors, e.g. %q", r.SetUpResult.Errors.Count, r.SetUpResult.Errors.Examples)
		}
		if r.Park != nil && len(r.Park.Early) > 0 {
			fmt.Fprintf(w, "; answers while parking: %s", statuses(r.Park.Early))
		}
		for _, phase := range slices.Sorted(maps.Keys(r.Answers)) {
			if phase != "latency" && phase != "idle" {
				fmt.Fprintf(w, "; Ping answers during %s: %s", phase, statuses(r.Answers[phase]))
			}
		}
		for _, kind := range slices.Sorted(maps.Keys(r.Problems)) {
			p := r.Problems[kind]
			fmt.Fprintf(w, "; %d × %s, e.g. %q", p.Count, kind, p.Examples[:min(len(p.Examples), 2)])
		}
		if r.Err != "" {
			fmt.Fprintf(w, "; **failed: %s**", r.Err)
		}
		fmt.Fprintln(w, ".")
		if len(r.Metrics) > 0 {
			fmt.Fprintf(w, "\n```\n%s\n```\n", strings.Join(r.Metrics, "\n"))
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// statuses renders counts by status, e.g. "2: 3000, error: 1".
func statuses(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func byLast(m map[string]int) string {
	if len(m) == 0 {
		return "–"
	}
	keys := slices.Sorted(maps.Keys(m))
	slices.SortStableFunc(keys, func(a, b string) int { return m[b] - m[a] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
