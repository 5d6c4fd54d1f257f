package argon2

import (
	"sync/atomic"
	"time"
)

// KeepIdle is how long a Pool keeps working memory that no call has used: after it, the memory
// goes back to the system, so a server that stops hashing stops holding memory for it.
const KeepIdle = 10 * time.Second

// Pool computes argon2id keys at one set of cost parameters in working memory it keeps: up to
// size memories, zeroed after every use so that none holds anything derived from a password
// between calls, and released after KeepIdle without use. A caller that hashes under a
// concurrency limit of size thus allocates nothing per key, where IDKey allocates memory KiB
// (and so drives the garbage collector) on every call. On Linux the memory is mapped outside
// the Go heap: the collector neither scans nor counts it, so kept memory does not raise the
// heap goal of the rest of the program, and it is left out of core dumps. Calls beyond size at
// once get memory of their own, released after use. A Pool is safe for concurrent use.
type Pool struct {
	time, memory uint32 // memory as given: it enters the initial hash
	threads      uint8
	blocks       uint32
	free         chan *workMemory
	idle         time.Duration
	used         atomic.Int64 // UnixNano of the last call's end
	trimming     atomic.Bool  // a trim is scheduled
}

// NewPool returns a Pool for IDKey with time, memory and threads that keeps up to size
// memories. It panics on the cost parameters IDKey panics on.
func NewPool(time, memory uint32, threads uint8, size int) *Pool {
	checkCost(time, threads)
	return &Pool{time: time, memory: memory, threads: threads, blocks: blocks(memory, threads),
		free: make(chan *workMemory, max(size, 0)), idle: KeepIdle}
}

// IDKey returns IDKey(password, salt, time, memory, threads, keyLen) with p's parameters.
func (p *Pool) IDKey(password, salt []byte, keyLen uint32) []byte {
	var m *workMemory
	select {
	case m = <-p.free:
	default:
		m = allocMemory(p.blocks)
	}
	key := derive(argon2id, password, salt, nil, nil, p.time, p.memory, p.threads, keyLen, m.B)
	clear(m.B)
	p.used.Store(time.Now().UnixNano())
	select {
	case p.free <- m:
		p.scheduleTrim(p.idle)
	default:
		m.release()
	}
	return key
}

func (p *Pool) scheduleTrim(after time.Duration) {
	if p.trimming.CompareAndSwap(false, true) {
		time.AfterFunc(after, p.trim)
	}
}

// trim releases every kept memory once none has been used for p.idle.
func (p *Pool) trim() {
	if wait := p.idle - time.Since(time.Unix(0, p.used.Load())); wait > 0 {
		time.AfterFunc(wait, p.trim)
		return
	}
	for {
		select {
		case m := <-p.free:
			m.release()
		default:
			p.trimming.Store(false)
			// A memory put back between the drain and the Store found a trim scheduled.
			if len(p.free) > 0 {
				p.scheduleTrim(p.idle)
			}
			return
		}
	}
}
