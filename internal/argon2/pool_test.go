package argon2

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	upstream "golang.org/x/crypto/argon2"
)

// Pool.IDKey must be x/crypto's argon2id: the same key for every input, with memory that is
// rounded (65 KiB over 3 lanes), several lanes, more goroutines than the pool keeps memories
// (so some calls use memory of their own) and memories reused many times.
func TestPoolMatchesUpstream(t *testing.T) {
	for _, c := range []struct {
		time, memory uint32
		threads      uint8
		keyLen       uint32
		size         int
	}{
		{1, 64, 1, 32, 2},
		{3, 65, 3, 64, 1},
		{2, 1024, 1, 16, 4},
		{2, 256, 2, 32, 0},
	} {
		t.Run(fmt.Sprintf("t=%d,m=%d,p=%d,size=%d", c.time, c.memory, c.threads, c.size), func(t *testing.T) {
			base := liveMemories.Load()
			p := NewPool(c.time, c.memory, c.threads, c.size)
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					for i := range 20 {
						pw, salt := fmt.Appendf(nil, "password %d/%d", g, i), make([]byte, 16)
						_, _ = rand.Read(salt)
						got := p.IDKey(pw, salt, c.keyLen)
						want := upstream.IDKey(pw, salt, c.time, c.memory, c.threads, c.keyLen)
						if !bytes.Equal(got, want) {
							t.Errorf("%s: Pool.IDKey %x, x/crypto IDKey %x", pw, got, want)
							return
						}
					}
				})
			}
			wg.Wait()
			if n := len(p.free); n > c.size {
				t.Errorf("pool keeps %d memories, more than its size %d", n, c.size)
			}
			if live := liveMemories.Load() - base; live != int64(len(p.free)) {
				t.Errorf("%d memories allocated and not released, but the pool keeps %d", live, len(p.free))
			}
		})
	}
}

// The memories a Pool keeps between calls hold nothing derived from the last password.
func TestPoolZeroesKeptMemory(t *testing.T) {
	p := NewPool(1, 64, 1, 1)
	p.IDKey([]byte("secret"), []byte("saltsaltsaltsalt"), 32)
	takeZeroed(t, p).release()
}

// takeZeroed takes the one memory p keeps and fails unless every block of it is zero.
func takeZeroed(t *testing.T, p *Pool) *workMemory {
	t.Helper()
	if len(p.free) != 1 {
		t.Fatalf("pool keeps %d memories, want 1", len(p.free))
	}
	m := <-p.free
	for i := range m.B {
		if m.B[i] != (block{}) {
			t.Fatalf("kept memory's block %d is not zero", i)
		}
	}
	return m
}

// Kept memory goes back to the system once unused for the idle time, and the Pool still works
// after: a new call gets new memory and the right key.
func TestPoolReleasesIdleMemory(t *testing.T) {
	base := liveMemories.Load()
	p := NewPool(1, 64, 1, 2)
	p.idle = 20 * time.Millisecond
	pw, salt := []byte("pw"), []byte("saltsaltsaltsalt")
	want := upstream.IDKey(pw, salt, 1, 64, 1, 32)
	for round := range 2 {
		if got := p.IDKey(pw, salt, 32); !bytes.Equal(got, want) {
			t.Fatalf("round %d: key %x, want %x", round, got, want)
		}
		if len(p.free) != 1 {
			t.Fatalf("round %d: pool keeps %d memories right after a call, want 1", round, len(p.free))
		}
		if live := waitReleased(base); live != 0 {
			t.Fatalf("round %d: %d memories not released 5 s after the last use (idle %v); the pool keeps %d",
				round, live, p.idle, len(p.free))
		}
	}
}

// Memory in use is not released under it: calls that keep the pool busy for several idle
// periods all get right keys (run with -race).
func TestPoolTrimRacesCalls(t *testing.T) {
	base := liveMemories.Load()
	p := NewPool(1, 64, 1, 1)
	p.idle = time.Millisecond
	pw, salt := []byte("pw"), []byte("saltsaltsaltsalt")
	want := upstream.IDKey(pw, salt, 1, 64, 1, 32)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for i := range 200 {
				if got := p.IDKey(pw, salt, 32); !bytes.Equal(got, want) {
					t.Errorf("call %d: key %x, want %x", i, got, want)
					return
				}
				if i%20 == 0 {
					time.Sleep(2 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	if live := waitReleased(base); live != 0 {
		t.Fatalf("%d memories not released 5 s after the last call (idle %v)", live, p.idle)
	}
}

// A call that panics (a key length of 0, as upstream) still zeroes its memory and gives it
// back: nothing is left mapped and unzeroed.
func TestPoolPanicKeepsNothing(t *testing.T) {
	base := liveMemories.Load()
	p := NewPool(1, 64, 1, 1)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("IDKey with keyLen 0 did not panic")
			}
		}()
		p.IDKey([]byte("secret"), []byte("saltsaltsaltsalt"), 0)
	}()
	takeZeroed(t, p).release()
	if live := liveMemories.Load() - base; live != 0 {
		t.Fatalf("%d memories left allocated after the panic", live)
	}
}

// waitReleased waits up to 5 s for the allocated memories to fall back to base and returns
// how many are still above it.
func waitReleased(base int64) int64 {
	deadline := time.Now().Add(5 * time.Second)
	for liveMemories.Load() > base && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return liveMemories.Load() - base
}

func TestNewPoolPanicsOnBadCost(t *testing.T) {
	for _, c := range []struct {
		time    uint32
		threads uint8
	}{{0, 1}, {1, 0}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewPool(time=%d, threads=%d) did not panic", c.time, c.threads)
				}
			}()
			NewPool(c.time, 64, c.threads, 1)
		}()
	}
}

// The OWASP cost on both cores: x/crypto's IDKey, which allocates and zeroes 19 MiB per call,
// against Pool.IDKey in kept memory. go test -bench OWASP -cpu 2 ./internal/argon2
func BenchmarkOWASP(b *testing.B) {
	pw, salt := []byte("benchmark password"), []byte("saltsaltsaltsalt")
	b.Run("upstream", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				upstream.IDKey(pw, salt, 2, 19456, 1, 32)
			}
		})
	})
	b.Run("pool", func(b *testing.B) {
		p := NewPool(2, 19456, 1, runtime.GOMAXPROCS(0))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				p.IDKey(pw, salt, 32)
			}
		})
	})
}
