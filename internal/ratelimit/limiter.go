package ratelimit

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"go.opentelemetry.io/otel/metric"

	"github.com/portcullis/portcullis/internal/redis"
)

// refundLua gives one event back to KEYS[1]: its TAT moves back by ARGV[1] µs (the emission
// interval), never before Redis's now; a bucket that is full again is deleted. It returns the
// events remaining after, for the burst tolerance ARGV[2].
const refundLua = `
local t = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0) or 0
tat = tat - t
if tat <= now then
  redis.call('DEL', KEYS[1])
  tat = now
else
  redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', string.format('%d', math.ceil((tat - now) / 1000)))
end
return math.floor((tau - (tat - now)) / t)
`

var refundScript = rueidis.NewLuaScript(refundLua)

const (
	// redisBackoff is how long Limiters use only the local limiter after a Redis failure before
	// one request tries Redis again, so a Redis outage costs one timeout per period rather than
	// one per request.
	redisBackoff = time.Second
	// warnEvery throttles the warning that Redis failed.
	warnEvery = 10 * time.Second
)

// Limiter checks limits atomically in Redis, shared by every instance; when Redis cannot be
// reached it falls back to a strict in-process limiter (never to no limit). The local limiter
// starts empty, so during an outage each instance admits up to the full limit on its own.
type Limiter struct {
	rc     *redis.Client
	logger *slog.Logger
	local  *local
	// now is the local limiter's clock; the Redis path uses the Redis server's.
	now func() time.Time

	// start anchors the monotonic times below, in nanoseconds since start.
	start   time.Time
	backoff time.Duration
	leases  leases
	credits credits
	batch   batcher
	metrics *metrics
	// redisCalls counts round trips to Redis (tests).
	redisCalls atomic.Int64
	// redisDownUntil is when Redis may be tried again after a failure; zero while Redis works.
	redisDownUntil atomic.Int64
	nextWarn       atomic.Int64
}

// Option configures a Limiter.
type Option func(*Limiter)

// WithMeterProvider records the Limiter's metrics with mp rather than the global provider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(l *Limiter) { l.metrics = newMetrics(mp) }
}

// New returns a Limiter keeping its buckets in rc. A nil rc gives a Limiter that only ever
// limits in process.
func New(rc *redis.Client, logger *slog.Logger, opts ...Option) *Limiter {
	l := &Limiter{
		rc:      rc,
		logger:  logger,
		local:   newLocal(maxLocalEntries),
		now:     time.Now,
		start:   time.Now(),
		backoff: redisBackoff,
		leases:  newLeases(),
		credits: newCredits(creditTTL),
	}
	l.batch.l = l
	for _, o := range opts {
		o(l)
	}
	if l.metrics == nil {
		l.metrics = newMetrics(nil)
	}
	return l
}

// Allow records one event for key under lim and reports whether it is admitted. key is any
// string, such as "ip:203.0.113.7" or "login-acct:<sha256 hex>"; the bucket is the Redis key
// rc.Key("rl:"+lim.Name+":"+key). It never fails: on a Redis failure it answers from the local
// limiter and logs a warning at most once per 10s. A Limit that ParseLimit would reject admits
// nothing.
func (l *Limiter) Allow(ctx context.Context, lim Limit, key string) Result {
	r, by := l.check(ctx, lim, key, true)
	l.metrics.count(lim.Name, by, r.Allowed)
	return r
}

// Peek reports the state of key under lim without recording an event, for refusing work before
// spending it. Allowed says whether an Allow now would be admitted; Remaining counts the events
// that would be (so an untouched key reports Count) and Reset is measured from now. It falls back
// like Allow.
func (l *Limiter) Peek(ctx context.Context, lim Limit, key string) Result {
	r, _ := l.check(ctx, lim, key, false)
	return r
}

// Reset forgets key under lim, in Redis and in the local limiter. It is best effort: a Redis
// failure is logged, at most once per 10s, and returned for callers that report it (the CLI).
func (l *Limiter) Reset(ctx context.Context, lim Limit, key string) error {
	name := bucket(lim, key)
	l.local.reset(name)
	l.leases.drop(name)
	l.credits.drop(name)
	if l.rc == nil {
		return nil
	}
	err := l.rc.Do(ctx, func(ctx context.Context, rc rueidis.Client) error {
		return rc.Do(ctx, rc.B().Del().Key(l.rc.Key(name)).Build()).Error()
	})
	if err != nil {
		l.warn(ctx, "rate limit reset: redis failed", err)
	}
	return err
}

// Refund gives back the event slot recorded by Allow for key, for an event that turned out not
// to count (a login admitted against a failure budget whose password proved right, or that got
// no verdict). Unlike Reset it leaves the bucket's other events, such as failures recorded
// meanwhile, in place. The event goes back where it was recorded: to Redis, or to the local
// limiter when Redis could not be reached then. A refund elsewhere would give back an event
// never charged there (Redis back from an outage would lose one of the failures it holds). It
// is best effort like Reset: a Redis failure leaves the event spent.
func (l *Limiter) Refund(ctx context.Context, slot Result, key string) {
	p, ok := paramsOf(slot.Limit)
	if !ok || !slot.Allowed {
		return
	}
	name := bucket(slot.Limit, key)
	if slot.local {
		l.local.refund(name, l.now().UnixMicro(), p)
		return
	}
	if !l.tryRedis() {
		return
	}
	l.redisCalls.Add(1)
	err := l.rc.Do(ctx, func(ctx context.Context, rc rueidis.Client) error {
		return refundScript.Exec(ctx, rc, []string{l.rc.Key(name)}, []string{strconv.FormatInt(p.t, 10), strconv.FormatInt(p.tau, 10)}).Error()
	})
	if err != nil {
		l.warn(ctx, "rate limit refund: redis failed", err)
	}
}

func bucket(lim Limit, key string) string { return "rl:" + lim.Name + ":" + key }

// check decides, and says what decided: a lease, a credit, Redis, the local limiter, or none
// (an invalid limit, or a caller that gave up).
func (l *Limiter) check(ctx context.Context, lim Limit, key string, record bool) (Result, decider) {
	p, ok := paramsOf(lim)
	if !ok {
		l.logger.ErrorContext(ctx, "invalid rate limit; refusing", "limit", lim.Name, "count", lim.Count, "period", lim.Period)
		return Result{Limit: lim, RetryAfter: max(lim.Period, time.Second)}, byNone
	}
	name := bucket(lim, key)
	if record && l.rc != nil {
		if lim.Deferred {
			if l.redisDownUntil.Load() == 0 {
				if d, ref, post, ok := l.credits.take(name, l.since(), p); ok {
					if post {
						l.postCredit(name, ref, p)
					}
					return d.result(lim), byCredit
				}
			}
		} else if d, ok := l.leases.take(name, l.since()); ok {
			return d.result(lim), byLease
		}
	}
	if d, ok := l.checkRedis(ctx, name, p, record, lim.Deferred); ok {
		return d.result(lim), byRedis
	}
	if ctx.Err() != nil {
		// The caller gave up, perhaps while Redis had its event: the local limiter's budget is
		// not Redis's, and an event admitted there would count nowhere that matters.
		return Result{Limit: lim, RetryAfter: time.Second}, byNone
	}
	r := l.local.check(name, l.now().UnixMicro(), p, record).result(lim)
	r.local = true
	return r, byLocal
}

// checkRedis runs gcraLua for the bucket (batched with concurrent checks), reporting false when Redis is not to be used or failed.
func (l *Limiter) checkRedis(ctx context.Context, name string, p params, record, deferred bool) (decision, bool) {
	if !l.tryRedis() {
		return decision{}, false
	}
	var want int64 = 1
	if record && !deferred {
		want = l.leases.size(name, l.since())
	}
	c := newCheck(l.rc.Key(name), p, record, want)
	if record && deferred {
		// The credit learns the answer where Redis gave it, in the call's order, even if this
		// caller gives up: until then it counts the check as an event that may be admitted.
		cr := l.credits.expect(name, l.since())
		c.finish = func(v [5]int64, err error) { cr.settle(v, err, l.since()) }
	}
	if err := l.batch.do(ctx, c); err != nil {
		if ctx.Err() == nil { // the caller giving up says nothing about Redis
			l.redisDownUntil.Store(l.since() + int64(l.backoff))
		}
		l.warn(ctx, "rate limit: redis failed; limiting in process", err)
		return decision{}, false
	}
	if l.redisDownUntil.Load() != 0 && l.redisDownUntil.Swap(0) != 0 {
		l.logger.InfoContext(ctx, "rate limit: redis is back")
	}
	d := decision{allowed: c.v[0] == 1, remaining: c.v[1], reset: c.v[2], retry: c.v[3]}
	if record && !deferred && d.allowed {
		d = l.leases.grant(name, d, c.v[4], l.since())
	}
	return d, true
}

// tryRedis reports whether to use Redis: always while it works, and after a failure once per
// backoff, for a single caller at a time.
func (l *Limiter) tryRedis() bool {
	if l.rc == nil {
		return false
	}
	until := l.redisDownUntil.Load()
	if until == 0 {
		return true
	}
	now := l.since()
	return now >= until && l.redisDownUntil.CompareAndSwap(until, now+int64(l.backoff))
}

func (l *Limiter) warn(ctx context.Context, msg string, err error) {
	if ctx.Err() != nil {
		return
	}
	now, next := l.since(), l.nextWarn.Load()
	if now >= next && l.nextWarn.CompareAndSwap(next, now+int64(warnEvery)) {
		l.logger.WarnContext(ctx, msg, "error", err)
	}
}

// since is the monotonic time since l was made, in nanoseconds.
func (l *Limiter) since() int64 { return int64(time.Since(l.start)) }
