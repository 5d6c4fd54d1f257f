package ratelimit

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// queueWhileBusy marks l's batcher busy, as if a call were in flight, runs n checks from
// goroutines of their own, waits until all n wait in the queue, and returns their results once
// the batcher has sent them (drained by the caller's drain, which it returns).
func queueWhileBusy(t *testing.T, l *Limiter, n int, run func(i int) Result) (drain func() []Result) {
	t.Helper()
	l.batch.mu.Lock()
	l.batch.running = true
	l.batch.mu.Unlock()
	results := make([]Result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i] = run(i) })
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		l.batch.mu.Lock()
		queued := l.batch.queue.len()
		l.batch.mu.Unlock()
		if queued == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d checks queued within 5s", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
	return func() []Result {
		l.batch.drain(context.Background())
		wg.Wait()
		return results
	}
}

// Checks that arrive while a call is in flight go to Redis together in the next call, and each
// gets its own bucket's answer, exact: a bucket named several times in one call sees its events
// in turn, so it admits no more than its limit; a peek records nothing.
func TestConcurrentChecksShareOneCall(t *testing.T) {
	t.Parallel()
	l, _ := newLimiter(t)
	lim := Limit{Name: "batch", Count: 2, Period: time.Hour}
	// 10 buckets checked twice each, "x" three times, "p" peeked once.
	const distinct, twice = 10, 20
	key := func(i int) string {
		switch {
		case i < twice:
			return fmt.Sprint("k", i%distinct)
		case i < twice+3:
			return "x"
		default:
			return "p"
		}
	}
	n := twice + 3 + 1
	drain := queueWhileBusy(t, l, n, func(i int) Result {
		if key(i) == "p" {
			return l.Peek(t.Context(), lim, "p")
		}
		return l.Allow(t.Context(), lim, key(i))
	})
	results := drain()
	if calls := l.redisCalls.Load(); calls != 1 {
		t.Fatalf("%d queued checks took %d Redis calls, want 1", n, calls)
	}
	remaining := map[string][]int{}
	refused := map[string]int{}
	for i, r := range results {
		if r.local {
			t.Fatalf("check %d (%s) was decided in process: %+v", i, key(i), r)
		}
		if !r.Allowed {
			refused[key(i)]++
			continue
		}
		remaining[key(i)] = append(remaining[key(i)], r.Remaining)
	}
	for k := range distinct {
		got := remaining[fmt.Sprint("k", k)]
		slices.Sort(got)
		if !slices.Equal(got, []int{0, 1}) {
			t.Errorf("bucket k%d, checked twice in one call: admitted with Remaining %v, want [0 1]", k, got)
		}
	}
	if got := remaining["x"]; len(got) != 2 || refused["x"] != 1 {
		t.Errorf("bucket x (limit 2), checked three times in one call: admitted %v, refused %d; want two admitted and one refused", got, refused["x"])
	}
	if got := remaining["p"]; len(got) != 1 || got[0] != lim.Count {
		t.Errorf("peek of an untouched bucket in the call: %v, want admitted with Remaining %d", got, lim.Count)
	}
	if r := l.Peek(t.Context(), lim, "p"); r.Remaining != lim.Count {
		t.Errorf("after the call, Peek(p) = %+v: the peek in the call recorded an event", r)
	}
}

// A call carries at most maxBatch buckets, Redis running nothing else while it runs; under a
// backlog, more than maxBatch queued, up to maxBacklogBatch, so that calls keep up with the
// checks arriving.
func TestCallsCarryAtMostMaxBatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ n, calls int }{
		{64, 1},
		{513, 3}, // 256, 256 and 1; at 64 a call it took 9
	} {
		l, _ := newLimiter(t)
		lim := Limit{Name: "batch-max", Count: 5, Period: time.Hour}
		results := queueWhileBusy(t, l, tc.n, func(i int) Result { return l.Allow(t.Context(), lim, fmt.Sprint(i)) })()
		if calls := l.redisCalls.Load(); calls != int64(tc.calls) {
			t.Fatalf("%d queued checks took %d Redis calls, want %d (at most %d buckets each, %d under a backlog)", tc.n, calls, tc.calls, maxBatch, maxBacklogBatch)
		}
		for i, r := range results {
			if !r.Allowed || r.Remaining != lim.Count-1 || r.local {
				t.Fatalf("check %d = %+v, want admitted by Redis with Remaining %d", i, r, lim.Count-1)
			}
		}
	}
}

// Under load from many slow clients, every check is still exact, and calls are shared: fewer
// Redis calls than checks.
func TestManySlowClientsAtOnce(t *testing.T) {
	t.Parallel()
	l, _ := newLimiter(t)
	lim := Limit{Name: "batch-many", Count: 3, Period: time.Hour}
	const workers, each = 32, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if r := l.Allow(t.Context(), lim, fmt.Sprint(w, "-", i)); !r.Allowed || r.Remaining != lim.Count-1 || r.local {
					errs <- fmt.Errorf("worker %d check %d = %+v, want admitted by Redis with Remaining %d", w, i, r, lim.Count-1)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if calls := l.redisCalls.Load(); calls >= workers*each {
		t.Fatalf("%d concurrent checks took %d Redis calls, want fewer", workers*each, calls)
	}
	t.Logf("%d checks in %d calls", workers*each, l.redisCalls.Load())
	// A call's checks are answered before its sender clears running, so the batcher may still
	// be finishing the last call when every check has returned: it must be idle soon after, not
	// stuck running.
	deadline := time.Now().Add(2 * time.Second)
	for {
		l.batch.mu.Lock()
		running, queued := l.batch.running, l.batch.queue.len()
		l.batch.mu.Unlock()
		if !running && queued == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("2 s after every check returned, the batcher is running=%v with %d queued", running, queued)
		}
		time.Sleep(time.Millisecond)
	}
}

// A check whose caller gives up while it waits for the next call is refused at once and left
// out of the call (a refused caller's event counts nowhere); the call still goes, and the others
// in it get their answers.
func TestAbandonedCheckLeavesTheCallToOthers(t *testing.T) {
	t.Parallel()
	l, _ := newLimiter(t)
	lim := Limit{Name: "batch-gone", Count: 2, Period: time.Hour}
	ctx, cancel := context.WithCancel(t.Context())
	gone := make(chan Result, 1)
	drain := queueWhileBusy(t, l, 2, func(i int) Result {
		if i == 0 {
			r := l.Allow(ctx, lim, "gone")
			gone <- r
			return r
		}
		return l.Allow(t.Context(), lim, "stays")
	})
	cancel()
	select {
	case r := <-gone:
		if r.Allowed {
			t.Fatalf("Allow whose caller gave up in the queue = %+v, want refused", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a caller that gave up kept waiting for the call")
	}
	results := drain()
	if r := results[1]; !r.Allowed || r.Remaining != lim.Count-1 || r.local {
		t.Fatalf("the other check of the call = %+v, want admitted by Redis with Remaining %d", r, lim.Count-1)
	}
	if r := l.Peek(t.Context(), lim, "gone"); r.Remaining != lim.Count {
		t.Fatalf("the refused caller's bucket after the call: %+v, want nothing recorded", r)
	}
}

// The queue takes from its front in order, and an emptied queue lets a burst's array go.
func TestQueueTakesInOrderAndLetsABurstGo(t *testing.T) {
	var q queue
	checks := make([]*check, 5000)
	for i := range checks {
		checks[i] = &check{key: fmt.Sprint(i)}
		q.push(checks[i])
	}
	var got []*check
	for q.len() > 0 {
		got = append(got, q.take(maxBacklogBatch)...)
	}
	if !slices.Equal(got, checks) {
		t.Fatal("the queue gave its checks out of order, or lost some")
	}
	if cap(q.q) > 4*maxBacklogBatch {
		t.Fatalf("emptied after a burst of %d, the queue keeps an array of %d", len(checks), cap(q.q))
	}
}
