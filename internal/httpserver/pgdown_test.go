package httpserver_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/testenv"
)

// PostgreSQL unreachable mid-flight: a request that needs it is a 503 "unavailable" with
// Retry-After, which clients and load balancers retry, not a 500 that reads as a bug.
func TestPostgresOutageIsUnavailable(t *testing.T) {
	a, proxy := startBehindPostgresProxy(t)
	_, admin := a.createWithRole(t, "admin")
	auth := "Bearer " + admin.AccessToken
	if resp, body := a.raw(t, "GET", "/api/v1/admin/users", "", nil, "Authorization", auth); resp.StatusCode != http.StatusOK {
		t.Fatalf("list before the outage: %d %s", resp.StatusCode, body)
	}
	proxy.Cut()
	resp, body := a.raw(t, "GET", "/api/v1/admin/users", "", nil, "Authorization", auth)
	wantProblem(t, rawStatus{resp}, body, http.StatusServiceUnavailable, "unavailable")
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n <= 0 {
		t.Errorf("Retry-After = %q", resp.Header.Get("Retry-After"))
	}
	proxy.Restore()
	// Pooled connections the outage broke each fail once more, as 503s: a retry gets through.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, body := a.raw(t, "GET", "/api/v1/admin/users", "", nil, "Authorization", auth)
		if resp.StatusCode == http.StatusOK {
			break
		}
		wantProblem(t, rawStatus{resp}, body, http.StatusServiceUnavailable, "unavailable")
		if time.Now().After(deadline) {
			t.Fatal("still unavailable 10s after PostgreSQL came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// behindStallingPostgres starts an instance whose PostgreSQL is reached through a proxy the test
// can stall, with a request timeout of a second.
func behindStallingPostgres(t *testing.T) (*instance, *testenv.Proxy) {
	t.Helper()
	cfg := testenv.Config(t)
	cfg.HTTP.RequestTimeout = time.Second
	var proxy *testenv.Proxy
	cfg.Postgres.URL, proxy = testenv.BehindProxy(t, cfg.Postgres.URL)
	in := startWith(t, cfg)
	t.Cleanup(proxy.Resume) // before the service closes its pool
	return in, proxy
}

// PostgreSQL that stops answering (a partition that drops packets, a hung server) rather than
// refusing: a request waiting on one of the pool's open connections is answered 503 unavailable
// with Retry-After once PORTCULLIS_HTTP_REQUEST_TIMEOUT has passed, and gives its connection up.
// Without the deadline it was held for as long as the client waited (20 s here: found in review).
func TestPostgresThatStopsAnsweringIsUnavailableWithinTheRequestTimeout(t *testing.T) {
	in, proxy := behindStallingPostgres(t)
	acct := in.register(t)
	pair := in.login(t, acct)
	if resp, body := in.raw(t, "GET", "/api/v1/users/me/sessions", "", nil, "Authorization", "Bearer "+pair.AccessToken); resp.StatusCode != http.StatusOK {
		t.Fatalf("sessions before the stall: %d %s", resp.StatusCode, body)
	}
	proxy.Stall()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", in.url+"/api/v1/users/me/sessions", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+pair.AccessToken)
	began := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /users/me/sessions while PostgreSQL stops answering: no answer after %v (%v), want 503 unavailable with Retry-After",
			time.Since(began).Round(time.Millisecond), err)
	}
	defer resp.Body.Close()
	took := time.Since(began)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || took > 5*time.Second {
		t.Fatalf("status %d Retry-After %q after %v, want 503 with Retry-After after about the request timeout", resp.StatusCode, resp.Header.Get("Retry-After"), took)
	}
}

// A failed login's audit event is written even when its client has gone (the password was
// tested), so it does not end with the request; but it is bounded too: with PostgreSQL stalled
// as the event is sent, the login answers 503 within a few seconds instead of holding the
// request, and a pool connection, for as long as the network stays silent.
func TestFailedLoginsAuditWaitsBoundedForAStalledPostgres(t *testing.T) {
	in, proxy := behindStallingPostgres(t)
	acct := in.register(t)
	proxy.HoldFrom("wrong_password")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	email := acct.User.Email
	began := time.Now()
	r, err := in.client.LoginWithResponse(ctx, api.LoginJSONRequestBody{Email: &email, Password: "not the password at all"})
	if err != nil {
		t.Fatalf("a failed login while PostgreSQL stalls on its audit event: no answer after %v (%v)", time.Since(began).Round(time.Millisecond), err)
	}
	wantProblem(t, r, r.Body, http.StatusServiceUnavailable, "unavailable")
	if took := time.Since(began); took > 10*time.Second {
		t.Fatalf("answered after %v", took)
	}
}
