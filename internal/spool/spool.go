// Package spool buffers a stream of unknown length in memory up to a limit
// and in a temporary file beyond it, so that large message bodies and
// responses cost bounded memory while their length is learnt before they
// are sent (WBXML OPAQUE lengths, Content-Length).
package spool

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sync"
)

// DefaultMemory is the in-memory part of a Spool made with New(0).
const DefaultMemory = 1 << 20

// Spool is an io.Writer that keeps the first bytes in memory and the rest
// in a temporary file. Write everything, then read it back with Reader
// (as often as needed), then Close to remove the file. Not safe for
// concurrent use.
type Spool struct {
	mem   *bytes.Buffer
	max   int
	dir   string
	f     *os.File
	n     int64
	err   error
	close bool
}

// New returns a Spool keeping up to memory bytes in memory (DefaultMemory
// when memory <= 0); beyond that it writes to a file in os.TempDir.
func New(memory int) *Spool {
	if memory <= 0 {
		memory = DefaultMemory
	}
	return &Spool{max: memory}
}

// NewIn is New with the temporary file in dir.
func NewIn(memory int, dir string) *Spool {
	s := New(memory)
	s.dir = dir
	return s
}

// Write implements io.Writer.
func (s *Spool) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.close {
		return 0, errors.New("spool: write after Close")
	}
	if s.mem == nil {
		s.mem = bufPool.Get().(*bytes.Buffer)
	}
	if s.f == nil && s.mem.Len()+len(p) <= s.max {
		s.mem.Write(p)
		s.n += int64(len(p))
		return len(p), nil
	}
	if s.f == nil {
		f, err := os.CreateTemp(s.dir, "easd-spool-*")
		if err != nil {
			s.err = err
			return 0, err
		}
		// Unlinked at once where the OS allows it: nothing is left behind
		// even if the process dies.
		_ = os.Remove(f.Name())
		s.f = f
	}
	n, err := s.f.Write(p)
	s.n += int64(n)
	if err != nil {
		s.err = err
	}
	return n, err
}

// Len returns the number of bytes written.
func (s *Spool) Len() int64 { return s.n }

// InMemory reports whether everything written is still in memory.
func (s *Spool) InMemory() bool { return s.f == nil }

// Bytes returns the content when it is all in memory, else nil.
func (s *Spool) Bytes() []byte {
	if s.f != nil || s.mem == nil {
		return nil
	}
	return s.mem.Bytes()
}

// Reader returns a reader of everything written so far, from the start.
// Each call returns an independent reader.
func (s *Spool) Reader() (io.Reader, error) {
	if s.err != nil {
		return nil, s.err
	}
	if s.close {
		return nil, errors.New("spool: read after Close")
	}
	var mem []byte
	if s.mem != nil {
		mem = s.mem.Bytes()
	}
	if s.f == nil {
		return bytes.NewReader(mem), nil
	}
	return io.MultiReader(bytes.NewReader(mem), io.NewSectionReader(s.f, 0, s.n-int64(len(mem)))), nil
}

// WriteTo copies the content to w.
func (s *Spool) WriteTo(w io.Writer) (int64, error) {
	r, err := s.Reader()
	if err != nil {
		return 0, err
	}
	return io.Copy(w, r)
}

// bufPool recycles the memory of closed spools: converting one message
// after another would otherwise allocate (and zero) a buffer each time.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooled is the largest buffer kept for reuse.
const maxPooled = 4 << 20

// Close releases the memory and removes the temporary file.
func (s *Spool) Close() error {
	if s.close {
		return nil
	}
	s.close = true
	if s.mem != nil && s.mem.Cap() <= maxPooled {
		s.mem.Reset()
		bufPool.Put(s.mem)
	}
	s.mem = nil
	if s.f == nil {
		return nil
	}
	name := s.f.Name()
	err := s.f.Close()
	_ = os.Remove(name)
	s.f = nil
	return err
}
