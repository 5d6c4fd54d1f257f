package main

import (
	"testing"
	"time"
)

// Rounds of the login run are merged into one row: counts, latencies and time add up.
func TestLoopStatsMerge(t *testing.T) {
	ms := time.Millisecond
	var all loopStats
	all.merge(loopStats{ok: 2, shed: 1, okLat: []time.Duration{ms, 2 * ms}, shedLat: []time.Duration{3 * ms}, elapsed: 10 * time.Second})
	all.merge(loopStats{ok: 1, other: 4, okLat: []time.Duration{5 * ms}, elapsed: 10 * time.Second})
	if all.ok != 3 || all.shed != 1 || all.other != 4 || all.elapsed != 20*time.Second {
		t.Fatalf("merged counts %+v", all)
	}
	if len(all.okLat) != 3 || all.okLat[2] != 5*ms || len(all.shedLat) != 1 {
		t.Fatalf("merged latencies ok %v shed %v", all.okLat, all.shedLat)
	}
	if r := loopRow("login", "", 1, all, all.okLat); r.rps != 0.15 {
		t.Fatalf("req/s of the merged rounds = %v, want 3 ok / 20 s", r.rps)
	}
}

func TestPlural(t *testing.T) {
	for n, want := range map[int]string{1: "1 round", 3: "3 rounds"} {
		if got := plural(n, "round"); got != want {
			t.Errorf("plural(%d) = %q, want %q", n, got, want)
		}
	}
}
