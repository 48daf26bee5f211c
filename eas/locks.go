package eas

import (
	"slices"
	"strconv"
	"sync"
)

// keyLocks serialises requests of one device on one collection (or on its
// folder hierarchy, collection ""), within this process: a phone that
// sends the same Sync twice at once gets the second answered as a retry
// of the first instead of two racing writes of the same next key.
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // holds a token while locked
	refs int
}

// lock takes the locks of device's collections (in a fixed order, so two
// requests cannot deadlock) and returns the function releasing them; it
// may be called more than once.
func (k *keyLocks) lock(device int64, collections []string) (unlock func()) {
	names := make([]string, 0, len(collections))
	for _, c := range collections {
		names = append(names, strconv.FormatInt(device, 10)+"/"+c)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	held := make([]*keyLock, 0, len(names))
	for _, n := range names {
		k.mu.Lock()
		if k.locks == nil {
			k.locks = map[string]*keyLock{}
		}
		l := k.locks[n]
		if l == nil {
			l = &keyLock{ch: make(chan struct{}, 1)}
			k.locks[n] = l
		}
		l.refs++
		k.mu.Unlock()
		l.ch <- struct{}{}
		held = append(held, l)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			k.mu.Lock()
			defer k.mu.Unlock()
			for i, l := range held {
				<-l.ch
				if l.refs--; l.refs == 0 {
					delete(k.locks, names[i])
				}
			}
		})
	}
}
