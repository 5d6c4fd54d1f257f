package httpserver_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/oapi-codegen/nullable"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/auth"
)

// Every operation's permissions come from its scopes in the spec; this walks the whole spec and
// proves the middleware enforces them for every role: 401 without a token, 403 for a role that
// lacks a scope, and never 403 for a role that holds them all.
func TestScopesAreEnforcedAcrossTheSpec(t *testing.T) {
	in := start(t)
	staff := map[string]account{}
	for _, role := range auth.Roles() {
		staff[role], _ = in.createWithRole(t, role)
	}
	spec, err := api.GetSwagger()
	if err != nil {
		t.Fatal(err)
	}
	target := uuid.Must(uuid.NewV7()).String() // an unknown user and session: handlers answer 404, never act
	scoped := 0
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Security == nil || len(*op.Security) == 0 {
				continue
			}
			needed := (*op.Security)[0]["bearerAuth"]
			concrete := strings.NewReplacer("{user_id}", target, "{session_id}", target).Replace(path)
			body, ctype := "", ""
			if op.RequestBody != nil {
				ctype = "application/json"
				body = `{"is_verified":true}`
				if method == http.MethodPost && strings.HasSuffix(path, "/admin/users") {
					body = `{"email":"scoped-` + strings.ToLower(method) + `@example.com","username":"scoped_user","password":"a long and unusual passphrase","role":"user"}`
				}
			}
			resp, b := in.raw(t, method, concrete, ctype, strings.NewReader(body))
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s without a token: %d %s", method, path, resp.StatusCode, b)
			}
			for role, acct := range staff {
				tok := in.login(t, acct).AccessToken // a fresh session each time: logout-all may end it
				resp, b := in.raw(t, method, concrete, ctype, strings.NewReader(body), "Authorization", "Bearer "+tok)
				allowed := auth.Allowed(role, needed)
				switch {
				case !allowed && (resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), `"code":"insufficient-permissions"`)):
					t.Errorf("%s %s as %s (lacks %v): %d %s", method, path, role, needed, resp.StatusCode, b)
				case !allowed && !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`):
					t.Errorf("%s %s as %s: 403 without an insufficient_scope challenge", method, path, role)
				case allowed && (resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized):
					t.Errorf("%s %s as %s (holds %v): %d %s", method, path, role, needed, resp.StatusCode, b)
				}
			}
			if len(needed) > 0 {
				scoped++
			}
		}
	}
	if scoped < 9 {
		t.Fatalf("only %d operations declare scopes; the admin API has 9", scoped)
	}
}

func TestAdminManagesUsers(t *testing.T) {
	in := start(t)
	_, adminPair := in.createWithRole(t, "admin")
	tok := adminPair.AccessToken
	ctx := context.Background()

	verified := true
	c, err := in.client.AdminCreateUserWithResponse(ctx, api.AdminCreateUserJSONRequestBody{
		Email: "grace@example.com", Username: "grace", Password: "a long and unusual passphrase", Role: api.RoleModerator, IsVerified: &verified,
	}, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, c, c.Body, http.StatusCreated)
	grace := c.JSON201
	if grace.Role != api.RoleModerator || !grace.IsVerified || !grace.IsActive {
		t.Fatalf("created = %+v", grace)
	}
	// The new account signs in with the password the admin set; the admin never reads it back.
	in.login(t, account{User: *grace, Password: "a long and unusual passphrase"})
	if strings.Contains(string(c.Body), "password") {
		t.Fatalf("the created user's representation mentions a password: %s", c.Body)
	}

	dup, err := in.client.AdminCreateUserWithResponse(ctx, api.AdminCreateUserJSONRequestBody{
		Email: "GRACE@example.com", Username: "other", Password: "a long and unusual passphrase", Role: api.RoleUser,
	}, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantField(t, wantProblem(t, dup, dup.Body, http.StatusConflict, "email-taken"), "email")

	g, err := in.client.AdminGetUserWithResponse(ctx, grace.Id, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, g, g.Body, http.StatusOK)

	newName := "grace_h"
	p, err := in.client.AdminUpdateUserWithResponse(ctx, grace.Id, nil, api.AdminUpdateUserJSONRequestBody{
		Username: &newName, FullName: nullable.NewNullableWithValue("Grace Hopper"), IsVerified: new(bool),
	}, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, p, p.Body, http.StatusOK)
	if p.JSON200.Username != newName || p.JSON200.FullName.MustGet() != "Grace Hopper" || p.JSON200.IsVerified || p.JSON200.Role != api.RoleModerator {
		t.Fatalf("after patch: %+v", p.JSON200)
	}

	// Passwords are not administered: the field does not exist on the admin patch.
	pw, err := in.client.AdminUpdateUserWithBodyWithResponse(ctx, grace.Id, nil, "application/json", strings.NewReader(`{"password":"chosen by the admin"}`), bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantField(t, wantProblem(t, pw, pw.Body, http.StatusBadRequest, "validation-failed"), "password")

	for _, tt := range []struct {
		name, body, code, field string
		status                  int
	}{
		{"unknown role", `{"role":"root"}`, "validation-failed", "role", 400},
		{"empty patch", `{}`, "validation-failed", "body", 400},
		{"hashed_password", `{"hashed_password":"x"}`, "validation-failed", "hashed_password", 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := in.client.AdminUpdateUserWithBodyWithResponse(ctx, grace.Id, nil, "application/json", strings.NewReader(tt.body), bearer(tok))
			if err != nil {
				t.Fatal(err)
			}
			wantField(t, wantProblem(t, r, r.Body, tt.status, tt.code), tt.field)
		})
	}

	unknown := uuid.Must(uuid.NewV7())
	nf, err := in.client.AdminGetUserWithResponse(ctx, unknown, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, nf, nf.Body, http.StatusNotFound, "user-not-found")
	np, err := in.client.AdminUpdateUserWithResponse(ctx, unknown, nil, api.AdminUpdateUserJSONRequestBody{IsVerified: &verified}, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, np, np.Body, http.StatusNotFound, "user-not-found")

	d, err := in.client.AdminDeleteUserWithResponse(ctx, grace.Id, nil, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, d, d.Body, http.StatusNoContent)
	g, err = in.client.AdminGetUserWithResponse(ctx, grace.Id, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, g, g.Body, http.StatusNotFound, "user-not-found")
	d, err = in.client.AdminDeleteUserWithResponse(ctx, grace.Id, nil, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, d, d.Body, http.StatusNotFound, "user-not-found")
}

func TestTheLastActiveAdminIsGuarded(t *testing.T) {
	in := start(t)
	root, rootPair := in.createWithRole(t, "admin")
	tok := rootPair.AccessToken
	ctx := context.Background()
	role := api.RoleUser
	inactive := false
	for _, tt := range []struct {
		name string
		do   func() (statusCoder, []byte)
	}{
		{"demote", func() (statusCoder, []byte) {
			r, err := in.client.AdminUpdateUserWithResponse(ctx, root.User.Id, nil, api.AdminUpdateUserJSONRequestBody{Role: &role}, bearer(tok))
			if err != nil {
				t.Fatal(err)
			}
			return r, r.Body
		}},
		{"deactivate", func() (statusCoder, []byte) {
			r, err := in.client.AdminUpdateUserWithResponse(ctx, root.User.Id, nil, api.AdminUpdateUserJSONRequestBody{IsActive: &inactive}, bearer(tok))
			if err != nil {
				t.Fatal(err)
			}
			return r, r.Body
		}},
		{"delete", func() (statusCoder, []byte) {
			r, err := in.client.AdminDeleteUserWithResponse(ctx, root.User.Id, nil, bearer(tok))
			if err != nil {
				t.Fatal(err)
			}
			return r, r.Body
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, b := tt.do()
			wantProblem(t, r, b, http.StatusConflict, "last-admin")
		})
	}
	if got := in.me(t, tok); got != http.StatusOK {
		t.Fatalf("the last admin after refused changes: %d", got)
	}

	// With a second admin, one may step down; two admins demoting each other at once cannot
	// both succeed, whatever the interleaving.
	second, secondPair := in.createWithRole(t, "admin")
	results := in.demoteEachOther(t, root, second, rootPair, secondPair)
	var admins int
	if err := in.app.Pool.QueryRow(ctx, "SELECT count(*) FROM users WHERE role = 'admin' AND is_active").Scan(&admins); err != nil {
		t.Fatal(err)
	}
	if admins != 1 {
		t.Fatalf("active admins after mutual demotion = %d (statuses %v), want exactly 1", admins, results)
	}
}

// A role change, deactivation or deletion made on one instance applies on the other
// instance's next request (once Redis's invalidation has reached it: see soon), although the
// user still holds a valid access token.
func TestAccountChangesApplyOnTheNextRequestEverywhere(t *testing.T) {
	a := start(t)
	b := startWith(t, a.cfg)
	_, adminPair := a.createWithRole(t, "admin")
	adminTok := adminPair.AccessToken
	ctx := context.Background()
	acct := a.register(t)
	userTok := b.login(t, acct).AccessToken
	listUsers := func() int {
		r, err := b.client.AdminListUsersWithResponse(ctx, &api.AdminListUsersParams{}, bearer(userTok))
		if err != nil {
			t.Fatal(err)
		}
		return r.StatusCode()
	}
	for range 2 { // B keeps the session, role "user", in its memory from the second read
		if got := listUsers(); got != http.StatusForbidden {
			t.Fatalf("a user listing users on B: %d", got)
		}
	}
	patch := func(body api.AdminUpdateUserJSONRequestBody) {
		t.Helper()
		r, err := a.client.AdminUpdateUserWithResponse(ctx, acct.User.Id, nil, body, bearer(adminTok))
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, r, r.Body, http.StatusOK)
	}
	admin, user := api.RoleAdmin, api.RoleUser
	patch(api.AdminUpdateUserJSONRequestBody{Role: &admin})
	soon(t, "promoted on A, listing on B with the old token", func() error {
		if got := listUsers(); got != http.StatusOK {
			return fmt.Errorf("status %d, want %d", got, http.StatusOK)
		}
		return nil
	})
	patch(api.AdminUpdateUserJSONRequestBody{Role: &user})
	soon(t, "demoted on A, listing on B", func() error {
		if got := listUsers(); got != http.StatusForbidden {
			return fmt.Errorf("status %d, want %d", got, http.StatusForbidden)
		}
		return nil
	})
	inactive := false
	patch(api.AdminUpdateUserJSONRequestBody{IsActive: &inactive})
	soon(t, "deactivated on A, me on B", func() error {
		if got := b.me(t, userTok); got != http.StatusUnauthorized {
			return fmt.Errorf("status %d, want 401", got)
		}
		return nil
	})
	r, err := b.client.LoginWithResponse(ctx, api.LoginJSONRequestBody{Email: &acct.User.Email, Password: acct.Password})
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, r, r.Body, http.StatusForbidden, "account-disabled")

	other := a.register(t)
	otherTok := b.login(t, other).AccessToken
	if got := b.me(t, otherTok); got != http.StatusOK {
		t.Fatalf("me: %d", got)
	}
	d, err := a.client.AdminDeleteUserWithResponse(ctx, other.User.Id, nil, bearer(adminTok))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, d, d.Body, http.StatusNoContent)
	if got := b.me(t, otherTok); got != http.StatusUnauthorized {
		t.Fatalf("deleted on A, me on B: %d, want 401", got)
	}
}

// A moderator manages the sessions of users, never of a moderator or an administrator: it can
// neither read their addresses nor keep signing them out. Administrators manage everyone's.
func TestModeratorCannotTouchSessionsOfItsPeersOrSuperiors(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	_, modPair := in.createWithRole(t, "moderator")
	mod := bearer(modPair.AccessToken)
	admin, adminPair := in.createWithRole(t, "admin")
	peer, peerPair := in.createWithRole(t, "moderator")
	for _, target := range []struct {
		name string
		acct account
		pair api.TokenPair
	}{{"admin", admin, adminPair}, {"moderator", peer, peerPair}} {
		l, err := in.client.AdminListUserSessionsWithResponse(ctx, target.acct.User.Id, mod)
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, l, l.Body, http.StatusForbidden, "insufficient-permissions")
		one, err := in.client.AdminRevokeUserSessionWithResponse(ctx, target.acct.User.Id, target.pair.SessionId, mod)
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, one, one.Body, http.StatusForbidden, "insufficient-permissions")
		all, err := in.client.AdminRevokeUserSessionsWithResponse(ctx, target.acct.User.Id, mod)
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, all, all.Body, http.StatusForbidden, "insufficient-permissions")
		if got := in.me(t, target.pair.AccessToken); got != http.StatusOK {
			t.Fatalf("the %s's session after the moderator's refused revocations: %d, want 200", target.name, got)
		}
	}
	// An administrator may end another administrator's sessions.
	_, otherAdmin := in.createWithRole(t, "admin")
	r, err := in.client.AdminRevokeUserSessionsWithResponse(ctx, admin.User.Id, bearer(otherAdmin.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusNoContent)
	if got := in.me(t, adminPair.AccessToken); got != http.StatusUnauthorized {
		t.Fatalf("the admin's session after another admin revoked it: %d, want 401", got)
	}
}

func TestAdminManagesSessions(t *testing.T) {
	in := start(t)
	_, modPair := in.createWithRole(t, "moderator") // sessions:read and sessions:revoke
	tok := modPair.AccessToken
	ctx := context.Background()
	acct := in.register(t)
	s1, s2, s3 := in.login(t, acct), in.login(t, acct), in.login(t, acct)

	l, err := in.client.AdminListUserSessionsWithResponse(ctx, acct.User.Id, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, l, l.Body, http.StatusOK)
	if len(l.JSON200.Items) != 3 || l.JSON200.Items[0].Id != s3.SessionId || l.JSON200.Items[0].Current {
		t.Fatalf("sessions = %+v", l.JSON200.Items)
	}

	// A session id of another user is not found under this user.
	stranger := in.register(t)
	theirs := in.login(t, stranger)
	r, err := in.client.AdminRevokeUserSessionWithResponse(ctx, acct.User.Id, theirs.SessionId, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, r, r.Body, http.StatusNotFound, "session-not-found")
	if got := in.me(t, theirs.AccessToken); got != http.StatusOK {
		t.Fatalf("stranger's session: %d", got)
	}

	r, err = in.client.AdminRevokeUserSessionWithResponse(ctx, acct.User.Id, s1.SessionId, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusNoContent)
	if in.me(t, s1.AccessToken) != http.StatusUnauthorized || in.me(t, s2.AccessToken) != http.StatusOK {
		t.Fatal("revoking one session did not end exactly that one")
	}

	all, err := in.client.AdminRevokeUserSessionsWithResponse(ctx, acct.User.Id, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, all, all.Body, http.StatusNoContent)
	for _, s := range []api.TokenPair{s2, s3} {
		if got := in.me(t, s.AccessToken); got != http.StatusUnauthorized {
			t.Fatalf("after revoke-all: %d", got)
		}
	}

	unknown := uuid.Must(uuid.NewV7())
	ul, err := in.client.AdminListUserSessionsWithResponse(ctx, unknown, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, ul, ul.Body, http.StatusNotFound, "user-not-found")
	ua, err := in.client.AdminRevokeUserSessionsWithResponse(ctx, unknown, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, ua, ua.Body, http.StatusNotFound, "user-not-found")
}

// Mass assignment: a user cannot give themselves a role, activity or verification.
func TestSelfServiceCannotAssignPrivileges(t *testing.T) {
	in := start(t)
	a := in.register(t)
	tok := in.login(t, a).AccessToken
	ctx := context.Background()
	for _, body := range []string{`{"role":"admin"}`, `{"is_active":false}`, `{"is_verified":true}`, `{"full_name":"x","role":"admin"}`, `{"id":"` + uuid.NewString() + `"}`} {
		r, err := in.client.UpdateMeWithBodyWithResponse(ctx, nil, "application/json", strings.NewReader(body), bearer(tok))
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, r, r.Body, http.StatusBadRequest, "validation-failed")
	}
	reg, err := in.client.RegisterUserWithBodyWithResponse(ctx, "application/json", strings.NewReader(
		`{"email":"mallory@example.com","username":"mallory","password":"a long and unusual passphrase","role":"admin","is_verified":true}`))
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, reg, reg.Body, http.StatusBadRequest, "validation-failed")
	me, err := in.client.GetMeWithResponse(ctx, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	if me.JSON200.Role != api.RoleUser || !me.JSON200.IsActive || me.JSON200.IsVerified || me.JSON200.FullName.IsSpecified() && !me.JSON200.FullName.IsNull() {
		t.Fatalf("refused patches changed the user: %+v", me.JSON200)
	}
	var n int
	if err := in.app.Pool.QueryRow(ctx, "SELECT count(*) FROM users WHERE username = 'mallory'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("mallory exists: %d %v", n, err)
	}
}

// A moderator's revocation and a promotion of its target that race are serialised: the role
// that allowed the revocation is still the target's when the sessions end. Here the revocation
// is held up at the session's row (a lock the test takes) after its role check, while an admin
// promotes the user. Either the promotion waits for the revocation (which then ended a user's
// session), or it lands first and the moderator is refused: never does a moderator end the
// session of a user who is an admin by then.
func TestModeratorRevocationRacingAPromotion(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	_, adminPair := in.createWithRole(t, "admin")
	_, modPair := in.createWithRole(t, "moderator")
	for _, tt := range []struct {
		name   string
		revoke func(user, session uuid.UUID) (statusCoder, []byte, error)
	}{
		{"one session", func(user, session uuid.UUID) (statusCoder, []byte, error) {
			r, err := in.client.AdminRevokeUserSessionWithResponse(ctx, user, session, bearer(modPair.AccessToken))
			if err != nil {
				return nil, nil, err
			}
			return r, r.Body, nil
		}},
		{"every session", func(user, _ uuid.UUID) (statusCoder, []byte, error) {
			r, err := in.client.AdminRevokeUserSessionsWithResponse(ctx, user, bearer(modPair.AccessToken))
			if err != nil {
				return nil, nil, err
			}
			return r, r.Body, nil
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			acct := in.register(t)
			pair := in.login(t, acct)
			tx := holdRow(t, in, "SELECT 1 FROM user_sessions WHERE id = $1 FOR UPDATE", pair.SessionId)
			revoked := sendWaiting(t, in, "the session's row", func() (statusCoder, []byte, error) { return tt.revoke(acct.User.Id, pair.SessionId) })
			promoted := make(chan answer, 1)
			go func() {
				r, err := in.client.AdminUpdateUserWithResponse(ctx, acct.User.Id, nil, api.AdminUpdateUserJSONRequestBody{Role: new(api.RoleAdmin)}, bearer(adminPair.AccessToken))
				if err != nil {
					t.Error(err)
					promoted <- answer{}
					return
				}
				promoted <- answer{r.StatusCode(), r.Body}
			}()
			// The promotion either completes or waits for the revocation.
			var first *answer
			for deadline := time.Now().Add(5 * time.Second); first == nil && lockWaiters(t, in) < 2; time.Sleep(5 * time.Millisecond) {
				select {
				case a := <-promoted:
					first = &a
				default:
				}
				if time.Now().After(deadline) {
					t.Fatal("the promotion neither completed nor waited")
				}
			}
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			rev := <-revoked
			if first == nil {
				a := <-promoted
				// The promotion came second: the moderator ended a user's session.
				if rev.status != http.StatusNoContent || a.status != http.StatusOK {
					t.Fatalf("revocation then promotion: %d %s, %d %s", rev.status, rev.body, a.status, a.body)
				}
				return
			}
			if first.status != http.StatusOK {
				t.Fatalf("promotion: %d %s", first.status, first.body)
			}
			if rev.status != http.StatusForbidden || !strings.Contains(string(rev.body), `"code":"insufficient-permissions"`) {
				t.Fatalf("a moderator's revocation that ended after the user became an admin: %d %s, want 403", rev.status, rev.body)
			}
			if got := in.me(t, pair.AccessToken); got != http.StatusOK {
				t.Fatalf("the new admin's session after the moderator's refused revocation: %d, want 200", got)
			}
		})
	}
}

// An admin PATCH that changes nothing writes nothing: no updated_at bump and no
// admin.user_update event, whose detail would claim a change (full_name "changed" for a name
// sent as it was).
func TestNoOpAdminPatchWritesNothing(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	_, admin := in.createWithRole(t, "admin")
	a := in.register(t)
	asAdmin := bearer(admin.AccessToken)
	updates := func() int { return in.auditEvents(t, admin.AccessToken, a.User.Id.String(), "admin.user_update") }
	patch := func(body string) api.User {
		t.Helper()
		r, err := in.client.AdminUpdateUserWithBodyWithResponse(ctx, a.User.Id, nil, "application/json", strings.NewReader(body), asAdmin)
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, r, r.Body, http.StatusOK)
		return *r.JSON200
	}
	named := patch(`{"full_name":"Ada King"}`)
	if n := updates(); n != 1 {
		t.Fatalf("after a change: %d admin.user_update events, want 1", n)
	}
	for _, body := range []string{
		`{"full_name":"Ada King"}`,
		`{"role":"user","is_active":true}`,
		`{"username":"` + a.User.Username + `","is_verified":` + fmt.Sprint(a.User.IsVerified) + `}`,
	} {
		if got := patch(body); !got.UpdatedAt.Equal(named.UpdatedAt) {
			t.Fatalf("%s: updated_at %v, want it unchanged (%v)", body, got.UpdatedAt, named.UpdatedAt)
		}
	}
	if n := updates(); n != 1 {
		t.Fatalf("after no-op patches: %d admin.user_update events, want 1", n)
	}
	if got := patch(`{"role":"moderator"}`); got.Role != "moderator" || !got.UpdatedAt.After(named.UpdatedAt) {
		t.Fatalf("a real change: %+v", got)
	}
}

// lockWaiters counts the backends of in's database waiting for a lock.
func lockWaiters(t *testing.T, in *instance) int {
	t.Helper()
	var n int
	if err := in.app.Pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// answer is a response collected from a request sent in the background.
type answer struct {
	status int
	body   []byte
}

func (a answer) StatusCode() int { return a.status }

// holdRow begins a transaction that takes a row lock with lockSQL; rolling it back lets the
// requests waiting for that row go on (the test's cleanup rolls back what is left).
func holdRow(t *testing.T, in *instance, lockSQL string, args ...any) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := in.app.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, lockSQL, args...); err != nil {
		t.Fatal(err)
	}
	return tx
}

// sendWaiting sends call in the background and returns once some backend of in's database
// waits for a lock (what: the lock awaited, for the failure), with where its answer will arrive.
func sendWaiting(t *testing.T, in *instance, what string, call func() (statusCoder, []byte, error)) <-chan answer {
	t.Helper()
	done := make(chan answer, 1)
	go func() {
		r, body, err := call()
		if err != nil {
			t.Error(err)
			done <- answer{}
			return
		}
		done <- answer{r.StatusCode(), body}
	}()
	for deadline := time.Now().Add(5 * time.Second); lockWaiters(t, in) < 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the request never waited for %s", what)
		}
	}
	return done
}

// demoteMeanwhile demotes user target to a plain user with an admin's token while tx holds up
// the request whose answer comes on done, then lets that request go and returns its answer.
func demoteMeanwhile(t *testing.T, in *instance, tx pgx.Tx, target uuid.UUID, token string, done <-chan answer) answer {
	t.Helper()
	ctx := context.Background()
	r, err := in.client.AdminUpdateUserWithResponse(ctx, target, nil, api.AdminUpdateUserJSONRequestBody{Role: new(api.RoleUser)}, bearer(token))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusOK)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	return <-done
}

// lowerFirst orders two accounts by id, as the stores lock rows.
func lowerFirst(x, y account, xp, yp api.TokenPair) (account, account, api.TokenPair, api.TokenPair) {
	if bytes.Compare(y.User.Id[:], x.User.Id[:]) < 0 {
		return y, x, yp, xp
	}
	return x, y, xp, yp
}

// An admin demoted while a change of theirs is under way does not make it: the change checks the
// role its actor holds when it lands, in its own transaction. B's change to A is held up at A's
// row (the test holds it FOR KEY SHARE: B's FOR UPDATE waits for that, A's share lock of their own
// row does not); A demotes B meanwhile; B's change, let go, is refused and A is untouched. With a
// third admin the last-admin guard stays out of the way: before the check, both demotions landed
// (each was authorised when it arrived), and a deletion by B went through too.
func TestAdminDemotedWhileTheirChangeWaitsIsRefused(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	userRole := api.RoleUser
	for _, tt := range []struct {
		name   string
		change func(target uuid.UUID, token string) (statusCoder, []byte, error)
	}{
		{"demote", func(target uuid.UUID, token string) (statusCoder, []byte, error) {
			r, err := in.client.AdminUpdateUserWithResponse(ctx, target, nil, api.AdminUpdateUserJSONRequestBody{Role: &userRole}, bearer(token))
			if err != nil {
				return nil, nil, err
			}
			return r, r.Body, nil
		}},
		{"delete", func(target uuid.UUID, token string) (statusCoder, []byte, error) {
			r, err := in.client.AdminDeleteUserWithResponse(ctx, target, nil, bearer(token))
			if err != nil {
				return nil, nil, err
			}
			return r, r.Body, nil
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			x, xPair := in.createWithRole(t, "admin")
			y, yPair := in.createWithRole(t, "admin")
			in.createWithRole(t, "admin")
			a, b, aPair, bPair := lowerFirst(x, y, xPair, yPair)

			tx := holdRow(t, in, "SELECT 1 FROM users WHERE id = $1 FOR KEY SHARE", a.User.Id)
			done := sendWaiting(t, in, "A's row", func() (statusCoder, []byte, error) { return tt.change(a.User.Id, bPair.AccessToken) })
			got := demoteMeanwhile(t, in, tx, b.User.Id, aPair.AccessToken, done)
			wantProblem(t, got, got.body, http.StatusForbidden, "insufficient-permissions")
			var role string
			if err := in.app.Pool.QueryRow(ctx, "SELECT role FROM users WHERE id = $1", a.User.Id).Scan(&role); err != nil {
				t.Fatalf("A after B's refused %s: %v", tt.name, err)
			}
			if role != "admin" {
				t.Fatalf("A's role after B's refused %s: %q", tt.name, role)
			}
		})
	}
}

// A moderator demoted while their revocation of a user's sessions is under way does not end
// them: the revocation checks the role its actor holds when it lands. The revocation is held up
// at the user's row (the test holds it FOR NO KEY UPDATE, which the revocation's share lock waits
// for) while an admin demotes the moderator; let go, it is refused and the session lives.
func TestModeratorDemotedWhileTheirRevocationWaitsIsRefused(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	_, adminPair := in.createWithRole(t, "admin")
	x, y := in.register(t), in.register(t)
	u, m, _, _ := lowerFirst(x, y, api.TokenPair{}, api.TokenPair{}) // the user's row is locked first
	r, err := in.client.AdminUpdateUserWithResponse(ctx, m.User.Id, nil, api.AdminUpdateUserJSONRequestBody{Role: new(api.RoleModerator)}, bearer(adminPair.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusOK)
	mPair, uPair := in.login(t, m), in.login(t, u)

	tx := holdRow(t, in, "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE", u.User.Id)
	done := sendWaiting(t, in, "the user's row", func() (statusCoder, []byte, error) {
		r, err := in.client.AdminRevokeUserSessionsWithResponse(ctx, u.User.Id, bearer(mPair.AccessToken))
		if err != nil {
			return nil, nil, err
		}
		return r, r.Body, nil
	})
	got := demoteMeanwhile(t, in, tx, m.User.Id, adminPair.AccessToken, done)
	wantProblem(t, got, got.body, http.StatusForbidden, "insufficient-permissions")
	if s := in.me(t, uPair.AccessToken); s != http.StatusOK {
		t.Fatalf("the user's session after the refused revocation: %d, want 200", s)
	}
}

// Two admins demoting each other at once: exactly one demotion lands and the other is refused,
// whatever the timing, and neither waits on the other into a deadlock (the rows are locked lower
// id first). A third admin keeps the last-admin guard out of the way.
func TestAdminsDemotingEachOtherAtOnce(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	in.createWithRole(t, "admin")
	for range 8 {
		a, aPair := in.createWithRole(t, "admin")
		b, bPair := in.createWithRole(t, "admin")
		statuses := in.demoteEachOther(t, a, b, aPair, bPair)
		slices.Sort(statuses)
		if statuses[0] != http.StatusOK || statuses[1] != http.StatusForbidden {
			t.Fatalf("two admins demoting each other: %v, want one 200 and one 403", statuses)
		}
		var admins int
		if err := in.app.Pool.QueryRow(ctx, "SELECT count(*) FROM users WHERE id IN ($1, $2) AND role = 'admin'", a.User.Id, b.User.Id).Scan(&admins); err != nil {
			t.Fatal(err)
		}
		if admins != 1 {
			t.Fatalf("%d of the two are admins after, want 1", admins)
		}
	}
}

// A session that has expired is not live, and an admin's revocation of every session, or
// deletion of the user, does not count it: the audit trail names only revocations that happened
// (the admin's list showed no live session, and revoking that one session is a 404). The row is
// still marked revoked, so that no refresh whose clock reads a moment earlier can slide its
// expiry on afterwards (sessions.TestRevocationAtExpiryIsNotUndoneByAnEarlierRefresh).
func TestExpiredSessionsAreNotCountedAsRevoked(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	_, adminPair := in.createWithRole(t, "admin")
	tok := adminPair.AccessToken
	u := in.register(t)
	expired, live := in.login(t, u), in.login(t, u)
	if _, err := in.app.Pool.Exec(ctx, "UPDATE user_sessions SET expires_at = now() - interval '1 hour' WHERE id = $1", expired.SessionId); err != nil {
		t.Fatal(err)
	}
	one, err := in.client.AdminRevokeUserSessionWithResponse(ctx, u.User.Id, expired.SessionId, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, one, one.Body, http.StatusNotFound, "session-not-found")
	all, err := in.client.AdminRevokeUserSessionsWithResponse(ctx, u.User.Id, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, all, all.Body, http.StatusNoContent)
	target := u.User.Id.String()
	counted := func(action string) any {
		t.Helper()
		ev := in.listAuditAll(t, tok, api.AdminListAuditEventsParams{TargetId: &target, Action: &action})
		if len(ev) != 1 {
			t.Fatalf("%d %s events, want 1", len(ev), action)
		}
		return ev[0].Detail["sessions_revoked"]
	}
	if n := counted("admin.sessions_revoke_all"); n != float64(1) {
		t.Errorf("revoke all: sessions_revoked = %v, want 1 (the live one, %s)", n, live.SessionId)
	}

	again := in.login(t, u)
	if _, err := in.app.Pool.Exec(ctx, "UPDATE user_sessions SET expires_at = now() - interval '1 hour' WHERE id = $1", again.SessionId); err != nil {
		t.Fatal(err)
	}
	in.login(t, u) // live
	del, err := in.client.AdminDeleteUserWithResponse(ctx, u.User.Id, nil, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, del, del.Body, http.StatusNoContent)
	if n := counted("admin.user_delete"); n != float64(1) {
		t.Errorf("delete: sessions_revoked = %v, want 1 (the live one)", n)
	}
}

// demoteEachOther has a demote b and b demote a at once, each with their own token, and returns
// the two statuses (a's first).
func (in *instance) demoteEachOther(t *testing.T, a, b account, aPair, bPair api.TokenPair) []int {
	t.Helper()
	statuses := make([]int, 2)
	var wg sync.WaitGroup
	for i, p := range []struct {
		target uuid.UUID
		token  string
	}{{b.User.Id, aPair.AccessToken}, {a.User.Id, bPair.AccessToken}} {
		wg.Go(func() {
			r, err := in.client.AdminUpdateUserWithResponse(context.Background(), p.target, nil, api.AdminUpdateUserJSONRequestBody{Role: new(api.RoleUser)}, bearer(p.token))
			if err != nil {
				t.Error(err)
				return
			}
			statuses[i] = r.StatusCode()
		})
	}
	wg.Wait()
	return statuses
}
