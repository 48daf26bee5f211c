package imapbridge

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"
	"time"
)

// Defaults of CacheOptions.
const (
	DefaultCacheTTL        = 5 * time.Minute
	DefaultCacheMaxEntries = 10000
)

// CacheOptions configures a CachedAuthenticator.
type CacheOptions struct {
	// TTL is how long a verified login is trusted without asking the
	// upstream again; 0 means DefaultCacheTTL. A password changed at the
	// upstream keeps working here for up to TTL (see Forget).
	TTL time.Duration
	// MaxEntries bounds the number of cached users; past it the oldest
	// entry is evicted. 0 means DefaultCacheMaxEntries.
	MaxEntries int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// CachedAuthenticator wraps an Authenticator and remembers verified logins
// for a short while, so that a phone, which sends its password with every
// request, does not cost an upstream IMAP login per request. It is safe for
// concurrent use.
//
// Only successes are cached, one per user: a wrong password is always
// passed on to the wrapped Authenticator (whose failures the HTTP layer
// throttles), and so is a password other than the cached one.
//
// The password is not stored: an entry holds HMAC-SHA256(key, user,
// password) under a key drawn at random when the CachedAuthenticator is
// made, compared in constant time. This keeps clear passwords out of the
// heap, core dumps and debugger views, and makes an entry worthless outside
// this process (no precomputed tables, nothing to compare against another
// system). A slow hash such as argon2id would add little: whoever can read
// this process's memory can read its key too, and the passwords of requests
// in flight; while it would cost tens of milliseconds of CPU and megabytes
// of memory on every request the cache exists to make cheap.
//
// Concurrent verifications of the same user and password share one call
// of the wrapped Authenticator.
type CachedAuthenticator struct {
	next Authenticator
	ttl  time.Duration
	max  int
	now  func() time.Time
	key  [32]byte

	mu       sync.Mutex
	entries  map[string]*list.Element // user -> element of order, Value *cacheEntry
	order    *list.List               // oldest first
	inflight map[loginKey]*flight
}

var _ Authenticator = (*CachedAuthenticator)(nil)

// loginKey identifies a user and password without holding the password.
type loginKey struct {
	user string
	mac  [sha256.Size]byte
}

type cacheEntry struct {
	loginKey
	expires time.Time
}

// flight is one call of the wrapped Authenticator that others wait for.
type flight struct {
	done    chan struct{}
	err     error
	waiters int // callers waiting besides the one calling, for tests
}

// NewCachedAuthenticator returns a CachedAuthenticator in front of next.
func NewCachedAuthenticator(next Authenticator, opts CacheOptions) *CachedAuthenticator {
	c := &CachedAuthenticator{
		next:     next,
		ttl:      opts.TTL,
		max:      opts.MaxEntries,
		now:      opts.Now,
		entries:  make(map[string]*list.Element),
		order:    list.New(),
		inflight: make(map[loginKey]*flight),
	}
	if c.ttl <= 0 {
		c.ttl = DefaultCacheTTL
	}
	if c.max <= 0 {
		c.max = DefaultCacheMaxEntries
	}
	if c.now == nil {
		c.now = time.Now
	}
	rand.Read(c.key[:]) // never fails (crypto/rand panics instead)
	return c
}

// Verify returns nil at once if user's password was verified with the
// same password within the TTL; otherwise it asks the wrapped
// Authenticator and caches a success. Its errors are those of the wrapped
// Authenticator, or ctx's error wrapped in ErrUnavailable if ctx ends while
// waiting for a verification started by another caller.
func (c *CachedAuthenticator) Verify(ctx context.Context, user, password string) error {
	k := c.loginKey(user, password)
	for {
		c.mu.Lock()
		if c.hitLocked(k) {
			c.mu.Unlock()
			return nil
		}
		f, ok := c.inflight[k]
		if !ok {
			f = &flight{done: make(chan struct{})}
			c.inflight[k] = f
			c.mu.Unlock()
			return c.call(ctx, k, f, password)
		}
		f.waiters++
		c.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
		if (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) && ctx.Err() == nil {
			continue // the other caller's context ended, not ours: try ourselves
		}
		return f.err
	}
}

// call runs the wrapped Authenticator for the flight f of k.
func (c *CachedAuthenticator) call(ctx context.Context, k loginKey, f *flight, password string) (err error) {
	returned := false
	defer func() {
		if !returned { // the wrapped Authenticator panicked
			err = errors.New("imapbridge: authenticator panicked")
		}
		c.mu.Lock()
		delete(c.inflight, k)
		if err == nil {
			c.storeLocked(k)
		}
		c.mu.Unlock()
		f.err = err
		close(f.done)
	}()
	err = c.next.Verify(ctx, k.user, password)
	returned = true
	return err
}

// Forget drops the cached login of user, if any, so that its next Verify
// asks the wrapped Authenticator.
func (c *CachedAuthenticator) Forget(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[user]; ok {
		c.removeLocked(el)
	}
}

// loginKey returns the key of user and password: user, and the HMAC of
// both, each length-prefixed so that no two pairs share an input.
func (c *CachedAuthenticator) loginKey(user, password string) loginKey {
	m := hmac.New(sha256.New, c.key[:])
	writeField(m, user)
	writeField(m, password)
	k := loginKey{user: user}
	m.Sum(k.mac[:0])
	return k
}

func writeField(h hash.Hash, s string) {
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
	h.Write([]byte(s))
}

// hitLocked reports whether k is cached and fresh, dropping a stale entry.
func (c *CachedAuthenticator) hitLocked(k loginKey) bool {
	el, ok := c.entries[k.user]
	if !ok {
		return false
	}
	e := el.Value.(*cacheEntry)
	if !c.now().Before(e.expires) {
		c.removeLocked(el)
		return false
	}
	return hmac.Equal(e.mac[:], k.mac[:])
}

// storeLocked caches k, replacing user's previous entry, and evicts expired
// entries and, past the size bound, the oldest ones.
func (c *CachedAuthenticator) storeLocked(k loginKey) {
	now := c.now()
	if el, ok := c.entries[k.user]; ok {
		c.removeLocked(el)
	}
	c.entries[k.user] = c.order.PushBack(&cacheEntry{loginKey: k, expires: now.Add(c.ttl)})
	for el := c.order.Front(); el != nil && (c.order.Len() > c.max || !now.Before(el.Value.(*cacheEntry).expires)); el = c.order.Front() {
		c.removeLocked(el)
	}
}

func (c *CachedAuthenticator) removeLocked(el *list.Element) {
	delete(c.entries, el.Value.(*cacheEntry).user)
	c.order.Remove(el)
}
