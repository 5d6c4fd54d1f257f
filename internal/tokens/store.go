package tokens

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	dbgen "github.com/portcullis/portcullis/gen/db"
	"github.com/portcullis/portcullis/internal/postgres"
)

// storedKey is a signing key as kept in PostgreSQL.
type storedKey struct {
	Kid         string
	Algorithm   string
	PrivateKey  []byte // sealed when Sealed
	Sealed      bool
	CreatedAt   time.Time
	ActivatesAt time.Time
}

type store struct {
	pool *pgxpool.Pool
	q    *dbgen.Queries
}

func newStore(pool *pgxpool.Pool) *store { return &store{pool: pool, q: dbgen.New(pool)} }

func (s *store) list(ctx context.Context) ([]storedKey, error) {
	rows, err := s.q.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	keys := make([]storedKey, len(rows))
	for i, r := range rows {
		keys[i] = keyFromRow(r)
	}
	return keys, nil
}

// rotate runs decide under a cluster-wide lock with the current keys; the key it returns, if
// any, is inserted in the same transaction, and keys whose successor activated before cutoff
// are pruned.
func (s *store) rotate(ctx context.Context, cutoff time.Time, decide func([]storedKey) (*storedKey, error)) error {
	return postgres.InTx(ctx, s.pool, func(q *dbgen.Queries) error {
		if err := q.LockSigningKeys(ctx); err != nil {
			return fmt.Errorf("lock signing keys: %w", err)
		}
		rows, err := q.ListSigningKeys(ctx)
		if err != nil {
			return fmt.Errorf("list signing keys: %w", err)
		}
		keys := make([]storedKey, len(rows))
		for i, r := range rows {
			keys[i] = keyFromRow(r)
		}
		k, err := decide(keys)
		if err != nil {
			return err
		}
		if k != nil {
			if err := q.InsertSigningKey(ctx, dbgen.InsertSigningKeyParams{
				Kid: k.Kid, Algorithm: k.Algorithm, PrivateKey: k.PrivateKey, Sealed: k.Sealed,
				CreatedAt: k.CreatedAt, ActivatesAt: k.ActivatesAt,
			}); err != nil {
				return fmt.Errorf("insert signing key: %w", err)
			}
		}
		if _, err := q.DeleteSigningKeysActivatedBefore(ctx, cutoff); err != nil {
			return fmt.Errorf("prune signing keys: %w", err)
		}
		return nil
	})
}

func keyFromRow(r dbgen.SigningKey) storedKey {
	return storedKey{Kid: r.Kid, Algorithm: r.Algorithm, PrivateKey: r.PrivateKey, Sealed: r.Sealed, CreatedAt: r.CreatedAt, ActivatesAt: r.ActivatesAt}
}
