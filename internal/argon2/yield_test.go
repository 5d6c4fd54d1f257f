package argon2

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// A hash yields the processor at each of its time×4 sync points, so on one P another goroutine
// runs between slices. Without the yields it would run only if the runtime preempted the hash,
// which it does after 10 ms; this hash takes about a millisecond.
func TestHashYieldsAtEverySyncPoint(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const passes = 8 // time: 8×4 = 32 sync points
	var hashing, stop atomic.Bool
	var during atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			if hashing.Load() {
				during.Add(1)
			}
			runtime.Gosched()
		}
	})
	runtime.Gosched() // let it start
	hashing.Store(true)
	got := IDKey([]byte("password"), []byte("somesalt"), passes, 64, 1, 32)
	hashing.Store(false)
	stop.Store(true)
	wg.Wait()
	if want := IDKey([]byte("password"), []byte("somesalt"), passes, 64, 1, 32); string(got) != string(want) {
		t.Fatal("the same inputs gave two keys")
	}
	if n := during.Load(); n < passes*syncPoints-1 {
		t.Fatalf("another goroutine ran %d times during a hash of %d sync points; want one per sync point", n, passes*syncPoints)
	}
}
