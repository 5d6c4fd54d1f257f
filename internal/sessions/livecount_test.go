package sessions

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/testenv"
)

// counts counts the live-session counts a pool runs.
type counts struct{ n atomic.Int32 }

func (c *counts) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "SELECT count(*) FROM user_sessions") {
		c.n.Add(1)
	}
	return ctx
}

func (c *counts) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Instances sharing a Redis share one count of live sessions a period, instead of each scanning
// user_sessions every period: the others read it, or (while it is being made) skip a sample.
// While Redis is unavailable an instance counts on its own.
func TestLiveSessionsAreCountedOncePerPeriodAcrossInstances(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const period = 400 * time.Millisecond
	instance := func(redisURL string) (*Service, *counts) {
		cfg, err := pgxpool.ParseConfig(e.pool.Config().ConnString())
		if err != nil {
			t.Fatal(err)
		}
		c := &counts{}
		cfg.ConnConfig.Tracer = c
		s := e.service(t, redisURL, config.Auth{RefreshTokenTTL: time.Hour, SessionMaxLifetime: 24 * time.Hour})
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		s.store = NewStore(pool)
		return s, c
	}
	a, countsA := instance(testenv.RedisURL())
	b, countsB := instance(testenv.RedisURL())
	for _, name := range []string{"ann", "bob", "cyd"} {
		open(t, a, e.user(t, name), Client{})
	}

	n, ok, err := a.SharedLiveCount(ctx, period)
	if err != nil || !ok || n != 3 || countsA.n.Load() != 1 {
		t.Fatalf("first count = %d, %v, %v after %d scans, want 3 after 1", n, ok, err, countsA.n.Load())
	}
	open(t, a, e.user(t, "dee"), Client{})
	n, ok, err = b.SharedLiveCount(ctx, period)
	if err != nil || !ok || n != 3 || countsB.n.Load() != 0 {
		t.Fatalf("the other instance within the period = %d, %v, %v after %d scans of its own, want the shared 3 and none", n, ok, err, countsB.n.Load())
	}

	// A period on, every instance asks at once: one of them counts, once.
	time.Sleep(period + 50*time.Millisecond)
	var wg sync.WaitGroup
	var answered atomic.Int32
	for i := range 8 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			if n, ok, err := s.SharedLiveCount(ctx, period); err != nil || ok && n != 4 {
				t.Errorf("a count after the period = %d, %v, %v, want 4", n, ok, err)
			} else if ok {
				answered.Add(1)
			}
		})
	}
	wg.Wait()
	if scans := countsA.n.Load() + countsB.n.Load(); scans != 2 || answered.Load() == 0 {
		t.Fatalf("8 samples at once a period on: %d scans in all (want 2: the first and one more), %d answered", scans, answered.Load())
	}

	// Redis gone: an instance counts on its own every time.
	down, downCounts := instance("redis://127.0.0.1:1/0")
	for range 2 {
		if n, ok, err := down.SharedLiveCount(ctx, period); err != nil || !ok || n != 4 {
			t.Fatalf("without Redis = %d, %v, %v, want 4 counted here", n, ok, err)
		}
	}
	if downCounts.n.Load() != 2 {
		t.Fatalf("without Redis: %d scans for 2 samples, want 2", downCounts.n.Load())
	}
}
