package push

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSummarize(t *testing.T) {
	var xs []float64
	for i := 100; i >= 1; i-- {
		xs = append(xs, float64(i))
	}
	got := Summarize(xs)
	want := Summary{Count: 100, Min: 1, P50: 50, P90: 90, P99: 99, Max: 100, Mean: 50.5}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if (Summarize(nil) != Summary{}) {
		t.Error("empty sample")
	}
}

func TestMetricsValue(t *testing.T) {
	m := &Metrics{Lines: []string{
		`easd_push_parked 200`,
		`easd_imap_watch_commands_total{command="LIST"} 3`,
		`easd_imap_watch_commands_total{command="STATUS"} 4`,
		`easd_push_wake_seconds_bucket{le="0.1"} 7`,
		`go_goroutines 12`,
	}}
	if v, ok := m.Value("easd_imap_watch_commands_total"); !ok || v != 7 {
		t.Errorf("sum over labels: %v %v", v, ok)
	}
	if _, ok := m.Value("easd_missing"); ok {
		t.Error("missing metric found")
	}
	got := m.WithPrefix("easd_push_", "easd_imap_")
	want := []string{`easd_push_parked 200`, `easd_imap_watch_commands_total{command="LIST"} 3`, `easd_imap_watch_commands_total{command="STATUS"} 4`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("WithPrefix (-want +got):\n%s", diff)
	}
}

func TestParseBenchFlags(t *testing.T) {
	cfg, err := parseBenchFlags(strings.Fields("-rss 1000,10000 -latency 1000 -idle 0 -easd-arg --imap-watch-sweep=1m -easd-arg --max-parked=0"))
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(cfg.RSS, []int{1000, 10000}) || !cmp.Equal(cfg.Latency, []int{1000}) || cfg.Idle != nil ||
		!cmp.Equal(cfg.EasdArgs, []string{"--imap-watch-sweep=1m", "--max-parked=0"}) {
		t.Errorf("%+v", cfg)
	}
	if cfg, err = parseBenchFlags([]string{"-smoke"}); err != nil || cfg.Appends != 30 || !cmp.Equal(cfg.Idle, []int{200}) {
		t.Errorf("smoke: %+v, %v", cfg, err)
	}
	if _, err := parseBenchFlags([]string{"-rss", "x"}); err == nil {
		t.Error("bad count accepted")
	}
}
