package main

import (
	"math"
	"testing"
)

// The interval is Student's: mean ± t(0.975, n-1)·s/√n, checked against values worked by hand.
func TestConfidence95(t *testing.T) {
	for _, c := range []struct {
		xs     []float64
		lo, hi float64
	}{
		// mean 0.9, s = √0.005 = 0.07071, n = 2: half = 12.706 · 0.07071/√2 = 0.63530
		{[]float64{0.85, 0.95}, 0.9 - 0.63530, 0.9 + 0.63530},
		// mean 0.9, s = √(0.02/3) = 0.08165, n = 4: half = 3.182 · 0.08165/2 = 0.12990
		{[]float64{0.8, 0.9, 0.9, 1.0}, 0.9 - 0.12990, 0.9 + 0.12990},
		// no spread, no interval
		{[]float64{0.91, 0.91, 0.91}, 0.91, 0.91},
	} {
		lo, hi := confidence95(c.xs)
		if math.Abs(lo-c.lo) > 1e-4 || math.Abs(hi-c.hi) > 1e-4 {
			t.Errorf("confidence95(%v) = %.5f-%.5f, want %.5f-%.5f", c.xs, lo, hi, c.lo, c.hi)
		}
	}
}

// The quantile falls toward the normal's 1.96 as the degrees of freedom grow.
func TestStudentT975(t *testing.T) {
	if got := studentT975(7); got != 2.365 {
		t.Errorf("studentT975(7) = %v, want 2.365", got)
	}
	prev := math.Inf(1)
	for df := 1; df <= 200; df++ {
		q := studentT975(df)
		if q > prev || q < 1.96 {
			t.Fatalf("studentT975(%d) = %v after %v: want non-increasing and >= 1.96", df, q, prev)
		}
		prev = q
	}
}

// The limiter's shares come from the decisions made between two scrapes, for the one limit,
// largest first.
func TestDecisionShares(t *testing.T) {
	series := func(by, limit string) string {
		return `portcullis_ratelimit_decisions_total{allowed="true",decided_by="` + by + `",limit="` + limit + `"}`
	}
	before := map[string]float64{series("credit", "ip"): 100, series("redis", "ip"): 50}
	after := map[string]float64{
		series("credit", "ip"): 400, series("redis", "ip"): 150, series("lease", "ip"): 0,
		series("redis", "login-ip"): 1000, "go_goroutines": 20,
		`portcullis_ratelimit_decisions_total{allowed="false",decided_by="redis",limit="ip"}`: 100,
	}
	if got, want := decisionShares(before, after, "ip"), "credit 60.0%, redis 40.0%"; got != want {
		t.Fatalf("decisionShares = %q, want %q", got, want)
	}
	if got := decisionShares(after, after, "ip"); got != "" {
		t.Fatalf("decisionShares with no decisions = %q, want empty", got)
	}
}
