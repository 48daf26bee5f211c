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
)

func runServe(ctx context.Context, e *env, args []string) error {
	fs := config.NewFlagSet("easd serve", "easd serve [flags]\n\nRun the ActiveSync server. With no --database it keeps everything in an\nembedded SQLite file under --data-dir, created on first start.", e.getenv, e.stderr)
	sf := addStoreFlags(fs)
	listen := fs.String("listen", "EASD_LISTEN", ":8080", "public address for ActiveSync, Autodiscover and /healthz")
	admin := fs.String("admin-listen", "EASD_ADMIN_LISTEN", "127.0.0.1:9090", "admin address for /metrics and /healthz; empty disables it")
	cert := fs.String("tls-cert", "EASD_TLS_CERT", "", "PEM certificate chain; with --tls-key serves HTTPS (phones require HTTPS unless a proxy terminates TLS)")
	key := fs.String("tls-key", "EASD_TLS_KEY", "", "PEM private key for --tls-cert")
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
	mail, closeMail, err := ef.mailBackend(log)
	if err != nil {
		return err
	}
	defer closeMail()
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
	as := eas.NewHandler(easCfg, eas.Deps{Store: st, Auth: auth, Logger: log, LoggerFrom: server.LoggerFrom, Mail: mail, Submit: submit,
		Observe: func(cmd, result string) { commands.WithLabelValues(cmd, result).Inc() }})
	// Autodiscover shares the handler's failed-login lockout.
	ad := as.Autodiscover(adCfg)
	log.Info("activesync ready", "versions", strings.Join(easCfg.Versions, ","), "commands", strings.Join(as.Commands(), ","),
		"auth", *ef.auth, "policy_enforced", easCfg.Policy.Enforce)

	srv := server.New(server.Config{
		Listen: *listen, AdminListen: *admin, TLSCert: *cert, TLSKey: *key, ShutdownTimeout: *grace,
	}, server.Deps{Logger: log, Store: st, App: appHandler(as, ad), Registry: reg})
	if err := srv.Run(ctx, nil); err != nil {
		return fmt.Errorf("%v", err)
	}
	return nil
}
