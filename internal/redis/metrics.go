package redis

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// clientMetrics are the Client's own metrics. The dial metrics keep the names and meaning
// rueidisotel.NewClient gives them, since the Client builds its rueidis client itself (see
// connect).
type clientMetrics struct {
	dialAttempts  metric.Int64Counter
	dialSuccesses metric.Int64Counter
	conns         metric.Int64UpDownCounter
	dialLatency   metric.Float64Histogram

	cachedReads           metric.Int64Counter
	fromMemory, fromRedis metric.AddOption
}

func newClientMetrics(mp metric.MeterProvider) (*clientMetrics, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	dials := mp.Meter("github.com/redis/rueidis")
	own := mp.Meter("github.com/portcullis/portcullis/internal/redis")
	m := &clientMetrics{
		fromMemory: metric.WithAttributeSet(attribute.NewSet(attribute.String("answered_from", "memory"))),
		fromRedis:  metric.WithAttributeSet(attribute.NewSet(attribute.String("answered_from", "redis"))),
	}
	var err error
	if m.dialAttempts, err = dials.Int64Counter("rueidis_dial_attempt"); err != nil {
		return nil, err
	}
	if m.dialSuccesses, err = dials.Int64Counter("rueidis_dial_success"); err != nil {
		return nil, err
	}
	if m.conns, err = dials.Int64UpDownCounter("rueidis_dial_conns"); err != nil {
		return nil, err
	}
	if m.dialLatency, err = dials.Float64Histogram("rueidis_dial_latency", metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)); err != nil {
		return nil, err
	}
	if m.cachedReads, err = own.Int64Counter("portcullis_redis_cached_reads",
		metric.WithDescription("Cached Redis reads (sessions, users) by where the answer came from: this instance's memory, or a round trip to Redis.")); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *clientMetrics) countCachedRead(hit bool) {
	if hit {
		m.cachedReads.Add(context.Background(), 1, m.fromMemory)
	} else {
		m.cachedReads.Add(context.Background(), 1, m.fromRedis)
	}
}

type dialFunc = func(ctx context.Context, dst string, d *net.Dialer, cfg *tls.Config) (net.Conn, error)

// dial is rueidis's own dial.
func dial(ctx context.Context, dst string, d *net.Dialer, cfg *tls.Config) (net.Conn, error) {
	if cfg != nil {
		return (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, "tcp", dst)
	}
	return d.DialContext(ctx, "tcp", dst)
}

// trackDials counts fn's dials, their latency and the connections open.
func (m *clientMetrics) trackDials(fn dialFunc) dialFunc {
	return func(ctx context.Context, dst string, d *net.Dialer, cfg *tls.Config) (net.Conn, error) {
		m.dialAttempts.Add(ctx, 1)
		start := time.Now()
		c, err := fn(ctx, dst, d, cfg)
		if err != nil {
			return nil, err
		}
		m.dialLatency.Record(ctx, time.Since(start).Seconds())
		m.dialSuccesses.Add(ctx, 1)
		m.conns.Add(ctx, 1)
		return &trackedConn{Conn: c, conns: m.conns}, nil
	}
}

// trackedConn takes itself off the open connections once, when closed.
type trackedConn struct {
	net.Conn
	conns metric.Int64UpDownCounter
	once  sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.conns.Add(context.Background(), -1) })
	return c.Conn.Close()
}
