package audit_test

import (
	"context"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/testenv"
)

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
	var last testenv.LastQuery
	pool := testenv.TracedPool(t, url, &last)

	target := "01936f3e-8b2a-7c4d-9e5f-0a1b2c3d4e5f"
	if _, err := audit.NewTrail(pool).List(ctx, audit.Filter{TargetID: &target}); err != nil {
		t.Fatal(err)
	}
	sql, args := last.Last()
	plan := testenv.Explain(t, seed, sql, args)
	scan := plan.Find(func(n *testenv.PlanNode) bool { return n.RelationName == "audit_events" })
	if scan == nil || scan.IndexName != "audit_events_target_idx" || !strings.Contains(scan.IndexCond, "target_id") {
		t.Fatalf("audit_events is read by %+v; want audit_events_target_idx with target_id in its condition\n%s", scan, plan)
	}
}
