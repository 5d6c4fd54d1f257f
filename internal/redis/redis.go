// Package redis connects to Redis for the service's fast paths. Redis is never the source of
// truth: a Client that cannot reach it reports so and callers fall back to PostgreSQL. A Client
// created while Redis is down keeps trying to connect in the background.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/redis/rueidis/rueidisotel"
	"go.opentelemetry.io/otel/metric"

	"github.com/portcullis/portcullis/internal/config"
)

// ErrUnavailable is returned while no connection to Redis exists.
var ErrUnavailable = errors.New("redis unavailable")

// Client is a rueidis client that may not be connected yet, with a key prefix and a per-call
// timeout.
type Client struct {
	prefix   string
	timeout  time.Duration
	opt      rueidis.ClientOption
	logger   *slog.Logger
	otelOpts []rueidisotel.Option

	c      atomic.Pointer[rueidis.Client]
	stop   context.CancelFunc
	closed sync.WaitGroup
}

// Option configures Open.
type Option func(*Client)

// WithMeterProvider records the client's own metrics (dials, command latency) with mp.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *Client) { c.otelOpts = append(c.otelOpts, rueidisotel.WithMeterProvider(mp)) }
}

// Open returns a Client for cfg. It never fails on an unreachable server: it keeps retrying in
// the background until Close. It fails only on a malformed URL.
func Open(cfg config.Redis, logger *slog.Logger, opts ...Option) (*Client, error) {
	opt, err := rueidis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("parse REDIS_URL: %w", err)
	}
	opt.Dialer.Timeout = time.Second
	opt.ConnWriteTimeout = time.Second
	opt.DisableCache = true
	ctx, stop := context.WithCancel(context.Background())
	c := &Client{prefix: cfg.KeyPrefix, timeout: cfg.Timeout, opt: opt, logger: logger, stop: stop}
	for _, o := range opts {
		o(c)
	}
	if err := c.connect(); err != nil {
		logger.Warn("redis unreachable; serving from postgresql and retrying", "error", err)
		c.closed.Add(1)
		go c.retry(ctx)
	}
	return c, nil
}

func (c *Client) connect() error {
	rc, err := rueidisotel.NewClient(c.opt, c.otelOpts...) // a span per command, under the request's span
	if err != nil {
		return err
	}
	c.c.Store(&rc)
	return nil
}

func (c *Client) retry(ctx context.Context) {
	defer c.closed.Done()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if c.connect() == nil {
				c.logger.Info("redis connected")
				return
			}
		}
	}
}

// Do runs fn with the connected client under the per-call timeout, or returns ErrUnavailable.
func (c *Client) Do(ctx context.Context, fn func(ctx context.Context, rc rueidis.Client) error) error {
	p := c.c.Load()
	if p == nil {
		return ErrUnavailable
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return fn(ctx, *p)
}

// Key returns name under the configured prefix.
func (c *Client) Key(name string) string { return c.prefix + name }

// Ping checks that Redis answers.
func (c *Client) Ping(ctx context.Context) error {
	return c.Do(ctx, func(ctx context.Context, rc rueidis.Client) error {
		return rc.Do(ctx, rc.B().Ping().Build()).Error()
	})
}

// Close stops retrying and closes the connection.
func (c *Client) Close() {
	c.stop()
	c.closed.Wait()
	if p := c.c.Load(); p != nil {
		(*p).Close()
	}
}
