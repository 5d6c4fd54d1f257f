package httpserver_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/oapi-codegen/nullable"

	api "github.com/portcullis/portcullis/gen/api"
)

func TestUpdateMe(t *testing.T) {
	in := start(t)
	a := in.register(t)
	b := in.register(t)
	tok := in.login(t, a).AccessToken
	ctx := context.Background()

	newName := "renamed_" + a.User.Username[:6]
	r, err := in.client.UpdateMeWithResponse(ctx, nil, api.UpdateMeJSONRequestBody{Username: &newName, FullName: nullable.NewNullableWithValue("Ada King")}, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusOK)
	if r.JSON200.Username != newName || r.JSON200.FullName.MustGet() != "Ada King" || !r.JSON200.UpdatedAt.After(a.User.UpdatedAt) {
		t.Fatalf("after update: %+v", r.JSON200)
	}

	// null clears the name; an absent field leaves it alone.
	r, err = in.client.UpdateMeWithBodyWithResponse(ctx, nil, "application/json", strings.NewReader(`{"full_name":null}`), bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusOK)
	if !r.JSON200.FullName.IsNull() || r.JSON200.Username != newName {
		t.Fatalf("after clearing: %+v", r.JSON200)
	}

	tests := []struct {
		name, body string
		status     int
		code       string
		field      string
	}{
		{"username taken in other case", `{"username":"` + strings.ToUpper(b.User.Username) + `"}`, 409, "username-taken", "username"},
		{"role is not self-service", `{"role":"admin"}`, 400, "validation-failed", "role"},
		{"is_verified is not self-service", `{"is_verified":true}`, 400, "validation-failed", "is_verified"},
		{"empty patch", `{}`, 400, "validation-failed", "body"},
		{"control character in name", `{"full_name":"bad\u0007name"}`, 400, "invalid-request", "full_name"},
		{"name too long", `{"full_name":"` + strings.Repeat("n", 201) + `"}`, 400, "invalid-request", "full_name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := in.client.UpdateMeWithBodyWithResponse(ctx, nil, "application/json", strings.NewReader(tt.body), bearer(tok))
			if err != nil {
				t.Fatal(err)
			}
			p := wantProblem(t, r, r.Body, tt.status, tt.code)
			wantField(t, p, tt.field)
		})
	}
	me, err := in.client.GetMeWithResponse(ctx, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	if me.JSON200.Role != api.RoleUser || me.JSON200.IsVerified || me.JSON200.Username != newName {
		t.Fatalf("refused patches changed the user: %+v", me.JSON200)
	}
}

func TestChangePassword(t *testing.T) {
	in := start(t)
	a := in.register(t)
	current := in.login(t, a)
	other := in.login(t, a)
	ctx := context.Background()
	change := func(cur, next string) *api.ChangePasswordResponse {
		t.Helper()
		r, err := in.client.ChangePasswordWithResponse(ctx, api.ChangePasswordJSONRequestBody{CurrentPassword: cur, NewPassword: next}, bearer(current.AccessToken))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	r := change("not my password", "an entirely new passphrase")
	wantField(t, wantProblem(t, r, r.Body, http.StatusForbidden, "current-password-incorrect"), "current_password")
	r = change(a.Password, "iloveyou1")
	wantField(t, wantProblem(t, r, r.Body, http.StatusUnprocessableEntity, "password-too-common"), "new_password")
	r = change(a.Password, a.Password)
	wantProblem(t, r, r.Body, http.StatusUnprocessableEntity, "password-unchanged")
	if got := in.me(t, other.AccessToken); got != http.StatusOK {
		t.Fatalf("a refused change revoked sessions: %d", got)
	}

	r = change(a.Password, "an entirely new passphrase")
	wantStatus(t, r, r.Body, http.StatusNoContent)
	if got := in.me(t, current.AccessToken); got != http.StatusOK {
		t.Fatalf("current session after the change: %d, want 200", got)
	}
	if got := in.me(t, other.AccessToken); got != http.StatusUnauthorized {
		t.Fatalf("other session after the change: %d, want 401", got)
	}
	ref, err := in.client.RefreshTokensWithResponse(ctx, api.RefreshTokensJSONRequestBody{RefreshToken: other.RefreshToken})
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, ref, ref.Body, http.StatusUnauthorized, "invalid-refresh-token")

	email := a.User.Email
	old, err := in.client.LoginWithResponse(ctx, api.LoginJSONRequestBody{Email: &email, Password: a.Password})
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, old, old.Body, http.StatusUnauthorized, "invalid-credentials")
	in.login(t, account{User: a.User, Password: "an entirely new passphrase"})
}

// A change asked for by a session that is revoked while it is under way (here: waiting for the
// user's row, which the test holds FOR NO KEY UPDATE: the change's FOR UPDATE waits for that, the
// logout's audit event, a foreign key to the user, does not) is refused with 401 session-revoked
// and changes nothing: a password change would otherwise land on a revoked session's say and
// end the user's other sessions; a profile edit, rename the account for a session its owner or
// an admin has just ended.
func TestChangeBySessionRevokedMidwayChangesNothing(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name   string
		change func(a account, token string) (statusCoder, []byte, error)
		after  func(t *testing.T, a account) // the account is as it was
	}{
		{"password", func(a account, token string) (statusCoder, []byte, error) {
			r, err := in.client.ChangePasswordWithResponse(ctx, api.ChangePasswordJSONRequestBody{CurrentPassword: a.Password, NewPassword: "an entirely new passphrase"}, bearer(token))
			if err != nil {
				return nil, nil, err
			}
			return r, r.Body, nil
		}, func(t *testing.T, a account) {
			in.login(t, a) // the old password still signs in (login fails the test otherwise)
		}},
		{"profile", func(a account, token string) (statusCoder, []byte, error) {
			name := uniqueName()
			r, err := in.client.UpdateMeWithResponse(ctx, nil, api.UpdateMeJSONRequestBody{Username: &name, FullName: nullable.NewNullableWithValue("Renamed")}, bearer(token))
			if err != nil {
				return nil, nil, err
			}
			return r, r.Body, nil
		}, func(t *testing.T, a account) {
			var username string
			var fullName *string
			if err := in.app.Pool.QueryRow(ctx, "SELECT username, full_name FROM users WHERE id = $1", a.User.Id).Scan(&username, &fullName); err != nil {
				t.Fatal(err)
			}
			if username != a.User.Username || fullName != nil {
				t.Fatalf("after the refused edit: username %q, full name %v", username, fullName)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := in.register(t)
			asking, other := in.login(t, a), in.login(t, a)
			hold := holdRow(t, in, "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE", a.User.Id)
			done := sendWaiting(t, in, "the user's row", func() (statusCoder, []byte, error) { return tt.change(a, asking.AccessToken) })
			out, err := in.client.LogoutWithResponse(ctx, bearer(asking.AccessToken))
			if err != nil {
				t.Fatal(err)
			}
			wantStatus(t, out, out.Body, http.StatusNoContent)
			if err := hold.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			r := <-done
			wantProblem(t, r, r.body, http.StatusUnauthorized, "session-revoked")
			if got := in.me(t, other.AccessToken); got != http.StatusOK {
				t.Fatalf("the other session after the refused change: %d, want 200", got)
			}
			tt.after(t, a)
		})
	}
}

func TestMySessions(t *testing.T) {
	in := start(t)
	a := in.register(t)
	first := in.login(t, a)
	r, err := in.client.LoginWithResponse(context.Background(), api.LoginJSONRequestBody{Email: &a.User.Email, Password: a.Password},
		header("User-Agent", "Portcullis\tTest/1.0"))
	if err != nil {
		t.Fatal(err)
	}
	second := *r.JSON200
	ctx := context.Background()

	list, err := in.client.ListMySessionsWithResponse(ctx, bearer(second.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, list, list.Body, http.StatusOK)
	items := list.JSON200.Items
	if len(items) != 2 || items[0].Id != second.SessionId || !items[0].Current || items[1].Id != first.SessionId || items[1].Current {
		t.Fatalf("sessions = %+v", items)
	}
	if ua := items[0].UserAgent.MustGet(); ua != "PortcullisTest/1.0" {
		t.Fatalf("user agent = %q (control characters must be dropped)", ua)
	}
	if ip := items[0].IpAddress.MustGet(); ip != "127.0.0.1" {
		t.Fatalf("ip = %q", ip)
	}

	resp, body := in.raw(t, "DELETE", "/api/v1/users/me/sessions/not-a-uuid", "", nil, "Authorization", "Bearer "+second.AccessToken)
	wantField(t, wantProblem(t, rawStatus{resp}, body, http.StatusBadRequest, "validation-failed"), "session_id")

	// Someone else's session and an unknown one look the same: not found.
	stranger := in.register(t)
	theirs := in.login(t, stranger)
	for _, id := range []uuid.UUID{theirs.SessionId, uuid.Must(uuid.NewV7())} {
		r, err := in.client.RevokeMySessionWithResponse(ctx, id, bearer(second.AccessToken))
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, r, r.Body, http.StatusNotFound, "session-not-found")
	}
	if got := in.me(t, theirs.AccessToken); got != http.StatusOK {
		t.Fatalf("stranger's session after a refused revoke: %d", got)
	}

	del, err := in.client.RevokeMySessionWithResponse(ctx, first.SessionId, bearer(second.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, del, del.Body, http.StatusNoContent)
	if got := in.me(t, first.AccessToken); got != http.StatusUnauthorized {
		t.Fatalf("revoked session: %d", got)
	}
	list, err = in.client.ListMySessionsWithResponse(ctx, bearer(second.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	if len(list.JSON200.Items) != 1 || list.JSON200.Items[0].Id != second.SessionId {
		t.Fatalf("after revoke: %+v", list.JSON200.Items)
	}
	again, err := in.client.RevokeMySessionWithResponse(ctx, first.SessionId, bearer(second.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, again, again.Body, http.StatusNotFound, "session-not-found")
}

func TestDisabledAccountCannotSignIn(t *testing.T) {
	in := start(t)
	a := in.register(t)
	if _, err := in.app.Pool.Exec(context.Background(), "UPDATE users SET is_active = false WHERE id = $1", a.User.Id); err != nil {
		t.Fatal(err)
	}
	r, err := in.client.LoginWithResponse(context.Background(), api.LoginJSONRequestBody{Email: &a.User.Email, Password: a.Password})
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, r, r.Body, http.StatusForbidden, "account-disabled")
	// With a wrong password the answer is the usual one: nothing about the account's state leaks.
	r, err = in.client.LoginWithResponse(context.Background(), api.LoginJSONRequestBody{Email: &a.User.Email, Password: "wrong password entirely"})
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, r, r.Body, http.StatusUnauthorized, "invalid-credentials")
}

// The signed-in user's record is served from each instance's memory, and a change made on one
// instance (by the user or by an admin) is what the other instance's next request sees, once
// Redis's invalidation has reached it (see soon).
func TestProfileChangesAreSeenByEveryInstanceAtOnce(t *testing.T) {
	a := start(t)
	b := startWith(t, a.cfg) // same database, same Redis prefix
	ctx := context.Background()
	_, adminPair := a.createWithRole(t, "admin")
	acct := a.register(t)
	tok := a.login(t, acct).AccessToken
	meOn := func(in *instance) api.User {
		t.Helper()
		r, err := in.client.GetMeWithResponse(ctx, bearer(tok))
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, r, r.Body, http.StatusOK)
		return *r.JSON200
	}
	meOn(b) // B caches the record

	// The cache really answers: a change behind the service's back is not seen...
	if _, err := a.app.Pool.Exec(ctx, "UPDATE users SET full_name = 'Written Behind' WHERE id = $1", acct.User.Id); err != nil {
		t.Fatal(err)
	}
	if got := meOn(b); got.FullName.IsSpecified() && !got.FullName.IsNull() && got.FullName.MustGet() == "Written Behind" {
		t.Fatal("B read PostgreSQL although it had the record cached")
	}
	// ...but every change through the service is, on the other instance's next request.
	renamed := "renamed_" + acct.User.Username[:6]
	r, err := a.client.UpdateMeWithResponse(ctx, nil, api.UpdateMeJSONRequestBody{Username: &renamed, FullName: nullable.NewNullableWithValue("Ada King")}, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusOK)
	soon(t, "B after the user's edit on A", func() error {
		if got := meOn(b); got.Username != renamed || !got.FullName.IsSpecified() || got.FullName.IsNull() || got.FullName.MustGet() != "Ada King" || !got.UpdatedAt.Equal(r.JSON200.UpdatedAt) {
			return fmt.Errorf("username %q full name %v updated %v; want %q, Ada King, %v", got.Username, got.FullName, got.UpdatedAt, renamed, r.JSON200.UpdatedAt)
		}
		return nil
	})
	meOn(a) // A caches it too
	verified := true
	ar, err := b.client.AdminUpdateUserWithResponse(ctx, acct.User.Id, nil, api.AdminUpdateUserJSONRequestBody{IsVerified: &verified, FullName: nullable.NewNullNullable[string]()}, bearer(adminPair.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, ar, ar.Body, http.StatusOK)
	soon(t, "A after an admin's edit on B", func() error {
		if got := meOn(a); !got.IsVerified || !got.FullName.IsNull() {
			return fmt.Errorf("verified %v full name %v; want true and null", got.IsVerified, got.FullName)
		}
		return nil
	})
}

// A PATCH that changes nothing writes nothing: updated_at stays, and no profile_update event
// claims a change that did not happen. A real change (a new letter case included) still does.
func TestNoOpProfilePatchWritesNothing(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	_, admin := in.createWithRole(t, "admin")
	a := in.register(t)
	tok := in.login(t, a).AccessToken
	profileEvents := func() int { return in.auditEvents(t, admin.AccessToken, a.User.Id.String(), "user.profile_update") }
	patch := func(body string) api.User {
		t.Helper()
		r, err := in.client.UpdateMeWithBodyWithResponse(ctx, nil, "application/json", strings.NewReader(body), bearer(tok))
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, r, r.Body, http.StatusOK)
		return *r.JSON200
	}
	named := patch(`{"full_name":"Ada King"}`)
	if n := profileEvents(); n != 1 {
		t.Fatalf("after a change: %d profile_update events, want 1", n)
	}
	for _, body := range []string{
		`{"username":"` + a.User.Username + `"}`,
		`{"full_name":"Ada King"}`,
		`{"username":"` + a.User.Username + `","full_name":"Ada King"}`,
	} {
		got := patch(body)
		if !got.UpdatedAt.Equal(named.UpdatedAt) || got.Username != a.User.Username || got.FullName.MustGet() != "Ada King" {
			t.Fatalf("%s: %+v; want it unchanged, updated_at %v", body, got, named.UpdatedAt)
		}
	}
	if n := profileEvents(); n != 1 {
		t.Fatalf("after no-op patches: %d profile_update events, want 1", n)
	}
	cleared := patch(`{"full_name":null}`)
	if again := patch(`{"full_name":null}`); !again.UpdatedAt.Equal(cleared.UpdatedAt) || !again.FullName.IsNull() {
		t.Fatalf("clearing a cleared name: %+v; want updated_at %v", again, cleared.UpdatedAt)
	}
	upper := patch(`{"username":"` + strings.ToUpper(a.User.Username) + `"}`)
	if upper.Username != strings.ToUpper(a.User.Username) || !upper.UpdatedAt.After(cleared.UpdatedAt) {
		t.Fatalf("a new letter case is a change: %+v", upper)
	}
	if n := profileEvents(); n != 3 {
		t.Fatalf("%d profile_update events, want 3 (name, clear, username case)", n)
	}
}

// A password change is authorised by the password it verified: when another change (the owner
// locking out whoever else knew the old password) commits while this one hashes, this one is
// refused as a wrong current password, not written over the newer password.
func TestPasswordChangeRacingAnotherIsRefused(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	a := in.register(t)
	pair := in.login(t, a)
	tx, err := in.app.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "UPDATE users SET hashed_password = 'changed elsewhere' WHERE id = $1", a.User.Id); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		r   *api.ChangePasswordResponse
		err error
	}
	done := make(chan answer, 1)
	go func() {
		r, err := in.client.ChangePasswordWithResponse(ctx, api.ChangePasswordJSONRequestBody{
			CurrentPassword: a.Password, NewPassword: "the password of whoever came second",
		}, bearer(pair.AccessToken))
		done <- answer{r, err}
	}()
	for deadline := time.Now().Add(5 * time.Second); ; {
		var waiting int
		if err := in.app.Pool.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case got := <-done:
			t.Fatalf("the change finished (%v, %v) while another was in flight, without waiting for it", got.r.StatusCode(), got.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the change neither waited on the row lock nor finished in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got.err != nil {
		t.Fatal(got.err)
	}
	wantProblem(t, got.r, got.r.Body, http.StatusForbidden, "current-password-incorrect")
	var stored string
	if err := in.app.Pool.QueryRow(ctx, "SELECT hashed_password FROM users WHERE id = $1", a.User.Id).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != "changed elsewhere" {
		t.Fatal("the change authorised by the old password overwrote the newer one")
	}
}

// A full name is stored composed (NFC), the form the admin search compares in: "José" sent
// with a combining accent is stored and answered as "José", on registration and on a change.
// A name that grows past 200 characters when composed (U+0344 becomes two) is refused, not
// stored past the column's limit.
func TestFullNameIsStoredComposed(t *testing.T) {
	t.Parallel()
	in := start(t)
	ctx := context.Background()
	user, tok := in.registerNamed(t, "Jose\u0301 Iba\u0301n\u0303ez")
	if got, _ := nullableValue(user.FullName); got != "Jos\u00e9 Ib\u00e1\u00f1ez" {
		t.Fatalf("registered full_name = %+q, want it composed", got)
	}
	u := in.setFullName(t, tok, nil, "Zoe\u0308")
	wantStatus(t, u, u.Body, http.StatusOK)
	if got, _ := nullableValue(u.JSON200.FullName); got != "Zo\u00eb" {
		t.Fatalf("changed full_name = %+q, want it composed", got)
	}
	grows := strings.Repeat("\u0344", 200)
	u = in.setFullName(t, tok, nil, grows)
	wantProblem(t, u, u.Body, http.StatusBadRequest, "invalid-request")
	var stored string
	if err := in.app.Pool.QueryRow(ctx, "SELECT full_name FROM users WHERE id = $1", user.Id).Scan(&stored); err != nil || stored != "Zo\u00eb" {
		t.Fatalf("after the refused change full_name = %+q (%v), want the composed Zoë kept", stored, err)
	}
}

// A full name is stored without the spaces around it, and an empty one is no name (null), as
// clients clearing a form field send it: "" and null no longer mean two things.
func TestFullNameIsTrimmedAndEmptyIsNone(t *testing.T) {
	t.Parallel()
	in := start(t)
	ctx := context.Background()
	user, tok := in.registerNamed(t, "  Ada Lovelace  ")
	if got, _ := nullableValue(user.FullName); got != "Ada Lovelace" {
		t.Fatalf("registered full_name = %q, want it trimmed", got)
	}
	for _, empty := range []string{"", "   "} {
		u := in.setFullName(t, tok, nil, empty)
		wantStatus(t, u, u.Body, http.StatusOK)
		if !u.JSON200.FullName.IsNull() {
			t.Fatalf("full_name %q answered as %v, want null", empty, u.JSON200.FullName)
		}
		var stored *string
		if err := in.app.Pool.QueryRow(ctx, "SELECT full_name FROM users WHERE id = $1", user.Id).Scan(&stored); err != nil || stored != nil {
			t.Fatalf("full_name %q stored as %v (%v), want NULL", empty, stored, err)
		}
		// Set a name again for the next round.
		u = in.setFullName(t, tok, nil, "Ada")
		wantStatus(t, u, u.Body, http.StatusOK)
	}
}

// setFullName sends PATCH /users/me with full_name as tok's user, with If-Match ifMatch (nil:
// none).
func (in *instance) setFullName(t *testing.T, tok string, ifMatch *string, name string) *api.UpdateMeResponse {
	t.Helper()
	r, err := in.client.UpdateMeWithResponse(context.Background(), &api.UpdateMeParams{IfMatch: ifMatch}, api.UpdateMeJSONRequestBody{FullName: nullable.NewNullableWithValue(name)}, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// registerNamed registers a fresh account with fullName through the API and signs it in.
func (in *instance) registerNamed(t *testing.T, fullName string) (api.User, string) {
	t.Helper()
	name := "named" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	pw := "a long and unusual passphrase"
	r, err := in.client.RegisterUserWithResponse(context.Background(), api.RegisterUserJSONRequestBody{
		Email: api.Email(name + "@example.com"), Username: name, Password: pw, FullName: &fullName,
	})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusCreated)
	return *r.JSON201, in.login(t, account{User: *r.JSON201, Password: pw}).AccessToken
}

// A full name's 200-character limit counts it composed (NFC), as it is stored: 150 letters
// typed decomposed (an "e" and a combining acute each, 300 code points, as macOS and some
// keyboards send them) are a name of 150 characters, at registration, in a user's own edit and
// in an admin's; 201 composed characters are too many however they are sent.
func TestFullNameLimitCountsTheNameComposed(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	decomposed := strings.Repeat("e\u0301", 150)
	composed := strings.Repeat("\u00e9", 150)
	n := uniqueName()
	reg, err := in.client.RegisterUserWithResponse(ctx, api.RegisterUserJSONRequestBody{
		Email: api.Email(n + "@example.com"), Username: n, Password: strongPassword, FullName: &decomposed,
	})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, reg, reg.Body, http.StatusCreated)
	if got := reg.JSON201.FullName.MustGet(); got != composed {
		t.Fatalf("registered full name %q, want %q", got, composed)
	}
	a := in.register(t)
	tok := in.login(t, a).AccessToken
	me, err := in.client.UpdateMeWithResponse(ctx, nil, api.UpdateMeJSONRequestBody{FullName: nullable.NewNullableWithValue(decomposed + "x")}, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, me, me.Body, http.StatusOK)
	if got := me.JSON200.FullName.MustGet(); got != composed+"x" {
		t.Fatalf("full name %q, want %q", got, composed+"x")
	}
	_, adminPair := in.createWithRole(t, "admin")
	ar, err := in.client.AdminUpdateUserWithResponse(ctx, a.User.Id, nil, api.AdminUpdateUserJSONRequestBody{FullName: nullable.NewNullableWithValue(decomposed + "y")}, bearer(adminPair.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, ar, ar.Body, http.StatusOK)
	if got := ar.JSON200.FullName.MustGet(); got != composed+"y" {
		t.Fatalf("full name set by an admin %q, want %q", got, composed+"y")
	}
	tooLong := strings.Repeat("e\u0301", 201)
	bad, err := in.client.UpdateMeWithResponse(ctx, nil, api.UpdateMeJSONRequestBody{FullName: nullable.NewNullableWithValue(tooLong)}, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantField(t, wantProblem(t, bad, bad.Body, http.StatusBadRequest, "invalid-request"), "full_name")
}
