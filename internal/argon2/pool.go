package argon2

import (
	"sync"
	"sync/atomic"
	"time"
)

// KeepIdle is how long a Pool keeps working memory that no call has used: after it, the memory
// goes back to the system, so a server that stops hashing stops holding memory for it.
const KeepIdle = 10 * time.Second

// Pool computes argon2id keys at one set of cost parameters in working memory it keeps: up to
// size memories, each zeroed after every use (so the blocks kept between calls hold nothing
// derived from a password; stack copies of the initial hash are left as in upstream) and
// released after KeepIdle without use. A caller that hashes under a concurrency limit of size
// thus allocates nothing per key, where IDKey allocates memory KiB (and so drives the garbage
// collector) on every call. On Linux the memory is mapped outside the Go heap: the collector
// neither scans nor counts it, so kept memory does not raise the heap goal of the rest of the
// program, and it is left out of core dumps. Calls beyond size at once get memory of their own,
// released after use. A Pool is safe for concurrent use.
type Pool struct {
	time, memory uint32 // memory as given: it enters the initial hash
	threads      uint8
	blocks       uint32
	free         chan *workMemory
	idle         time.Duration
	epoch        time.Time    // with a monotonic reading, so used is immune to clock steps
	used         atomic.Int64 // when the last call ended, in nanoseconds since epoch

	mu        sync.Mutex
	trimTimer bool // a trim is scheduled or running
}

// NewPool returns a Pool for IDKey with time t, memory and threads that keeps up to size
// memories. It panics on the cost parameters IDKey panics on.
func NewPool(t, memory uint32, threads uint8, size int) *Pool {
	checkCost(t, threads)
	return &Pool{time: t, memory: memory, threads: threads, blocks: blocks(memory, threads),
		free: make(chan *workMemory, max(size, 0)), idle: KeepIdle, epoch: time.Now()}
}

// IDKey returns IDKey(password, salt, time, memory, threads, keyLen) with p's parameters.
func (p *Pool) IDKey(password, salt []byte, keyLen uint32) []byte {
	var m *workMemory
	select {
	case m = <-p.free:
	default:
		m = allocMemory(p.blocks)
	}
	defer p.giveBack(m) // zeroed and kept or released even if derive panics
	return derive(argon2id, password, salt, nil, nil, p.time, p.memory, p.threads, keyLen, m.B)
}

// Warm reports whether a call now would find kept working memory. A call that does not maps
// and faults in fresh memory, which takes it two to three times as long (after KeepIdle without
// a call, say).
func (p *Pool) Warm() bool { return len(p.free) > 0 }

func (p *Pool) giveBack(m *workMemory) {
	clear(m.B)
	p.used.Store(int64(time.Since(p.epoch)))
	select {
	case p.free <- m:
		p.scheduleTrim()
	default:
		m.release()
	}
}

func (p *Pool) scheduleTrim() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.trimTimer {
		p.trimTimer = true
		time.AfterFunc(p.idle, p.trim)
	}
}

// trim releases every kept memory once none has been used for p.idle.
func (p *Pool) trim() {
	if wait := p.idle - (time.Since(p.epoch) - time.Duration(p.used.Load())); wait > 0 {
		time.AfterFunc(wait, p.trim)
		return
	}
	for drained := false; !drained; {
		select {
		case m := <-p.free:
			m.release()
		default:
			drained = true
		}
	}
	p.mu.Lock()
	p.trimTimer = false
	p.mu.Unlock()
	// A memory given back after the drain may have found trimTimer set and scheduled nothing:
	// its send happened before its scheduleTrim's Lock, so this read, after ours, sees it.
	if len(p.free) > 0 {
		p.scheduleTrim()
	}
}

// liveMemories counts working memories allocated and not yet released (tests read it).
var liveMemories atomic.Int64
