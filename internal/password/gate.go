package password

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// ErrBusy is returned by Gate.Do when every slot is taken and the queue is full.
var ErrBusy = errors.New("password hashing is at capacity")

// Gate bounds concurrent password hashing: argon2id costs ~19 MiB and tens of milliseconds per
// call, so an unbounded flood of logins would exhaust memory and starve every other request.
// At most Concurrency hashes run at once; up to Queue more wait; the rest are refused at once.
type Gate struct {
	slots   chan struct{}
	limit   int64
	waiting atomic.Int64 // running and queued
	done    func(wait, run time.Duration)
}

// NewGate returns a Gate running concurrency hashes with queue more waiting.
func NewGate(concurrency, queue int) *Gate {
	if concurrency < 1 {
		concurrency = 1
	}
	return &Gate{slots: make(chan struct{}, concurrency), limit: int64(concurrency + max(queue, 0))}
}

// Do runs fn when a slot is free. It returns ErrBusy without waiting when the queue is full, or
// ctx's error when ctx ends while waiting.
func (g *Gate) Do(ctx context.Context, fn func()) error {
	if g.waiting.Add(1) > g.limit {
		g.waiting.Add(-1)
		return ErrBusy
	}
	defer g.waiting.Add(-1)
	queued := time.Now()
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-g.slots }()
	started := time.Now()
	fn()
	if g.done != nil {
		g.done(started.Sub(queued), time.Since(started))
	}
	return nil
}

// OnDone makes g call f after each fn it ran, with how long it waited for a slot and how long it
// ran. Call it before g is used.
func (g *Gate) OnDone(f func(wait, run time.Duration)) { g.done = f }

// Load reports how many calls are running and how many wait for a slot, now.
func (g *Gate) Load() (running, queued int) {
	running = len(g.slots)
	return running, max(int(g.waiting.Load())-running, 0)
}

// Full reports whether a Do now would be refused: callers check it before work that only makes
// sense if hashing will run (a database lookup, say), so a flood is turned away cheaply. Do
// still decides; Full may be wrong by the calls racing it.
func (g *Gate) Full() bool { return g.waiting.Load() >= g.limit }
