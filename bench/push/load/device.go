package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/wbxml"
)

// device is one simulated phone with its own HTTP connection.
type device struct {
	idx  int
	user string
	id   string
	c    *client.Client
	tr   *http.Transport

	// Set by setUp; then owned by the device's Ping loop.
	ready bool
	inbox string
	key   string
	// got holds the ids of the latency test's messages the device took;
	// items counts the messages its first full Sync found.
	got   map[int]bool
	items int
	// prefix starts the Subject of the latency test's messages.
	prefix string
}

// syncOptions are the INBOX's Sync options: plain text bodies cut at
// 512 bytes, as a phone's list view would ask.
var syncOptions = client.SyncOptions{WindowSize: 100, FilterType: "0",
	BodyPreferences: []client.BodyPreference{{Type: client.BodyPlain, TruncationSize: 512}}}

func newDevice(cfg *config, i int) (*device, error) {
	d := &device{idx: i, user: cfg.user(i / cfg.PerUser), id: fmt.Sprintf("pb%s%06d", cfg.RunID, i), got: map[int]bool{},
		prefix: subjectPrefix(cfg.RunID)}
	d.tr = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConns:        2,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Minute,
		DisableCompression:  true,
	}
	var err error
	d.c, err = client.New(client.Config{URL: cfg.URL, User: d.user, Password: cfg.Password, DeviceID: d.id,
		DeviceType: "easdpush", UserAgent: "easd-pushbench/1.0", Version: cfg.Version,
		HTTPClient: &http.Client{Transport: d.tr}})
	return d, err
}

// setUp provisions the device (the client does it when asked), finds the
// INBOX with FolderSync and syncs it fully.
func (d *device) setUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	fc, err := d.c.FolderSync(ctx, "0")
	if err != nil {
		return fmt.Errorf("FolderSync: %w", err)
	}
	for _, f := range fc.Added {
		if f.Type == client.FolderInbox {
			d.inbox = f.ServerID
			break
		}
	}
	if d.inbox == "" {
		return fmt.Errorf("FolderSync: no Inbox among %d folders", len(fc.Added))
	}
	if err := d.fullSync(ctx); err != nil {
		return err
	}
	d.ready = true
	return nil
}

// fullSync syncs the INBOX from key 0, noting the messages in got.
func (d *device) fullSync(ctx context.Context) error {
	key, err := d.c.SyncAll(ctx, d.inbox, syncOptions, func(r *client.SyncCollectionResponse) error {
		for _, a := range r.Adds {
			d.items++
			if k := d.appendID(a); k >= 0 {
				d.got[k] = true
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("syncing the INBOX: %w", err)
	}
	d.key = key
	return nil
}

// subjectPrefix starts the Subject of the latency test's message k:
// "pushbench RUN #k".
func subjectPrefix(runID string) string { return "pushbench " + runID + " #" }

// appendID returns the latency test's message id of an Add, or -1.
func (d *device) appendID(a client.SyncItem) int {
	subj := a.ApplicationData.ChildText(wbxml.EmailSubject)
	rest, ok := strings.CutPrefix(subj, d.prefix)
	if !ok {
		return -1
	}
	k, err := strconv.Atoi(strings.TrimSpace(rest))
	if err != nil || k < 0 {
		return -1
	}
	return k
}

// syncChanges takes the INBOX's changes since d.key and returns the
// latency test's message ids among the new messages (-1 for others) and
// the number of changes of any kind; a refused key (status 3) starts
// again from 0, returning only messages not taken before.
func (d *device) syncChanges(ctx context.Context) (ids []int, changes int, err error) {
	for range 20 {
		resp, err := d.c.Sync(ctx, client.SyncRequest{Collections: []client.SyncCollection{{
			SyncKey: d.key, CollectionID: d.inbox, GetChanges: new(true), Options: &syncOptions}}})
		if err != nil {
			return ids, changes, err
		}
		if resp.Empty {
			return ids, changes, nil
		}
		col := resp.Collection(d.inbox)
		if col == nil {
			return ids, changes, errors.New("no INBOX collection in the Sync response")
		}
		if col.Status == 3 {
			before := len(d.got)
			old := d.got
			d.got, d.items = map[int]bool{}, 0
			if err := d.fullSync(ctx); err != nil {
				return ids, changes, err
			}
			for k := range d.got {
				if !old[k] {
					ids = append(ids, k)
				}
			}
			for k := range old {
				d.got[k] = true
			}
			return ids, changes + len(ids), fmt.Errorf("sync key refused (status 3), synced again from 0 (%d messages known before)", before)
		}
		if err := col.Err(); err != nil {
			return ids, changes, err
		}
		if col.SyncKey != "" {
			d.key = col.SyncKey
		}
		changes += col.ItemCount()
		for _, a := range col.Adds {
			ids = append(ids, d.appendID(a))
		}
		if !col.MoreAvailable {
			return ids, changes, nil
		}
	}
	return ids, changes, errors.New("the Sync response said MoreAvailable 20 times")
}

// pingLoop keeps a Ping parked for d until ctx ends: after a status-2
// answer it syncs the INBOX, records what came, and pings again. The
// first Ping waits for a slot of sem, released once it is written.
func (g *gen) pingLoop(ctx context.Context, d *device, sem chan struct{}) {
	req := client.PingRequest{HeartbeatInterval: g.cfg.Heartbeat, Folders: []client.PingFolder{{ID: d.inbox, Class: "Email"}}}
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	var once sync.Once
	release := func() { once.Do(func() { <-sem }) }
	defer release()
	failures := 0
	for ctx.Err() == nil {
		var wrote atomic.Bool
		tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) {
				if wrote.CompareAndSwap(false, true) {
					g.inflight.Add(1)
					release()
				}
			},
		})
		resp, err := d.c.Ping(tctx, req)
		answeredAt := time.Now()
		if wrote.Load() {
			g.inflight.Add(-1)
		}
		release()
		if ctx.Err() != nil {
			return
		}
		if resp == nil || resp.Status == 0 {
			g.answered("error")
			g.problem("Ping", fmt.Errorf("%s/%s: %v", d.user, d.id, err))
			failures++
			if !sleepCtx(ctx, retryAfter(err, failures)) {
				return
			}
			continue
		}
		failures = 0
		phase := g.answered(strconv.Itoa(resp.Status))
		switch resp.Status {
		case client.PingChanges:
			g.afterChange(ctx, d, resp, answeredAt, phase)
		case client.PingExpired:
		case client.PingFolderSyncRequired:
			g.problem("Ping status 7", fmt.Errorf("%s/%s: folder sync required", d.user, d.id))
			if _, err := d.c.FolderSync(ctx, "0"); err != nil {
				g.problem("FolderSync", err)
				sleepCtx(ctx, time.Second)
			}
		default:
			g.problem("Ping status "+strconv.Itoa(resp.Status), fmt.Errorf("%s/%s: %v", d.user, d.id, err))
			sleepCtx(ctx, time.Second)
		}
	}
}

// afterChange syncs the INBOX after a status-2 answer and records what
// came: the latency test's messages, or nothing (a phantom push).
func (g *gen) afterChange(ctx context.Context, d *device, resp *client.PingResponse, answeredAt time.Time, phase string) {
	if !slices.Contains(resp.Folders, d.inbox) {
		g.mu.Lock()
		g.wrongFolder[phase]++
		g.mu.Unlock()
	}
	ids, changes, err := d.syncChanges(ctx)
	synced := time.Now()
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		g.problem("Sync", fmt.Errorf("%s/%s: %v", d.user, d.id, err))
	}
	fb := resp.FirstByte
	if fb.IsZero() {
		fb = answeredAt
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if changes == 0 && err == nil {
		g.phantom[phase]++
	}
	for _, k := range ids {
		if k < 0 {
			continue
		}
		if d.got[k] {
			g.duplicates++
			continue
		}
		d.got[k] = true
		g.deliveries[[2]int{k, d.idx}] = delivery{firstByte: fb, answered: answeredAt, synced: synced}
	}
}

// retryAfter is how long to wait after the failures-th failure in a
// row, err: the server's Retry-After (up to a minute), else a second per
// failure up to ten.
func retryAfter(err error, failures int) time.Duration {
	var he *client.HTTPError
	if errors.As(err, &he) {
		if s, err := strconv.Atoi(he.Header.Get("Retry-After")); err == nil && s > 0 {
			return time.Duration(min(s, 60)) * time.Second
		}
	}
	return time.Duration(min(failures, 10)) * time.Second
}

// sleepCtx sleeps for d or until ctx ends, reporting whether it slept.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
