package sessions

import (
	"context"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/postgres"
	"github.com/portcullis/portcullis/internal/testenv"
)

// A batch whose reply is lost may have spent every member's token. Falling back to one
// statement per member then re-runs a write whose outcome is unknown: each member finds its own
// token spent, by its own batch, and is answered "not a live token" (ok false, no error), which
// Rotate turns into ErrRefreshRace or, after the grace, a revocation for reuse. Each member must
// get an error instead: its outcome is unknown.
func TestBatchWhoseReplyIsLostIsNotRetriedMemberByMember(t *testing.T) {
	e := newEnv(t)
	s := e.service(t, testenv.RedisURL(), testAuth)
	ada := e.user(t, "ada")
	issued := []Issued{open(t, s, ada, Client{}), open(t, s, ada, Client{})}

	proxied, proxy := testenv.BehindProxy(t, e.pool.Config().ConnString())
	pool, err := postgres.Open(context.Background(), proxied, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := NewStore(pool)

	const marker = "lose-this-batch-reply"
	now := e.clock.Now()
	batch := make([]*rotation, len(issued))
	for i, iss := range issued {
		ctx := audit.WithRequest(context.Background(), audit.Request{UserAgent: marker})
		_, next := newRefreshToken()
		batch[i] = &rotation{
			ctx: ctx, oldHash: hashToken(iss.RefreshToken), newHash: next, now: now, expiresAt: now.Add(time.Hour),
			maxLifetime: testAuth.SessionMaxLifetime, audit: audit.Params(ctx, audit.Event{Action: audit.ActionRefresh}, now),
			done: make(chan rotationResult, 1),
		}
	}
	proxy.LoseReplyTo(marker)
	store.runBatch(batch)
	for i, r := range batch {
		if e.spentCount(t, issued[i].SessionID) != 1 {
			t.Fatalf("member %d's token is not spent; the test needs the batch to have committed", i)
		}
		if res := <-r.done; res.err == nil {
			t.Errorf("member %d of a batch whose reply was lost: ok %v, no error; want an error (outcome unknown)", i, res.ok)
		}
	}
}
