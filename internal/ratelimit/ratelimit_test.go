package ratelimit

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/redis"
	"github.com/portcullis/portcullis/internal/testenv"
)

func TestParseLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Limit
		wantErr bool
	}{
		{in: "300/1m", want: Limit{Name: "ip", Count: 300, Period: time.Minute}},
		{in: "10/15m", want: Limit{Name: "ip", Count: 10, Period: 15 * time.Minute}},
		{in: "60/1s", want: Limit{Name: "ip", Count: 60, Period: time.Second}},
		{in: " 5 / 1h30m ", want: Limit{Name: "ip", Count: 5, Period: 90 * time.Minute}},
		{in: "", wantErr: true},
		{in: "10", wantErr: true},
		{in: "x/1m", wantErr: true},
		{in: "0/1m", wantErr: true},
		{in: "-1/1m", wantErr: true},
		{in: "10/0s", wantErr: true},
		{in: "10/-1m", wantErr: true},
		{in: "10/banana", wantErr: true},
		{in: "10/1m/2", wantErr: true},
		{in: "2000/1ms", wantErr: true}, // under a microsecond per event
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseLimit("ip", tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseLimit(%q) = %+v, want an error", tt.in, got)
				}
				if !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.in)) || !strings.Contains(err.Error(), "ip") {
					t.Errorf("error %q does not name the input", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLimit(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseLimit(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

// TestLocalGCRA steps a limiter with no Redis through a fake clock and checks every field.
func TestLocalGCRA(t *testing.T) {
	t.Parallel()
	lim := Limit{Name: "t", Count: 2, Period: time.Second} // one event per 500ms, burst 2
	clock := testenv.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	l := New(nil, testenv.Logger(t))
	l.now = clock.Now
	ms := time.Millisecond
	steps := []struct {
		name    string
		advance time.Duration
		peek    bool
		want    Result
	}{
		{name: "peek empty", peek: true, want: Result{Allowed: true, Remaining: 2}},
		{name: "first", want: Result{Allowed: true, Remaining: 1, Reset: 500 * ms}},
		{name: "second", want: Result{Allowed: true, Remaining: 0, Reset: time.Second}},
		{name: "third denied", want: Result{Remaining: 0, Reset: time.Second, RetryAfter: 500 * ms}},
		{name: "peek denied", peek: true, want: Result{Remaining: 0, Reset: time.Second, RetryAfter: 500 * ms}},
		{name: "still denied", advance: 250 * ms, want: Result{Remaining: 0, Reset: 750 * ms, RetryAfter: 250 * ms}},
		{name: "refilled one", advance: 250 * ms, want: Result{Allowed: true, Remaining: 0, Reset: time.Second}},
		{name: "peek partly refilled", advance: 600 * ms, peek: true, want: Result{Allowed: true, Remaining: 1, Reset: 400 * ms}},
		{name: "peek full", advance: time.Second, peek: true, want: Result{Allowed: true, Remaining: 2}},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		var got Result
		if s.peek {
			got = l.Peek(t.Context(), lim, "k")
		} else {
			got = l.Allow(t.Context(), lim, "k")
		}
		s.want.Limit, s.want.local = lim, true // a Limiter without Redis decides in process
		if got != s.want {
			t.Errorf("%s: got %+v, want %+v", s.name, got, s.want)
		}
	}
}

func TestInvalidLimitAdmitsNothing(t *testing.T) {
	t.Parallel()
	l := New(nil, testenv.Logger(t))
	for _, lim := range []Limit{{Name: "zero"}, {Name: "neg", Count: -1, Period: time.Second}, {Name: "dense", Count: 10, Period: time.Microsecond}} {
		if r := l.Allow(t.Context(), lim, "k"); r.Allowed || r.RetryAfter <= 0 {
			t.Errorf("Allow(%+v) = %+v, want denied with a RetryAfter", lim, r)
		}
	}
}

func TestBurstThenDeny(t *testing.T) {
	t.Parallel()
	l, _ := newLimiter(t)
	lim := Limit{Name: "burst", Count: 5, Period: time.Second}
	for i, want := range []int{4, 3, 2, 1, 0} {
		r := l.Allow(t.Context(), lim, "k")
		if !r.Allowed || r.Remaining != want || r.RetryAfter != 0 || r.Reset <= 0 || r.Reset > lim.Period {
			t.Fatalf("Allow #%d = %+v, want admitted with Remaining %d", i+1, r, want)
		}
	}
	r := l.Allow(t.Context(), lim, "k")
	if r.Allowed || r.Remaining != 0 || r.RetryAfter <= 0 || r.RetryAfter > 250*time.Millisecond || r.Reset <= 0 {
		t.Fatalf("Allow #6 = %+v, want denied with RetryAfter in (0, 250ms] and Reset > 0", r)
	}
}

func TestRefill(t *testing.T) {
	t.Parallel()
	l, _ := newLimiter(t)
	lim := Limit{Name: "refill", Count: 5, Period: 500 * time.Millisecond}
	for range lim.Count {
		l.Allow(t.Context(), lim, "k")
	}
	if r := l.Allow(t.Context(), lim, "k"); r.Allowed {
		t.Fatalf("Allow after the burst = %+v, want denied", r)
	}
	time.Sleep(lim.Period / time.Duration(lim.Count))
	if r := l.Allow(t.Context(), lim, "k"); !r.Allowed || r.Remaining != 0 {
		t.Fatalf("Allow after one interval = %+v, want admitted with Remaining 0", r)
	}
	if r := l.Allow(t.Context(), lim, "k"); r.Allowed {
		t.Fatalf("second Allow after one interval = %+v, want denied", r)
	}
}

func TestAtomicAcrossInstances(t *testing.T) {
	t.Parallel()
	limiters := instances(t, 2)
	lim := Limit{Name: "shared", Count: 20, Period: time.Minute}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, l := range limiters {
		for range 50 {
			wg.Go(func() {
				<-start
				if l.Allow(t.Context(), lim, "k").Allowed {
					admitted.Add(1)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	if got := admitted.Load(); got != int64(lim.Count) {
		t.Fatalf("admitted %d of 100 concurrent events, want exactly %d", got, lim.Count)
	}
}

func TestBucketsIndependent(t *testing.T) {
	t.Parallel()
	l, _ := newLimiter(t)
	a := Limit{Name: "a", Count: 1, Period: time.Minute}
	b := Limit{Name: "b", Count: 1, Period: time.Minute}
	tests := []struct {
		name string
		lim  Limit
		key  string
		want bool
	}{
		{"first event", a, "x", true},
		{"same bucket exhausted", a, "x", false},
		{"other key", a, "y", true},
		{"other name", b, "x", true},
		{"other name exhausted", b, "x", false},
	}
	for _, tt := range tests {
		if got := l.Allow(t.Context(), tt.lim, tt.key).Allowed; got != tt.want {
			t.Errorf("%s: Allowed = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestPeekAndReset(t *testing.T) {
	t.Parallel()
	l, prefix := newLimiter(t)
	raw := rawRedis(t)
	lim := Limit{Name: "peek", Count: 3, Period: time.Minute}
	key := prefix + "rl:peek:k"
	for range 3 {
		if r := l.Peek(t.Context(), lim, "k"); !r.Allowed || r.Remaining != 3 {
			t.Fatalf("Peek on an empty bucket = %+v, want admitted with Remaining 3", r)
		}
	}
	if n := exists(t, raw, key); n {
		t.Fatalf("Peek created %s", key)
	}
	if r := l.Allow(t.Context(), lim, "k"); !r.Allowed || r.Remaining != 2 {
		t.Fatalf("Allow = %+v, want admitted with Remaining 2", r)
	}
	if r := l.Peek(t.Context(), lim, "k"); !r.Allowed || r.Remaining != 2 {
		t.Fatalf("Peek after one Allow = %+v, want admitted with Remaining 2", r)
	}
	l.Allow(t.Context(), lim, "k")
	l.Allow(t.Context(), lim, "k")
	if r := l.Peek(t.Context(), lim, "k"); r.Allowed || r.Remaining != 0 || r.RetryAfter <= 0 {
		t.Fatalf("Peek on an exhausted bucket = %+v, want denied with a RetryAfter", r)
	}
	l.Reset(t.Context(), lim, "k")
	if exists(t, raw, key) {
		t.Fatalf("Reset left %s", key)
	}
	if r := l.Allow(t.Context(), lim, "k"); !r.Allowed || r.Remaining != 2 {
		t.Fatalf("Allow after Reset = %+v, want admitted with Remaining 2", r)
	}
}

// Refund gives back exactly one event and keeps the others; a bucket full again is deleted. It
// works the same on the local limiter when Redis is gone.
func TestRefund(t *testing.T) {
	t.Parallel()
	lim := Limit{Name: "refund", Count: 3, Period: time.Minute}
	l, prefix := newLimiter(t)
	down := New(openRedis(t, "redis://127.0.0.1:1/0", testenv.RedisPrefix(t)), testenv.Logger(t))
	raw := rawRedis(t)
	for name, l := range map[string]*Limiter{"redis": l, "local": down} {
		first := l.Allow(t.Context(), lim, "k")
		second := l.Allow(t.Context(), lim, "k")
		l.Refund(t.Context(), second, "k")
		if r := l.Peek(t.Context(), lim, "k"); r.Remaining != 2 {
			t.Fatalf("%s: after two events and a refund, Peek = %+v, want Remaining 2", name, r)
		}
		l.Refund(t.Context(), first, "k")
		if r := l.Peek(t.Context(), lim, "k"); r.Remaining != 3 {
			t.Fatalf("%s: after two refunds, Peek = %+v, want a full bucket", name, r)
		}
		l.Refund(t.Context(), first, "k") // nothing left to give back: stays full, never above
		if r := l.Allow(t.Context(), lim, "k"); r.Remaining != 2 {
			t.Fatalf("%s: Allow after a refund of a full bucket = %+v, want Remaining 2", name, r)
		}
	}
	l.Refund(t.Context(), Result{Allowed: true, Limit: lim}, "k")
	if exists(t, raw, prefix+"rl:refund:k") {
		t.Fatal("a bucket refunded to full is still in Redis")
	}
}

func TestKeysExpire(t *testing.T) {
	t.Parallel()
	l, prefix := newLimiter(t)
	raw := rawRedis(t)
	lim := Limit{Name: "ttl", Count: 5, Period: time.Second}
	for i := range lim.Count {
		l.Allow(t.Context(), lim, "k")
		pttl, err := raw.Do(t.Context(), raw.B().Pttl().Key(prefix+"rl:ttl:k").Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		if pttl <= 0 || pttl > lim.Period.Milliseconds() {
			t.Fatalf("after Allow #%d PTTL = %dms, want in (0, %dms]", i+1, pttl, lim.Period.Milliseconds())
		}
	}
}

func TestRedisDown(t *testing.T) {
	t.Parallel()
	skipShort(t)
	lim := Limit{Name: "down", Count: 3, Period: time.Minute}

	t.Run("cut mid-flight and restored", func(t *testing.T) {
		t.Parallel()
		p := testenv.NewProxy(t, "127.0.0.1:6379")
		prefix := testenv.RedisPrefix(t)
		l := New(openRedis(t, "redis://"+p.Addr()+"/0", prefix), testenv.Logger(t))
		l.backoff = 50 * time.Millisecond
		raw := rawRedis(t)
		if r := l.Allow(t.Context(), lim, "warmup"); !r.Allowed || !exists(t, raw, prefix+"rl:down:warmup") {
			t.Fatalf("Allow through the proxy = %+v, want admitted and stored in Redis", r)
		}

		p.Cut()
		assertEnforced(t, l, lim, "k")
		if exists(t, raw, prefix+"rl:down:k") {
			t.Fatal("the bucket reached Redis while the proxy was cut")
		}

		p.Restore()
		deadline := time.Now().Add(5 * time.Second)
		for !exists(t, raw, prefix+"rl:down:after") {
			if time.Now().After(deadline) {
				t.Fatal("Allow did not return to Redis within 5s of Restore")
			}
			l.Reset(t.Context(), lim, "after") // keep the local bucket from running out meanwhile
			l.Allow(t.Context(), lim, "after")
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("unreachable from the start", func(t *testing.T) {
		t.Parallel()
		l := New(openRedis(t, "redis://127.0.0.1:1/0", testenv.RedisPrefix(t)), testenv.Logger(t))
		assertEnforced(t, l, lim, "k")
	})
}

// assertEnforced checks that lim (Count 3) admits exactly three events for key, then denies.
func assertEnforced(t testing.TB, l *Limiter, lim Limit, key string) {
	t.Helper()
	for i, want := range []int{2, 1, 0} {
		if r := l.Allow(context.Background(), lim, key); !r.Allowed || r.Remaining != want {
			t.Fatalf("Allow #%d = %+v, want admitted with Remaining %d", i+1, r, want)
		}
	}
	if r := l.Allow(context.Background(), lim, key); r.Allowed || r.RetryAfter <= 0 {
		t.Fatalf("Allow #4 = %+v, want denied with a RetryAfter", r)
	}
}

func TestLocalEviction(t *testing.T) {
	t.Parallel()
	p, _ := paramsOf(Limit{Name: "e", Count: 10, Period: time.Minute})
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

	t.Run("bounded", func(t *testing.T) {
		t.Parallel()
		clock := testenv.NewClock(start)
		m := newLocal(maxLocalEntries)
		for i := range 150_000 {
			now := clock.Advance(time.Microsecond).UnixMicro()
			if d := m.check(fmt.Sprint("key-", i), now, p, true); !d.allowed {
				t.Fatalf("key %d denied on its first event", i)
			}
			if n := len(m.tats); n > maxLocalEntries {
				t.Fatalf("after %d keys the map holds %d entries, want <= %d", i+1, n, maxLocalEntries)
			}
		}
		// The newest buckets survive the sweep: the last key is still limited.
		now := clock.Now().UnixMicro()
		for range 9 {
			m.check("key-149999", now, p, true)
		}
		if d := m.check("key-149999", now, p, true); d.allowed {
			t.Fatal("the newest bucket was forgotten")
		}
	})

	t.Run("expired first", func(t *testing.T) {
		t.Parallel()
		clock := testenv.NewClock(start)
		m := newLocal(1000)
		for i := range 1000 {
			m.check(fmt.Sprint("old-", i), clock.Now().UnixMicro(), p, true)
		}
		// A full map with nothing expired: the sweep keeps the newest half.
		m.check("live", clock.Now().UnixMicro(), p, true)
		// Every bucket so far is full again; refilling to the bound sweeps only those.
		now := clock.Advance(2 * time.Minute).UnixMicro()
		for i := range 500 {
			m.check(fmt.Sprint("new-", i), now, p, true)
		}
		m.check("last", now, p, true)
		if n := m.len(); n != 501 {
			t.Fatalf("map holds %d entries, want the 501 made after the clock moved", n)
		}
	})
}

func BenchmarkAllowRedis(b *testing.B) {
	l, _ := newLimiter(b)
	benchmarkAllow(b, l)
}

func BenchmarkAllowLocal(b *testing.B) {
	benchmarkAllow(b, New(nil, testenv.Logger(b)))
}

func benchmarkAllow(b *testing.B, l *Limiter) {
	b.Helper()
	lim := Limit{Name: "bench", Count: 1000, Period: time.Second}
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprint("ip:203.0.113.", i)
	}
	ctx := context.Background()
	i := 0
	for b.Loop() {
		l.Allow(ctx, lim, keys[i%len(keys)])
		i++
	}
}

func skipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs Redis")
	}
}

// instances returns n Limiters, each with its own Redis client, sharing one fresh key prefix:
// the service's instances.
func instances(t testing.TB, n int) []*Limiter {
	t.Helper()
	skipShort(t)
	prefix := testenv.RedisPrefix(t)
	out := make([]*Limiter, n)
	for i := range out {
		out[i] = New(openRedis(t, testenv.RedisURL(), prefix), testenv.Logger(t))
	}
	return out
}

// newLimiter returns a Limiter on the test Redis under a fresh key prefix, and the prefix.
func newLimiter(t testing.TB) (*Limiter, string) {
	t.Helper()
	skipShort(t)
	prefix := testenv.RedisPrefix(t)
	return New(openRedis(t, testenv.RedisURL(), prefix), testenv.Logger(t)), prefix
}

// openRedis opens our Redis client for url, closed when t ends.
func openRedis(t testing.TB, url, prefix string) *redis.Client {
	t.Helper()
	rc, err := redis.Open(config.Redis{
		URL:             url,
		KeyPrefix:       prefix,
		Timeout:         150 * time.Millisecond,
		SessionCacheTTL: 30 * time.Second,
	}, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	return rc
}

// rawRedis is a plain client on the test Redis, to look behind the Limiter.
func rawRedis(t testing.TB) rueidis.Client {
	t.Helper()
	opt, err := rueidis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	opt.DisableCache = true
	c, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func exists(t testing.TB, c rueidis.Client, key string) bool {
	t.Helper()
	n, err := c.Do(context.Background(), c.B().Exists().Key(key).Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// A refund goes back where its event was recorded. An event that the local limiter recorded
// while Redis was unreachable, refunded once Redis answers again (a login that hashed through
// the end of the outage), must not move the shared bucket back: that gave back one of the
// failures Redis holds, a slot never charged there, so an account's spent budget reopened by
// one guess with every such refund.
func TestRefundAfterRedisReturnsGoesWhereTheEventWasRecorded(t *testing.T) {
	t.Parallel()
	skipShort(t)
	lim := Limit{Name: "refund-where", Count: 3, Period: time.Minute}
	p := testenv.NewProxy(t, "127.0.0.1:6379")
	prefix := testenv.RedisPrefix(t)
	l := New(openRedis(t, "redis://"+p.Addr()+"/0", prefix), testenv.Logger(t))
	l.backoff = 50 * time.Millisecond
	shared := New(openRedis(t, testenv.RedisURL(), prefix), testenv.Logger(t))
	for range lim.Count {
		if r := l.Allow(t.Context(), lim, "k"); !r.Allowed {
			t.Fatalf("Allow through the proxy = %+v, want admitted", r)
		}
	}
	p.Cut()
	slot := l.Allow(t.Context(), lim, "k") // recorded locally: the local limiter has its own budget
	if !slot.Allowed {
		t.Fatalf("Allow while Redis is cut = %+v, want admitted by the local limiter", slot)
	}
	p.Restore()
	deadline := time.Now().Add(5 * time.Second)
	for l.Peek(t.Context(), lim, "probe"); l.redisDownUntil.Load() != 0; l.Peek(t.Context(), lim, "probe") {
		if time.Now().After(deadline) {
			t.Fatal("Redis not back within 5s of Restore")
		}
		time.Sleep(10 * time.Millisecond)
	}
	l.Refund(t.Context(), slot, "k")
	if r := shared.Peek(t.Context(), lim, "k"); r.Allowed {
		t.Fatalf("after three events in Redis and a refund of one recorded in process, Redis admits again: %+v", r)
	}
}

// A caller that gives up while its event is in Redis's hands is refused, not admitted by the
// local limiter's own budget: that event would count nowhere that matters (a login whose client
// hangs up at that moment could still have its password tested, uncounted, and a right one
// would show by lifting the lock). Here Redis holds the spent bucket and its reply is withheld.
func TestAGoneCallerIsRefusedNotAdmittedLocally(t *testing.T) {
	t.Parallel()
	skipShort(t)
	lim := Limit{Name: "gone", Count: 2, Period: time.Minute}
	p := testenv.NewProxy(t, "127.0.0.1:6379")
	l := New(openRedis(t, "redis://"+p.Addr()+"/0", testenv.RedisPrefix(t)), testenv.Logger(t))
	for range lim.Count {
		if r := l.Allow(t.Context(), lim, "k"); !r.Allowed {
			t.Fatalf("Allow before the budget was spent = %+v", r)
		}
	}
	sent := p.WithholdReplyTo("evalsha")
	ctx, cancel := context.WithCancel(t.Context())
	answered := make(chan Result, 1)
	go func() { answered <- l.Allow(ctx, lim, "k") }()
	select {
	case <-sent:
	case <-time.After(5 * time.Second):
		t.Fatal("the script never reached Redis")
	}
	cancel()
	if r := <-answered; r.Allowed {
		t.Fatalf("Allow whose caller gave up while Redis held the spent bucket = %+v, want refused", r)
	}
}

// Replay, given the times of the events a limiter admitted, decides as that limiter would: the
// same verdict, remaining count, reset and wait as its Peek, after bursts, refills and refusals.
func TestReplayDecidesAsTheLimiterWould(t *testing.T) {
	t.Parallel()
	lim := Limit{Name: "t", Count: 3, Period: 15 * time.Minute} // one per 5m, burst 3
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := testenv.NewClock(start)
	l := New(nil, testenv.Logger(t))
	l.now = clock.Now
	var admitted []time.Time
	// Gaps between attempts: a burst into a refusal, partial refills, a long pause.
	gaps := []time.Duration{0, 10 * time.Second, 10 * time.Second, 10 * time.Second, 4 * time.Minute,
		time.Minute, 30 * time.Second, 7 * time.Minute, time.Second, time.Second, 40 * time.Minute,
		time.Second, 2 * time.Minute, 9 * time.Minute, time.Second}
	for i, gap := range gaps {
		now := clock.Advance(gap)
		want := l.Peek(t.Context(), lim, "k")
		want.local = false
		if got := Replay(lim, admitted, now); got != want {
			t.Fatalf("attempt %d (+%v): Replay = %+v, the limiter's Peek = %+v", i, now.Sub(start), got, want)
		}
		if l.Allow(t.Context(), lim, "k").Allowed {
			admitted = append(admitted, now)
		}
	}
	if len(admitted) == len(gaps) || len(admitted) < 4 {
		t.Fatalf("%d of %d attempts admitted: the schedule must both refuse and refill", len(admitted), len(gaps))
	}
	// An invalid limit admits nothing, as Allow.
	if r := Replay(Limit{Name: "bad", Count: 0, Period: time.Minute}, nil, start); r.Allowed {
		t.Fatal("Replay admitted under an invalid limit")
	}
}
