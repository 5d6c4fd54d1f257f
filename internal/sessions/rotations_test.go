package sessions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/testenv"
)

// A batch takes the queue in arrival order, at most maxBatch, and never two requests with one
// token: the second waits for the next batch.
func TestTakeKeepsOneOfEachTokenAndAtMostMaxBatch(t *testing.T) {
	var q rotations
	tokens := make([][]byte, maxBatch+6)
	for i := range tokens {
		tokens[i] = []byte{byte(i), byte(i >> 8)}
	}
	// Token 0 three times, token 1 twice, then maxBatch+4 more distinct ones.
	order := [][]byte{tokens[0], tokens[1], tokens[0], tokens[1], tokens[0]}
	order = append(order, tokens[2:]...)
	for _, tok := range order {
		q.pending = append(q.pending, &rotation{ctx: context.Background(), oldHash: tok})
	}
	seen := 0
	for round := 1; len(q.pending) > 0; round++ {
		if round > 4 {
			t.Fatalf("still %d pending after 4 batches", len(q.pending))
		}
		batch := q.take()
		if len(batch) == 0 || len(batch) > maxBatch {
			t.Fatalf("batch %d has %d members; want 1..%d", round, len(batch), maxBatch)
		}
		for i, r := range batch {
			if hasToken(batch[:i], r.oldHash) {
				t.Fatalf("batch %d holds token %x twice", round, r.oldHash)
			}
		}
		if round == 1 && (!bytes.Equal(batch[0].oldHash, tokens[0]) || !bytes.Equal(batch[1].oldHash, tokens[1]) || !bytes.Equal(batch[2].oldHash, tokens[2])) {
			t.Fatalf("first batch starts %x %x %x; want arrival order without repeats", batch[0].oldHash, batch[1].oldHash, batch[2].oldHash)
		}
		seen += len(batch)
	}
	if seen != len(order) {
		t.Fatalf("batches held %d rotations; %d were queued", seen, len(order))
	}
}

// A request that gave up while queued is answered with its context's error and never joins a
// batch: spending its token would leave the client with a spent token and no successor.
func TestTakeDropsRotationsWhoseRequestGaveUp(t *testing.T) {
	var q rotations
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	left := &rotation{ctx: gone, oldHash: []byte{1}, done: make(chan rotationResult, 1)}
	stays := &rotation{ctx: context.Background(), oldHash: []byte{2}, done: make(chan rotationResult, 1)}
	q.pending = []*rotation{left, stays}
	batch := q.take()
	if len(batch) != 1 || batch[0] != stays || len(q.pending) != 0 {
		t.Fatalf("batch %d members (first is the live one: %v), %d left pending; want only the live one", len(batch), len(batch) > 0 && batch[0] == stays, len(q.pending))
	}
	select {
	case res := <-left.done:
		if !errors.Is(res.err, context.Canceled) || res.ok {
			t.Fatalf("the abandoned rotation got ok %v err %v; want context.Canceled", res.ok, res.err)
		}
	default:
		t.Fatal("the abandoned rotation got no answer")
	}
}

// One statement spends every member's token: each member learns its own session, a member
// whose token is unknown or revoked learns it missed, and each spend is recorded and audited
// with its own request's address, agent and id.
func TestRotateBatchAnswersEachMember(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.service(t, testenv.RedisURL(), testAuth)
	ada, bob := e.user(t, "ada"), e.user(t, "bob")
	a, b, gone := open(t, s, ada, Client{}), open(t, s, bob, Client{}), open(t, s, bob, Client{})
	if err := s.Revoke(context.Background(), gone.SessionID, ReasonLogout, audit.Event{Action: audit.ActionLogout}); err != nil {
		t.Fatalf("revoke: %v", err)
	}

	now := e.clock.Now()
	member := func(token string, req audit.Request) *rotation {
		ctx := audit.WithRequest(context.Background(), req)
		_, next := newRefreshToken()
		return &rotation{
			ctx: ctx, oldHash: hashToken(token), newHash: next, now: now, expiresAt: now.Add(time.Hour), maxLifetime: testAuth.SessionMaxLifetime,
			audit: audit.Params(ctx, audit.Event{Action: audit.ActionRefresh}, now),
		}
	}
	unknown, _ := newRefreshToken()
	batch := []*rotation{
		member(a.RefreshToken, audit.Request{IP: netip.MustParseAddr("192.0.2.7"), UserAgent: "agent-a", ID: "req-a"}),
		member(unknown, audit.Request{ID: "req-unknown"}),
		member(gone.RefreshToken, audit.Request{ID: "req-gone"}),
		member(b.RefreshToken, audit.Request{}),
	}
	res, err := s.store.rotateBatch(context.Background(), batch)
	if err != nil {
		t.Fatalf("rotateBatch: %v", err)
	}
	want := []struct {
		ok      bool
		session uuid.UUID
	}{{true, a.SessionID}, {false, uuid.Nil}, {false, uuid.Nil}, {true, b.SessionID}}
	for i, w := range want {
		if res[i].ok != w.ok || res[i].r.SessionID != w.session {
			t.Errorf("member %d: ok %v session %s; want %v %s", i, res[i].ok, res[i].r.SessionID, w.ok, w.session)
		}
	}
	if res[0].r.UserID != ada.ID || res[3].r.UserID != bob.ID {
		t.Errorf("users %s, %s; want ada %s, bob %s", res[0].r.UserID, res[3].r.UserID, ada.ID, bob.ID)
	}
	for _, id := range []uuid.UUID{a.SessionID, b.SessionID} {
		if r := e.row(t, id); r.generation != 1 {
			t.Errorf("session %s generation %d; want 1", id, r.generation)
		}
		if n := e.spentCount(t, id); n != 1 {
			t.Errorf("session %s has %d spent tokens; want 1", id, n)
		}
	}
	if r := e.row(t, gone.SessionID); r.generation != 0 {
		t.Errorf("revoked session rotated: generation %d", r.generation)
	}

	rows, err := e.pool.Query(context.Background(),
		`SELECT target_id, coalesce(host(ip_address), '-'), coalesce(user_agent, '-'), coalesce(request_id, '-') FROM audit_events WHERE action = 'session.refresh' ORDER BY request_id NULLS LAST`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var target, ip, ua, id string
		if err := rows.Scan(&target, &ip, &ua, &id); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %s %s %s", target, ip, ua, id))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	wantAudit := []string{a.SessionID.String() + " 192.0.2.7 agent-a req-a", b.SessionID.String() + " - - -"}
	if fmt.Sprint(got) != fmt.Sprint(wantAudit) {
		t.Fatalf("refresh audit rows\n%q\nwant\n%q", got, wantAudit)
	}
}

// A member that makes the statement fail does not fail the others: the batch falls back to
// one statement each, and the bad member's session is left as it was.
func TestOneBadMemberDoesNotFailItsBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.service(t, testenv.RedisURL(), testAuth)
	ada := e.user(t, "ada")
	sessions := []Issued{open(t, s, ada, Client{}), open(t, s, ada, Client{}), open(t, s, ada, Client{})}
	now := e.clock.Now()
	batch := make([]*rotation, len(sessions))
	for i, iss := range sessions {
		_, next := newRefreshToken()
		batch[i] = &rotation{
			ctx: context.Background(), oldHash: hashToken(iss.RefreshToken), newHash: next, now: now, expiresAt: now.Add(time.Hour),
			maxLifetime: testAuth.SessionMaxLifetime, audit: audit.Params(context.Background(), audit.Event{Action: audit.ActionRefresh}, now),
			done: make(chan rotationResult, 1),
		}
	}
	batch[1].audit.ID = batch[0].audit.ID // the second member's audit row collides with the first's

	s.store.runBatch(batch)
	for i, r := range batch {
		res := <-r.done
		switch bad := i == 1; {
		case bad && (res.err == nil || res.ok):
			t.Errorf("the bad member got ok %v err %v; want an error", res.ok, res.err)
		case !bad && (res.err != nil || !res.ok || res.r.SessionID != sessions[i].SessionID):
			t.Errorf("member %d got ok %v err %v session %s; want its session %s rotated", i, res.ok, res.err, res.r.SessionID, sessions[i].SessionID)
		}
	}
	if r := e.row(t, sessions[1].SessionID); r.generation != 0 || e.spentCount(t, sessions[1].SessionID) != 0 {
		t.Fatalf("the bad member's session changed: generation %d", r.generation)
	}
	mustRotate(t, s, sessions[1].RefreshToken) // its token is still the live one
}

// Many sessions refreshed at once, twice over: every request gets its own session's successor
// token, and each successor works.
func TestConcurrentRefreshesOfManySessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.service(t, testenv.RedisURL(), testAuth)
	ada := e.user(t, "ada")
	const n = 48
	issued := make([]Issued, n)
	for i := range issued {
		issued[i] = open(t, s, ada, Client{})
	}
	for round := 1; round <= 2; round++ {
		var wg sync.WaitGroup
		start := make(chan struct{})
		next := make([]Issued, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				<-start
				next[i], errs[i] = s.Rotate(context.Background(), issued[i].RefreshToken)
			})
		}
		close(start)
		wg.Wait()
		for i := range n {
			if errs[i] != nil || next[i].SessionID != issued[i].SessionID || next[i].RefreshToken == issued[i].RefreshToken {
				t.Fatalf("round %d, session %d: err %v, session %s (want %s)", round, i, errs[i], next[i].SessionID, issued[i].SessionID)
			}
		}
		issued = next
	}
	for _, iss := range issued {
		if r := e.row(t, iss.SessionID); r.generation != 2 {
			t.Errorf("session %s generation %d; want 2", iss.SessionID, r.generation)
		}
	}
	var audited int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE action = 'session.refresh'`).Scan(&audited); err != nil {
		t.Fatal(err)
	}
	if audited != 2*n {
		t.Fatalf("%d refreshes audited; want %d", audited, 2*n)
	}
}

// When a batch fails and its members are tried one by one, a member whose request gave up while
// the batch ran is answered and dropped, as take drops it: spending its token after its client
// was told of a failure would leave that client holding a spent token and no successor, and its
// retry would be taken for reuse and revoke the session.
func TestOneByOneRetrySkipsMembersWhoseRequestGaveUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.service(t, testenv.RedisURL(), testAuth)
	ada := e.user(t, "ada")
	sessions := []Issued{open(t, s, ada, Client{}), open(t, s, ada, Client{}), open(t, s, ada, Client{})}
	gone, cancel := context.WithCancel(context.Background())
	cancel() // the third member's client hung up while the batch ran
	now := e.clock.Now()
	batch := make([]*rotation, len(sessions))
	for i, iss := range sessions {
		ctx := context.Background()
		if i == 2 {
			ctx = gone
		}
		_, next := newRefreshToken()
		batch[i] = &rotation{
			ctx: ctx, oldHash: hashToken(iss.RefreshToken), newHash: next, now: now, expiresAt: now.Add(time.Hour),
			maxLifetime: testAuth.SessionMaxLifetime, audit: audit.Params(context.Background(), audit.Event{Action: audit.ActionRefresh}, now),
			done: make(chan rotationResult, 1),
		}
	}
	batch[1].audit.ID = batch[0].audit.ID // the batch fails on the second member's audit row

	s.store.runBatch(batch)
	if res := <-batch[0].done; res.err != nil || !res.ok {
		t.Errorf("the good member got ok %v err %v; want its session rotated", res.ok, res.err)
	}
	if res := <-batch[2].done; !errors.Is(res.err, context.Canceled) || res.ok {
		t.Errorf("the member whose request gave up got ok %v err %v; want context.Canceled", res.ok, res.err)
	}
	if r := e.row(t, sessions[2].SessionID); r.generation != 0 || e.spentCount(t, sessions[2].SessionID) != 0 {
		t.Fatalf("the session of the member whose request gave up was rotated (generation %d): its client holds a spent token", r.generation)
	}
	mustRotate(t, s, sessions[2].RefreshToken) // its token is still the live one
}
