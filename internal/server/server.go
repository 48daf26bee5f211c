// Package server assembles easd's HTTP listeners: the public listener
// (ActiveSync, Autodiscover, /healthz) and the admin listener (/healthz,
// /metrics). It adds request ids, access logs, metrics and panic recovery
// to every request and shuts down gracefully.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Pinger reports whether the store answers; store.Store satisfies it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Config holds the listener settings.
type Config struct {
	Listen      string // public address, e.g. ":8080"
	AdminListen string // admin address for /metrics; "" disables it
	// TLS, when set, makes the public listener HTTPS with its certificates
	// (GetCertificate or Certificates: CertFiles, an ACME manager). Its
	// MinVersion is raised to TLS 1.2 at least; net/http adds HTTP/2 and
	// HTTP/1.1 to its NextProtos.
	TLS *tls.Config
	// HTTPListen, when set with HTTPHandler, is an extra plain-HTTP
	// listener (ACME HTTP-01 challenges, redirects to https), with the same
	// request ids, logs and metrics (listener "http").
	HTTPListen  string
	HTTPHandler http.Handler
	// ShutdownTimeout is how long in-flight requests may finish.
	ShutdownTimeout time.Duration
}

// Deps are the collaborators a Server needs. Logger and Store are required.
type Deps struct {
	Logger *slog.Logger
	Store  Pinger
	// App serves every public path other than /healthz (ActiveSync,
	// Autodiscover). Nil answers 404.
	App http.Handler
	// NewID returns a request id; random 64-bit hex when nil.
	NewID func() string
	// Registry receives the HTTP metrics; a new one when nil.
	Registry *prometheus.Registry
}

// Server is easd's HTTP front.
type Server struct {
	cfg   Config
	deps  Deps
	main  *http.Server
	admin *http.Server
	http  *http.Server // plain HTTP beside a TLS listener; nil without

	mu      sync.Mutex
	addrs   []string
	drain   chan struct{}
	drainMu sync.Once

	reqs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight prometheus.Gauge
}

// New returns a Server. Call Run to serve.
func New(cfg Config, deps Deps) *Server {
	if deps.NewID == nil {
		deps.NewID = randomID
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
		deps.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	s := &Server{cfg: cfg, deps: deps, drain: make(chan struct{})}
	s.reqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "easd_http_requests_total", Help: "HTTP requests by listener, route and status code.",
	}, []string{"listener", "route", "code"})
	s.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "easd_http_request_duration_seconds", Help: "HTTP request latency by listener and route.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800},
	}, []string{"listener", "route"})
	s.inflight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "easd_http_in_flight_requests", Help: "Requests being served now, including parked long polls.",
	})
	deps.Registry.MustRegister(s.reqs, s.duration, s.inflight)

	mux := http.NewServeMux()
	mux.Handle("/healthz", s.health())
	if deps.App != nil {
		mux.Handle("/", deps.App)
	}
	s.main = &http.Server{
		Handler:           s.wrap("main", mux),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          slog.NewLogLogger(deps.Logger.Handler(), slog.LevelWarn),
		BaseContext:       s.baseContext,
	}
	if cfg.TLS != nil {
		tc := cfg.TLS.Clone()
		if tc.MinVersion < tls.VersionTLS12 {
			tc.MinVersion = tls.VersionTLS12
		}
		s.main.TLSConfig = tc
	}
	if cfg.HTTPListen != "" && cfg.HTTPHandler != nil {
		s.http = &http.Server{
			Handler:           s.wrap("http", cfg.HTTPHandler),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       time.Minute,
			ErrorLog:          slog.NewLogLogger(deps.Logger.Handler(), slog.LevelWarn),
		}
	}
	if cfg.AdminListen != "" {
		amux := http.NewServeMux()
		amux.Handle("/healthz", s.health())
		amux.Handle("/metrics", promhttp.HandlerFor(deps.Registry, promhttp.HandlerOpts{}))
		// Profiles for operators, on the admin listener only (never on the
		// public one): go tool pprof http://ADMIN/debug/pprof/profile
		amux.HandleFunc("/debug/pprof/", pprof.Index)
		amux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		amux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		amux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		amux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		s.admin = &http.Server{
			Handler:           s.wrap("admin", amux),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(deps.Logger.Handler(), slog.LevelWarn),
		}
	}
	return s
}

type drainKey struct{}

func (s *Server) baseContext(net.Listener) context.Context {
	return context.WithValue(context.Background(), drainKey{}, (<-chan struct{})(s.drain))
}

// Draining returns a channel closed when the server begins shutting down.
// Long-poll handlers (Ping, Sync with Wait) select on it and answer early so
// that shutdown is not held up by parked phones. It returns nil (never
// closed) for a context that did not come from a Server.
func Draining(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(drainKey{}).(<-chan struct{})
	return ch
}

// Addrs returns the bound addresses (public first, then admin when
// enabled, then the plain-HTTP listener when configured) once Run has
// started listening.
func (s *Server) Addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.addrs...)
}

// Run listens and serves until ctx is cancelled, then stops accepting,
// signals Draining, and waits up to ShutdownTimeout for in-flight requests.
// ready, when not nil, is called with the bound addresses (as Addrs).
func (s *Server) Run(ctx context.Context, ready func(addrs []string)) error {
	log := s.deps.Logger
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
	}
	var aln, hln net.Listener
	if s.admin != nil {
		if aln, err = net.Listen("tcp", s.cfg.AdminListen); err != nil {
			ln.Close()
			return fmt.Errorf("admin listen %s: %w", s.cfg.AdminListen, err)
		}
	}
	if s.http != nil {
		if hln, err = net.Listen("tcp", s.cfg.HTTPListen); err != nil {
			ln.Close()
			if aln != nil {
				aln.Close()
			}
			return fmt.Errorf("http listen %s: %w", s.cfg.HTTPListen, err)
		}
	}
	var adminAddr, httpAddr string
	s.mu.Lock()
	s.addrs = []string{ln.Addr().String()}
	if aln != nil {
		adminAddr = aln.Addr().String()
		s.addrs = append(s.addrs, adminAddr)
	}
	if hln != nil {
		httpAddr = hln.Addr().String()
		s.addrs = append(s.addrs, httpAddr)
	}
	addrs := append([]string(nil), s.addrs...)
	s.mu.Unlock()

	useTLS := s.main.TLSConfig != nil
	errc := make(chan error, 3)
	go func() {
		var err error
		if useTLS {
			err = s.main.ServeTLS(ln, "", "")
		} else {
			err = s.main.Serve(ln)
		}
		errc <- err
	}()
	if aln != nil {
		go func() { errc <- s.admin.Serve(aln) }()
	}
	if hln != nil {
		go func() { errc <- s.http.Serve(hln) }()
	}
	attrs := []any{"addr", addrs[0], "tls", useTLS, "admin", adminAddr}
	if hln != nil {
		attrs = append(attrs, "http", httpAddr)
	}
	log.Info("listening", attrs...)
	if ready != nil {
		ready(addrs)
	}

	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			s.shutdown(context.Background())
			return fmt.Errorf("serve: %w", err)
		}
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

func (s *Server) shutdown(ctx context.Context) error {
	s.drainMu.Do(func() { close(s.drain) })
	var errs []error
	if err := s.main.Shutdown(ctx); err != nil {
		errs = append(errs, err)
		s.main.Close()
	}
	for _, o := range []*http.Server{s.admin, s.http} {
		if o == nil {
			continue
		}
		if err := o.Shutdown(ctx); err != nil {
			errs = append(errs, err)
			o.Close()
		}
	}
	return errors.Join(errs...)
}

func (s *Server) health() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := s.deps.Store.Ping(ctx); err != nil {
			LoggerFrom(r.Context(), s.deps.Logger).Error("health check failed", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "store unavailable")
			return
		}
		fmt.Fprintln(w, "ok")
	})
}

func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
