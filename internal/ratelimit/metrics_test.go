package ratelimit

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/portcullis/portcullis/internal/testenv"
)

// Each decision is counted by its limit, by what decided it and by whether it allowed the
// event: how often requests wait for Redis shows there.
func TestDecisionsAreCounted(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	prefix := testenv.RedisPrefix(t)
	skipShort(t)
	l := New(openRedis(t, testenv.RedisURL(), prefix), testenv.Logger(t), WithMeterProvider(mp))
	local := New(nil, testenv.Logger(t), WithMeterProvider(mp))
	deferred := Limit{Name: "flood", Count: 1000, Period: time.Hour, Deferred: true}
	exact := Limit{Name: "exact", Count: 1, Period: time.Hour}
	l.Allow(t.Context(), deferred, "k") // redis
	l.Allow(t.Context(), deferred, "k") // credit
	l.Allow(t.Context(), deferred, "k") // credit
	l.Allow(t.Context(), exact, "k")    // redis, allowed
	l.Allow(t.Context(), exact, "k")    // redis, refused
	l.Peek(t.Context(), exact, "k")     // not a decision on an event
	local.Allow(t.Context(), exact, "k")
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "portcullis_ratelimit_decisions" {
				continue
			}
			for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
				limit, _ := p.Attributes.Value("limit")
				by, _ := p.Attributes.Value("decided_by")
				allowed, _ := p.Attributes.Value("allowed")
				got[limit.AsString()+"/"+by.AsString()+"/"+allowed.AsString()] += p.Value
			}
		}
	}
	want := map[string]int64{
		"flood/redis/true":  1,
		"flood/credit/true": 2,
		"exact/redis/true":  1,
		"exact/redis/false": 1,
		"exact/local/true":  1,
	}
	if len(got) != len(want) {
		t.Fatalf("decisions counted %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("decisions counted %v, want %v", got, want)
		}
	}
}
