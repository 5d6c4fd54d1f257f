// Package app wires the service together from its configuration. The binary and the end-to-end
// tests build the service the same way, through New.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/portcullis/portcullis/internal/admin"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/auth"
	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/httpserver"
	"github.com/portcullis/portcullis/internal/password"
	"github.com/portcullis/portcullis/internal/postgres"
	"github.com/portcullis/portcullis/internal/ratelimit"
	"github.com/portcullis/portcullis/internal/redis"
	"github.com/portcullis/portcullis/internal/sessions"
	"github.com/portcullis/portcullis/internal/telemetry"
	"github.com/portcullis/portcullis/internal/tokens"
	"github.com/portcullis/portcullis/internal/users"
)

// App is a wired service: its HTTP handler and the resources to release.
type App struct {
	Handler http.Handler
	Pool    *pgxpool.Pool
	Tokens  *tokens.Service
	Users   *users.Service
	Metrics *telemetry.Metrics

	draining atomic.Bool

	redis  *redis.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup
	bg     context.Context // background work's, ended by Close
	// retention are the purge loops of PORTCULLIS_SESSION_RETENTION and _AUDIT_RETENTION, which
	// RunRetention starts: a server's work, not a one-shot command's.
	retention []func(context.Context)
}

// New connects to PostgreSQL and Redis, migrates when configured to, and builds the handler.
// What it logs with a request's context carries the request's trace_id and span_id.
// Background work (key rotation, cache invalidation retries) runs until Close.
func New(ctx context.Context, cfg config.Config, logger *slog.Logger) (*App, error) {
	logger = slog.New(telemetry.LogHandler(logger.Handler()))
	// Malformed limits are refused before anything is created or migrated.
	limits, loginFailures, err := ParseLimits(cfg.Limits)
	if err != nil {
		return nil, err
	}
	// With Redis unreachable, an account's failure budget is replayed from the wrong passwords
	// audited over the last two failure periods (auth.Service.sharedBudget): a purge that
	// removed them sooner would give their guesses back.
	if cfg.AuditRetention != 0 && cfg.AuditRetention < 2*loginFailures.Period {
		return nil, fmt.Errorf("PORTCULLIS_AUDIT_RETENTION (%s) must be 0 or at least twice the period of PORTCULLIS_RATE_LIMIT_LOGIN_ACCOUNT_FAILURES (%s): "+
			"failed logins are replayed from the audit trail over two periods when Redis is unreachable", cfg.AuditRetention, loginFailures.Period)
	}
	if cfg.Postgres.CreateDatabase {
		if err := postgres.EnsureDatabase(ctx, cfg.Postgres.URL); err != nil {
			return nil, err
		}
	}
	pool, err := postgres.Open(ctx, cfg.Postgres.URL, cfg.Postgres.MaxConns)
	if err != nil {
		return nil, err
	}
	a := &App{Pool: pool}
	ok := false
	defer func() {
		if !ok {
			a.Close()
		}
	}()
	// Before the schema is touched: the unique indexes on lower() are only as good as it.
	if err := postgres.RequireCaseFolding(ctx, pool, cfg.Postgres.AllowASCIICaseFolding, logger); err != nil {
		return nil, err
	}
	if cfg.Postgres.AutoMigrate {
		if err := postgres.Migrate(ctx, pool, "up", logger); err != nil { // warns of a newer schema itself
			return nil, fmt.Errorf("migrate: %w", err)
		}
	} else if newer, known, err := postgres.Newer(ctx, pool); err != nil {
		return nil, err
	} else if len(newer) > 0 {
		postgres.WarnNewer(ctx, logger, newer, known)
	}
	a.Metrics = telemetry.NewMetrics(pool)
	if a.redis, err = redis.Open(cfg.Redis, logger, redis.WithMeterProvider(a.Metrics.MeterProvider)); err != nil {
		return nil, err
	}
	if a.Tokens, err = tokens.New(ctx, pool, cfg.Auth, logger); err != nil {
		return nil, err
	}
	hasher := password.NewHasherFor(password.Params{
		MemoryKiB: cfg.Password.MemoryKiB, Iterations: cfg.Password.Iterations, Parallelism: cfg.Password.Parallelism,
	}, cfg.Password.Concurrency)
	limiter := ratelimit.New(a.redis, logger, ratelimit.WithMeterProvider(a.Metrics.MeterProvider))
	gate := password.NewGate(cfg.Password.Concurrency, cfg.Password.Queue)
	gate.OnDone(func(wait, run time.Duration) {
		a.Metrics.HashWait.Observe(wait.Seconds())
		a.Metrics.HashRun.Observe(run.Seconds())
	})
	a.Metrics.ObserveHashing(gate.Load)
	userSvc := users.NewService(users.NewStore(pool), hasher, gate, logger,
		users.WithCache(a.redis, cfg.Redis.SessionCacheTTL))
	a.Users = userSvc
	sessionSvc := sessions.NewService(sessions.NewStore(pool), a.redis, cfg.Redis.SessionCacheTTL, cfg.Auth, logger)
	sessionSvc.OnRevoke(func(reason string, n int) { a.Metrics.Revocations.WithLabelValues(reason).Add(float64(n)) })
	// PostgreSQL down fails readiness; Redis down only degrades the service (Deps.Degrades).
	ready, degrades := map[string]httpserver.Pinger{"postgres": pool}, map[string]httpserver.Pinger{"redis": a.redis}
	serving := pingFunc(a.checkServing)
	srv, err := httpserver.New(cfg.HTTP, httpserver.Deps{
		Auth:     auth.NewService(userSvc, sessionSvc, a.Tokens, limiter, loginFailures),
		Limiter:  limiter,
		Limits:   limits,
		Admin:    admin.NewService(userSvc, sessionSvc, audit.NewTrail(pool)),
		Users:    userSvc,
		Sessions: sessionSvc,
		Tokens:   a.Tokens,
		Ready:    ready,
		Degrades: degrades,
		Serving:  serving,
		Metrics:  a.Metrics,
		Logger:   logger,
	})
	if err != nil {
		return nil, err
	}
	a.Handler = srv

	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.bg, a.cancel = bg, cancel
	a.retention = []func(context.Context){
		func(ctx context.Context) { sessionSvc.RunPurge(ctx, time.Hour) },
		func(ctx context.Context) { audit.RunPurge(ctx, pool, cfg.AuditRetention, time.Hour, logger) },
	}
	a.wg.Add(4)
	go func() { defer a.wg.Done(); a.Tokens.Run(bg, config.KeyReload) }()
	go func() { defer a.wg.Done(); sessionSvc.Run(bg, time.Second) }()
	go func() { defer a.wg.Done(); userSvc.RunCache(bg, time.Second) }()
	go func() { defer a.wg.Done(); a.sample(bg, ready, degrades, serving, sessionSvc) }()
	ok = true
	return a, nil
}

// Drain makes readiness fail from now on, so load balancers stop sending traffic before the
// server stops accepting it.
func (a *App) Drain() { a.draining.Store(true); a.Metrics.Ready.Set(0) }

var errDraining = errors.New("draining")

func (a *App) checkServing(context.Context) error {
	if a.draining.Load() {
		return errDraining
	}
	return nil
}

type pingFunc func(context.Context) error

func (f pingFunc) Ping(ctx context.Context) error { return f(ctx) }

// liveCountPeriod is how often the instances sharing a Redis count live sessions, one of them
// at a time (sessions.Service.SharedLiveCount).
const liveCountPeriod = 30 * time.Second

// sample refreshes the gauges that are read rather than counted: dependency health every 10s
// and live sessions every 30s, from the count the instances share.
func (a *App) sample(ctx context.Context, ready, degrades map[string]httpserver.Pinger, serving httpserver.Pinger, s *sessions.Service) {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	up := func(p httpserver.Pinger) bool {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return p.Ping(cctx) == nil
	}
	gauge := map[bool]float64{true: 1, false: 0}
	for i := 0; ; i++ {
		// Ready as /readyz answers: every dependency of ready up and the server serving; one
		// that only degrades the service is reported, not counted.
		allUp := up(serving)
		for name, p := range ready {
			ok := up(p)
			allUp = allUp && ok
			a.Metrics.DependencyUp.WithLabelValues(name).Set(gauge[ok])
		}
		for name, p := range degrades {
			a.Metrics.DependencyUp.WithLabelValues(name).Set(gauge[up(p)])
		}
		a.Metrics.Ready.Set(gauge[allUp])
		if i%3 == 0 {
			if n, ok, _ := s.SharedLiveCount(ctx, liveCountPeriod); ok {
				a.Metrics.ActiveSessions.Set(float64(n))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// ParseLimits reads the configured rate limits, naming the variable of any malformed one; the
// second result is the per-account login failure budget.
func ParseLimits(c config.Limits) (httpserver.Limits, ratelimit.Limit, error) {
	var (
		l    = httpserver.Limits{IPv6Prefix: c.IPv6Prefix}
		fail ratelimit.Limit
		errs []error
	)
	for _, p := range []struct {
		env, name, value string
		into             *ratelimit.Limit
	}{
		{"PORTCULLIS_RATE_LIMIT_IP", "ip", c.IP, &l.IP},
		{"PORTCULLIS_RATE_LIMIT_LOGIN_IP", "login-ip", c.LoginIP, &l.LoginIP},
		{"PORTCULLIS_RATE_LIMIT_REGISTER_IP", "register-ip", c.RegisterIP, &l.RegisterIP},
		{"PORTCULLIS_RATE_LIMIT_REFRESH_IP", "refresh-ip", c.RefreshIP, &l.RefreshIP},
		{"PORTCULLIS_RATE_LIMIT_PASSWORD_IP", "password-ip", c.PasswordIP, &l.PasswordIP},
		{"PORTCULLIS_RATE_LIMIT_PASSWORD_ACCOUNT", "password-account", c.PasswordAccount, &l.PasswordAccount},
		{"PORTCULLIS_RATE_LIMIT_LOGIN_ACCOUNT_FAILURES", "login-failures", c.LoginAccountFailures, &fail},
	} {
		lim, err := ratelimit.ParseLimit(p.name, p.value)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.env, err))
		}
		*p.into = lim
	}
	// The limit on every request guards against floods, and is checked on every request: it
	// may admit before Redis has recorded (see ratelimit.Limit.Deferred). The others guard
	// passwords, accounts and tokens, and stay exact.
	l.IP.Deferred = true
	return l, fail, errors.Join(errs...)
}

// RunRetention starts the session and audit purges, which run at once and then hourly until
// Close. serve starts them; a one-shot command (keys rotate) does not, or each run would purge
// and be cut off by its own Close.
func (a *App) RunRetention() {
	for _, run := range a.retention {
		a.wg.Add(1)
		go func() { defer a.wg.Done(); run(a.bg) }()
	}
}

// Close stops background work and releases connections.
func (a *App) Close() {
	if a.cancel != nil {
		a.cancel()
		a.wg.Wait()
	}
	if a.redis != nil {
		a.redis.Close()
	}
	a.Pool.Close()
}
