package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// imapCounter counts the IMAP commands clients sent through a
// countingProxy, by name ("SELECT", "UID FETCH" …), and the bytes each way.
type imapCounter struct {
	mu     sync.Mutex
	byName map[string]int64
	total  int64
	// opaque counts connections that switched to TLS or compression,
	// whose later commands cannot be counted.
	opaque int64

	up, down atomic.Int64
	conns    atomic.Int64
}

func newIMAPCounter() *imapCounter { return &imapCounter{byName: map[string]int64{}} }

func (c *imapCounter) add(name string) {
	c.mu.Lock()
	c.byName[name]++
	c.total++
	c.mu.Unlock()
}

// imapCounts is a snapshot of an imapCounter.
type imapCounts struct {
	Total, Opaque, Conns, Up, Down int64
	ByName                         map[string]int64
}

func (c *imapCounter) snapshot() imapCounts {
	if c == nil {
		return imapCounts{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return imapCounts{Total: c.total, Opaque: c.opaque, Conns: c.conns.Load(), Up: c.up.Load(), Down: c.down.Load(),
		ByName: maps.Clone(c.byName)}
}

// sub returns what was counted between b and a.
func (a imapCounts) sub(b imapCounts) imapCounts {
	d := imapCounts{Total: a.Total - b.Total, Opaque: a.Opaque - b.Opaque, Conns: a.Conns - b.Conns,
		Up: a.Up - b.Up, Down: a.Down - b.Down, ByName: map[string]int64{}}
	for k, v := range a.ByName {
		if n := v - b.ByName[k]; n > 0 {
			d.ByName[k] = n
		}
	}
	return d
}

// top renders the most frequent commands, e.g. "UID FETCH 120, SELECT 3".
func (a imapCounts) top(n int) string {
	names := slices.Collect(maps.Keys(a.ByName))
	slices.SortFunc(names, func(x, y string) int {
		if a.ByName[x] != a.ByName[y] {
			return int(a.ByName[y] - a.ByName[x])
		}
		return bytes.Compare([]byte(x), []byte(y))
	})
	var b []byte
	for i, name := range names {
		if i == n {
			b = append(b, ", …"...)
			break
		}
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, name...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, a.ByName[name], 10)
	}
	if len(b) == 0 {
		return "none"
	}
	return string(b)
}

// scan reads a client's side of an IMAP connection and counts its
// commands: the first line of each, skipping the bytes of literals ({n},
// {n+}, ~{n}) and the lines that continue a command after one. Lines
// that do not look like "tag COMMAND" (IDLE's DONE, SASL responses) are
// not counted. After STARTTLS or COMPRESS the stream is opaque and only
// drained. scan returns when r fails or ends.
func (c *imapCounter) scan(r *bufio.Reader) {
	continuing := false
	for {
		head, tail, err := readLine(r)
		if err != nil {
			return
		}
		if !continuing {
			if name, ok := commandName(head); ok {
				c.add(name)
				if name == "STARTTLS" || name == "COMPRESS" {
					c.mu.Lock()
					c.opaque++
					c.mu.Unlock()
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

// countingProxy forwards TCP connections to an IMAP server and counts the
// commands its clients send.
type countingProxy struct {
	ln       net.Listener
	upstream string
	counter  *imapCounter

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	done  bool
}

// startProxy listens on listen (loopback) and forwards to upstream.
func startProxy(listen, upstream string) (*countingProxy, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	p := &countingProxy{ln: ln, upstream: upstream, counter: newIMAPCounter(), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the address the proxy listens on.
func (p *countingProxy) Addr() string { return p.ln.Addr().String() }

// Close stops the proxy and closes every forwarded connection.
func (p *countingProxy) Close() error {
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

// track registers c for Close; false if the proxy is closing.
func (p *countingProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *countingProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *countingProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
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

func (p *countingProxy) forward(c net.Conn) {
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
	p.counter.conns.Add(1)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_, _ = io.Copy(countingWriter{c, &p.counter.down}, up)
		c.Close() // ends the scan below
	}()
	// Each chunk read from the client is forwarded as soon as it is read;
	// the scanner only looks at it on the way.
	p.counter.scan(bufio.NewReaderSize(io.TeeReader(c, countingWriter{up, &p.counter.up}), 64<<10))
}
