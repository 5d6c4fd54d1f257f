package argon2

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// workMemory is one hash's blocks, mapped outside the Go heap when mapped is set.
type workMemory struct {
	B      []block
	mapped []byte
}

// allocMemory maps n zeroed blocks, private and anonymous, marked MADV_DONTDUMP. Where the
// system refuses the mapping it falls back to the heap.
func allocMemory(n uint32) *workMemory {
	b, err := unix.Mmap(-1, 0, int(n)*blockLength*8, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return &workMemory{B: make([]block, n)}
	}
	_ = unix.Madvise(b, unix.MADV_DONTDUMP)
	return &workMemory{B: unsafe.Slice((*block)(unsafe.Pointer(unsafe.SliceData(b))), n), mapped: b}
}

// release returns mapped memory to the system; m must not be used after.
func (m *workMemory) release() {
	if m.mapped != nil {
		_ = unix.Munmap(m.mapped)
	}
	m.B, m.mapped = nil, nil
}
