package httpserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/google/uuid"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/app"
	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/internal/users"
)

func TestMain(m *testing.M) { testenv.MainThen(m, checkEveryOperationExercised) }

// exercised records, per operationId, the statuses the package's tests received through the
// validating client.
var exercised = struct {
	sync.Mutex
	statuses map[string]map[int]bool
}{statuses: map[string]map[int]bool{}}

func recordExercised(operationID string, status int) {
	exercised.Lock()
	defer exercised.Unlock()
	if exercised.statuses[operationID] == nil {
		exercised.statuses[operationID] = map[int]bool{}
	}
	exercised.statuses[operationID][status] = true
}

// checkEveryOperationExercised fails a complete run of the package when an operation of the
// spec was never seen to succeed and to fail with a documented error. A run filtered with -run
// or -skip, a -list, or one with -short (which skips every test that needs PostgreSQL or Redis)
// is not complete and is not checked.
func checkEveryOperationExercised() error {
	for _, name := range []string{"test.run", "test.skip", "test.list"} {
		if f := flag.Lookup(name); f == nil || f.Value.String() != "" {
			return nil
		}
	}
	if testing.Short() {
		return nil
	}
	spec, err := api.GetSwagger()
	if err != nil {
		return err
	}
	exercised.Lock()
	defer exercised.Unlock()
	var missing []string
	for _, item := range spec.Paths.Map() {
		for _, op := range item.Operations() {
			// An operation that documents no error status of its own (only the default, as
			// /healthz) needs only its success seen.
			ok2xx, okErr := false, !documentsAnError(op)
			want4xx := documents4xx(op)
			for status := range exercised.statuses[strings.ToLower(op.OperationID)] {
				ok2xx = ok2xx || status/100 == 2
				documented := op.Responses.Status(status) != nil || status/100 == 4 && op.Responses.Default() != nil
				// A 4xx where one is documented (as before); a documented 5xx only stands in
				// for an operation with no 4xx of its own (/readyz).
				okErr = okErr || documented && (status/100 == 4 || !want4xx && status >= 400)
			}
			if !ok2xx || !okErr {
				missing = append(missing, fmt.Sprintf("%s (success seen: %v, documented error seen: %v)", op.OperationID, ok2xx, okErr))
			}
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("operations no test exercised fully:\n  %s", strings.Join(missing, "\n  "))
	}
	return nil
}

// documents4xx reports whether op lists a 4xx status (or 4XX) of its own.
func documents4xx(op *openapi3.Operation) bool {
	for code := range op.Responses.Map() {
		if len(code) == 3 && code[0] == '4' {
			return true
		}
	}
	return false
}

// documentsAnError reports whether op lists an error status (400 or above) of its own.
func documentsAnError(op *openapi3.Operation) bool {
	for code := range op.Responses.Map() {
		if n, err := strconv.Atoi(code); err == nil && n >= 400 || len(code) == 3 && code[0] >= '4' && code[1:] == "XX" {
			return true
		}
	}
	return false
}

// instance is one running service under test, reached over real HTTP through the generated
// client. Every response it receives is validated against the spec.
type instance struct {
	t      testing.TB
	cfg    config.Config
	app    *app.App
	url    string
	client *api.ClientWithResponses
}

// start runs a service on a fresh database and Redis prefix; edit adjusts the configuration.
func start(t testing.TB, edit ...func(*config.Config)) *instance {
	t.Helper()
	cfg := testenv.Config(t)
	for _, e := range edit {
		e(&cfg)
	}
	return startWith(t, cfg)
}

// startWith runs a service on cfg: a second instance sharing a first one's database and Redis.
// startBehindPostgresProxy starts an instance that reaches PostgreSQL through a proxy the test
// can cut, to see what it answers while PostgreSQL is unreachable.
func startBehindPostgresProxy(t testing.TB) (*instance, *testenv.Proxy) {
	t.Helper()
	cfg, proxy := behindPostgresProxy(t, testenv.Config(t))
	return startWith(t, cfg), proxy
}

// behindPostgresProxy returns cfg with PostgreSQL reached through a proxy the test controls.
func behindPostgresProxy(t testing.TB, cfg config.Config) (config.Config, *testenv.Proxy) {
	t.Helper()
	var proxy *testenv.Proxy
	cfg.Postgres.URL, proxy = testenv.BehindProxy(t, cfg.Postgres.URL)
	return cfg, proxy
}

func startWith(t testing.TB, cfg config.Config) *instance {
	t.Helper()
	a, err := app.New(context.Background(), cfg, testenv.Logger(t))
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(func() { srv.Close(); a.Close() })
	hc := &http.Client{Transport: &specValidator{t: t, next: http.DefaultTransport, router: specRouter(t)}}
	client, err := api.NewClientWithResponses(srv.URL, api.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	return &instance{t: t, cfg: cfg, app: a, url: srv.URL, client: client}
}

func specRouter(t testing.TB) routers.Router {
	t.Helper()
	spec, err := api.GetSwagger()
	if err != nil {
		t.Fatal(err)
	}
	r, err := gorillamux.NewRouter(spec)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// specValidator checks every response of a documented operation against api/openapi.yaml:
// status documented, content type and body matching the schema, problem+json for errors.
type specValidator struct {
	t         testing.TB
	next      http.RoundTripper
	router    routers.Router
	validated atomic.Int64
}

func (v *specValidator) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	resp, err := v.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if resp.StatusCode >= 400 && !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		v.t.Errorf("%s %s: status %d with Content-Type %q, want application/problem+json", req.Method, req.URL.Path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	vreq := req.Clone(context.Background())
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := v.router.FindRoute(vreq)
	if err != nil {
		return resp, nil // not an operation of the spec (404/405 probes): nothing to validate against
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	recordExercised(strings.ToLower(route.Operation.OperationID), resp.StatusCode)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		v.t.Errorf("%s %s → %d does not match the spec: %v\nbody: %s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
	// kin-openapi checks the headers a response declares, not the ones it sends: those that
	// tell a client what to do must be documented where they are sent.
	for _, name := range documentedHeaders {
		if resp.Header.Get(name) != "" && !declaresHeader(route.Operation, resp.StatusCode, name) {
			v.t.Errorf("%s %s → %d sends %s: %q, which the spec does not declare for that answer", req.Method, req.URL.Path, resp.StatusCode, name, resp.Header.Get(name))
		}
	}
	v.validated.Add(1)
	return resp, nil
}

// documentedHeaders are the response headers that must be declared where they are sent.
var documentedHeaders = []string{"Retry-After", "WWW-Authenticate"}

// declaresHeader reports whether op declares header name on its response for status (or on its
// default response, when status has none of its own).
func declaresHeader(op *openapi3.Operation, status int, name string) bool {
	r := op.Responses.Status(status)
	if r == nil {
		r = op.Responses.Default()
	}
	if r == nil || r.Value == nil {
		return false
	}
	for h := range r.Value.Headers {
		if strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}

// bearer authenticates one call.
func bearer(token string) api.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

// header sets one request header.
func header(name, value string) api.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set(name, value)
		return nil
	}
}

type statusCoder interface{ StatusCode() int }

// wantProblem asserts an RFC 9457 problem with status and code and returns it.
func wantProblem(t testing.TB, r statusCoder, body []byte, status int, code string) api.Problem {
	t.Helper()
	if r.StatusCode() != status {
		t.Fatalf("status = %d, want %d; body: %s", r.StatusCode(), status, body)
	}
	var p api.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem body does not decode: %v: %s", err, body)
	}
	if p.Code != code || p.Status != status || p.Type != "https://portcullis.dev/problems/"+code || p.Title == "" {
		t.Fatalf("problem = %+v, want status %d code %q", p, status, code)
	}
	if p.RequestId == nil || *p.RequestId == "" {
		t.Fatalf("problem has no request_id: %s", body)
	}
	return p
}

// wantField asserts that a problem names field among its errors.
func wantField(t testing.TB, p api.Problem, field string) {
	t.Helper()
	if p.Errors != nil {
		for _, e := range *p.Errors {
			if e.Field == field && e.Detail != "" {
				return
			}
		}
	}
	t.Fatalf("problem does not name field %q: %+v", field, p.Errors)
}

func wantStatus(t testing.TB, r statusCoder, body []byte, status int) {
	t.Helper()
	if r.StatusCode() != status {
		t.Fatalf("status = %d, want %d; body: %s", r.StatusCode(), status, body)
	}
}

// account is a registered user and the password that signs them in.
type account struct {
	User     api.User
	Password string
}

var seq atomic.Int64

// register creates a fresh account through the API.
func (in *instance) register(t testing.TB) account {
	t.Helper()
	n := seq.Add(1)
	name := "user" + strings.ReplaceAll(uuid.NewString()[:8], "-", "") + "n" + string(rune('a'+n%26))
	pw := "a long and unusual passphrase " + name
	r, err := in.client.RegisterUserWithResponse(context.Background(), api.RegisterUserJSONRequestBody{
		Email: api.Email(name + "@example.com"), Username: name, Password: pw,
	})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusCreated)
	return account{User: *r.JSON201, Password: pw}
}

// login signs an account in by email.
func (in *instance) login(t testing.TB, a account) api.TokenPair {
	t.Helper()
	email := a.User.Email
	r, err := in.client.LoginWithResponse(context.Background(), api.LoginJSONRequestBody{Email: &email, Password: a.Password})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusOK)
	return *r.JSON200
}

// me calls GET /users/me and returns the status.
func (in *instance) me(t testing.TB, token string) int {
	t.Helper()
	r, err := in.client.GetMeWithResponse(context.Background(), bearer(token))
	if err != nil {
		t.Fatal(err)
	}
	return r.StatusCode()
}

// invalidationBound bounds how long a change made on one instance may take to reach another's
// memory: far below any cache TTL, so a change seen within it was pushed, not expired.
const invalidationBound = 250 * time.Millisecond

// soon repeats check on the other instance until it passes, failing after invalidationBound.
// Redis pushes an invalidation to every instance the moment a key is written, and it is in the
// other instance's socket before the writing instance answers; that instance applies it when its
// Redis reader goroutine next runs. Normally that is before its next request, but on a loaded
// machine (the race detector, packages tested in parallel) it can come a request later, and then
// the test logs how many requests it took.
func soon(t *testing.T, what string, check func() error) {
	t.Helper()
	start := time.Now()
	for n := 1; ; n++ {
		err := check()
		if err == nil {
			if n > 1 {
				t.Logf("%s: seen on request %d, after %v", what, n, time.Since(start).Round(time.Microsecond))
			}
			return
		}
		if time.Since(start) > invalidationBound {
			t.Fatalf("%s: %v (still, after %d requests over %v)", what, err, n, invalidationBound)
		}
		time.Sleep(time.Millisecond)
	}
}

// raw sends a hand-made request, for input the typed client cannot produce.
func (in *instance) raw(t testing.TB, method, path, contentType string, body io.Reader, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, in.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

type rawStatus struct{ *http.Response }

func (r rawStatus) StatusCode() int { return r.Response.StatusCode }

// createWithRole makes an account with role through the users service (as the CLI does) and
// signs it in.
func (in *instance) createWithRole(t testing.TB, role string) (account, api.TokenPair) {
	t.Helper()
	name := "staff" + strings.ReplaceAll(uuid.NewString()[:13], "-", "")
	pw := "a long and unusual passphrase " + name
	u, err := in.app.Users.Create(context.Background(), nil, users.AdminNewUser{
		NewUser: users.NewUser{Email: name + "@example.com", Username: name, Password: pw}, Role: role,
	})
	if err != nil {
		t.Fatal(err)
	}
	a := account{User: api.User{Id: u.ID, Email: api.Email(u.Email), Username: u.Username, Role: api.Role(u.Role)}, Password: pw}
	return a, in.login(t, a)
}

// auditEvents counts the audit events of action about target (at most a page), read through
// the API with an admin's access token.
func (in *instance) auditEvents(t testing.TB, adminToken, target, action string) int {
	t.Helper()
	r, err := in.client.AdminListAuditEventsWithResponse(context.Background(),
		&api.AdminListAuditEventsParams{TargetId: &target, Action: &action}, bearer(adminToken))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusOK)
	return len(r.JSON200.Items)
}
