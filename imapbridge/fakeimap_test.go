package imapbridge_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeIMAP is a scripted IMAP server on loopback for what a real Dovecot
// in testenv does not do: TLS, odd greetings and odd answers to LOGIN. It
// understands CAPABILITY, STARTTLS, LOGIN and LOGOUT.
type fakeIMAP struct {
	// Greeting is the greeting line without CRLF; "" means never greet.
	Greeting string
	// Caps is the answer to CAPABILITY.
	Caps string
	// ImplicitTLS serves TLS from the first byte.
	ImplicitTLS bool
	// StartTLS accepts STARTTLS.
	StartTLS bool
	// LoginReply is the tagged answer to LOGIN without the tag, e.g.
	// "OK done" or "NO [UNAVAILABLE] try later".
	LoginReply string

	ln   net.Listener
	cert tls.Certificate
	pool *x509.CertPool

	mu    sync.Mutex
	cmds  []string
	conns []net.Conn
	wg    sync.WaitGroup
}

// start listens on 127.0.0.1 and serves until the test ends. It returns
// the address.
func (f *fakeIMAP) start(t *testing.T) string {
	t.Helper()
	f.cert, f.pool = selfSignedCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.ln = ln
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			f.wg.Go(func() { f.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return ln.Addr().String()
}

// commands returns the commands received so far, LOGIN as "LOGIN" or
// "LOGIN over TLS".
func (f *fakeIMAP) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

func (f *fakeIMAP) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	isTLS := f.ImplicitTLS
	if isTLS {
		c = tls.Server(c, f.tlsConfig())
	}
	if f.Greeting == "" {
		_, _ = c.Read(make([]byte, 1)) // until the client gives up
		return
	}
	w := func(s string) bool {
		_, err := c.Write([]byte(s + "\r\n"))
		return err == nil
	}
	if !w(f.Greeting) {
		return
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		tag, rest, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		cmd, _, _ := strings.Cut(rest, " ")
		cmd = strings.ToUpper(cmd)
		rec := cmd
		if cmd == "LOGIN" && isTLS {
			rec += " over TLS"
		}
		f.mu.Lock()
		f.cmds = append(f.cmds, rec)
		f.mu.Unlock()
		switch {
		case cmd == "CAPABILITY":
			w("* CAPABILITY " + f.Caps)
			w(tag + " OK done")
		case cmd == "STARTTLS" && f.StartTLS && !isTLS:
			w(tag + " OK begin TLS")
			c = tls.Server(c, f.tlsConfig())
			r = bufio.NewReader(c)
			isTLS = true
		case cmd == "LOGIN":
			w(tag + " " + f.LoginReply)
		case cmd == "LOGOUT":
			w("* BYE bye")
			w(tag + " OK done")
			return
		default:
			w(tag + " BAD unknown command")
		}
	}
}

func (f *fakeIMAP) tlsConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{f.cert}}
}

// selfSignedCert returns a certificate for 127.0.0.1 and localhost, and a
// pool that trusts it.
func selfSignedCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "easd test IMAP"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
