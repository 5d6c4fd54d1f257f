// Command telemetry checks, against a running Portcullis and a Jaeger query API, that the
// service's traces are whole: a request carrying a W3C traceparent continues that trace and is
// answered with its trace id; the HTTP server span is named by the route template; PostgreSQL and
// Redis calls are child spans of it; and a login's trace holds the password-hashing span.
//
// It is run by tools/e2e/telemetry.sh, which starts Jaeger and the service first:
//
//	go run ./telemetry -base http://127.0.0.1:8080 -jaeger http://127.0.0.1:16686 -service portcullis-e2e-123
//
// One line per assertion; the exit status is 1 when any fails, 2 when the run could not start.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"
)

func main() {
	base := flag.String("base", "", "base URL of the service, e.g. http://127.0.0.1:8080")
	jaegerURL := flag.String("jaeger", "http://127.0.0.1:16686", "base URL of the Jaeger query API")
	service := flag.String("service", "", "OTEL_SERVICE_NAME the service was started with")
	wait := flag.Duration("wait", 20*time.Second, "how long to wait for each trace to reach Jaeger")
	verbose := flag.Bool("v", false, "print every checked trace's span tree, not only failing ones")
	flag.Parse()
	if *base == "" || *service == "" {
		fmt.Fprintln(os.Stderr, "usage: telemetry -base URL -service NAME [-jaeger URL] [-wait 20s] [-v]")
		os.Exit(2)
	}
	c := &checker{
		api:     &client{base: strings.TrimRight(*base, "/"), http: &http.Client{Timeout: 15 * time.Second}},
		jaeger:  &jaeger{base: strings.TrimRight(*jaegerURL, "/"), http: &http.Client{Timeout: 10 * time.Second}},
		service: *service,
		wait:    *wait,
		verbose: *verbose,
	}
	if err := c.run(); err != nil {
		fmt.Printf("ERROR %v\n", err)
		os.Exit(2)
	}
	fmt.Printf("telemetry e2e: %d passed, %d failed\n", c.passed, c.failed)
	if c.failed > 0 {
		os.Exit(1)
	}
}

type checker struct {
	api     *client
	jaeger  *jaeger
	service string
	wait    time.Duration
	verbose bool

	passed, failed int
}

func (c *checker) check(ok bool, what string, detail string, args ...any) bool {
	if ok {
		c.passed++
		fmt.Printf("PASS  %s\n", what)
	} else {
		c.failed++
		fmt.Printf("FAIL  %s: %s\n", what, fmt.Sprintf(detail, args...))
	}
	return ok
}

func (c *checker) run() error {
	// The account: register and log in without a traceparent (the service starts those traces).
	suffix := randomHex(6)
	email := "e2e-telemetry-" + suffix + "@example.com"
	username := "e2e_tel_" + suffix
	password := "e2e telemetry passphrase " + randomHex(8)

	status, body, _, err := c.api.do("POST", "/api/v1/auth/register", "", "", map[string]string{
		"email": email, "username": username, "password": password,
	})
	if err != nil {
		return err
	}
	if status != http.StatusCreated {
		return fmt.Errorf("register: HTTP %d: %s", status, body)
	}
	fmt.Printf("INFO  registered %s\n", username)

	status, body, _, err = c.api.do("POST", "/api/v1/auth/login", "", "", map[string]string{
		"email": email, "password": password,
	})
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("login: HTTP %d: %s", status, body)
	}
	var tokens struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tokens); err != nil || tokens.AccessToken == "" {
		return fmt.Errorf("login: no access_token in %s", body)
	}
	fmt.Println("INFO  logged in")

	// GET /api/v1/users/me inside a trace of ours.
	meTrace, meParent := randomHex(16), randomHex(8)
	status, body, hdr, err := c.api.do("GET", "/api/v1/users/me", tokens.AccessToken, traceparent(meTrace, meParent), nil)
	if err != nil {
		return err
	}
	c.check(status == http.StatusOK && strings.Contains(string(body), username),
		"GET /api/v1/users/me answers 200 with the account", "HTTP %d: %.200s", status, body)
	fmt.Printf("INFO  sent traceparent %s\n", traceparent(meTrace, meParent))
	c.checkEchoedTraceID(hdr, meTrace)

	// A route with a path parameter, to tell a route template from a raw path.
	sessTrace, sessParent := randomHex(16), randomHex(8)
	sessionID := randomUUID()
	status, _, _, err = c.api.do("DELETE", "/api/v1/users/me/sessions/"+sessionID, tokens.AccessToken, traceparent(sessTrace, sessParent), nil)
	if err != nil {
		return err
	}
	fmt.Printf("INFO  DELETE /api/v1/users/me/sessions/%s (unknown session) answered %d\n", sessionID, status)

	// Jaeger must know the service at all; otherwise every other check fails for one reason.
	if !c.waitForService() {
		return nil
	}

	c.checkMeTrace(meTrace, meParent)
	c.checkParamRoute(sessTrace, sessionID)
	c.checkLoginTrace()
	return nil
}

// checkEchoedTraceID: the answer names the trace it belongs to, in X-Trace-Id or traceparent.
func (c *checker) checkEchoedTraceID(h http.Header, traceID string) {
	xt, tp := h.Get("X-Trace-Id"), h.Get("Traceparent")
	ok := strings.EqualFold(strings.TrimSpace(xt), traceID) || strings.Contains(strings.ToLower(tp), traceID)
	c.check(ok, "response echoes the trace id (X-Trace-Id or traceparent)",
		"want %s, got X-Trace-Id=%q traceparent=%q", traceID, xt, tp)
}

func (c *checker) waitForService() bool {
	deadline := time.Now().Add(c.wait)
	var seen []string
	for {
		var err error
		seen, err = c.jaeger.services()
		if err == nil && contains(seen, c.service) {
			c.check(true, fmt.Sprintf("Jaeger received spans from service %q", c.service), "")
			return true
		}
		if time.Now().After(deadline) {
			detail := fmt.Sprintf("no span from %q reached Jaeger within %s (Jaeger knows services %v)", c.service, c.wait, seen)
			if err != nil {
				detail = fmt.Sprintf("Jaeger query API: %v", err)
			}
			c.check(false, fmt.Sprintf("Jaeger received spans from service %q", c.service), "%s. "+
				"The service exported no traces: is OpenTelemetry wired in and does it honour "+
				"OTEL_TRACES_EXPORTER=otlp / OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_SERVICE_NAME?", detail)
			return false
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// checkMeTrace: the trace we started holds the server span of GET /api/v1/users/me, a child of
// our span, with PostgreSQL and Redis spans beneath it.
func (c *checker) checkMeTrace(traceID, parentSpanID string) {
	const route = "/api/v1/users/me"
	isServer := func(s *span) bool {
		return s.kind() == "server" && strings.Contains(s.OperationName, route) && !strings.Contains(s.OperationName, route+"/")
	}
	complete := func(t *trace) bool {
		srv := t.find(isServer)
		return srv != nil && t.descendant(srv, isPostgres) != nil && t.descendant(srv, isRedis) != nil
	}
	t, err := c.jaeger.waitTrace(traceID, c.wait, complete)
	if !c.check(err == nil, "trace "+traceID+" of GET "+route+" is in Jaeger", "%v", err) {
		return
	}
	srv := t.find(isServer)
	if !c.check(srv != nil, fmt.Sprintf("server span named by the route template %q", route),
		"no span with span.kind=server whose name contains %q; spans: %s", route, t.names()) {
		c.dump("GET "+route, t)
		return
	}
	fmt.Printf("INFO  server span %q (service %q, http.route=%v)\n", srv.OperationName, t.service(srv), srv.tag("http.route"))
	c.check(t.service(srv) == c.service, "server span belongs to service "+c.service, "it belongs to %q", t.service(srv))
	c.check(srv.parentID() == parentSpanID, "server span continues the incoming traceparent (parent span "+parentSpanID+")",
		"its parent is %q", srv.parentID())

	pg := t.descendant(srv, isPostgres)
	if c.check(pg != nil, "PostgreSQL span under the server span", "%s", c.missing(t, srv, isPostgres)) {
		fmt.Printf("INFO  PostgreSQL span %q (%s)\n", short(pg.OperationName), pg.describeDB())
	}
	rd := t.descendant(srv, isRedis)
	if c.check(rd != nil, "Redis span under the server span", "%s", c.missing(t, srv, isRedis)) {
		fmt.Printf("INFO  Redis span %q (%s)\n", short(rd.OperationName), rd.describeDB())
	}
	c.noteSQLNames(t)
	if c.verbose || pg == nil || rd == nil {
		c.dump("GET "+route, t)
	}
}

// checkParamRoute: a path with an id is named by its template, never by the id.
func (c *checker) checkParamRoute(traceID, sessionID string) {
	const prefix = "/api/v1/users/me/sessions/"
	isServer := func(s *span) bool { return s.kind() == "server" && strings.Contains(s.OperationName, prefix) }
	t, err := c.jaeger.waitTrace(traceID, c.wait, func(t *trace) bool { return t.find(isServer) != nil })
	if !c.check(err == nil, "trace "+traceID+" of DELETE "+prefix+"{session_id} is in Jaeger", "%v", err) {
		return
	}
	srv := t.find(isServer)
	if srv == nil {
		c.check(false, "server span of DELETE "+prefix+"{session_id}", "spans: %s", t.names())
		c.dump("DELETE "+prefix+"{session_id}", t)
		return
	}
	templated := !strings.Contains(srv.OperationName, sessionID) &&
		(strings.Contains(srv.OperationName, "{session_id}") || strings.Contains(srv.OperationName, ":session_id"))
	c.check(templated, "span name is the route template, not the raw path", "got %q", srv.OperationName)
	if !strings.Contains(srv.OperationName, "{session_id}") && templated {
		fmt.Printf("NOTE  span name %q uses Echo's :param syntax, not the OpenAPI template %s{session_id}\n", srv.OperationName, prefix)
	}
	if r, ok := srv.tag("http.route").(string); ok && strings.Contains(r, sessionID) {
		c.check(false, "http.route attribute is the template", "got %q", r)
	}
}

var passwordSpan = regexp.MustCompile(`(?i)password|argon2|authenticate`)

// checkLoginTrace finds the login the service traced on its own (no traceparent was sent) through
// Jaeger's search, and looks for the password-hashing span in it.
func (c *checker) checkLoginTrace() {
	const route = "/api/v1/auth/login"
	deadline := time.Now().Add(c.wait)
	var op string
	for op == "" {
		ops, err := c.jaeger.operations(c.service)
		for _, o := range ops {
			if strings.Contains(o.Name, route) && (o.SpanKind == "" || o.SpanKind == "server") {
				op = o.Name
			}
		}
		if op != "" {
			break
		}
		if time.Now().After(deadline) {
			names := make([]string, 0, len(ops))
			for _, o := range ops {
				names = append(names, o.Name+"("+o.SpanKind+")")
			}
			c.check(false, "Jaeger lists a server operation for "+route, "err=%v; operations of %s: %v", err, c.service, names)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	c.check(true, fmt.Sprintf("Jaeger lists a server operation for %s (%q)", route, op), "")

	isServer := func(s *span) bool { return s.kind() == "server" && strings.Contains(s.OperationName, route) }
	// Not a database span: SQL text such as "SELECT ... hashed_password" must not count.
	isPassword := func(s *span) bool { return s.dbSystem() == "" && passwordSpan.MatchString(s.OperationName) }
	var found *trace
	for found == nil {
		traces, err := c.jaeger.search(c.service, op)
		for _, t := range traces {
			if t.find(isServer) != nil && t.find(isPassword) != nil {
				found = t
				break
			}
		}
		if found != nil {
			break
		}
		if time.Now().After(deadline) {
			if err == nil && len(traces) > 0 {
				found = traces[0] // report on what is there
				break
			}
			c.check(false, "login trace found by searching service+operation", "err=%v, %d traces", err, len(traces))
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	c.check(true, "login trace found by searching service+operation ("+found.TraceID+")", "")
	srv := found.find(isServer)
	pw := found.find(isPassword)
	if !c.check(pw != nil, "login trace has a password span (name matching "+passwordSpan.String()+")",
		"spans: %s", found.names()) {
		c.dump("POST "+route, found)
		return
	}
	fmt.Printf("INFO  password span %q\n", short(pw.OperationName))
	if srv != nil {
		under := false
		for _, s := range found.subtree(srv) {
			if s == pw {
				under = true
			}
		}
		c.check(under, "password span is under the login server span", "%q has parent %q", pw.OperationName, pw.parentID())
	}
	if c.verbose {
		c.dump("POST "+route, found)
	}
}

// noteSQLNames points out, without failing, SQL span names that carry the whole statement and
// db.operation.name values that are no SQL verb, such as "--" from sqlc's "-- name: X" comment.
func (c *checker) noteSQLNames(t *trace) {
	var long, badOp []string
	for _, s := range t.Spans {
		if s.dbSystem() != "postgresql" && s.dbSystem() != "postgres" {
			continue
		}
		if strings.Contains(s.OperationName, "\n") || len(s.OperationName) > 80 {
			long = append(long, s.OperationName)
		}
		if op := s.str("db.operation.name"); op != "" && !sqlVerb.MatchString(op) {
			badOp = append(badOp, op)
		}
	}
	if len(long) > 0 {
		fmt.Printf("NOTE  %d SQL span names are the whole statement, e.g. %q\n", len(long), short(long[0]))
	}
	if len(badOp) > 0 {
		fmt.Printf("NOTE  %d SQL spans have a db.operation.name that is no SQL operation, e.g. %q\n", len(badOp), badOp[0])
	}
}

// missing explains why no matching span is under root: none at all, or some elsewhere in the trace.
func (c *checker) missing(t *trace, root *span, match func(*span) bool) string {
	var elsewhere []string
	for _, s := range t.Spans {
		if match(s) {
			elsewhere = append(elsewhere, fmt.Sprintf("%q (parent %q)", s.OperationName, s.parentID()))
		}
	}
	if len(elsewhere) > 0 {
		return fmt.Sprintf("matching spans exist in the trace but not under %q: %s — context not propagated?", root.OperationName, strings.Join(elsewhere, ", "))
	}
	return fmt.Sprintf("no matching span anywhere in the trace (%d spans: %s)", len(t.Spans), t.names())
}

func (c *checker) dump(title string, t *trace) {
	fmt.Printf("----  span tree of %s, trace %s\n", title, t.TraceID)
	var walk func(s *span, depth int)
	walk = func(s *span, depth int) {
		extra := []string{"kind=" + s.kind()}
		if d := s.describeDB(); d != "" {
			extra = append(extra, d)
		}
		if v := s.tag("http.route"); v != nil {
			extra = append(extra, fmt.Sprintf("http.route=%v", v))
		}
		fmt.Printf("      %s%s [%s] (%s)\n", strings.Repeat("  ", depth), short(s.OperationName), t.service(s), strings.Join(extra, " "))
		for _, ch := range t.children[s.SpanID] {
			walk(ch, depth+1)
		}
	}
	for _, r := range t.roots() {
		walk(r, 0)
	}
}

// --- classification of spans ---

var sqlVerb = regexp.MustCompile(`(?i)^(select|insert|update|delete|with|begin|commit|rollback|copy|call|merge|query|batch|prepare)\b`)

// isPostgres: a span of a statement sent to PostgreSQL (db.system=postgresql, or failing that a
// name starting with a SQL verb or "query"); pool.acquire and connect spans do not count.
func isPostgres(s *span) bool {
	if sys := s.dbSystem(); sys != "" && sys != "postgresql" && sys != "postgres" {
		return false
	}
	return sqlVerb.MatchString(strings.TrimSpace(s.OperationName)) || s.tag("db.statement") != nil || s.tag("db.query.text") != nil
}

var redisCommands = map[string]bool{
	"GET": true, "SET": true, "SETNX": true, "SETEX": true, "GETEX": true, "GETDEL": true, "DEL": true, "UNLINK": true,
	"EXISTS": true, "EXPIRE": true, "PEXPIRE": true, "TTL": true, "PTTL": true, "INCR": true, "INCRBY": true,
	"DECR": true, "MGET": true, "MSET": true, "HGET": true, "HSET": true, "HGETALL": true, "HDEL": true, "HINCRBY": true,
	"EVAL": true, "EVALSHA": true, "EVAL_RO": true, "EVALSHA_RO": true, "SCRIPT": true, "ZADD": true, "ZRANGE": true,
	"ZREM": true, "SADD": true, "SREM": true, "SMEMBERS": true, "PING": true, "MULTI": true, "EXEC": true,
	"PUBLISH": true, "CLIENT": true, "HELLO": true,
}

func isRedis(s *span) bool {
	if sys := s.dbSystem(); sys != "" {
		return sys == "redis"
	}
	first, _, _ := strings.Cut(strings.TrimSpace(s.OperationName), " ")
	return redisCommands[strings.ToUpper(first)] && first == strings.ToUpper(first)
}

// --- the service ---

type client struct {
	base string
	http *http.Client
}

func (c *client) do(method, path, bearer, tp string, body any) (int, []byte, http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, nil, err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if tp != "" {
		req.Header.Set("Traceparent", tp)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, resp.Header, err
}

// --- Jaeger's query API (the JSON API behind its UI, /api/...) ---

type jaeger struct {
	base string
	http *http.Client
}

type trace struct {
	TraceID   string             `json:"traceID"`
	Spans     []*span            `json:"spans"`
	Processes map[string]process `json:"processes"`

	byID     map[string]*span
	children map[string][]*span
}

type process struct {
	ServiceName string `json:"serviceName"`
}

type span struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	StartTime int64 `json:"startTime"`
	Tags      []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
	ProcessID string `json:"processID"`
}

func (s *span) tag(key string) any {
	for _, t := range s.Tags {
		if t.Key == key {
			return t.Value
		}
	}
	return nil
}

func (s *span) str(key string) string {
	if v, ok := s.tag(key).(string); ok {
		return v
	}
	return ""
}

func (s *span) kind() string { return s.str("span.kind") }

// dbSystem reads db.system (semconv before 1.26) or db.system.name (1.26 and later).
func (s *span) dbSystem() string {
	if v := s.str("db.system"); v != "" {
		return v
	}
	return s.str("db.system.name")
}

func (s *span) describeDB() string {
	var parts []string
	for _, k := range []string{"db.system", "db.system.name", "db.operation", "db.operation.name", "db.statement", "db.query.text"} {
		if v := s.tag(k); v != nil {
			parts = append(parts, k+"="+short(fmt.Sprint(v)))
		}
	}
	return strings.Join(parts, " ")
}

func (s *span) parentID() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	if len(s.References) > 0 {
		return s.References[0].SpanID
	}
	return ""
}

func (t *trace) index() {
	t.byID = map[string]*span{}
	t.children = map[string][]*span{}
	sort.Slice(t.Spans, func(i, j int) bool { return t.Spans[i].StartTime < t.Spans[j].StartTime })
	for _, s := range t.Spans {
		t.byID[s.SpanID] = s
	}
	for _, s := range t.Spans {
		if p := s.parentID(); p != "" {
			t.children[p] = append(t.children[p], s)
		}
	}
}

func (t *trace) service(s *span) string { return t.Processes[s.ProcessID].ServiceName }

func (t *trace) find(match func(*span) bool) *span {
	for _, s := range t.Spans {
		if match(s) {
			return s
		}
	}
	return nil
}

func (t *trace) subtree(root *span) []*span {
	var out []*span
	var walk func(*span)
	walk = func(s *span) {
		for _, ch := range t.children[s.SpanID] {
			out = append(out, ch)
			walk(ch)
		}
	}
	walk(root)
	return out
}

func (t *trace) descendant(root *span, match func(*span) bool) *span {
	for _, s := range t.subtree(root) {
		if match(s) {
			return s
		}
	}
	return nil
}

// roots are the spans whose parent is not in the trace (e.g. the client span we only invented).
func (t *trace) roots() []*span {
	var out []*span
	for _, s := range t.Spans {
		if _, ok := t.byID[s.parentID()]; !ok {
			out = append(out, s)
		}
	}
	return out
}

func (t *trace) names() string {
	var n []string
	for _, s := range t.Spans {
		n = append(n, fmt.Sprintf("%q(%s)", short(s.OperationName), s.kind()))
	}
	return strings.Join(n, ", ")
}

func (j *jaeger) get(path string, out any) (int, error) {
	resp, err := j.http.Get(j.base + path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("GET %s: HTTP %d: %.200s", path, resp.StatusCode, b)
	}
	return resp.StatusCode, json.Unmarshal(b, out)
}

func (j *jaeger) services() ([]string, error) {
	var r struct {
		Data []string `json:"data"`
	}
	_, err := j.get("/api/services", &r)
	return r.Data, err
}

type operation struct {
	Name     string `json:"name"`
	SpanKind string `json:"spanKind"`
}

func (j *jaeger) operations(service string) ([]operation, error) {
	var r struct {
		Data []operation `json:"data"`
	}
	_, err := j.get("/api/operations?service="+url.QueryEscape(service), &r)
	return r.Data, err
}

func (j *jaeger) search(service, op string) ([]*trace, error) {
	q := url.Values{"service": {service}, "operation": {op}, "limit": {"20"}, "lookback": {"1h"}}
	var r struct {
		Data []*trace `json:"data"`
	}
	if _, err := j.get("/api/traces?"+q.Encode(), &r); err != nil {
		return nil, err
	}
	for _, t := range r.Data {
		t.index()
	}
	return r.Data, nil
}

var errNoTrace = errors.New("not in Jaeger")

func (j *jaeger) trace(id string) (*trace, error) {
	var r struct {
		Data []*trace `json:"data"`
	}
	status, err := j.get("/api/traces/"+id, &r)
	if status == http.StatusNotFound {
		return nil, errNoTrace
	}
	if err != nil {
		return nil, err
	}
	if len(r.Data) == 0 {
		return nil, errNoTrace
	}
	r.Data[0].index()
	return r.Data[0], nil
}

// waitTrace polls until the trace is complete by done (spans arrive in batches) or time is up,
// and then returns what there is.
func (j *jaeger) waitTrace(id string, wait time.Duration, done func(*trace) bool) (*trace, error) {
	deadline := time.Now().Add(wait)
	for {
		t, err := j.trace(id)
		if err == nil && done(t) {
			return t, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				return t, nil
			}
			if errors.Is(err, errNoTrace) {
				return nil, fmt.Errorf("no trace %s in Jaeger after %s: the service did not export it (traceparent ignored, or spans not exported)", id, wait)
			}
			return nil, err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// --- helpers ---

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func randomUUID() string {
	h := randomHex(16)
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

func traceparent(traceID, spanID string) string { return "00-" + traceID + "-" + spanID + "-01" }

// short puts a span name or attribute (SQL text, say) on one line of at most 100 characters.
func short(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 100 {
		return string(r[:99]) + "…"
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
