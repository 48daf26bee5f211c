package eas_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/easd/easd/eas/client"
)

// BenchmarkMailInitialSync is the in-process counterpart of
// bench/mailsync, for profiling: one device's initial sync of a
// 2,000-message INBOX (2-50 KB, 5% with an attachment), MIME bodies as
// iOS asks, window 512.
func BenchmarkMailInitialSync(b *testing.B) {
	e := newMailEnv(b)
	const n = 2000
	for i := range n {
		var raw []byte
		if i%20 == 0 {
			raw, _ = attachmentMessage(20<<10 + i*50)
		} else {
			raw = message(i, fmt.Sprintf("bench %d", i), strings.Repeat("lorem ipsum dolor sit amet ", 80+i%1800))
		}
		e.dc.Deliver(b, "alice", "", raw)
	}
	dev := 0
	b.ResetTimer()
	for b.Loop() {
		dev++
		c := e.phone("alice", fmt.Sprintf("BENCH%d", dev), "iPhone", "14.1")
		fs, _ := folders(b, c)
		items, _ := syncAll(b, c, fs["Inbox"].ServerID, client.SyncOptions{WindowSize: 512, MIMESupport: 2, BodyPreferences: []client.BodyPreference{{Type: 4, TruncationSize: 500000}}})
		if len(items) != n {
			b.Fatalf("%d items", len(items))
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msg/s")
}
