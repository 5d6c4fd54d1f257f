package ratelimit

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/testenv"
)

// hold marks l's batcher busy, as if a call were in flight, so that nothing reaches Redis until
// release, which sends whatever queued meanwhile.
func hold(l *Limiter) (release func()) {
	l.batch.mu.Lock()
	l.batch.running = true
	l.batch.mu.Unlock()
	return func() { l.batch.drain(context.Background()) }
}

// waitRecorded waits until Redis, asked by l, has recorded want events of key under lim. Past
// the limit it counts them by the bucket's Reset, which the test's duration must not refill
// by a whole event.
func waitRecorded(t *testing.T, l *Limiter, lim Limit, key string, want int) Result {
	t.Helper()
	p, _ := paramsOf(lim)
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := l.Peek(t.Context(), lim, key)
		got := lim.Count - r.Remaining
		if want >= lim.Count {
			got = int((r.Reset.Microseconds() + p.t - 1) / p.t)
		}
		if got == want {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis holds %d events of %s (%+v), want %d", got, key, r, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Once Redis has answered for a bucket of a deferred limit, the bucket's next events are
// admitted without waiting for Redis, and recorded there after.
func TestDeferredLimitAdmitsWithoutWaitingForRedis(t *testing.T) {
	t.Parallel()
	limiters := instances(t, 2)
	l, other := limiters[0], limiters[1]
	lim := Limit{Name: "deferred", Count: 1600, Period: time.Hour, Deferred: true}
	if r := l.Allow(t.Context(), lim, "k"); !r.Allowed || r.Remaining != lim.Count-1 || r.local {
		t.Fatalf("first Allow = %+v, want admitted by Redis with Remaining %d", r, lim.Count-1)
	}
	release := hold(l)
	answered := make(chan Result, 1)
	go func() { answered <- l.Allow(t.Context(), lim, "k") }()
	select {
	case r := <-answered:
		if !r.Allowed || r.Remaining != lim.Count-2 || r.local {
			t.Fatalf("second Allow = %+v, want admitted on credit with Remaining %d", r, lim.Count-2)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the second Allow waited for Redis")
	}
	if r := other.Peek(t.Context(), lim, "k"); r.Remaining != lim.Count-1 {
		t.Fatalf("before its check was sent, Redis holds %d events, want 1", lim.Count-r.Remaining)
	}
	release()
	waitRecorded(t, other, lim, "k", 2)
}

// A busy bucket of a deferred limit costs far fewer Redis calls than events, and every event is
// recorded.
func TestDeferredLimitRecordsEveryEvent(t *testing.T) {
	t.Parallel()
	limiters := instances(t, 2)
	l, other := limiters[0], limiters[1]
	lim := Limit{Name: "deferred-busy", Count: 100_000, Period: 1000 * time.Hour, Deferred: true}
	const n = 1000
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range n / 4 {
				if r := l.Allow(t.Context(), lim, "k"); !r.Allowed || r.local {
					t.Errorf("Allow = %+v, want admitted by Redis or on credit", r)
					return
				}
			}
		})
	}
	wg.Wait()
	waitRecorded(t, other, lim, "k", n)
	if calls := l.redisCalls.Load(); calls >= n/2 {
		t.Fatalf("%d events took %d Redis calls, want fewer than %d", n, calls, n/2)
	}
}

// Instances admitting one bucket at once on credit admit about the limit, never much more, and
// every admitted event ends up in Redis.
func TestDeferredLimitAcrossInstances(t *testing.T) {
	t.Parallel()
	limiters := instances(t, 4)
	lim := Limit{Name: "deferred-shared", Count: 320, Period: time.Hour, Deferred: true}
	got := 0
	for _, l := range limiters { // each instance hears from Redis first: credit from the start
		if l.Allow(t.Context(), lim, "k").Allowed {
			got++
		}
	}
	got += int(hammer(t, limiters, lim, 100))
	if bound := lim.Count + (len(limiters)-1)*lim.Count/creditFraction; got < lim.Count || got > bound {
		t.Fatalf("admitted %d of 3204 events, want at least the limit %d and at most %d", got, lim.Count, bound)
	}
	// Every admitted event is recorded: the bucket is overdrawn by the excess and refuses for
	// as long. (Its refill during the test, one event per 11 s, is under one event.)
	waitRecorded(t, limiters[0], lim, "k", got)
}

// The overdraft's bound: an instance that last heard of a bucket with room to spare admits at
// most 1/creditFraction of that room after other instances spent it, and the overdraft is
// recorded, so the bucket refuses for longer.
func TestDeferredOverdraftIsBoundedAndRepaid(t *testing.T) {
	t.Parallel()
	limiters := instances(t, 2)
	a, b := limiters[0], limiters[1]
	lim := Limit{Name: "deferred-stale", Count: 64, Period: time.Hour, Deferred: true}
	if r := b.Allow(t.Context(), lim, "k"); !r.Allowed || r.Remaining != 63 {
		t.Fatalf("B's first Allow = %+v, want admitted with Remaining 63", r)
	}
	spent := 1
	for a.Allow(t.Context(), lim, "k").Allowed { // A spends the bucket
		spent++
		if spent > 2*lim.Count {
			t.Fatal("A was never refused")
		}
	}
	waitRecorded(t, a, lim, "k", spent)
	if spent < lim.Count {
		t.Fatalf("A was refused after %d events, want the bucket spent (%d)", spent, lim.Count)
	}

	release := hold(b) // B still believes 63 were left: 63/16 of them may go on credit
	var onCredit int
	for onCredit = 0; onCredit < 10; onCredit++ {
		answered := make(chan Result, 1)
		go func() { answered <- b.Allow(t.Context(), lim, "k") }()
		var r Result
		select {
		case r = <-answered:
		case <-time.After(time.Second): // waiting for Redis: credit spent
			release()
			if r = <-answered; r.Allowed {
				t.Fatalf("B's Allow once its credit was spent = %+v, want refused by Redis", r)
			}
		}
		if !r.Allowed {
			break
		}
	}
	if want := 63 / creditFraction; onCredit != want {
		t.Fatalf("B admitted %d events on credit of a spent bucket, want %d (63/%d)", onCredit, want, creditFraction)
	}
	waitRecorded(t, a, lim, "k", spent+onCredit)
	p, _ := paramsOf(lim)
	if r := a.Peek(t.Context(), lim, "k"); r.RetryAfter < time.Duration(onCredit*int(p.t))*time.Microsecond {
		t.Fatalf("after an overdraft of %d events, Peek = %+v, want RetryAfter at least %d emission intervals", onCredit, r, onCredit)
	}
}

// A bucket of a deferred limit with fewer than creditFraction events left is checked in Redis
// on every event, exactly; a limit that is not deferred never takes credit.
func TestNoCreditNearTheLimitOrForExactLimits(t *testing.T) {
	t.Parallel()
	for _, lim := range []Limit{
		{Name: "deferred-small", Count: creditFraction, Period: time.Hour, Deferred: true},
		{Name: "exact", Count: 1000, Period: 24 * time.Hour},
	} {
		l, _ := newLimiter(t)
		for i := range 4 {
			if i > 0 && !lim.Deferred {
				time.Sleep(leaseTTL/4 + 50*time.Millisecond) // too slow to lease
			}
			if r := l.Allow(t.Context(), lim, "k"); !r.Allowed || r.Remaining != lim.Count-1-i {
				t.Fatalf("%s: Allow #%d = %+v, want admitted with Remaining %d", lim.Name, i+1, r, lim.Count-1-i)
			}
		}
		if calls := l.redisCalls.Load(); calls != 4 {
			t.Fatalf("%s: 4 events took %d Redis calls, want 4", lim.Name, calls)
		}
	}
}

// When Redis fails, the check of events admitted on credit fails with it: the credit is
// forgotten and the bucket's next events go to the local limiter.
func TestCreditEndsWhenRedisFails(t *testing.T) {
	t.Parallel()
	skipShort(t)
	lim := Limit{Name: "deferred-down", Count: 64, Period: time.Hour, Deferred: true}
	p := testenv.NewProxy(t, "127.0.0.1:6379")
	l := New(openRedis(t, "redis://"+p.Addr()+"/0", testenv.RedisPrefix(t)), testenv.Logger(t))
	if r := l.Allow(t.Context(), lim, "k"); !r.Allowed || r.local {
		t.Fatalf("first Allow = %+v, want admitted by Redis", r)
	}
	p.Cut()
	if r := l.Allow(t.Context(), lim, "k"); !r.Allowed || r.local {
		t.Fatalf("Allow on credit = %+v, want admitted on credit", r)
	}
	deadline := time.Now().Add(5 * time.Second)
	for l.redisDownUntil.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the failed check of the credit's event went unnoticed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if r := l.Allow(t.Context(), lim, "k"); !r.Allowed || !r.local || r.Remaining != lim.Count-1 {
		t.Fatalf("Allow once Redis failed = %+v, want admitted by the local limiter with Remaining %d", r, lim.Count-1)
	}
}

// A client that keeps coming keeps its credit: each answer to the check of its events renews
// the credit's life, so only a client silent for creditTTL waits for Redis again.
func TestCreditLivesWhileTheClientKeepsComing(t *testing.T) {
	t.Parallel()
	l, _ := newLimiter(t)
	ttl := 300 * time.Millisecond
	l.credits = newCredits(ttl)
	lim := Limit{Name: "deferred-renewed", Count: 1000, Period: time.Hour, Deferred: true}
	l.Allow(t.Context(), lim, "k") // learns: credit until ttl from now
	for i := range 4 {
		time.Sleep(ttl / 2)
		release := hold(l)
		answered := make(chan Result, 1)
		go func() { answered <- l.Allow(t.Context(), lim, "k") }()
		select {
		case r := <-answered:
			if !r.Allowed || r.local {
				t.Fatalf("Allow #%d, %v after the last = %+v, want admitted on credit", i+2, ttl/2, r)
			}
		case <-time.After(time.Second):
			release()
			t.Fatalf("Allow #%d, %v after the last, waited for Redis: its credit was not renewed", i+2, ttl/2)
		}
		release()
	}
	time.Sleep(ttl + 50*time.Millisecond)
	calls := l.redisCalls.Load()
	if r := l.Allow(t.Context(), lim, "k"); !r.Allowed || l.redisCalls.Load() != calls+1 {
		t.Fatalf("Allow after %v of silence = %+v with %d Redis calls, want admitted by Redis in 1", ttl, r, l.redisCalls.Load()-calls)
	}
}

// One instance alone never admits more than the limit on credit: its own checks of the bucket
// that are on their way to Redis (sent when the credit was used up) count against its credit
// as the events it admitted do, and an older answer of Redis never replaces a newer one. Here
// a flood from one client, many requests at once, meets the bucket's end.
func TestOneInstanceNeverAdmitsMoreThanTheLimit(t *testing.T) {
	t.Parallel()
	l, _ := newLimiter(t)
	lim := Limit{Name: "deferred-flood", Count: 320, Period: 100 * time.Hour, Deferred: true}
	for round := range 20 {
		key := fmt.Sprint("k", round)
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				for range 20 {
					if l.Allow(t.Context(), lim, key).Allowed {
						admitted.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if got := admitted.Load(); got > int64(lim.Count) {
			t.Fatalf("round %d: one instance admitted %d of 1280 events at once, want at most the limit %d", round, got, lim.Count)
		}
	}
}

// Reset forgets the events admitted on credit and not yet sent: a reset bucket starts empty.
func TestResetForgetsEventsNotYetSent(t *testing.T) {
	t.Parallel()
	l, _ := newLimiter(t)
	lim := Limit{Name: "deferred-reset", Count: 1000, Period: time.Hour, Deferred: true}
	l.Allow(t.Context(), lim, "k")
	release := hold(l)
	if r := l.Allow(t.Context(), lim, "k"); !r.Allowed || r.local {
		t.Fatalf("Allow on credit = %+v", r)
	}
	if err := l.Reset(t.Context(), lim, "k"); err != nil {
		t.Fatal(err)
	}
	release()
	if r := l.Peek(t.Context(), lim, "k"); r.Remaining != lim.Count {
		t.Fatalf("after Reset, Peek = %+v: an event admitted before it was recorded after", r)
	}
}

// sameShard returns n keys of lim whose credits in cs share a shard.
func sameShard(cs credits, lim Limit, n int) []string {
	var names []string
	want := -1
	for i := 0; len(names) < n; i++ {
		key := fmt.Sprint("k", i)
		shard := int(maphash.String(cs.seed, bucket(lim, key)) % creditShards)
		if want < 0 {
			want = shard
		}
		if shard == want {
			names = append(names, key)
		}
	}
	return names
}

// tinyCredits holds max credits a shard, answers good for an hour.
func tinyCredits(max int32) credits {
	cs := newCredits(time.Hour)
	for i := range cs.shards {
		cs.shards[i].max = max
	}
	return cs
}

// oneShard returns credits of max a shard, and n buckets of one shard under a deferred limit of
// 1000 an hour, with its params.
func oneShard(max int32, n int) (credits, params, []string) {
	cs := tinyCredits(max)
	lim := Limit{Name: "deferred-shard", Count: 1000, Period: time.Hour, Deferred: true}
	p, _ := paramsOf(lim)
	buckets := sameShard(cs, lim, n)
	for i, key := range buckets {
		buckets[i] = bucket(lim, key)
	}
	return cs, p, buckets
}

// A full shard evicts the least recently used credit. When every credit it looks at has events
// to send (here both, held), the evicted one's unsent events are lost with it, as with Reset, and
// never reach the slot's new bucket; the new bucket's credit works as any, and the evicted
// bucket goes to Redis again.
func TestEvictedCreditLeavesItsSlotsNextBucketAlone(t *testing.T) {
	t.Parallel()
	l, _ := newLimiter(t)
	l.credits = tinyCredits(2)
	lim := Limit{Name: "deferred-evict", Count: 1000, Period: time.Hour, Deferred: true}
	keys := sameShard(l.credits, lim, 3)
	a, b, c := keys[0], keys[1], keys[2]
	for _, k := range []string{a, b} {
		if r := l.Allow(t.Context(), lim, k); !r.Allowed || r.local {
			t.Fatalf("first Allow(%s) = %+v, want admitted by Redis", k, r)
		}
	}
	release := hold(l)
	// a on credit (its check queued), then b, more recently used.
	for _, k := range []string{a, b} {
		if r := l.Allow(t.Context(), lim, k); !r.Allowed || r.Remaining != lim.Count-2 {
			t.Fatalf("Allow(%s) on credit = %+v, want admitted with Remaining %d", k, r, lim.Count-2)
		}
	}
	// c, new, takes a's slot: a was used least recently. Its check waits behind the hold.
	answered := make(chan Result, 1)
	go func() { answered <- l.Allow(t.Context(), lim, c) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l.batch.mu.Lock()
		queued := l.batch.queue.len()
		l.batch.mu.Unlock()
		if queued == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d checks queued, want a's and b's posts and c's check", queued)
		}
		time.Sleep(time.Millisecond)
	}
	release()
	if r := <-answered; !r.Allowed || r.Remaining != lim.Count-1 || r.local {
		t.Fatalf("first Allow(%s) = %+v, want admitted by Redis with Remaining %d", c, r, lim.Count-1)
	}
	// a's post was for an evicted credit: it sends nothing, so Redis holds a's first event only,
	// and c's credit did not send it either.
	waitRecorded(t, l, lim, a, 1)
	waitRecorded(t, l, lim, b, 2)
	// c's credit holds Redis's answer to c, untouched by a's: its next event goes on credit with
	// c's own count, and a, forgotten, goes to Redis.
	release = hold(l)
	go func() { answered <- l.Allow(t.Context(), lim, c) }()
	select {
	case r := <-answered:
		if !r.Allowed || r.Remaining != lim.Count-2 {
			t.Fatalf("second Allow(%s) = %+v, want admitted on credit with Remaining %d", c, r, lim.Count-2)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("second Allow(%s) waited for Redis: its credit was lost", c)
	}
	release()
	if r := l.Allow(t.Context(), lim, a); !r.Allowed || r.Remaining != lim.Count-2 {
		t.Fatalf("Allow(%s) after its credit was evicted = %+v, want admitted with Remaining %d", a, r, lim.Count-2)
	}
}

// The answer to a check of an evicted bucket's events, arriving after another bucket took the
// slot, changes nothing of the new bucket's credit.
func TestLateAnswerOfAnEvictedCreditIsDropped(t *testing.T) {
	t.Parallel()
	cs, p, buckets := oneShard(1, 2)
	a, c := buckets[0], buckets[1]
	cs.expect(a, 1).settle([5]int64{1, 500, 0, 0, 1}, nil, 1)
	_, refA, post, ok := cs.take(a, 2, p)
	if !ok || !post {
		t.Fatalf("take(a) = ok %v, post %v; want admitted on credit with a check to post", ok, post)
	}
	refA.with(func(cr *credit) { cr.sent, cr.owed = cr.owed, 0 }) // a's check is sent
	refC := cs.expect(c, 3)                                       // c takes a's slot
	refA.answer(&[5]int64{1, 7, 0, 0, 1}, 4, 1, 0)                // a's answer comes late
	refC.settle([5]int64{1, 900, 0, 0, 1}, nil, 5)
	d, _, _, ok := cs.take(c, 6, p)
	if !ok || d.remaining != 899 {
		t.Fatalf("take(c) = %+v, ok %v; want admitted on credit with remaining 899 (900 less this event)", d, ok)
	}
	if _, _, _, ok := cs.take(a, 7, p); ok {
		t.Fatal("take(a) after a's credit was evicted: admitted on credit, want a miss")
	}
}

// Eviction spares a credit with events admitted and not yet sent, though it was used less
// recently: evicted, they would never be recorded.
func TestEvictionSparesCreditsWithEventsToSend(t *testing.T) {
	t.Parallel()
	cs, p, buckets := oneShard(2, 3)
	a, b, c := buckets[0], buckets[1], buckets[2]
	answer := [5]int64{1, 500, 0, 0, 1}
	cs.expect(b, 1).settle(answer, nil, 1)
	cs.expect(a, 2).settle(answer, nil, 2)
	if _, _, _, ok := cs.take(b, 3, p); !ok { // b owes Redis an event
		t.Fatal("take(b) missed")
	}
	cs.expect(a, 4).settle(answer, nil, 4) // a: used last, nothing to send
	cs.expect(c, 5)                        // evicts a, not b
	if _, _, _, ok := cs.take(b, 6, p); !ok {
		t.Fatal("take(b) after c came: b's credit, with an event to send, was evicted")
	}
	if _, _, _, ok := cs.take(a, 7, p); ok {
		t.Fatal("take(a) after c came: admitted on credit, want a's credit evicted")
	}
}
