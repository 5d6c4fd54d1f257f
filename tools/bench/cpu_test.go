package main

import (
	"testing"
	"time"
)

// The machine's busy time grows by at least what this process burns, and a meter's "other" and
// "steal" shares never go negative.
func TestMachineCPUCountsOwnWork(t *testing.T) {
	m := startCPU(0) // no server: its share reads 0
	before, _ := machineCPU()
	own := ownCPU()
	if before <= 0 {
		t.Fatalf("machineCPU() = %v, want the busy time since boot", before)
	}
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); {
	}
	after, _ := machineCPU()
	burnt, grew := ownCPU()-own, after-before
	if burnt < 200*time.Millisecond {
		t.Fatalf("the busy loop used %v of CPU, want most of 300ms", burnt)
	}
	// /proc/stat ticks every 10 ms per CPU: allow a few ticks of skew.
	if grew < burnt-50*time.Millisecond {
		t.Fatalf("machine busy time grew %v while this process used %v", grew, burnt)
	}
	u := m.cores(0)
	if u.clients < 0.5 || u.other < 0 || u.steal < 0 || u.server != 0 {
		t.Fatalf("cores() = %+v, want clients near 1 core, server 0, other and steal >= 0", u)
	}
}

// Busy time is user, nice, system, irq and softirq; steal stands apart; idle and iowait are
// neither.
func TestProcStatTimes(t *testing.T) {
	//          user nice system idle  iowait irq softirq steal guest guest_nice
	line := "cpu  1000 20   300    90000 4000   5   60      700   0     0"
	busy, steal := procStatTimes(line)
	if want := (1000 + 20 + 300 + 5 + 60) * clockTick; busy != want {
		t.Errorf("busy = %v, want %v", busy, want)
	}
	if want := 700 * clockTick; steal != want {
		t.Errorf("steal = %v, want %v", steal, want)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8", "cpu 1 2 3 4 5 6 7"} {
		if b, s := procStatTimes(bad); b != 0 || s != 0 {
			t.Errorf("procStatTimes(%q) = %v, %v, want 0, 0", bad, b, s)
		}
	}
}
