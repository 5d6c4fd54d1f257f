package password

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestGateBoundsConcurrencyAndRefusesBeyondTheQueue(t *testing.T) {
	g := NewGate(2, 3)
	release := make(chan struct{})
	var running, peak atomic.Int64
	var wg sync.WaitGroup
	start := func() {
		defer wg.Done()
		_ = g.Do(context.Background(), func() {
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			<-release
			running.Add(-1)
		})
	}
	for range 5 { // 2 running + 3 queued
		wg.Add(1)
		go start()
	}
	deadline := time.Now().Add(2 * time.Second)
	for g.waiting.Load() < 5 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !g.Full() {
		t.Fatal("Full() = false with every slot and the queue taken")
	}
	if running, queued := g.Load(); running != 2 || queued != 3 {
		t.Fatalf("Load() = %d running, %d queued; want 2, 3", running, queued)
	}
	began := time.Now()
	if err := g.Do(context.Background(), func() { t.Error("ran beyond the queue") }); !errors.Is(err, ErrBusy) {
		t.Fatalf("6th call: %v, want ErrBusy", err)
	}
	if waited := time.Since(began); waited > 50*time.Millisecond {
		t.Fatalf("refusal took %v; it must be immediate", waited)
	}
	close(release)
	wg.Wait()
	if peak.Load() != 2 {
		t.Fatalf("peak concurrency %d, want 2", peak.Load())
	}
	if g.Full() {
		t.Fatal("Full() = true after the flood drained")
	}
	if running, queued := g.Load(); running != 0 || queued != 0 {
		t.Fatalf("after the flood Load() = %d running, %d queued; want 0, 0", running, queued)
	}
	if err := g.Do(context.Background(), func() {}); err != nil {
		t.Fatalf("after the flood: %v", err)
	}
}

func TestGateGivesUpWhenTheContextEnds(t *testing.T) {
	g := NewGate(1, 1)
	hold := make(chan struct{})
	go g.Do(context.Background(), func() { <-hold })
	for g.waiting.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := g.Do(ctx, func() { t.Error("ran without a slot") }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	close(hold)
}

// OnDone hears of every call that ran, with its wait for a slot and its run time; a refused or
// abandoned call is not reported.
func TestGateReportsWaitAndRunTimes(t *testing.T) {
	g := NewGate(1, 1)
	type report struct{ wait, run time.Duration }
	var mu sync.Mutex
	var reports []report
	g.OnDone(func(wait, run time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		reports = append(reports, report{wait, run})
	})
	first := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { _ = g.Do(context.Background(), func() { <-first }) })
	for g.waiting.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	wg.Go(func() { _ = g.Do(context.Background(), func() { time.Sleep(20 * time.Millisecond) }) })
	for g.waiting.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	if err := g.Do(context.Background(), func() {}); !errors.Is(err, ErrBusy) {
		t.Fatalf("third call: %v, want ErrBusy", err)
	}
	time.Sleep(30 * time.Millisecond)
	close(first)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(reports) != 2 {
		t.Fatalf("%d reports for 2 calls that ran (and one refused)", len(reports))
	}
	if r := reports[0]; r.run < 30*time.Millisecond {
		t.Errorf("first call: ran %v, but it held its slot at least 30 ms", r.run)
	}
	if r := reports[1]; r.wait < 30*time.Millisecond || r.run < 20*time.Millisecond {
		t.Errorf("second call: waited %v and ran %v; want >= 30 ms and >= 20 ms", r.wait, r.run)
	}
}
