// Package redis connects to Redis for the service's fast paths. Redis is never the source of
// truth: a Client that cannot reach it reports so and callers fall back to PostgreSQL. A Client
// created while Redis is down keeps trying to connect in the background.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/redis/rueidis/rueidisotel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/every"
	"github.com/portcullis/portcullis/internal/telemetry"
)

// ErrUnavailable is returned while no connection to Redis exists.
var ErrUnavailable = errors.New("redis unavailable")

// cacheBytes bounds the client-side cache of each connection.
const cacheBytes = 32 << 20

// downBackoff is how long calls skip Redis after one got no answer from it, before one call
// tries again (see answering).
const downBackoff = time.Second

// Client is a rueidis client that may not be connected yet, with a key prefix and a per-call
// timeout.
type Client struct {
	prefix   string
	timeout  time.Duration
	opt      rueidis.ClientOption
	logger   *slog.Logger
	otelOpts []rueidisotel.Option
	meters   metric.MeterProvider
	metrics  *clientMetrics

	c      atomic.Pointer[conn]
	stop   context.CancelFunc
	closed sync.WaitGroup

	// shared bounds the calls made while tracing is off (see bound).
	shared   atomic.Pointer[sharedDeadline]
	sharedMu sync.Mutex

	// start anchors downUntil: nanoseconds since start after which one call may try Redis
	// again, zero while Redis answers (see answering).
	start     time.Time
	backoff   time.Duration
	downUntil atomic.Int64
}

// conn is one connected rueidis client, and the same client under OpenTelemetry.
type conn struct {
	traced rueidis.Client // spans under the request's, and command metrics
	raw    rueidis.Client // for GetCached with tracing off (see there)
}

// sharedDeadline is a context whose deadline is at least the per-call timeout away until renew.
type sharedDeadline struct {
	ctx    context.Context
	cancel context.CancelFunc // never called early: calls may still hold ctx; its timer frees it
	renew  time.Time
}

// Option configures Open.
type Option func(*Client)

// WithMeterProvider records the client's own metrics (dials, command latency) with mp.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *Client) {
		c.meters = mp
		c.otelOpts = append(c.otelOpts, rueidisotel.WithMeterProvider(mp))
	}
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
	// Server-assisted client-side caching (RESP3 tracking): GetCached answers from memory, and
	// Redis tells this client to drop a copy the moment any client writes its key.
	opt.CacheSizeEachConn = cacheBytes
	// One connection for every command. rueidis otherwise spreads keyed writes over several at
	// random while a key's cached reads stay on one, and Redis orders invalidations only within a
	// connection: SetEach's guarantee (see there) needs the write, its PING and the key's cached
	// reads on the same one.
	opt.PipelineMultiplex = -1
	ctx, stop := context.WithCancel(context.Background())
	c := &Client{prefix: cfg.KeyPrefix, timeout: cfg.Timeout, opt: opt, logger: logger, stop: stop, start: time.Now(), backoff: downBackoff}
	for _, o := range opts {
		o(c)
	}
	if c.metrics, err = newClientMetrics(c.meters); err != nil {
		return nil, err
	}
	c.opt.DialCtxFn = c.metrics.trackDials(dial)
	if !telemetry.Tracing() {
		// No span would be recorded: spare every command the global tracer's bookkeeping.
		c.otelOpts = append(c.otelOpts, rueidisotel.WithTracerProvider(tracenoop.NewTracerProvider()))
	} else if attrs := serverAttrs(opt.InitAddress); attrs != nil {
		c.otelOpts = append(c.otelOpts, rueidisotel.TraceAttrs(attrs...)) // as rueidisotel.NewClient would
	}
	if err := c.connect(); err != nil {
		logger.Warn("redis unreachable; serving from postgresql and retrying", "error", err)
		c.closed.Add(1)
		go c.retry(ctx)
	}
	return c, nil
}

func (c *Client) connect() error {
	rc, err := rueidis.NewClient(c.opt)
	if errors.Is(err, rueidis.ErrNoCache) {
		// A server without RESP3 tracking: GetCached then reads Redis every time.
		c.logger.Warn("redis has no client-side caching (RESP3); every cached read goes to redis")
		c.opt.DisableCache = true
		rc, err = rueidis.NewClient(c.opt)
	}
	if err != nil {
		return err
	}
	// WithClient is deprecated in favour of rueidisotel.NewClient, which builds the client
	// itself and so never lends out the bare one GetCached needs; its only addition, dial
	// metrics, is clientMetrics.trackDials.
	traced := rueidisotel.WithClient(rc, c.otelOpts...) //nolint:staticcheck // see above
	c.c.Store(&conn{traced: traced, raw: rc})
	return nil
}

func (c *Client) retry(ctx context.Context) {
	defer c.closed.Done()
	every.Tick(ctx, 2*time.Second, func() bool {
		if c.connect() != nil {
			return true
		}
		c.logger.Info("redis connected")
		return false
	})
}

// serverAttrs are the server.address and server.port of a single-server client's spans.
func serverAttrs(addrs []string) []attribute.KeyValue {
	if len(addrs) != 1 {
		return nil
	}
	host, port, err := net.SplitHostPort(addrs[0])
	if err != nil {
		return []attribute.KeyValue{attribute.String("server.address", addrs[0])}
	}
	if n, err := strconv.Atoi(port); err == nil {
		return []attribute.KeyValue{attribute.String("server.address", host), attribute.Int("server.port", n)}
	}
	return []attribute.KeyValue{attribute.String("server.address", host)}
}

// Do runs fn with the connected client under the per-call timeout, or returns ErrUnavailable
// while Redis is not answering (see answering).
func (c *Client) Do(ctx context.Context, fn func(ctx context.Context, rc rueidis.Client) error) error {
	return c.do(ctx, false, fn)
}

// do is Do; with always set it asks Redis even during a backoff: for writes that other
// instances wait for (invalidations), which must land the moment Redis answers, and Ping.
func (c *Client) do(ctx context.Context, always bool, fn func(ctx context.Context, rc rueidis.Client) error) error {
	p := c.c.Load()
	if p == nil || !always && !c.answering(true) {
		return ErrUnavailable
	}
	bctx, cancel := c.bound(ctx)
	defer cancel()
	err := fn(bctx, p.traced)
	c.observe(ctx, err)
	return err
}

// answering reports whether a call should go to Redis. A Redis that hangs or drops packets
// (rather than closing its connections) costs every call the whole timeout, and a request makes
// several; so after a call got no answer, calls fail at once with ErrUnavailable (their callers
// answer from PostgreSQL) and only one, a probe, tries Redis again per backoff. GetCached never
// probes (probe false): an answer from memory says nothing about Redis.
func (c *Client) answering(probe bool) bool {
	until := c.downUntil.Load()
	if until == 0 {
		return true
	}
	now := int64(time.Since(c.start))
	return probe && now >= until && c.downUntil.CompareAndSwap(until, now+int64(c.backoff))
}

// observe records the outcome of a call made for ctx: an error that is not Redis's own answer
// (a timeout, a broken or refused connection) starts a backoff; anything Redis answered ends it.
func (c *Client) observe(ctx context.Context, err error) {
	var re *rueidis.RedisError
	switch {
	case err == nil || errors.As(err, &re):
		if c.downUntil.Load() != 0 && c.downUntil.Swap(0) != 0 {
			c.logger.Info("redis answers again")
		}
	case ctx.Err() != nil: // the caller giving up says nothing about Redis
	case c.downUntil.Load() == 0 && c.downUntil.Swap(int64(time.Since(c.start))+int64(c.backoff)) == 0:
		c.logger.Warn("redis not answering; serving from postgresql", "error", err)
	}
}

// bound returns the context of one call: at least the per-call timeout to run. With tracing
// on it is ctx with its own timeout, so the command's span sits under the request's. With
// tracing off nothing is read from ctx but its deadline, and the calls of the next timeout/4
// share one (between 1 and 1.25 timeouts away) instead of each starting a timer:
// context.WithTimeout was 4% of an authenticated read's CPU. Such a call is not cancelled with
// its request; the deadline still bounds it.
func (c *Client) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if telemetry.Tracing() {
		return context.WithTimeout(ctx, c.timeout)
	}
	now := time.Now()
	if d := c.shared.Load(); d != nil && now.Before(d.renew) {
		return d.ctx, func() {}
	}
	c.sharedMu.Lock()
	defer c.sharedMu.Unlock()
	now = time.Now()
	if d := c.shared.Load(); d != nil && now.Before(d.renew) {
		return d.ctx, func() {}
	}
	d := &sharedDeadline{renew: now.Add(c.timeout / 4)}
	d.ctx, d.cancel = context.WithDeadline(context.Background(), now.Add(c.timeout+c.timeout/4))
	c.shared.Store(d)
	return d.ctx, func() {}
}

// Key returns name under the configured prefix.
func (c *Client) Key(name string) string { return c.prefix + name }

// Ping checks that Redis answers. It asks Redis even during a backoff, so readiness reports
// Redis itself, and a success ends the backoff.
func (c *Client) Ping(ctx context.Context) error {
	return c.do(ctx, true, func(ctx context.Context, rc rueidis.Client) error {
		return rc.Do(ctx, rc.B().Ping().Build()).Error()
	})
}

// Close stops retrying and closes the connection.
func (c *Client) Close() {
	c.stop()
	c.closed.Wait()
	if p := c.c.Load(); p != nil {
		p.traced.Close()
	}
}

// GetCached returns key's value and whether it exists, answered from this instance's memory
// when it read key within ttl and no client has written key since.
//
// Its reads are counted in portcullis_redis_cached_reads_total by where the answer came from.
// With tracing off they skip the OpenTelemetry wrapper, whose timer, histogram and counters
// around an answer from memory were 5% of an authenticated read's CPU, and so are not in
// rueidis_command_duration_seconds.
func (c *Client) GetCached(ctx context.Context, key string, ttl time.Duration) (value string, ok bool, err error) {
	p := c.c.Load()
	// While Redis is not answering, this instance's copies may miss invalidations until rueidis
	// notices (its keep-alive PING goes unanswered, up to two seconds): they are not used.
	if p == nil || !c.answering(false) {
		return "", false, ErrUnavailable
	}
	bctx, cancel := c.bound(ctx)
	defer cancel()
	rc := p.traced
	if !telemetry.Tracing() {
		rc = p.raw
	}
	res := rc.DoCache(bctx, rc.B().Get().Key(key).Cache(), ttl)
	if res.NonRedisError() == nil {
		c.metrics.countCachedRead(res.IsCacheHit())
	}
	if !res.IsCacheHit() {
		c.observe(ctx, res.NonRedisError())
	}
	value, err = res.ToString()
	if rueidis.IsRedisNil(err) {
		return "", false, nil
	}
	return value, err == nil, err
}

// SetNX sets key to value for ttl unless key exists.
func (c *Client) SetNX(ctx context.Context, key, value string, ttl time.Duration) error {
	return c.Do(ctx, func(ctx context.Context, rc rueidis.Client) error {
		err := rc.Do(ctx, rc.B().Set().Key(key).Value(value).Nx().Ex(ttl).Build()).Error()
		if rueidis.IsRedisNil(err) {
			return nil // exists
		}
		return err
	})
}

// setNXBeforeScript sets KEYS[1] to ARGV[1] for ARGV[2] milliseconds unless the key exists or
// Redis's clock has passed ARGV[3] (milliseconds since the epoch).
var setNXBeforeScript = rueidis.NewLuaScript(`
local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[3]) then
	return 0
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
	return 1
end
return 0
`)

// SetNXBefore is SetNX that takes effect only if it reaches Redis before deadline, by Redis's
// clock: a write held up on its way (a link that stalls, then heals, delivering what it had
// queued) must not land after what it was raced against has moved on.
func (c *Client) SetNXBefore(ctx context.Context, key, value string, ttl time.Duration, deadline time.Time) error {
	return c.Do(ctx, func(ctx context.Context, rc rueidis.Client) error {
		return setNXBeforeScript.Exec(ctx, rc, []string{key},
			[]string{value, strconv.FormatInt(ttl.Milliseconds(), 10), strconv.FormatInt(deadline.UnixMilli(), 10)}).Error()
	})
}

// SetEach sets keys[i] to values[i] for ttl, in one round trip. When it returns, this
// instance's cached copies of keys are gone too. It asks Redis even during a backoff (see do).
func (c *Client) SetEach(ctx context.Context, keys, values []string, ttl time.Duration) error {
	if len(keys) == 0 {
		return nil
	}
	return c.do(ctx, true, func(ctx context.Context, rc rueidis.Client) error {
		cmds := make(rueidis.Commands, len(keys), len(keys)+1)
		for i, k := range keys {
			cmds[i] = rc.B().Set().Key(k).Value(values[i]).Ex(ttl).Build()
		}
		// Redis sends a client the invalidations its own write caused after that write's reply,
		// so a read right after SetEach could still find the old copy. They come before the
		// reply to the next command on the connection, and are read in order: a PING's reply
		// means they have been applied.
		cmds = append(cmds, rc.B().Ping().Build())
		for _, r := range rc.DoMulti(ctx, cmds...) {
			if err := r.Error(); err != nil {
				return err
			}
		}
		return nil
	})
}
