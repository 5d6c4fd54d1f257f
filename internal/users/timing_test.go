package users

import (
	"context"
	"testing"

	"github.com/portcullis/portcullis/internal/password"
)

// The process's first hash runs in freshly mapped memory and takes two to three times a warm
// one (so does the first after argon2.KeepIdle without a hash). padWrongPassword pads to the
// average: seeded with that cold hash, it made a dormant account answer a wrong password about
// twice as slowly as an unknown one, a timing difference as telling as the one it removes.
func TestHashClockLeavesColdHashesOut(t *testing.T) {
	t.Parallel()
	s := &Service{hasher: password.NewHasherFor(password.Params{MemoryKiB: 1 << 10, Iterations: 1}, 1), gate: password.NewGate(1, 1)}
	ctx := context.Background()
	if err := s.verifyDummy(ctx, "a guess"); err != nil {
		t.Fatal(err)
	}
	if got := s.clock.current(); got != 0 {
		t.Fatalf("the average after one cold hash: %v; want none yet", got)
	}
	if err := s.verifyDummy(ctx, "a guess"); err != nil {
		t.Fatal(err)
	}
	if s.clock.current() == 0 {
		t.Fatal("a warm hash was not timed")
	}
}
