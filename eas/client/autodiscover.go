package client

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

const (
	adRequestSchema  = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006"
	adResponseSchema = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
	adPath           = "/autodiscover/autodiscover.xml"
	adMaxHops        = 10
)

// AutodiscoverAttempt is one candidate URL tried and why it failed.
type AutodiscoverAttempt struct {
	URL string
	Err error
}

// AutodiscoverError reports that no candidate gave a server URL.
type AutodiscoverError struct {
	Email    string
	Attempts []AutodiscoverAttempt
}

// Error implements error.
func (e *AutodiscoverError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "client: autodiscover for %s failed", e.Email)
	for i, a := range e.Attempts {
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%s%s: %v", sep, a.URL, a.Err)
	}
	return b.String()
}

// AutodiscoverCandidates returns the URLs a phone tries for email, in
// order (MS-OXDSCLI 3.1.5): https://domain/autodiscover/autodiscover.xml,
// then https://autodiscover.domain/autodiscover/autodiscover.xml.
func AutodiscoverCandidates(email string) ([]string, error) {
	_, domain, ok := strings.Cut(email, "@")
	if !ok || domain == "" || strings.ContainsAny(domain, "/@:") {
		return nil, fmt.Errorf("client: autodiscover needs an e-mail address, not %q", email)
	}
	return []string{"https://" + domain + adPath, "https://autodiscover." + domain + adPath}, nil
}

// Autodiscover finds the ActiveSync URL for email with the mobilesync POX
// schema, authenticating as email with password. It tries candidates in
// order: URLs or bare bases (https://host:port, to which the standard path
// is appended); none means AutodiscoverCandidates(email). It follows HTTP
// redirects to https URLs by posting again, and Redirect actions to another
// address (up to 10). The GET-redirect and DNS SRV fallbacks are not tried.
// hc may be nil.
func Autodiscover(ctx context.Context, hc *http.Client, email, password string, candidates ...string) (string, error) {
	if hc == nil {
		hc = &http.Client{}
	}
	// Redirects are re-posted by hand: the http package would turn the
	// POST into a body-less GET.
	noFollow := *hc
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	adErr := &AutodiscoverError{Email: email}
	for hop := 0; hop < adMaxHops; hop++ {
		urls := candidates
		if len(urls) == 0 {
			var err error
			if urls, err = AutodiscoverCandidates(email); err != nil {
				return "", err
			}
		}
		redirected := false
		for _, cand := range urls {
			u, err := autodiscoverURL(cand)
			if err != nil {
				adErr.Attempts = append(adErr.Attempts, AutodiscoverAttempt{cand, err})
				continue
			}
			res, err := autodiscoverPost(ctx, &noFollow, u, email, password)
			if err != nil {
				adErr.Attempts = append(adErr.Attempts, AutodiscoverAttempt{u, err})
				if ctx.Err() != nil {
					return "", adErr
				}
				continue
			}
			if res.redirect != "" {
				if strings.EqualFold(res.redirect, email) {
					adErr.Attempts = append(adErr.Attempts, AutodiscoverAttempt{u, errors.New("redirect to the same address")})
					continue
				}
				email, redirected = res.redirect, true
				break
			}
			return res.url, nil
		}
		if !redirected {
			return "", adErr
		}
	}
	adErr.Attempts = append(adErr.Attempts, AutodiscoverAttempt{"", fmt.Errorf("more than %d redirects", adMaxHops)})
	return "", adErr
}

func autodiscoverURL(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	if u.Host == "" {
		return "", errors.New("no host")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = adPath
	}
	return u.String(), nil
}

type adResult struct {
	url      string // ActiveSync URL
	redirect string // another e-mail address to try
}

// autodiscoverPost posts the request to u, re-posting on HTTP redirects.
func autodiscoverPost(ctx context.Context, hc *http.Client, u, email, password string) (adResult, error) {
	var body bytes.Buffer
	fmt.Fprintf(&body, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"%s\">\n  <Request>\n    <EMailAddress>", adRequestSchema)
	xml.EscapeText(&body, []byte(email))
	fmt.Fprintf(&body, "</EMailAddress>\n    <AcceptableResponseSchema>%s</AcceptableResponseSchema>\n  </Request>\n</Autodiscover>\n", adResponseSchema)
	for hop := 0; ; hop++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body.Bytes()))
		if err != nil {
			return adResult{}, err
		}
		req.SetBasicAuth(email, password)
		req.Header.Set("Content-Type", "text/xml")
		resp, err := hc.Do(req)
		if err != nil {
			return adResult{}, err
		}
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return adResult{}, err
		}
		switch resp.StatusCode {
		case http.StatusOK:
			return parseAutodiscover(raw)
		case http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			loc, err := resp.Location()
			if err != nil {
				return adResult{}, fmt.Errorf("HTTP %d without a usable Location: %v", resp.StatusCode, err)
			}
			if loc.Scheme != "https" {
				return adResult{}, fmt.Errorf("HTTP %d to non-https %s refused", resp.StatusCode, loc)
			}
			if hop >= adMaxHops {
				return adResult{}, fmt.Errorf("more than %d HTTP redirects", adMaxHops)
			}
			u = loc.String()
		default:
			return adResult{}, &HTTPError{Command: "Autodiscover", Status: resp.StatusCode, Header: resp.Header}
		}
	}
}

// adResponse is the mobilesync response schema, matched by local names.
type adResponse struct {
	XMLName  xml.Name `xml:"Autodiscover"`
	Response struct {
		Error  *adError `xml:"Error"`
		Action struct {
			Redirect string   `xml:"Redirect"`
			Error    *adError `xml:"Error"`
			Settings struct {
				Servers []struct {
					Type string `xml:"Type"`
					URL  string `xml:"Url"`
				} `xml:"Server"`
			} `xml:"Settings"`
		} `xml:"Action"`
	} `xml:"Response"`
}

type adError struct {
	Status    string `xml:"Status"`
	ErrorCode string `xml:"ErrorCode"`
	Message   string `xml:"Message"`
}

func parseAutodiscover(raw []byte) (adResult, error) {
	var r adResponse
	if err := xml.Unmarshal(raw, &r); err != nil {
		return adResult{}, fmt.Errorf("response is not Autodiscover XML: %v", err)
	}
	for _, e := range []*adError{r.Response.Error, r.Response.Action.Error} {
		if e != nil {
			code := e.Status
			if code == "" {
				code = e.ErrorCode
			}
			return adResult{}, fmt.Errorf("server error %s: %s", code, strings.TrimSpace(e.Message))
		}
	}
	if rd := strings.TrimSpace(r.Response.Action.Redirect); rd != "" {
		return adResult{redirect: rd}, nil
	}
	for _, s := range r.Response.Action.Settings.Servers {
		if strings.EqualFold(strings.TrimSpace(s.Type), "MobileSync") && strings.TrimSpace(s.URL) != "" {
			return adResult{url: strings.TrimSpace(s.URL)}, nil
		}
	}
	return adResult{}, errors.New("response names no MobileSync server")
}
