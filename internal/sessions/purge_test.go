package sessions

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/testenv"
)

// Sessions that ended more than the retention ago go, with their spent tokens, however many
// there are; live sessions and those that ended recently stay; a retention of 0 keeps all.
func TestPurgeDeletesSessionsEndedBeforeTheRetention(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	auth := testAuth
	auth.SessionRetention = 7 * 24 * time.Hour
	s := e.service(t, testenv.RedisURL(), auth)
	ada := e.user(t, "ada")
	ctx := context.Background()
	now := e.clock.Now()

	live := open(t, s, ada, Client{})
	rotated := mustRotate(t, s, open(t, s, ada, Client{}).RefreshToken) // leaves a spent token
	expiredLong, expiredLately := rotated, open(t, s, ada, Client{})
	revokedLong, revokedLately := open(t, s, ada, Client{}), open(t, s, ada, Client{})
	for _, iss := range []Issued{revokedLong, revokedLately} {
		if err := s.Revoke(ctx, iss.SessionID, ReasonLogout, audit.Event{Action: audit.ActionLogout}); err != nil {
			t.Fatal(err)
		}
	}
	set := func(sql string, args ...any) {
		t.Helper()
		if _, err := e.pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	set(`UPDATE user_sessions SET expires_at = $2 WHERE id = $1`, expiredLong.SessionID, now.Add(-8*24*time.Hour))
	set(`UPDATE user_sessions SET expires_at = $2 WHERE id = $1`, expiredLately.SessionID, now.Add(-6*24*time.Hour))
	set(`UPDATE user_sessions SET revoked_at = $2 WHERE id = $1`, revokedLong.SessionID, now.Add(-8*24*time.Hour))
	// More than one DELETE's worth of long-expired sessions.
	set(`INSERT INTO user_sessions (id, user_id, refresh_token_hash, created_at, last_used_at, expires_at)
	     SELECT gen_random_uuid(), $1, sha256(i::text::bytea), $2, $2, $3 FROM generate_series(1, $4::int) i`,
		ada.ID, now.Add(-40*24*time.Hour), now.Add(-10*24*time.Hour), purgeBatch+5)
	if e.spentCount(t, expiredLong.SessionID) != 1 {
		t.Fatal("the rotated session has no spent token to purge")
	}

	keepAll := testAuth
	keepAll.SessionRetention = 0
	if n, err := e.service(t, testenv.RedisURL(), keepAll).Purge(ctx); n != 0 || err != nil {
		t.Fatalf("with retention 0, Purge = %d, %v; want 0, nil", n, err)
	}

	n, err := s.Purge(ctx)
	if err != nil || n != purgeBatch+5+2 {
		t.Fatalf("Purge = %d, %v; want %d, nil", n, err, purgeBatch+5+2)
	}
	exists := func(id uuid.UUID) bool {
		var ok bool
		if err := e.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM user_sessions WHERE id = $1)`, id).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for name, want := range map[string]struct {
		id   uuid.UUID
		kept bool
	}{
		"live": {live.SessionID, true}, "expired 6 days ago": {expiredLately.SessionID, true}, "revoked now": {revokedLately.SessionID, true},
		"expired 8 days ago": {expiredLong.SessionID, false}, "revoked 8 days ago": {revokedLong.SessionID, false},
	} {
		if exists(want.id) != want.kept {
			t.Errorf("%s session: kept %v, want %v", name, !want.kept, want.kept)
		}
	}
	var spent, left int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM spent_refresh_tokens WHERE session_id = $1`, expiredLong.SessionID).Scan(&spent); err != nil {
		t.Fatal(err)
	}
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM user_sessions`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if spent != 0 || left != 3 {
		t.Fatalf("after the purge: %d spent tokens of a purged session, %d sessions; want 0 and 3", spent, left)
	}
	mustCheck(t, s, live)
	if n, err := s.Purge(ctx); n != 0 || err != nil {
		t.Fatalf("a second Purge = %d, %v; want 0, nil", n, err)
	}
}

// A live session's spent refresh tokens go once each has been expired for the retention (spent
// more than the refresh TTL plus the retention ago), however many there are; a later one stays
// and its reuse still revokes the session, while a purged one is merely unknown and leaves the
// session alive. A retention of 0 keeps them all.
func TestPurgeSpentDropsOnlyTokensLongExpired(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	auth := testAuth
	auth.SessionRetention = 7 * 24 * time.Hour
	s := e.service(t, testenv.RedisURL(), auth)
	ada := e.user(t, "ada")
	ctx := context.Background()

	first := open(t, s, ada, Client{})
	spent := []string{first.RefreshToken}
	e.clock.Advance(time.Minute) // spent_at then orders them
	cur := mustRotate(t, s, first.RefreshToken)
	for range 2 {
		spent = append(spent, cur.RefreshToken)
		e.clock.Advance(time.Minute)
		cur = mustRotate(t, s, cur.RefreshToken)
	}
	now, long := e.clock.Now(), auth.RefreshTokenTTL+auth.SessionRetention
	// In the order they were spent: long expired, expired but within the retention, recent.
	if _, err := e.pool.Exec(ctx, `UPDATE spent_refresh_tokens t SET spent_at = v.at
		FROM (SELECT token_hash, row_number() OVER (ORDER BY spent_at) AS n FROM spent_refresh_tokens WHERE session_id = $1) r
		JOIN (VALUES (1, $2::timestamptz), (2, $3::timestamptz), (3, $4::timestamptz)) v (n, at) ON v.n = r.n
		WHERE t.token_hash = r.token_hash`, cur.SessionID, now.Add(-long-time.Hour), now.Add(-long+time.Hour), now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	// More than one DELETE's worth of long-expired ones.
	if _, err := e.pool.Exec(ctx, `INSERT INTO spent_refresh_tokens (token_hash, session_id, spent_at)
		SELECT sha256(('old' || i)::bytea), $1, $2 FROM generate_series(1, $3::int) i`, cur.SessionID, now.Add(-long-24*time.Hour), purgeBatch+3); err != nil {
		t.Fatal(err)
	}

	keepAll := auth
	keepAll.SessionRetention = 0
	if n, err := e.service(t, testenv.RedisURL(), keepAll).PurgeSpent(ctx); n != 0 || err != nil {
		t.Fatalf("with retention 0, PurgeSpent = %d, %v; want 0, nil", n, err)
	}
	if n, err := s.PurgeSpent(ctx); n != purgeBatch+4 || err != nil {
		t.Fatalf("PurgeSpent = %d, %v; want %d, nil", n, err, purgeBatch+4)
	}
	if got := e.spentCount(t, cur.SessionID); got != 2 {
		t.Fatalf("%d spent tokens left, want the 2 within the retention", got)
	}
	if _, err := s.Rotate(ctx, spent[0]); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Fatalf("a purged spent token: Rotate = %v, want ErrInvalidRefreshToken", err)
	}
	mustCheck(t, s, cur) // and the session lives on
	if _, err := s.Rotate(ctx, spent[1]); !errors.Is(err, ErrRefreshTokenReused) {
		t.Fatalf("a kept spent token: Rotate = %v, want ErrRefreshTokenReused", err)
	}
}
