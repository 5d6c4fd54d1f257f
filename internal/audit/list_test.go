package audit_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/testenv"
)

// lastQuery remembers the last statement a pool ran, with its arguments, so a test can ask
// PostgreSQL how it plans exactly what the code sent.
type lastQuery struct {
	mu   sync.Mutex
	sql  string
	args []any
}

func (l *lastQuery) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sql, l.args = d.SQL, nil
	for _, a := range d.Args {
		if _, ok := a.(pgx.QueryExecMode); !ok {
			l.args = append(l.args, a)
		}
	}
	return ctx
}

func (l *lastQuery) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// The trail filtered by target_id alone (the API allows it without target_type) is answered
// from audit_events_target_idx, not by reading the whole trail: every login and refresh writes
// an event, so a scan of audit_events grows without bound and holds a connection meanwhile.
func TestListByTargetIDAloneUsesTheTargetIndex(t *testing.T) {
	testenv.SkipShort(t)
	ctx := context.Background()
	url := testenv.NewDB(t)
	seed := testenv.Pool(t, url)
	if _, err := seed.Exec(ctx, `INSERT INTO audit_events (id, occurred_at, action, target_type, target_id, outcome, detail)
		SELECT gen_random_uuid(), now() - i * interval '1 second', 'user.login', 'user', gen_random_uuid()::text, 'success', '{}'
		FROM generate_series(1, 20000) i`); err != nil {
		t.Fatal(err)
	}
	if _, err := seed.Exec(ctx, "ANALYZE audit_events"); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	var last lastQuery
	cfg.ConnConfig.Tracer = &last
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	target := "01936f3e-8b2a-7c4d-9e5f-0a1b2c3d4e5f"
	if _, err := audit.NewTrail(pool).List(ctx, audit.Filter{TargetID: &target}); err != nil {
		t.Fatal(err)
	}
	last.mu.Lock()
	sql, args := last.sql, last.args
	last.mu.Unlock()
	var plan []byte
	if err := seed.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+sql, append([]any{pgx.QueryExecModeExec}, args...)...).Scan(&plan); err != nil {
		t.Fatal(err)
	}
	var doc []struct{ Plan planNode }
	if err := json.Unmarshal(plan, &doc); err != nil || len(doc) != 1 {
		t.Fatalf("EXPLAIN: %v", err)
	}
	if scan := doc[0].Plan.find("audit_events"); scan == nil || scan.IndexName != "audit_events_target_idx" || !strings.Contains(scan.IndexCond, "target_id") {
		t.Fatalf("audit_events is read by %+v; want audit_events_target_idx with target_id in its condition\n%s", scan, plan)
	}
}

type planNode struct {
	NodeType     string     `json:"Node Type"`
	RelationName string     `json:"Relation Name"`
	IndexName    string     `json:"Index Name"`
	IndexCond    string     `json:"Index Cond"`
	Plans        []planNode `json:"Plans"`
}

// find returns the node that reads relation, or nil.
func (n *planNode) find(relation string) *planNode {
	if n.RelationName == relation {
		return n
	}
	for i := range n.Plans {
		if found := n.Plans[i].find(relation); found != nil {
			return found
		}
	}
	return nil
}
