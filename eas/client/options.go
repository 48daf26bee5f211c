package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// Capabilities is what OPTIONS advertises (MS-ASHTTP 2.2.4).
type Capabilities struct {
	// Versions from MS-ASProtocolVersions, in the server's order.
	Versions []string
	// Commands from MS-ASProtocolCommands.
	Commands []string
	// Server is MS-Server-ActiveSync, the server's build.
	Server string
}

// Supports reports whether cmd is advertised (case-insensitively).
func (c Capabilities) Supports(cmd string) bool {
	return slices.ContainsFunc(c.Commands, func(s string) bool { return strings.EqualFold(s, cmd) })
}

// Options sends the capability probe with credentials, as phones do. A
// non-200 answer is an *HTTPError (401: wrong user or password).
func (c *Client) Options(ctx context.Context) (Capabilities, error) {
	u := c.endpoint
	if !c.cfg.Base64Query {
		// iOS identifies itself on OPTIONS too.
		u.RawQuery = c.plainQuery("", Params{})
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodOptions, u.String(), nil)
	if err != nil {
		return Capabilities{}, fmt.Errorf("client: OPTIONS: %w", err)
	}
	c.setCommonHeaders(hr)
	resp, err := c.hc.Do(hr)
	if err != nil {
		return Capabilities{}, fmt.Errorf("client: OPTIONS: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return Capabilities{}, &HTTPError{Command: "OPTIONS", Status: resp.StatusCode, Header: resp.Header}
	}
	return Capabilities{
		Versions: splitList(resp.Header.Get("MS-ASProtocolVersions")),
		Commands: splitList(resp.Header.Get("MS-ASProtocolCommands")),
		Server:   resp.Header.Get("MS-Server-ActiveSync"),
	}, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Negotiate sends OPTIONS and picks the highest version both sides
// support; a version forced in Config is kept as is. It returns the
// version in use and the capabilities.
func (c *Client) Negotiate(ctx context.Context) (string, Capabilities, error) {
	caps, err := c.Options(ctx)
	if err != nil {
		return "", caps, err
	}
	if c.cfg.Version != "" {
		return c.cfg.Version, caps, nil
	}
	v := HighestCommon(caps.Versions, SupportedVersions())
	if v == "" {
		return "", caps, fmt.Errorf("client: no common protocol version: server offers %q, client speaks %q",
			strings.Join(caps.Versions, ","), strings.Join(SupportedVersions(), ","))
	}
	c.mu.Lock()
	c.version = v
	c.mu.Unlock()
	return v, caps, nil
}

// HighestCommon returns the highest version in both lists, or "".
func HighestCommon(server, client []string) string {
	best := ""
	for _, v := range server {
		v = strings.TrimSpace(v)
		if slices.Contains(client, v) && versionNum(v) > versionNum(best) {
			best = v
		}
	}
	return best
}

// ensureVersion negotiates on first use unless a version was forced.
func (c *Client) ensureVersion(ctx context.Context) error {
	if c.Version() != "" {
		return nil
	}
	_, _, err := c.Negotiate(ctx)
	return err
}
