package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/easd/easd/internal/config"
)

// runHealthcheck asks a running server's /healthz and exits non-zero unless
// it answers 200. Container images without curl use it as their HEALTHCHECK.
func runHealthcheck(ctx context.Context, e *env, args []string) error {
	fs := config.NewFlagSet("easd healthcheck", "easd healthcheck [flags]\n\nExit 0 when a running server's /healthz answers 200, else 1.", e.getenv, e.stderr)
	url := fs.String("url", "EASD_HEALTHCHECK_URL", "http://127.0.0.1:9090/healthz", "health endpoint to ask")
	timeout := fs.Duration("timeout", "", 5*time.Second, "how long to wait for the answer")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q", fs.Arg(0))
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return usageError("--url: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s %s", *url, resp.Status, body)
	}
	fmt.Fprintf(e.stdout, "%s", body)
	return nil
}
