package server

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCertCheck is how often, at most, CertFiles looks at its files for
// a change: on a TLS handshake, never in the background.
const DefaultCertCheck = 5 * time.Second

// CertFiles serves a certificate chain and private key read from PEM files
// and reloads them, without a restart, when either file changes: on a TLS
// handshake at least Every after the last look, it compares both files'
// modification time and size with those it loaded. A pair that fails to
// load (a renewal half written, a key that does not match) is logged once
// and the previous certificate is kept until the files change again.
type CertFiles struct {
	certFile, keyFile string
	every             time.Duration
	log               *slog.Logger
	now               func() time.Time

	cert atomic.Pointer[tls.Certificate]

	mu      sync.Mutex // held while looking at the files
	loaded  filePair   // the files as they were when last loaded or tried
	checked time.Time
}

// filePair is what CertFiles compares to notice a change.
type filePair struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

// LoadCertFiles reads certFile (PEM certificates, the server's first, then
// its intermediates) and keyFile (its PEM private key) and returns
// CertFiles serving them. The error names the file at fault: unreadable,
// no PEM block of the expected type, a certificate or key that does not
// parse, or a key that does not belong to the first certificate. every <=
// 0 means DefaultCertCheck; log may be nil.
func LoadCertFiles(certFile, keyFile string, every time.Duration, log *slog.Logger) (*CertFiles, error) {
	if every <= 0 {
		every = DefaultCertCheck
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &CertFiles{certFile: certFile, keyFile: keyFile, every: every, log: log, now: time.Now}
	st, _ := c.stat()
	cert, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	c.cert.Store(cert)
	c.loaded, c.checked = st, c.now()
	return c, nil
}

// Certificate returns the certificate being served.
func (c *CertFiles) Certificate() *tls.Certificate { return c.cert.Load() }

// GetCertificate returns the certificate being served, first reloading the
// files when they changed; it is meant for tls.Config.GetCertificate. It
// never fails: a reload error keeps the previous certificate.
func (c *CertFiles) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.check()
	return c.cert.Load(), nil
}

// check looks at the files when Every has passed since the last look.
// Handshakes arriving meanwhile use the current certificate rather than
// wait.
func (c *CertFiles) check() {
	if !c.mu.TryLock() {
		return
	}
	defer c.mu.Unlock()
	now := c.now()
	if now.Sub(c.checked) < c.every {
		return
	}
	c.checked = now
	st, err := c.stat()
	if err != nil {
		if st != c.loaded {
			c.log.Warn("TLS certificate files unreadable; still serving the loaded certificate", "err", err)
			c.loaded = st
		}
		return
	}
	if st == c.loaded {
		return
	}
	c.loaded = st
	cert, err := loadKeyPair(c.certFile, c.keyFile)
	if err != nil {
		c.log.Warn("TLS certificate files changed but do not load; still serving the loaded certificate (retried when they change again)", "err", err)
		return
	}
	c.cert.Store(cert)
	c.log.Info("TLS certificate reloaded", certAttrs(cert.Leaf)...)
}

// stat returns the files' modification times and sizes; a missing file
// gives zero values and an error.
func (c *CertFiles) stat() (filePair, error) {
	var p filePair
	var errs []error
	if fi, err := os.Stat(c.certFile); err == nil {
		p.certMod, p.certSize = fi.ModTime(), fi.Size()
	} else {
		errs = append(errs, err)
	}
	if fi, err := os.Stat(c.keyFile); err == nil {
		p.keyMod, p.keySize = fi.ModTime(), fi.Size()
	} else {
		errs = append(errs, err)
	}
	return p, errors.Join(errs...)
}

// certAttrs returns log attributes describing a certificate: its names,
// issuer and expiry.
func certAttrs(leaf *x509.Certificate) []any {
	if leaf == nil {
		return nil
	}
	names := leaf.DNSNames
	if len(names) == 0 && leaf.Subject.CommonName != "" {
		names = []string{leaf.Subject.CommonName}
	}
	return []any{"names", strings.Join(names, ","), "issuer", leaf.Issuer.CommonName,
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339)}
}

// LogCertificate logs the certificate being served at startup, with a
// warning when it has expired or expires within two weeks.
func (c *CertFiles) LogCertificate() {
	leaf := c.cert.Load().Leaf
	attrs := certAttrs(leaf)
	switch left := leaf.NotAfter.Sub(c.now()); {
	case left <= 0:
		c.log.Warn("TLS certificate has expired: phones will refuse it", attrs...)
	case left < 14*24*time.Hour:
		c.log.Warn("TLS certificate expires soon", attrs...)
	default:
		c.log.Info("TLS certificate loaded", attrs...)
	}
}

// loadKeyPair reads and checks a certificate chain and its key, with errors
// that name the file at fault.
func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate file %s: %w", certFile, pathErr(err))
	}
	var chain [][]byte
	var leaf *x509.Certificate
	for rest := certPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			if strings.Contains(b.Type, "PRIVATE KEY") {
				return nil, fmt.Errorf("TLS certificate file %s holds a private key: keep the key in its own file", certFile)
			}
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("TLS certificate file %s: certificate %d does not parse: %v", certFile, len(chain)+1, err)
		}
		if leaf == nil {
			leaf = c
		}
		chain = append(chain, b.Bytes)
	}
	if leaf == nil {
		return nil, fmt.Errorf("TLS certificate file %s: no PEM CERTIFICATE block", certFile)
	}

	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS key file %s: %w", keyFile, pathErr(err))
	}
	var keyDER *pem.Block
	for rest := keyPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "PRIVATE KEY" || strings.HasSuffix(b.Type, " PRIVATE KEY") {
			keyDER = b
			break
		}
	}
	switch {
	case keyDER == nil:
		return nil, fmt.Errorf("TLS key file %s: no PEM PRIVATE KEY block", keyFile)
	case keyDER.Type == "ENCRYPTED PRIVATE KEY" || keyDER.Headers["Proc-Type"] != "":
		return nil, fmt.Errorf("TLS key file %s: the key is encrypted; give easd an unencrypted key (mode 0600)", keyFile)
	}
	key, err := parseKey(keyDER.Bytes)
	if err != nil {
		return nil, fmt.Errorf("TLS key file %s: %v", keyFile, err)
	}
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("TLS key file %s does not match the certificate in %s (the server's certificate must come first)", keyFile, certFile)
	}
	return &tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

// parseKey parses a DER private key as crypto/tls does: PKCS #1, PKCS #8
// or SEC 1.
func parseKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", k)
		}
		return s, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("the private key does not parse (want PKCS #1, PKCS #8 or SEC 1)")
}

// pathErr drops the path an os error repeats.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
