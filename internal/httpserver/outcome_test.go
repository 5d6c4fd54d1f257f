package httpserver_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/testenv"
)

// A spent refresh token presented after the grace revokes its session (theft), in a transaction
// of its own. When that commit's reply is lost the session is revoked in PostgreSQL, and every
// other instance must stop serving it from its cache, as after the other revocations
// (TestChangeWhoseCommitReplyIsLost). A reaches PostgreSQL through the proxy; B has cached the
// session live.
func TestRefreshReuseWhoseCommitReplyIsLost(t *testing.T) {
	ctx := context.Background()
	direct := testenv.Config(t)
	direct.Auth.RefreshReuseGrace = 0
	proxied, proxy := behindPostgresProxy(t, direct)
	a := startWith(t, proxied)
	b := startWith(t, direct)
	acct := a.register(t)
	pair := a.login(t, acct)
	r, err := b.client.RefreshTokensWithResponse(ctx, api.RefreshTokensJSONRequestBody{RefreshToken: pair.RefreshToken})
	must(t, err)
	wantStatus(t, r, r.Body, http.StatusOK)
	stolen := r.JSON200.AccessToken // the thief's access token, of the session reuse will end
	// The second read keeps the session in B's memory.
	for range 2 {
		if got := b.me(t, stolen); got != http.StatusOK {
			t.Fatalf("B before the reuse: %d", got)
		}
	}
	time.Sleep(10 * time.Millisecond)

	proxy.LoseReplyTo("commit")
	reuse, err := a.client.RefreshTokensWithResponse(ctx, api.RefreshTokensJSONRequestBody{RefreshToken: pair.RefreshToken})
	must(t, err)
	// A cannot know whether its revocation committed: an unknown commit is 503, never 401.
	wantProblem(t, reuse, reuse.Body, http.StatusServiceUnavailable, "unavailable")
	var revoked bool
	must(t, b.app.Pool.QueryRow(ctx, "SELECT revoked_at IS NOT NULL FROM user_sessions WHERE id = $1", pair.SessionId).Scan(&revoked))
	if !revoked {
		t.Fatal("the session is not revoked; the test needs the lost commit to have committed")
	}
	soon(t, "GET /users/me on B with the revoked session", func() error {
		if got := b.me(t, stolen); got != http.StatusUnauthorized {
			return fmt.Errorf("status %d, want 401", got)
		}
		return nil
	})
}

// A login that upgrades a weaker password hash writes the new hash in an autocommit statement.
// When its reply is lost the hash may have been replaced, and the login's session insert, which
// checks the hash it verified, then finds none: the right password must not be answered 401
// invalid-credentials.
func TestLoginWhoseHashUpgradeReplyIsLost(t *testing.T) {
	ctx := context.Background()
	weak := testenv.Config(t)
	w := startWith(t, weak)
	acct := w.register(t)
	var old string
	must(t, w.app.Pool.QueryRow(ctx, "SELECT hashed_password FROM users WHERE id = $1", acct.User.Id).Scan(&old))

	stronger := weak
	stronger.Password.Iterations++
	proxied, proxy := behindPostgresProxy(t, stronger)
	a := startWith(t, proxied)
	proxy.LoseReplyTo(old[len(old)-16:]) // in the upgrade's parameters, and in no earlier message
	email := acct.User.Email
	r, err := a.client.LoginWithResponse(ctx, api.LoginJSONRequestBody{Email: &email, Password: acct.Password})
	must(t, err)
	var now string
	must(t, w.app.Pool.QueryRow(ctx, "SELECT hashed_password FROM users WHERE id = $1", acct.User.Id).Scan(&now))
	if now == old {
		t.Fatal("the hash was not upgraded; the test needs the lost reply's statement to have committed")
	}
	if r.StatusCode() != http.StatusOK && r.StatusCode() != http.StatusServiceUnavailable {
		t.Fatalf("login with the right password whose hash upgrade reply was lost: %d %s; want 200 (or 503)", r.StatusCode(), r.Body)
	}
}

// A login's session and its audit event are one autocommit statement. When its reply is lost
// the session may exist though no client holds its tokens: the owner would find a session they
// never received listed as live until it expired, which is what users are told to read as a
// break-in. The login answers 503 and ends that session.
func TestLoginWhoseSessionInsertReplyIsLost(t *testing.T) {
	ctx := context.Background()
	proxied, proxy := behindPostgresProxy(t, testenv.Config(t))
	a := startWith(t, proxied)
	acct := a.register(t)
	agent := "lost-login-" + uuid.NewString() // in the insert's parameters, and in no earlier message
	proxy.LoseReplyTo(agent)
	r, err := a.loginAs(ctx, acct, agent)
	must(t, err)
	wantProblem(t, r, r.Body, http.StatusServiceUnavailable, "unavailable")

	var inserted, live int
	must(t, a.app.Pool.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE revoked_at IS NULL) FROM user_sessions WHERE user_agent = $1",
		agent).Scan(&inserted, &live))
	if inserted != 1 {
		t.Fatalf("%d sessions with the login's user agent; the test needs the lost insert to have committed", inserted)
	}
	if live != 0 {
		t.Fatal("the session of a login whose answer was lost is still live")
	}
	var recorded int
	must(t, a.app.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events a JOIN user_sessions s ON a.target_id = s.id::text
		WHERE s.user_agent = $1 AND a.action = 'session.revoke' AND a.detail->>'reason' = 'login_unanswered'`, agent).Scan(&recorded))
	if recorded != 1 {
		t.Fatalf("%d session.revoke events with reason login_unanswered, want 1", recorded)
	}
	// The owner's own list shows only the sessions they hold.
	pair := a.login(t, acct)
	list, err := a.client.ListMySessionsWithResponse(ctx, bearer(pair.AccessToken))
	must(t, err)
	wantStatus(t, list, list.Body, http.StatusOK)
	if n := len(list.JSON200.Items); n != 1 {
		t.Fatalf("the owner lists %d sessions, want 1 (the one they hold)", n)
	}
}

// A client that hangs up while its login's session insert waits for PostgreSQL's reply leaves a
// session that may have been written; the service ends it all the same, once the request is
// gone (its context ended). The insert committed here; its reply is withheld until pgx gives up.
func TestLoginAbandonedWhileItsSessionInsertWaitsEndsThatSession(t *testing.T) {
	proxied, proxy := behindPostgresProxy(t, testenv.Config(t))
	a := startWith(t, proxied)
	acct := a.register(t)
	agent := "abandoned-login-" + uuid.NewString()
	sent := proxy.WithholdReplyTo(agent)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	answered := make(chan error, 1)
	go func() {
		_, err := a.loginAs(ctx, acct, agent)
		answered <- err
	}()
	select {
	case <-sent:
	case err := <-answered:
		t.Fatalf("the login was answered (%v) before its session insert was sent", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the login's session insert was never sent")
	}
	// Hang up only once the insert has committed: until then pgx's close of the abandoned
	// connection (a CancelRequest) could cancel it, or endUnanswered could run before it lands.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var n int
		must(t, a.app.Pool.QueryRow(context.Background(), "SELECT count(*) FROM user_sessions WHERE user_agent = $1", agent).Scan(&n))
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the login's session insert never committed")
		}
	}
	cancel() // the client hangs up
	<-answered
	// The handler goes on after the hang-up until pgx gives up on the withheld reply: poll for
	// up to 10 s (it took ~20 ms here).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var inserted, live int
		must(t, a.app.Pool.QueryRow(context.Background(), "SELECT count(*), count(*) FILTER (WHERE revoked_at IS NULL) FROM user_sessions WHERE user_agent = $1",
			agent).Scan(&inserted, &live))
		if inserted == 1 && live == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions with the login's user agent, %d live; want 1 (the insert committed) and 0 live", inserted, live)
		}
	}
}

// A login whose session insert got no answer because it has not reached PostgreSQL yet (held up
// in the network, say) finds nothing to end at once; the insert must not open a session when it
// lands later. Here it lands 2 s after the login answered 503.
func TestLoginWhoseSessionInsertLandsLateOpensNothing(t *testing.T) {
	ctx := context.Background()
	proxied, proxy := behindPostgresProxy(t, testenv.Config(t))
	a := startWith(t, proxied)
	acct := a.register(t)
	agent := "late-login-" + uuid.NewString() // in the insert's parameters, and in no earlier message
	landed := proxy.DeliverLate(agent, 2*time.Second)
	r, err := a.loginAs(ctx, acct, agent)
	must(t, err)
	wantProblem(t, r, r.Body, http.StatusServiceUnavailable, "unavailable")
	select {
	case <-landed:
	case <-time.After(20 * time.Second):
		t.Fatal("the login's session insert never reached PostgreSQL")
	}

	var live int
	must(t, a.app.Pool.QueryRow(ctx, `SELECT count(*) FROM user_sessions
		WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()`, acct.User.Id).Scan(&live))
	if live != 0 {
		t.Fatalf("%d live sessions after a login answered 503 and its insert landed late; nobody holds their tokens", live)
	}
	var recorded int
	must(t, a.app.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events
		WHERE action = 'user.login' AND outcome = 'success' AND actor_id = $1
		   OR action = 'session.revoke' AND detail->>'user_id' = $2`, acct.User.Id, acct.User.Id.String()).Scan(&recorded))
	if recorded != 0 {
		t.Fatalf("%d sign-ins or revocations recorded for a session nobody ever held", recorded)
	}
	pair := a.login(t, acct) // the owner still signs in, and lists only the session they hold
	list, err := a.client.ListMySessionsWithResponse(ctx, bearer(pair.AccessToken))
	must(t, err)
	wantStatus(t, list, list.Body, http.StatusOK)
	if n := len(list.JSON200.Items); n != 1 {
		t.Fatalf("the owner lists %d sessions, want 1 (the one they hold)", n)
	}
}

// loginAs signs acct in on in with the User-Agent agent, which the session insert carries: a
// marker for the proxy that no earlier message holds.
func (in *instance) loginAs(ctx context.Context, acct account, agent string) (*api.LoginResponse, error) {
	email := acct.User.Email
	return in.client.LoginWithResponse(ctx, api.LoginJSONRequestBody{Email: &email, Password: acct.Password},
		func(_ context.Context, req *http.Request) error { req.Header.Set("User-Agent", agent); return nil })
}
