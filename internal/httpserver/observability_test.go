package httpserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/app"
	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/telemetry"
	"github.com/portcullis/portcullis/internal/testenv"
)

// syncBuffer collects log output written from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startObserved runs a service whose JSON logs go to logs; edit adjusts the configuration.
func startObserved(t *testing.T, logs io.Writer, edit ...func(*config.Config)) (*instance, *app.App) {
	t.Helper()
	cfg := testenv.Config(t)
	for _, e := range edit {
		e(&cfg)
	}
	a, err := app.New(context.Background(), cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(func() { srv.Close(); a.Close() })
	client, err := api.NewClientWithResponses(srv.URL, api.WithHTTPClient(&http.Client{Transport: &specValidator{t: t, next: http.DefaultTransport, router: specRouter(t)}}))
	if err != nil {
		t.Fatal(err)
	}
	return &instance{t: t, cfg: cfg, app: a, url: srv.URL, client: client}, a
}

// A whole session's logs hold no password, no token and no Authorization header, and each
// request has one access line with its route template, status, duration and ids.
func TestLogsHoldNoSecretsAndOneLinePerRequest(t *testing.T) {
	var logs syncBuffer
	in, _ := startObserved(t, &logs)
	ctx := context.Background()
	pw, next := "a long and unusual passphrase 1", "another unusual passphrase 2"
	reg, err := in.client.RegisterUserWithResponse(ctx, api.RegisterUserJSONRequestBody{Email: "logs@example.com", Username: "logsuser", Password: pw})
	if err != nil || reg.StatusCode() != 201 {
		t.Fatalf("register: %v", err)
	}
	email := api.Email("logs@example.com")
	bad, _ := in.client.LoginWithResponse(ctx, api.LoginJSONRequestBody{Email: &email, Password: "wrong " + pw})
	if bad.StatusCode() != 401 {
		t.Fatalf("bad login: %d", bad.StatusCode())
	}
	pair := in.login(t, account{User: *reg.JSON201, Password: pw})
	ref, err := in.client.RefreshTokensWithResponse(ctx, api.RefreshTokensJSONRequestBody{RefreshToken: pair.RefreshToken})
	if err != nil || ref.StatusCode() != 200 {
		t.Fatalf("refresh: %v", err)
	}
	tok := ref.JSON200.AccessToken
	if r, _ := in.client.ChangePasswordWithResponse(ctx, api.ChangePasswordJSONRequestBody{CurrentPassword: pw, NewPassword: next}, bearer(tok)); r.StatusCode() != 204 {
		t.Fatalf("change password: %d", r.StatusCode())
	}
	if r, _ := in.client.GetMeWithResponse(ctx, bearer(tok), header("X-Request-ID", "obs-req-1")); r.StatusCode() != 200 {
		t.Fatalf("me: %d", r.StatusCode())
	}
	in.raw(t, "GET", "/api/v1/users/me", "", nil, "Authorization", "Bearer "+tok, "User-Agent", "evil\tagent")

	out := logs.String()
	for name, secret := range map[string]string{
		"password": pw, "new password": next, "access token": pair.AccessToken, "refresh token": pair.RefreshToken,
		"rotated refresh token": ref.JSON200.RefreshToken, "rotated access token": tok, "Authorization header": "Bearer ",
		"token signature": tok[strings.LastIndexByte(tok, '.')+1:],
	} {
		if strings.Contains(out, secret) {
			t.Errorf("the logs contain the %s", name)
		}
	}
	var access int
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a log line is not JSON (control characters unescaped?): %q", line)
		}
		if rec["msg"] != "request" {
			continue
		}
		access++
		for _, k := range []string{"method", "route", "status", "duration_ms", "request_id"} {
			if _, ok := rec[k]; !ok {
				t.Fatalf("access line without %s: %s", k, line)
			}
		}
		if rec["request_id"] == "obs-req-1" && (rec["route"] != "/api/v1/users/me" || rec["user_id"] != reg.JSON201.Id.String()) {
			t.Fatalf("access line of me: %s", line)
		}
	}
	if access != 7 {
		t.Fatalf("%d access lines for 7 requests", access)
	}
}

// Every line logged while a request is served carries its trace_id and span_id, not only its
// access line: PortcullisRefreshTokenReuse sends on-call from the WARN line of a reuse to its
// trace, and a 500's "request failed" line is found by it.
func TestLogsOfARequestCarryItsTrace(t *testing.T) {
	var logs syncBuffer
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{}) // as telemetry.SetupTracing does
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	in, _ := startObserved(t, &logs, func(c *config.Config) { c.Auth.RefreshReuseGrace = 0 })
	ctx := context.Background()
	pair := in.login(t, in.register(t))
	if r, err := in.client.RefreshTokensWithResponse(ctx, api.RefreshTokensJSONRequestBody{RefreshToken: pair.RefreshToken}); err != nil || r.StatusCode() != 200 {
		t.Fatalf("refresh: %v", err)
	}
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	r, err := in.client.RefreshTokensWithResponse(ctx, api.RefreshTokensJSONRequestBody{RefreshToken: pair.RefreshToken},
		header("Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01"))
	if err != nil || r.StatusCode() != 401 {
		t.Fatalf("reused refresh: %v", err)
	}
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a log line is not JSON: %q", line)
		}
		if rec["msg"] == "request" && rec["status"] == float64(401) && rec["trace_id"] != traceID {
			t.Errorf("the access line of the reuse has no trace_id %s: %s", traceID, line)
		}
		if rec["msg"] != "refresh token reuse detected; session revoked" {
			continue
		}
		found = true
		if rec["trace_id"] != traceID || rec["span_id"] == nil {
			t.Errorf("the reuse line has no trace_id %s and span_id: %s", traceID, line)
		}
	}
	if !found {
		t.Fatalf("no reuse line in the logs:\n%s", logs.String())
	}
}

// Metrics are labelled by route template and bounded: random paths add no series, and no email,
// token or user id ever becomes a label.
func TestMetricsAreBoundedAndCountOutcomes(t *testing.T) {
	var logs syncBuffer
	in, a := startObserved(t, &logs)
	acct := in.register(t)
	pair := in.login(t, acct)
	email := acct.User.Email
	if r, _ := in.client.LoginWithResponse(context.Background(), api.LoginJSONRequestBody{Email: &email, Password: "wrong password here"}); r.StatusCode() != 401 {
		t.Fatal("bad login")
	}
	in.me(t, pair.AccessToken)
	scrape := func() string {
		rec := httptest.NewRecorder()
		a.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	series := func(body, name string) int {
		n := 0
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, name+"{") {
				n++
			}
		}
		return n
	}
	before := scrape()
	for _, want := range []string{
		`portcullis_http_requests_total{method="GET",route="/api/v1/users/me",status_class="2xx"} 1`,
		`portcullis_auth_logins_total{outcome="success"} 1`,
		`portcullis_auth_logins_total{outcome="bad_credentials"} 1`,
		`portcullis_auth_registrations_total 1`,
		"portcullis_password_hash_duration_seconds_count 3\n", // the registration and both logins
		"portcullis_password_hash_wait_seconds_count 3\n",
		"portcullis_password_hashes_running 0\n",
		"portcullis_password_hashes_queued 0\n",
		`portcullis_db_pool_connections{state="max"}`,
		`rueidis_dial_success`, // the Redis client's own metrics, through the OpenTelemetry meter provider
		`portcullis_redis_cached_reads_total{answered_from="redis"}`,
		`portcullis_ratelimit_decisions_total{allowed="true",decided_by="redis",limit="login-ip"} 2`,
		`portcullis_ratelimit_decisions_total{allowed="true",decided_by="credit",limit="ip"}`,
		`go_goroutines`,
	} {
		if !strings.Contains(before, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for i := range 10000 {
		req := httptest.NewRequest("GET", fmt.Sprintf("/random/%d/%x", i, i*7919), nil)
		a.Handler.ServeHTTP(httptest.NewRecorder(), req)
	}
	after := scrape()
	if grown := series(after, "portcullis_http_requests_total") - series(before, "portcullis_http_requests_total"); grown > 1 {
		t.Fatalf("10,000 random paths added %d series (at most the one \"unmatched\" may appear)", grown)
	}
	for _, leak := range []string{string(acct.User.Email), acct.User.Id.String(), acct.User.Username, pair.SessionId.String()} {
		if strings.Contains(after, leak) {
			t.Fatalf("a metric label holds %q", leak)
		}
	}
}

// A request's span names the client as the rate limits and the audit trail do: otelecho reads
// http.client_ip from X-Forwarded-For whoever sent it, so a trace showed any address a client
// chose to write there.
func TestSpansNameTheClientTheServiceBelieves(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	t.Cleanup(telemetry.UseTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))))
	var logs syncBuffer
	in, _ := startObserved(t, &logs)
	resp, _ := in.raw(t, "GET", "/api/v1/users/me", "", nil, "X-Forwarded-For", "203.0.113.9")
	if resp.StatusCode != 401 {
		t.Fatalf("me without a token: %d", resp.StatusCode)
	}
	var found bool
	for _, s := range rec.Ended() {
		if s.SpanKind() != trace.SpanKindServer {
			continue
		}
		for _, kv := range s.Attributes() {
			if kv.Key == "http.client_ip" {
				found = true
				if got := kv.Value.AsString(); got != "127.0.0.1" {
					t.Errorf("the span's http.client_ip is %q, want the peer 127.0.0.1 (no proxy is trusted)", got)
				}
			}
		}
	}
	if !found {
		t.Fatal("no server span with http.client_ip")
	}
}

// An incoming traceparent is continued, the trace id comes back in X-Trace-Id, and the request's
// span (named by its route template) has SQL, Redis and password-hash spans beneath it.
func TestTracesNameRoutesAndReachTheDatabases(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	t.Cleanup(telemetry.UseTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))))
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{}) // as telemetry.SetupTracing does
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	var logs syncBuffer
	in, _ := startObserved(t, &logs)
	acct := in.register(t)
	pair := in.login(t, acct)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	r, err := in.client.GetMeWithResponse(context.Background(), bearer(pair.AccessToken), header("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01"))
	if err != nil || r.StatusCode() != 200 {
		t.Fatalf("me: %v", err)
	}
	if got := r.HTTPResponse.Header.Get("X-Trace-Id"); got != traceID {
		t.Fatalf("X-Trace-Id = %q, want the incoming %s", got, traceID)
	}
	spans := rec.Ended()
	var server sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.SpanContext().TraceID().String() == traceID && s.Parent().SpanID().String() == "00f067aa0ba902b7" {
			server = s
		}
	}
	if server == nil || !strings.Contains(server.Name(), "/api/v1/users/me") {
		t.Fatalf("no server span named by the route template in the trace; got %v", names(spans, traceID))
	}
	systems := map[string]bool{}
	for _, s := range spans {
		if s.SpanContext().TraceID().String() != traceID {
			continue
		}
		for _, kv := range s.Attributes() {
			if kv.Key == "db.system" || kv.Key == "db.system.name" {
				systems[kv.Value.AsString()] = true
			}
		}
	}
	if !systems["redis"] {
		t.Errorf("no Redis span under the request (db systems seen: %v; spans %v)", systems, names(spans, traceID))
	}
	// The session cache answered /users/me; the login went to PostgreSQL and hashed a password.
	var sql, hash bool
	for _, s := range spans {
		for _, kv := range s.Attributes() {
			if (kv.Key == "db.system" || kv.Key == "db.system.name") && kv.Value.AsString() == "postgresql" {
				sql = true
			}
		}
		hash = hash || s.Name() == "password.Verify"
	}
	if !sql || !hash {
		t.Fatalf("SQL spans %v, password span %v", sql, hash)
	}
}

func names(spans []sdktrace.ReadOnlySpan, traceID string) []string {
	var out []string
	for _, s := range spans {
		if s.SpanContext().TraceID().String() == traceID {
			out = append(out, s.Name())
		}
	}
	return out
}

// During shutdown readiness fails first, naming why, while liveness still answers.
func TestReadinessDrainsBeforeShutdown(t *testing.T) {
	var logs syncBuffer
	in, a := startObserved(t, &logs)
	a.Drain()
	r, err := in.client.GetReadinessWithResponse(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p := wantProblem(t, r, r.Body, http.StatusServiceUnavailable, "not-ready")
	if (*p.Checks)["server"] != "unavailable" || (*p.Checks)["postgres"] != "ok" {
		t.Fatalf("checks while draining: %v", *p.Checks)
	}
	if h, _ := in.client.GetHealthWithResponse(context.Background()); h.StatusCode() != 200 {
		t.Fatal("liveness failed while draining")
	}
}

// The method label is bounded too: a client may send any token as the method, and each one
// used to become a new series of the request counter and of every histogram bucket, for the
// unmatched route and for real routes alike (the rate limit does not help: a refused request is
// counted as well). Methods outside the standard ones are counted as "OTHER".
func TestMetricsMethodLabelIsBounded(t *testing.T) {
	var logs syncBuffer
	_, a := startObserved(t, &logs)
	scrape := func() string {
		rec := httptest.NewRecorder()
		a.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	count := func(body string) int {
		n := 0
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "portcullis_http_request") {
				n++
			}
		}
		return n
	}
	before := count(scrape())
	for i := range 200 {
		for _, path := range []string{"/random", "/api/v1/users/me", "/healthz"} {
			req := httptest.NewRequest("GET", path, nil)
			req.Method = fmt.Sprintf("M%05dX", i)
			a.Handler.ServeHTTP(httptest.NewRecorder(), req)
		}
	}
	after := scrape()
	// One method ("OTHER") on three routes, each a counter, a histogram's buckets, sum and count.
	if grown := count(after) - before; grown > 3*(1+12+3) {
		t.Fatalf("200 made-up methods added %d metric lines", grown)
	}
	if strings.Contains(after, "M00001X") {
		t.Fatal("a made-up method became a label value")
	}
	if !strings.Contains(after, `method="OTHER"`) {
		t.Fatal("made-up methods are not counted as OTHER")
	}
}
