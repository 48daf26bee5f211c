package eas_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/easd/easd/eas/client"
	"github.com/easd/easd/wbxml"
)

// The phones of TestRestartServicesUnderLoad and what they saw.

// rsDevice is one phone: it runs on its own goroutine once set up; only
// the held items are shared (mu).
type rsDevice struct {
	e       *rsEnv
	user    string
	id      string
	kind    rsKind
	version string
	inst    int // the instance it talks to
	writer  bool
	c       *client.Client
	fkey    string
	inbox   *rsColl
	// contacts is nil for a device that does not sync them.
	contacts *rsColl
	adds     chan string // writer: contacts to add
	initial  bool        // SyncKey 0 is expected (setup)

	mu      sync.Mutex
	pending map[string]string // ClientId -> FileAs of an Add sent
	wakes   int               // Ping answered 2, parked Sync answered with items
}

// rsColl is one collection as a device holds it.
type rsColl struct {
	id, class string
	key       string
	held      map[string]string // ServerId -> subject or FileAs
	dups      int               // Adds of a ServerId already held
}

func (e *rsEnv) newDevice(user string, i int) *rsDevice {
	m := restartMix[i%len(restartMix)]
	d := &rsDevice{e: e, user: user, id: fmt.Sprintf("RS%s%02d", strings.ToUpper(user), i), kind: m.kind, version: m.version,
		inst:   i % 2,
		writer: i == 0, adds: make(chan string, 8), pending: map[string]string{}}
	inst := e.inst[d.inst]
	n := len(e.devs)
	hc := &http.Client{Transport: forwardedFor{inst.tr, fmt.Sprintf("10.9.%d.%d", n/200, n%200+1)}}
	c, err := client.New(client.Config{URL: inst.srv.URL, User: user, Password: user + "-pw", DeviceID: d.id,
		DeviceType: map[string]string{"12.1": "Android", "14.0": "Outlook", "14.1": "iPhone"}[m.version], Version: m.version, HTTPClient: hc})
	if err != nil {
		e.t.Fatal(err)
	}
	d.c = c
	d.inbox = &rsColl{class: "Email", held: map[string]string{}}
	if m.contacts {
		d.contacts = &rsColl{class: "Contacts", held: map[string]string{}}
	}
	return d
}

// forwardedFor sends requests with X-Forwarded-For: addr, as a reverse
// proxy in front of easd does for a phone at addr.
type forwardedFor struct {
	rt   http.RoundTripper
	addr string
}

func (f forwardedFor) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", f.addr)
	return f.rt.RoundTrip(r)
}

func (k rsKind) String() string { return [...]string{"poll", "ping", "wait"}[k] }

func (d *rsDevice) colls() []*rsColl {
	if d.contacts == nil {
		return []*rsColl{d.inbox}
	}
	return []*rsColl{d.inbox, d.contacts}
}

func (d *rsDevice) woken() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.wakes
}

// name is how failures name the device.
func (d *rsDevice) name() string {
	return fmt.Sprintf("%s/%s (%s %v, instance %d)", d.user, d.id, d.version, d.kind, d.inst)
}

func (d *rsDevice) fail(format string, a ...any) {
	d.e.stats.violate(d.name() + ": " + fmt.Sprintf(format, a...))
}

// do runs one request as a phone does: after a connection error, an HTTP
// 5xx or status 110/111 it sends the same request again after a short
// backoff, at most restartRetries times. long requests (Ping, parked
// Sync) are not counted against restartInFlight.
func (d *rsDevice) do(ctx context.Context, long bool, cmd string, f func(context.Context) error) error {
	backoff := restartBackoffMin
	for attempt := 1; ; attempt++ {
		if !long {
			select {
			case d.e.sem <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		err := f(ctx)
		if !long {
			<-d.e.sem
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !d.e.stats.record(d.name(), cmd, err) {
			return err
		}
		if attempt == restartRetries {
			d.fail("%s gave up after %d attempts: %v", cmd, attempt, err)
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff/2 + rand.N(backoff/2+1)):
		}
		backoff = min(2*backoff, restartBackoffMax)
	}
}

// setup provisions (the client does on the server's demand), runs
// FolderSync and the initial Sync of every collection.
func (d *rsDevice) setup(ctx context.Context) error {
	var fc *client.FolderChanges
	if err := d.do(ctx, false, "FolderSync", func(ctx context.Context) (err error) { fc, err = d.c.FolderSync(ctx, "0"); return err }); err != nil {
		return fmt.Errorf("%s/%s FolderSync: %w", d.user, d.id, err)
	}
	d.fkey = fc.SyncKey
	for _, f := range fc.Added {
		switch {
		case f.Type == client.FolderInbox:
			d.inbox.id = f.ServerID
		case f.Type == client.FolderContacts && d.contacts != nil:
			d.contacts.id = f.ServerID
		}
	}
	for _, c := range d.colls() {
		if c.id == "" {
			return fmt.Errorf("%s/%s: no %s folder in %+v", d.user, d.id, c.class, fc.Added)
		}
		c.key = "0"
	}
	d.initial = true
	defer func() { d.initial = false }()
	_, err := d.sync(ctx, false, nil)
	return err
}

// run is the phone's life until ctx ends.
func (d *rsDevice) run(ctx context.Context) {
	for ctx.Err() == nil {
		switch d.kind {
		case kindPoll:
			var add []string
			select {
			case <-ctx.Done():
				return
			case name := <-d.adds:
				add = []string{name}
			case <-time.After(restartPoll/2 + rand.N(restartPoll)):
			}
			d.sync(ctx, false, add)
		case kindWait:
			if got, err := d.sync(ctx, true, nil); err == nil && got {
				d.mu.Lock()
				d.wakes++
				d.mu.Unlock()
				d.e.stats.push()
			}
		case kindPing:
			d.ping(ctx)
		}
	}
}

// ping parks a Ping of the device's collections and syncs when it says
// something changed.
func (d *rsDevice) ping(ctx context.Context) {
	req := client.PingRequest{HeartbeatInterval: restartHeartbeat}
	for _, c := range d.colls() {
		req.Folders = append(req.Folders, client.PingFolder{ID: c.id, Class: c.class})
	}
	var r *client.PingResponse
	err := d.do(ctx, true, "Ping", func(ctx context.Context) (err error) { r, err = d.c.Ping(ctx, req); return err })
	switch {
	case ctx.Err() != nil:
	case err != nil && (r == nil || r.Status != client.PingFolderSyncRequired):
		d.fail("Ping: %v", err)
		time.Sleep(restartBackoffMax)
	case r.Status == client.PingChanges:
		d.mu.Lock()
		d.wakes++
		d.mu.Unlock()
		d.e.stats.push()
		d.sync(ctx, false, nil)
	case r.Status == client.PingFolderSyncRequired:
		// The hierarchy did not change: the fault must not say so.
		d.fail("Ping status 7 (FolderSync required)")
		d.folderSync(ctx)
	}
}

// folderSync catches up with the hierarchy from the device's key.
func (d *rsDevice) folderSync(ctx context.Context) {
	var fc *client.FolderChanges
	err := d.do(ctx, false, "FolderSync", func(ctx context.Context) (err error) { fc, err = d.c.FolderSync(ctx, d.fkey); return err })
	if err != nil {
		if ctx.Err() == nil {
			d.fail("FolderSync %s: %v", d.fkey, err)
		}
		return
	}
	d.fkey = fc.SyncKey
}

// sync sends Sync for the device's collections (parked when hold), with
// adds as new contacts, follows MoreAvailable, and takes in the answers.
// got reports whether items arrived.
func (d *rsDevice) sync(ctx context.Context, hold bool, adds []string) (got bool, err error) {
	for {
		req := client.SyncRequest{}
		if hold && d.version == "12.1" {
			req.Wait = restartHeartbeat / 60
		} else if hold {
			req.HeartbeatInterval = restartHeartbeat
		}
		for _, c := range d.colls() {
			sc := client.SyncCollection{SyncKey: c.key, CollectionID: c.id, WindowSize: 50, Options: &client.SyncOptions{Class: c.class}}
			if c.key != "0" {
				sc.GetChanges = new(true)
			} else if !d.initial {
				d.fail("SyncKey 0 for %s after the initial sync", c.class)
			}
			if c == d.contacts {
				for _, name := range adds {
					cid := fmt.Sprintf("c%d", rand.Uint32())
					d.mu.Lock()
					d.pending[cid] = name
					d.mu.Unlock()
					sc.Adds = append(sc.Adds, client.SyncAdd{ClientID: cid, ApplicationData: wbxml.E(wbxml.AirSyncApplicationData,
						wbxml.T(wbxml.ContactsFileAs, name), wbxml.T(wbxml.ContactsFirstName, name), wbxml.T(wbxml.ContactsLastName, d.user))})
				}
			}
			req.Collections = append(req.Collections, sc)
		}
		adds = nil
		var resp *client.SyncResponse
		err := d.do(ctx, hold, "Sync", func(ctx context.Context) (err error) { resp, err = d.c.Sync(ctx, req); return err })
		if err != nil {
			if ctx.Err() == nil {
				d.fail("Sync: %v", err)
			}
			return got, err
		}
		more := false
		if !resp.Empty {
			for i := range resp.Collections {
				g, m := d.take(&resp.Collections[i])
				got, more = got || g, more || m
			}
		}
		if !more {
			return got, nil
		}
		hold = false
	}
}

// take applies one collection of a Sync response; more reports that the
// collection wants another Sync at once.
func (d *rsDevice) take(cr *client.SyncCollectionResponse) (got, more bool) {
	var c *rsColl
	for _, x := range d.colls() {
		if x.id == cr.CollectionID {
			c = x
		}
	}
	if c == nil {
		d.fail("Sync answered for collection %q it did not ask for", cr.CollectionID)
		return false, false
	}
	d.e.stats.status(fmt.Sprintf("Sync %s status %d", c.class, cr.Status))
	switch cr.Status {
	case 1:
	case 3:
		// The device must start over (MS-ASCMD 2.2.3.177.17): a full
		// resync. Do it, so that what is lost or doubled shows at the end.
		d.fail("Sync %s status 3 with key %s: full resync", c.class, c.key)
		d.mu.Lock()
		clear(c.held)
		d.mu.Unlock()
		c.key = "0"
		d.initial = true
		return false, true
	case 12:
		d.fail("Sync %s status 12 (hierarchy changed)", c.class)
		return false, false
	default:
		d.fail("Sync %s status %d", c.class, cr.Status)
		return false, false
	}
	if cr.SyncKey == "" || cr.SyncKey == "0" {
		d.fail("Sync %s answered SyncKey %q", c.class, cr.SyncKey)
		return false, false
	}
	first := c.key == "0"
	c.key = cr.SyncKey
	if first {
		d.initial = false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range cr.Adds {
		name := a.ApplicationData.ChildText(wbxml.EmailSubject)
		if c == d.contacts {
			name = a.ApplicationData.ChildText(wbxml.ContactsFileAs)
		}
		if _, ok := c.held[a.ServerID]; ok {
			c.dups++
		}
		c.held[a.ServerID] = name
		got = true
	}
	for _, id := range slices.Concat(cr.Deletes, cr.SoftDeletes) {
		delete(c.held, id)
	}
	for _, r := range cr.Responses {
		if r.Command != "Add" {
			continue
		}
		name, ok := d.pending[r.ClientID]
		if !ok || r.Status != 1 {
			d.fail("Sync Add response %+v for a ClientId sent: %v", r, ok)
			continue
		}
		delete(d.pending, r.ClientID)
		if _, ok := c.held[r.ServerID]; ok {
			c.dups++
		}
		c.held[r.ServerID] = name
	}
	return got, first || cr.MoreAvailable
}

// expected returns what the device's user holds now.
func (d *rsDevice) expected() (mail, contacts []string) {
	d.e.mu.Lock()
	defer d.e.mu.Unlock()
	return slices.Clone(d.e.mail[d.user]), slices.Clone(d.e.contacts[d.user])
}

// missing lists what the device lacks of its user's messages, or of its
// contacts when contacts is set.
func (d *rsDevice) missing(contacts bool) []string {
	mail, cs := d.expected()
	c, want := d.inbox, mail
	if contacts {
		if d.contacts == nil {
			return nil
		}
		c, want = d.contacts, cs
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	have := map[string]bool{}
	for _, v := range c.held {
		have[v] = true
	}
	var miss []string
	for _, w := range want {
		if !have[w] {
			miss = append(miss, w)
		}
	}
	return miss
}

// tally compares what the device holds with its user's items: counted,
// lost, duplicated (an item twice, or one never created), and a
// description of the differences.
func (d *rsDevice) tally() (items, lost, dups int, detail string) {
	mail, cs := d.expected()
	d.mu.Lock()
	defer d.mu.Unlock()
	var diffs []string
	for _, x := range []struct {
		c    *rsColl
		want []string
	}{{d.inbox, mail}, {d.contacts, cs}} {
		if x.c == nil {
			continue
		}
		count := map[string]int{}
		for _, v := range x.c.held {
			count[v]++
		}
		dups += x.c.dups
		for _, w := range x.want {
			items++
			if count[w] == 0 {
				lost++
				diffs = append(diffs, fmt.Sprintf("%s lost %q", x.c.class, w))
			}
		}
		for v, n := range count {
			switch {
			case !slices.Contains(x.want, v):
				dups += n
				diffs = append(diffs, fmt.Sprintf("%s has %q, never created, %d times", x.c.class, v, n))
			case n > 1:
				dups += n - 1
				diffs = append(diffs, fmt.Sprintf("%s has %q %d times", x.c.class, v, n))
			}
		}
		if x.c.dups > 0 {
			diffs = append(diffs, fmt.Sprintf("%s: %d Adds of a ServerId held", x.c.class, x.c.dups))
		}
	}
	return items, lost, dups, strings.Join(diffs, "; ")
}

// rsStats counts what the devices saw, per phase.
type rsStats struct {
	mu         sync.Mutex
	phases     []*rsPhase
	cur        *rsPhase
	statuses   map[string]int // every status and error seen, all phases
	violations []string
}

// rsPhase is one phase's counts.
type rsPhase struct {
	name                                   string
	start                                  time.Time
	took                                   time.Duration
	requests, retries, pushes              int
	http503, http500, status110, status111 int
	transport                              int
}

func newRSStats() *rsStats { return &rsStats{statuses: map[string]int{}} }

func (s *rsStats) begin(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = &rsPhase{name: name, start: time.Now()}
	s.phases = append(s.phases, s.cur)
}

func (s *rsStats) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur.took = time.Since(s.cur.start)
}

func (s *rsStats) status(what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.statuses[what]++
}

func (s *rsStats) push() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur.pushes++
}

func (s *rsStats) violate(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.violations = append(s.violations, s.cur.name+": "+v)
}

func (s *rsStats) violationList() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.violations) > 30 {
		return append(slices.Clone(s.violations[:30]), fmt.Sprintf("... and %d more", len(s.violations)-30))
	}
	return slices.Clone(s.violations)
}

// record counts one attempt of cmd and reports whether a phone would
// send it again: after a connection error, HTTP 5xx, or status 110 or
// 111 (MS-ASCMD 2.2.2). Status 110 and HTTP 500 say the device should
// NOT retry: they are violations, the fault being temporary.
func (s *rsStats) record(dev, cmd string, err error) (retry bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.cur
	p.requests++
	var he *client.HTTPError
	var se *client.StatusError
	switch {
	case err == nil:
		s.statuses[cmd+" ok"]++
		return false
	case errors.As(err, &he):
		what := fmt.Sprintf("%s HTTP %d", cmd, he.Status)
		if ra := he.Header.Get("Retry-After"); ra != "" {
			what += " (Retry-After " + ra + ")"
		}
		s.statuses[what]++
		switch {
		case he.Status == http.StatusServiceUnavailable:
			p.http503++
		case he.Status == http.StatusInternalServerError:
			p.http500++
			s.violations = append(s.violations, fmt.Sprintf("%s: %s: %s answered HTTP 500 (12.1's status 110: do not retry)", p.name, dev, cmd))
		case he.Status < 500:
			return false
		}
	case errors.As(err, &se) && se.Element == "":
		s.statuses[fmt.Sprintf("%s status %d", cmd, se.Status)]++
		switch se.Status {
		case 110:
			p.status110++
			s.violations = append(s.violations, fmt.Sprintf("%s: %s: %s answered status 110 (ServerError: the device SHOULD NOT retry)", p.name, dev, cmd))
		case 111:
			p.status111++
		default:
			return false
		}
	default:
		s.statuses[cmd+" transport error"]++
		p.transport++
	}
	p.retries++
	return true
}

func (s *rsStats) statusList() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var l []string
	for k, n := range s.statuses {
		l = append(l, fmt.Sprintf("%s: %d", k, n))
	}
	slices.Sort(l)
	return strings.Join(l, ", ")
}

// report is the table of the phases and every status seen.
func (s *rsStats) report() string {
	var b strings.Builder
	s.mu.Lock()
	fmt.Fprintf(&b, "%-46s %8s %8s %7s %6s %6s %6s %6s %9s %6s\n", "phase", "time", "requests", "retries", "503", "500", "st110", "st111", "transport", "pushes")
	for _, p := range s.phases {
		fmt.Fprintf(&b, "%-46s %8s %8d %7d %6d %6d %6d %6d %9d %6d\n", p.name, p.took.Round(100*time.Millisecond), p.requests, p.retries,
			p.http503, p.http500, p.status110, p.status111, p.transport, p.pushes)
	}
	s.mu.Unlock()
	b.WriteString("statuses seen: " + s.statusList())
	return b.String()
}
