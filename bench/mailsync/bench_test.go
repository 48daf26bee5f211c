package main

import (
	"bytes"
	"cmp"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/easd/easd/bench/internal/easdproc"
	"github.com/easd/easd/bench/internal/imapproxy"
	"github.com/easd/easd/internal/testenv"
)

// TestBench runs the whole benchmark against a throwaway Dovecot (from
// internal/testenv) and easd started as a separate process with
// pass-through IMAP authentication through the counting proxy. It only
// runs with EASD_BENCH=1 (see run.sh). EASD_BENCH_ARGS holds extra
// mailsync flags (e.g. "-messages 2000 -duration 10s"), EASD_BENCH_BIN an
// easd binary to use instead of building one, and EASD_BENCH_OUT a file
// to write the Markdown to as well as stdout, EASD_BENCH_LOG a file to
// copy easd's log to.
func TestBench(t *testing.T) {
	if os.Getenv("EASD_BENCH") == "" {
		t.Skip("set EASD_BENCH=1 to run the mail sync benchmark (bench/mailsync/run.sh)")
	}
	cfg, set, err := parseFlags(strings.Fields(os.Getenv("EASD_BENCH_ARGS")), os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if !set["ka-users"] {
		cfg.KAUsers = cfg.Clients // one account per phone
	}
	cfg.User, cfg.Password, cfg.Populate = "bench", "bench-pw", true
	users := map[string]string{cfg.User: cfg.Password}
	for i := range cfg.KAUsers {
		users[cfg.kaUser(i)] = cfg.Password
	}
	dc := testenv.Dovecot(t, users)
	cfg.IMAPAddr = dc.Addr
	proxy, err := imapproxy.Start("127.0.0.1:0", dc.Addr, proxyOptions)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	cfg.Proxy = "" // running already, in this process

	bin := os.Getenv("EASD_BENCH_BIN")
	if bin == "" {
		bin = easdproc.Build(t, "github.com/easd/easd/cmd/easd", "easd")
	}
	easd := easdproc.Start(t, easdproc.Options{Bin: bin, IMAPAddr: proxy.Addr(),
		AdminListen: cmp.Or(os.Getenv("EASD_BENCH_ADMIN"), "127.0.0.1:0"), StopWait: 15 * time.Second,
		LogCopy: os.Getenv("EASD_BENCH_LOG")})
	cfg.PID, cfg.URL = easd.PID, easd.URL
	if err := cfg.check(); err != nil {
		t.Fatal(err)
	}

	var md bytes.Buffer
	err = run(context.Background(), cfg, proxy, io.MultiWriter(os.Stdout, &md), t.Logf)
	if out := os.Getenv("EASD_BENCH_OUT"); out != "" {
		if werr := os.WriteFile(out, md.Bytes(), 0o644); werr != nil {
			t.Error(werr)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}
