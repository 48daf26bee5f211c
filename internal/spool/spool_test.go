package spool

import (
	"bytes"
	"io"
	"testing"
)

func TestSpool(t *testing.T) {
	for _, size := range []int{0, 10, 100, 1000} {
		s := NewIn(64, t.TempDir())
		want := bytes.Repeat([]byte("0123456789"), size/10)
		for i := 0; i < len(want); i += 7 {
			if _, err := s.Write(want[i:min(i+7, len(want))]); err != nil {
				t.Fatal(err)
			}
		}
		if s.Len() != int64(len(want)) {
			t.Errorf("size %d: Len %d", size, s.Len())
		}
		if s.InMemory() != (size <= 64) {
			t.Errorf("size %d: InMemory %v", size, s.InMemory())
		}
		for range 2 { // readable twice
			r, err := s.Reader()
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r)
			if !bytes.Equal(got, want) {
				t.Errorf("size %d: read back %d bytes, want %d", size, len(got), len(want))
			}
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		if _, err := s.Write([]byte("x")); err == nil {
			t.Error("write after Close succeeded")
		}
	}
}
