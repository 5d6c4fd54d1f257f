package postgres_test

import (
	"context"
	"io/fs"
	"sync"
	"testing"

	"github.com/portcullis/portcullis/db"
	"github.com/portcullis/portcullis/internal/postgres"
	"github.com/portcullis/portcullis/internal/testenv"
)

// Instances of a new version started at once (a rolling deploy, or several replicas at first
// start) each apply the pending migrations (PORTCULLIS_AUTO_MIGRATE): every one of them must
// start, and each migration must be applied exactly once.
func TestInstancesMigratingAtOnceAllSucceed(t *testing.T) {
	ctx := context.Background()
	url := testenv.NewDB(t)
	pool := testenv.Pool(t, url)
	downTo(t, pool, 0) // every migration pending again, the version table in place
	migrations, err := fs.Glob(db.Migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	const instances = 4
	errs := make([]error, instances)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range instances {
		p := testenv.Pool(t, url)
		wg.Add(1)
		go func() {
			defer wg.Done()
			start.Wait()
			errs[i] = postgres.Migrate(ctx, p, "up", quiet())
		}()
	}
	start.Done()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("instance %d: migrate up: %v", i, err)
		}
	}
	var applied, distinct int
	if err := pool.QueryRow(ctx, "SELECT count(*) FILTER (WHERE is_applied), count(DISTINCT version_id) FROM goose_db_version WHERE version_id > 0").Scan(&applied, &distinct); err != nil {
		t.Fatal(err)
	}
	if applied != len(migrations) || distinct != len(migrations) { // a down deletes its version's row
		t.Errorf("goose_db_version: %d applications of %d versions, want %d of %[3]d: some ran twice", applied, distinct, len(migrations))
	}
}
