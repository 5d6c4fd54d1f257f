package sessions

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis/portcullis/internal/testenv"
)

// A refresh whose clock reads a moment earlier than a revocation's (its time was taken before
// it queued behind a running batch, or its instance's clock runs a little behind) must not bring
// back a session the revocation ended. A revocation used to leave alone a session it found
// expired by its own clock, and such a refresh then slid that session's expiry on: live again
// after a sign-out everywhere, a password change, or a revocation by its user or staff.
func TestRevocationAtExpiryIsNotUndoneByAnEarlierRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.service(t, testenv.RedisURL(), testAuth)
	behind := e.service(t, testenv.RedisURL(), testAuth)
	behind.now = func() time.Time { return e.clock.Now().Add(-time.Millisecond) }
	ctx := context.Background()
	ada := e.user(t, "ada")
	one, all := open(t, s, ada, Client{}), open(t, s, ada, Client{})
	expiry := e.row(t, one.SessionID).expiresAt
	e.clock.Advance(testAuth.RefreshTokenTTL) // at the expiry: ended by s's clock, a millisecond left by behind's

	// Not a live session by the revoker's clock: still 404, and nothing audited.
	if err := s.RevokeOwned(ctx, ada.ID, one.SessionID, nil, ReasonRevokedByUser, testEvent); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RevokeOwned(session at its expiry) = %v; want ErrNotFound", err)
	}
	if err := s.RevokeAll(ctx, ada.ID, uuid.Nil, nil, ReasonLogoutAll, testEvent); err != nil {
		t.Fatal(err)
	}
	for name, iss := range map[string]Issued{"RevokeOwned": one, "RevokeAll": all} {
		if _, err := behind.Rotate(ctx, iss.RefreshToken); !errors.Is(err, ErrInvalidRefreshToken) {
			t.Errorf("after %s, a refresh a millisecond earlier by its clock: error %v; want ErrInvalidRefreshToken", name, err)
		}
		if r := e.row(t, iss.SessionID); !r.expiresAt.Equal(expiry) || r.revokedAt == nil {
			t.Errorf("after %s and a refresh: expires_at %v (was %v), revoked_at %v; want it ended", name, r.expiresAt, expiry, r.revokedAt)
		}
	}
	// Only live sessions count as revoked in the audit trail.
	var counted int
	if err := e.pool.QueryRow(ctx, `SELECT (detail->>'sessions_revoked')::int FROM audit_events WHERE target_id = $1 AND target_type = 'user'`,
		ada.ID.String()).Scan(&counted); err != nil {
		t.Fatal(err)
	}
	if counted != 0 {
		t.Errorf("RevokeAll audited %d sessions revoked; want 0 (both had expired)", counted)
	}
}
