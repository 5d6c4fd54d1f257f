package users_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/portcullis/portcullis/internal/password"
	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/internal/users"
)

// A q too short for pg_trgm (one or two characters) that few users hold is answered from
// users_search_tripled_idx, not by walking every user in sort order until a page fills (~190 ms
// at 1,000,000 users for a q that matches no one); a common one still walks, which finds its
// page within a few rows. Either way the users are those of a plain substring match.
func TestShortRareQueryUsesTheTripledIndex(t *testing.T) {
	ctx := context.Background()
	url := testenv.NewDB(t)
	seed := testenv.Pool(t, url)
	// Every email holds "member" and "example.com", most names "person" and hex digits; a few
	// users hold what no one else does: "j", "zq", "q%".
	if _, err := seed.Exec(ctx, `
INSERT INTO users (id, email, username, hashed_password, full_name, created_at, updated_at)
SELECT gen_random_uuid(), 'member' || i || '@example.com', 'member' || i, 'unused',
       CASE WHEN i % 5000 = 0 THEN 'Jo Zq' WHEN i = 7 THEN 'Q%_ Quux' WHEN i % 4 = 0 THEN NULL ELSE 'Person ' || md5(i::text) END,
       timestamptz '2026-01-01' + i * interval '1 second', timestamptz '2026-01-01' + i * interval '1 second'
FROM generate_series(1, 20000) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := seed.Exec(ctx, "ANALYZE users, users_search"); err != nil {
		t.Fatal(err)
	}
	var last testenv.LastQuery
	pool := testenv.TracedPool(t, url, &last)
	svc := cheapService(t, pool)

	for _, tt := range []struct {
		q       string
		tripled bool // answered from users_search_tripled_idx
	}{
		{"zq", true}, {"ZQ", true}, {"j", true}, {"q%", true}, {"o z", false},
		{"e", false}, {"4f", false}, {"r", false}, {"@e", false}, {"%", false},
	} {
		t.Run(tt.q, func(t *testing.T) {
			var want []uuid.UUID
			rows, _ := seed.Query(ctx, `SELECT id FROM users
WHERE (strpos(lower(email), lower($1)) > 0 OR strpos(lower(username), lower($1)) > 0
    OR strpos(lower(coalesce(full_name, '')), lower($1)) > 0)
ORDER BY created_at DESC, id DESC LIMIT 50`, tt.q)
			var id uuid.UUID
			if _, err := pgx.ForEachRow(rows, []any{&id}, func() error { want = append(want, id); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(want) == 0 {
				t.Fatalf("q %q matches no one: a case that tests nothing", tt.q)
			}
			page, err := svc.List(ctx, users.Filter{Query: &tt.q})
			if err != nil {
				t.Fatal(err)
			}
			var got []uuid.UUID
			for _, u := range page.Users {
				got = append(got, u.ID)
			}
			if !slices.Equal(got, want) {
				t.Errorf("q %q lists %v, want %v", tt.q, got, want)
			}
			sql, args := last.Last()
			plan := testenv.Explain(t, seed, sql, args)
			used := plan.Find(func(n *testenv.PlanNode) bool { return n.IndexName == "users_search_tripled_idx" }) != nil
			if used != tt.tripled || strings.Contains(sql, "regexp_replace") != tt.tripled {
				t.Errorf("q %q: tripled index in the plan %v (in the statement %v), want %v\n%s\n%s", tt.q, used, strings.Contains(sql, "regexp_replace"), tt.tripled, sql, plan)
			}
		})
	}
}

// q is matched in Unicode's composed form (NFC), as names are typed almost everywhere and as
// emails are stored: "José" typed with a combining accent (macOS input, some keyboards) finds
// the José stored composed.
func TestQueryIsMatchedComposed(t *testing.T) {
	ctx := context.Background()
	url := testenv.NewDB(t)
	pool := testenv.Pool(t, url)
	if _, err := pool.Exec(ctx, `INSERT INTO users (id, email, username, hashed_password, full_name, created_at, updated_at)
VALUES (gen_random_uuid(), 'jose@example.com', 'jose', 'unused', 'Jos'||U&'\00E9'||' Ib'||U&'\00E1'||''||U&'\00F1'||'ez', now(), now())`); err != nil {
		t.Fatal(err)
	}
	svc := cheapService(t, pool)
	for _, q := range []string{"jos\u00e9", "jose\u0301", "ib\u00e1n\u0303ez", "IBA\u0301N\u0303EZ"} {
		page, err := svc.List(ctx, users.Filter{Query: &q})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Users) != 1 {
			t.Errorf("q %+q lists %d users, want the one named %q", q, len(page.Users), "Jos\u00e9 Ib\u00e1\u00f1ez")
		}
	}
}

// cheapService is a users.Service on pool without a cache, hashing at the cheapest argon2id
// parameters: for tests of the store, not of hashing.
func cheapService(t testing.TB, pool *pgxpool.Pool) *users.Service {
	t.Helper()
	return users.NewService(users.NewStore(pool), password.NewHasher(password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}), password.NewGate(1, 1), testenv.Logger(t))
}
