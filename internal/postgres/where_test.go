package postgres_test

import (
	"testing"

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
