// Package ratelimit admits events at a configured rate with the generic cell rate algorithm
// (GCRA). Buckets live in Redis, so every instance of the service shares them; while Redis cannot
// be reached each instance enforces the same limits on its own, in memory, rather than none.
package ratelimit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limit is a rate: at most Count events per Period, admitted smoothly (GCRA), with a burst of
// Count.
type Limit struct {
	// Name names the policy in the RateLimit-Policy header and in the bucket's key, e.g. "ip".
	Name   string
	Count  int
	Period time.Duration
	// Deferred lets an instance admit an event before Redis has recorded it, when Redis said
	// recently that the bucket had ample room (see credit.go): no wait for Redis, at the price
	// of a bounded overdraft when other instances spent the bucket meanwhile. For limits against
	// floods (every request per IP), never for budgets that guard secrets (logins, passwords).
	Deferred bool
}

// ParseLimit parses a limit written as count/period, such as "300/1m", "10/15m" or "60/1s";
// period is read by time.ParseDuration. The count must be positive and the period long enough to
// give each event at least a microsecond.
func ParseLimit(name, s string) (Limit, error) {
	count, period, ok := strings.Cut(s, "/")
	if !ok {
		return Limit{}, fmt.Errorf("rate limit %s %q: want count/period, such as 300/1m", name, s)
	}
	n, err := strconv.Atoi(strings.TrimSpace(count))
	if err != nil || n <= 0 {
		return Limit{}, fmt.Errorf("rate limit %s %q: count must be a positive integer", name, s)
	}
	d, err := time.ParseDuration(strings.TrimSpace(period))
	if err != nil || d <= 0 {
		return Limit{}, fmt.Errorf("rate limit %s %q: period must be a positive duration such as 1m", name, s)
	}
	lim := Limit{Name: name, Count: n, Period: d}
	if _, ok := paramsOf(lim); !ok {
		return Limit{}, fmt.Errorf("rate limit %s %q: more than one event per microsecond", name, s)
	}
	return lim, nil
}

// Result is the outcome of one check.
type Result struct {
	// Allowed reports whether the event is admitted (for Peek: whether an Allow now would be).
	Allowed bool
	Limit   Limit
	// Remaining is how many more events would be admitted right now; never negative.
	Remaining int
	// Reset is the time until the bucket is full again (the RateLimit "t" parameter).
	Reset time.Duration
	// RetryAfter is, when !Allowed, how long to wait before an event is admitted; it is then
	// positive. It is zero when Allowed.
	RetryAfter time.Duration
	// local is set when the in-process limiter decided (Redis could not be reached), so
	// Refund gives the event back there.
	local bool
}

// Local reports whether the in-process limiter decided, Redis being out of reach: the budget
// was this instance's own, not the one every instance shares.
func (r Result) Local() bool { return r.local }

// Replay decides at now, as Peek would, for a bucket that admitted events at the times in at
// (oldest first) and no others: lim's budget re-derived from a durable record of its events (the
// failed logins audited in PostgreSQL) when Redis, which keeps it, cannot be reached. Events
// older than two periods change nothing: an admitted event's TAT is at most a period after it.
func Replay(lim Limit, at []time.Time, now time.Time) Result {
	p, ok := paramsOf(lim)
	if !ok {
		return Result{Limit: lim, RetryAfter: max(lim.Period, time.Second)}
	}
	var tat int64
	for _, t := range at {
		if _, store := gcra(tat, t.UnixMicro(), p, true); store != 0 {
			tat = store
		}
	}
	d, _ := gcra(tat, now.UnixMicro(), p, false)
	return d.result(lim)
}

// params are a Limit in the algorithm's integer microseconds: emission interval t and burst
// tolerance tau.
type params struct{ t, tau int64 }

// paramsOf converts lim. tau is Count emission intervals rather than Period itself: when Period
// does not divide evenly into microseconds per event, this keeps the burst exactly Count (the
// two differ by less than Count microseconds).
func paramsOf(lim Limit) (params, bool) {
	if lim.Count <= 0 || lim.Period <= 0 {
		return params{}, false
	}
	t := lim.Period.Microseconds() / int64(lim.Count)
	if t < 1 {
		return params{}, false
	}
	return params{t: t, tau: t * int64(lim.Count)}, true
}

// decision is the algorithm's answer, in microseconds.
type decision struct {
	allowed                 bool
	remaining, reset, retry int64
}

func (d decision) result(lim Limit) Result {
	return Result{
		Allowed:    d.allowed,
		Limit:      lim,
		Remaining:  int(max(d.remaining, 0)),
		Reset:      time.Duration(max(d.reset, 0)) * time.Microsecond,
		RetryAfter: time.Duration(max(d.retry, 0)) * time.Microsecond,
	}
}

// gcra decides at now for a bucket whose theoretical arrival time is tat (zero or past for an
// empty bucket). When the event is admitted and record is set it returns the TAT to store; else
// it returns zero. gcraLua is the same algorithm for Redis: change both together.
func gcra(tat, now int64, p params, record bool) (decision, int64) {
	tat = max(tat, now)
	next := tat + p.t
	d := decision{allowed: next-now <= p.tau}
	var store int64
	switch {
	case d.allowed && record:
		tat, store = next, next
	case !d.allowed:
		d.retry = next - p.tau - now
	}
	d.remaining = (p.tau - (tat - now)) / p.t // negative only if the clock went back; result clamps it
	d.reset = tat - now
	return d, store
}
