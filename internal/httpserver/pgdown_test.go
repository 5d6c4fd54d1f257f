package httpserver_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"
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
