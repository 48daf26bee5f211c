// Package push holds the driver side of the push benchmark of issue #7
// (bench/push/run.sh): a counting IMAP proxy, readings of easd's memory
// and CPU from /proc and of its /metrics, the messages the load generator
// (bench/push/load, a separate process) prints, and the Markdown report.
//
// The generator prints one JSON Event per line on its standard output.
// An Event with a Checkpoint asks the driver to measure easd at that
// point; the generator then waits for one line on its standard input
// before it goes on. Progress goes to standard error.
package push

import (
	"math"
	"slices"
	"time"
)

// Checkpoints the generator stops at, in this order (Idle and Latency
// only when those phases run).
const (
	// CheckpointSetUp: every device is provisioned and synced, and its
	// HTTP connections are closed (unless the generator keeps them); easd
	// is idle. Event.SetUp holds the set-up figures.
	CheckpointSetUp = "set-up"
	// CheckpointParked: every device has a Ping parked. Event.Park holds
	// how many.
	CheckpointParked = "parked"
	// CheckpointIdle: the idle window starts; the driver measures for
	// Event.Window and then answers. Event.Idle, printed after the
	// answer, holds what the devices saw meanwhile.
	CheckpointIdle = "idle"
	// CheckpointLatency: the appends are about to start.
	CheckpointLatency = "latency"
	// CheckpointLatencyDone: the appends and their pushes are over;
	// Event.Latency holds the results.
	CheckpointLatencyDone = "latency-done"
)

// Event is one line of the generator's output.
type Event struct {
	Checkpoint string         `json:"checkpoint,omitempty"`
	Window     time.Duration  `json:"window,omitempty"`
	SetUp      *SetUpResult   `json:"setup,omitempty"`
	Park       *ParkResult    `json:"park,omitempty"`
	Idle       *IdleResult    `json:"idle,omitempty"`
	Latency    *LatencyResult `json:"latency,omitempty"`
	// Done is the last event; Error says why the generator gave up, if
	// it did.
	Done  bool   `json:"done,omitempty"`
	Error string `json:"error,omitempty"`
	// Answers (in the last event) counts every Ping answer by phase
	// ("park", "idle", "between", "latency" …) and status ("error" for
	// failures); Problems the errors by phase and kind.
	Answers  map[string]map[string]int `json:"answers,omitempty"`
	Problems map[string]Problems       `json:"problems,omitempty"`
}

// Problems counts failures of one kind with a few examples.
type Problems struct {
	Count    int      `json:"count"`
	Examples []string `json:"examples,omitempty"`
}

// Add counts err, keeping the first few as examples.
func (p *Problems) Add(err string) {
	p.Count++
	if len(p.Examples) < 5 {
		p.Examples = append(p.Examples, err)
	}
}

// SetUpResult is the set-up of the devices.
type SetUpResult struct {
	Users, DevicesPerUser, Devices int
	// Ready counts the devices set up (provisioned, folders and INBOX
	// synced).
	Ready   int
	Seconds float64
	// InboxItems is the most messages a device found in its INBOX.
	InboxItems int
	// KeptConns: the devices' idle HTTP connections were kept open
	// (else closed before the checkpoint).
	KeptConns bool
	Errors    Problems
}

// ParkResult is the parking of a Ping per device.
type ParkResult struct {
	// Parked counts the devices whose Ping was sent and not answered at
	// the checkpoint.
	Parked  int
	Seconds float64
	// Heartbeat is the Pings' HeartbeatInterval in seconds.
	Heartbeat int
	// Early counts answers before the checkpoint, by status ("error" for
	// failures); there should be none.
	Early  map[string]int `json:",omitempty"`
	Errors Problems
}

// IdleResult is what the devices saw during the idle window: nothing is
// expected.
type IdleResult struct {
	Seconds float64
	// Answers counts Ping answers by status ("error" for failures).
	Answers map[string]int `json:",omitempty"`
	// Phantom counts status-2 answers whose Sync returned nothing.
	Phantom int
}

// LatencyResult is the push latency test.
type LatencyResult struct {
	Users, DevicesPerUser int
	// Appends were sent at Rate per second; AppendErrors failed.
	Appends      int
	Rate         float64
	AppendErrors Problems
	// AppendMs summarises the APPEND round trips (ms).
	AppendMs Summary
	// Expected is the (append, device) pairs that should be pushed:
	// every device of the user of each successful append. Pushed counts
	// those whose device got a status-2 answer followed by a Sync that
	// returned the message; Missed the rest.
	Expected, Pushed, Missed int
	MissedExamples           []string `json:",omitempty"`
	// LatencyMs summarises, per pushed pair, the time from the APPEND's
	// tagged OK to the first byte of the Ping answer (ms; negative when
	// the answer came first). BodyMs is to the end of the answer, SyncMs
	// to the end of the Sync that took the message.
	LatencyMs, BodyMs, SyncMs Summary
	// CeilingMs summarises, for the appends to the first CeilingUsers
	// users, the time from the APPEND's tagged OK to the EXISTS seen by
	// a plain IMAP client IDLE-ing on the INBOX (ms): what the IMAP
	// server itself allows. CeilingMissed counts appends it never saw.
	CeilingMs     Summary
	CeilingUsers  int
	CeilingMissed int
	// BeforeOK counts pairs whose answer came before the APPEND's OK;
	// Coalesced pairs whose message came with a Sync woken before its
	// APPEND was sent (not in the latencies).
	BeforeOK, Coalesced int
	// Answers counts Ping answers by status ("error" for failures) from
	// the first append to the end; Status2 those that said "changed".
	Answers map[string]int `json:",omitempty"`
	Status2 int
	// Phantom counts status-2 answers whose Sync returned nothing;
	// WrongFolder status-2 answers that did not name the INBOX.
	Phantom, WrongFolder int
	// Duplicates counts messages a device received twice.
	Duplicates int
	Seconds    float64
	Errors     Problems
}

// Summary is the distribution of a sample.
type Summary struct {
	Count                         int
	Min, P50, P90, P99, Max, Mean float64
}

// Summarize returns the distribution of xs (which it sorts).
func Summarize(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	slices.Sort(xs)
	q := func(p float64) float64 {
		// Nearest rank.
		i := int(math.Ceil(p*float64(len(xs)))) - 1
		return xs[min(max(i, 0), len(xs)-1)]
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return Summary{Count: len(xs), Min: xs[0], P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: xs[len(xs)-1],
		Mean: sum / float64(len(xs))}
}
