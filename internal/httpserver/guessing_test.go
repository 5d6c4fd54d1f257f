package httpserver_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/config"
)

// metric returns the value of an unlabelled gauge or the sample count of a histogram of the
// instance's metrics, or the sum of a counter's series whose labels include every pair given.
func (in *instance) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	families, err := in.app.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			switch {
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A guess whose client hangs up while its password is being hashed has been tested all the
// same: it must keep its failure slot and be audited. Before the fix, the audit insert of the
// failure ran on the cancelled request context and failed, auth.Login read that as "no
// password tested" (ctx.Err() != nil) and refunded the slot: an attacker who closes each
// connection mid-hash had every guess tested, none counted and none audited, so the
// per-account lockout bounded nothing (and a right password among them resets the budget, which
// two ordinary failures afterwards reveal: an oracle over any number of guesses).
func TestAbandonedGuessesKeepTheirFailureSlot(t *testing.T) {
	in := start(t, func(c *config.Config) {
		c.Limits.LoginAccountFailures = "3/15m"
		// A hash slow enough for the client to hang up while it runs.
		c.Password = config.Password{MemoryKiB: 16 << 10, Iterations: 8, Parallelism: 1, Concurrency: 2, Queue: 4}
	})
	a := in.register(t)
	logins := func() float64 { return in.metric(t, "portcullis_http_requests_total", "route", "/api/v1/auth/login") }

	// abandon sends a guess and hangs up while it is hashed; it reports whether it was tested
	// (a locked account answers 429 at once, before any hashing).
	abandon := func(guess string) (tested bool) {
		before := logins()
		hashed := in.metric(t, "portcullis_password_hash_duration_seconds")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		body := fmt.Sprintf(`{"email":%q,"password":%q}`, a.User.Email, guess)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.url+"/api/v1/auth/login", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		done := make(chan struct{})
		go func() {
			defer close(done)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		waitUntil(t, "the guess is hashed or answered", func() bool {
			select {
			case <-done:
				return true
			default:
				return in.metric(t, "portcullis_password_hashes_running") == 1
			}
		})
		cancel() // the client hangs up mid-hash
		<-done
		waitUntil(t, "the server finished the login", func() bool { return logins() == before+1 })
		return in.metric(t, "portcullis_password_hash_duration_seconds") > hashed
	}
	// Five wrong guesses, then the right password: once three are tested the account is locked
	// and the right one must not be tested (before the fix it was, and reset the budget).
	guesses := []string{"abandoned guess 0", "abandoned guess 1", "abandoned guess 2", "abandoned guess 3", "abandoned guess 4", a.Password}
	tested := 0
	for _, g := range guesses {
		if abandon(g) {
			tested++
		}
	}
	if tested != 3 {
		t.Errorf("%d of %d abandoned guesses tested against a budget of 3", tested, len(guesses))
	}
	// The budget is spent: the account is locked.
	r := in.loginWith(t, a.User.Email, "one more ordinary guess")
	if r.StatusCode() != http.StatusTooManyRequests {
		t.Errorf("after %d abandoned guesses (%d tested) against a budget of 3, an ordinary guess got %d, want 429 account-locked", len(guesses), tested, r.StatusCode())
	}
	var failed int
	if err := in.app.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events
		WHERE action = 'user.login' AND outcome = 'failure' AND target_id = $1`, a.User.Id.String()).Scan(&failed); err != nil {
		t.Fatal(err)
	}
	if failed != tested {
		t.Errorf("audited %d failed logins of the %d abandoned guesses tested", failed, tested)
	}
}

// After the argon2 cost is raised (README: "raise them at any time"), an account whose hash was
// made at the old cost and that has not signed in since checks a wrong password in the old
// hash's time, while an unknown account costs a dummy hash at the new cost. Unpadded, the two
// are told apart by timing (SECURITY.md: "unknown account and wrong password: same status,
// body and hashing work"), and dormant accounts are exactly the ones not yet upgraded: the
// wrong password is padded to the current cost's time.
func TestDormantAccountsAfterACostRaiseAreNotToldApartByTiming(t *testing.T) {
	old := start(t) // argon2 at 64 KiB, t=1
	a := old.register(t)
	cfg := old.cfg
	cfg.Password = config.Password{MemoryKiB: 32 << 10, Iterations: 3, Parallelism: 1, Concurrency: 2, Queue: 4}
	raised := startWith(t, cfg)
	// The median of five each: padding that misses in either direction, on most answers, shows.
	// The two are asked in turn, so that the machine's speed, which moves from one second to the
	// next under a loaded test run, weighs on both alike.
	wrong := func(email string, i int) time.Duration {
		begin := time.Now()
		r, err := raised.client.LoginWithResponse(context.Background(), loginBody(email, "wrong password "+fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, r, r.Body, http.StatusUnauthorized, "invalid-credentials")
		return time.Since(begin)
	}
	nobody := fmt.Sprintf("nobody%d@example.com", time.Now().UnixNano())
	var dormant, absent []time.Duration
	for i := range 5 {
		// The dormant account first, on a fresh instance: its padding must not come from the
		// process's first (cold) hash, which takes two to three times a warm one. (The unknown
		// account's hashes feed the average too, so that is pinned by
		// users.TestHashClockLeavesColdHashesOut; asked five times in a row, the dormant account
		// was padded to its one timed hash, and one slow second failed this test.)
		dormant = append(dormant, wrong(string(a.User.Email), i))
		absent = append(absent, wrong(nobody, i))
	}
	median := func(took []time.Duration) time.Duration { slices.Sort(took); return took[len(took)/2] }
	known, unknown := median(dormant), median(absent)
	t.Logf("wrong password of a dormant account: %v; unknown account: %v", known, unknown)
	if 3*known < 2*unknown || 2*known > 3*unknown { // a fast dormant account leaks, and so does a slow one
		t.Errorf("a dormant account answers a wrong password in %v, an unknown one in %v: existence shows in the timing", known, unknown)
	}
}

func loginBody(email, password string) api.LoginJSONRequestBody {
	e := api.Email(email)
	return api.LoginJSONRequestBody{Email: &e, Password: password}
}

// A guess whose client hangs up while it still waits for a hashing slot has tested no password:
// it gives its failure slot back, so an owner's budget is not spent by requests that a busy
// server never got to (the other half of TestAbandonedGuessesKeepTheirFailureSlot).
func TestGuessAbandonedBeforeItsHashKeepsTheBudget(t *testing.T) {
	in := start(t, func(c *config.Config) {
		c.Limits.LoginAccountFailures = "2/15m"
		c.Password = config.Password{MemoryKiB: 16 << 10, Iterations: 8, Parallelism: 1, Concurrency: 1, Queue: 1}
	})
	busy, owner := in.register(t), in.register(t)
	// Another account's login holds the only hashing slot.
	held := make(chan int, 1)
	go func() { held <- in.loginWith(t, busy.User.Email, busy.Password).StatusCode() }()
	waitUntil(t, "the other login hashes", func() bool { return in.metric(t, "portcullis_password_hashes_running") == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body := fmt.Sprintf(`{"email":%q,"password":"a guess that waits"}`, owner.User.Email)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.url+"/api/v1/auth/login", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	logins := in.metric(t, "portcullis_http_requests_total", "route", "/api/v1/auth/login")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waitUntil(t, "the guess waits for the slot", func() bool { return in.metric(t, "portcullis_password_hashes_queued") == 1 })
	cancel()
	<-done
	if got := <-held; got != http.StatusOK {
		t.Fatalf("the other account's login: %d", got)
	}
	waitUntil(t, "the server ends both logins", func() bool {
		return in.metric(t, "portcullis_http_requests_total", "route", "/api/v1/auth/login") == logins+2
	})
	// A client that left is not the server's failure: no 5xx to count or alert on.
	if n := in.metric(t, "portcullis_http_requests_total", "route", "/api/v1/auth/login", "status_class", "5xx"); n != 0 {
		t.Errorf("%v login requests counted as 5xx; want none (the abandoned guess is the client's doing)", n)
	}
	// The whole budget is left: two failures, then the lock.
	for i, want := range []int{http.StatusUnauthorized, http.StatusUnauthorized, http.StatusTooManyRequests} {
		if got := in.loginWith(t, owner.User.Email, "an ordinary wrong guess").StatusCode(); got != want {
			t.Fatalf("guess %d after the abandoned one: %d, want %d (an untested guess kept its slot)", i+1, got, want)
		}
	}
}
