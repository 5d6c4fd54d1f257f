package httpserver_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/testenv"
)

// A change whose COMMIT reply is lost may have committed, and in this test it has. The instance
// that made it cannot know and answers 503; every other instance must still stop serving what
// the change ended or replaced from its caches, on its next request, as after a change that
// answered. Instance A reaches PostgreSQL through a proxy that loses the reply to the next
// COMMIT; instance B shares the database and Redis directly and has cached the state first.
func TestChangeWhoseCommitReplyIsLost(t *testing.T) {
	direct := testenv.Config(t)
	proxied, proxy := behindPostgresProxy(t, direct)
	a := startWith(t, proxied)
	b := startWith(t, direct)
	_, admin := a.createWithRole(t, "admin")
	ctx := context.Background()

	// lost arms the proxy and makes the change on A, which must answer 503 unavailable.
	lost := func(t *testing.T, change func() (statusCoder, []byte)) {
		t.Helper()
		proxy.LoseReplyTo("commit")
		r, body := change()
		wantProblem(t, r, body, http.StatusServiceUnavailable, "unavailable")
	}
	// wantStatusOnB waits (invalidationBound) for B to answer GET /users/me with status.
	wantStatusOnB := func(t *testing.T, token string, status int) {
		t.Helper()
		soon(t, "GET /users/me on B", func() error {
			if got := b.me(t, token); got != status {
				return fmt.Errorf("status %d, want %d", got, status)
			}
			return nil
		})
	}
	// signedIn registers an account and opens n sessions, each seen live by B twice (so held in
	// B's memory: a first read only fills Redis).
	signedIn := func(t *testing.T, n int) (account, []api.TokenPair) {
		t.Helper()
		acct := a.register(t)
		pairs := make([]api.TokenPair, n)
		for i := range pairs {
			pairs[i] = a.login(t, acct)
			for range 2 {
				if got := b.me(t, pairs[i].AccessToken); got != http.StatusOK {
					t.Fatalf("B before the change: %d", got)
				}
			}
		}
		return acct, pairs
	}
	asAdmin := bearer(admin.AccessToken)

	t.Run("logout", func(t *testing.T) {
		_, p := signedIn(t, 1)
		lost(t, func() (statusCoder, []byte) {
			r, err := a.client.LogoutWithResponse(ctx, bearer(p[0].AccessToken))
			must(t, err)
			return r, r.Body
		})
		wantStatusOnB(t, p[0].AccessToken, http.StatusUnauthorized)
	})
	t.Run("logout everywhere", func(t *testing.T) {
		_, p := signedIn(t, 2)
		lost(t, func() (statusCoder, []byte) {
			r, err := a.client.LogoutAllWithResponse(ctx, bearer(p[0].AccessToken))
			must(t, err)
			return r, r.Body
		})
		wantStatusOnB(t, p[1].AccessToken, http.StatusUnauthorized)
	})
	t.Run("revoke own session", func(t *testing.T) {
		_, p := signedIn(t, 2)
		lost(t, func() (statusCoder, []byte) {
			r, err := a.client.RevokeMySessionWithResponse(ctx, p[1].SessionId, bearer(p[0].AccessToken))
			must(t, err)
			return r, r.Body
		})
		wantStatusOnB(t, p[1].AccessToken, http.StatusUnauthorized)
	})
	t.Run("password change", func(t *testing.T) {
		acct, p := signedIn(t, 2)
		lost(t, func() (statusCoder, []byte) {
			r, err := a.client.ChangePasswordWithResponse(ctx, api.ChangePasswordJSONRequestBody{
				CurrentPassword: acct.Password, NewPassword: acct.Password + " changed",
			}, bearer(p[0].AccessToken))
			must(t, err)
			return r, r.Body
		})
		wantStatusOnB(t, p[1].AccessToken, http.StatusUnauthorized)
	})
	t.Run("profile edit", func(t *testing.T) {
		acct, p := signedIn(t, 1)
		renamed := acct.User.Username + "x"
		lost(t, func() (statusCoder, []byte) {
			r, err := a.client.UpdateMeWithResponse(ctx, nil, api.UpdateMeJSONRequestBody{Username: &renamed}, bearer(p[0].AccessToken))
			must(t, err)
			return r, r.Body
		})
		soon(t, "the new username on B", func() error {
			r, err := b.client.GetMeWithResponse(ctx, bearer(p[0].AccessToken))
			if err != nil {
				return err
			}
			if r.JSON200 == nil || r.JSON200.Username != renamed {
				return fmt.Errorf("status %d, body %s; want username %q", r.StatusCode(), r.Body, renamed)
			}
			return nil
		})
	})
	t.Run("admin deactivates", func(t *testing.T) {
		acct, p := signedIn(t, 1)
		off := false
		lost(t, func() (statusCoder, []byte) {
			r, err := a.client.AdminUpdateUserWithResponse(ctx, acct.User.Id, nil, api.AdminUpdateUserJSONRequestBody{IsActive: &off}, asAdmin)
			must(t, err)
			return r, r.Body
		})
		wantStatusOnB(t, p[0].AccessToken, http.StatusUnauthorized)
	})
	t.Run("admin demotes", func(t *testing.T) {
		demoted, p := a.createWithRole(t, "admin")
		list := func() int {
			r, err := b.client.AdminListUsersWithResponse(ctx, &api.AdminListUsersParams{}, bearer(p.AccessToken))
			if err != nil {
				t.Fatal(err)
			}
			return r.StatusCode()
		}
		for range 2 { // B holds the session and the user record in memory from the second reads
			if got := list(); got != http.StatusOK {
				t.Fatalf("B before the demotion: %d", got)
			}
			if got := b.me(t, p.AccessToken); got != http.StatusOK {
				t.Fatalf("B before the demotion: GET /users/me %d", got)
			}
		}
		user := api.Role("user")
		lost(t, func() (statusCoder, []byte) {
			r, err := a.client.AdminUpdateUserWithResponse(ctx, demoted.User.Id, nil, api.AdminUpdateUserJSONRequestBody{Role: &user}, asAdmin)
			must(t, err)
			return r, r.Body
		})
		soon(t, "the demoted admin on B", func() error {
			if got := list(); got != http.StatusForbidden {
				return fmt.Errorf("GET /admin/users status %d, want 403", got)
			}
			// The user record, cached apart from the session, shows the new role too.
			r, err := b.client.GetMeWithResponse(ctx, bearer(p.AccessToken))
			if err != nil {
				return err
			}
			if r.JSON200 == nil || r.JSON200.Role != user {
				return fmt.Errorf("GET /users/me: %d %s, want role %q", r.StatusCode(), r.Body, user)
			}
			return nil
		})
	})
	t.Run("admin deletes", func(t *testing.T) {
		acct, p := signedIn(t, 1)
		lost(t, func() (statusCoder, []byte) {
			r, err := a.client.AdminDeleteUserWithResponse(ctx, acct.User.Id, nil, asAdmin)
			must(t, err)
			return r, r.Body
		})
		wantStatusOnB(t, p[0].AccessToken, http.StatusUnauthorized)
	})
	t.Run("admin ends all sessions", func(t *testing.T) {
		acct, p := signedIn(t, 1)
		lost(t, func() (statusCoder, []byte) {
			r, err := a.client.AdminRevokeUserSessionsWithResponse(ctx, acct.User.Id, asAdmin)
			must(t, err)
			return r, r.Body
		})
		wantStatusOnB(t, p[0].AccessToken, http.StatusUnauthorized)
	})
	t.Run("admin ends one session", func(t *testing.T) {
		acct, p := signedIn(t, 1)
		lost(t, func() (statusCoder, []byte) {
			r, err := a.client.AdminRevokeUserSessionWithResponse(ctx, acct.User.Id, p[0].SessionId, asAdmin)
			must(t, err)
			return r, r.Body
		})
		wantStatusOnB(t, p[0].AccessToken, http.StatusUnauthorized)
	})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// lateBy is how long after its client gave it up for lost a commit lands in
// TestACommitThatLandsLateIsSeenByEveryInstance: past a stale marker's life (5 s), within the
// cache TTL (30 s by default).
const lateBy = 6 * time.Second

// A change whose COMMIT got no answer may land much later than its instance gave it up: the
// commit waits on a slow disk or a lock while the connection is gone. Until it lands every
// instance rightly reads the old state from PostgreSQL; once it lands, every instance must see
// the change on its next request, however late that is, and not a copy cached in between.
func TestACommitThatLandsLateIsSeenByEveryInstance(t *testing.T) {
	direct := testenv.Config(t)
	proxied, proxy := behindPostgresProxy(t, direct)
	a := startWith(t, proxied)
	b := startWith(t, direct)
	db := testenv.Pool(t, direct.Postgres.URL)
	ctx := context.Background()

	// late makes the change on A, which must answer 503 at once. Until the commit lands, B reads
	// the state (seen, which must not see the change yet) so that it caches what it may cache
	// meanwhile. Then the change must be in PostgreSQL (committed) and soon seen on B.
	late := func(t *testing.T, change func() (statusCoder, []byte), seen func() error, committed string, args ...any) {
		t.Helper()
		landed := proxy.DeliverLate("commit", lateBy)
		r, body := change()
		wantProblem(t, r, body, http.StatusServiceUnavailable, "unavailable")
		// The commit is sent lateBy after the hang-up, which came before change returned: a read
		// begun a second short of that surely precedes it. Later ones may race its landing.
		unsent := time.Now().Add(lateBy - time.Second)
		for reads := 0; ; reads++ {
			select {
			case <-landed:
				t.Logf("B read the old state %d times before the commit landed", reads)
				var ok bool
				must(t, db.QueryRow(ctx, committed, args...).Scan(&ok))
				if !ok {
					t.Fatal("the late commit did not land")
				}
				soon(t, "the change on B after its late commit", seen)
				return
			case <-time.After(100 * time.Millisecond):
				if early := time.Now().Before(unsent); seen() == nil && early {
					t.Fatal("B saw the change before its commit was sent")
				}
			}
		}
	}

	t.Run("logout", func(t *testing.T) {
		p := a.login(t, a.register(t))
		late(t, func() (statusCoder, []byte) {
			r, err := a.client.LogoutWithResponse(ctx, bearer(p.AccessToken))
			must(t, err)
			return r, r.Body
		}, func() error {
			if got := b.me(t, p.AccessToken); got != http.StatusUnauthorized {
				return fmt.Errorf("GET /users/me status %d, want 401", got)
			}
			return nil
		}, `SELECT revoked_at IS NOT NULL FROM user_sessions WHERE id = $1`, p.SessionId)
	})
	t.Run("profile edit", func(t *testing.T) {
		acct := a.register(t)
		p := a.login(t, acct)
		renamed := acct.User.Username + "x"
		late(t, func() (statusCoder, []byte) {
			r, err := a.client.UpdateMeWithResponse(ctx, nil, api.UpdateMeJSONRequestBody{Username: &renamed}, bearer(p.AccessToken))
			must(t, err)
			return r, r.Body
		}, func() error {
			r, err := b.client.GetMeWithResponse(ctx, bearer(p.AccessToken))
			if err != nil {
				return err
			}
			if r.JSON200 == nil || r.JSON200.Username != renamed {
				return fmt.Errorf("GET /users/me: %d %s, want username %q", r.StatusCode(), r.Body, renamed)
			}
			return nil
		}, `SELECT username = $2 FROM users WHERE id = $1`, acct.User.Id, renamed)
	})
}
