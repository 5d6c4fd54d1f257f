package httpserver_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/oapi-codegen/nullable"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/httpserver"
	"github.com/portcullis/portcullis/internal/testenv"
)

func TestRateLimitAnswers429WithHeaders(t *testing.T) {
	in := start(t, func(c *config.Config) { c.Limits.LoginIP = "3/1m" })
	a := in.register(t)
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		r, err := in.client.LoginWithResponse(ctx, api.LoginJSONRequestBody{Email: &a.User.Email, Password: a.Password})
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, r, r.Body, http.StatusOK)
		h := r.HTTPResponse.Header
		if !strings.Contains(h.Get("RateLimit-Policy"), `"login-ip";q=3;w=60`) || !strings.Contains(h.Get("RateLimit-Policy"), `"ip";q=100000`) {
			t.Fatalf("RateLimit-Policy = %q; all: %v", h.Get("RateLimit-Policy"), h)
		}
		if want := `"login-ip";r=` + strconv.Itoa(3-i); !strings.HasPrefix(h.Get("RateLimit"), want) {
			t.Fatalf("RateLimit = %q, want prefix %q", h.Get("RateLimit"), want)
		}
	}
	r, err := in.client.LoginWithResponse(ctx, api.LoginJSONRequestBody{Email: &a.User.Email, Password: a.Password})
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, r, r.Body, http.StatusTooManyRequests, "rate-limited")
	if s, err := strconv.Atoi(r.HTTPResponse.Header.Get("Retry-After")); err != nil || s < 1 || s > 20 {
		t.Fatalf("Retry-After = %q", r.HTTPResponse.Header.Get("Retry-After"))
	}
	// Other routes keep their own budget.
	if h, err := in.client.GetJWKSWithResponse(ctx); err != nil || h.StatusCode() != http.StatusOK {
		t.Fatalf("jwks while login is limited: %v %v", h.StatusCode(), err)
	}
}

// A client cannot mint itself fresh buckets by claiming another address.
func TestSpoofedForwardingHeadersGetNoNewBucket(t *testing.T) {
	in := start(t, func(c *config.Config) { c.Limits.IP = "5/1m" })
	spoofs := []string{"X-Forwarded-For", "X-Real-IP", "Forwarded", "True-Client-IP", "CF-Connecting-IP"}
	limited := 0
	for i := 0; i < 10; i++ {
		name := spoofs[i%len(spoofs)]
		value := "203.0.113." + strconv.Itoa(i+1)
		if name == "Forwarded" {
			value = "for=" + value
		}
		resp, _ := in.raw(t, "GET", "/.well-known/jwks.json", "", nil, name, value)
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != 5 {
		t.Fatalf("%d of 10 spoofed requests were limited, want 5: the headers bought new buckets", limited)
	}
}

// behindTrustedProxy starts an instance that believes X-Forwarded-For from loopback and allows
// 2 requests a minute per client, and returns a request from the client the header names, by
// its status.
func behindTrustedProxy(t *testing.T) func(xff string) int {
	t.Helper()
	in := start(t, func(c *config.Config) {
		c.HTTP.TrustedProxies = []string{"127.0.0.0/8"}
		c.Limits.IP = "2/1m"
	})
	return func(xff string) int {
		resp, _ := in.raw(t, "GET", "/.well-known/jwks.json", "", nil, "X-Forwarded-For", xff)
		return resp.StatusCode
	}
}

// Behind a configured proxy the forwarded address is believed, and only then.
func TestTrustedProxyForwardedAddress(t *testing.T) {
	from := behindTrustedProxy(t)
	for _, client := range []string{"198.51.100.1", "198.51.100.2"} {
		got := []int{from(client), from(client), from(client)}
		if got[0] != 200 || got[1] != 200 || got[2] != 429 {
			t.Fatalf("client %s behind the trusted proxy: %v, want [200 200 429]", client, got)
		}
	}
}

// Some proxies (Azure Application Gateway among them) write the client's port into
// X-Forwarded-For. Such an entry is still the client: read without its port, not dropped for
// the proxy's own address, which would put every client behind the proxy in one bucket.
func TestForwardedAddressWithPort(t *testing.T) {
	from := behindTrustedProxy(t)
	for _, client := range [][]string{
		{"198.51.100.7:50123", "198.51.100.7:50124", "198.51.100.7"},
		{"[2001:db8:7::1]:443", "2001:db8:7::2", "[2001:db8:7::3]:8443"},
		{"192.0.2.1, 198.51.100.8:1025", "198.51.100.8:2000", "198.51.100.8"},
	} {
		got := []int{from(client[0]), from(client[1]), from(client[2])}
		if got[0] != 200 || got[1] != 200 || got[2] != 429 {
			t.Fatalf("one client behind the proxy, written %q: %v, want [200 200 429]", client, got)
		}
	}
}

// An IPv6 client is limited by its /64, the block one subscriber is handed, not by each of its
// 2^64 addresses; an IPv4-mapped address counts as the IPv4 one.
func TestIPv6ClientsAreLimitedByPrefix(t *testing.T) {
	from := behindTrustedProxy(t)
	got := []int{from("2001:db8:1:3::1"), from("2001:db8:1:3::b1"), from("2001:db8:1:3:ffff::9")}
	if got[0] != 200 || got[1] != 200 || got[2] != 429 {
		t.Fatalf("three addresses of one /64: %v, want [200 200 429]", got)
	}
	if s := from("2001:db8:1:4::1"); s != 200 {
		t.Fatalf("the next /64: %d, want 200", s)
	}
	got = []int{from("198.51.100.7"), from("::ffff:198.51.100.7"), from("198.51.100.7")}
	if got[0] != 200 || got[1] != 200 || got[2] != 429 {
		t.Fatalf("an IPv4 address and its IPv4-mapped form: %v, want [200 200 429]", got)
	}
}

func TestAccountLockoutAfterRepeatedFailures(t *testing.T) {
	in := start(t, func(c *config.Config) { c.Limits.LoginAccountFailures = "3/15m" })
	a := in.register(t)
	ctx := context.Background()
	login := func(pw string) *api.LoginResponse { return in.loginWith(t, a.User.Email, pw) }
	for range 3 {
		r := login("wrong password attempt")
		wantProblem(t, r, r.Body, http.StatusUnauthorized, "invalid-credentials")
	}
	// Locked: even the right password waits, so guessing cannot continue through the lock.
	r := login(a.Password)
	wantProblem(t, r, r.Body, http.StatusTooManyRequests, "account-locked")
	if s, err := strconv.Atoi(r.HTTPResponse.Header.Get("Retry-After")); err != nil || s < 60 || s > 15*60 {
		t.Fatalf("Retry-After = %q, want about one refill interval (300s)", r.HTTPResponse.Header.Get("Retry-After"))
	}
	// Another account is not affected.
	b := in.register(t)
	in.login(t, b)
	var lockouts int
	if err := in.app.Pool.QueryRow(ctx, "SELECT count(*) FROM audit_events WHERE action = 'security.lockout' AND target_id = $1", a.User.Id.String()).Scan(&lockouts); err != nil || lockouts != 1 {
		t.Fatalf("audited lockouts = %d (%v), want 1", lockouts, err)
	}
}

// Guesses sent at once cannot outrun the lockout: each takes a failure slot before its hash,
// so a burst wider than the budget gets no more passwords tested than a slow sequence would,
// and the lock is audited once.
func TestConcurrentGuessesCannotOutrunLockout(t *testing.T) {
	in := start(t, func(c *config.Config) {
		c.Limits.LoginAccountFailures = "3/15m"
		c.Password.Concurrency, c.Password.Queue = 8, 32
	})
	a := in.register(t)
	const n = 16
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { codes[i] = in.loginWith(t, a.User.Email, "wrong guess "+strconv.Itoa(i)).StatusCode() })
	}
	wg.Wait()
	tested := passwordsTested(t, codes)
	if tested != 3 {
		t.Fatalf("statuses %v: %d passwords tested against a budget of 3", codes, tested)
	}
	ctx := context.Background()
	var failed, lockouts int
	if err := in.app.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE action = 'user.login' AND outcome = 'failure'),
		count(*) FILTER (WHERE action = 'security.lockout') FROM audit_events WHERE target_id = $1`, a.User.Id.String()).Scan(&failed, &lockouts); err != nil {
		t.Fatal(err)
	}
	if failed != 3 || lockouts != 1 {
		t.Fatalf("audited %d failed logins and %d lockouts, want 3 and 1", failed, lockouts)
	}
}

// The right password gives its slot back: sign-ins of one account, at once up to the budget or
// one after another without end, never lock it; nor do those of a disabled account, which keep
// answering account-disabled.
func TestRightPasswordsNeverLockAnAccount(t *testing.T) {
	in := start(t, func(c *config.Config) {
		c.Limits.LoginAccountFailures = "3/15m"
		c.Password.Concurrency, c.Password.Queue = 8, 32
	})
	a := in.register(t)
	for round := range 4 {
		codes := make([]int, 3)
		var wg sync.WaitGroup
		for i := range codes {
			wg.Go(func() { codes[i] = in.loginWith(t, a.User.Email, a.Password).StatusCode() })
		}
		wg.Wait()
		for _, c := range codes {
			if c != http.StatusOK {
				t.Fatalf("round %d: three sign-ins at once with the right password: %v, want 200s", round, codes)
			}
		}
	}
	if _, err := in.app.Pool.Exec(context.Background(), "UPDATE users SET is_active = false WHERE id = $1", a.User.Id); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		r := in.loginWith(t, a.User.Email, a.Password)
		wantProblem(t, r, r.Body, http.StatusForbidden, "account-disabled")
	}
}

// loginWith signs in with email and password, whatever the answer.
func (in *instance) loginWith(t *testing.T, email api.Email, password string) *api.LoginResponse {
	t.Helper()
	r, err := in.client.LoginWithResponse(context.Background(), api.LoginJSONRequestBody{Email: &email, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A successful login forgets the account's earlier failures, and gives back the slot it took.
func TestSuccessfulLoginForgetsFailures(t *testing.T) {
	in := start(t, func(c *config.Config) { c.Limits.LoginAccountFailures = "3/15m" })
	a := in.register(t)
	login := func(pw string) *api.LoginResponse { return in.loginWith(t, a.User.Email, pw) }
	in.login(t, a) // no failures yet
	for round := range 2 {
		for range 2 {
			r := login("wrong password attempt")
			wantProblem(t, r, r.Body, http.StatusUnauthorized, "invalid-credentials")
		}
		// Two failures of three allowed, then a success: without the reset, the next round's
		// second failure would be the fourth and the account would lock.
		if r := login(a.Password); r.StatusCode() != http.StatusOK {
			t.Fatalf("round %d: login with the right password = %d %s, want 200", round, r.StatusCode(), r.Body)
		}
	}
}

// With Redis gone the limits still hold, enforced in process.
func TestRateLimitsHoldWithoutRedis(t *testing.T) {
	in := start(t, func(c *config.Config) {
		c.Redis.URL = "redis://127.0.0.1:1/0"
		c.Limits.IP = "4/1m"
	})
	var got []int
	for range 6 {
		resp, _ := in.raw(t, "GET", "/.well-known/jwks.json", "", nil)
		got = append(got, resp.StatusCode)
	}
	if got[3] != 200 || got[4] != 429 || got[5] != 429 {
		t.Fatalf("statuses without redis = %v, want 4 × 200 then 429", got)
	}
}

// A flood of logins beyond the hashing capacity is refused at once, not queued into timeouts.
func TestHashingFloodGetsFast503(t *testing.T) {
	in := start(t, func(c *config.Config) {
		c.Password = config.Password{MemoryKiB: 16 * 1024, Iterations: 3, Parallelism: 1, Concurrency: 1, Queue: 1}
	})
	a := in.register(t)
	const n = 12
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
		slowest  time.Duration
	)
	gate := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			begin := time.Now()
			resp, body := in.raw(t, "POST", "/api/v1/auth/login", "application/json",
				strings.NewReader(`{"email":"`+string(a.User.Email)+`","password":"not the password"}`))
			took := time.Since(begin)
			mu.Lock()
			defer mu.Unlock()
			statuses[resp.StatusCode]++
			if resp.StatusCode == http.StatusServiceUnavailable {
				if resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"code":"overloaded"`) {
					t.Errorf("503 without Retry-After or code: %v %s", resp.Header, body)
				}
				slowest = max(slowest, took)
			}
		}()
	}
	close(gate)
	wg.Wait()
	if statuses[http.StatusServiceUnavailable] == 0 || statuses[http.StatusUnauthorized] == 0 || statuses[http.StatusServiceUnavailable]+statuses[http.StatusUnauthorized] != n {
		t.Fatalf("statuses = %v, want a mix of 401 and 503 only", statuses)
	}
	if slowest > time.Second {
		t.Fatalf("a refused login took %v; refusals must not wait", slowest)
	}
	// A refusal leaves no trace: only the logins that were hashed (the 401s) are audited, and
	// none opened a session.
	var audited, sessions int
	if err := in.app.Pool.QueryRow(context.Background(),
		"SELECT count(*) FROM audit_events WHERE action = 'user.login' AND outcome = 'failure' AND target_id = $1",
		a.User.Id.String()).Scan(&audited); err != nil {
		t.Fatal(err)
	}
	if err := in.app.Pool.QueryRow(context.Background(), "SELECT count(*) FROM user_sessions WHERE user_id = $1", a.User.Id).Scan(&sessions); err != nil {
		t.Fatal(err)
	}
	if audited != statuses[http.StatusUnauthorized] || sessions != 0 {
		t.Fatalf("failed logins audited %d (want %d, one per 401), sessions %d (want 0)", audited, statuses[http.StatusUnauthorized], sessions)
	}
}

// A login or registration turned away because hashing is at capacity tested no password and
// created no account, so it spends none of the client's per-IP budget for either: the gate
// answers before the limiter.
func TestRefusedAtCapacitySpendsNoBudget(t *testing.T) {
	for _, op := range []struct {
		name, path string
		ok         int
		limit      func(*config.Limits, string)
	}{
		{"login", "/api/v1/auth/login", http.StatusOK, func(l *config.Limits, v string) { l.LoginIP = v }},
		{"register", "/api/v1/auth/register", http.StatusCreated, func(l *config.Limits, v string) { l.RegisterIP = v }},
	} {
		t.Run(op.name, func(t *testing.T) {
			in := start(t, func(c *config.Config) {
				op.limit(&c.Limits, "2/1m")
				// One slot, no queue, and a hash long enough (~0.3 s) to hold the gate while we knock.
				c.Password = config.Password{MemoryKiB: 32 * 1024, Iterations: 16, Parallelism: 1, Concurrency: 1, Queue: 0}
			})
			var body func() string
			if op.name == "login" {
				a := in.register(t)
				body = func() string { return `{"email":"` + string(a.User.Email) + `","password":"` + a.Password + `"}` }
			} else {
				body = func() string {
					name := "cap" + strings.ReplaceAll(uuid.NewString()[:12], "-", "")
					return `{"email":"` + name + `@example.com","username":"` + name + `","password":"a long and unusual passphrase ` + name + `"}`
				}
			}
			call := func() int {
				resp, _ := in.raw(t, "POST", op.path, "application/json", strings.NewReader(body()))
				return resp.StatusCode
			}
			usersBefore := countUsers(t, in)
			first := make(chan int, 1)
			go func() { first <- call() }() // holds the only slot, spending 1 of 2
			for deadline := time.Now().Add(5 * time.Second); !in.app.Users.HashingFull(); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the first %s never took the hashing slot", op.name)
				}
			}
			var refused []int
			for range 5 {
				refused = append(refused, call())
			}
			if got := <-first; got != op.ok {
				t.Fatalf("the %s holding the slot: %d, want %d", op.name, got, op.ok)
			}
			for i, status := range refused {
				if status != http.StatusServiceUnavailable {
					t.Fatalf("%s %d while the slot was taken: %d, want 503 (all: %v)", op.name, i, status, refused)
				}
			}
			if op.name == "register" {
				if got := countUsers(t, in) - usersBefore; got != 1 {
					t.Fatalf("%d accounts created, want 1: the refused registrations must create none", got)
				}
			}
			if got := call(); got != op.ok {
				t.Fatalf("%s after the refusals: %d, want %d: the 503s must not spend the budget", op.name, got, op.ok)
			}
			if got := call(); got != http.StatusTooManyRequests {
				t.Fatalf("third hashed %s: %d, want 429: the budget of 2 still holds", op.name, got)
			}
		})
	}
}

func countUsers(t *testing.T, in *instance) int {
	t.Helper()
	var n int
	if err := in.app.Pool.QueryRow(context.Background(), "SELECT count(*) FROM users").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	in := start(t)
	for _, tt := range []struct{ method, path, ctype, body string }{
		{"GET", "/healthz", "", ""},
		{"GET", "/api/v1/users/me", "", ""},
		{"GET", "/nope", "", ""},
		{"POST", "/api/v1/auth/login", "application/json", "{"},
		{"DELETE", "/api/v1/auth/login", "", ""},
	} {
		resp, _ := in.raw(t, tt.method, tt.path, tt.ctype, strings.NewReader(tt.body))
		h := resp.Header
		for name, want := range map[string]string{
			"Cache-Control":                "no-store",
			"X-Content-Type-Options":       "nosniff",
			"Referrer-Policy":              "no-referrer",
			"Content-Security-Policy":      "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
			"X-Frame-Options":              "DENY",
			"Cross-Origin-Resource-Policy": "same-origin",
			"Cross-Origin-Opener-Policy":   "same-origin",
		} {
			if h.Get(name) != want {
				t.Errorf("%s %s: %s = %q, want %q", tt.method, tt.path, name, h.Get(name), want)
			}
		}
		if h.Get("Server") != "" || h.Get("X-Powered-By") != "" || h.Get("Strict-Transport-Security") != "" {
			t.Errorf("%s %s: banner or HSTS over plain HTTP: %v", tt.method, tt.path, h)
		}
	}
	forced := start(t, func(c *config.Config) { c.HTTP.ForceHSTS = true })
	resp, _ := forced.raw(t, "GET", "/healthz", "", nil)
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000; includeSubDomains" {
		t.Fatalf("HSTS behind a TLS proxy = %q", got)
	}
}

func TestCORSAllowList(t *testing.T) {
	in := start(t, func(c *config.Config) { c.HTTP.CORSOrigins = []string{"https://app.example.com"} })
	tests := []struct {
		name, method, origin, wantAllow string
	}{
		{"allowed origin", "GET", "https://app.example.com", "https://app.example.com"},
		{"allowed preflight", "OPTIONS", "https://app.example.com", "https://app.example.com"},
		{"other origin", "GET", "https://evil.example", ""},
		{"other origin preflight", "OPTIONS", "https://evil.example", ""},
		{"null origin", "GET", "null", ""},
		{"null preflight", "OPTIONS", "null", ""},
		{"suffix trick", "GET", "https://app.example.com.evil.example", ""},
		{"scheme downgrade", "GET", "http://app.example.com", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdrs := []string{"Origin", tt.origin}
			if tt.method == "OPTIONS" {
				hdrs = append(hdrs, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
			}
			resp, _ := in.raw(t, tt.method, "/api/v1/users/me", "", nil, hdrs...)
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tt.wantAllow {
				t.Fatalf("Access-Control-Allow-Origin = %q, want %q", got, tt.wantAllow)
			}
			if tt.wantAllow == "" && (resp.Header.Get("Access-Control-Allow-Credentials") != "" || resp.Header.Get("Access-Control-Allow-Methods") != "") {
				t.Fatalf("CORS headers for a refused origin: %v", resp.Header)
			}
			if resp.Header.Get("Access-Control-Allow-Origin") == "*" {
				t.Fatal("wildcard origin")
			}
		})
	}
	// A browser that propagates its trace (OpenTelemetry's fetch instrumentation) sends
	// traceparent and tracestate, which the server continues; it may read X-Trace-Id back.
	resp, _ := in.raw(t, "OPTIONS", "/api/v1/users/me", "", nil, "Origin", "https://app.example.com",
		"Access-Control-Request-Method", "PATCH", "Access-Control-Request-Headers", "authorization,content-type,traceparent,tracestate")
	allowed := strings.Split(strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), ",")
	// An admin page sends If-Match with its changes and reads ETag back (see the admin user routes).
	for _, h := range []string{"authorization", "content-type", "x-request-id", "traceparent", "tracestate", "if-match"} {
		if !slices.Contains(allowed, h) {
			t.Errorf("preflight: Access-Control-Allow-Headers %q lacks %s", resp.Header.Get("Access-Control-Allow-Headers"), h)
		}
	}
	resp, _ = in.raw(t, "GET", "/api/v1/users/me", "", nil, "Origin", "https://app.example.com")
	for _, h := range []string{"x-trace-id", "etag", "location"} {
		if exposed := strings.Split(strings.ToLower(resp.Header.Get("Access-Control-Expose-Headers")), ","); !slices.Contains(exposed, h) {
			t.Errorf("Access-Control-Expose-Headers %q lacks %s", resp.Header.Get("Access-Control-Expose-Headers"), h)
		}
	}
	// A preflight to a path that is no route gets the 404 the request itself would, not a 204
	// that invites the browser to send it.
	for _, path := range []string{"/api/v1/nope", "/api/v1/users/me/nope"} {
		resp, body := in.raw(t, "OPTIONS", path, "", nil, "Origin", "https://app.example.com",
			"Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "authorization")
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/problem+json" || resp.Header.Get("Access-Control-Allow-Methods") != "" {
			t.Errorf("preflight to %s: %d %q, Allow-Methods %q, %s; want a 404 problem and no CORS grant",
				path, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Access-Control-Allow-Methods"), body)
		}
	}
	// The allow-list is matched exactly, whatever it holds: Echo's own matching would read '*'
	// in an entry as a wildcard (the configuration refuses one, but it is not the only guard).
	pattern := start(t, func(c *config.Config) { c.HTTP.CORSOrigins = []string{"https://*.example.com", "http://a*"} })
	for _, origin := range []string{"https://evil.example.com", "http://attacker.example"} {
		resp, _ := pattern.raw(t, "GET", "/api/v1/users/me", "", nil, "Origin", origin)
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Fatalf("origin %s allowed by a pattern: Access-Control-Allow-Origin = %q", origin, got)
		}
	}
	none := start(t)
	resp, _ = none.raw(t, "GET", "/healthz", "", nil, "Origin", "https://app.example.com")
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS headers with no origins configured")
	}
}

// Slow and oversized clients are cut off by the real server settings, not left hanging.
func TestServerLimitsAgainstSlowAndOversizedClients(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.HTTP.ReadHeaderTimeout = 300 * time.Millisecond
	cfg.HTTP.ReadTimeout = 600 * time.Millisecond
	in := startWith(t, cfg)
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = httpserver.NewHTTPServer(cfg.HTTP, in.app.Handler, testenv.Logger(t))
	srv.Start()
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")

	t.Run("slowloris headers", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		begin := time.Now()
		_, _ = conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "))
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 1)
		_, err = conn.Read(buf) // the server closes the connection (or answers 408) without the rest
		if time.Since(begin) > 3*time.Second {
			t.Fatalf("a client that never finished its headers was held for %v (err %v)", time.Since(begin), err)
		}
	})
	t.Run("slow body", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		begin := time.Now()
		_, _ = conn.Write([]byte("POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"email\":"))
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = bufio.NewReader(conn).ReadString('\n')
		if time.Since(begin) > 3*time.Second {
			t.Fatalf("a client that never finished its body was held for %v", time.Since(begin))
		}
	})
	t.Run("oversized headers", func(t *testing.T) {
		req, _ := http.NewRequest("GET", srv.URL+"/healthz", nil)
		req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("64 KiB of headers: %d, want 431", resp.StatusCode)
		}
	})
}

// Guesses of the current password on a password change spend the account's failed-login
// budget, as guesses on login do: someone holding a stolen session cannot guess past the
// lockout there, nor add that route's own budget to login's. A right current password forgets
// the failures, as a right login does.
func TestPasswordChangeGuessesShareTheLoginBudget(t *testing.T) {
	in := start(t, func(c *config.Config) {
		c.Limits.LoginAccountFailures = "3/15m"
		c.Limits.PasswordAccount = "100/1m" // out of the way: the budget under test is the login one
		c.Limits.PasswordIP = "100/1m"
	})
	ctx := context.Background()
	change := func(a account, token, current string) *api.ChangePasswordResponse {
		t.Helper()
		r, err := in.client.ChangePasswordWithResponse(ctx, api.ChangePasswordJSONRequestBody{CurrentPassword: current, NewPassword: a.Password + " and more"}, bearer(token))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	failLogins := func(a account, n int) {
		t.Helper()
		for range n {
			r := in.loginWith(t, a.User.Email, "wrong password attempt")
			wantProblem(t, r, r.Body, http.StatusUnauthorized, "invalid-credentials")
		}
	}

	t.Run("guesses on a password change lock logins", func(t *testing.T) {
		a := in.register(t)
		tok := in.login(t, a).AccessToken
		for range 3 {
			r := change(a, tok, "not the current password")
			wantProblem(t, r, r.Body, http.StatusForbidden, "current-password-incorrect")
		}
		r := in.loginWith(t, a.User.Email, a.Password)
		wantProblem(t, r, r.Body, http.StatusTooManyRequests, "account-locked")
	})

	t.Run("a locked account takes no more guesses on a password change", func(t *testing.T) {
		a := in.register(t)
		tok := in.login(t, a).AccessToken
		failLogins(a, 3)
		r := change(a, tok, a.Password) // even the right one: no password is tested while locked
		wantProblem(t, r, r.Body, http.StatusTooManyRequests, "account-locked")
		if r.HTTPResponse.Header.Get("Retry-After") == "" {
			t.Error("the locked password change has no Retry-After")
		}
		if r := in.loginWith(t, a.User.Email, a.Password+" and more"); r.StatusCode() == http.StatusOK {
			t.Fatal("the password changed while the account was locked")
		}
	})

	t.Run("a right current password forgets the failures", func(t *testing.T) {
		a := in.register(t)
		tok := in.login(t, a).AccessToken
		failLogins(a, 2)
		if r := change(a, tok, a.Password); r.StatusCode() != http.StatusNoContent {
			t.Fatalf("password change with the right current password = %d %s, want 204", r.StatusCode(), r.Body)
		}
		failLogins(a, 2) // two more: without the reset they would be the third and fourth
		a.Password += " and more"
		in.login(t, a)
	})
}

// A username change answers what a registration does (409 username-taken, in any letter case),
// so it spends the client IP's registration budget: once that is gone, neither tells whether a
// username exists, where PATCH /users/me went on answering at the general per-IP rate (found in
// review). A change of the full name alone, or to the caller's own username in another case,
// asks nothing about other accounts and spends nothing.
func TestUsernameChangesSpendTheRegistrationBudget(t *testing.T) {
	in := start(t, func(c *config.Config) { c.Limits.RegisterIP = "3/1h" })
	ctx := context.Background()
	taken, _ := in.createWithRole(t, "user") // made without spending the budget
	me, pair := in.createWithRole(t, "user")
	tok := bearer(pair.AccessToken)
	rename := func(name string) *api.UpdateMeResponse {
		t.Helper()
		r, err := in.client.UpdateMeWithResponse(ctx, nil, api.UpdateMeJSONRequestBody{Username: &name}, tok)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := rename(strings.ToUpper(taken.User.Username))
	wantProblem(t, r, r.Body, http.StatusConflict, "username-taken")
	r = rename(strings.ToUpper(me.User.Username)) // one's own name: no question about anyone else
	wantStatus(t, r, r.Body, http.StatusOK)
	reg, err := in.client.RegisterUserWithResponse(ctx, api.RegisterUserJSONRequestBody{
		Email: api.Email(uniqueName() + "@example.com"), Username: uniqueName(), Password: strongPassword,
	})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, reg, reg.Body, http.StatusCreated)
	free := uniqueName()
	r = rename(free)
	wantStatus(t, r, r.Body, http.StatusOK)
	// Three spent (a taken name, a registration, a free name): the fourth question is refused,
	// and nothing changes.
	r = rename(taken.User.Username)
	wantProblem(t, r, r.Body, http.StatusTooManyRequests, "rate-limited")
	if r.HTTPResponse.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	r = rename(uniqueName())
	wantProblem(t, r, r.Body, http.StatusTooManyRequests, "rate-limited")
	full := "Ada Lovelace"
	fr, err := in.client.UpdateMeWithResponse(ctx, nil, api.UpdateMeJSONRequestBody{FullName: nullable.NewNullableWithValue(full)}, tok)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, fr, fr.Body, http.StatusOK)
	if fr.JSON200.Username != free {
		t.Errorf("username after the refused changes: %q, want %q", fr.JSON200.Username, free)
	}
}

// With Redis unreachable each instance counts an account's failed logins in process, so two
// instances would each give it the whole budget, and a failure counted before the outage would be
// forgotten. The failures audited in PostgreSQL, which every instance shares, hold the lockout
// across instances; a right password, or an admin's reset, still forgets them.
func TestLockoutHoldsAcrossInstancesWithoutRedis(t *testing.T) {
	a := start(t, func(c *config.Config) {
		c.Redis.URL = "redis://127.0.0.1:1/0"
		c.Limits.LoginAccountFailures = "3/15m"
	})
	b := startWith(t, a.cfg) // same database, no Redis either
	ctx := context.Background()

	u := a.register(t)
	for range 3 {
		r := a.loginWith(t, u.User.Email, "wrong password attempt")
		wantProblem(t, r, r.Body, http.StatusUnauthorized, "invalid-credentials")
	}
	r := b.loginWith(t, u.User.Email, "another wrong password")
	wantProblem(t, r, r.Body, http.StatusTooManyRequests, "account-locked")
	if after := r.HTTPResponse.Header.Get("Retry-After"); after == "" {
		t.Error("the lockout from PostgreSQL's count has no Retry-After")
	}
	r = b.loginWith(t, u.User.Email, u.Password) // no password is tested while locked
	wantProblem(t, r, r.Body, http.StatusTooManyRequests, "account-locked")
	var failures int
	if err := a.app.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events
		WHERE action = 'user.login' AND outcome = 'failure' AND target_id = $1`, u.User.Id.String()).Scan(&failures); err != nil {
		t.Fatal(err)
	}
	if failures != 3 {
		t.Fatalf("%d failed logins audited, want the 3 tested: a refused attempt tests nothing", failures)
	}

	t.Run("a right password forgets the failures on every instance", func(t *testing.T) {
		v := a.register(t)
		for range 2 {
			r := a.loginWith(t, v.User.Email, "wrong password attempt")
			wantProblem(t, r, r.Body, http.StatusUnauthorized, "invalid-credentials")
		}
		a.login(t, v)
		for range 2 { // two more: three in the window, but a right password came between
			r := b.loginWith(t, v.User.Email, "wrong password attempt")
			wantProblem(t, r, r.Body, http.StatusUnauthorized, "invalid-credentials")
		}
		b.login(t, v)
	})

	t.Run("guesses of the current password count on every instance", func(t *testing.T) {
		w := a.register(t)
		token := a.login(t, w).AccessToken
		for range 3 {
			r, err := a.client.ChangePasswordWithResponse(ctx, api.ChangePasswordJSONRequestBody{
				CurrentPassword: "not the current password", NewPassword: w.Password + " and more"}, bearer(token))
			if err != nil {
				t.Fatal(err)
			}
			wantProblem(t, r, r.Body, http.StatusForbidden, "current-password-incorrect")
		}
		r := b.loginWith(t, w.User.Email, w.Password)
		wantProblem(t, r, r.Body, http.StatusTooManyRequests, "account-locked")
	})
}

// With Redis unreachable the replay of an account's audited failures (see
// TestLockoutHoldsAcrossInstancesWithoutRedis) holds only if guesses sent at once cannot all
// read the same audit before any of them is recorded: each instance's in-process budget would
// let its own share through, every one of them seeing the same failures left. Guesses sent at
// once to two instances get no more passwords tested than the budget left.
func TestConcurrentGuessesCannotOutrunTheReplayedBudget(t *testing.T) {
	a := start(t, func(c *config.Config) {
		c.Redis.URL = "redis://127.0.0.1:1/0"
		c.Limits.LoginAccountFailures = "3/15m"
		c.Password.Concurrency, c.Password.Queue = 8, 32
		c.Password.MemoryKiB, c.Password.Iterations = 8192, 2 // guesses in flight long enough to overlap
	})
	b := startWith(t, a.cfg)
	u := a.register(t)
	for range 2 {
		r := a.loginWith(t, u.User.Email, "wrong password attempt")
		wantProblem(t, r, r.Body, http.StatusUnauthorized, "invalid-credentials")
	}
	// One failure left in the budget every instance shares; b's own in-process budget is whole.
	const n = 6
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		in := b
		if i%3 == 0 {
			in = a
		}
		wg.Go(func() { codes[i] = in.loginWith(t, u.User.Email, "wrong guess "+strconv.Itoa(i)).StatusCode() })
	}
	wg.Wait()
	tested := passwordsTested(t, codes)
	if tested > 1 {
		t.Fatalf("statuses %v: %d passwords tested with one failure left in the budget", codes, tested)
	}
	var failures int
	if err := a.app.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events
		WHERE action = 'user.login' AND outcome = 'failure' AND target_id = $1`, u.User.Id.String()).Scan(&failures); err != nil {
		t.Fatal(err)
	}
	if failures > 3 {
		t.Fatalf("%d failed logins audited against a budget of 3", failures)
	}
}

// passwordsTested counts the guesses whose password was tested (401) among concurrent logins'
// statuses, failing on any answer but 401 and 429.
func passwordsTested(t *testing.T, codes []int) int {
	t.Helper()
	tested := 0
	for _, c := range codes {
		switch c {
		case http.StatusUnauthorized:
			tested++
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("statuses %v: want only 401 and 429", codes)
		}
	}
	return tested
}
