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
	n, err := postgres.DeleteInBatches(ctx, purgeBatch, func(ctx context.Context, batch int32) (int64, error) {
		return s.q.PurgeEndedSessions(ctx, dbgen.PurgeEndedSessionsParams{EndedBefore: before, BatchSize: batch})
	})
	if err != nil {
		return n, fmt.Errorf("purge ended sessions: %w", err)
	}
	return n, nil
}

// RunPurge purges ended sessions every interval until ctx ends.
func (s *Service) RunPurge(ctx context.Context, interval time.Duration) {
	postgres.PurgeEvery(ctx, interval, s.logger, "ended sessions", s.cfg.SessionRetention, s.Purge)
}
