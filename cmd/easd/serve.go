package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/easd/easd/eas"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/easd/easd/internal/config"
	"github.com/easd/easd/internal/server"
	"github.com/easd/easd/store/postgres"
)

func runServe(ctx context.Context, e *env, args []string) error {
	fs := config.NewFlagSet("easd serve", "easd serve [flags]\n\nRun the ActiveSync server. With no --database it keeps everything in an\nembedded SQLite file under --data-dir, created on first start.", e.getenv, e.stderr)
	sf := addStoreFlags(fs)
	listen := fs.String("listen", "EASD_LISTEN", ":8080", "public address for ActiveSync, Autodiscover and /healthz")
	admin := fs.String("admin-listen", "EASD_ADMIN_LISTEN", "127.0.0.1:9090", "admin address for /metrics and /healthz; empty disables it")
	cert := fs.String("tls-cert", "EASD_TLS_CERT", "", "PEM certificate chain; with --tls-key serves HTTPS (phones require HTTPS unless a proxy terminates TLS), reloaded within seconds when the files change")
	key := fs.String("tls-key", "EASD_TLS_KEY", "", "PEM private key for --tls-cert")
	af := addACMEFlags(fs)
	grace := fs.Duration("shutdown-timeout", "EASD_SHUTDOWN_TIMEOUT", 10*time.Second, "how long in-flight requests may run after SIGTERM/SIGINT")
	logFormat := fs.String("log-format", "EASD_LOG_FORMAT", "auto", "log format: auto (text on a terminal, else JSON), text or json")
	logLevel := fs.String("log-level", "EASD_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	ef := addEASFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q", fs.Arg(0))
	}
	if (*cert == "") != (*key == "") {
		return usageError("--tls-cert and --tls-key go together")
	}
	log, err := server.NewLogger(e.stderr, *logFormat, *logLevel, e.isTerminal(e.stderr))
	if err != nil {
		return usageError("%v", err)
	}
	easCfg, err := ef.config()
	if err != nil {
		return err
	}
	adCfg := eas.AutodiscoverConfig{URL: *ef.externalURL, Domain: easCfg.Domain, LoggerFrom: server.LoggerFrom}
	if err := adCfg.Validate(); err != nil {
		return usageError("--external-url: %v", err)
	}
	tlsSet, err := af.setup(*cert, *key, *sf.dataDir, log)
	if err != nil {
		return err
	}
	ctx, stop := e.signals(ctx)
	defer stop()

	st, where, err := sf.open(ctx, true)
	if err != nil {
		return err
	}
	defer st.Close()
	log.Info("store ready", "store", where, "version", versionString(), "pid", os.Getpid())

	auth, err := ef.authenticator(st)
	if err != nil {
		return err
	}
	easCfg.Realm = "easd"
	backend, pool, err := ef.mailBackend(log)
	if err != nil {
		return err
	}
	var mail eas.MailBackend
	if backend != nil {
		mail = backend
		defer pool.Close()
		defer backend.CloseWatchers()
	}
	submit, err := ef.submitter(log)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	commands := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "easd_eas_commands_total",
		Help: "ActiveSync commands by name and result (ok, status_N sent in the body, http_N).",
	}, []string{"cmd", "result"})
	reg.MustRegister(commands)
	wake := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "easd_push_wake_seconds",
		Help:    "Time from a change notice reaching a parked Ping or Sync to its decision to answer (checking the device's state).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
	reg.MustRegister(wake)
	deps := eas.Deps{Store: st, Auth: auth, Logger: log, LoggerFrom: server.LoggerFrom, Mail: mail, Submit: submit,
		Items: st, Codecs: eas.DefaultCodecs(),
		Observe:     func(cmd, result string) { commands.WithLabelValues(cmd, result).Inc() },
		ObservePush: func(d time.Duration) { wake.Observe(d.Seconds()) }}
	var bus *postgres.Bus
	if pg, ok := st.(*postgres.Store); ok {
		// Other instances on the same database wake this one's phones.
		bus = pg.NewBus(log)
		deps.Bus = bus
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "easd_bus_connected", Help: "1 while the PostgreSQL LISTEN connection carrying other instances' change notices is up."},
			func() float64 { return boolFloat(bus.Connected()) }))
	}
	as := eas.NewHandler(easCfg, deps)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "easd_push_parked", Help: "Ping and Sync requests held open waiting for changes."},
		func() float64 { return float64(as.Parked()) }))
	if backend != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "easd_imap_watchers", Help: "IMAP connections watching a user's mailbox for push (at most one per user)."},
			func() float64 { return float64(backend.WatchStats().Connections) }))
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "easd_imap_connections", Help: "Open IMAP connections: the command pool's and the watchers'."},
			func() float64 { return float64(pool.Stats().Open + backend.WatchStats().Connections) }))
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "easd_imap_watch_commands_total", Help: "IMAP commands the push watchers sent (IDLE, DONE, STATUS, LIST, SELECT, LOGIN)."},
			func() float64 { return float64(backend.WatchStats().Commands) }))
	}
	// Parked phones are answered as soon as shutdown begins; notices of
	// other instances reach them until then.
	go func() {
		<-ctx.Done()
		as.Drain()
	}()
	if bus != nil {
		go func() {
			if err := as.ListenBus(ctx); err != nil && ctx.Err() == nil {
				log.Error("change bus stopped", "err", err)
			}
		}()
	}
	// Autodiscover shares the handler's failed-login lockout.
	ad := as.Autodiscover(adCfg)
	log.Info("activesync ready", "versions", strings.Join(easCfg.Versions, ","), "commands", strings.Join(as.Commands(), ","),
		"auth", *ef.auth, "policy_enforced", easCfg.Policy.Enforce)

	srv := server.New(server.Config{
		Listen: *listen, AdminListen: *admin, TLS: tlsSet.config, HTTPListen: tlsSet.httpListen, HTTPHandler: tlsSet.httpHandler,
		ShutdownTimeout: *grace,
	}, server.Deps{Logger: log, Store: st, App: appHandler(as, ad), Registry: reg})
	if err := srv.Run(ctx, nil); err != nil {
		return fmt.Errorf("%v", err)
	}
	return nil
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
