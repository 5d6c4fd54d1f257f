package tokens

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis/portcullis/internal/testenv"
)

// gatedClock reads a fake clock, and can hold the nth call after Arm until Release: a way to
// stop a Verify between its signature check and its cache write.
type gatedClock struct {
	mu       sync.Mutex
	now      func() time.Time
	calls    int
	holdAt   int
	held     chan struct{}
	released chan struct{}
}

func (g *gatedClock) Now() time.Time {
	g.mu.Lock()
	g.calls++
	hold := g.holdAt != 0 && g.calls == g.holdAt
	g.mu.Unlock()
	if hold {
		close(g.held)
		<-g.released
	}
	return g.now()
}

func (g *gatedClock) Arm(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls, g.holdAt = 0, n
	g.held, g.released = make(chan struct{}), make(chan struct{})
}

func (g *gatedClock) Disarm() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.holdAt = 0
}

// A token whose verification is under way when its key is removed (pruned, or deleted by an
// operator after a compromise) must not be remembered: forgetKeys ran before it was put, so
// nothing would forget it until the next reload, a minute later, while its key verifies
// nothing any more.
func TestTokenVerifiedWhileItsKeyIsRemovedIsNotRemembered(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	clock := newFakeClock()
	gc := &gatedClock{now: clock.Now}
	url := newDB(t)
	pool := openPool(t, url)
	s, err := newService(context.Background(), pool, cfg, testenv.Logger(t), gc.Now)
	if err != nil {
		t.Fatal(err)
	}
	old := currentKey(s)
	token := mustIssue(t, s)

	// Hold the Verify at its second clock reading: the first is the cache lookup (a miss), the
	// second jwx's time validation, after the signature was checked with the old key set.
	gc.Arm(2)
	done := make(chan error, 1)
	go func() { _, err := s.Verify(context.Background(), token); done <- err }()
	<-gc.held
	gc.Disarm()

	// Meanwhile the old key goes: a new one signs, the old one is deleted, the instance reloads.
	if err := s.Rotate(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	clock.Advance(cfg.JWKSPrepublish)
	if _, err := pool.Exec(context.Background(), "DELETE FROM signing_keys WHERE kid = $1", old.kid); err != nil {
		t.Fatal(err)
	}
	if err := s.reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if hasKid(s.JWKS(), old.kid) {
		t.Fatal("the old key is still loaded")
	}

	close(gc.released)
	if err := <-done; err != nil {
		t.Logf("the racing Verify failed (fine): %v", err)
	}
	// A fresh token of the removed key is refused: the key is gone.
	mustReject(t, s, craftWith(t, old, cfg, clock.Now(), nil))
	// So must the raced one be.
	if c, err := s.Verify(context.Background(), token); err == nil {
		t.Fatalf("a token of the removed key %s is still accepted from the cache: %+v", old.kid, c)
	}
}

// After a compromise an operator publishes a new key (portcullis keys rotate) and deletes the
// compromised one. While the new key is still pending (PORTCULLIS_JWKS_PREPUBLISH) no stored key
// is active; the reload failed on that ("no active signing key") and kept the old set, so the
// deleted key went on verifying and signing on every running instance, and no new instance
// could start (found in review). The next key now signs ahead of its time instead, with a warning.
func TestDeletedKeyStopsAtOnceWhileItsSuccessorIsPending(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	compromised := currentKey(f.svc)
	if err := f.svc.Rotate(ctx, true); err != nil { // portcullis keys rotate
		t.Fatal(err)
	}
	next, activates := f.svc.NewestKey()
	if _, err := f.pool.Exec(ctx, "DELETE FROM signing_keys WHERE kid = $1", compromised.kid); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute) // the next scheduled reload; the new key is still pending
	if !activates.After(f.clock.Now()) {
		t.Fatalf("the new key activates at %v, not after now %v: the case tests nothing", activates, f.clock.Now())
	}
	if err := f.svc.Rotate(ctx, false); err != nil {
		t.Fatalf("reload with only a pending key: %v", err)
	}
	if _, err := f.svc.Verify(ctx, craftWith(t, compromised, f.cfg, f.clock.Now(), nil)); err == nil {
		t.Errorf("a token signed by the deleted key %s is accepted after the reload", compromised.kid)
	}
	if got := f.svc.SigningKeyID(); got != next {
		t.Errorf("signing with %s, want the pending key %s", got, next)
	}
	tok, _, err := f.svc.Issue(uuid.New(), uuid.New(), "user")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Verify(ctx, tok); err != nil {
		t.Errorf("a token of the pending key does not verify: %v", err)
	}
	// A new instance (a restart, a scale-up) starts, on the same key.
	other, err := newService(ctx, openPool(t, f.url), f.cfg, testenv.Logger(t), f.clock.Now)
	if err != nil {
		t.Fatalf("a new instance cannot start: %v", err)
	}
	if got := other.SigningKeyID(); got != next {
		t.Errorf("the new instance signs with %s, want %s", got, next)
	}
}
