package postgres

import (
	"bytes"

	"github.com/google/uuid"
)

// InIDOrder runs lockA and lockB, which lock the rows of ids a and b, lower id first (a first
// when they are equal). Transactions that each lock the same two rows, from either side (two
// admins demoting each other), then queue at the first instead of each holding the row the
// other waits for.
func InIDOrder(a, b uuid.UUID, lockA, lockB func() error) error {
	if bytes.Compare(b[:], a[:]) < 0 {
		lockA, lockB = lockB, lockA
	}
	if err := lockA(); err != nil {
		return err
	}
	return lockB()
}
