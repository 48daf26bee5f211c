// Package memtest measures the memory a call allocates, for the tests
// that bound what decoders take from pathological input (deep nesting,
// huge counts, long lines, many parameters, large inputs). It is for
// tests only.
package memtest

import (
	"runtime"
	"runtime/metrics"
	"sync"
	"time"
)

// Usage is what one call took from the heap.
type Usage struct {
	// Alloc counts the bytes allocated during the call, garbage included
	// (runtime.MemStats.TotalAlloc): it bounds the work done for the
	// garbage collector.
	Alloc uint64
	// Live is the largest live heap that a garbage collection during the
	// call found, above the live heap before it: what the call holds at
	// its worst. (Calls that allocate little may run no collection: Alloc
	// bounds them.)
	Live uint64
	// Peak is the largest heap in use during the call (live objects and
	// garbage not yet swept, sampled every 100 µs) above what was in use
	// before it: about what the process's memory grows by, twice Live with
	// the default GOGC, more on a busy machine where collections lag.
	Peak uint64
	// Retained is the heap in use after the call and a collection above
	// what was in use before: what its results hold.
	Retained int64
}

const (
	heapObjects = "/memory/classes/heap/objects:bytes"
	heapLive    = "/gc/heap/live:bytes"
)

// Measure calls f once and returns what it took. f should keep its
// results reachable (assign them to a variable the caller reads after
// Measure) for Retained to count them. Measurements are only meaningful
// when nothing else allocates meanwhile: do not use them in parallel
// tests.
func Measure(f func()) Usage {
	sample := []metrics.Sample{{Name: heapObjects}, {Name: heapLive}}
	read := func() (objects, live uint64) {
		metrics.Read(sample)
		return sample[0].Value.Uint64(), sample[1].Value.Uint64()
	}
	runtime.GC()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	base, baseLive := read()
	var (
		peak, live uint64
		stop       = make(chan struct{})
		wg         sync.WaitGroup
	)
	wg.Go(func() {
		s := []metrics.Sample{{Name: heapObjects}, {Name: heapLive}}
		t := time.NewTicker(100 * time.Microsecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			live = max(live, s[1].Value.Uint64())
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	f()
	close(stop)
	wg.Wait()
	o, l := read()
	peak, live = max(peak, o), max(live, l)
	runtime.ReadMemStats(&after)
	runtime.GC()
	runtime.GC()
	o, _ = read()
	u := Usage{Alloc: after.TotalAlloc - before.TotalAlloc, Retained: int64(o) - int64(base)}
	if peak > base {
		u.Peak = peak - base
	}
	if live > baseLive {
		u.Live = live - baseLive
	}
	return u
}

// Race reports whether the race detector is on: it slows allocation-heavy
// code tenfold, so the tests feed it smaller inputs.
const Race = race
