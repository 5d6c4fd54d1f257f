package tokens

import (
	"testing"

	"github.com/google/uuid"

	"github.com/portcullis/portcullis/internal/config"
)

func BenchmarkIssue(b *testing.B) {
	f := newFixture(b)
	userID, sessionID := uuid.New(), uuid.New()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := f.svc.Issue(userID, sessionID, "user"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify compares a token's first verification (signature and claims: the cache is
// off) with every later one (answered from the verified-token cache).
func BenchmarkVerify(b *testing.B) {
	for _, bb := range []struct {
		name  string
		cache int
	}{{"signature", 0}, {"cached", 1024}} {
		b.Run(bb.name, func(b *testing.B) {
			f := newFixture(b, func(c *config.Auth) { c.VerifiedTokenCache = bb.cache })
			token := mustIssue(b, f.svc)
			ctx := b.Context()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.svc.Verify(ctx, token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A token verified before is answered without allocating: it runs on every authenticated
// request, and each allocation there is GC work.
func TestCachedVerifyDoesNotAllocate(t *testing.T) {
	f := newFixture(t, func(c *config.Auth) { c.VerifiedTokenCache = 1024 })
	token := mustIssue(t, f.svc)
	want, err := f.svc.Verify(t.Context(), token)
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if got, err := f.svc.Verify(t.Context(), token); err != nil || got != want {
			t.Fatalf("Verify from the cache = %+v, %v; want %+v", got, err, want)
		}
	})
	if allocs != 0 {
		t.Fatalf("a cached Verify allocates %v times, want 0", allocs)
	}
}
