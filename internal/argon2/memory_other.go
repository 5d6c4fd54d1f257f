//go:build !linux

package argon2

// workMemory is one hash's blocks, on the Go heap on this system.
type workMemory struct{ B []block }

func allocMemory(n uint32) *workMemory { return &workMemory{B: make([]block, n)} }

// release leaves m to the garbage collector; m must not be used after.
func (m *workMemory) release() { m.B = nil }
