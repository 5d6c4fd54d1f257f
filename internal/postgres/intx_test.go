package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	dbgen "github.com/portcullis/portcullis/gen/db"
	"github.com/portcullis/portcullis/internal/postgres"
	"github.com/portcullis/portcullis/internal/testenv"
)

// InTx tells a commit PostgreSQL refused (nothing committed) from one whose reply never came
// (committed, here): only the second wraps ErrCommitUnknown, which callers read as "may have
// committed" and so invalidate their caches.
func TestInTxTellsAnUnknownCommitFromARefusedOne(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.NewDB(t)
	direct := testenv.Pool(t, dsn)
	proxiedURL, proxy := testenv.BehindProxy(t, dsn)
	proxied := testenv.Pool(t, proxiedURL)
	// A deferred constraint trigger refuses, at COMMIT, any user named "refused".
	if _, err := direct.Exec(ctx, `
		CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.username = 'refused' THEN RAISE EXCEPTION 'refused at commit'; END IF;
			RETURN NULL;
		END $$;
		CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON users DEFERRABLE INITIALLY DEFERRED
			FOR EACH ROW EXECUTE FUNCTION refuse()`); err != nil {
		t.Fatal(err)
	}
	insert := func(name string) func(q *dbgen.Queries) error {
		return func(q *dbgen.Queries) error {
			_, err := q.CreateUser(ctx, dbgen.CreateUserParams{
				ID: uuid.New(), Email: name + "@example.com", Username: name, HashedPassword: "x",
				Role: "user", IsActive: true, CreatedAt: time.Now(),
			})
			return err
		}
	}
	stored := func(name string) bool {
		var n int
		if err := direct.QueryRow(ctx, "SELECT count(*) FROM users WHERE username = $1", name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}

	if err := postgres.InTx(ctx, proxied, insert("answered")); err != nil || !stored("answered") {
		t.Fatalf("an answered commit: %v, stored %v", err, stored("answered"))
	}

	err := postgres.InTx(ctx, proxied, insert("refused"))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || errors.Is(err, postgres.ErrCommitUnknown) || postgres.MayHaveCommitted(err) {
		t.Errorf("a commit PostgreSQL refused: %v; want its PgError, not ErrCommitUnknown", err)
	}
	if stored("refused") {
		t.Error("the refused transaction's row is stored")
	}

	proxy.LoseReplyTo("commit")
	err = postgres.InTx(ctx, proxied, insert("unanswered"))
	if !errors.Is(err, postgres.ErrCommitUnknown) || !postgres.MayHaveCommitted(err) {
		t.Errorf("a commit whose reply was lost: %v; want ErrCommitUnknown", err)
	}
	if !stored("unanswered") {
		t.Error("the unanswered commit's row is not stored; the test needs it to have committed")
	}
}

// A request whose context ends while its COMMIT runs gets ErrCommitUnknown (PostgreSQL goes on
// and commits), and the HTTP layer must answer it 503 unavailable like every other unknown
// commit (postgres.Unavailable), never 500 internal, which says the service has a bug.
func TestAnUnknownCommitIsUnavailable(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.NewDB(t)
	pool := testenv.Pool(t, dsn)
	// A deferred constraint trigger makes COMMIT take a second.
	if _, err := pool.Exec(ctx, `
		CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$;
		CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON users DEFERRABLE INITIALLY DEFERRED
			FOR EACH ROW EXECUTE FUNCTION slow()`); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(300*time.Millisecond, cancel) // the client hangs up during COMMIT
	err := postgres.InTx(rctx, pool, func(q *dbgen.Queries) error {
		_, err := q.CreateUser(rctx, dbgen.CreateUserParams{
			ID: uuid.New(), Email: "slow@example.com", Username: "slow", HashedPassword: "x",
			Role: "user", IsActive: true, CreatedAt: time.Now(),
		})
		return err
	})
	if !errors.Is(err, postgres.ErrCommitUnknown) {
		t.Fatalf("a commit whose context ended while it ran: %v; want ErrCommitUnknown", err)
	}
	if !postgres.Unavailable(err) {
		t.Errorf("postgres.Unavailable(%q) = false: the HTTP layer answers 500 internal; want 503", err)
	}
}
