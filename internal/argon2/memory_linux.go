package argon2

import (
	"math"
	"unsafe"

	"golang.org/x/sys/unix"
)

// workMemory is one hash's blocks, mapped outside the Go heap when mapped is set.
type workMemory struct {
	B      []block
	mapped []byte
}

// allocMemory maps n zeroed blocks, private and anonymous, marked MADV_DONTDUMP and
// MADV_HUGEPAGE. Where the
// system refuses the mapping, or its size does not fit an int, it falls back to the heap.
func allocMemory(n uint32) *workMemory {
	liveMemories.Add(1)
	size := uint64(n) * blockLength * 8
	if size > math.MaxInt {
		return &workMemory{B: make([]block, n)}
	}
	b, err := mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil || uint64(len(b)) != size {
		if err == nil {
			_ = unix.Munmap(b)
		}
		return &workMemory{B: make([]block, n)}
	}
	_ = unix.Madvise(b, unix.MADV_DONTDUMP)
	// Huge pages where the system allows them (THP "madvise" or "always"): argon2id reads
	// blocks at random across the memory, and 2 MiB pages spare it most TLB misses (a hash
	// 9.1-9.2 ms with, 9.8-10.1 ms without, alternating, on the development VM).
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
	return &workMemory{B: unsafe.Slice((*block)(unsafe.Pointer(unsafe.SliceData(b))), n), mapped: b}
}

// mmap is unix.Mmap; tests replace it to refuse mappings.
var mmap = unix.Mmap

// release returns mapped memory to the system; m must not be used after.
func (m *workMemory) release() {
	if m.mapped == nil || unix.Munmap(m.mapped) == nil {
		liveMemories.Add(-1) // a mapping munmap refused (it cannot here) stays counted
	}
	m.B, m.mapped = nil, nil
}
