package eas

import (
	"sync"
	"time"
)

// throttle counts failed logins per key (user, client address) in a fixed
// window; a key with max failures is locked until its window ends. Memory
// is bounded: at most maxKeys keys are tracked, expired ones pruned first.
type throttle struct {
	max    int
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	keys map[string]*failures
}

type failures struct {
	n     int
	since time.Time
}

const maxThrottleKeys = 100_000

func newThrottle(max int, window time.Duration, now func() time.Time) *throttle {
	return &throttle{max: max, window: window, now: now, keys: map[string]*failures{}}
}

// locked returns how long the most restricted of keys stays locked; 0 when
// none is.
func (t *throttle) locked(keys ...string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var wait time.Duration
	for _, k := range keys {
		f := t.keys[k]
		if f == nil || f.n < t.max {
			continue
		}
		if left := f.since.Add(t.window).Sub(now); left > wait {
			wait = left
		}
	}
	return wait
}

// failed records one failure for each key.
func (t *throttle) failed(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, k := range keys {
		f := t.keys[k]
		if f == nil || now.Sub(f.since) >= t.window {
			if f == nil && len(t.keys) >= maxThrottleKeys {
				t.prune(now)
				if len(t.keys) >= maxThrottleKeys {
					continue // full of live entries: stop tracking new keys
				}
			}
			f = &failures{since: now}
			t.keys[k] = f
		}
		f.n++
	}
}

// succeeded forgets the failures of key (a user who got in).
func (t *throttle) succeeded(key string) {
	t.mu.Lock()
	delete(t.keys, key)
	t.mu.Unlock()
}

func (t *throttle) prune(now time.Time) {
	for k, f := range t.keys {
		if now.Sub(f.since) >= t.window {
			delete(t.keys, k)
		}
	}
}
