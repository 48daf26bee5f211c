package push

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Metrics is one scrape of a Prometheus text exposition.
type Metrics struct {
	// Lines are the samples ("name{labels} value"), comments left out.
	Lines []string
}

// Scrape fetches url (an admin /metrics) within 10 seconds.
func Scrape(ctx context.Context, url string) (*Metrics, error) {
	body, err := get(ctx, url, 16<<20)
	if err != nil {
		return nil, err
	}
	m := &Metrics{}
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			m.Lines = append(m.Lines, line)
		}
	}
	return m, nil
}

// Value returns the sum of the samples of the metric name (all label
// sets), and whether there was one.
func (m *Metrics) Value(name string) (float64, bool) {
	if m == nil {
		return 0, false
	}
	var sum float64
	found := false
	for _, l := range m.Lines {
		n, rest, ok := strings.Cut(l, " ")
		if !ok {
			continue
		}
		if base, _, _ := strings.Cut(n, "{"); base != name {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err != nil {
			continue
		}
		sum += v
		found = true
	}
	return sum, found
}

// WithPrefix returns the samples whose name starts with one of prefixes,
// leaving out histogram buckets.
func (m *Metrics) WithPrefix(prefixes ...string) []string {
	if m == nil {
		return nil
	}
	var out []string
	for _, l := range m.Lines {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) && !strings.Contains(l, "_bucket{") {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

// ForceGC asks the Go process behind admin (its admin base URL) to
// collect garbage, through net/http/pprof's heap profile with gc=1,
// four times a little apart: each collection halves at most once the
// stacks of goroutines using under a quarter of theirs, so a parked
// request's stack (grown while its request ran) reaches its steady size
// as it would over a few minutes of a long-running server.
func ForceGC(ctx context.Context, admin string) error {
	for i := range 4 {
		if i > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		if _, err := get(ctx, admin+"/debug/pprof/heap?gc=1", 256<<20); err != nil {
			return err
		}
	}
	return nil
}

func get(ctx context.Context, url string, limit int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}
