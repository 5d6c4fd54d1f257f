// Package portcullis is a small hand-written convenience over the generated Go client
// (github.com/portcullis/portcullis/gen/api): it keeps a signed-in session's tokens, sends the
// access token with every call, and when the access token has expired (401 invalid-token) it
// refreshes once — one refresh for all concurrent callers, since refresh tokens are single use —
// and retries the call.
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
	"strings"
	"sync"

	api "github.com/portcullis/portcullis/gen/api"
)

// ErrNotSignedIn is returned by Refresh when there is no refresh token.
var ErrNotSignedIn = errors.New("portcullis: not signed in")

// Client is the generated client plus a token store.
type Client struct {
	// API is the generated client; every call through it carries the current access token.
	API *api.ClientWithResponses

	anon *api.ClientWithResponses // for login and refresh themselves

	mu        sync.Mutex
	tokens    api.TokenPair
	refreshed chan struct{} // closed when the refresh in flight ends; nil when none is
	refreshOK bool
}

// New returns a Client for the service at baseURL, using hc (http.DefaultClient when nil).
func New(baseURL string, hc *http.Client) (*Client, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	c := &Client{}
	var err error
	if c.anon, err = api.NewClientWithResponses(baseURL, api.WithHTTPClient(hc)); err != nil {
		return nil, err
	}
	authed := &http.Client{Transport: &transport{c: c, next: transportOf(hc)}, Timeout: hc.Timeout, Jar: hc.Jar}
	if c.API, err = api.NewClientWithResponses(baseURL, api.WithHTTPClient(authed)); err != nil {
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

// Problem is an error answer of the service, decoded.
type Problem struct{ api.Problem }

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
	r, err := c.anon.LoginWithResponse(ctx, api.LoginJSONRequestBody{Email: &e, Password: password})
	if err != nil {
		return err
	}
	if r.JSON200 == nil {
		return problemOf(r.HTTPResponse, r.Body)
	}
	c.SetTokens(*r.JSON200)
	return nil
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

// Refresh rotates the tokens now. Concurrent callers share one refresh.
func (c *Client) Refresh(ctx context.Context) error {
	c.mu.Lock()
	if ch := c.refreshed; ch != nil { // someone is already refreshing: wait for them
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
		ok := c.refreshOK
		c.mu.Unlock()
		if !ok {
			return ErrNotSignedIn
		}
		return nil
	}
	refresh := c.tokens.RefreshToken
	if refresh == "" {
		c.mu.Unlock()
		return ErrNotSignedIn
	}
	ch := make(chan struct{})
	c.refreshed = ch
	c.mu.Unlock()

	r, err := c.anon.RefreshTokensWithResponse(ctx, api.RefreshTokensJSONRequestBody{RefreshToken: refresh})
	c.mu.Lock()
	defer func() { c.refreshed = nil; close(ch); c.mu.Unlock() }()
	switch {
	case err != nil:
		c.refreshOK = false
		return err
	case r.JSON200 == nil:
		c.refreshOK = false
		return problemOf(r.HTTPResponse, r.Body)
	}
	c.tokens, c.refreshOK = *r.JSON200, true
	return nil
}

// transport adds the access token and, on an expired one, refreshes once and retries.
type transport struct {
	c    *Client
	next http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := bodyBytes(req)
	if err != nil {
		return nil, err
	}
	resp, err := t.send(req, body)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") {
		return resp, err
	}
	p, _ := peekProblem(resp)
	if p == nil || p.Code != "invalid-token" { // a revoked session will not come back by refreshing
		return resp, nil
	}
	if err := t.c.Refresh(req.Context()); err != nil {
		return resp, nil //nolint:nilerr // the caller sees the original 401
	}
	resp.Body.Close()
	return t.send(req, body)
}

func (t *transport) send(req *http.Request, body []byte) (*http.Response, error) {
	r := req.Clone(req.Context())
	if body != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	if tok := t.c.Tokens().AccessToken; tok != "" && r.Header.Get("Authorization") == "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return t.next.RoundTrip(r)
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
	var p api.Problem
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

func problemOf(resp *http.Response, body []byte) error {
	var p api.Problem
	if err := json.Unmarshal(body, &p); err != nil || p.Code == "" {
		return fmt.Errorf("portcullis: unexpected %s", resp.Status)
	}
	return &Problem{p}
}
