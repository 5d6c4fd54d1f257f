package ratelimit

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/redis/rueidis"
)

// gcraLua is gcra run atomically in Redis against Redis's own clock, so instances with skewed
// clocks agree. It decides several buckets in one call, in order (a bucket named twice sees its
// first event): KEYS[i] holds bucket i's TAT in microseconds and expires when the bucket is full
// again. ARGV holds four values per bucket: emission interval µs, burst tolerance µs, "1" to
// record events, "0" to peek or "2" to record events admitted already (see credit.go), and how
// many events to record: at most (a lease; see lease.go), or all of them for "2". Under "1" it
// admits as many as fit, at least one or none; under "2" it records them all, even past the
// limit, so that the bucket refuses until it has refilled by as much (remaining then goes
// negative). It returns five values per bucket: allowed 0|1, remaining, reset µs, retry after
// µs, events recorded. Values stay below 2^53, exact in Lua's doubles; string.format writes them
// as integers, never in exponent form.
const gcraLua = `
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local out = {}
for i = 1, #KEYS do
  local a = (i - 1) * 4
  local t = tonumber(ARGV[a + 1])
  local tau = tonumber(ARGV[a + 2])
  local want = tonumber(ARGV[a + 4]) or 1
  local tat = tonumber(redis.call('GET', KEYS[i]) or 0) or 0
  if tat < now then tat = now end
  local fit = math.floor((tau - (tat - now)) / t)
  local allowed = fit >= 1
  local retry = 0
  local n = 0
  if ARGV[a + 3] == '2' then
    allowed = true
    n = want
    if n > 0 then
      tat = tat + n * t
      redis.call('SET', KEYS[i], string.format('%d', tat), 'PX', string.format('%d', math.ceil((tat - now) / 1000)))
    end
  elseif allowed and ARGV[a + 3] == '1' then
    n = math.min(fit, want)
    tat = tat + n * t
    redis.call('SET', KEYS[i], string.format('%d', tat), 'PX', string.format('%d', math.ceil((tat - now) / 1000)))
  elseif not allowed then
    retry = tat + t - tau - now
  end
  local o = (i - 1) * 5
  out[o + 1] = allowed and 1 or 0
  out[o + 2] = math.floor((tau - (tat - now)) / t)
  out[o + 3] = tat - now
  out[o + 4] = retry
  out[o + 5] = n
end
return out
`

var gcraScript = rueidis.NewLuaScript(gcraLua)

// maxBatch bounds the buckets of one script call: Redis runs nothing else meanwhile, and a
// bucket costs it a few microseconds. Under a backlog (more than maxBatch checks queued) a call
// carries up to maxBacklogBatch, holding Redis ~1 ms: on a saturated machine a round trip takes
// milliseconds, most of them waiting for a core, and calls of maxBatch fell behind the checks
// arriving (~25,000 credit posts a second on 2 cores: ~330 calls/s, a queue of 47,000 after
// 10 s, each check a second late and the queue's memory for the GC to scan).
const (
	maxBatch        = 64
	maxBacklogBatch = 256
)

// A batcher sends the Redis checks of concurrent requests together. Whoever finds no call in
// flight sends at once, alone if need be; checks arriving while a call is in flight wait for it
// and go together in the next. So an idle service adds no delay, and a busy one makes one
// round trip, one write and one script call for many checks rather than one each: per check,
// that is less CPU for this process and for Redis (a script call costs Redis ~12 µs, a bucket in
// a shared one ~4 µs). A check waits for the call in flight and its own, or, with more than
// maxBacklogBatch checks waiting before it, for as many calls more as it takes. Calls go one
// at a time, in the order their checks came: a credit's events reach Redis before any later
// check of their bucket (see credit.go).
type batcher struct {
	l  *Limiter
	mu sync.Mutex
	// queue holds the checks for the next call; running is set while a call is being made.
	queue   queue
	running bool
}

// A queue holds checks in arrival order; taking from its front costs what is taken, however
// long it is.
type queue struct {
	q    []*check
	head int
}

func (q *queue) len() int { return len(q.q) - q.head }

func (q *queue) push(c *check) { q.q = append(q.q, c) }

// take removes up to n checks from q's front.
func (q *queue) take(n int) []*check {
	n = min(n, q.len())
	got := slices.Clone(q.q[q.head : q.head+n])
	clear(q.q[q.head : q.head+n])
	if q.head += n; q.head == len(q.q) {
		q.q, q.head = q.q[:0], 0
		if cap(q.q) > 4*maxBacklogBatch { // let a burst's array go: the GC would scan it every cycle
			q.q = nil
		}
	} else if q.head >= 1024 && q.head > len(q.q)/2 {
		// Keep the array from growing under a long queue: move the rest to its start.
		rest := copy(q.q, q.q[q.head:])
		clear(q.q[rest:])
		q.q, q.head = q.q[:rest], 0
	}
	return got
}

// check is one bucket's request to Redis, and, once done is closed, its answer. A posted check
// has no waiter (nor done): prepare sets its arguments as its call is built (false leaves it
// out). finish, if set, receives the answer as soon as the call returns, in the order of the
// call's buckets, before any waiter wakes and whether or not its caller still waits (a credit
// must see Redis's answers in the order Redis gave them; see credit.go).
type check struct {
	key  string
	args [4]string
	// ctx is the waiter's: a check whose caller gave up before its call was built is not sent.
	ctx     context.Context
	prepare func(*check) bool
	finish  func(v [5]int64, err error)
	done    chan struct{}
	v       [5]int64
	err     error
}

// post queues c for the next call without waiting for it.
func (b *batcher) post(c *check) {
	if b.enqueue(c) {
		go b.drain(context.Background())
	}
}

// enqueue queues c and reports whether no call was being made: the caller must then make it.
func (b *batcher) enqueue(c *check) (lead bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.queue.push(c)
	lead = !b.running
	b.running = true
	return lead
}

// do sends c with whatever checks are waiting and waits for its answer, or for ctx to end (a
// check abandoned before its call is built is left out; after, it is sent all the same).
func (b *batcher) do(ctx context.Context, c *check) error {
	c.done, c.ctx = make(chan struct{}), ctx
	if b.enqueue(c) {
		// This caller sends the call; the next, if checks came meanwhile, goes from a goroutine
		// of its own so that this caller is not kept for others.
		if b.send(context.WithoutCancel(ctx)) {
			go b.drain(context.Background())
		}
	}
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// complete hands c's answer (or error) to its finish, then to its waiter.
func (c *check) complete() {
	if c.finish != nil {
		c.finish(c.v, c.err)
	}
	if c.done != nil {
		close(c.done)
	}
}

// drain sends calls until no check waits.
func (b *batcher) drain(ctx context.Context) {
	for b.send(ctx) {
	}
}

// send makes one call with up to maxBatch waiting checks (maxBacklogBatch under a backlog). It
// reports whether more wait, in which case running stays set and the caller must send them;
// otherwise running is cleared.
func (b *batcher) send(ctx context.Context) bool {
	b.mu.Lock()
	n := maxBatch
	if b.queue.len() > maxBatch {
		n = maxBacklogBatch
	}
	batch := b.queue.take(n)
	b.mu.Unlock()

	batch = slices.DeleteFunc(batch, func(c *check) bool {
		if c.ctx != nil && c.ctx.Err() != nil {
			// Its caller gave up before it was sent, and was refused: it records nothing.
			c.err = c.ctx.Err()
			c.complete()
			return true
		}
		return c.prepare != nil && !c.prepare(c)
	})
	if n := len(batch); n > 0 {
		keys := make([]string, n)
		args := make([]string, 0, 4*n)
		for i, c := range batch {
			keys[i] = c.key
			args = append(args, c.args[:]...)
		}
		var v []int64
		b.l.redisCalls.Add(1)
		err := b.l.rc.Do(ctx, func(ctx context.Context, rc rueidis.Client) error {
			var err error
			v, err = gcraScript.Exec(ctx, rc, keys, args).AsIntSlice()
			return err
		})
		if err == nil && len(v) != 5*n {
			err = fmt.Errorf("rate limit script returned %d values for %d buckets", len(v), n)
		}
		for i, c := range batch {
			if c.err = err; err == nil {
				c.v = [5]int64(v[5*i : 5*i+5])
			}
			c.complete()
		}
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.queue.len() == 0 {
		b.running = false
		return false
	}
	return true
}

// newCheck is the check of bucket key (already prefixed) under p, recording up to want events,
// or peeking when record is unset.
func newCheck(key string, p params, record bool, want int64) *check {
	c := &check{key: key, args: [4]string{strconv.FormatInt(p.t, 10), strconv.FormatInt(p.tau, 10), "0", "1"}}
	if record {
		c.args[2], c.args[3] = "1", strconv.FormatInt(want, 10)
	}
	return c
}
