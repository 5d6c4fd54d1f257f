package every

import (
	"context"
	"testing"
	"time"
)

func TestTickStopsWhenFnSaysSo(t *testing.T) {
	n := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		Tick(context.Background(), time.Millisecond, func() bool { n++; return n < 3 })
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Tick did not stop after fn returned false")
	}
	if n != 3 {
		t.Fatalf("fn ran %d times, want 3", n)
	}
}

func TestTickStopsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); Tick(ctx, time.Hour, func() bool { t.Error("fn ran"); return true }) }()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Tick did not stop when its context ended")
	}
}
