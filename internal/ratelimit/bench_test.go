package ratelimit

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAllowManyClients is the per-IP limit under traffic from 100,000 clients, each seen
// before (as in the bench's me-ips row once every address has come once), 32 requests at a
// time, against the real Redis: "exact" waits for Redis on every event (calls batched), the
// baseline; "deferred" (the per-IP limit on every request) decides on credit and records after,
// and its time includes sending every event so admitted to Redis.
func BenchmarkAllowManyClients(b *testing.B) {
	for _, deferred := range []bool{false, true} {
		name := "exact"
		if deferred {
			name = "deferred"
		}
		b.Run(name, func(b *testing.B) {
			l, _ := newLimiter(b)
			lim := Limit{Name: "ip", Count: 1_000_000, Period: time.Minute, Deferred: deferred}
			const clients = 100_000
			keys := make([]string, clients)
			for i := range keys {
				keys[i] = "ip:198.18." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256)
				l.Allow(b.Context(), lim, keys[i])
			}
			calls := l.redisCalls.Load()
			var next atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(16) // 32 goroutines on 2 cores, as wrk's 32 connections
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if !l.Allow(b.Context(), lim, keys[next.Add(1)%clients]).Allowed {
						b.Error("refused")
						return
					}
				}
			})
			for { // the events admitted on credit are not done until Redis has them
				l.batch.mu.Lock()
				idle := !l.batch.running
				l.batch.mu.Unlock()
				if idle {
					break
				}
				time.Sleep(50 * time.Microsecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(l.redisCalls.Load()-calls)/float64(b.N), "calls/op")
		})
	}
}

// BenchmarkGCWithManyCredits is one garbage collection of a heap that holds the credits of
// 100,000 clients, as the server's does in the bench's me-ips row: the GC marks every pointer
// of the heap on every cycle, so its time grows with the pointers the credits hold.
func BenchmarkGCWithManyCredits(b *testing.B) {
	l, _ := newLimiter(b)
	lim := Limit{Name: "ip", Count: 1_000_000, Period: time.Minute, Deferred: true}
	const clients = 100_000
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := next.Add(1); i <= clients; i = next.Add(1) {
				l.Allow(b.Context(), lim, "ip:198.18."+strconv.Itoa(int(i)/256)+"."+strconv.Itoa(int(i)%256))
			}
		})
	}
	wg.Wait()
	runtime.GC()
	for b.Loop() {
		runtime.GC()
	}
	runtime.KeepAlive(l)
}
