package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/easd/easd/eas"
)

// guess is one login attempt and what came of it.
type guess struct {
	user, pw, xff string // xff: the X-Forwarded-For the trusted proxy adds; "" none
	via           string // "options", "provision" or "autodiscover"
}

// tally counts the answers to guesses: 401 and 200 ran a password check
// (one argon2id each with local users, of the user's hash or of a dummy
// for unknown users); 503 with Retry-After was refused by the throttle
// without one.
type tally struct {
	checked, throttled, ok int
	other                  []string
	retryAfter             int // largest Retry-After seen
}

// sendGuesses sends gs, workers at a time (as a botnet would, in
// parallel), and tallies the answers.
func sendGuesses(t *testing.T, base string, workers int, gs []guess) tally {
	t.Helper()
	hc := &http.Client{Timeout: 30 * time.Second}
	ad := `<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006"><Request><EMailAddress>x@example.com</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006</AcceptableResponseSchema></Request></Autodiscover>`
	var (
		mu  sync.Mutex
		res tally
		wg  sync.WaitGroup
	)
	next := make(chan guess)
	for range workers {
		wg.Go(func() {
			for g := range next {
				method, u, body := "OPTIONS", base+eas.Path+"?User="+g.user+"&DeviceId=BRUTE1&DeviceType=iPhone", ""
				switch g.via {
				case "provision":
					method, u = "POST", base+eas.Path+"?Cmd=Provision&User="+g.user+"&DeviceId=BRUTE1&DeviceType=iPhone"
				case "autodiscover":
					method, u, body = "POST", base+"/autodiscover/autodiscover.xml", ad
				}
				req, err := http.NewRequest(method, u, strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				req.SetBasicAuth(g.user, g.pw)
				req.Header.Set("MS-ASProtocolVersion", "14.1")
				if g.xff != "" {
					req.Header.Set("X-Forwarded-For", g.xff)
				}
				resp, err := hc.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
				mu.Lock()
				switch {
				case resp.StatusCode == 401:
					res.checked++
				case resp.StatusCode == 503 && ra > 0:
					res.throttled++
					if g.via != "autodiscover" { // Autodiscover always says 30
						res.retryAfter = max(res.retryAfter, ra)
					}
				case resp.StatusCode == 200:
					res.ok++
					res.checked++
				default:
					res.other = append(res.other, fmt.Sprintf("%s %s as %s: %d", method, g.via, g.user, resp.StatusCode))
				}
				mu.Unlock()
			}
		})
	}
	for _, g := range gs {
		next <- g
	}
	close(next)
	wg.Wait()
	for _, o := range res.other {
		t.Errorf("unexpected answer: %s", o)
	}
	return res
}

// TestBruteForce proves the login throttle on a real server with local
// users (argon2id): per user, per client address, behind a trusted proxy
// spreading guesses over many addresses, and over ActiveSync and
// Autodiscover alike. It reports how many guesses were checked.
func TestBruteForce(t *testing.T) {
	const (
		failures = 5
		window   = 8 * time.Second
		rightPW  = "bruno-right-pw"
	)
	bin := buildEasd(t)
	dir := t.TempDir()
	environ := map[string]string{"EASD_DATA_DIR": filepath.Join(dir, "data")}
	for _, u := range []string{"bruno", "carla", "dora"} {
		if r := easd(t, u+"-right-pw\n", environ, "user", "add", u); r.code != 0 {
			t.Fatal(r)
		}
	}
	cmd, addr, _, logOf := startServe(t, bin, dir, "EASD_DATA_DIR="+environ["EASD_DATA_DIR"],
		fmt.Sprintf("EASD_LOGIN_FAILURES=%d", failures), "EASD_LOGIN_WINDOW="+window.String(),
		"EASD_TRUSTED_PROXIES=127.0.0.1/32", "EASD_DOMAIN=example.com")
	base := "http://" + addr
	vias := []string{"options", "provision", "autodiscover"}
	start := time.Now()

	// 1. 200 wrong guesses for one user from one address, 8 in parallel,
	// through OPTIONS, commands and Autodiscover: only `failures` are
	// checked; the rest get 503 without a check.
	var gs []guess
	for i := range 200 {
		gs = append(gs, guess{user: "bruno", pw: fmt.Sprintf("guess-%03d", i), via: vias[i%3]})
	}
	one := sendGuesses(t, base, 8, gs)
	// 2. The right password is refused while locked (not even checked).
	locked := sendGuesses(t, base, 1, []guess{{user: "bruno", pw: rightPW}})
	// 3. The same user guessed through the trusted proxy from 100 other
	// addresses: the user's own budget is spent, nothing more is checked.
	gs = nil
	for i := range 100 {
		gs = append(gs, guess{user: "bruno", pw: fmt.Sprintf("spread-%03d", i), xff: fmt.Sprintf("10.1.%d.%d", i/200, i%200+1), via: vias[i%3]})
	}
	spread := sendGuesses(t, base, 8, gs)
	// 4. A fresh user guessed from 100 fresh addresses: bounded by that
	// user's key alone.
	gs = nil
	for i := range 100 {
		gs = append(gs, guess{user: "carla", pw: fmt.Sprintf("spread-%03d", i), xff: fmt.Sprintf("10.2.0.%d", i+1), via: vias[i%3]})
	}
	spreadFresh := sendGuesses(t, base, 8, gs)
	// 5. One address guessing 200 different (unknown) users: bounded by
	// the address's key.
	gs = nil
	for i := range 200 {
		gs = append(gs, guess{user: fmt.Sprintf("nobody%03d", i), pw: "x", xff: "198.51.100.9", via: vias[i%3]})
	}
	perAddr := sendGuesses(t, base, 8, gs)
	// 6. Another user, from another address, is unaffected; from the
	// locked address it is refused (the address's budget is spent).
	other := sendGuesses(t, base, 1, []guess{{user: "dora", pw: "dora-right-pw", xff: "192.0.2.77"}})
	sameAddr := sendGuesses(t, base, 1, []guess{{user: "dora", pw: "dora-right-pw"}})
	elapsed := time.Since(start)

	// All of the above ran within one window; else a new window lets a
	// new budget of guesses through, and the counts below are bounds
	// only for each window.
	windows := 1 + int(elapsed/window)
	t.Logf("phases 1-6 took %v (window %v: %d window(s))", elapsed.Round(time.Millisecond), window, windows)
	if one.checked > failures*windows || one.checked < failures || one.ok != 0 {
		t.Errorf("200 guesses of one user from one address: %d checked, %d accepted; want %d checked (per window), none accepted", one.checked, one.ok, failures)
	}
	if locked.ok != 0 || locked.throttled != 1 {
		t.Errorf("right password while locked: %+v; want refused with 503 Retry-After", locked)
	}
	if spread.checked > failures*(windows-1) {
		t.Errorf("100 guesses of the locked user from 100 addresses: %d checked; want none in the same window", spread.checked)
	}
	if spreadFresh.checked > failures*windows || spreadFresh.checked == 0 {
		t.Errorf("100 guesses of a fresh user from 100 addresses: %d checked; want 1 to %d", spreadFresh.checked, failures)
	}
	if perAddr.checked > failures*windows || perAddr.checked == 0 {
		t.Errorf("200 users guessed from one address: %d checked; want 1 to %d", perAddr.checked, failures)
	}
	if other.ok != 1 {
		t.Errorf("another user from another address: %+v; want accepted", other)
	}
	if sameAddr.ok != 0 || sameAddr.throttled != 1 {
		t.Errorf("another user from the locked address: %+v; want refused with 503 Retry-After", sameAddr)
	}

	// 7. Once the window has passed, the right password works. The wait
	// is the server's own Retry-After.
	wait := time.Duration(max(one.retryAfter, locked.retryAfter)) * time.Second
	if wait <= 0 || wait > window+time.Second {
		t.Errorf("Retry-After %v; want within the %v window", wait, window)
		wait = window
	}
	time.Sleep(time.Until(start.Add(wait)) + 100*time.Millisecond)
	after := sendGuesses(t, base, 1, []guess{{user: "bruno", pw: rightPW}})
	if after.ok != 1 {
		// The lock ends at the window's end measured from the first
		// failure; allow for the first request's start.
		time.Sleep(time.Until(start.Add(window + time.Second)))
		after = sendGuesses(t, base, 1, []guess{{user: "bruno", pw: rightPW}})
	}
	if after.ok != 1 {
		t.Errorf("right password after the window: %+v; want accepted", after)
	}

	total := one.checked + locked.checked + spread.checked + spreadFresh.checked + perAddr.checked + other.checked + sameAddr.checked + after.checked
	sent := 200 + 1 + 100 + 100 + 200 + 1 + 1 + 1
	t.Logf("guesses checked (argon2id run) / sent: one user, one address: %d/200; right password while locked: %d/1; "+
		"locked user from 100 addresses: %d/100; fresh user from 100 addresses: %d/100; 200 users from one address: %d/200; "+
		"total %d argon2id checks for %d requests (--login-failures %d, --login-window %v)",
		one.checked, locked.checked, spread.checked, spreadFresh.checked, perAddr.checked, total, sent, failures, window)
	cmd.Process.Signal(syscall.SIGTERM)
	if logs := logOf(); strings.Contains(logs, rightPW) || strings.Contains(logs, "guess-0") {
		t.Error("a password is in the log")
	}
}
