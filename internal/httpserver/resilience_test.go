package httpserver_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/testenv"
)

// privateRedis is a redis-server of the test's own, which it may pause, unlike the shared one.
type privateRedis struct {
	url string
	pid int
}

// startPrivateRedis runs a redis-server without persistence on a free port until t ends. It
// skips t where redis-server is not installed.
func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	pidfile := filepath.Join(t.TempDir(), "redis.pid")
	out, err := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--daemonize", "yes", "--pidfile", pidfile, "--dir", t.TempDir()).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-server: %v: %s", err, out)
	}
	var pid int
	for deadline := time.Now().Add(5 * time.Second); pid == 0; time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(pidfile); err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		if pid == 0 && time.Now().After(deadline) {
			t.Fatal("redis-server wrote no pid file")
		}
	}
	t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGCONT)
		_ = syscall.Kill(pid, syscall.SIGTERM)
		for deadline := time.Now().Add(3 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				return
			}
		}
	})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("redis-server does not listen")
		}
	}
	return &privateRedis{url: "redis://127.0.0.1:" + port + "/0", pid: pid}
}

// pause stops the server without closing its connections (SIGSTOP): a Redis that hangs, or a
// network that drops packets, until resume.
func (r *privateRedis) pause(t *testing.T) {
	if err := syscall.Kill(r.pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}

func (r *privateRedis) resume(t *testing.T) {
	if err := syscall.Kill(r.pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// A Redis that stops answering without closing its connections costs an instance one
// PORTCULLIS_REDIS_TIMEOUT, not one per Redis call: after a call times out, the next ones go
// straight to PostgreSQL (a request makes up to four: session and user, read and fill). And
// from then on the instance no longer answers session checks from its memory, which stopped
// hearing of invalidations: a session revoked meanwhile is refused at once.
func TestUnresponsiveRedisCostsOneTimeoutAndNoStaleSession(t *testing.T) {
	rd := startPrivateRedis(t)
	const timeout = 300 * time.Millisecond
	a := start(t, func(c *config.Config) { c.Redis.URL = rd.url; c.Redis.Timeout = timeout })
	b := startWith(t, a.cfg)
	acct := a.register(t)
	kept, doomed, fresh := a.login(t, acct), a.login(t, acct), a.login(t, acct)
	for _, p := range []string{kept.AccessToken, doomed.AccessToken, kept.AccessToken, doomed.AccessToken} {
		if got := a.me(t, p); got != http.StatusOK { // the second read keeps it in A's memory
			t.Fatalf("me: %d", got)
		}
	}

	rd.pause(t)
	defer rd.resume(t)
	// Revoked on B, which cannot tell Redis either: it retries until Redis answers.
	out, err := b.client.LogoutWithResponse(context.Background(), bearer(doomed.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, out, out.Body, http.StatusNoContent)
	// bound is a Redis call's longest wait (1.25 timeouts) and room for PostgreSQL and a loaded
	// machine (the race detector, packages tested in parallel), under the two timeouts at least
	// that a request waiting on each of its Redis calls costs.
	const bound = 7 * timeout / 4
	began := time.Now()
	if got := a.me(t, fresh.AccessToken); got != http.StatusOK {
		t.Fatalf("me of a session not in memory while Redis hangs: %d, want 200 from PostgreSQL", got)
	}
	if took := time.Since(began); took > bound {
		t.Errorf("me while Redis hangs took %v: more than one Redis timeout (%v)", took, timeout)
	}
	if got := a.me(t, doomed.AccessToken); got != http.StatusUnauthorized {
		t.Errorf("a session revoked while Redis hangs: %d, want 401 (answered from memory?)", got)
	}
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); {
		began := time.Now()
		if got := a.me(t, kept.AccessToken); got != http.StatusOK {
			t.Fatalf("me while Redis hangs: %d", got)
		}
		if took := time.Since(began); took > bound {
			t.Errorf("me %v into the outage took %v: more than one Redis timeout (%v)", time.Since(end.Add(-1500*time.Millisecond)).Round(time.Millisecond), took, timeout)
		}
	}

	rd.resume(t)
	soonWithin(t, 5*time.Second, "answers once Redis is back", func() bool {
		return a.me(t, kept.AccessToken) == http.StatusOK && a.me(t, doomed.AccessToken) == http.StatusUnauthorized
	})
}

func soonWithin(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s: not within %v", what, d)
		}
	}
}

// PostgreSQL ending the service's connections (a restart, a failover, pg_terminate_backend)
// is not a bug: a request that meets a dropped connection gets 503 database-unavailable with
// Retry-After, not 500 internal, and the pool's fresh connections serve the next ones.
func TestDroppedPostgresConnectionIs503(t *testing.T) {
	in := start(t)
	acct := in.register(t)
	pair := in.login(t, acct)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, testenv.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var db string
	if err := in.app.Pool.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	var killed int
	if err := admin.QueryRow(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1", db).Scan(&killed); err != nil || killed == 0 {
		t.Fatalf("terminated %d backends: %v", killed, err)
	}
	var got []int
	for range 8 { // the pool holds at most a few dead connections
		r, err := in.client.ListMySessionsWithResponse(ctx, bearer(pair.AccessToken))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.StatusCode())
		if r.StatusCode() == http.StatusOK {
			break
		}
		wantProblem(t, r, r.Body, http.StatusServiceUnavailable, "unavailable")
		if r.HTTPResponse.Header.Get("Retry-After") != "1" {
			t.Errorf("Retry-After = %q, want 1", r.HTTPResponse.Header.Get("Retry-After"))
		}
	}
	if got[0] == http.StatusOK || got[len(got)-1] != http.StatusOK {
		t.Fatalf("statuses after the backends were terminated = %v, want 503s then 200", got)
	}
}

// A cache fill held up on its way to Redis (one instance's link stalls, then heals, its kernel
// delivering what it had sent) lands only while what it read can still be trusted, by Redis's
// clock: here B reads a moderator's session before an admin on A demotes the moderator, and B's
// fill reaches Redis 6 s later, after the demotion's 5 s stale marker expired. It used to land
// and put the old role back on every instance for the cache TTL (found in review).
func TestLateFillDoesNotUndoADemotion(t *testing.T) {
	a := start(t)
	cfgB := a.cfg
	var proxy *testenv.Proxy
	cfgB.Redis.URL, proxy = testenv.BehindProxy(t, a.cfg.Redis.URL)
	b := startWith(t, cfgB)
	_, admin := a.createWithRole(t, "admin")
	mod, modPair := a.createWithRole(t, "moderator")
	ctx := context.Background()
	list := func(in *instance) int {
		t.Helper()
		resp, _ := in.raw(t, "GET", "/api/v1/admin/users?limit=1", "", nil, "Authorization", "Bearer "+modPair.AccessToken)
		return resp.StatusCode
	}
	// B reads the moderator's session from PostgreSQL (a miss) and sends its fill, which B's
	// stalled link holds.
	proxy.HoldFrom("|moderator|1|0|")
	if got := list(b); got != http.StatusOK {
		t.Fatalf("moderator lists users on B: %d", got)
	}
	r, err := a.client.AdminUpdateUserWithResponse(ctx, mod.User.Id, nil, api.AdminUpdateUserJSONRequestBody{Role: new(api.RoleUser)}, bearer(admin.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusOK)
	if got := list(a); got != http.StatusForbidden {
		t.Fatalf("demoted moderator lists users on A: %d, want 403", got)
	}
	// The demotion's marker expires; B's link heals and delivers the fill.
	time.Sleep(6 * time.Second)
	proxy.Resume()
	time.Sleep(300 * time.Millisecond)
	for i := range 3 {
		if got := list(a); got != http.StatusForbidden {
			t.Fatalf("demoted moderator lists users on A, request %d after B's late fill: %d, want 403 (the old role was put back)", i+1, got)
		}
	}
}
