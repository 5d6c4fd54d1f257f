package httpserver_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/config"
)

func TestRegisterLoginRefreshMeLogout(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	name := "Ada Lovelace"
	reg, err := in.client.RegisterUserWithResponse(ctx, api.RegisterUserJSONRequestBody{
		Email: "Ada@Example.com", Username: "ada", Password: "correct horse battery staple", FullName: &name,
	})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, reg, reg.Body, http.StatusCreated)
	u := reg.JSON201
	// The domain is stored as IDNA maps it (lower case), the local part as typed.
	if u.Email != "Ada@example.com" || u.Username != "ada" || u.Role != api.RoleUser || !u.IsActive || u.IsVerified || u.FullName.MustGet() != name {
		t.Fatalf("registered user = %+v", u)
	}
	if strings.Contains(string(reg.Body), "password") {
		t.Fatalf("user response mentions a password: %s", reg.Body)
	}

	email := api.Email("ADA@example.COM") // login is case-insensitive on email
	login, err := in.client.LoginWithResponse(ctx, api.LoginJSONRequestBody{Email: &email, Password: "correct horse battery staple"})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, login, login.Body, http.StatusOK)
	pair := login.JSON200
	if pair.TokenType != api.Bearer || pair.ExpiresIn != 900 || pair.RefreshExpiresIn != 30*24*3600 || !strings.HasPrefix(pair.RefreshToken, "prt_") {
		t.Fatalf("token pair = %+v", pair)
	}

	me, err := in.client.GetMeWithResponse(ctx, bearer(pair.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, me, me.Body, http.StatusOK)
	if me.JSON200.Id != u.Id {
		t.Fatalf("me = %v, want %v", me.JSON200.Id, u.Id)
	}

	ref, err := in.client.RefreshTokensWithResponse(ctx, api.RefreshTokensJSONRequestBody{RefreshToken: pair.RefreshToken})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, ref, ref.Body, http.StatusOK)
	if ref.JSON200.RefreshToken == pair.RefreshToken || ref.JSON200.SessionId != pair.SessionId || ref.JSON200.AccessToken == pair.AccessToken {
		t.Fatalf("refresh did not rotate: %+v", ref.JSON200)
	}
	if got := in.me(t, ref.JSON200.AccessToken); got != http.StatusOK {
		t.Fatalf("me with refreshed token = %d", got)
	}

	out, err := in.client.LogoutWithResponse(ctx, bearer(ref.JSON200.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, out, out.Body, http.StatusNoContent)
	// Both access tokens of the session die with it, long before they expire.
	for _, tok := range []string{pair.AccessToken, ref.JSON200.AccessToken} {
		r, err := in.client.GetMeWithResponse(ctx, bearer(tok))
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, r, r.Body, http.StatusUnauthorized, "session-revoked")
		if got := r.HTTPResponse.Header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
			t.Fatalf("WWW-Authenticate = %q", got)
		}
	}
	again, err := in.client.RefreshTokensWithResponse(ctx, api.RefreshTokensJSONRequestBody{RefreshToken: ref.JSON200.RefreshToken})
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, again, again.Body, http.StatusUnauthorized, "invalid-refresh-token")
}

func TestLoginByUsernameAndIdentifierRules(t *testing.T) {
	in := start(t)
	a := in.register(t)
	ctx := context.Background()
	upper := strings.ToUpper(a.User.Username)
	r, err := in.client.LoginWithResponse(ctx, api.LoginJSONRequestBody{Username: &upper, Password: a.Password})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusOK)

	email := a.User.Email
	tests := []struct {
		name string
		body api.LoginJSONRequestBody
	}{
		{"both identifiers", api.LoginJSONRequestBody{Email: &email, Username: &a.User.Username, Password: a.Password}},
		{"no identifier", api.LoginJSONRequestBody{Password: a.Password}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := in.client.LoginWithResponse(ctx, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			p := wantProblem(t, r, r.Body, http.StatusBadRequest, "invalid-request")
			wantField(t, p, "email")
		})
	}
}

func TestLoginDoesNotRevealWhichAccountsExist(t *testing.T) {
	// Real hashing cost, so that skipping the hash for unknown accounts would show in the timing.
	in := start(t, func(c *config.Config) {
		c.Password = config.Password{MemoryKiB: 8 * 1024, Iterations: 2, Parallelism: 1}
	})
	a := in.register(t)
	ctx := context.Background()
	attempt := func(email api.Email) (time.Duration, *api.LoginResponse) {
		begin := time.Now()
		r, err := in.client.LoginWithResponse(ctx, api.LoginJSONRequestBody{Email: &email, Password: "not the password at all"})
		if err != nil {
			t.Fatal(err)
		}
		return time.Since(begin), r
	}
	_, known := attempt(a.User.Email)
	_, unknown := attempt("nobody-" + a.User.Email)
	pk := wantProblem(t, known, known.Body, http.StatusUnauthorized, "invalid-credentials")
	pu := wantProblem(t, unknown, unknown.Body, http.StatusUnauthorized, "invalid-credentials")
	if *pk.Detail != *pu.Detail || pk.Title != pu.Title {
		t.Fatalf("answers differ:\n%s\n%s", known.Body, unknown.Body)
	}
	// Median of interleaved attempts: the unknown account must cost as much as a wrong password.
	const n = 9
	var dk, du []time.Duration
	for i := 0; i < n; i++ {
		d, _ := attempt(a.User.Email)
		dk = append(dk, d)
		d, _ = attempt("nobody-" + a.User.Email)
		du = append(du, d)
	}
	mk, mu := median(dk), median(du)
	// Skipping the hash would make the unknown account ~10x faster; the band allows for a
	// loaded machine (make test runs packages in parallel).
	if ratio := float64(mu) / float64(mk); ratio < 0.4 || ratio > 2.5 {
		t.Fatalf("median time unknown account %v vs wrong password %v (ratio %.2f): timing reveals accounts", mu, mk, ratio)
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}

func TestRefreshTokenReuseRevokesTheSession(t *testing.T) {
	in := start(t, func(c *config.Config) { c.Auth.RefreshReuseGrace = 0 })
	a := in.register(t)
	first := in.login(t, a)
	ctx := context.Background()
	second, err := in.client.RefreshTokensWithResponse(ctx, api.RefreshTokensJSONRequestBody{RefreshToken: first.RefreshToken})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, second, second.Body, http.StatusOK)

	// The spent token comes back (a thief, or a broken client): the whole session ends.
	reuse, err := in.client.RefreshTokensWithResponse(ctx, api.RefreshTokensJSONRequestBody{RefreshToken: first.RefreshToken})
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, reuse, reuse.Body, http.StatusUnauthorized, "refresh-token-reused")
	if got := in.me(t, second.JSON200.AccessToken); got != http.StatusUnauthorized {
		t.Fatalf("access token of the revoked session: status %d, want 401", got)
	}
	next, err := in.client.RefreshTokensWithResponse(ctx, api.RefreshTokensJSONRequestBody{RefreshToken: second.JSON200.RefreshToken})
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, next, next.Body, http.StatusUnauthorized, "invalid-refresh-token")
}

func TestRefreshRaceLeavesTheSessionWorking(t *testing.T) {
	in := start(t)
	a := in.register(t)
	pair := in.login(t, a)
	ctx := context.Background()
	const racers = 12
	var (
		wg      sync.WaitGroup
		gate    = make(chan struct{})
		results = make([]*api.RefreshTokensResponse, racers)
	)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			r, err := in.client.RefreshTokensWithResponse(ctx, api.RefreshTokensJSONRequestBody{RefreshToken: pair.RefreshToken})
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = r
		}()
	}
	close(gate)
	wg.Wait()
	var winner *api.TokenPair
	for _, r := range results {
		switch {
		case r == nil:
			t.Fatal("a racer failed")
		case r.StatusCode() == http.StatusOK:
			if winner != nil {
				t.Fatal("two racers both rotated the same refresh token")
			}
			winner = r.JSON200
		default:
			wantProblem(t, r, r.Body, http.StatusConflict, "refresh-token-race")
		}
	}
	if winner == nil {
		t.Fatal("no racer won")
	}
	// The session survives the race: the winner's tokens work.
	if got := in.me(t, winner.AccessToken); got != http.StatusOK {
		t.Fatalf("winner's access token: %d", got)
	}
	r, err := in.client.RefreshTokensWithResponse(ctx, api.RefreshTokensJSONRequestBody{RefreshToken: winner.RefreshToken})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusOK)
}

func TestRevocationIsSeenByEveryInstance(t *testing.T) {
	a := start(t)
	b := startWith(t, a.cfg) // same database, same Redis prefix
	acct := a.register(t)
	pair := a.login(t, acct)
	for range 2 { // the second read is answered from, and keeps the session in, B's memory
		if got := b.me(t, pair.AccessToken); got != http.StatusOK {
			t.Fatalf("instance B before logout: %d", got)
		}
	}
	out, err := a.client.LogoutWithResponse(context.Background(), bearer(pair.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, out, out.Body, http.StatusNoContent)
	soon(t, "instance B right after logout on A", func() error {
		if got := b.me(t, pair.AccessToken); got != http.StatusUnauthorized {
			return fmt.Errorf("status %d, want 401", got)
		}
		return nil
	})
	// Tokens signed by A verify on B: the instances share the keys through PostgreSQL.
	fresh := a.login(t, acct)
	if got := b.me(t, fresh.AccessToken); got != http.StatusOK {
		t.Fatalf("instance B with A's new token: %d", got)
	}
}

func TestLogoutAllEndsEverySession(t *testing.T) {
	in := start(t)
	a := in.register(t)
	s1, s2, s3 := in.login(t, a), in.login(t, a), in.login(t, a)
	r, err := in.client.LogoutAllWithResponse(context.Background(), bearer(s2.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusNoContent)
	for i, s := range []api.TokenPair{s1, s2, s3} {
		if got := in.me(t, s.AccessToken); got != http.StatusUnauthorized {
			t.Fatalf("session %d after logout-all: %d", i+1, got)
		}
	}
	// Another user's sessions are untouched.
	other := in.register(t)
	if got := in.me(t, in.login(t, other).AccessToken); got != http.StatusOK {
		t.Fatalf("other user: %d", got)
	}
}
