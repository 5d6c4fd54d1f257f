package postgres_test

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/portcullis/portcullis/db"
	"github.com/portcullis/portcullis/internal/postgres"
	"github.com/portcullis/portcullis/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Every migration rolls back cleanly and applies again: Down sections are real.
func TestMigrationsGoDownAndUpAgain(t *testing.T) {
	ctx := context.Background()
	pool, err := postgres.Open(ctx, testenv.NewDB(t), 2) // a clone of the migrated template
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	tables := func() int {
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> 'goose_db_version'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const want = 6 // users, user_sessions, spent_refresh_tokens, signing_keys, audit_events, users_search
	if got := tables(); got != want {
		t.Fatalf("tables after up = %d, want %d", got, want)
	}
	migrations, err := fs.Glob(db.Migrations, "migrations/*.sql")
	if err != nil || len(migrations) == 0 {
		t.Fatalf("embedded migrations: %v, %d", err, len(migrations))
	}
	for i := range migrations {
		if err := postgres.Migrate(ctx, pool, "down", quiet()); err != nil {
			t.Fatalf("down #%d: %v", i+1, err)
		}
	}
	if got := tables(); got != 0 {
		t.Fatalf("tables after every down = %d, want 0", got)
	}
	if err := postgres.Migrate(ctx, pool, "up", quiet()); err != nil {
		t.Fatal(err)
	}
	if got := tables(); got != want {
		t.Fatalf("tables after up again = %d, want %d", got, want)
	}
	if err := postgres.Migrate(ctx, pool, "status", quiet()); err != nil {
		t.Fatal(err)
	}
	if err := postgres.Migrate(ctx, pool, "sideways", quiet()); err == nil {
		t.Fatal("an unknown migrate command was accepted")
	}
}

func TestEnsureDatabaseCreatesItOnce(t *testing.T) {
	ctx := context.Background()
	name := fmt.Sprintf("pc_ensure_%d", time.Now().UnixNano()) // lower case: unquoted DROP finds it
	url := testenv.DatabaseURL(name)
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, testenv.AdminURL())
		if err == nil {
			c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(ctx)
		}
	})
	for i := 0; i < 2; i++ { // the second call finds it and does nothing
		if err := postgres.EnsureDatabase(ctx, url); err != nil {
			t.Fatalf("EnsureDatabase #%d: %v", i+1, err)
		}
	}
	pool, err := postgres.Open(ctx, url, 2)
	if err != nil {
		t.Fatalf("open the created database: %v", err)
	}
	pool.Close()
}

func TestOpenSaysWhereItFailed(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://127.0.0.1:1/nothing?connect_timeout=2", 2)
	if err == nil {
		t.Fatal("Open succeeded against a closed port")
	}
}
