package tokens

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
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
	// lifetime is how long a token this instance signs can stay valid (its access-token TTL and
	// clock skew), recorded on every key it lists (see list).
	lifetime pgtype.Interval
}

func newStore(pool *pgxpool.Pool, lifetime time.Duration) *store {
	return &store{pool: pool, q: dbgen.New(pool), lifetime: pgtype.Interval{Microseconds: lifetime.Microseconds(), Valid: true}}
}

// list returns the keys, newest activation first, having recorded s.lifetime on each: a key
// is not pruned before tokens this instance signs with it have expired, whatever the instance
// that prunes is configured with.
func (s *store) list(ctx context.Context) ([]storedKey, error) { return s.listWith(ctx, s.q) }

// read returns the keys, newest activation first, recording nothing: for a server that only
// reads, where list is refused. Keys read so are for verifying only (see Service.reload).
func (s *store) read(ctx context.Context) ([]storedKey, error) {
	rows, err := s.q.ReadSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("read signing keys: %w", err)
	}
	return keysFromRows(rows), nil
}

func (s *store) listWith(ctx context.Context, q *dbgen.Queries) ([]storedKey, error) {
	rows, err := q.ListSigningKeys(ctx, s.lifetime)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	return keysFromRows(rows), nil
}

func keysFromRows(rows []dbgen.SigningKey) []storedKey {
	keys := make([]storedKey, len(rows))
	for i, r := range rows {
		keys[i] = keyFromRow(r)
	}
	return keys
}

// rotate runs decide under a cluster-wide lock with the current keys; the key it returns, if
// any, is inserted in the same transaction, and keys whose successor has been active at now
// for longer than their tokens live are pruned.
func (s *store) rotate(ctx context.Context, now time.Time, decide func([]storedKey) (*storedKey, error)) error {
	return postgres.InTx(ctx, s.pool, func(q *dbgen.Queries) error {
		if err := q.LockSigningKeys(ctx); err != nil {
			return fmt.Errorf("lock signing keys: %w", err)
		}
		keys, err := s.listWith(ctx, q)
		if err != nil {
			return err
		}
		k, err := decide(keys)
		if err != nil {
			return err
		}
		if k != nil {
			if err := q.InsertSigningKey(ctx, dbgen.InsertSigningKeyParams{
				Kid: k.Kid, Algorithm: k.Algorithm, PrivateKey: k.PrivateKey, Sealed: k.Sealed,
				CreatedAt: k.CreatedAt, ActivatesAt: k.ActivatesAt, TokenLifetime: s.lifetime,
			}); err != nil {
				return fmt.Errorf("insert signing key: %w", err)
			}
		}
		if _, err := q.DeleteSigningKeysOutlived(ctx, now); err != nil {
			return fmt.Errorf("prune signing keys: %w", err)
		}
		return nil
	})
}

func keyFromRow(r dbgen.SigningKey) storedKey {
	return storedKey{Kid: r.Kid, Algorithm: r.Algorithm, PrivateKey: r.PrivateKey, Sealed: r.Sealed, CreatedAt: r.CreatedAt, ActivatesAt: r.ActivatesAt}
}
