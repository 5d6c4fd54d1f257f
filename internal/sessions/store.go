package sessions

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	dbgen "github.com/portcullis/portcullis/gen/db"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/postgres"
)

// Store keeps sessions in PostgreSQL, the source of truth. Every change is audited in its own
// transaction.
type Store struct {
	pool      *pgxpool.Pool
	q         *dbgen.Queries
	rotations rotations
}

// NewStore returns a Store on pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool, q: dbgen.New(pool)} }

// insert stores a session and audits it, if the user is active and passwordHash is still
// theirs; else it returns ErrUserChanged.
func (s *Store) insert(ctx context.Context, sess Session, refreshHash []byte, passwordHash string) error {
	var ip *netip.Addr
	if sess.IPAddress != nil && sess.IPAddress.IsValid() {
		ip = sess.IPAddress
	}
	ev := audit.Params(ctx, audit.SessionTarget(audit.Event{Action: audit.ActionLogin, Actor: audit.Ptr(sess.UserID)}, sess.ID), time.Now().UTC())
	n, err := s.q.CreateSessionAudited(ctx, dbgen.CreateSessionAuditedParams{
		ID: sess.ID, UserID: sess.UserID, VerifiedPasswordHash: passwordHash, RefreshTokenHash: refreshHash, IpAddress: ip,
		UserAgent: sess.UserAgent, CreatedAt: sess.CreatedAt, ExpiresAt: sess.ExpiresAt,
		AuditID: ev.ID, AuditOccurredAt: ev.OccurredAt, AuditActorID: ev.ActorID, AuditAction: ev.Action,
		AuditTargetType: ev.TargetType, AuditTargetID: ev.TargetID, AuditOutcome: ev.Outcome,
		AuditIpAddress: ev.IpAddress, AuditUserAgent: ev.UserAgent, AuditRequestID: ev.RequestID, AuditDetail: ev.Detail,
	})
	if err != nil {
		return fmt.Errorf("insert session: %w", err)
	}
	if n == 0 {
		return ErrUserChanged
	}
	return nil
}

func (s *Store) state(ctx context.Context, id uuid.UUID) (State, error) {
	row, err := s.q.GetSessionState(ctx, id)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return State{}, ErrNotFound
	case err != nil:
		return State{}, fmt.Errorf("get session state: %w", err)
	}
	return State{
		SessionID: row.ID, UserID: row.UserID, Role: row.Role, UserActive: row.UserIsActive,
		Revoked: row.RevokedAt != nil, ExpiresAt: row.ExpiresAt,
	}, nil
}

// rotated is the outcome of spending a refresh token.
type rotated struct {
	SessionID uuid.UUID
	UserID    uuid.UUID
	Role      string
	ExpiresAt time.Time
}

// rotate spends oldHash for newHash; ok is false when oldHash is not a live session's current
// token. It is committed together with the rotations that arrive alongside it (rotations.go).
func (s *Store) rotate(ctx context.Context, oldHash, newHash []byte, now, expiresAt time.Time, maxLifetime time.Duration) (r rotated, ok bool, err error) {
	res := s.rotateQueued(&rotation{
		ctx: ctx, oldHash: oldHash, newHash: newHash, now: now, expiresAt: expiresAt, maxLifetime: maxLifetime,
		audit: audit.Params(ctx, audit.Event{Action: audit.ActionRefresh}, now), done: make(chan rotationResult, 1),
	})
	return res.r, res.ok, res.err
}

// spentToken is a refresh token that was once part of a session's family.
type spentToken struct {
	SessionID      uuid.UUID
	UserID         uuid.UUID
	SpentAt        time.Time
	SessionRevoked bool
}

func (s *Store) spent(ctx context.Context, hash []byte) (spentToken, bool, error) {
	row, err := s.q.GetSpentRefreshToken(ctx, hash)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return spentToken{}, false, nil
	case err != nil:
		return spentToken{}, false, fmt.Errorf("get spent refresh token: %w", err)
	}
	return spentToken{SessionID: row.SessionID, UserID: row.UserID, SpentAt: row.SpentAt, SessionRevoked: row.RevokedAt != nil}, true, nil
}

// revoke ends one session and records ev about it; false when it was not live.
func (s *Store) revoke(ctx context.Context, id uuid.UUID, reason string, now time.Time, ev audit.Event) (bool, error) {
	var n int64
	err := postgres.InTx(ctx, s.pool, func(q *dbgen.Queries) error {
		var err error
		if n, err = q.RevokeSession(ctx, dbgen.RevokeSessionParams{ID: id, Reason: &reason, Now: now}); err != nil {
			return fmt.Errorf("revoke session: %w", err)
		}
		if n == 0 {
			return nil
		}
		return audit.Record(ctx, q, audit.SessionTarget(ev, id))
	})
	return n > 0, err
}

// endUnanswered ends sess, whose insert (with refresh token hash refreshHash) got no answer, and
// records ev when it was live; else it leaves a revoked placeholder on which that insert fails,
// should it land later. It reports whether a live session ended.
func (s *Store) endUnanswered(ctx context.Context, sess Session, refreshHash []byte, reason string, now time.Time, ev audit.Event) (bool, error) {
	var ended bool
	err := postgres.InTx(ctx, s.pool, func(q *dbgen.Queries) error {
		var err error
		ended, err = q.EndUnansweredSession(ctx, dbgen.EndUnansweredSessionParams{
			ID: sess.ID, UserID: sess.UserID, RefreshTokenHash: refreshHash, Now: now, Reason: &reason,
		})
		switch {
		case errors.Is(err, pgx.ErrNoRows): // already revoked
			return nil
		case err != nil:
			return fmt.Errorf("end unanswered session: %w", err)
		case !ended:
			return nil
		}
		return audit.Record(ctx, q, audit.SessionTarget(ev, sess.ID))
	})
	return ended, err
}

// checkOwner runs check, when there is one, on the roles of its actor and of userID, both rows
// share-locked for the rest of the transaction, lower id first (see StaffCheck).
func checkOwner(ctx context.Context, q *dbgen.Queries, userID uuid.UUID, check *StaffCheck) error {
	if check == nil {
		return nil
	}
	var actorRole, ownerRole string
	owner := func() (err error) {
		ownerRole, err = q.LockSessionOwnerRole(ctx, userID)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("lock session owner: %w", err)
		}
		return nil
	}
	actor := func() error {
		row, err := q.LockActingUser(ctx, check.Actor)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return nil
		case err != nil:
			return fmt.Errorf("lock acting user: %w", err)
		}
		if row.IsActive {
			actorRole = row.Role
		}
		return nil
	}
	if err := postgres.InIDOrder(userID, check.Actor, owner, actor); err != nil {
		return err
	}
	return check.May(actorRole, ownerRole)
}

// revokeOwned ends one of userID's live sessions and records ev, if check allows; false when
// there is none.
func (s *Store) revokeOwned(ctx context.Context, userID, id uuid.UUID, check *StaffCheck, reason string, now time.Time, ev audit.Event) (bool, error) {
	var n int64
	err := postgres.InTx(ctx, s.pool, func(q *dbgen.Queries) error {
		if err := checkOwner(ctx, q, userID, check); err != nil {
			return err
		}
		var err error
		n, err = q.RevokeUserSession(ctx, dbgen.RevokeUserSessionParams{ID: id, UserID: userID, Reason: &reason, Now: now})
		if err != nil {
			return fmt.Errorf("revoke user session: %w", err)
		}
		if n == 0 {
			return nil
		}
		return audit.Record(ctx, q, audit.SessionTarget(ev, id))
	})
	return n > 0, err
}

// revokeAll ends every live session of userID but keep and records ev about the user, if check
// allows.
func (s *Store) revokeAll(ctx context.Context, userID, keep uuid.UUID, check *StaffCheck, reason string, now time.Time, ev audit.Event) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	err := postgres.InTx(ctx, s.pool, func(q *dbgen.Queries) error {
		if err := checkOwner(ctx, q, userID, check); err != nil {
			return err
		}
		var err error
		ids, err = q.RevokeUserSessions(ctx, dbgen.RevokeUserSessionsParams{UserID: userID, KeepID: keep, Reason: &reason, Now: now})
		if err != nil {
			return fmt.Errorf("revoke user sessions: %w", err)
		}
		if ev.Detail == nil {
			ev.Detail = map[string]any{}
		}
		ev.Detail["sessions_revoked"] = len(ids)
		return audit.Record(ctx, q, audit.UserTarget(ev, userID))
	})
	return ids, err
}

func (s *Store) listActive(ctx context.Context, userID uuid.UUID, now time.Time) ([]Session, error) {
	rows, err := s.q.ListActiveSessionsByUser(ctx, dbgen.ListActiveSessionsByUserParams{UserID: userID, Now: now})
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	out := make([]Session, len(rows))
	for i, r := range rows {
		out[i] = Session{ID: r.ID, UserID: userID, IPAddress: r.IpAddress, UserAgent: r.UserAgent, CreatedAt: r.CreatedAt, LastUsedAt: r.LastUsedAt, ExpiresAt: r.ExpiresAt}
	}
	return out, nil
}
