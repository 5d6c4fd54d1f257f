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
