package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
	"golang.org/x/net/idna"

	"github.com/easd/easd/internal/config"
	"github.com/easd/easd/internal/server"
)

// acmeFlags are serve's settings for certificates from an ACME CA (Let's
// Encrypt by default), the alternative to --tls-cert/--tls-key.
type acmeFlags struct {
	domains, email, cache, directory, httpListen *string
}

// defaultACMEHTTPListen is --acme-http-listen's default: HTTP-01 challenges
// come to port 80.
const defaultACMEHTTPListen = ":80"

func addACMEFlags(fs *config.FlagSet) acmeFlags {
	return acmeFlags{
		domains: fs.String("acme-domains", "EASD_ACME_DOMAINS", "",
			"comma-separated host names to get certificates for from an ACME CA and serve HTTPS with (e.g. mail.example.com,autodiscover.example.com); not with --tls-cert"),
		email: fs.String("acme-email", "EASD_ACME_EMAIL", "",
			"contact address given to the ACME CA (expiry warnings); optional"),
		cache: fs.String("acme-cache", "EASD_ACME_CACHE", "",
			"directory keeping the ACME account key and certificates (mode 0700); empty: DATA_DIR/acme"),
		directory: fs.String("acme-directory", "EASD_ACME_DIRECTORY", acme.LetsEncryptURL,
			"ACME directory URL of the CA (plain http only on loopback, for tests)"),
		httpListen: fs.String("acme-http-listen", "EASD_ACME_HTTP_LISTEN", defaultACMEHTTPListen,
			"with --acme-domains: plain-HTTP address answering HTTP-01 challenges and redirecting every other GET to https; none (or empty): TLS-ALPN-01 on --listen only"),
	}
}

// tlsSetup is what serve's TLS settings amount to for server.Config.
type tlsSetup struct {
	config      *tls.Config  // nil: plain HTTP (a TLS proxy in front)
	httpListen  string       // ACME's plain-HTTP listener; "" for none
	httpHandler http.Handler // what it serves
}

// setup checks the TLS settings (usage errors first, then the certificate
// files) and returns the server's TLS configuration: certificate files
// reloaded when they change, certificates from ACME, or nothing.
func (f acmeFlags) setup(certFile, keyFile, dataDir string, log *slog.Logger) (tlsSetup, error) {
	domains, err := f.check(certFile != "" || keyFile != "")
	if err != nil {
		return tlsSetup{}, err
	}
	switch {
	case certFile != "":
		cf, err := server.LoadCertFiles(certFile, keyFile, server.DefaultCertCheck, log)
		if err != nil {
			return tlsSetup{}, err
		}
		cf.LogCertificate()
		return tlsSetup{config: &tls.Config{GetCertificate: cf.GetCertificate, MinVersion: tls.VersionTLS12}}, nil
	case len(domains) > 0:
		return f.manager(domains, dataDir, log)
	}
	return tlsSetup{}, nil
}

// check reports usage errors in the ACME flags and returns the domains
// (ASCII, lower case), none when ACME is off.
func (f acmeFlags) check(certFiles bool) ([]string, error) {
	if strings.TrimSpace(*f.domains) == "" {
		for _, o := range []struct {
			name     string
			val, def string
		}{{"acme-email", *f.email, ""}, {"acme-cache", *f.cache, ""}, {"acme-directory", *f.directory, acme.LetsEncryptURL},
			{"acme-http-listen", *f.httpListen, defaultACMEHTTPListen}} {
			if o.val != o.def {
				return nil, usageError("--%s is set but --acme-domains is empty: it only applies to ACME certificates", o.name)
			}
		}
		return nil, nil
	}
	if certFiles {
		return nil, usageError("--acme-domains and --tls-cert/--tls-key are mutually exclusive: certificates come either from ACME or from files")
	}
	var domains []string
	for d := range strings.SplitSeq(*f.domains, ",") {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		a, err := acmeDomain(d)
		if err != nil {
			return nil, usageError("--acme-domains: %q: %v", d, err)
		}
		if !slices.Contains(domains, a) {
			domains = append(domains, a)
		}
	}
	if len(domains) == 0 {
		return nil, usageError("--acme-domains: no host name")
	}
	if e := *f.email; e != "" && (strings.Count(e, "@") != 1 || strings.HasPrefix(e, "@") || strings.HasSuffix(e, "@") ||
		strings.ContainsAny(e, " \t,;<>\"")) {
		return nil, usageError("--acme-email %q: want one address such as admin@example.com", e)
	}
	u, err := url.Parse(*f.directory)
	if err != nil || u.Host == "" || u.User != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, usageError("--acme-directory %q: want the CA's https directory URL, e.g. %s", *f.directory, acme.LetsEncryptURL)
	}
	if u.Scheme == "http" && !loopbackHost(u.Hostname()) {
		return nil, usageError("--acme-directory %q: plain http only to a loopback address (a test CA)", *f.directory)
	}
	if l := *f.httpListen; l != "" && l != "none" {
		if _, _, err := net.SplitHostPort(l); err != nil {
			return nil, usageError("--acme-http-listen %q: want [HOST]:PORT, e.g. :80, or none", l)
		}
	}
	return domains, nil
}

// acmeDomain checks a host name a CA can validate with HTTP-01 or
// TLS-ALPN-01 and returns its ASCII form.
func acmeDomain(d string) (string, error) {
	switch {
	case strings.Contains(d, "*"):
		return "", fmt.Errorf("wildcards need the DNS-01 challenge, which easd does not do: list each name")
	case strings.Contains(d, "://") || strings.ContainsAny(d, "/:"):
		return "", fmt.Errorf("want a bare host name, without scheme, port or path")
	}
	if _, err := netip.ParseAddr(d); err == nil {
		return "", fmt.Errorf("want a host name, not an IP address")
	}
	a, err := idna.Lookup.ToASCII(strings.TrimSuffix(d, "."))
	if err != nil {
		return "", fmt.Errorf("not a valid host name: %v", err)
	}
	if !strings.Contains(a, ".") {
		return "", fmt.Errorf("want a fully qualified name such as mail.example.com")
	}
	return a, nil
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

// manager builds the autocert manager: the account key and certificates in
// the cache directory, TLS-ALPN-01 answered on the main listener, HTTP-01
// and redirects on --acme-http-listen.
func (f acmeFlags) manager(domains []string, dataDir string, log *slog.Logger) (tlsSetup, error) {
	dir := *f.cache
	if dir == "" {
		dir = filepath.Join(dataDir, "acme")
	}
	// autocert would create it on first use; fail now if it cannot be.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tlsSetup{}, fmt.Errorf("--acme-cache: %w", err)
	}
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS, // setting --acme-domains accepts the CA's terms
		Cache:      autocert.DirCache(dir),
		HostPolicy: autocert.HostWhitelist(domains...),
		Email:      *f.email,
		Client:     &acme.Client{DirectoryURL: *f.directory, UserAgent: "easd/" + versionString()},
	}
	tc := m.TLSConfig()
	tc.MinVersion = tls.VersionTLS12
	tc.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if hello.ServerName == "" {
			// A client without SNI (connecting by address) gets the first name's certificate.
			h := *hello
			h.ServerName = domains[0]
			hello = &h
		}
		return m.GetCertificate(hello)
	}
	s := tlsSetup{config: tc}
	if *f.httpListen != "" && *f.httpListen != "none" {
		s.httpListen = *f.httpListen
		s.httpHandler = m.HTTPHandler(redirectToHTTPS(domains))
	}
	log.Info("ACME certificates", "domains", strings.Join(domains, ","), "directory", *f.directory, "cache", dir,
		"http_listen", s.httpListen, "email_set", *f.email != "")
	return s, nil
}

// redirectToHTTPS answers plain-HTTP GET and HEAD requests with a 302 to
// the same path on https (port 443): to the requested host when it is one
// of domains, else to the first, so the certificate always matches and no
// Host header can send a phone elsewhere. This is also Autodiscover's
// plain-HTTP step (MS-OXDSCLI 3.1.5.5: GET
// http://autodiscover.DOMAIN/autodiscover/autodiscover.xml, expecting a
// 302). Other methods get 400: credentials must not travel in plain text.
func redirectToHTTPS(domains []string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "use https", http.StatusBadRequest)
			return
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.ToLower(host), ".")
		if !slices.Contains(domains, host) {
			host = domains[0]
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusFound)
	})
}
