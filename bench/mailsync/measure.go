package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/easd/easd/bench/internal/imapproxy"
	"github.com/easd/easd/bench/internal/procstat"
	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/wbxml"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// resetPeak resets pid's VmHWM to its current RSS (Linux 4.0+, same user
// or root), so that each phase reports its own peak; false if it could
// not, and the peak then counts from the process start.
func resetPeak(pid int) bool {
	if pid <= 0 {
		return false
	}
	return os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0) == nil
}

// countingTransport counts the response body bytes it delivers.
type countingTransport struct {
	rt http.RoundTripper
	n  *atomic.Int64
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(r)
	if resp != nil && resp.Body != nil {
		resp.Body = &countingBody{resp.Body, t.n}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// easClient returns a device of user with its own connection, counting
// response bytes into n.
func easClient(cfg *config, user, deviceID string, n *atomic.Int64) (*client.Client, error) {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: cfg.Insecure},
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     2 * time.Minute,
	}
	return client.New(client.Config{
		URL: cfg.URL, User: user, Password: cfg.Password, DeviceID: deviceID, DeviceType: "easdbench",
		UserAgent: "easd-mailsync/1.0", Version: cfg.Version, MaxResponseBytes: 512 << 20,
		HTTPClient: &http.Client{Transport: countingTransport{tr, n}, Timeout: 10 * time.Minute},
	})
}

// findFolder runs FolderSync 0 and returns the ServerId of folder: the
// Inbox (Type 2) for "INBOX", else the folder so named.
func findFolder(ctx context.Context, c *client.Client, folder string) (string, error) {
	fc, err := c.FolderSync(ctx, "0")
	if err != nil {
		return "", fmt.Errorf("FolderSync: %w", err)
	}
	for _, f := range fc.Added {
		if strings.EqualFold(folder, "INBOX") && f.Type == client.FolderInbox {
			return f.ServerID, nil
		}
		if strings.EqualFold(f.DisplayName, folder) {
			return f.ServerID, nil
		}
	}
	return "", fmt.Errorf("FolderSync: no folder %q among %d", folder, len(fc.Added))
}

// syncResult is one initial-sync or ceiling measurement.
type syncResult struct {
	Name     string
	Window   string
	Messages int
	// Attachments counts messages reported with attachments.
	Attachments int
	Elapsed     time.Duration
	// Wire is the bytes received; Data the message bytes (Body Data, or
	// IMAP literals).
	Wire, Data int64
	Mem        procstat.Memory
	// CPU is the CPU time easd used during the phase.
	CPU       time.Duration
	PeakReset bool
	IMAP      imapproxy.Counts
	Err       error
}

var runID = strconv.FormatInt(time.Now().UnixNano()%1e12, 36)

// initialSync syncs the whole INBOX to a new device with window.
func initialSync(ctx context.Context, cfg *config, counter *imapproxy.Proxy, window int) syncResult {
	res := syncResult{Name: "EAS initial Sync", Window: strconv.Itoa(window)}
	var wire atomic.Int64
	c, err := easClient(cfg, cfg.User, fmt.Sprintf("bench%sw%d", runID, window), &wire)
	if err != nil {
		res.Err = err
		return res
	}
	inbox, err := findFolder(ctx, c, "INBOX") // provisions first
	if err != nil {
		res.Err = err
		return res
	}
	opts := client.SyncOptions{WindowSize: window, FilterType: "0",
		BodyPreferences: []client.BodyPreference{{Type: cfg.BodyType}}}
	if cfg.BodyType == client.BodyMIME {
		opts.MIMESupport = 2
	}
	res.PeakReset = resetPeak(cfg.PID)
	before := counter.Snapshot()
	wire.Store(0)
	cpu0 := procstat.ReadCPU(cfg.PID)
	start := time.Now()
	_, res.Err = c.SyncAll(ctx, inbox, opts, func(r *client.SyncCollectionResponse) error {
		for _, a := range r.Adds {
			res.Messages++
			res.Data += int64(len(a.ApplicationData.Path(wbxml.AirSyncBaseBody, wbxml.AirSyncBaseData).Bytes()))
			if a.ApplicationData.Path(wbxml.AirSyncBaseAttachments, wbxml.AirSyncBaseAttachment) != nil {
				res.Attachments++
			}
		}
		return nil
	})
	res.Elapsed = time.Since(start)
	res.CPU = procstat.ReadCPU(cfg.PID) - cpu0
	res.Wire = wire.Load()
	res.Mem = procstat.ReadMemory(cfg.PID)
	res.IMAP = counter.Snapshot().Sub(before)
	return res
}

// imapCeiling fetches every message of INBOX with one UID FETCH 1:*
// BODY.PEEK[], straight from the IMAP server.
func imapCeiling(ctx context.Context, cfg *config) syncResult {
	res := syncResult{Name: "IMAP UID FETCH 1:* BODY.PEEK[] (ceiling)", Window: "–"}
	c, err := dialIMAP(ctx, cfg.IMAPAddr, cfg.User, cfg.Password)
	if err != nil {
		res.Err = err
		return res
	}
	defer c.close()
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		res.Err = fmt.Errorf("IMAP EXAMINE: %w", err)
		return res
	}
	start := time.Now()
	cmd := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}},
		&imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			if bs, ok := item.(imapclient.FetchItemDataBodySection); ok && bs.Literal != nil {
				n, err := io.Copy(io.Discard, bs.Literal)
				res.Data += n
				if err != nil && res.Err == nil {
					res.Err = err
				}
			}
		}
		res.Messages++
	}
	if err := cmd.Close(); err != nil && res.Err == nil {
		res.Err = fmt.Errorf("IMAP UID FETCH: %w", err)
	}
	res.Elapsed = time.Since(start)
	res.Wire = res.Data
	res.IMAP = imapproxy.Counts{Total: 1}
	return res
}

// kaResult is the unchanged-folder Sync measurement.
type kaResult struct {
	Clients, Users int
	Folder         string
	FolderItems    int
	Requests       int64
	// Changed counts responses that carried items (the folder changed).
	Changed  int64
	Errors   int64
	LastErr  error
	Elapsed  time.Duration
	P50, P99 time.Duration
	CPU      time.Duration // easd's CPU time during the run
	Mem      procstat.Memory
	IMAP     imapproxy.Counts
	Err      error
}

// kaDevice is one primed keep-alive client.
type kaDevice struct {
	c     *client.Client
	coll  string
	key   string
	items int
}

// keepAlive primes cfg.Clients devices on cfg.KAFolder, then has them
// send unchanged-folder Syncs back to back for cfg.Duration.
func keepAlive(ctx context.Context, cfg *config, counter *imapproxy.Proxy, logf func(string, ...any)) kaResult {
	res := kaResult{Clients: cfg.Clients, Users: max(cfg.KAUsers, 1), Folder: cfg.KAFolder}
	opts := client.SyncOptions{WindowSize: 100, FilterType: "0",
		BodyPreferences: []client.BodyPreference{{Type: client.BodyPlain, TruncationSize: 512}}}
	devs := make([]*kaDevice, cfg.Clients)
	var wire atomic.Int64
	// Few first logins at a time: easd's login throttle counts those in
	// flight per client address, and every client here is 127.0.0.1.
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	var mu sync.Mutex
	start := time.Now()
	for i := range devs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			d, err := primeDevice(ctx, cfg, i, opts, &wire)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && res.Err == nil {
				res.Err = fmt.Errorf("priming client %d (%s): %w", i, cfg.kaUser(i), err)
			}
			devs[i] = d
		})
	}
	wg.Wait()
	if res.Err != nil {
		return res
	}
	res.FolderItems = devs[0].items
	logf("keep-alive: %d clients primed on %q (%d items each) in %v", len(devs), cfg.KAFolder, res.FolderItems, time.Since(start).Round(time.Millisecond))

	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	resetPeak(cfg.PID)
	before := counter.Snapshot()
	cpu0 := procstat.ReadCPU(cfg.PID)
	lats := make([][]time.Duration, len(devs))
	var requests, changed, errs atomic.Int64
	start = time.Now()
	for i, d := range devs {
		wg.Go(func() {
			consecutive := 0
			for runCtx.Err() == nil {
				t0 := time.Now()
				resp, err := d.c.Sync(runCtx, client.SyncRequest{Collections: []client.SyncCollection{{
					SyncKey: d.key, CollectionID: d.coll, GetChanges: new(true), Options: &opts}}})
				lat := time.Since(t0)
				if runCtx.Err() != nil {
					return // cut off by the end of the test
				}
				if err == nil && !resp.Empty {
					if col := resp.Collection(d.coll); col == nil {
						err = errors.New("no collection in the response")
					} else if err = col.Err(); err == nil {
						if col.SyncKey != "" {
							d.key = col.SyncKey
						}
						if col.ItemCount() > 0 {
							changed.Add(1)
						}
					}
				}
				if err != nil {
					errs.Add(1)
					mu.Lock()
					res.LastErr = err
					mu.Unlock()
					if consecutive++; consecutive >= 5 {
						return
					}
					continue
				}
				consecutive = 0
				requests.Add(1)
				if len(lats[i]) < 1<<20 {
					lats[i] = append(lats[i], lat)
				}
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.CPU = procstat.ReadCPU(cfg.PID) - cpu0
	res.Mem = procstat.ReadMemory(cfg.PID)
	res.IMAP = counter.Snapshot().Sub(before)
	res.Requests, res.Changed, res.Errors = requests.Load(), changed.Load(), errs.Load()
	all := slices.Concat(lats...)
	slices.Sort(all)
	if len(all) > 0 {
		res.P50 = all[(len(all)-1)*50/100]
		res.P99 = all[(len(all)-1)*99/100]
	}
	if res.Requests == 0 && res.LastErr != nil {
		res.Err = res.LastErr
	}
	return res
}

// primeDevice provisions keep-alive device i, finds its folder and syncs
// it fully.
func primeDevice(ctx context.Context, cfg *config, i int, opts client.SyncOptions, wire *atomic.Int64) (*kaDevice, error) {
	c, err := easClient(cfg, cfg.kaUser(i), fmt.Sprintf("bench%ska%d", runID, i), wire)
	if err != nil {
		return nil, err
	}
	coll, err := findFolder(ctx, c, cfg.KAFolder)
	if err != nil {
		return nil, err
	}
	d := &kaDevice{c: c, coll: coll}
	d.key, err = c.SyncAll(ctx, coll, opts, func(r *client.SyncCollectionResponse) error {
		d.items += len(r.Adds)
		return nil
	})
	return d, err
}

// run populates if asked, then measures and prints the tables to out.
func run(ctx context.Context, cfg *config, counter *imapproxy.Proxy, out io.Writer, logf func(string, ...any)) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if cfg.Populate {
		if _, err := populate(ctx, cfg, cfg.User, "INBOX", cfg.Messages, logf); err != nil {
			return fmt.Errorf("populate INBOX: %w", err)
		}
		if cfg.Clients > 0 && (!strings.EqualFold(cfg.KAFolder, "INBOX") || cfg.KAUsers > 0) {
			if err := populateKA(ctx, cfg, logf); err != nil {
				return err
			}
		}
	}
	ic, err := dialIMAP(ctx, cfg.IMAPAddr, cfg.User, cfg.Password)
	if err != nil {
		return err
	}
	inboxCount, err := ic.messageCount("INBOX")
	ic.close()
	if err != nil {
		return err
	}
	if inboxCount != cfg.Messages {
		logf("INBOX holds %d messages, not %d (-populate appends the missing ones, never deletes)", inboxCount, cfg.Messages)
	}

	var results []syncResult
	logf("IMAP ceiling: UID FETCH 1:* BODY.PEEK[] of %d messages", inboxCount)
	results = append(results, imapCeiling(ctx, cfg))
	for _, w := range cfg.Windows {
		logf("EAS initial Sync, WindowSize %d", w)
		r := initialSync(ctx, cfg, counter, w)
		if r.Err == nil && r.Messages != inboxCount {
			r.Err = fmt.Errorf("synced %d messages of %d", r.Messages, inboxCount)
		}
		results = append(results, r)
		if r.Err != nil {
			logf("  %v", r.Err)
		}
	}
	var ka *kaResult
	if cfg.Clients > 0 && ctx.Err() == nil {
		logf("keep-alive: priming %d clients", cfg.Clients)
		r := keepAlive(ctx, cfg, counter, logf)
		ka = &r
	}
	writeReport(out, cfg, counter != nil, inboxCount, results, ka)

	var errs []error
	for _, r := range results {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("%s (window %s): %w", r.Name, r.Window, r.Err))
		}
	}
	if ka != nil && ka.Err != nil {
		errs = append(errs, fmt.Errorf("keep-alive: %w", ka.Err))
	}
	return errors.Join(errs...)
}

// populateKA fills the keep-alive folder of every keep-alive account.
func populateKA(ctx context.Context, cfg *config, logf func(string, ...any)) error {
	users := []string{cfg.User}
	if cfg.KAUsers > 0 {
		users = users[:0]
		for i := range cfg.KAUsers {
			users = append(users, cfg.kaUser(i))
		}
	}
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, u := range users {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			_, err := populate(ctx, cfg, u, cfg.KAFolder, cfg.KAMessages, logf)
			if err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("populate %s/%s: %w", u, cfg.KAFolder, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}
