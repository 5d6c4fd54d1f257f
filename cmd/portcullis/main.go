// Command portcullis is the Portcullis service: `portcullis serve` runs the API and
// `portcullis migrate up|down|status` manages the schema.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/portcullis/portcullis/internal/app"
	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/httpserver"
	"github.com/portcullis/portcullis/internal/postgres"
	"github.com/portcullis/portcullis/internal/telemetry"
)

const usage = `usage:
  portcullis serve [-no-migrate]     run the API (migrates first unless told not to)
  portcullis migrate up|down|status  manage the database schema
  portcullis keys rotate             publish a new signing key now (it signs after PORTCULLIS_JWKS_PREPUBLISH)
  portcullis admin create -email E -username U [-full-name N] [-password-stdin]
                                     create an admin; the password is read from stdin, or generated and printed once
  portcullis admin set-password -email E [-password-stdin]
                                     set an account's password (a lost admin's way back in) and end its sessions
  portcullis healthcheck [-ready]    exit 0 when the local server answers /healthz (/readyz) with 200
  portcullis version                 print the build's version (or commit)
Configuration comes from environment variables; see README.md.`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal starts the drain and graceful shutdown; unregistering then gives the next
	// one its default action, so a second SIGTERM or Ctrl-C ends the process at once instead of
	// being swallowed until the drain and the shutdown timeout run out.
	go func() { <-ctx.Done(); stop() }()
	if err := run(ctx, os.Args[1:], getenv, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "portcullis:", err)
		os.Exit(1)
	}
}

// getenv is os.Getenv, except that PORTCULLIS_METRICS_ADDR set to the empty string reads "off",
// so an empty value turns metrics off rather than falling back to the default.
func getenv(key string) string {
	v, ok := os.LookupEnv(key)
	if ok && v == "" && key == "PORTCULLIS_METRICS_ADDR" {
		return "off"
	}
	return v
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	if args[0] == "version" {
		_, err := fmt.Fprintln(stdout, thisVersion())
		return err
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	logger := newLogger(stdout, cfg.LogLevel)
	switch args[0] {
	case "serve":
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		noMigrate := fs.Bool("no-migrate", false, "do not apply pending migrations at start")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *noMigrate {
			cfg.Postgres.AutoMigrate = false
		}
		return serve(ctx, cfg, getenv, logger)
	case "migrate":
		if len(args) != 2 {
			return errors.New(usage)
		}
		pool, err := postgres.Open(ctx, cfg.Postgres.URL, 2)
		if err != nil {
			return err
		}
		defer pool.Close()
		if args[1] == "up" { // builds the schema
			if err := postgres.RequireCaseFolding(ctx, pool, cfg.Postgres.AllowASCIICaseFolding, logger); err != nil {
				return err
			}
		}
		return postgres.Migrate(ctx, pool, args[1], logger)
	case "keys":
		if len(args) != 2 || args[1] != "rotate" {
			return errors.New(usage)
		}
		cfg.Postgres.AutoMigrate = false
		a, err := app.New(ctx, cfg, logger)
		if err != nil {
			return err
		}
		defer a.Close()
		if err := a.Tokens.Rotate(ctx, true); err != nil {
			return err
		}
		kid, at := a.Tokens.NewestKey()
		logger.InfoContext(ctx, "signing key published", "published_kid", kid, "signs_from", at.UTC().Format(time.RFC3339),
			"signing_kid", a.Tokens.SigningKeyID())
		return nil
	case "healthcheck":
		return healthcheck(ctx, cfg, args[1:], stdout)
	case "admin":
		switch {
		case len(args) >= 2 && args[1] == "create":
			return createAdmin(ctx, cfg, args[2:], stdin, stdout)
		case len(args) >= 2 && args[1] == "set-password":
			return setPassword(ctx, cfg, args[2:], stdin, stdout)
		}
		return errors.New(usage)
	default:
		return fmt.Errorf("unknown command %q\n%s", args[0], usage)
	}
}

func serve(ctx context.Context, cfg config.Config, getenv func(string) string, logger *slog.Logger) error {
	if cfg.Processors > 0 { // for serve's lifetime (several serve in one test process)
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(cfg.Processors))
	}
	logger.InfoContext(ctx, "starting", "version", thisVersion(), "gomaxprocs", runtime.GOMAXPROCS(0), "config", cfg.Redacted())
	slog.SetDefault(logger) // the OpenTelemetry SDK's diagnostics, among others, in the one JSON log
	stopTracing, err := telemetry.SetupTracing(ctx, getenv, thisVersion())
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stopTracing(sctx)
	}()
	// Read before the database is touched: unreadable files stop serve with their variables
	// named, not once the migrations have run.
	var cert tls.Certificate
	if cfg.HTTP.TLSCertFile != "" {
		if cert, err = tls.LoadX509KeyPair(cfg.HTTP.TLSCertFile, cfg.HTTP.TLSKeyFile); err != nil {
			return fmt.Errorf("PORTCULLIS_TLS_CERT_FILE, PORTCULLIS_TLS_KEY_FILE: %w", err)
		}
	}
	a, err := app.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer a.Close()
	a.RunRetention()
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("listen for metrics on %s: %w", cfg.MetricsAddr, err)
		}
		msrv := &http.Server{Handler: metricsMux(a), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = msrv.Serve(mln) }()
		defer msrv.Close()
		logger.InfoContext(ctx, "metrics listening", "addr", mln.Addr().String())
	}
	if cfg.DebugAddr != "" {
		dln, err := net.Listen("tcp", cfg.DebugAddr)
		if err != nil {
			return fmt.Errorf("listen for debug on %s: %w", cfg.DebugAddr, err)
		}
		dsrv := &http.Server{Handler: debugMux(), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = dsrv.Serve(dln) }()
		defer dsrv.Close()
		logger.WarnContext(ctx, "pprof debug listener on; keep it off the network", "addr", dln.Addr().String())
	}
	srv := httpserver.NewHTTPServer(cfg.HTTP, a.Handler, logger)
	srv.BaseContext = func(net.Listener) context.Context { return context.WithoutCancel(ctx) }
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTP.Addr, err)
	}
	tlsOn := cfg.HTTP.TLSCertFile != ""
	logger.InfoContext(ctx, "listening", "addr", ln.Addr().String(), "tls", tlsOn)
	errc := make(chan error, 1)
	go func() {
		if tlsOn {
			srv.TLSConfig.Certificates = []tls.Certificate{cert}
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Readiness fails first, so load balancers drain this instance before it stops accepting.
	a.Drain()
	logger.Info("draining", "for", cfg.ShutdownDrain.String())
	select {
	case <-time.After(cfg.ShutdownDrain):
	case err := <-errc:
		return err
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// version is the build's version, set with -ldflags "-X main.version=…"; see buildVersion.
var version = "dev"

// buildVersion names the build: linked (main.version) when set at link time, else the module's
// version (go install …@v1.2.3), else the commit the build was made from (12 hex digits,
// "-dirty" when the tree had changes), else "dev".
func buildVersion(linked string, info *debug.BuildInfo, ok bool) string {
	if linked != "dev" && linked != "" {
		return linked
	}
	if !ok || info == nil {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value[:min(12, len(s.Value))]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "-dirty"
		}
	}
	if rev == "" {
		return "dev"
	}
	return rev + dirty
}

// thisVersion is this binary's buildVersion.
func thisVersion() string {
	info, ok := debug.ReadBuildInfo()
	return buildVersion(version, info, ok)
}

func metricsMux(a *app.App) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.Metrics.Handler())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// net/http's own 404 and 405 are text/plain; the service's errors are problems.
		if r.URL.Path == "/metrics" {
			w.Header().Set("Allow", "GET, HEAD")
			httpserver.WriteStatusProblem(w, http.StatusMethodNotAllowed)
			return
		}
		httpserver.WriteStatusProblem(w, http.StatusNotFound)
	})
}

// debugMux serves net/http/pprof on its own listener: never on the API port, and off unless
// PORTCULLIS_DEBUG_ADDR is set.
func debugMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}
