package ratelimit

import (
	"context"
	"hash/maphash"
	"strconv"
	"sync"
	"time"
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
	// maxCredits is about how many buckets the credits remember (up to 1/8 more: buckets spread
	// unevenly over the shards); past it the least recently used of a few go.
	maxCredits   = 100_000
	creditShards = 64
	creditChunk  = 256
	shardSlots   = (maxCredits*9/8 + creditShards - 1) / creditShards
	// evictSample is how many slots an eviction compares, from the shard's clock hand on, and
	// evictScan how far it looks for one without events to send.
	evictSample = 8
	evictScan   = 64
)

// A credit is one bucket's. It holds no pointer, nor does the index that finds it: the GC marks
// every pointer of the heap on every cycle, and with 100,000 clients a cache of entries keyed by
// bucket name (name, node, *credit) was ~17 MB of pointers to mark several times a second. A
// bucket is known by two hashes of its name under random seeds (a slot whose second hash
// differs is another bucket's); a slot is reused when its bucket is dropped or evicted, and gen
// counts its reuses, so that a check still carrying an old bucket's events or answer leaves the
// new one alone.
type credit struct {
	id, check, gen uint64
	// used is when the credit was last taken or checked (monotonic ns since the Limiter's
	// start), for eviction.
	used int64
	// remaining and reset (µs) are Redis's last answer, net of the events it recorded then,
	// answered when it arrived (monotonic ns).
	remaining, reset, answered int64
	// owed counts events admitted here and not yet sent, sent those on their way to Redis;
	// queued is set while a check that will send the owed ones waits for its call. pending
	// counts this instance's checks of the bucket decided in Redis whose answers have not
	// arrived: each may take an event that the last answer still counted as left.
	owed, sent, pending int64
	queued              bool
}

type credits struct {
	shards      *[creditShards]creditShard
	seed, seed2 maphash.Seed
	// ttl is how long an answer of Redis is good for (creditTTL; shorter in tests).
	ttl int64
}

// A creditShard is a share of the buckets, under one lock.
type creditShard struct {
	mu    sync.Mutex
	index map[uint64]int32
	// chunks hold the slots, never moved once made: a creditRef points into them.
	chunks []*[creditChunk]credit
	// made counts the slots made so far, at most max; free lists those released; hand is where
	// the next eviction looks.
	made, max, hand int32
	free            []int32
}

// A creditRef is a credit in use by a check: it finds the slot as long as it holds the same
// bucket.
type creditRef struct {
	s   *creditShard
	i   int32
	gen uint64
}

func newCredits(ttl time.Duration) credits {
	cs := credits{shards: new([creditShards]creditShard), seed: maphash.MakeSeed(), seed2: maphash.MakeSeed(), ttl: int64(ttl)}
	for i := range cs.shards {
		cs.shards[i].index, cs.shards[i].max = make(map[uint64]int32), shardSlots
	}
	return cs
}

func (s *creditShard) slot(i int32) *credit { return &s.chunks[i/creditChunk][i%creditChunk] }

// find returns bucket's shard, and its slot if it has one; the caller holds the shard's lock
// until it is done with the slot.
func (cs credits) find(bucket string) (s *creditShard, id, check uint64, i int32, ok bool) {
	id, check = maphash.String(cs.seed, bucket), maphash.String(cs.seed2, bucket)
	s = &cs.shards[id%creditShards]
	s.mu.Lock()
	if i, ok = s.index[id]; ok && s.slot(i).check != check {
		ok = false
	}
	return s, id, check, i, ok
}

// take admits one event of bucket at now (monotonic ns) on credit, if it may. When it returns
// post, the caller must post its check (postCredit): no check is queued yet.
func (cs credits) take(bucket string, now int64, p params) (d decision, ref creditRef, post, ok bool) {
	s, _, _, i, found := cs.find(bucket)
	defer s.mu.Unlock()
	if !found {
		return decision{}, creditRef{}, false, false
	}
	cr := s.slot(i)
	cr.used = now
	if now-cr.answered >= cs.ttl || (cr.owed+cr.sent+cr.pending+1)*creditFraction > cr.remaining {
		return decision{}, creditRef{}, false, false
	}
	cr.owed++
	unrecorded := cr.owed + cr.sent
	if !cr.queued {
		cr.queued, post = true, true
	}
	elapsed := (now - cr.answered) / int64(time.Microsecond)
	d = decision{allowed: true, remaining: cr.remaining - unrecorded, reset: max(cr.reset-elapsed, 0) + unrecorded*p.t}
	return d, creditRef{s, i, cr.gen}, post, true
}

// expect returns bucket's credit (one that admits nothing until Redis has answered, if there
// was none) counting one more check of the bucket on its way to Redis at now: the caller must
// settle it once the check's call returns, in the call's order (check.finish).
func (cs credits) expect(bucket string, now int64) creditRef {
	s, id, check, i, found := cs.find(bucket)
	defer s.mu.Unlock()
	if !found {
		i = s.claim(id, check)
	}
	cr := s.slot(i)
	cr.used = now
	cr.pending++
	return creditRef{s, i, cr.gen}
}

// claim gives bucket id a fresh slot: its own if another bucket with the same id holds it, or
// a free one, a new one, or an evicted one.
func (s *creditShard) claim(id, check uint64) int32 {
	i, ok := s.index[id]
	switch {
	case ok:
	case len(s.free) > 0:
		i, s.free = s.free[len(s.free)-1], s.free[:len(s.free)-1]
	case s.made < s.max:
		if s.made%creditChunk == 0 {
			s.chunks = append(s.chunks, new([creditChunk]credit))
		}
		i = s.made
		s.made++
	default:
		// The least recently used of evictSample slots, sparing those with events admitted and
		// not yet sent, which would be lost with their credit (looking on up to evictScan slots
		// for one without): under the churn of more clients than slots the least recently used
		// are long settled.
		idle, lru := int32(-1), int32(-1)
		k := int32(0)
		for ; k < s.made && (k < evictSample || idle < 0 && k < evictScan); k++ {
			j := (s.hand + k) % s.made
			cr := s.slot(j)
			if lru < 0 || cr.used < s.slot(lru).used {
				lru = j
			}
			if cr.owed == 0 && (idle < 0 || cr.used < s.slot(idle).used) {
				idle = j
			}
		}
		s.hand = (s.hand + k) % s.made
		if i = lru; idle >= 0 {
			i = idle
		}
		delete(s.index, s.slot(i).id)
	}
	cr := s.slot(i)
	*cr = credit{id: id, check: check, gen: cr.gen + 1}
	s.index[id] = i
	return i
}

// release forgets slot i's bucket and frees the slot; the shard's lock is held.
func (s *creditShard) release(i int32) {
	cr := s.slot(i)
	delete(s.index, cr.id)
	*cr = credit{gen: cr.gen + 1}
	s.free = append(s.free, i)
}

// drop forgets bucket's credit, and its events not yet sent: a check already queued for them
// sends none.
func (cs credits) drop(bucket string) {
	s, _, _, i, found := cs.find(bucket)
	defer s.mu.Unlock()
	if found {
		s.release(i)
	}
}

// with runs f on r's credit, under its shard's lock, if the slot still holds r's bucket.
func (r creditRef) with(f func(*credit)) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	if cr := r.s.slot(r.i); cr.gen == r.gen {
		f(cr)
	}
}

// settle ends a check counted by expect, keeping Redis's answer v to it, arrived at now, unless
// the check failed.
func (r creditRef) settle(v [5]int64, err error, now int64) {
	if err != nil {
		r.answer(nil, now, 0, 1)
		return
	}
	r.answer(&v, now, 0, 1)
}

// answer ends a check of r's bucket that carried sent of its events (a posted check) or was
// counted by expect (pending 1), keeping Redis's answer v to it, arrived at now, if there is one.
func (r creditRef) answer(v *[5]int64, now, sent, pending int64) {
	r.with(func(cr *credit) {
		cr.sent -= sent
		cr.pending -= pending
		if v != nil {
			cr.remaining, cr.reset, cr.answered = v[1], v[2], now
		}
	})
}

// postCredit queues the check that sends the owed events of r's bucket, named name, to Redis.
// If it fails the credit is forgotten (the bucket's next events go to Redis, or to the local
// limiter while Redis is down) and its events are lost.
func (l *Limiter) postCredit(name string, r creditRef, p params) {
	var n int64
	l.batch.post(&check{
		key: l.rc.Key(name),
		prepare: func(c *check) bool {
			r.with(func(cr *credit) {
				n = cr.owed
				cr.sent += n
				cr.owed, cr.queued = 0, false
			})
			c.args = [4]string{strconv.FormatInt(p.t, 10), strconv.FormatInt(p.tau, 10), "2", strconv.FormatInt(n, 10)}
			return n > 0
		},
		finish: func(v [5]int64, err error) {
			if err != nil {
				r.with(func(*credit) { r.s.release(r.i) })
				l.redisDownUntil.Store(l.since() + int64(l.backoff))
				l.warn(context.Background(), "rate limit: redis failed; limiting in process", err)
				return
			}
			r.answer(&v, l.since(), n, 0)
		},
	})
}
