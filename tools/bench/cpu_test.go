package main

import (
	"testing"
	"time"
)

// The machine's busy time grows by at least what this process burns, and a meter's "other"
// share never goes negative.
func TestMachineCPUCountsOwnWork(t *testing.T) {
	m := startCPU(0) // no server: its share reads 0
	before, own := machineCPU(), ownCPU()
	if before <= 0 {
		t.Fatalf("machineCPU() = %v, want the busy time since boot", before)
	}
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); {
	}
	burnt, grew := ownCPU()-own, machineCPU()-before
	if burnt < 200*time.Millisecond {
		t.Fatalf("the busy loop used %v of CPU, want most of 300ms", burnt)
	}
	// /proc/stat ticks every 10 ms per CPU: allow a few ticks of skew.
	if grew < burnt-50*time.Millisecond {
		t.Fatalf("machine busy time grew %v while this process used %v", grew, burnt)
	}
	u := m.cores(0)
	if u.clients < 0.5 || u.other < 0 || u.server != 0 {
		t.Fatalf("cores() = %+v, want clients near 1 core, server 0 and other >= 0", u)
	}
}
