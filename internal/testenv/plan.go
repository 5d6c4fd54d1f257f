package testenv

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// LastQuery remembers the last statement a pool ran, with its arguments, so a test can ask
// PostgreSQL how it plans exactly what the code sent (Explain).
type LastQuery struct {
	mu   sync.Mutex
	sql  string
	args []any
}

// TraceQueryStart implements pgx.QueryTracer.
func (l *LastQuery) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
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

// TraceQueryEnd implements pgx.QueryTracer.
func (l *LastQuery) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Last returns the last statement and its arguments.
func (l *LastQuery) Last() (string, []any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sql, l.args
}

// TracedPool opens a pool on the database at url whose statements l records, closed when t ends.
func TracedPool(t testing.TB, url string, l *LastQuery) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Tracer = l
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// PlanNode is a node of EXPLAIN (FORMAT JSON)'s plan.
type PlanNode struct {
	NodeType     string     `json:"Node Type"`
	RelationName string     `json:"Relation Name"`
	IndexName    string     `json:"Index Name"`
	IndexCond    string     `json:"Index Cond"`
	Plans        []PlanNode `json:"Plans"`
}

// Explain returns PostgreSQL's plan of sql with args, planned with the values as the code's
// QueryExecModeExec statements are.
func Explain(t testing.TB, pool *pgxpool.Pool, sql string, args []any) *PlanNode {
	t.Helper()
	var plan []byte
	if err := pool.QueryRow(context.Background(), "EXPLAIN (FORMAT JSON) "+sql, append([]any{pgx.QueryExecModeExec}, args...)...).Scan(&plan); err != nil {
		t.Fatal(err)
	}
	var doc []struct{ Plan PlanNode }
	if err := json.Unmarshal(plan, &doc); err != nil || len(doc) != 1 {
		t.Fatalf("EXPLAIN: %v\n%s", err, plan)
	}
	return &doc[0].Plan
}

// Find returns the first node, depth first, for which match holds, or nil.
func (n *PlanNode) Find(match func(*PlanNode) bool) *PlanNode {
	if match(n) {
		return n
	}
	for i := range n.Plans {
		if found := n.Plans[i].Find(match); found != nil {
			return found
		}
	}
	return nil
}

// String is the plan as JSON, for failure messages.
func (n *PlanNode) String() string {
	b, _ := json.MarshalIndent(n, "", "  ")
	return string(b)
}
