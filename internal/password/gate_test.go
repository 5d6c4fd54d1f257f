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
