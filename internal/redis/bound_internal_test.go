package redis

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// With tracing off, the calls of the next timeout/4 share one deadline, at least a timeout and
// at most 1.25 timeouts away; after that a new one is made.
func TestBoundSharesADeadlineOfAtLeastTheTimeout(t *testing.T) {
	c := &Client{timeout: 200 * time.Millisecond}
	first, cancel := c.bound(context.Background())
	cancel() // a shared deadline must outlive its callers' cancels
	start := time.Now()
	second, _ := c.bound(context.Background())
	if first != second {
		t.Fatal("two calls within timeout/4 got different contexts")
	}
	if first.Err() != nil {
		t.Fatalf("a caller's cancel ended the shared context: %v", first.Err())
	}
	dl, ok := first.Deadline()
	if left := dl.Sub(start); !ok || left < c.timeout-10*time.Millisecond || left > c.timeout+c.timeout/4 {
		t.Fatalf("deadline %v away, want between the timeout %v and 1.25 of it", left, c.timeout)
	}
	time.Sleep(c.timeout/4 + 5*time.Millisecond)
	third, _ := c.bound(context.Background())
	if third == first {
		t.Fatal("the shared context was not renewed after timeout/4")
	}
	if dl3, _ := third.Deadline(); time.Until(dl3) < c.timeout-10*time.Millisecond {
		t.Fatalf("renewed deadline only %v away", time.Until(dl3))
	}
	<-first.Done() // and the old one ends by itself at its deadline
	if !errors.Is(first.Err(), context.DeadlineExceeded) {
		t.Fatalf("old context ended with %v", first.Err())
	}
}

// After a call got no answer, calls fail at once and one probe per backoff tries Redis; a
// reply, even an error of Redis's own, ends the backoff. An answer from memory never probes.
func TestNoAnswerBacksOffWithOneProbePerPeriod(t *testing.T) {
	c := &Client{start: time.Now(), backoff: 30 * time.Millisecond, logger: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	if !c.answering(false) || !c.answering(true) {
		t.Fatal("a fresh client refuses calls")
	}
	c.observe(ctx, context.DeadlineExceeded)
	if c.answering(true) || c.answering(false) {
		t.Fatal("a call went to Redis right after one timed out")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	c2 := &Client{start: time.Now(), backoff: time.Hour, logger: c.logger}
	if c2.observe(cancelled, context.Canceled); !c2.answering(false) {
		t.Fatal("a caller giving up started a backoff")
	}
	time.Sleep(40 * time.Millisecond)
	if c.answering(false) {
		t.Fatal("a read from memory probed Redis")
	}
	if !c.answering(true) {
		t.Fatal("no probe after the backoff")
	}
	if c.answering(true) {
		t.Fatal("two probes in one backoff")
	}
	c.observe(ctx, &rueidis.RedisError{})
	if !c.answering(false) || !c.answering(true) {
		t.Fatal("Redis's own answer did not end the backoff")
	}
}
