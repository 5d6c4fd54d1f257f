package users

import (
	"context"
	"sync/atomic"
	"time"
)

// hashClock is a moving average of how long one hash at the current parameters takes on this
// machine now, measured inside the gate (so queueing is left out), in warm working memory only:
// a cold hash (the process's first, or the first after argon2.KeepIdle without one) takes two
// to three times as long, and seeding or skewing the average with it would make dormant
// accounts answer slower than unknown ones.
type hashClock struct{ ns atomic.Int64 }

// observe folds in one hash at the current parameters that took d.
func (c *hashClock) observe(d time.Duration) {
	for {
		old := c.ns.Load()
		next := int64(d)
		if old != 0 {
			next = old + (int64(d)-old)/8
		}
		if c.ns.CompareAndSwap(old, next) {
			return
		}
	}
}

// current is the average, or 0 before any hash at the current parameters was timed.
func (c *hashClock) current() time.Duration { return time.Duration(c.ns.Load()) }

// padWrongPassword makes a wrong password checked against a hash made with weaker parameters
// (an account that has not signed in since the cost was raised) take as long as a hash at the
// current ones, which is what an unknown account costs (verifyDummy): else the shorter answer
// would tell a dormant account from an unknown one. took is the weaker hash's own time. Before
// any warm current hash was timed, or while the hasher's memory is cold (an unknown account
// would pay a cold hash now), it runs a real one, as an unknown account does. A client gone
// meanwhile is not waited for, and a full gate skips that hash: the password has been tested
// either way, so the failure must stand (a refund for ErrOverloaded would give a guess back).
func (s *Service) padWrongPassword(ctx context.Context, pw string, took time.Duration) {
	target := s.clock.current()
	if target == 0 || !s.hasher.Warm() {
		_ = s.verifyDummy(ctx, pw)
		return
	}
	if wait := target - took; wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
}
