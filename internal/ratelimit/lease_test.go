package ratelimit

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A busy bucket is served mostly from leases, and counts exactly as if every event went to Redis.
func TestBusyBucketLeases(t *testing.T) {
	t.Parallel()
	l, _ := newLimiter(t)
	lim := Limit{Name: "busy", Count: 100_000, Period: 24 * time.Hour}
	for i := range 1000 {
		r := l.Allow(t.Context(), lim, "k")
		if want := lim.Count - 1 - i; !r.Allowed || r.Remaining != want {
			t.Fatalf("Allow #%d = %+v, want admitted with Remaining %d", i+1, r, want)
		}
	}
	if n := l.redisCalls.Load(); n > 100 {
		t.Fatalf("1000 events took %d Redis round trips, want at most 100", n)
	}
}

// Leased events come out of the shared budget: instances together never admit more than the
// limit, and lose at most a lease each.
func TestLeasesNeverOverAdmit(t *testing.T) {
	t.Parallel()
	limiters := instances(t, 2)
	lim := Limit{Name: "shared-busy", Count: 2000, Period: time.Hour}
	if got := hammer(t, limiters, lim, 500); got > int64(lim.Count) || got < int64(lim.Count-2*maxLease) {
		t.Fatalf("admitted %d of 8000 events, want at most %d and at least %d", got, lim.Count, lim.Count-2*maxLease)
	}
}

// A slow client never gets a lease, so none lapses unspent: every event costs one Redis round
// trip and exactly one event of its budget.
func TestSlowClientIsCheckedOneByOne(t *testing.T) {
	t.Parallel()
	l, _ := newLimiter(t)
	lim := Limit{Name: "slow", Count: 1000, Period: 24 * time.Hour}
	for i := range 4 {
		if i > 0 {
			time.Sleep(leaseTTL/4 + 50*time.Millisecond)
		}
		r := l.Allow(t.Context(), lim, "k")
		if want := lim.Count - 1 - i; !r.Allowed || r.Remaining != want {
			t.Fatalf("Allow #%d = %+v, want admitted with Remaining %d", i+1, r, want)
		}
	}
	if n := l.redisCalls.Load(); n != 4 {
		t.Fatalf("4 slow events took %d Redis round trips, want 4", n)
	}
	if r := l.Peek(t.Context(), lim, "k"); r.Remaining != lim.Count-4 {
		t.Fatalf("Peek after 4 slow events = %+v, want Remaining %d (nothing leased)", r, lim.Count-4)
	}
}

// hammer runs 8 goroutines on each of limiters, each making each Allows of lim's bucket "k", and
// returns how many were admitted.
func hammer(t *testing.T, limiters []*Limiter, lim Limit, each int) int64 {
	t.Helper()
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for _, l := range limiters {
		for range 8 {
			wg.Go(func() {
				for range each {
					if l.Allow(t.Context(), lim, "k").Allowed {
						admitted.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	return admitted.Load()
}
