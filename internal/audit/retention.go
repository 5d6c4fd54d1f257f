package audit

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	dbgen "github.com/portcullis/portcullis/gen/db"
	"github.com/portcullis/portcullis/internal/postgres"
)

// purgeBatch bounds the events one DELETE removes.
const purgeBatch = 1000

// Purge deletes the events recorded before before, and records that it did: the trail always
// says how much of itself was removed, and up to when.
func Purge(ctx context.Context, pool *pgxpool.Pool, before time.Time) (int64, error) {
	// To the second, as recorded_before writes it: the record then names the very cutoff the
	// DELETE used, not one up to a second before events it removed.
	before = before.UTC().Truncate(time.Second)
	q := dbgen.New(pool)
	n, err := postgres.DeleteInBatches(ctx, purgeBatch, func(ctx context.Context, batch int32) (int64, error) {
		return q.PurgeAuditEvents(ctx, dbgen.PurgeAuditEventsParams{RecordedBefore: before, BatchSize: batch})
	})
	// A DELETE whose reply was lost may have removed its batch: the purge is recorded all the
	// same, its count marked unconfirmed, or events would leave the trail without a trace.
	// It is recorded free of ctx's end (a shutdown mid-DELETE), for at most 5 s.
	unknown := postgres.Unanswered(err)
	if n > 0 || unknown {
		detail := map[string]any{"deleted": n, "recorded_before": before.Format(time.RFC3339)}
		if unknown {
			detail["count_unknown"] = true
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if rerr := Record(rctx, q, Event{Action: ActionAuditPurge, Detail: detail}); err == nil {
			err = rerr
		}
	}
	if err != nil {
		return n, fmt.Errorf("purge audit events: %w", err)
	}
	return n, nil
}

// RunPurge deletes, at once and then every interval until ctx ends, the events recorded more
// than retention ago. A retention of 0 keeps every event.
func RunPurge(ctx context.Context, pool *pgxpool.Pool, retention, interval time.Duration, logger *slog.Logger) {
	if retention <= 0 {
		return
	}
	postgres.PurgeEvery(ctx, interval, logger, "old audit events", retention, func(ctx context.Context) (int64, error) {
		return Purge(ctx, pool, time.Now().Add(-retention))
	})
}
