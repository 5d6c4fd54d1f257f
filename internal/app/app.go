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
	"github.com/portcullis/portcullis/internal/tokens"
	"github.com/portcullis/portcullis/internal/users"
)

// App is a wired service: its HTTP handler and the resources to release.
type App struct {
	Handler http.Handler
	Pool    *pgxpool.Pool
	Tokens  *tokens.Service
	Users   *users.Service

	redis  *redis.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New connects to PostgreSQL and Redis, migrates when configured to, and builds the handler.
// Background work (key rotation, cache invalidation retries) runs until Close.
func New(ctx context.Context, cfg config.Config, logger *slog.Logger) (*App, error) {
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
	if cfg.Postgres.AutoMigrate {
		if err := postgres.Migrate(ctx, pool, "up", logger); err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
	}
	if a.redis, err = redis.Open(cfg.Redis, logger); err != nil {
		return nil, err
	}
	if a.Tokens, err = tokens.New(ctx, pool, cfg.Auth, logger); err != nil {
		return nil, err
	}
	hasher := password.NewHasher(password.Params{
		MemoryKiB: cfg.Password.MemoryKiB, Iterations: cfg.Password.Iterations, Parallelism: cfg.Password.Parallelism,
	})
	limits, loginFailures, err := parseLimits(cfg.Limits)
	if err != nil {
		return nil, err
	}
	limiter := ratelimit.New(a.redis, logger)
	userSvc := users.NewService(users.NewStore(pool), hasher, password.NewGate(cfg.Password.Concurrency, cfg.Password.Queue), logger)
	a.Users = userSvc
	sessionSvc := sessions.NewService(sessions.NewStore(pool), a.redis, cfg.Redis.SessionCacheTTL, cfg.Auth, logger)
	srv, err := httpserver.New(cfg.HTTP, httpserver.Deps{
		Auth:     auth.NewService(userSvc, sessionSvc, a.Tokens, limiter, loginFailures),
		Limiter:  limiter,
		Limits:   limits,
		Admin:    admin.NewService(userSvc, sessionSvc, audit.NewTrail(pool)),
		Users:    userSvc,
		Sessions: sessionSvc,
		Tokens:   a.Tokens,
		Ready:    map[string]httpserver.Pinger{"postgres": pool, "redis": a.redis},
		Logger:   logger,
	})
	if err != nil {
		return nil, err
	}
	a.Handler = srv

	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	a.wg.Add(2)
	go func() { defer a.wg.Done(); a.Tokens.Run(bg, time.Minute) }()
	go func() { defer a.wg.Done(); sessionSvc.Run(bg, time.Second) }()
	ok = true
	return a, nil
}

// parseLimits reads the configured rate limits, naming the variable of any malformed one.
func parseLimits(c config.Limits) (httpserver.Limits, ratelimit.Limit, error) {
	var (
		l    httpserver.Limits
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
	return l, fail, errors.Join(errs...)
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
