package main

import (
	"slices"
	"strings"
	"testing"
)

// A run records the runtime and hashing settings its server inherited, so that a tuned run is
// never read as one with the defaults.
func TestTuningIsRecorded(t *testing.T) {
	env := []string{"PATH=/bin", "PORTCULLIS_HASH_CONCURRENCY=2", "GOMAXPROCS=2", "HOME=/root", "GOMAXPROCS=3", "GOGC="}
	want := []string{"GOMAXPROCS=3", "GOGC=", "PORTCULLIS_HASH_CONCURRENCY=2"}
	if got := tuningOf(env); !slices.Equal(got, want) {
		t.Fatalf("tuningOf = %q, want %q", got, want)
	}
	if got := tuningOf([]string{"PATH=/bin"}); len(got) != 0 {
		t.Fatalf("tuningOf with none set = %q, want none", got)
	}
	var res results
	table := res.table(options{}, machine{tuning: want})
	if !strings.Contains(table, "The server ran with GOMAXPROCS=3, GOGC=, PORTCULLIS_HASH_CONCURRENCY=2 from the environment") {
		t.Fatalf("the table does not name the tuning:\n%s", table)
	}
	if table = res.table(options{}, machine{}); strings.Contains(table, "from the environment") {
		t.Fatalf("a run with the defaults names a tuning:\n%s", table)
	}
	res.before.gomaxprocs = 3
	if table = res.table(options{}, machine{}); !strings.Contains(table, "The server's GOMAXPROCS: 3.") {
		t.Fatalf("the table does not give the server's GOMAXPROCS:\n%s", table)
	}
}
