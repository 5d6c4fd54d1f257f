package httpserver_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/docs"
	"github.com/portcullis/portcullis/internal/testenv"
)

func TestOperationalEndpoints(t *testing.T) {
	in := start(t)
	ctx := context.Background()

	h, err := in.client.GetHealthWithResponse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, h, h.Body, http.StatusOK)

	r, err := in.client.GetReadinessWithResponse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusOK)
	if r.JSON200.Checks["postgres"] != "ok" || r.JSON200.Checks["redis"] != "ok" {
		t.Fatalf("readiness = %+v", r.JSON200)
	}

	y, err := in.client.GetOpenAPIYAMLWithResponse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile("../../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(y.Body, file) {
		t.Fatal("/openapi.yaml differs from api/openapi.yaml")
	}
	j, err := in.client.GetOpenAPIJSONWithResponse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, j, j.Body, http.StatusOK)
	if (*j.JSON200)["openapi"] != "3.0.3" {
		t.Fatalf("openapi.json: %v", (*j.JSON200)["openapi"])
	}
}

// Another service verifies our access tokens offline with nothing but the published JWKS.
func TestAccessTokensVerifyOfflineWithTheJWKS(t *testing.T) {
	in := start(t)
	a := in.register(t)
	pair := in.login(t, a)
	r, err := in.client.GetJWKSWithResponse(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusOK)
	if cc := r.HTTPResponse.Header.Get("Cache-Control"); cc != "public, max-age=300" {
		t.Fatalf("Cache-Control = %q", cc)
	}
	set, err := jwk.Parse(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 1 {
		t.Fatalf("jwks has %d keys", set.Len())
	}
	key, _ := set.Key(0)
	if _, isPrivate := key.(jwk.OKPPrivateKey); isPrivate || bytes.Contains(r.Body, []byte(`"d"`)) {
		t.Fatal("the JWKS publishes private key material")
	}
	tok, err := jwt.ParseString(pair.AccessToken, jwt.WithKeySet(set), jwt.WithIssuer(in.cfg.Auth.Issuer), jwt.WithAudience(in.cfg.Auth.Audience), jwt.WithValidate(true))
	if err != nil {
		t.Fatalf("offline verification: %v", err)
	}
	sid, _ := tok.Get("sid")
	role, _ := tok.Get("role")
	if tok.Subject() != a.User.Id.String() || sid != pair.SessionId.String() || role != "user" || tok.JwtID() == "" {
		t.Fatalf("claims: sub %s sid %v role %v", tok.Subject(), sid, role)
	}
	if ttl := tok.Expiration().Sub(tok.IssuedAt()); ttl != 15*time.Minute {
		t.Fatalf("access token lifetime %v, want 15m", ttl)
	}
}

func TestRequestIDIsEchoedOrGenerated(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	r, err := in.client.GetHealthWithResponse(ctx, header("X-Request-ID", "abc-123"))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.HTTPResponse.Header.Get("X-Request-ID"); got != "abc-123" {
		t.Fatalf("X-Request-ID = %q, want the incoming one", got)
	}
	r, err = in.client.GetHealthWithResponse(ctx, header("X-Request-ID", "bad id with spaces and\ttabs"))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.HTTPResponse.Header.Get("X-Request-ID"); len(got) != 36 {
		t.Fatalf("X-Request-ID = %q, want a generated uuid", got)
	}
	m, err := in.client.GetMeWithResponse(ctx, header("X-Request-ID", "req-42"))
	if err != nil {
		t.Fatal(err)
	}
	if p := wantProblem(t, m, m.Body, http.StatusUnauthorized, "missing-token"); *p.RequestId != "req-42" {
		t.Fatalf("problem request_id = %q", *p.RequestId)
	}
}

// With Redis unreachable from the start, every answer still comes, correct, from PostgreSQL.
func TestServesCorrectlyWithoutRedis(t *testing.T) {
	in := start(t, func(c *config.Config) { c.Redis.URL = "redis://127.0.0.1:1/0" })
	a := in.register(t)
	pair := in.login(t, a)
	if got := in.me(t, pair.AccessToken); got != http.StatusOK {
		t.Fatalf("me without redis: %d", got)
	}
	ctx := context.Background()
	ref, err := in.client.RefreshTokensWithResponse(ctx, api.RefreshTokensJSONRequestBody{RefreshToken: pair.RefreshToken})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, ref, ref.Body, http.StatusOK)
	out, err := in.client.LogoutWithResponse(ctx, bearer(ref.JSON200.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, out, out.Body, http.StatusNoContent)
	if got := in.me(t, ref.JSON200.AccessToken); got != http.StatusUnauthorized {
		t.Fatalf("me after logout without redis: %d", got)
	}
	rd, err := in.client.GetReadinessWithResponse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Ready, and saying what it does without: failing readiness here would take every instance
	// out of its load balancer at once, though each answers correctly.
	wantStatus(t, rd, rd.Body, http.StatusOK)
	if rd.JSON200.Status != api.ReadinessStatusOk || rd.JSON200.Checks["redis"] != "unavailable" || rd.JSON200.Checks["postgres"] != "ok" {
		t.Fatalf("readiness without redis = %s, want 200 naming redis unavailable", rd.Body)
	}
}

// Redis vanishing mid-flight: the cached "live" entry cannot be removed, yet a session revoked
// during the outage is refused at once, and the stale entry is cleaned up when Redis returns.
func TestRevocationHoldsWhenRedisDropsMidFlight(t *testing.T) {
	proxy := testenv.NewProxy(t, "127.0.0.1:6379")
	a := start(t, func(c *config.Config) { c.Redis.URL = "redis://" + proxy.Addr() + "/0" })
	acct := a.register(t)
	pair := a.login(t, acct)
	if got := a.me(t, pair.AccessToken); got != http.StatusOK { // caches the session as live
		t.Fatalf("me: %d", got)
	}
	proxy.Cut()
	if got := a.me(t, pair.AccessToken); got != http.StatusOK {
		t.Fatalf("me during the outage: %d", got)
	}
	out, err := a.client.LogoutWithResponse(context.Background(), bearer(pair.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, out, out.Body, http.StatusNoContent)
	if got := a.me(t, pair.AccessToken); got != http.StatusUnauthorized {
		t.Fatalf("me after logout during the outage: %d, want 401", got)
	}
	proxy.Restore()
	// Once Redis is back, the stale entry is deleted, so every instance sees the revocation.
	b := startWith(t, a.cfg)
	deadline := time.Now().Add(10 * time.Second)
	for b.me(t, pair.AccessToken) != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatal("the stale cached session was never invalidated after Redis came back")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := a.me(t, pair.AccessToken); got != http.StatusUnauthorized {
		t.Fatalf("me after recovery: %d", got)
	}
}

// Each operation's documented errors, through the typed client: secured ones refuse a missing
// token, and every route but the two probes (TestProbesAnswerPastTheClientsLimit), operational
// ones included, answers 429 past its per-IP limit.
func TestEveryOperationAnswersItsDocumentedErrors(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	for name, call := range map[string]func() (statusCoder, []byte, error){
		"logout": func() (statusCoder, []byte, error) {
			r, err := in.client.LogoutWithResponse(ctx)
			return r, r.Body, err
		},
		"logout-all": func() (statusCoder, []byte, error) {
			r, err := in.client.LogoutAllWithResponse(ctx)
			return r, r.Body, err
		},
		"list sessions": func() (statusCoder, []byte, error) {
			r, err := in.client.ListMySessionsWithResponse(ctx)
			return r, r.Body, err
		},
	} {
		r, body, err := call()
		if err != nil {
			t.Fatal(err)
		}
		if p := wantProblem(t, r, body, http.StatusUnauthorized, "missing-token"); p.Code == "" {
			t.Fatalf("%s: no code", name)
		}
	}

	limited := start(t, func(c *config.Config) { c.Limits.IP = "1/1m" })
	limited.raw(t, "GET", "/.well-known/jwks.json", "", nil) // spends the one request the limit allows
	for name, call := range map[string]func() (statusCoder, []byte, error){
		"jwks": func() (statusCoder, []byte, error) {
			r, err := limited.client.GetJWKSWithResponse(ctx)
			return r, r.Body, err
		},
		"openapi.json": func() (statusCoder, []byte, error) {
			r, err := limited.client.GetOpenAPIJSONWithResponse(ctx)
			return r, r.Body, err
		},
		"openapi.yaml": func() (statusCoder, []byte, error) {
			r, err := limited.client.GetOpenAPIYAMLWithResponse(ctx)
			return r, r.Body, err
		},
	} {
		r, body, err := call()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		wantProblem(t, r, body, http.StatusTooManyRequests, "rate-limited")
	}
}

// The probes answer whatever their address has spent, and spend nothing of it: a kubelet or load
// balancer probing from an address that also carries clients' traffic (a node port's SNAT, a
// proxy not listed in PORTCULLIS_TRUSTED_PROXIES) would read a 429 as a dead or unready instance,
// restart it or drain it, and so turn a busy client into an outage.
func TestProbesAnswerPastTheClientsLimit(t *testing.T) {
	in := start(t, func(c *config.Config) { c.Limits.IP = "2/1m" })
	ctx := context.Background()
	jwks := func() int {
		r, err := in.client.GetJWKSWithResponse(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return r.StatusCode()
	}
	probes := func(when string) {
		t.Helper()
		for range 5 {
			h, err := in.client.GetHealthWithResponse(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if h.StatusCode() != http.StatusOK || h.JSON200 == nil || h.JSON200.Status != api.HealthStatusOk {
				t.Fatalf("/healthz %s: %d %s, want 200", when, h.StatusCode(), h.Body)
			}
			if h.HTTPResponse.Header.Get("RateLimit") != "" {
				t.Fatalf("/healthz %s carries RateLimit %q: it is not limited", when, h.HTTPResponse.Header.Get("RateLimit"))
			}
			r, err := in.client.GetReadinessWithResponse(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if r.StatusCode() != http.StatusOK || r.JSON200 == nil || r.JSON200.Status != "ok" {
				t.Fatalf("/readyz %s: %d %s, want 200", when, r.StatusCode(), r.Body)
			}
		}
	}
	probes("before any other request") // ten probes, and the budget of 2 is still whole:
	if got := []int{jwks(), jwks(), jwks()}; got[0] != 200 || got[1] != 200 || got[2] != 429 {
		t.Fatalf("jwks after the probes: %v, want [200 200 429]: the probes spent the budget", got)
	}
	probes("past the address's limit")
	if got := jwks(); got != http.StatusTooManyRequests {
		t.Fatalf("jwks after the probes: %d, want 429 still", got)
	}
}

// The docs page is served with its own exact CSP while API routes keep theirs.
func TestDocsPageHasItsOwnExactCSP(t *testing.T) {
	in := start(t)
	resp, body := in.raw(t, "GET", "/docs", "", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "/docs/swagger-ui-bundle.js") {
		t.Fatalf("/docs: %d %.200s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Content-Security-Policy"); got != docs.CSP {
		t.Fatalf("docs CSP = %q, want %q", got, docs.CSP)
	}
	api, _ := in.raw(t, "GET", "/healthz", "", nil)
	if got := api.Header.Get("Content-Security-Policy"); got == docs.CSP || !strings.Contains(got, "default-src 'none'") {
		t.Fatalf("API CSP = %q", got)
	}
}

// The docs are served with http.ServeContent, which answers a range past the end with 416 and a
// failed If-Match with 412 in text/plain, dropping Cache-Control. Those answers are errors like
// any other: problem+json, not stored, under the API's policy. A range within the file still
// gets its 206.
func TestDocsRefusalsAreProblems(t *testing.T) {
	in := start(t)
	const asset = "/docs/init.js"
	whole, body := in.raw(t, "GET", asset, "", nil)
	if whole.StatusCode != http.StatusOK || len(body) < 10 {
		t.Fatalf("GET %s: %d, %d bytes", asset, whole.StatusCode, len(body))
	}
	part, partBody := in.raw(t, "GET", asset, "", nil, "Range", "bytes=0-9")
	if part.StatusCode != http.StatusPartialContent || string(partBody) != string(body[:10]) {
		t.Fatalf("GET %s bytes=0-9: %d %q", asset, part.StatusCode, partBody)
	}
	for _, tc := range []struct {
		name, header, value string
		status              int
		code                string
	}{
		{"range past the end", "Range", fmt.Sprintf("bytes=%d-", len(body)+100), http.StatusRequestedRangeNotSatisfiable, "range-not-satisfiable"},
		{"If-Match of another version", "If-Match", `"not-this-one"`, http.StatusPreconditionFailed, "precondition-failed"},
	} {
		resp, b := in.raw(t, "GET", asset, "", nil, tc.header, tc.value)
		if got := resp.Header.Get("Content-Type"); got != "application/problem+json" {
			t.Errorf("%s: Content-Type %q, body %q", tc.name, got, b)
			continue
		}
		wantProblem(t, rawStatus{resp}, b, tc.status, tc.code)
		if got := resp.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", tc.name, got)
		}
		if got := resp.Header.Get("Content-Security-Policy"); got == docs.CSP || !strings.Contains(got, "default-src 'none'") {
			t.Errorf("%s: Content-Security-Policy %q, want the API's", tc.name, got)
		}
		if resp.Header.Get("ETag") != "" || resp.Header.Get("Content-Encoding") != "" {
			t.Errorf("%s: ETag %q, Content-Encoding %q on a refusal", tc.name, resp.Header.Get("ETag"), resp.Header.Get("Content-Encoding"))
		}
		if tc.status == http.StatusRequestedRangeNotSatisfiable {
			if got, want := resp.Header.Get("Content-Range"), fmt.Sprintf("bytes */%d", len(body)); got != want {
				t.Errorf("%s: Content-Range %q, want %q", tc.name, got, want)
			}
		}
	}
}

// A Range the docs cannot parse (another unit, a last byte before the first, no numbers) is
// ignored, as RFC 9110 (14.2) has it: the whole file, not a 416 that says the range lies past
// the end and, with no Content-Range, does not say where the end is.
func TestDocsIgnoreARangeTheyCannotParse(t *testing.T) {
	in := start(t)
	for _, asset := range []string{"/docs/init.js", "/docs/swagger-ui.css"} {
		whole, body := in.raw(t, "GET", asset, "", nil, "Accept-Encoding", "gzip")
		if whole.StatusCode != http.StatusOK || len(body) < 10 {
			t.Fatalf("GET %s: %d, %d bytes", asset, whole.StatusCode, len(body))
		}
		for _, rng := range []string{"items=0-9", "bytes=9-0", "bytes=garbage"} {
			resp, b := in.raw(t, "GET", asset, "", nil, "Range", rng, "Accept-Encoding", "gzip")
			if resp.StatusCode != http.StatusOK || string(b) != string(body) {
				t.Errorf("GET %s with Range %s: %d, %d bytes (%.120s), want 200 and the whole file", asset, rng, resp.StatusCode, len(b), b)
				continue
			}
			for _, k := range []string{"Content-Type", "Content-Encoding", "ETag", "Cache-Control", "Content-Security-Policy", "Vary"} {
				if got, want := resp.Header.Values(k), whole.Header.Values(k); !slices.Equal(got, want) {
					t.Errorf("GET %s with Range %s: %s %q, want %q", asset, rng, k, got, want)
				}
			}
		}
	}
}

// A HEAD is answered with the headers a GET would get (RFC 9110, 9.3.2), an error's
// application/problem+json among them, without the body.
func TestHeadErrorsCarryTheProblemType(t *testing.T) {
	in := start(t)
	for _, path := range []string{"/docs/nope.js", "/api/v1/users/me", "/nowhere"} {
		get, _ := in.raw(t, "GET", path, "", nil)
		head, body := in.raw(t, "HEAD", path, "", nil)
		if head.StatusCode < 400 || len(body) != 0 {
			t.Errorf("HEAD %s: %d with %d bytes, want an error with no body", path, head.StatusCode, len(body))
		}
		if got := head.Header.Get("Content-Type"); got != "application/problem+json" {
			t.Errorf("HEAD %s: %d with Content-Type %q (GET: %d, %q)", path, head.StatusCode, got, get.StatusCode, get.Header.Get("Content-Type"))
		}
	}
}
