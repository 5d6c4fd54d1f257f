package ratelimit

import (
	"context"
	"strconv"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// decider is what decided an event: how often each does says how often requests wait for Redis.
type decider string

const (
	byLease  decider = "lease"  // a lease taken earlier from Redis, in memory
	byCredit decider = "credit" // a credit: admitted in memory, recorded in Redis after
	byRedis  decider = "redis"  // Redis, waited for
	byLocal  decider = "local"  // the in-process limiter, Redis being unreachable
	byNone   decider = "none"   // nothing: an invalid limit, or a caller that gave up
)

// metrics count the Limiter's decisions.
type metrics struct {
	decisions metric.Int64Counter
	// options caches each (limit, decider, allowed)'s attribute set: building one per event
	// would allocate on every request.
	options sync.Map
}

type optionKey struct {
	limit   string
	by      decider
	allowed bool
}

func newMetrics(mp metric.MeterProvider) *metrics {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := &metrics{}
	var err error
	m.decisions, err = mp.Meter("github.com/portcullis/portcullis/internal/ratelimit").Int64Counter("portcullis_ratelimit_decisions",
		metric.WithDescription("Rate-limit decisions on events, by limit, by what decided (lease, credit: in memory; redis: waited for; local: Redis unreachable; none) and by whether the event was allowed."))
	if err != nil { // only for an invalid name: a counter that records nothing
		m.decisions, _ = noop.NewMeterProvider().Meter("").Int64Counter("")
	}
	return m
}

func (m *metrics) count(limit string, by decider, allowed bool) {
	k := optionKey{limit, by, allowed}
	o, ok := m.options.Load(k)
	if !ok {
		o, _ = m.options.LoadOrStore(k, metric.WithAttributeSet(attribute.NewSet(
			attribute.String("limit", limit), attribute.String("decided_by", string(by)), attribute.String("allowed", strconv.FormatBool(allowed)))))
	}
	m.decisions.Add(context.Background(), 1, o.(metric.AddOption))
}
