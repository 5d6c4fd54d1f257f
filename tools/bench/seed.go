package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/oapi-codegen/runtime/types"
	"github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/benchdata"
)

// refreshWorkers and the other concurrencies are the scenarios' own, fixed by issue 7.
const (
	refreshWorkers = 32
	loginWorkers   = 32
	pageLimit      = 50
)

// account is a seeded user.
type account struct {
	email, password string
	access          string // of the session opened while seeding
}

// env is everything the scenarios need from the seeding.
type env struct {
	db         *benchDB
	api        *api.ClientWithResponses
	http       *http.Client
	accounts   []account
	chains     []string // one refresh token per refresh worker, each of its own session
	adminToken string
	// The admin listing's requests, as paths with their query strings.
	filterFirst, filterDeep, filterShort, unfiltered string
	deepPage                                         int
}

// seed loads the bench database: the listing's users in SQL (only those missing), the admin with
// `portcullis admin create`, and -users users through the API, each logged in.
func seed(ctx context.Context, o options, db *benchDB, srv *server) (*env, error) {
	if err := db.connect(ctx); err != nil {
		return nil, err
	}
	if err := seedListUsers(ctx, db, o.listUsers); err != nil {
		return nil, err
	}
	const adminEmail, adminPassword = "bench-admin@example.com", "bench admin passphrase for portcullis"
	if err := createAdmin(ctx, db, srv, adminEmail, adminPassword); err != nil {
		return nil, err
	}

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, IdleConnTimeout: time.Minute}}
	c, err := api.NewClientWithResponses(srv.url, api.WithHTTPClient(hc))
	if err != nil {
		return nil, err
	}
	e := &env{db: db, api: c, http: hc, accounts: make([]account, o.users)}
	begin := time.Now()
	if err := parallel(runtime.NumCPU(), o.users, func(i int) error {
		a := account{email: fmt.Sprintf("bench-user-%d@example.com", i), password: fmt.Sprintf("bench passphrase %d for portcullis", i)}
		if err := register(ctx, c, i, a); err != nil {
			return err
		}
		pair, err := login(ctx, c, a.email, a.password)
		a.access = pair.AccessToken
		e.accounts[i] = a
		return err
	}); err != nil {
		return nil, err
	}
	e.chains = make([]string, refreshWorkers)
	if err := parallel(runtime.NumCPU(), refreshWorkers, func(i int) error {
		a := e.accounts[i%len(e.accounts)]
		pair, err := login(ctx, c, a.email, a.password)
		e.chains[i] = pair.RefreshToken
		return err
	}); err != nil {
		return nil, err
	}
	logf("registered and logged in %d users, opened %d refresh sessions in %v", o.users, refreshWorkers, time.Since(begin).Round(time.Millisecond))

	admin, err := login(ctx, c, adminEmail, adminPassword)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	e.adminToken = admin.AccessToken
	if err := e.adminRequests(ctx, o); err != nil {
		return nil, err
	}
	return e, nil
}

// seedListUsers bulk-inserts the listing's users up to want with benchdata.ListingUsers, as
// internal/httpserver's seedMillion does. Earlier runs' rows are reused.
func seedListUsers(ctx context.Context, db *benchDB, want int) error {
	var have int
	if err := db.pool.QueryRow(ctx, "SELECT count(*) FROM users WHERE email LIKE 'member%@example.com'").Scan(&have); err != nil {
		return fmt.Errorf("count listing users: %w", err)
	}
	if have >= want {
		logf("%d listing users already seeded", have)
		// Statistics as production would have them, whatever a migration since rewrote.
		_, err := db.pool.Exec(ctx, "ANALYZE")
		return err
	}
	logf("seeding listing users %d..%d (once per database)", have+1, want)
	begin := time.Now()
	if err := benchdata.ListingUsers(ctx, db.pool, have+1, want); err != nil {
		return err
	}
	logf("seeded %d listing users in %v", want-have, time.Since(begin).Round(time.Millisecond))
	return nil
}

// createAdmin runs `portcullis admin create` unless an earlier run did.
func createAdmin(ctx context.Context, db *benchDB, srv *server, email, password string) error {
	var exists bool
	if err := db.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = $1)", email).Scan(&exists); err != nil {
		return fmt.Errorf("look up the admin: %w", err)
	}
	if exists {
		return nil
	}
	cmd := exec.CommandContext(ctx, srv.binary, "admin", "create", "-email", email, "-username", "bench_admin", "-password-stdin")
	cmd.Env, cmd.Stdin = srv.env, strings.NewReader(password+"\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("portcullis admin create: %w: %s", err, out)
	}
	return nil
}

// register creates the account; one left by an earlier run is kept.
func register(ctx context.Context, c *api.ClientWithResponses, i int, a account) error {
	name := fmt.Sprintf("Bench User %d", i)
	return retryOverloaded(func() (int, error) {
		resp, err := c.RegisterUserWithResponse(ctx, api.RegisterRequest{
			Email: types.Email(a.email), Username: fmt.Sprintf("bench_user_%d", i), Password: a.password, FullName: &name,
		})
		if err != nil {
			return 0, err
		}
		switch resp.StatusCode() {
		case http.StatusCreated, http.StatusConflict:
			return resp.StatusCode(), nil
		}
		return resp.StatusCode(), fmt.Errorf("register %s: %s: %s", a.email, resp.Status(), resp.Body)
	})
}

// login opens a session.
func login(ctx context.Context, c *api.ClientWithResponses, email, password string) (api.TokenPair, error) {
	var pair api.TokenPair
	e := types.Email(email)
	err := retryOverloaded(func() (int, error) {
		resp, err := c.LoginWithResponse(ctx, api.LoginRequest{Email: &e, Password: password})
		if err != nil {
			return 0, err
		}
		if resp.JSON200 == nil {
			return resp.StatusCode(), fmt.Errorf("login %s: %s: %s", email, resp.Status(), resp.Body)
		}
		pair = *resp.JSON200
		return http.StatusOK, nil
	})
	return pair, err
}

// retryOverloaded repeats a call the hashing gate shed with 503.
func retryOverloaded(call func() (int, error)) error {
	for range 100 {
		status, err := call()
		if status != http.StatusServiceUnavailable {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("503 overloaded 100 times in a row")
}

// adminRequests builds the listing's requests: the text filter's first page, a page far into it
// (found by walking next_cursor), a short filter's first page, and the unfiltered first page.
func (e *env) adminRequests(ctx context.Context, o options) error {
	const base = "/api/v1/admin/users?"
	first := url.Values{"limit": {fmt.Sprint(pageLimit)}, "q": {o.query}}
	e.filterFirst = base + first.Encode()
	e.filterShort = base + url.Values{"limit": {fmt.Sprint(pageLimit)}, "q": {o.shortQuery}}.Encode()
	e.unfiltered = base + url.Values{"limit": {fmt.Sprint(pageLimit)}}.Encode()
	e.filterDeep, e.deepPage = e.filterFirst, 1
	auth := func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+e.adminToken)
		return nil
	}
	limit, q := pageLimit, o.query
	params := api.AdminListUsersParams{Limit: &limit, Q: &q}
	for page := 1; page <= o.deepPages; page++ {
		resp, err := e.api.AdminListUsersWithResponse(ctx, &params, auth)
		if err != nil {
			return fmt.Errorf("admin listing page %d: %w", page, err)
		}
		if resp.JSON200 == nil {
			return fmt.Errorf("admin listing page %d: %s: %s", page, resp.Status(), resp.Body)
		}
		if page > 1 {
			deep := url.Values{"limit": {fmt.Sprint(pageLimit)}, "q": {o.query}, "cursor": {*params.Cursor}}
			e.filterDeep, e.deepPage = base+deep.Encode(), page
		}
		next, err := resp.JSON200.NextCursor.Get()
		if err != nil || next == "" {
			break
		}
		params.Cursor = &next
	}
	logf("admin listing: q=%q deep page is page %d", o.query, e.deepPage)
	return nil
}

// parallel runs do(0..n-1) on workers goroutines and returns the first error.
func parallel(workers, n int, do func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  int
	)
	for range min(workers, n) {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil
				mu.Unlock()
				if i >= n || stop {
					return
				}
				if err := do(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return first
}
