package testenv

import (
	"context"
	"flag"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Under -short (make test-short, which starts no services) the helpers that need PostgreSQL or
// Redis skip the test that calls them instead of failing it. The test turns -short on itself,
// so that make test checks it too.
func TestShortSkipsTestsThatNeedServices(t *testing.T) {
	was := flag.Lookup("test.short").Value.String()
	if err := flag.Set("test.short", "true"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = flag.Set("test.short", was) })
	for name, need := range map[string]func(testing.TB){
		"NewDB":       func(t testing.TB) { NewDB(t) },
		"RedisPrefix": func(t testing.TB) { RedisPrefix(t) },
		"Config":      func(t testing.TB) { Config(t) },
	} {
		var skipped bool
		t.Run(name, func(t *testing.T) {
			defer func() { skipped = t.Skipped() }()
			need(t)
		})
		if !skipped {
			t.Errorf("%s under -short: the test was not skipped", name)
		}
	}
}

// A test binary killed mid-run (a -timeout panic skips every cleanup) leaves its databases; the
// next run drops those older than staleAfter that nobody is connected to, and leaves the young
// ones (another package's, running now) and the busy ones.
func TestDropStaleLeavesYoungAndBusyDatabases(t *testing.T) {
	SkipShort(t)
	ctx := context.Background()
	now := time.Now()
	stale, busy, young := dbName("test", now.Add(-3*staleAfter/2)), dbName("tmpl", now.Add(-3*staleAfter/2)), dbName("test", now.Add(-staleAfter/2))
	for _, name := range []string{stale, busy, young} {
		if err := withAdmin(ctx, func(c *pgx.Conn) error { _, err := c.Exec(ctx, "CREATE DATABASE "+name); return err }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := dropDatabase(context.Background(), name); err != nil {
				t.Errorf("drop %s: %v", name, err)
			}
		})
	}
	conn, err := pgx.Connect(ctx, DatabaseURL(busy))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	dropped, err := dropStale(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(dropped, stale) || slices.Contains(dropped, busy) || slices.Contains(dropped, young) {
		t.Fatalf("dropped %v; want %s among them, and neither %s (busy) nor %s (young)", dropped, stale, busy, young)
	}
	var left []string
	if err := withAdmin(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, "SELECT datname FROM pg_database WHERE datname = ANY($1) ORDER BY datname", []string{stale, busy, young})
		if err != nil {
			return err
		}
		left, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{busy, young}; !slices.Equal(left, slices.Sorted(slices.Values(want))) {
		t.Fatalf("left %v; want %v", left, want)
	}
}
