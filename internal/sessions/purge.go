package sessions

import (
	"context"
	"fmt"
	"time"

	dbgen "github.com/portcullis/portcullis/gen/db"
	"github.com/portcullis/portcullis/internal/postgres"
)

// purgeBatch bounds the sessions one DELETE removes, so that no statement holds its locks long.
const purgeBatch = 1000

// Purge deletes the sessions that ended (expired or were revoked) more than the configured
// retention ago, with their spent refresh tokens, and returns how many sessions went. Nothing
// is deleted when the retention is 0. Without it, every refresh would leave a row behind for
// ever. A spent token of a purged session is then simply unknown (401): its session is long
// dead, so there is nothing left for reuse detection to revoke. The audit trail keeps the
// history.
func (s *Service) Purge(ctx context.Context) (int64, error) {
	if s.cfg.SessionRetention <= 0 {
		return 0, nil
	}
	return s.store.purge(ctx, s.now().UTC().Add(-s.cfg.SessionRetention))
}

// purge deletes the sessions that ended before before, purgeBatch at a time.
func (s *Store) purge(ctx context.Context, before time.Time) (int64, error) {
	return inBatches(ctx, "ended sessions", func(ctx context.Context, batch int32) (int64, error) {
		return s.q.PurgeEndedSessions(ctx, dbgen.PurgeEndedSessionsParams{EndedBefore: before, BatchSize: batch})
	})
}

// purgeSpent deletes the refresh tokens spent before before, purgeBatch at a time.
func (s *Store) purgeSpent(ctx context.Context, before time.Time) (int64, error) {
	return inBatches(ctx, "spent refresh tokens", func(ctx context.Context, batch int32) (int64, error) {
		return s.q.PurgeSpentRefreshTokens(ctx, dbgen.PurgeSpentRefreshTokensParams{SpentBefore: before, BatchSize: batch})
	})
}

// inBatches runs del until it deletes fewer than purgeBatch rows, naming what in its error.
func inBatches(ctx context.Context, what string, del func(context.Context, int32) (int64, error)) (int64, error) {
	n, err := postgres.DeleteInBatches(ctx, purgeBatch, del)
	if err != nil {
		return n, fmt.Errorf("purge %s: %w", what, err)
	}
	return n, nil
}

// PurgeSpent deletes the spent refresh tokens of every session, live ones included, that were
// spent more than the refresh token TTL plus the retention ago, and returns how many went.
// Each had expired at least the retention ago: a token lives at most the TTL from its issue,
// which came before it was spent. Without it, a live session would keep a row per refresh for
// its whole life (~8,600 over 90 days at one refresh per 15 minutes). Such a token, if it came
// back, is then unknown (401 invalid-refresh-token) instead of detected as reused, which would
// have revoked its session: the thief gets nothing either way, and the session lives on.
// Nothing is deleted when the retention is 0.
func (s *Service) PurgeSpent(ctx context.Context) (int64, error) {
	if s.cfg.SessionRetention <= 0 {
		return 0, nil
	}
	return s.store.purgeSpent(ctx, s.now().UTC().Add(-s.cfg.RefreshTokenTTL-s.cfg.SessionRetention))
}

// RunPurge purges ended sessions and long-expired spent refresh tokens at once, then every
// interval until ctx ends.
func (s *Service) RunPurge(ctx context.Context, interval time.Duration) {
	postgres.PurgeEvery(ctx, interval, s.logger, "ended sessions and expired spent refresh tokens", s.cfg.SessionRetention,
		func(ctx context.Context) (int64, error) {
			n, err := s.Purge(ctx)
			if err != nil {
				return n, err
			}
			m, err := s.PurgeSpent(ctx)
			return n + m, err
		})
}
