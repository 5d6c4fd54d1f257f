package postgres_test

import (
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/postgres"
)

func TestWhereNumbersPlaceholdersInOrder(t *testing.T) {
	var w postgres.Where
	w.Add("(created_at, id) < ($?::text::timestamptz, $?::uuid)", "t", "id")
	w.Add("role = $?", "admin")
	limit := w.Arg(51)
	if got, want := w.String(), "(created_at, id) < ($1::text::timestamptz, $2::uuid) AND role = $3"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	if limit != "$4" || len(w.Args()) != 4 {
		t.Fatalf("limit placeholder %s with %d args", limit, len(w.Args()))
	}
	var empty postgres.Where
	if empty.String() != "true" {
		t.Fatal("no conditions must read true")
	}
}

func TestQueryNameNamesSpansBySqlcName(t *testing.T) {
	for stmt, want := range map[string]string{
		"-- name: GetUserByID :one\nSELECT * FROM users": "GetUserByID",
		"SELECT id FROM users WHERE true":                "SELECT",
		"  with x as (select 1) select * from x":         "WITH",
		"":                                               "query",
	} {
		if got := postgres.QueryName(stmt); got != want {
			t.Errorf("QueryName(%q) = %q, want %q", stmt, got, want)
		}
	}
}

func TestBoundIsTheNextWholeMicrosecond(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	for _, c := range []struct {
		in, want time.Time
	}{
		{base, base},
		{base.Add(1), base.Add(time.Microsecond)},
		{base.Add(999), base.Add(time.Microsecond)},
		{base.Add(-1), base},
		{time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC)},
		{time.Date(0, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(0, 1, 1, 0, 0, 0, 1000, time.UTC)}, // before Go's zero time
		{time.Date(2026, 1, 2, 3, 4, 5, 1, time.FixedZone("", -5*3600)), time.Date(2026, 1, 2, 8, 4, 5, 1000, time.UTC)},
	} {
		if got := postgres.Bound(c.in); !got.Equal(c.want) {
			t.Errorf("Bound(%s) = %s, want %s", c.in.Format(time.RFC3339Nano), got.Format(time.RFC3339Nano), c.want.Format(time.RFC3339Nano))
		}
	}
}
