package ratelimit

import (
	"sync"
	"time"

	"github.com/maypok86/otter/v2"
)

// Leases spare busy buckets a Redis round trip per event. An Allow that goes to Redis may take
// several events from the shared bucket at once: the first is the caller's, the rest are this
// instance's lease, spent by the next Allows of the same bucket without asking Redis. Leased
// events come out of the shared budget when taken, so all instances together never admit more
// than the limit; an unspent lease lapses after leaseTTL, and its events are lost, so a client
// moving between instances may see a limit stricter by at most one lease. Leases are a small
// share of what the bucket had left (at most maxLease), so buckets near their limit are checked
// in Redis on every event, exactly. A lease grows only while the bucket is busy on this
// instance (its last lease was spent within a quarter of leaseTTL), so a slow client, whose
// lease would lapse unspent, is checked one event at a time.
const (
	maxLease      = 32
	leaseFraction = 16 // a lease is at most 1/leaseFraction of the events remaining
	leaseTTL      = time.Second
	maxLeases     = 100_000
)

type lease struct {
	mu sync.Mutex
	// left events may still be admitted locally until expires (monotonic ns since the
	// Limiter's start).
	left, expires int64
	// remaining and reset are Redis's answer when the lease was taken (reset in µs, at taken).
	remaining, reset, taken int64
	granted                 int64
}

type leases struct{ c *otter.Cache[string, *lease] }

func newLeases() leases {
	return leases{c: otter.Must(&otter.Options[string, *lease]{
		MaximumSize:      maxLeases,
		ExpiryCalculator: otter.ExpiryWriting[string, *lease](2 * leaseTTL),
	})}
}

// take admits one event from bucket's lease at now (monotonic ns), if it has one.
func (ls leases) take(bucket string, now int64) (decision, bool) {
	l, ok := ls.c.GetIfPresent(bucket)
	if !ok {
		return decision{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.left <= 0 || now >= l.expires {
		return decision{}, false
	}
	l.left--
	elapsed := (now - l.taken) / int64(time.Microsecond)
	return decision{allowed: true, remaining: l.remaining + l.left, reset: max(l.reset-elapsed, 0)}, true
}

// size is how many events the next Redis call for bucket, at now, should ask for.
func (ls leases) size(bucket string, now int64) int64 {
	l, ok := ls.c.GetIfPresent(bucket)
	if !ok {
		return 1
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	since := time.Duration(now - l.taken)
	var n int64
	switch {
	case l.left > 0 || since >= leaseTTL: // the last lease lapsed: not busy
		return 1
	case since < leaseTTL/4:
		n = 2 * l.granted
	default:
		n = l.granted
	}
	return max(1, min(n, l.remaining/leaseFraction, maxLease))
}

// grant records Redis's answer to a request for events at now: granted of them were taken, the
// first for the caller. It returns the caller's decision. Concurrent requests for one bucket
// may each bring back a lease: the events of all of them are kept, never one lease overwriting
// another's unspent events (those were taken from the shared budget already).
func (ls leases) grant(bucket string, d decision, granted, now int64) decision {
	left := max(granted-1, 0)
	fresh := &lease{left: left, expires: now + int64(leaseTTL), remaining: d.remaining, reset: d.reset, taken: now, granted: max(granted, 1)}
	if l, inserted := ls.c.SetIfAbsent(bucket, fresh); !inserted {
		l.mu.Lock()
		if l.left > 0 && now < l.expires {
			left += l.left
		}
		l.left, l.expires, l.remaining, l.reset, l.taken, l.granted = left, fresh.expires, fresh.remaining, fresh.reset, now, fresh.granted
		l.mu.Unlock()
	}
	d.remaining += left
	return d
}

func (ls leases) drop(bucket string) { ls.c.Invalidate(bucket) }
