package postgres_test

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/postgres"
)

// A retention purge runs when the instance starts, then every interval: it waited a whole
// interval (an hour) first, so instances that live less than that (restarted by every deploy,
// scaled in and out, on preemptible nodes) never purged, and ended sessions and audit events
// past their retention stayed for good.
func TestPurgeRunsAtStartThenEveryInterval(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var runs atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		postgres.PurgeEvery(ctx, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)), "things", time.Hour,
			func(context.Context) (int64, error) { runs.Add(1); return 0, nil })
	}()
	for deadline := time.Now().Add(5 * time.Second); runs.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if n := runs.Load(); n != 1 {
		t.Fatalf("purged %d times in the first seconds of an hourly purge, want 1 (at start)", n)
	}
}
