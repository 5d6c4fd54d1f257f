//go:build !linux

package argon2

// workMemory is one hash's blocks, on the Go heap on this system.
type workMemory struct{ B []block }

func allocMemory(n uint32) *workMemory {
	liveMemories.Add(1)
	return &workMemory{B: make([]block, n)}
}

// release leaves m to the garbage collector; m must not be used after.
func (m *workMemory) release() {
	m.B = nil
	liveMemories.Add(-1)
}
