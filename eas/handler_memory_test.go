package eas

import (
	"bytes"
	"cmp"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/easd/easd/internal/memtest"
)

// TestHandlerBoundedMemory posts pathological bodies of n bytes (10 MB,
// 1 MB under the race detector) to a handler with the default 50 MB body
// limit, as Sync (no lower cap) and Ping (1 MiB cap), and checks what
// serving them takes from the heap: the largest live heap at most
// live×n + fixed, the allocations at most alloc×n + 2×fixed, and the
// answer is no server error nor larger than the request. A body is
// allowed one element per 4 bytes up to 2^20 elements (eas/handler.go
// readBody): element-dense bodies take the most, bounded by that count
// rather than their size: a Sync body of 2^20 empty elements (1 MiB) is
// refused (status 102) after allocating about 36 MB, 20-27 MB live at
// the worst, whether the body is 1 or 10 MB. The bounds are about twice
// what was measured.
func TestHandlerBoundedMemory(t *testing.T) {
	n := 10 << 20
	if memtest.Race {
		n = 1 << 20
	}
	h := newFuzzHandler(t, 50<<20)
	header := []byte{0x03, 0x01, 0x6a, 0x00}
	doc := func(head, unit, tail []byte) func() []byte {
		return func() []byte {
			b := bytes.NewBuffer(append([]byte{}, header...))
			b.Write(head)
			for b.Len()+len(unit)+len(tail) <= n {
				b.Write(unit)
			}
			b.Write(tail)
			return b.Bytes()
		}
	}
	sync := []byte{0x45, 0x5c} // <Sync><Collections>
	for _, tc := range []struct {
		name, cmd   string
		body        func() []byte
		chunked     bool
		live, alloc float64
		fixed       float64 // MiB added to both bounds; 8 when 0
	}{
		{"Sync of many empty collections", "Sync", doc(sync, []byte{0x0f}, []byte{0x01, 0x01}), false, 2, 4, 48},
		{"Sync of many string segments", "Sync", doc(append(sync, 0x4f, 0x52), []byte{0x03, '1', 0x00}, []byte{0x01, 0x01, 0x01, 0x01}), false, 2, 8, 0},
		{"Sync nested too deep", "Sync", doc(nil, []byte{0x45}, nil), false, 1, 1, 0},
		{"Sync of garbage", "Sync", func() []byte { return bytes.Repeat([]byte{0xff}, n) }, false, 1, 1, 0},
		{"Sync of many empty collections, chunked", "Sync", doc(sync, []byte{0x0f}, []byte{0x01, 0x01}), true, 2, 4, 48},
		{"Ping over its 1 MiB cap, chunked", "Ping", doc([]byte{0x00, 0x0d, 0x45}, []byte{0x03, 'x', 0x00}, []byte{0x01}), true, 1, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body()
			size := float64(len(body))
			var w *httptest.ResponseRecorder
			u := memtest.Measure(func() {
				r := httptest.NewRequest(http.MethodPost, Path+"?Cmd="+tc.cmd+"&User=alice&DeviceId=MEM1&DeviceType=x", bytes.NewReader(body))
				if tc.chunked {
					r.ContentLength = -1
				}
				r.SetBasicAuth("alice", "alice-pw")
				r.Header.Set("MS-ASProtocolVersion", "14.1")
				r.Header.Set("Content-Type", "application/vnd.ms-sync.wbxml")
				w = httptest.NewRecorder()
				h.ServeHTTP(w, r)
			})
			status := ""
			if w.Body.Len() > 0 && w.Body.Len() < 100 {
				status = strings.TrimSpace(strconv.Quote(w.Body.String()))
			}
			t.Logf("%d bytes: HTTP %d %s (%d bytes); live heap %.2f×, peak in use %.2f×, allocated %.2f×",
				len(body), w.Code, status, w.Body.Len(), float64(u.Live)/size, float64(u.Peak)/size, float64(u.Alloc)/size)
			if w.Code >= 500 || w.Body.Len() > len(body)+1<<10 {
				t.Errorf("HTTP %d with %d bytes", w.Code, w.Body.Len())
			}
			fixed := cmp.Or(tc.fixed, 8) * (1 << 20)
			if limit := tc.live*size + fixed; float64(u.Live) > limit {
				t.Errorf("live heap %d bytes, over %.0f", u.Live, limit)
			}
			if limit := tc.alloc*size + 2*fixed; float64(u.Alloc) > limit {
				t.Errorf("allocated %d bytes, over %.0f", u.Alloc, limit)
			}
			runtime.KeepAlive(body)
		})
	}
}
