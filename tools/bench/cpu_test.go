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
	// Burn 300 ms of CPU, not of wall time: on a busy machine (CI runs other tests beside this
	// one) a wall-time loop gets only a share of a core.
	start := time.Now()
	for ownCPU()-own < 300*time.Millisecond {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("a busy loop got %v of CPU in 10s", ownCPU()-own)
		}
		for range 100_000 {
		}
	}
	after, _ := machineCPU()
	burnt, grew := ownCPU()-own, after-before
	// /proc/stat ticks every 10 ms per CPU: allow a few ticks of skew.
	if grew < burnt-50*time.Millisecond {
		t.Fatalf("machine busy time grew %v while this process used %v", grew, burnt)
	}
	u := m.cores(0)
	// This process burnt 300 ms in the elapsed time: its share of a core, however busy the
	// machine, is that ratio.
	if want := burnt.Seconds() / time.Since(start).Seconds(); u.clients < want/2 || u.other < 0 || u.steal < 0 || u.server != 0 {
		t.Fatalf("cores() = %+v, want clients near %.2f, server 0, other and steal >= 0", u, want)
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
