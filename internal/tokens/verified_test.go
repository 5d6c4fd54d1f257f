package tokens

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/portcullis/portcullis/internal/config"
)

// forgetVerifiers empties s's key set, as if every key had been pruned, without touching the
// verified-token cache: a token that still verifies afterwards came from the cache.
func forgetVerifiers(s *Service) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.verifiers = jwk.NewSet()
	s.loadedAt = s.now()
}

func TestVerifiedTokenIsNotCheckedAgain(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	seen := mustIssue(t, f.svc)
	unseen := mustIssue(t, f.svc)
	want := mustVerify(t, f.svc, seen)

	forgetVerifiers(f.svc)
	if got := mustVerify(t, f.svc, seen); got != want {
		t.Fatalf("cached Verify() = %+v, want %+v", got, want)
	}
	mustReject(t, f.svc, unseen) // proves the key set really is empty
	// A token one character away shares no cache entry: it is verified, and fails.
	mustReject(t, f.svc, flip(seen, len(seen)-2))
	if n := f.svc.verified.len(); n != 1 {
		t.Fatalf("cache holds %d tokens, want 1 (failures are never remembered)", n)
	}
}

func TestVerifiedTokenStillExpires(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	token, expiresAt, err := f.svc.Issue(uuid.New(), uuid.New(), "user")
	if err != nil {
		t.Fatal(err)
	}
	mustVerify(t, f.svc, token)
	forgetVerifiers(f.svc) // from here on only the cache can accept it

	f.clock.Set(expiresAt.Add(f.cfg.ClockSkew - time.Second))
	mustVerify(t, f.svc, token)
	f.clock.Set(expiresAt.Add(f.cfg.ClockSkew))
	mustReject(t, f.svc, token)
	// Nor before it was valid (a clock stepped back).
	f.clock.Set(epoch.Add(-f.cfg.ClockSkew - time.Second))
	mustReject(t, f.svc, token)
}

func TestVerifiedTokenOfRemovedKeyIsForgotten(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	token := mustIssue(t, f.svc)
	mustVerify(t, f.svc, token)
	f.svc.verified.forgetKeys(map[string]bool{"another-kid": true})
	if n := f.svc.verified.len(); n != 0 {
		t.Fatalf("cache holds %d tokens after their key went, want 0", n)
	}
	mustVerify(t, f.svc, token) // verified afresh: the key is still there
}

func TestVerifyWithoutCache(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *config.Auth) { c.VerifiedTokenCache = 0 })
	token := mustIssue(t, f.svc)
	mustVerify(t, f.svc, token)
	forgetVerifiers(f.svc)
	mustReject(t, f.svc, token)
}
