package redis_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/rueidis"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/redis"
	"github.com/portcullis/portcullis/internal/testenv"
)

// The client's metrics, against the real Redis: its connection is counted open while it lives
// and closed after Close, and a cached read is counted by where its answer came from: Redis
// the first time, this instance's memory after, and Redis again once another client wrote the
// key.
func TestClientMetrics(t *testing.T) {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	cfg := config.Redis{URL: testenv.RedisURL(), KeyPrefix: testenv.RedisPrefix(t), Timeout: time.Second}
	rc := open(t, cfg, redis.WithMeterProvider(mp))
	other := open(t, cfg)
	defer other.Close()

	key := rc.Key("k")
	if err := other.SetEach(ctx, []string{key}, []string{"v1"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	read := func(want string) {
		t.Helper()
		v, ok, err := rc.GetCached(ctx, key, time.Minute)
		if err != nil || !ok || v != want {
			t.Fatalf("GetCached = %q, %v, %v; want %q", v, ok, err, want)
		}
	}
	for range 5 {
		read("v1")
	}
	if err := other.SetEach(ctx, []string{key}, []string{"v2"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	// The invalidation reaches rc asynchronously; rc answers from Redis once it has.
	deadline := time.Now().Add(2 * time.Second)
	for {
		v, _, err := rc.GetCached(ctx, key, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if v == "v2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other client's write never reached this client's copy")
		}
		time.Sleep(5 * time.Millisecond)
	}
	m := collect(t, reader)
	if got := m["portcullis_redis_cached_reads/answered_from=redis"]; got != 2 {
		t.Errorf("reads answered from redis = %v, want 2 (the first, and the one after the write)", got)
	}
	if got := m["portcullis_redis_cached_reads/answered_from=memory"]; got < 4 {
		t.Errorf("reads answered from memory = %v, want at least 4", got)
	}
	if m["rueidis_dial_attempt"] < 1 || m["rueidis_dial_success"] < 1 || m["rueidis_dial_conns"] < 1 {
		t.Errorf("dial metrics = attempts %v, successes %v, open %v; want each at least 1",
			m["rueidis_dial_attempt"], m["rueidis_dial_success"], m["rueidis_dial_conns"])
	}
	if m["rueidis_dial_latency"] != m["rueidis_dial_success"] {
		t.Errorf("%v dial latencies recorded for %v dials", m["rueidis_dial_latency"], m["rueidis_dial_success"])
	}
	rc.Close()
	if got := collect(t, reader)["rueidis_dial_conns"]; got != 0 {
		t.Errorf("open connections after Close = %v, want 0", got)
	}
}

func open(tb testing.TB, cfg config.Redis, opts ...redis.Option) *redis.Client {
	tb.Helper()
	rc, err := redis.Open(cfg, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return rc
}

// collect returns each counter's sum, and each histogram's count, by name and attribute.
func collect(t *testing.T, r sdkmetric.Reader) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					name := m.Name
					if v, ok := p.Attributes.Value("answered_from"); ok {
						name += "/answered_from=" + v.AsString()
					}
					out[name] += float64(p.Value)
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out[m.Name] += float64(p.Count)
				}
			}
		}
	}
	return out
}

// BenchmarkGetCachedHit is a cached read answered from memory, through GetCached (tracing off,
// the service's default) and, as the baseline, through the same client wrapped by rueidisotel
// (what GetCached did before it skipped the wrapper).
func BenchmarkGetCachedHit(b *testing.B) {
	ctx := context.Background()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	cfg := config.Redis{URL: testenv.RedisURL(), KeyPrefix: testenv.RedisPrefix(b), Timeout: time.Second}
	rc := open(b, cfg, redis.WithMeterProvider(mp))
	defer rc.Close()
	key := rc.Key("k")
	if err := rc.SetEach(ctx, []string{key}, []string{"v"}, time.Minute); err != nil {
		b.Fatal(err)
	}
	b.Run("GetCached", func(b *testing.B) {
		for b.Loop() {
			if _, ok, err := rc.GetCached(ctx, key, time.Minute); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("rueidisotel", func(b *testing.B) {
		for b.Loop() {
			err := rc.Do(ctx, func(ctx context.Context, c rueidis.Client) error {
				return c.DoCache(ctx, c.B().Get().Key(key).Cache(), time.Minute).Error()
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
