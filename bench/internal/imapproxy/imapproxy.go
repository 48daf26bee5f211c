// Package imapproxy is the counting IMAP proxy of the benchmarks
// (bench/mailsync, bench/push): it forwards TCP connections to an IMAP
// server and counts the commands its clients send, by name, the
// connections open, by user (from LOGIN or AUTHENTICATE PLAIN) and by the
// last command sent (a connection waiting in IDLE shows "IDLE"), and, if
// asked, the bytes each way.
package imapproxy

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Proxy.
type Options struct {
	// CountBytes counts the bytes each way (Counts.Up, Counts.Down). It
	// copies every byte through the proxy's buffers, where the kernel
	// could otherwise splice the server's side.
	CountBytes bool
	// ReadBuffer is the size of the buffer that reads a client's side of
	// a connection; 16 KiB when 0.
	ReadBuffer int
}

// Proxy forwards TCP connections to an IMAP server and counts what its
// clients send.
type Proxy struct {
	ln       net.Listener
	upstream string
	opts     Options

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	open  map[*connState]struct{}
	done  bool

	cmu    sync.Mutex
	byName map[string]int64
	total  int64
	// opaque counts connections that switched to TLS or compression,
	// whose later commands cannot be counted.
	opaque   int64
	opened   atomic.Int64
	up, down atomic.Int64
}

// connState is what the proxy knows of one forwarded connection.
type connState struct {
	mu   sync.Mutex
	user string
	last string
}

// Start listens on listen (a loopback host:port, port 0 for any) and
// forwards to upstream.
func Start(listen, upstream string, o Options) (*Proxy, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	p := newProxy(upstream, o)
	p.ln = ln
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func newProxy(upstream string, o Options) *Proxy {
	if o.ReadBuffer <= 0 {
		o.ReadBuffer = 16 << 10
	}
	return &Proxy{upstream: upstream, opts: o, conns: map[net.Conn]struct{}{},
		open: map[*connState]struct{}{}, byName: map[string]int64{}}
}

// Addr returns the address the proxy listens on.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops the proxy and closes every forwarded connection.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	p.done = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// Counts is a snapshot of the proxy's counters.
type Counts struct {
	// Total is the number of commands; ByName splits it by command name
	// ("STATUS", "UID FETCH" …).
	Total  int64
	ByName map[string]int64
	// Opaque counts connections whose commands could not be read after
	// STARTTLS or COMPRESS.
	Opaque int64
	// Opened counts the connections forwarded.
	Opened int64
	// Up and Down are the bytes sent to and received from the server,
	// with Options.CountBytes (else 0).
	Up, Down int64
}

// Snapshot returns the counters now; zero Counts for a nil p (no proxy).
func (p *Proxy) Snapshot() Counts {
	if p == nil {
		return Counts{}
	}
	p.cmu.Lock()
	defer p.cmu.Unlock()
	return Counts{Total: p.total, ByName: maps.Clone(p.byName), Opaque: p.opaque, Opened: p.opened.Load(),
		Up: p.up.Load(), Down: p.down.Load()}
}

// Sub returns what was counted between b and a.
func (a Counts) Sub(b Counts) Counts {
	d := Counts{Total: a.Total - b.Total, Opaque: a.Opaque - b.Opaque, Opened: a.Opened - b.Opened,
		Up: a.Up - b.Up, Down: a.Down - b.Down, ByName: map[string]int64{}}
	for k, v := range a.ByName {
		if n := v - b.ByName[k]; n > 0 {
			d.ByName[k] = n
		}
	}
	return d
}

// Top renders the n most frequent commands, e.g. "UID FETCH 120,
// SELECT 3, …"; "none" when there are none.
func (a Counts) Top(n int) string {
	names := slices.Collect(maps.Keys(a.ByName))
	slices.SortFunc(names, func(x, y string) int {
		if a.ByName[x] != a.ByName[y] {
			return int(a.ByName[y] - a.ByName[x])
		}
		return strings.Compare(x, y)
	})
	var b strings.Builder
	for i, name := range names {
		if i == n {
			b.WriteString(", …")
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(name + " " + strconv.FormatInt(a.ByName[name], 10))
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

// Conns describes the connections open at one moment.
type Conns struct {
	// Open is the number of connections open; Users the distinct users
	// logged in on them, MaxPerUser the most connections of one user.
	Open, Users, MaxPerUser int
	// NoLogin counts connections not (yet) logged in.
	NoLogin int
	// ByLast counts the connections by the last command sent.
	ByLast map[string]int
}

// OpenConns describes the connections open now.
func (p *Proxy) OpenConns() Conns {
	p.mu.Lock()
	states := slices.Collect(maps.Keys(p.open))
	p.mu.Unlock()
	c := Conns{Open: len(states), ByLast: map[string]int{}}
	perUser := map[string]int{}
	for _, s := range states {
		s.mu.Lock()
		user, last := s.user, s.last
		s.mu.Unlock()
		if user == "" {
			c.NoLogin++
		} else {
			perUser[user]++
		}
		c.ByLast[cmpOr(last, "none")]++
	}
	c.Users = len(perUser)
	for _, n := range perUser {
		c.MaxPerUser = max(c.MaxPerUser, n)
	}
	return c
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// track registers c for Close; false if the proxy is closing.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if strings.Contains(err.Error(), "too many open files") {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return
		}
		if !p.track(c) {
			return
		}
		p.wg.Add(1)
		go p.forward(c)
	}
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (w countingWriter) Write(b []byte) (int, error) {
	n, err := w.w.Write(b)
	w.n.Add(int64(n))
	return n, err
}

func (p *Proxy) forward(c net.Conn) {
	defer p.wg.Done()
	defer p.untrack(c)
	up, err := net.DialTimeout("tcp", p.upstream, 10*time.Second)
	if err != nil {
		return
	}
	if !p.track(up) {
		return
	}
	defer p.untrack(up)
	p.opened.Add(1)
	st := &connState{}
	p.mu.Lock()
	p.open[st] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.open, st)
		p.mu.Unlock()
	}()
	var toClient, toServer io.Writer = c, up
	if p.opts.CountBytes {
		toClient, toServer = countingWriter{c, &p.down}, countingWriter{up, &p.up}
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_, _ = io.Copy(toClient, up)
		c.Close() // ends the scan below
	}()
	// Each chunk read from the client is forwarded as soon as it is read;
	// the scanner only looks at it on the way.
	p.scan(bufio.NewReaderSize(io.TeeReader(c, toServer), p.opts.ReadBuffer), st)
}

// scan reads a client's side of an IMAP connection and counts its
// commands: the first line of each, skipping the bytes of literals ({n},
// {n+}, ~{n}) and the lines that continue a command after one. Lines
// that do not look like "tag COMMAND" (IDLE's DONE, SASL responses) are
// not counted. After STARTTLS or COMPRESS the stream is opaque and only
// drained. scan returns when r fails or ends.
func (p *Proxy) scan(r *bufio.Reader, st *connState) {
	continuing := false
	for {
		head, tail, err := readLine(r)
		if err != nil {
			return
		}
		if !continuing {
			if name, ok := commandName(head); ok {
				p.count(name, head, st)
				if name == "STARTTLS" || name == "COMPRESS" {
					p.cmu.Lock()
					p.opaque++
					p.cmu.Unlock()
					_, _ = io.Copy(io.Discard, r)
					return
				}
			}
		}
		n, ok := literalSize(tail)
		if ok {
			if _, err := r.Discard(int(n)); err != nil {
				return
			}
		}
		continuing = ok
	}
}

func (p *Proxy) count(name string, line []byte, st *connState) {
	p.cmu.Lock()
	p.byName[name]++
	p.total++
	p.cmu.Unlock()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.last = name
	if user := loginUser(name, line); user != "" {
		st.user = user
	}
}

// loginUser returns the user of "tag LOGIN user …" (an atom or a quoted
// string) or of "tag AUTHENTICATE PLAIN <initial response>"; "" if it
// cannot tell.
func loginUser(name string, line []byte) string {
	f := bytes.Fields(line)
	switch {
	case name == "LOGIN" && len(f) >= 3:
		u := f[2]
		if len(u) > 0 && u[0] == '"' {
			rest := line[bytes.Index(line, u)+1:]
			var b []byte
			for i := 0; i < len(rest); i++ {
				switch rest[i] {
				case '\\':
					if i+1 < len(rest) {
						i++
						b = append(b, rest[i])
					}
				case '"':
					return strings.ToLower(string(b))
				default:
					b = append(b, rest[i])
				}
			}
			return ""
		}
		if bytes.HasPrefix(u, []byte("{")) {
			return "" // a literal: not followed
		}
		return strings.ToLower(string(u))
	case name == "AUTHENTICATE" && len(f) >= 4 && strings.EqualFold(string(f[2]), "PLAIN"):
		raw, err := base64.StdEncoding.DecodeString(string(f[3]))
		if err != nil {
			return ""
		}
		parts := bytes.Split(raw, []byte{0})
		if len(parts) != 3 {
			return ""
		}
		return strings.ToLower(string(parts[1]))
	}
	return ""
}

// readLine reads one line up to and including '\n' of any length and
// returns its first 128 and last 32 bytes.
func readLine(r *bufio.Reader) (head, tail []byte, err error) {
	for {
		b, err := r.ReadSlice('\n')
		if len(head) < 128 {
			head = append(head, b[:min(len(b), 128-len(head))]...)
		}
		tail = append(tail, b...)
		if len(tail) > 32 {
			tail = append(tail[:0], tail[len(tail)-32:]...)
		}
		switch {
		case err == nil:
			return head, tail, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return nil, nil, err
		}
	}
}

// commandName returns "NAME" or "UID NAME" of a "tag NAME …" line.
func commandName(line []byte) (string, bool) {
	f := bytes.Fields(line)
	if len(f) < 2 || !isAtom(f[0]) || !isCommand(f[1]) {
		return "", false
	}
	name := string(bytes.ToUpper(f[1]))
	if name == "UID" && len(f) > 2 && isCommand(f[2]) {
		name += " " + string(bytes.ToUpper(f[2]))
	}
	return name, true
}

func isAtom(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte(`(){%*"\]`), c) >= 0 {
			return false
		}
	}
	return len(b) > 0
}

func isCommand(b []byte) bool {
	if len(b) == 0 || !isLetter(b[0]) {
		return false
	}
	for _, c := range b {
		if !isLetter(c) && (c < '0' || c > '9') && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// literalSize parses a line ending "{n}", "{n+}" or "~{n}" (then CRLF).
func literalSize(tail []byte) (int64, bool) {
	t := bytes.TrimRight(tail, "\r\n")
	if len(t) < 3 || t[len(t)-1] != '}' {
		return 0, false
	}
	open := bytes.LastIndexByte(t, '{')
	if open < 0 {
		return 0, false
	}
	num := bytes.TrimSuffix(t[open+1:len(t)-1], []byte("+"))
	n, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
