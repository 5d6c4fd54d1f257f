package tokens

import (
	"testing"

	"github.com/google/uuid"
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

func BenchmarkVerify(b *testing.B) {
	f := newFixture(b)
	token := mustIssue(b, f.svc)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.svc.Verify(ctx, token); err != nil {
			b.Fatal(err)
		}
	}
}
