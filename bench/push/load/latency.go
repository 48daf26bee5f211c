package main

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/easd/easd/bench/push"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// imapConn is an IMAP connection straight to the server, logged in as
// one user; one command at a time.
type imapConn struct {
	mu   sync.Mutex
	c    *imapclient.Client
	stop func() bool
}

// dialIMAP connects to addr without TLS (loopback only) and logs in; the
// connection closes when ctx ends.
func dialIMAP(ctx context.Context, addr, user, password string) (*imapConn, error) {
	c, err := imapclient.DialInsecure(addr, &imapclient.Options{Dialer: &net.Dialer{Timeout: 10 * time.Second}})
	if err != nil {
		return nil, fmt.Errorf("IMAP %s: %w", addr, err)
	}
	ic := &imapConn{c: c, stop: context.AfterFunc(ctx, func() { c.Close() })}
	if err := c.Login(user, password).Wait(); err != nil {
		ic.close()
		return nil, fmt.Errorf("IMAP LOGIN %s: %w", user, err)
	}
	return ic, nil
}

// close logs out (briefly) and closes the connection.
func (ic *imapConn) close() {
	ic.stop()
	done := make(chan struct{})
	go func() {
		_ = ic.c.Logout().Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	ic.c.Close()
}

// idleWatch is a plain IMAP client IDLE-ing on one user's INBOX, as the
// ceiling of push latency: it notes when each EXISTS arrives.
type idleWatch struct {
	ic     *imapConn
	idle   *imapclient.IdleCommand
	mu     sync.Mutex
	exists []time.Time
}

// startIdle logs in as user, examines the INBOX and enters IDLE.
func startIdle(ctx context.Context, addr, user, password string) (*idleWatch, error) {
	w := &idleWatch{}
	c, err := imapclient.DialInsecure(addr, &imapclient.Options{Dialer: &net.Dialer{Timeout: 10 * time.Second},
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(data *imapclient.UnilateralDataMailbox) {
				if data.NumMessages != nil {
					now := time.Now()
					w.mu.Lock()
					w.exists = append(w.exists, now)
					w.mu.Unlock()
				}
			},
		}})
	if err != nil {
		return nil, fmt.Errorf("IMAP %s: %w", addr, err)
	}
	w.ic = &imapConn{c: c, stop: context.AfterFunc(ctx, func() { c.Close() })}
	if err := c.Login(user, password).Wait(); err != nil {
		w.ic.close()
		return nil, fmt.Errorf("IMAP LOGIN %s: %w", user, err)
	}
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		w.ic.close()
		return nil, fmt.Errorf("IMAP EXAMINE INBOX of %s: %w", user, err)
	}
	if w.idle, err = c.Idle(); err != nil {
		w.ic.close()
		return nil, fmt.Errorf("IMAP IDLE of %s: %w", user, err)
	}
	return w, nil
}

// close ends IDLE and the connection.
func (w *idleWatch) close() {
	_ = w.idle.Close()
	w.ic.close()
}

// firstAfter returns the first EXISTS that arrived at or after t.
func (w *idleWatch) firstAfter(t time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.exists {
		if !e.Before(t) {
			return e, true
		}
	}
	return time.Time{}, false
}

// ceilingUsers is how many users get a plain IDLE client as well.
const ceilingUsers = 5

// appendRec is one APPEND of the latency test.
type appendRec struct {
	user     int
	sent, ok time.Time
	err      error
}

// message returns the latency test's message k to user.
func message(runID string, k int, user string) []byte {
	return fmt.Appendf(nil, "From: Push Bench <pushbench@bench.example>\r\n"+
		"To: <%s@bench.example>\r\n"+
		"Subject: %s%d\r\n"+
		"Date: %s\r\n"+
		"Message-ID: <pushbench.%s.%d@bench.example>\r\n"+
		"MIME-Version: 1.0\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\n"+
		"Message %d of the push benchmark.\r\n",
		user, subjectPrefix(runID), k, time.Now().Format(time.RFC1123Z), runID, k, k)
}

// appendOne APPENDs message k to the INBOX of ic's user and notes when
// it was sent and when its tagged OK came.
func (ic *imapConn) appendOne(runID string, k, u int, user string) appendRec {
	raw := message(runID, k, user)
	ic.mu.Lock()
	defer ic.mu.Unlock()
	r := appendRec{user: u, sent: time.Now()}
	cmd := ic.c.Append("INBOX", int64(len(raw)), nil)
	if _, err := cmd.Write(raw); err != nil {
		r.err = err
		return r
	}
	if err := cmd.Close(); err != nil {
		r.err = err
		return r
	}
	_, r.err = cmd.Wait()
	r.ok = time.Now()
	return r
}

// latency runs the latency test: cfg.Appends messages at cfg.Rate per
// second, message k to user k mod min(Appends, Users), each straight to
// the IMAP server; every ready device of that user should be woken and
// take the message with its next Sync.
func (g *gen) latency(ctx context.Context) (*push.LatencyResult, error) {
	cfg := g.cfg
	users := min(cfg.Appends, cfg.Users)
	conns := make([]*imapConn, users)
	defer func() {
		for _, ic := range conns {
			if ic != nil {
				ic.close()
			}
		}
	}()
	g.logf("latency: logging in %d IMAP connections to %s", users, cfg.IMAPAddr)
	var wg sync.WaitGroup
	errs := make([]error, users)
	sem := make(chan struct{}, 8)
	for u := range users {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			conns[u], errs[u] = dialIMAP(ctx, cfg.IMAPAddr, cfg.user(u), cfg.Password)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	watches := make([]*idleWatch, min(users, ceilingUsers))
	for u := range watches {
		w, err := startIdle(ctx, cfg.IMAPAddr, cfg.user(u), cfg.Password)
		if err != nil {
			return nil, err
		}
		watches[u] = w
		defer w.close()
	}
	if err := g.checkpoint(ctx, push.Event{Checkpoint: push.CheckpointLatency}); err != nil {
		return nil, err
	}

	g.setPhase(phaseLatency)
	g.logf("latency: %d APPENDs at %.1f/s to %d users", cfg.Appends, cfg.Rate, users)
	recs := make([]appendRec, cfg.Appends)
	start := time.Now()
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	inflight := make(chan struct{}, 64)
	for k := range cfg.Appends {
		if !sleepCtx(ctx, time.Until(start.Add(time.Duration(k)*interval))) {
			break
		}
		select {
		case inflight <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		u := k % users
		wg.Go(func() {
			defer func() { <-inflight }()
			recs[k] = conns[u].appendOne(cfg.RunID, k, u, cfg.user(u))
		})
		if (k+1)%max(cfg.Appends/10, 1) == 0 {
			g.logf("latency: %d of %d APPENDs sent, %d pushes taken", k+1, cfg.Appends, g.deliveredCount())
		}
	}
	wg.Wait()

	// Wait for the pushes of the last APPENDs.
	expected := 0
	for _, r := range recs {
		if !r.ok.IsZero() && r.err == nil {
			expected += g.readyDevices(r.user)
		}
	}
	deadline := time.Now().Add(cfg.Grace)
	for time.Now().Before(deadline) && g.deliveredCount() < expected && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	end := time.Now()
	g.setPhase(phaseBetween)
	g.logf("latency: %d of %d pushes taken in %.1f s", g.deliveredCount(), expected, end.Sub(start).Seconds())
	res := g.latencyResult(recs, users, end.Sub(start))
	var ceiling []float64
	for _, r := range recs {
		if r.user >= len(watches) || r.ok.IsZero() || r.err != nil {
			continue
		}
		if e, ok := watches[r.user].firstAfter(r.sent); ok {
			ceiling = append(ceiling, ms(e.Sub(r.ok)))
		} else {
			res.CeilingMissed++
		}
	}
	res.CeilingUsers, res.CeilingMs = len(watches), push.Summarize(ceiling)
	return res, nil
}

// readyDevices counts the devices of user u that were set up.
func (g *gen) readyDevices(u int) int {
	n := 0
	for j := range g.cfg.PerUser {
		if d := g.devs[u*g.cfg.PerUser+j]; d != nil && d.ready {
			n++
		}
	}
	return n
}

func (g *gen) deliveredCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.deliveries)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// latencyResult matches every APPEND with the deliveries to its user's
// devices.
func (g *gen) latencyResult(recs []appendRec, users int, elapsed time.Duration) *push.LatencyResult {
	cfg := g.cfg
	res := &push.LatencyResult{Users: users, DevicesPerUser: cfg.PerUser, Rate: cfg.Rate, Seconds: elapsed.Seconds()}
	g.mu.Lock()
	defer g.mu.Unlock()
	var appendMs, lat, body, syn []float64
	for k, r := range recs {
		if r.sent.IsZero() {
			continue // not sent: the run was cut short
		}
		res.Appends++
		if r.err != nil {
			res.AppendErrors.Add(fmt.Sprintf("#%d to %s: %v", k, cfg.user(r.user), r.err))
			continue
		}
		appendMs = append(appendMs, ms(r.ok.Sub(r.sent)))
		for j := range cfg.PerUser {
			di := r.user*cfg.PerUser + j
			if d := g.devs[di]; d == nil || !d.ready {
				continue
			}
			res.Expected++
			dl, ok := g.deliveries[[2]int{k, di}]
			if !ok {
				res.Missed++
				if len(res.MissedExamples) < 5 {
					res.MissedExamples = append(res.MissedExamples, fmt.Sprintf("#%d to %s: device %s", k, cfg.user(r.user), g.devs[di].id))
				}
				continue
			}
			res.Pushed++
			if dl.firstByte.Before(r.sent) {
				res.Coalesced++
				continue
			}
			l := dl.firstByte.Sub(r.ok)
			if l < 0 {
				res.BeforeOK++
			}
			lat = append(lat, ms(l))
			body = append(body, ms(dl.answered.Sub(r.ok)))
			syn = append(syn, ms(dl.synced.Sub(r.ok)))
		}
	}
	res.AppendMs, res.LatencyMs, res.BodyMs, res.SyncMs = push.Summarize(appendMs), push.Summarize(lat), push.Summarize(body), push.Summarize(syn)
	res.Rate = cfg.Rate
	res.Answers = g.answers[phaseLatency]
	res.Status2 = g.status2[phaseLatency]
	res.Phantom = g.phantom[phaseLatency]
	res.WrongFolder = g.wrongFolder[phaseLatency]
	res.Duplicates = g.duplicates
	res.Errors = g.phaseProblems(phaseLatency)
	return res
}
