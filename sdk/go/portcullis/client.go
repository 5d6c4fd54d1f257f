// Package portcullis is a small hand-written convenience over the generated Go client
// (github.com/portcullis/portcullis/gen/api): it keeps a signed-in session's tokens, sends the
// access token with every call, and when the access token has expired (401 invalid-token) it
// refreshes once — one refresh for all concurrent callers, since refresh tokens are single use —
// and retries the call. A call whose refresh the service refused for good (401, 409 or another
// 4xx but 408 and 429: the session is over, or the token unusable) gets its own 401 and the pair
// is dropped; one whose refresh failed for now (429, 5xx, no answer) returns that error instead,
// a *Problem with its RetryAfter where the service answered, and the pair is kept.
//
//	c, _ := portcullis.New("https://auth.example.com", nil)
//	if err := c.Login(ctx, "ada@example.com", password); err != nil { … }
//	me, _ := c.API.GetMeWithResponse(ctx) // the full generated client, authenticated
package portcullis

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	api "github.com/portcullis/portcullis/gen/api"
)

// ErrNotSignedIn is returned by Refresh when there is no refresh token, or when the service
// refused it (the error then also holds the *Problem): sign in again.
var ErrNotSignedIn = errors.New("portcullis: not signed in")

// refreshTimeout bounds a refresh, which runs to its end whatever happens to the callers that
// wait for it.
const refreshTimeout = 30 * time.Second

// Client is the generated client plus a token store.
type Client struct {
	// API is the generated client; every call through it carries the current access token.
	API *api.ClientWithResponses

	anon *api.Client // for login and refresh themselves, whose answers the SDK reads itself

	mu       sync.Mutex
	tokens   api.TokenPair
	inFlight *flight // the refresh under way, nil when none is
}

// flight is one refresh of the refresh token from, shared by every caller that needs it: err is
// its outcome, set before done is closed.
type flight struct {
	from string
	done chan struct{}
	err  error
}

// New returns a Client for the service at baseURL, using hc (http.DefaultClient when nil).
func New(baseURL string, hc *http.Client) (*Client, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	c := &Client{}
	var err error
	if c.anon, err = api.NewClient(baseURL, api.WithHTTPClient(hc)); err != nil {
		return nil, err
	}
	base, err := url.Parse(baseURL)
	if err != nil {
		return nil, err
	}
	authed := *hc // its redirect policy, jar and timeout hold for authenticated calls too
	authed.Transport = &transport{c: c, scheme: base.Scheme, host: base.Host, next: transportOf(hc)}
	if c.API, err = api.NewClientWithResponses(baseURL, api.WithHTTPClient(&authed)); err != nil {
		return nil, err
	}
	return c, nil
}

func transportOf(hc *http.Client) http.RoundTripper {
	if hc.Transport != nil {
		return hc.Transport
	}
	return http.DefaultTransport
}

// Problem is an error answer of the service, decoded. RetryAfter is its Retry-After header
// (429 and 503 answers carry one): how long to wait before trying again, zero when absent.
type Problem struct {
	api.Problem
	RetryAfter time.Duration
}

func (p *Problem) Error() string {
	detail := ""
	if p.Detail != nil {
		detail = ": " + *p.Detail
	}
	return fmt.Sprintf("portcullis: %d %s%s", p.Status, p.Code, detail)
}

// Login signs in by email and keeps the tokens. A refused login returns a *Problem.
func (c *Client) Login(ctx context.Context, email, password string) error {
	e := api.Email(email)
	resp, err := c.anon.Login(ctx, api.LoginJSONRequestBody{Email: &e, Password: password})
	if err != nil {
		return err
	}
	pair, err := tokenPairOf(resp)
	if err != nil {
		return err
	}
	c.SetTokens(*pair)
	return nil
}

// tokenPairOf reads the answer of a login or a refresh: the pair of a 200, else the *Problem.
// (The generated parsers give up, and lose the answer, on a problem with a member of an
// unexpected type.)
func tokenPairOf(resp *http.Response) (*api.TokenPair, error) {
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, problemOf(resp, body)
	}
	var pair api.TokenPair
	if err := json.Unmarshal(body, &pair); err != nil {
		return nil, fmt.Errorf("portcullis: unreadable token pair: %w", err)
	}
	return &pair, nil
}

// SetTokens installs a token pair obtained elsewhere.
func (c *Client) SetTokens(t api.TokenPair) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tokens = t
}

// Tokens returns the current token pair (to persist it, say).
func (c *Client) Tokens() api.TokenPair {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tokens
}

// Refresh rotates the tokens now. Concurrent callers share one refresh, which runs to its end
// even when ctx ends first: a rotation abandoned after the service made it would leave this
// client with a spent refresh token, whose next use the service treats as theft and answers by
// revoking the session. ctx bounds only how long this caller waits. When the service refuses
// the refresh token (401; 409 refresh-token-race: another holder of the pair spent it first; or
// another 4xx but 408 and 429), the stored pair is dropped and the error holds ErrNotSignedIn
// and the *Problem.
func (c *Client) Refresh(ctx context.Context) error {
	c.mu.Lock()
	refresh := c.tokens.RefreshToken
	if refresh == "" {
		c.mu.Unlock()
		return ErrNotSignedIn
	}
	f := c.inFlight
	if f == nil || f.from != refresh { // none, or one of a pair replaced since (SetTokens, Login)
		f = &flight{from: refresh, done: make(chan struct{})}
		c.inFlight = f
		go c.rotate(context.WithoutCancel(ctx), f)
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// rotate spends f.from for a new pair and ends f. Its outcome is stored only while f.from is
// still the stored refresh token: a pair replaced or cleared meanwhile (SetTokens, Login,
// Logout) stays as it was.
func (c *Client) rotate(ctx context.Context, f *flight) {
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	resp, err := c.anon.RefreshTokens(ctx, api.RefreshTokensJSONRequestBody{RefreshToken: f.from})
	var pair *api.TokenPair
	if err == nil {
		pair, err = tokenPairOf(resp)
	}
	c.mu.Lock()
	defer func() {
		if c.inFlight == f {
			c.inFlight = nil
		}
		close(f.done)
		c.mu.Unlock()
	}()
	current := c.tokens.RefreshToken == f.from
	switch {
	case pair == nil:
		f.err = err
		// 401: a dead pair; 409: a token someone else spent a moment ago, whose next use after
		// the grace window would revoke the session as theft; any other 4xx but 408 and 429: a
		// token the service will never take. Every later call would try it again.
		if resp != nil && refusedForGood(resp.StatusCode) {
			f.err = fmt.Errorf("%w: %w", ErrNotSignedIn, f.err)
			if current {
				c.tokens = api.TokenPair{}
			}
		}
	case current:
		c.tokens = *pair
	default:
		f.err = ErrNotSignedIn // the pair was replaced or cleared meanwhile: its successor is dropped
	}
}

// refusedForGood reports whether a refresh answered status will fail the same way every time:
// a 4xx other than 408 Request Timeout and 429 Too Many Requests. Other failures (429, 5xx, no
// answer) are for now.
func refusedForGood(status int) bool {
	return status >= 400 && status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests
}

// Logout ends the session at the service and forgets the tokens here, even when the service
// cannot be reached (the error says so; the session then ends only when it expires).
func (c *Client) Logout(ctx context.Context) error {
	resp, err := c.API.Logout(ctx)
	c.SetTokens(api.TokenPair{})
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNoContent:
		return nil
	case err != nil:
		return err
	}
	// A 401 saying the session is over means there was nothing left to end; any other answer
	// (a 5xx, say) leaves the session alive at the service.
	err = problemOf(resp, body)
	if p := (*Problem)(nil); errors.As(err, &p) && p.Code == "session-revoked" {
		return nil
	}
	return err
}

// transport adds the access token to requests for the service's origin (scheme and host) and,
// on an expired one, refreshes once and retries. Other hosts (a redirect's target) never get the
// token: Go's client drops the Authorization header on such a redirect, and this transport must
// not put it back. Nor does the service's own host over another scheme: Go's client follows a
// redirect from https to http, and the token would cross the network in the clear.
type transport struct {
	c      *Client
	scheme string
	host   string
	next   http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := bodyBytes(req)
	if err != nil {
		return nil, err
	}
	resp, sent, err := t.send(req, body)
	if err != nil || sent.AccessToken == "" || resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") {
		return resp, err // sent.AccessToken == "": the caller's own token, not the stored pair's
	}
	p, _ := peekProblem(resp)
	if p == nil || p.Code != "invalid-token" { // a revoked session will not come back by refreshing
		return resp, nil
	}
	// A refresh that ended since this call went out has already replaced the token: retry with
	// it rather than spend the new refresh token on a second refresh.
	latest := t.c.Tokens()
	if latest.AccessToken == sent.AccessToken || latest.AccessToken == "" {
		if err := t.c.Refresh(req.Context()); err != nil {
			if errors.Is(err, ErrNotSignedIn) {
				return resp, nil // a dead pair: the caller sees the call's own 401
			}
			// The service could not refresh now (429, 503, no answer) or the caller gave up
			// waiting: the session may be alive, so the call must not read as signed out.
			resp.Body.Close()
			return nil, fmt.Errorf("portcullis: refresh the expired access token: %w", err)
		}
		latest = t.c.Tokens()
	}
	// The call is sent again only under the session it was made for: a pair of another session
	// set meanwhile (another sign-in) must not carry out, as its user, a call made for the first.
	if latest.AccessToken == "" || latest.SessionId != sent.SessionId {
		return resp, nil
	}
	resp.Body.Close()
	return t.next.RoundTrip(withToken(req, body, latest.AccessToken))
}

// send sends a copy of req with the stored access token, unless req carries an Authorization
// header of its own, and returns the pair whose token it added (the zero pair for none).
func (t *transport) send(req *http.Request, body []byte) (*http.Response, api.TokenPair, error) {
	var pair api.TokenPair
	if req.Header.Get("Authorization") == "" && req.URL.Scheme == t.scheme && req.URL.Host == t.host {
		pair = t.c.Tokens()
	}
	resp, err := t.next.RoundTrip(withToken(req, body, pair.AccessToken))
	return resp, pair, err
}

// withToken is a copy of req with body and, unless tok is "", tok as its bearer token.
func withToken(req *http.Request, body []byte, tok string) *http.Request {
	r := req.Clone(req.Context())
	if body != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return r
}

func bodyBytes(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	defer req.Body.Close()
	return io.ReadAll(req.Body)
}

// peekProblem decodes a problem body and puts it back for the caller.
func peekProblem(resp *http.Response) (*api.Problem, error) {
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return decodeProblem(b), nil
}

// decodeProblem decodes a problem document, nil when b is none (not a JSON object with a code).
// The generated decoder gives up at the first member of an unexpected type (a gateway's
// "errors" as a list of strings, say); such members are left out and the others kept, the code
// first of all.
func decodeProblem(b []byte) *api.Problem {
	var p api.Problem
	if json.Unmarshal(b, &p) != nil {
		var members map[string]json.RawMessage
		if json.Unmarshal(b, &members) != nil {
			return nil
		}
		for k, v := range members {
			one, _ := json.Marshal(map[string]json.RawMessage{k: v})
			if json.Unmarshal(one, new(api.Problem)) != nil {
				delete(members, k)
			}
		}
		kept, _ := json.Marshal(members)
		p = api.Problem{}
		if json.Unmarshal(kept, &p) != nil {
			return nil
		}
	}
	if p.Code == "" {
		return nil
	}
	return &p
}

func problemOf(resp *http.Response, body []byte) error {
	p := decodeProblem(body)
	if p == nil {
		return fmt.Errorf("portcullis: unexpected %s", resp.Status)
	}
	if p.Status == 0 { // "status" left out (or unreadable): the answer's own
		p.Status = resp.StatusCode
	}
	out := &Problem{Problem: *p}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		out.RetryAfter = time.Duration(secs) * time.Second
	}
	return out
}
