// Package benchdata seeds the users the admin-listing benchmarks walk, the same way for
// `make bench` (tools/bench) and `make bench-go` (BenchmarkAdminListUsers).
package benchdata

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Execer runs a statement: a *pgxpool.Pool or a *pgx.Conn.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// hash is one real argon2id hash for every row: listing never reads it.
const hash = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"

// ListingUsers bulk-inserts users first..last ("member<i>@example.com", a quarter without a
// full name, one in 100 a moderator and one in 1,000 an admin, one in 50 inactive, created a
// second apart). It loads through the trigram index's GIN pending list, merges it and turns it
// off again as the migration leaves it, then VACUUM ANALYZEs every table: the measured state is
// the production one.
func ListingUsers(ctx context.Context, db Execer, first, last int) error {
	for _, s := range []struct {
		sql  string
		args []any
	}{
		{"ALTER INDEX users_search_trgm_idx SET (fastupdate = on)", nil},
		{`
INSERT INTO users (id, email, username, hashed_password, full_name, role, is_active, is_verified, created_at, updated_at)
SELECT gen_random_uuid(), 'member' || i || '@example.com', 'member' || i, $1,
       CASE WHEN i % 4 = 0 THEN NULL ELSE 'Person ' || md5(i::text) END,
       CASE WHEN i % 1000 = 0 THEN 'admin' WHEN i % 100 = 0 THEN 'moderator' ELSE 'user' END,
       i % 50 <> 0, i % 3 = 0,
       timestamptz '2026-01-01' + i * interval '1 second', timestamptz '2026-01-01' + i * interval '1 second'
FROM generate_series($2::int, $3::int) AS i`, []any{hash, first, last}},
		{"SELECT gin_clean_pending_list('users_search_trgm_idx')", nil},
		{"ALTER INDEX users_search_trgm_idx SET (fastupdate = off)", nil},
		{"VACUUM ANALYZE", nil}, // every table: users_search's statistics steer the text filter
	} {
		if _, err := db.Exec(ctx, s.sql, s.args...); err != nil {
			return fmt.Errorf("seed listing users: %s: %w", strings.Fields(s.sql)[0], err)
		}
	}
	return nil
}
