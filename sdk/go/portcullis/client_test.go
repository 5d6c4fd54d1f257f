package portcullis_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/app"
	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/sdk/go/portcullis"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func serve(t *testing.T) string {
	t.Helper()
	return serveWith(t, func(*config.Config) {})
}

// serveWith is serve with a configuration that edit changes.
func serveWith(t *testing.T, edit func(*config.Config)) string {
	t.Helper()
	cfg := testenv.Config(t)
	edit(&cfg)
	a, err := app.New(context.Background(), cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(func() { srv.Close(); a.Close() })
	return srv.URL
}

func TestLoginCallAndTransparentRefresh(t *testing.T) {
	url := serve(t)
	ctx := context.Background()
	c, err := portcullis.New(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := c.API.RegisterUserWithResponse(ctx, api.RegisterUserJSONRequestBody{Email: "sdk@example.com", Username: "sdkuser", Password: "a long and unusual passphrase"})
	if err != nil || reg.JSON201 == nil {
		t.Fatalf("register: %v %s", err, reg.Body)
	}
	err = c.Login(ctx, "sdk@example.com", "not the password")
	var p *portcullis.Problem
	if !errors.As(err, &p) || p.Code != "invalid-credentials" || p.Status != 401 {
		t.Fatalf("wrong password: %v", err)
	}
	if err := c.Login(ctx, "sdk@example.com", "a long and unusual passphrase"); err != nil {
		t.Fatal(err)
	}
	me, err := c.API.GetMeWithResponse(ctx)
	if err != nil || me.JSON200 == nil || me.JSON200.Id != reg.JSON201.Id {
		t.Fatalf("me: %v %s", err, me.Body)
	}

	// The access token goes bad (as when it expires): the next calls refresh once and go on.
	before := c.Tokens()
	broken := before
	broken.AccessToken = "eyJhbGciOiJFZERTQSJ9.eyJ9.c2ln"
	c.SetTokens(broken)
	var wg sync.WaitGroup
	statuses := make([]int, 8)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.API.GetMeWithResponse(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			statuses[i] = r.StatusCode()
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("call %d after expiry: %d", i, s)
		}
	}
	after := c.Tokens()
	if after.RefreshToken == before.RefreshToken || after.SessionId != before.SessionId {
		t.Fatalf("tokens were not rotated within the same session: %+v", after)
	}

	// A revoked session is not papered over by refreshing.
	if r, err := c.API.LogoutWithResponse(ctx); err != nil || r.StatusCode() != http.StatusNoContent {
		t.Fatalf("logout: %v %d", err, r.StatusCode())
	}
	r, err := c.API.GetMeWithResponse(ctx)
	if err != nil || r.StatusCode() != http.StatusUnauthorized {
		t.Fatalf("me after logout: %v %d", err, r.StatusCode())
	}
}

// slowRefresh delays the answers of refresh, after the service has rotated: as a slow network
// would, beyond the deadline of the call that needed the refresh.
type slowRefresh struct {
	next  http.RoundTripper
	delay atomic.Int64 // nanoseconds; 0: no delay
}

func (s *slowRefresh) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.next.RoundTrip(r)
	if d := time.Duration(s.delay.Load()); err == nil && d > 0 && r.URL.Path == "/api/v1/auth/refresh" {
		select {
		case <-time.After(d):
		case <-r.Context().Done(): // the request was given up: its answer is lost
			resp.Body.Close()
			return nil, r.Context().Err()
		}
	}
	return resp, err
}

func signedIn(t *testing.T, hc *http.Client) *portcullis.Client {
	t.Helper()
	return signedInAt(t, serve(t), hc)
}

// signedInAt is signedIn at the service at url.
func signedInAt(t *testing.T, url string, hc *http.Client) *portcullis.Client {
	t.Helper()
	ctx := context.Background()
	c, err := portcullis.New(url, hc)
	if err != nil {
		t.Fatal(err)
	}
	name := "sdk" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	if r, err := c.API.RegisterUserWithResponse(ctx, api.RegisterUserJSONRequestBody{Email: api.Email(name + "@example.com"), Username: name, Password: "a long and unusual passphrase"}); err != nil || r.JSON201 == nil {
		t.Fatalf("register: %v", err)
	}
	if err := c.Login(ctx, name+"@example.com", "a long and unusual passphrase"); err != nil {
		t.Fatal(err)
	}
	return c
}

// A refresh started by a call with a short deadline runs to its end: the calls waiting on it
// get the new tokens, and the client never keeps a token the service has spent (whose next use
// would revoke the session as theft).
func TestRefreshOutlivesTheCallThatStartedIt(t *testing.T) {
	slow := &slowRefresh{next: http.DefaultTransport}
	c := signedIn(t, &http.Client{Transport: slow})
	ctx := context.Background()
	before := c.Tokens()
	expired := before
	expired.AccessToken = "eyJhbGciOiJFZERTQSJ9.eyJ9.c2ln"
	c.SetTokens(expired)
	slow.delay.Store(int64(600 * time.Millisecond))
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, _ = c.API.GetMeWithResponse(short) // gives up while the refresh is under way
	r, err := c.API.GetMeWithResponse(ctx)
	if err != nil || r.StatusCode() != http.StatusOK {
		t.Fatalf("a call without a deadline after the short one: %v %d", err, r.StatusCode())
	}
	slow.delay.Store(0)
	if got := c.Tokens(); got.RefreshToken == before.RefreshToken {
		t.Fatal("the client kept the refresh token the service spent")
	}
	if err := c.Refresh(ctx); err != nil {
		t.Fatalf("the next refresh: %v (a spent token would be refresh-token-reused)", err)
	}
}

// A refresh token the service refuses is dropped with its pair: later calls do not send it
// again, and the error says to sign in again while keeping the service's answer.
func TestRefusedRefreshDropsThePair(t *testing.T) {
	c := signedIn(t, nil)
	ctx := context.Background()
	pair := c.Tokens()
	if r, err := c.API.LogoutWithResponse(ctx); err != nil || r.StatusCode() != http.StatusNoContent {
		t.Fatalf("logout through the API: %v", err)
	}
	c.SetTokens(pair) // as if the logout had happened elsewhere
	err := c.Refresh(ctx)
	var p *portcullis.Problem
	if !errors.Is(err, portcullis.ErrNotSignedIn) || !errors.As(err, &p) || p.Status != http.StatusUnauthorized {
		t.Fatalf("refresh of an ended session = %v, want ErrNotSignedIn and the 401 problem", err)
	}
	if got := c.Tokens(); got.RefreshToken != "" || got.AccessToken != "" {
		t.Fatalf("the dead pair is still stored: %+v", got)
	}
	if err := c.Refresh(ctx); !errors.Is(err, portcullis.ErrNotSignedIn) {
		t.Fatalf("refresh with no pair = %v, want ErrNotSignedIn", err)
	}
}

// Logout ends the session and forgets its tokens.
func TestLogoutForgetsTheTokens(t *testing.T) {
	c := signedIn(t, nil)
	ctx := context.Background()
	pair := c.Tokens()
	if err := c.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.Tokens(); got.RefreshToken != "" || got.AccessToken != "" {
		t.Fatalf("tokens after Logout: %+v", got)
	}
	c.SetTokens(pair)
	if r, err := c.API.GetMeWithResponse(ctx); err != nil || r.StatusCode() != http.StatusUnauthorized {
		t.Fatalf("the logged-out pair still works: %v %d", err, r.StatusCode())
	}
}

// A refusal that says when to come back keeps that in the Problem.
func TestProblemKeepsRetryAfter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "2")
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"type":"https://portcullis.dev/problems/overloaded","title":"Service Unavailable","status":503,"code":"overloaded"}`))
	}))
	defer srv.Close()
	c, err := portcullis.New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	var p *portcullis.Problem
	if err := c.Login(context.Background(), "a@example.com", "whatever password"); !errors.As(err, &p) || p.Code != "overloaded" || p.RetryAfter != 2*time.Second {
		t.Fatalf("Login against a busy service = %v (%+v), want overloaded with RetryAfter 2s", err, p)
	}
}

// heldRefresh is a fake service whose refresh answers only when released, with a pair of its own.
func heldRefresh(t *testing.T) (url string, entered, release chan struct{}) {
	entered, release = make(chan struct{}, 1), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/auth/refresh":
			entered <- struct{}{}
			<-release
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"A2","refresh_token":"RA2","token_type":"Bearer","expires_in":900,"refresh_expires_in":1000,"session_id":"00000000-0000-0000-0000-000000000001"}`))
		case "/api/v1/auth/logout":
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, entered, release
}

// A refresh still under way when the pair is replaced (another user signs in) or cleared
// (Logout) does not bring its own pair back when it ends.
func TestARefreshNeverOverwritesANewerPair(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(*portcullis.Client)
		want   string
	}{
		{"SetTokens", func(c *portcullis.Client) { c.SetTokens(api.TokenPair{AccessToken: "B1", RefreshToken: "RB1"}) }, "RB1"},
		{"Logout", func(c *portcullis.Client) { _ = c.Logout(context.Background()) }, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			url, entered, release := heldRefresh(t)
			cl, err := portcullis.New(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			cl.SetTokens(api.TokenPair{AccessToken: "A1", RefreshToken: "RA1"})
			done := make(chan error, 1)
			go func() { done <- cl.Refresh(context.Background()) }()
			<-entered
			c.change(cl)
			close(release)
			if err := <-done; err == nil {
				t.Fatal("the refresh of a replaced pair reported success")
			}
			if got := cl.Tokens(); got.RefreshToken != c.want {
				t.Fatalf("after %s and the old refresh's end, the stored refresh token is %q, want %q", c.name, got.RefreshToken, c.want)
			}
		})
	}
}

// Logout reports a session it could not end: an expired access token whose refresh failed for
// now (here 503) leaves the session alive at the service, and Logout says why.
func TestLogoutSaysWhenTheSessionMayStillBeAlive(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		switch r.URL.Path {
		case "/api/v1/auth/refresh":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"type":"https://portcullis.dev/problems/overloaded","title":"Service Unavailable","status":503,"code":"overloaded"}`))
		default:
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"type":"https://portcullis.dev/problems/invalid-token","title":"Unauthorized","status":401,"code":"invalid-token"}`))
		}
	}))
	defer srv.Close()
	c, err := portcullis.New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetTokens(api.TokenPair{AccessToken: "expired", RefreshToken: "R1"})
	var p *portcullis.Problem
	if err := c.Logout(context.Background()); !errors.As(err, &p) || p.Code != "overloaded" || p.Status != http.StatusServiceUnavailable {
		t.Fatalf("Logout with an expired token and a failing refresh = %v, want the refresh's overloaded problem", err)
	}
	if got := c.Tokens(); got.RefreshToken != "" {
		t.Fatalf("Logout kept the tokens: %+v", got)
	}
}

// gate counts refreshes and can hold the answer of the next GET /api/v1/users/me until released,
// as a slow network would.
type gate struct {
	next      http.RoundTripper
	refreshes atomic.Int32
	holdNext  atomic.Bool
	held      chan struct{} // receives when an answer is held
	release   chan struct{}
}

func newGate() *gate {
	return &gate{next: http.DefaultTransport, held: make(chan struct{}, 1), release: make(chan struct{})}
}

func (g *gate) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == "/api/v1/auth/refresh" {
		g.refreshes.Add(1)
	}
	resp, err := g.next.RoundTrip(r)
	if r.URL.Path == "/api/v1/users/me" && g.holdNext.CompareAndSwap(true, false) {
		g.held <- struct{}{}
		<-g.release
	}
	return resp, err
}

// A call whose 401 arrives after another call's refresh has ended retries with the new access
// token: it does not spend the new refresh token on a second refresh.
func TestALate401ReusesTheRefreshThatEnded(t *testing.T) {
	g := newGate()
	c := signedIn(t, &http.Client{Transport: g})
	ctx := context.Background()
	expired := c.Tokens()
	expired.AccessToken = "eyJhbGciOiJFZERTQSJ9.eyJ9.c2ln"
	c.SetTokens(expired)

	g.holdNext.Store(true)
	late := make(chan int, 1)
	go func() {
		r, err := c.API.GetMeWithResponse(ctx)
		if err != nil {
			t.Error(err)
			late <- 0
			return
		}
		late <- r.StatusCode()
	}()
	<-g.held // its 401 is on the way
	if r, err := c.API.GetMeWithResponse(ctx); err != nil || r.StatusCode() != http.StatusOK {
		t.Fatalf("a call after expiry: %v %d", err, r.StatusCode())
	}
	close(g.release)
	if s := <-late; s != http.StatusOK {
		t.Fatalf("the call whose 401 came late: %d", s)
	}
	if n := g.refreshes.Load(); n != 1 {
		t.Fatalf("%d refreshes for one expired access token, want 1", n)
	}
}

// A call that brings its own Authorization header is not the stored pair's: its 401 does not
// spend the stored refresh token.
func TestACallersOwnTokenIsNotRefreshed(t *testing.T) {
	g := newGate()
	c := signedIn(t, &http.Client{Transport: g})
	ctx := context.Background()
	before := c.Tokens()
	own := func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer eyJhbGciOiJFZERTQSJ9.eyJ9.c2ln")
		return nil
	}
	if r, err := c.API.GetMeWithResponse(ctx, own); err != nil || r.StatusCode() != http.StatusUnauthorized {
		t.Fatalf("a call with a bad token of its own: %v %d", err, r.StatusCode())
	}
	if n := g.refreshes.Load(); n != 0 || c.Tokens().RefreshToken != before.RefreshToken {
		t.Fatalf("the stored pair was refreshed (%d refreshes) for a token the caller supplied", n)
	}
}

// A refresh that loses a race (409: another process sharing the persisted pair has just spent
// the same refresh token) drops the spent token: sent again after the grace window, it would be
// taken as theft and revoke the session the winner now holds.
func TestARefreshThatLostARaceDropsTheSpentToken(t *testing.T) {
	const grace = time.Second
	url := serveWith(t, func(cfg *config.Config) { cfg.Auth.RefreshReuseGrace = grace })
	ctx := context.Background()
	c := signedInAt(t, url, nil)
	winner, err := portcullis.New(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	winner.SetTokens(c.Tokens())
	if err := winner.Refresh(ctx); err != nil {
		t.Fatalf("the winner's refresh: %v", err)
	}
	lost := c.Refresh(ctx)
	time.Sleep(grace + 100*time.Millisecond)
	_ = c.Refresh(ctx) // a later refresh, after the window
	if r, err := winner.API.GetMeWithResponse(ctx); err != nil || r.StatusCode() != http.StatusOK {
		t.Fatalf("the winner's session did not survive the loser's later refresh: %v %d %s", err, r.StatusCode(), r.Body)
	}
	var p *portcullis.Problem
	if !errors.Is(lost, portcullis.ErrNotSignedIn) || !errors.As(lost, &p) || p.Code != "refresh-token-race" {
		t.Fatalf("the refresh that lost = %v, want ErrNotSignedIn and the refresh-token-race problem", lost)
	}
	if got := c.Tokens(); got.RefreshToken != "" {
		t.Fatalf("the loser still holds a refresh token: %+v", got)
	}
}

// The access token goes only to the service: a redirect to another host (which Go's client
// follows without the Authorization header it was given) does not get it either.
func TestTheTokenDoesNotFollowARedirectToAnotherHost(t *testing.T) {
	var leaked atomic.Value
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Store(r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusNotFound)
	}))
	defer elsewhere.Close()
	_, port, _ := strings.Cut(strings.TrimPrefix(elsewhere.URL, "http://"), ":")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://localhost:"+port+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	c, err := portcullis.New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetTokens(api.TokenPair{AccessToken: "A1", RefreshToken: "RA1"})
	if _, err := c.API.GetMeWithResponse(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, ok := leaked.Load().(string)
	if !ok {
		t.Fatal("the redirect was not followed")
	}
	if got != "" {
		t.Fatalf("another host got Authorization %q", got)
	}
}

// The http.Client given to New keeps its redirect policy for authenticated calls too.
func TestTheCallersRedirectPolicyHolds(t *testing.T) {
	var followed atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed.Store(true)
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	c, err := portcullis.New(srv.URL, noRedirects)
	if err != nil {
		t.Fatal(err)
	}
	c.SetTokens(api.TokenPair{AccessToken: "A1", RefreshToken: "RA1"})
	r, err := c.API.GetMeWithResponse(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if followed.Load() || r.StatusCode() != http.StatusTemporaryRedirect {
		t.Fatalf("an authenticated call followed a redirect its http.Client refuses (status %d)", r.StatusCode())
	}
}

// A refresh the service could not make now (429, 503) is not a signed-out session: the call that
// needed it fails with the refresh's own problem, Retry-After included, rather than with the
// call's 401, and the pair stays for the next try.
func TestACallWhoseRefreshWasRefusedForNowSaysWhy(t *testing.T) {
	url := serveWith(t, func(cfg *config.Config) { cfg.Limits.RefreshIP = "1/1m" })
	ctx := context.Background()
	c := signedInAt(t, url, nil)
	expire := func() {
		p := c.Tokens()
		p.AccessToken = "eyJhbGciOiJFZERTQSJ9.eyJ9.c2ln"
		c.SetTokens(p)
	}
	expire()
	if r, err := c.API.GetMeWithResponse(ctx); err != nil || r.StatusCode() != http.StatusOK {
		t.Fatalf("the first refresh (within the limit): %v %d", err, r.StatusCode())
	}
	expire()
	held := c.Tokens()
	r, err := c.API.GetMeWithResponse(ctx)
	var p *portcullis.Problem
	if !errors.As(err, &p) || p.Status != http.StatusTooManyRequests || p.Code != "rate-limited" || p.RetryAfter <= 0 {
		status := 0
		if r != nil {
			status = r.StatusCode()
		}
		t.Fatalf("a call whose refresh got 429 = %v (status %d), want the 429 rate-limited problem with its Retry-After", err, status)
	}
	if errors.Is(err, portcullis.ErrNotSignedIn) {
		t.Fatalf("a refresh refused for now reads as signed out: %v", err)
	}
	if got := c.Tokens(); got != held {
		t.Fatalf("the pair changed after a refresh refused for now: %+v, want %+v", got, held)
	}
}

// fakeBusyRefresh is a fake service (not Portcullis) whose every call answers 401 invalid-token
// and whose refresh answers with refresh.
func fakeBusyRefresh(t *testing.T, refresh http.HandlerFunc) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/auth/refresh" {
			refresh(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"type":"https://portcullis.dev/problems/invalid-token","title":"Unauthorized","status":401,"code":"invalid-token"}`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// The same for a service at capacity (503), and for a refresh that got no answer at all.
func TestACallWhoseRefreshFailedSaysWhy(t *testing.T) {
	busy := fakeBusyRefresh(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "3")
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"type":"https://portcullis.dev/problems/overloaded","title":"Service Unavailable","status":503,"code":"overloaded"}`))
	})
	gone := fakeBusyRefresh(t, func(w http.ResponseWriter, _ *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close() // no answer
		}
	})
	pair := api.TokenPair{AccessToken: "A1", RefreshToken: "R1", TokenType: "Bearer"}
	for name, url := range map[string]string{"503": busy, "no answer": gone} {
		c, err := portcullis.New(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.SetTokens(pair)
		_, err = c.API.GetMeWithResponse(context.Background())
		var p *portcullis.Problem
		switch {
		case err == nil:
			t.Errorf("%s: the call answered as if its 401 were the outcome, want the refresh's failure", name)
		case errors.Is(err, portcullis.ErrNotSignedIn):
			t.Errorf("%s: %v reads as signed out", name, err)
		case name == "503" && (!errors.As(err, &p) || p.Status != http.StatusServiceUnavailable || p.RetryAfter != 3*time.Second):
			t.Errorf("503: %v, want the overloaded problem with RetryAfter 3s", err)
		}
		if got := c.Tokens(); got != pair {
			t.Errorf("%s: the pair changed: %+v", name, got)
		}
	}
}

// A refresh refused for a reason that will not pass (a 400: the stored token is malformed) is
// a dead pair, like a 401: it is dropped and the call gets its own 401, rather than every later
// call failing with the same 400.
func TestARefreshRefusedForGoodDropsThePair(t *testing.T) {
	url := fakeBusyRefresh(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"type":"https://portcullis.dev/problems/validation-failed","title":"Bad Request","status":400,"code":"validation-failed"}`))
	})
	c, err := portcullis.New(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetTokens(api.TokenPair{AccessToken: "A1", RefreshToken: "R1", TokenType: "Bearer"})
	r, err := c.API.GetMeWithResponse(context.Background())
	if err != nil || r.StatusCode() != http.StatusUnauthorized {
		t.Fatalf("a call whose refresh got 400 = %v (%v), want its own 401", err, r)
	}
	if got := c.Tokens(); got.RefreshToken != "" {
		t.Fatalf("the pair refused for good is still stored: %+v", got)
	}
	c.SetTokens(api.TokenPair{AccessToken: "A1", RefreshToken: "R1", TokenType: "Bearer"})
	var p *portcullis.Problem
	if err := c.Refresh(context.Background()); !errors.Is(err, portcullis.ErrNotSignedIn) || !errors.As(err, &p) || p.Status != http.StatusBadRequest {
		t.Fatalf("Refresh refused with 400 = %v, want ErrNotSignedIn and the 400 problem", err)
	}
}

// A call sent under one session whose 401 arrives after another pair was set (another user
// signed in on this client) is not carried out under the new session: it was made for the
// first, and sending it again with the new token would change or read the other account.
func TestACallIsNeverRetriedUnderAnotherSession(t *testing.T) {
	entered, release := make(chan struct{}, 1), make(chan struct{})
	var withB atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Authorization") {
		case "Bearer A1":
			entered <- struct{}{}
			<-release
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"type":"https://portcullis.dev/problems/invalid-token","title":"Unauthorized","status":401,"code":"invalid-token"}`))
		case "Bearer B1":
			withB.Add(1)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{}`))
		default:
			w.WriteHeader(http.StatusTeapot)
		}
	}))
	defer srv.Close()
	c, err := portcullis.New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := api.TokenPair{AccessToken: "A1", RefreshToken: "RA1", SessionId: [16]byte{1}}
	b := api.TokenPair{AccessToken: "B1", RefreshToken: "RB1", SessionId: [16]byte{2}}
	c.SetTokens(a)
	done := make(chan int, 1)
	go func() {
		r, err := c.API.UpdateMeWithResponse(context.Background(), &api.UpdateMeParams{}, api.UpdateMeJSONRequestBody{})
		if err != nil {
			t.Error(err)
			done <- 0
			return
		}
		done <- r.StatusCode()
	}()
	<-entered
	c.SetTokens(b) // another user signs in while the first user's call is out
	close(release)
	if s := <-done; s != http.StatusUnauthorized || withB.Load() != 0 {
		t.Fatalf("a call sent under session A answered %d after %d requests with session B's token, want its own 401 and none", s, withB.Load())
	}
	if got := c.Tokens(); got != b {
		t.Fatalf("the pair set last changed: %+v", got)
	}
}

// downgrade is a stand-in network: https://auth.test redirects every request to the same path
// on http://auth.test, which records the Authorization it is sent in the clear.
type downgrade struct{ plain atomic.Value }

func (d *downgrade) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "https" {
		return &http.Response{StatusCode: http.StatusTemporaryRedirect, Header: http.Header{"Location": {"http://" + r.URL.Host + r.URL.Path}}, Body: http.NoBody, Request: r}, nil
	}
	d.plain.Store(r.Header.Get("Authorization"))
	return &http.Response{StatusCode: http.StatusNotFound, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

// The access token is not sent in the clear: a redirect from https to http on the same host
// (which Go's client follows, and whose Host matches the service's) does not get it.
func TestTheTokenDoesNotFollowARedirectToPlainHTTP(t *testing.T) {
	d := &downgrade{}
	c, err := portcullis.New("https://auth.test", &http.Client{Transport: d})
	if err != nil {
		t.Fatal(err)
	}
	c.SetTokens(api.TokenPair{AccessToken: "A1", RefreshToken: "RA1"})
	if _, err := c.API.GetMeWithResponse(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, ok := d.plain.Load().(string)
	if !ok {
		t.Fatal("the redirect was not followed")
	}
	if got != "" {
		t.Fatalf("http://auth.test got Authorization %q", got)
	}
}

// A problem with a member of an unexpected type (a gateway's "errors" as strings) or without
// "status" still gives its code, its HTTP status and its Retry-After.
func TestAnOddProblemKeepsItsCode(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"type":"https://portcullis.dev/problems/rate-limited","title":"Too Many Requests","code":"rate-limited","errors":["slow down"]}`))
	}))
	defer srv.Close()
	c, err := portcullis.New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	var p *portcullis.Problem
	if err := c.Login(context.Background(), "a@example.com", "whatever password"); !errors.As(err, &p) || p.Code != "rate-limited" || p.Status != http.StatusTooManyRequests || p.RetryAfter != 7*time.Second {
		t.Fatalf("Login answered by an odd problem = %v (%+v), want rate-limited, status 429, RetryAfter 7s", err, p)
	}
	// A refresh refused for good with such a body is refused for good, not a failure for now
	// that keeps the dead pair.
	url := fakeBusyRefresh(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"type":"https://portcullis.dev/problems/refresh-token-reused","title":"Unauthorized","status":401,"code":"refresh-token-reused","errors":"none"}`))
	})
	if c, err = portcullis.New(url, nil); err != nil {
		t.Fatal(err)
	}
	c.SetTokens(api.TokenPair{AccessToken: "A1", RefreshToken: "R1"})
	if err := c.Refresh(context.Background()); !errors.Is(err, portcullis.ErrNotSignedIn) || !errors.As(err, &p) || p.Code != "refresh-token-reused" {
		t.Fatalf("Refresh refused by an odd problem = %v, want ErrNotSignedIn and refresh-token-reused", err)
	}
	if got := c.Tokens(); got.RefreshToken != "" {
		t.Fatalf("the refused pair is still stored: %+v", got)
	}
}
