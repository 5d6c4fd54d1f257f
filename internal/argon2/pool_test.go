package argon2

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"runtime"
	"sync"
	"testing"

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
		})
	}
}

// The memories a Pool keeps between calls hold nothing derived from the last password.
func TestPoolZeroesKeptMemory(t *testing.T) {
	p := NewPool(1, 64, 1, 1)
	p.IDKey([]byte("secret"), []byte("saltsaltsaltsalt"), 32)
	if len(p.free) != 1 {
		t.Fatalf("pool keeps %d memories after one call, want 1", len(p.free))
	}
	B := <-p.free
	for i := range B {
		if B[i] != (block{}) {
			t.Fatalf("kept memory's block %d is not zero after use", i)
		}
	}
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
