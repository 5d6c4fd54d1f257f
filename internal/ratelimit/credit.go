package ratelimit

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/maypok86/otter/v2"
)

// Credits spare the request of a deferred limit (Limit.Deferred) its wait for Redis. Once Redis
// has answered for a bucket, this instance admits the bucket's next events itself while they
// fit in a small share of what Redis said was left (at most 1/creditFraction, counting those
// admitted since) and that answer is at most creditTTL old, and sends them to Redis after the
// fact: the first such event posts a check that records every event admitted by the time its
// call is sent, recorded even past the limit, and brings back Redis's new answer (so a client
// that keeps coming keeps its credit). Unknown buckets, stale answers and buckets near their
// limit (under creditFraction events left) are checked in Redis before admitting, as other
// limits are; until such a check is answered it counts against the credit as an event would.
//
// What that gives up: while an instance's answer is current, the instances together admit no
// more than the limit, since each admits at most 1/creditFraction of what is left; but events
// that other instances admitted since this instance's answer are unknown to it, so a bucket
// spent elsewhere can be overdrawn by up to 1/creditFraction of its burst on each other instance
// that last heard of it with room to spare. Every admitted event is recorded, so an overdrawn
// bucket refuses until it has refilled by as much: over time a client gets no more than the
// rate. Events admitted just before Redis fails are lost with their check (at most
// 1/creditFraction of a burst per bucket on each instance); the local limiter takes over.
const (
	creditFraction = 16
	creditTTL      = 10 * time.Second
	maxCredits     = 100_000
)

type credit struct {
	mu sync.Mutex
	// remaining and reset (µs) are Redis's last answer, net of the events it recorded then,
	// answered when it arrived (monotonic ns since the Limiter's start).
	remaining, reset, answered int64
	// owed counts events admitted here and not yet sent, sent those on their way to Redis;
	// queued is set while a check that will send the owed ones waits for its call. pending
	// counts this instance's checks of the bucket decided in Redis whose answers have not
	// arrived: each may take an event that the last answer still counted as left.
	owed, sent, pending int64
	queued              bool
}

type credits struct {
	c *otter.Cache[string, *credit]
	// ttl is how long an answer of Redis is good for (creditTTL; shorter in tests).
	ttl int64
}

func newCredits(ttl time.Duration) credits {
	return credits{ttl: int64(ttl), c: otter.Must(&otter.Options[string, *credit]{
		MaximumSize:      maxCredits,
		ExpiryCalculator: otter.ExpiryAccessing[string, *credit](ttl),
	})}
}

// take admits one event of bucket at now (monotonic ns) on credit, if it may. When it returns
// a credit to post, the caller must post its check (postCredit): no check is queued yet.
func (cs credits) take(bucket string, now int64, p params) (decision, *credit, bool) {
	cr, ok := cs.c.GetIfPresent(bucket)
	if !ok {
		return decision{}, nil, false
	}
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if now-cr.answered >= cs.ttl || (cr.owed+cr.sent+cr.pending+1)*creditFraction > cr.remaining {
		return decision{}, nil, false
	}
	cr.owed++
	unrecorded := cr.owed + cr.sent
	var post *credit
	if !cr.queued {
		cr.queued, post = true, cr
	}
	elapsed := (now - cr.answered) / int64(time.Microsecond)
	return decision{allowed: true, remaining: cr.remaining - unrecorded, reset: max(cr.reset-elapsed, 0) + unrecorded*p.t}, post, true
}

// expect returns bucket's credit (one that admits nothing until Redis has answered, if there
// was none) counting one more check of the bucket on its way to Redis: the caller must settle
// it once the check's call returns, in the call's order (check.finish).
func (cs credits) expect(bucket string) *credit {
	cr, ok := cs.c.GetIfPresent(bucket)
	if !ok {
		cr, _ = cs.c.SetIfAbsent(bucket, &credit{})
	}
	cr.mu.Lock()
	defer cr.mu.Unlock()
	cr.pending++
	return cr
}

// settle ends a check counted by expect, keeping Redis's answer v to it, arrived at now, unless
// the check failed.
func (cr *credit) settle(v [5]int64, err error, now int64) {
	if err != nil {
		cr.answer(nil, now, 0, 1)
		return
	}
	cr.answer(&v, now, 0, 1)
}

// answer ends a check of cr's bucket that carried sent of its events (a posted check) or was
// counted by expect (pending 1), keeping Redis's answer v to it, arrived at now, if there is one.
func (cr *credit) answer(v *[5]int64, now, sent, pending int64) {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	cr.sent -= sent
	cr.pending -= pending
	if v != nil {
		cr.remaining, cr.reset, cr.answered = v[1], v[2], now
	}
}

// drop forgets bucket's credit, and its events not yet sent: a check already queued for them
// sends none.
func (cs credits) drop(bucket string) {
	if cr, ok := cs.c.GetIfPresent(bucket); ok {
		cr.mu.Lock()
		cr.owed = 0
		cr.mu.Unlock()
	}
	cs.c.Invalidate(bucket)
}

// postCredit queues the check that sends cr's owed events of bucket name to Redis. If it fails
// the credit is forgotten (the bucket's next events go to Redis, or to the local limiter while
// Redis is down) and its events are lost.
func (l *Limiter) postCredit(name string, cr *credit, p params) {
	var n int64
	l.batch.post(&check{
		key: l.rc.Key(name),
		prepare: func(c *check) bool {
			cr.mu.Lock()
			n = cr.owed
			cr.sent += n
			cr.owed, cr.queued = 0, false
			cr.mu.Unlock()
			c.args = [4]string{strconv.FormatInt(p.t, 10), strconv.FormatInt(p.tau, 10), "2", strconv.FormatInt(n, 10)}
			return n > 0
		},
		finish: func(v [5]int64, err error) {
			if err != nil {
				if got, ok := l.credits.c.GetIfPresent(name); ok && got == cr {
					l.credits.drop(name)
				}
				l.redisDownUntil.Store(l.since() + int64(l.backoff))
				l.warn(context.Background(), "rate limit: redis failed; limiting in process", err)
				return
			}
			cr.answer(&v, l.since(), n, 0)
		},
	})
}
