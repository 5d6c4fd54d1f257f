package argon2

import (
	"bytes"
	"testing"

	upstream "golang.org/x/crypto/argon2"
	"golang.org/x/sys/unix"
)

// Where the system refuses the mapping, the Pool computes in heap memory instead: the same
// keys, the memory kept and released as a mapped one would be.
func TestPoolFallsBackToTheHeapWhenMmapFails(t *testing.T) {
	mmap = func(int, int64, int, int, int) ([]byte, error) { return nil, unix.ENOMEM }
	t.Cleanup(func() { mmap = unix.Mmap })
	base := liveMemories.Load()
	p := NewPool(1, 64, 1, 1)
	pw, salt := []byte("pw"), []byte("saltsaltsaltsalt")
	if got, want := p.IDKey(pw, salt, 32), upstream.IDKey(pw, salt, 1, 64, 1, 32); !bytes.Equal(got, want) {
		t.Fatalf("key %x, want %x", got, want)
	}
	m := takeZeroed(t, p)
	if m.mapped != nil || len(m.B) != int(p.blocks) {
		t.Fatalf("memory mapped=%v with %d blocks; want heap memory of %d blocks", m.mapped != nil, len(m.B), p.blocks)
	}
	m.release()
	if live := liveMemories.Load() - base; live != 0 {
		t.Fatalf("%d memories left allocated", live)
	}
}
