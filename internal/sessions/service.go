package sessions

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/postgres"
	"github.com/portcullis/portcullis/internal/redis"
)

// Revocation reasons recorded on sessions.
const (
	ReasonLogout         = "logout"
	ReasonLogoutAll      = "logout_all"
	ReasonRevokedByUser  = "revoked_by_user"
	ReasonRefreshReused  = "refresh_token_reused"
	ReasonPasswordChange = "password_changed"
	// ReasonLoginUnanswered ends a session whose insert's reply was lost: no client got its
	// tokens (Open).
	ReasonLoginUnanswered = "login_unanswered"
)

// unansweredTimeout bounds the ending of a session whose login was not answered.
const unansweredTimeout = 5 * time.Second

// Service is the sessions domain.
type Service struct {
	store  *Store
	rc     *redis.Client
	cache  cache
	cfg    config.Auth
	logger *slog.Logger
	now    func() time.Time

	// revoked counts revocations by reason (metrics); a no-op until OnRevoke sets it.
	revoked func(reason string, n int)
}

// OnRevoke sets fn to be told of every revocation, by reason, for metrics.
func (s *Service) OnRevoke(fn func(reason string, n int)) { s.revoked = fn }

// Revoked reports n sessions revoked for reason elsewhere (a password change, a deactivation)
// and forgets their cached states.
func (s *Service) Revoked(ctx context.Context, reason string, ids ...uuid.UUID) {
	s.revoked(reason, len(ids))
	s.Forget(ctx, ids...)
}

// NewService returns a Service. Session states are cached in rc for at most cacheTTL.
func NewService(store *Store, rc *redis.Client, cacheTTL time.Duration, cfg config.Auth, logger *slog.Logger) *Service {
	return &Service{
		store: store, rc: rc, cache: cache{redis.NewCoherent(rc, "session:", cacheTTL)}, cfg: cfg, logger: logger, now: time.Now,
		revoked: func(string, int) {},
	}
}

// Open starts a session for a user who has just proved who they are with the password whose
// stored hash is passwordHash, and returns its first refresh token. It returns ErrUserChanged,
// opening nothing, when that hash is no longer the user's or the user is no longer active.
func (s *Service) Open(ctx context.Context, userID uuid.UUID, role, passwordHash string, c Client) (Issued, error) {
	now := s.now().UTC()
	token, hash := newRefreshToken()
	sess := Session{
		ID: uuid.Must(uuid.NewV7()), UserID: userID, UserAgent: cleanUserAgent(c.UserAgent),
		CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTokenTTL),
	}
	if c.IP.IsValid() {
		ip := c.IP.Unmap()
		sess.IPAddress = &ip
	}
	if err := s.store.insert(ctx, sess, hash, passwordHash); err != nil {
		if postgres.Unanswered(err) && !errors.Is(err, ErrUserChanged) { // the latter was answered
			s.endUnanswered(ctx, sess, hash)
		}
		return Issued{}, err
	}
	return Issued{SessionID: sess.ID, UserID: userID, Role: role, RefreshToken: token, RefreshExpiresAt: sess.ExpiresAt}, nil
}

// endUnanswered ends sess, whose insert (of refresh token hash refreshHash) failed without
// PostgreSQL's own answer: it may have committed with its reply lost (a broken connection, an
// ended request), or may still land (held up on its way). No client holds its tokens, and left
// alone it would be listed to its owner as live until it expired, as a session they never
// opened. It runs whether or not the request still waits, for at most unansweredTimeout. A
// session not written yet is forestalled by a revoked placeholder, and nothing is recorded.
func (s *Service) endUnanswered(ctx context.Context, sess Session, refreshHash []byte) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unansweredTimeout)
	defer cancel()
	ev := audit.Event{Action: audit.ActionSessionRevoke, Detail: map[string]any{"user_id": sess.UserID.String(), "reason": ReasonLoginUnanswered}}
	ended, err := s.store.endUnanswered(ctx, sess, refreshHash, ReasonLoginUnanswered, s.now().UTC(), ev)
	if err != nil {
		s.logger.WarnContext(ctx, "could not end the session of a login that was not answered; it is listed as live until it expires",
			"session_id", sess.ID, "user_id", sess.UserID, "error", err)
		return
	}
	if ended {
		s.revoked(ReasonLoginUnanswered, 1)
	}
}

// Rotate spends a refresh token and returns its successor. It returns ErrInvalidRefreshToken
// for an unknown, expired or revoked token; ErrRefreshTokenReused, after revoking the session,
// for a token spent earlier than the grace window; and ErrRefreshRace for a token spent within
// the grace window, leaving the session intact.
func (s *Service) Rotate(ctx context.Context, token string) (Issued, error) {
	if !wellFormed(token) {
		return Issued{}, ErrInvalidRefreshToken
	}
	now := s.now().UTC()
	oldHash := hashToken(token)
	next, newHash := newRefreshToken()
	r, ok, err := s.store.rotate(ctx, oldHash, newHash, now, now.Add(s.cfg.RefreshTokenTTL), s.cfg.SessionMaxLifetime)
	if err != nil {
		return Issued{}, err
	}
	if ok {
		return Issued{SessionID: r.SessionID, UserID: r.UserID, Role: r.Role, RefreshToken: next, RefreshExpiresAt: r.ExpiresAt}, nil
	}
	spent, found, err := s.store.spent(ctx, oldHash)
	switch {
	case err != nil:
		return Issued{}, err
	case !found || spent.SessionRevoked:
		return Issued{}, ErrInvalidRefreshToken
	case now.Sub(spent.SpentAt) <= s.cfg.RefreshReuseGrace:
		return Issued{}, ErrRefreshRace
	}
	// A spent token came back: it was stolen, or the client is broken. End the family.
	ev := audit.Event{Action: audit.ActionRefreshReuse, Failed: true, Detail: map[string]any{"user_id": spent.UserID.String()}}
	if _, err := s.store.revoke(ctx, spent.SessionID, ReasonRefreshReused, now, ev); err != nil {
		s.Unsure(ctx, err, spent.SessionID)
		return Issued{}, err
	}
	s.revoked(ReasonRefreshReused, 1)
	s.Forget(ctx, spent.SessionID)
	s.logger.WarnContext(ctx, "refresh token reuse detected; session revoked", "session_id", spent.SessionID.String())
	return Issued{}, ErrRefreshTokenReused
}

// Check returns the state of a live session that belongs to userID, or ErrSessionRevoked.
// Redis answers when it can; PostgreSQL otherwise.
func (s *Service) Check(ctx context.Context, sessionID, userID uuid.UUID) (State, error) {
	now := s.now()
	st, err := s.state(ctx, sessionID, now)
	if err != nil {
		return State{}, err
	}
	if st.UserID != userID || !st.live(now) {
		return State{}, ErrSessionRevoked
	}
	return st, nil
}

func (s *Service) state(ctx context.Context, id uuid.UUID, now time.Time) (State, error) {
	st, hit, err := s.cache.get(ctx, id)
	switch {
	case hit:
		return st, nil
	case err != nil && !errors.Is(err, redis.ErrStale):
		s.logger.DebugContext(ctx, "session cache read failed", "error", err)
	}
	fill := !errors.Is(err, redis.ErrStale)
	readAt := time.Now()
	st, err = s.store.state(ctx, id)
	if err == ErrNotFound {
		return State{}, ErrSessionRevoked
	}
	if err != nil {
		return State{}, err
	}
	if fill {
		if err := s.cache.fill(ctx, st, now, readAt); err != nil {
			s.logger.DebugContext(ctx, "session cache write failed", "error", err)
		}
	}
	return st, nil
}

// Revoke ends a session, recording ev (its action and actor) in the same transaction.
func (s *Service) Revoke(ctx context.Context, id uuid.UUID, reason string, ev audit.Event) error {
	ok, err := s.store.revoke(ctx, id, reason, s.now().UTC(), ev)
	if err != nil {
		s.Unsure(ctx, err, id)
		return err
	}
	if ok {
		s.revoked(reason, 1)
	}
	s.Forget(ctx, id)
	return nil
}

// StaffCheck is staff acting on a user's sessions: Actor is the acting account, and May decides
// from its role ("" once it is disabled or gone) and from the role of the user whose sessions are
// acted on ("" when that user is gone) whether the act may go ahead, returning its error
// otherwise. May runs in the act's transaction with both rows share-locked (lower id first), so
// neither a demotion of the actor nor a promotion of the user can land between the check and the
// act. A nil *StaffCheck allows the act (a user acting on their own sessions).
type StaffCheck struct {
	Actor uuid.UUID
	May   func(actorRole, ownerRole string) error
}

// RevokeOwned ends one of userID's live sessions, recording ev, or returns ErrNotFound, or the
// error of check.
func (s *Service) RevokeOwned(ctx context.Context, userID, id uuid.UUID, check *StaffCheck, reason string, ev audit.Event) error {
	ok, err := s.store.revokeOwned(ctx, userID, id, check, reason, s.now().UTC(), ev)
	if err != nil {
		s.Unsure(ctx, err, id)
		return err
	}
	if !ok {
		return ErrNotFound
	}
	s.revoked(reason, 1)
	s.Forget(ctx, id)
	return nil
}

// RevokeAll ends every live session of userID except keep (uuid.Nil keeps none), recording ev,
// or returns the error of check.
func (s *Service) RevokeAll(ctx context.Context, userID, keep uuid.UUID, check *StaffCheck, reason string, ev audit.Event) error {
	ids, err := s.store.revokeAll(ctx, userID, keep, check, reason, s.now().UTC(), ev)
	if err != nil {
		s.Unsure(ctx, err, ids...)
		return err
	}
	s.Revoked(ctx, reason, ids...)
	return nil
}

// CountLive returns how many sessions are live now (for the active-sessions gauge).
func (s *Service) CountLive(ctx context.Context) (int64, error) {
	return s.store.q.CountLiveSessions(ctx, s.now().UTC())
}

// List returns userID's live sessions, newest first.
func (s *Service) List(ctx context.Context, userID uuid.UUID) ([]Session, error) {
	return s.store.listActive(ctx, userID, s.now().UTC())
}

// Forget replaces the cached states of sessions just revoked in PostgreSQL with tombstones, so
// every instance refuses them on the next request. When Redis cannot be reached the ids are
// remembered: this instance stops trusting the cache for them and retries until it succeeds (in
// Run), and the error is returned for callers that report it (the CLI, which runs no retries).
func (s *Service) Forget(ctx context.Context, ids ...uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.cache.tombstone(ctx, s.now(), ids...)
	if err != nil {
		s.logger.WarnContext(ctx, "session cache invalidation failed; will retry", "error", err, "sessions", len(ids))
	}
	return err
}

// Refresh makes every instance re-read the state of sessions ids from PostgreSQL on their next
// request: after a role change, say. Cached states are replaced by "stale" markers that no
// cache fill can overwrite, so an instance that read the old state just before the change
// cannot put it back. When Redis cannot take the markers, this instance retries them (pending),
// and the error is returned for callers that report it (the CLI), as Forget's.
func (s *Service) Refresh(ctx context.Context, ids ...uuid.UUID) error {
	return s.marked(ctx, s.cache.markStale(ctx, ids...), len(ids))
}

// marked logs err, the failure of marking n sessions stale, which this instance retries, and
// returns it.
func (s *Service) marked(ctx context.Context, err error, n int) error {
	if err != nil {
		s.logger.WarnContext(ctx, "session cache refresh failed; will retry", "error", err, "sessions", n)
	}
	return err
}

// Unsure makes every instance re-read sessions ids from PostgreSQL when a change to them failed
// with err after it may have committed (postgres.ErrCommitUnknown): their cached states may be
// stale, and only PostgreSQL knows. As Refresh, but for the cache TTL rather than a marker's
// seconds: the commit may land late, after other instances read and could have cached the old
// state. A change that surely failed leaves the caches alone. Errors are as Refresh's.
func (s *Service) Unsure(ctx context.Context, err error, ids ...uuid.UUID) error {
	if !errors.Is(err, postgres.ErrCommitUnknown) {
		return nil
	}
	return s.marked(ctx, s.cache.doubt(ctx, ids...), len(ids))
}

func (s *Service) isPending(id uuid.UUID) bool { return s.cache.c.IsPending(id.String()) }

// Run retries failed cache invalidations every interval until ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) { s.cache.c.Run(ctx, interval) }

func (s *Service) retryPending(ctx context.Context) { s.cache.c.RetryPending(ctx) }
