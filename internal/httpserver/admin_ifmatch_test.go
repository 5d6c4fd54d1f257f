package httpserver_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	api "github.com/portcullis/portcullis/gen/api"
)

// Two admins edit one user: each read gives the user's version (ETag), and a change or deletion
// sent with If-Match applies only to that version. The one who comes second gets 412
// precondition-failed and changes nothing, instead of silently undoing the first one's change.
func TestAdminChangesWithIfMatchDoNotOverwriteOthers(t *testing.T) {
	t.Parallel()
	in := start(t)
	_, adminPair := in.createWithRole(t, "admin")
	tok := adminPair.AccessToken
	ctx := context.Background()
	victim := in.register(t)
	id := victim.User.Id

	get := func() (api.User, string) {
		t.Helper()
		r, err := in.client.AdminGetUserWithResponse(ctx, id, bearer(tok))
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, r, r.Body, http.StatusOK)
		return *r.JSON200, r.HTTPResponse.Header.Get("ETag")
	}
	patch := func(ifMatch *string, body api.AdminUpdateUserJSONRequestBody) *api.AdminUpdateUserResponse {
		t.Helper()
		r, err := in.client.AdminUpdateUserWithResponse(ctx, id, &api.AdminUpdateUserParams{IfMatch: ifMatch}, body, bearer(tok))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	updates := func() int { return in.auditEvents(t, tok, id.String(), "admin.user_update") }

	_, first := get()
	if len(first) < 3 || first[0] != '"' || first[len(first)-1] != '"' {
		t.Fatalf("GET's ETag = %q, want a strong entity tag", first)
	}
	// Admin A changes the user with the version read.
	r := patch(&first, api.AdminUpdateUserJSONRequestBody{IsVerified: new(true)})
	wantStatus(t, r, r.Body, http.StatusOK)
	second := r.HTTPResponse.Header.Get("ETag")
	if second == "" || second == first {
		t.Fatalf("PATCH's ETag = %q after %q: want the new version's", second, first)
	}
	if u, now := get(); now != second || !u.IsVerified {
		t.Fatalf("GET after the change: ETag %q verified %v, want %q true", now, u.IsVerified, second)
	}
	before := updates()

	// Admin B, who read the user before A's change, is refused whatever B sends.
	for _, cond := range []string{first, "W/" + second, `"nonsense"`, "", first + ", " + `"other"`} {
		r := patch(&cond, api.AdminUpdateUserJSONRequestBody{IsVerified: new(false), Role: new(api.RoleModerator)})
		wantProblem(t, r, r.Body, http.StatusPreconditionFailed, "precondition-failed")
	}
	d, err := in.client.AdminDeleteUserWithResponse(ctx, id, &api.AdminDeleteUserParams{IfMatch: &first}, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, d, d.Body, http.StatusPreconditionFailed, "precondition-failed")
	if u, now := get(); now != second || !u.IsVerified || u.Role != api.RoleUser {
		t.Fatalf("after refused changes: ETag %q verified %v role %s, want %q true user", now, u.IsVerified, u.Role, second)
	}
	if n := updates(); n != before {
		t.Fatalf("refused changes were audited: %d admin.user_update events, want %d", n, before)
	}

	// The current version among others, or "*", matches; so does no If-Match at all.
	list := `"other", ` + second
	r = patch(&list, api.AdminUpdateUserJSONRequestBody{Role: new(api.RoleModerator)})
	wantStatus(t, r, r.Body, http.StatusOK)
	_, current := get()
	// The same list sent as two header lines is one list (RFC 9110 5.3).
	lines := func(tags ...string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPatch, in.url+"/api/v1/admin/users/"+id.String(), strings.NewReader(`{"is_verified": true}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		for _, tag := range tags {
			req.Header.Add("If-Match", tag)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := lines(`"other"`, first); got != http.StatusPreconditionFailed {
		t.Fatalf("two If-Match lines naming old versions: %d, want 412", got)
	}
	if got := lines(`"other"`, current); got != http.StatusOK {
		t.Fatalf("two If-Match lines, the second the current version: %d, want 200", got)
	}
	r = patch(new("*"), api.AdminUpdateUserJSONRequestBody{Role: new(api.RoleUser)})
	wantStatus(t, r, r.Body, http.StatusOK)
	r = patch(nil, api.AdminUpdateUserJSONRequestBody{IsVerified: new(false)})
	wantStatus(t, r, r.Body, http.StatusOK)
	_, last := get()
	if last != r.HTTPResponse.Header.Get("ETag") {
		t.Fatalf("GET's ETag %q differs from the last PATCH's %q", last, r.HTTPResponse.Header.Get("ETag"))
	}
	d, err = in.client.AdminDeleteUserWithResponse(ctx, id, &api.AdminDeleteUserParams{IfMatch: &last}, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, d, d.Body, http.StatusNoContent)
}

// A user's own profile edits take If-Match as an admin's do: an edit from a device that read the
// profile before another device's edit, or an admin's, is refused with 412 and changes nothing,
// instead of silently undoing the other.
func TestUpdateMeWithIfMatchDoesNotOverwriteOthers(t *testing.T) {
	t.Parallel()
	in := start(t)
	_, adminPair := in.createWithRole(t, "admin")
	a := in.register(t)
	tok := in.login(t, a).AccessToken
	ctx := context.Background()

	get := func() (api.User, string) {
		t.Helper()
		r, err := in.client.GetMeWithResponse(ctx, bearer(tok))
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, r, r.Body, http.StatusOK)
		return *r.JSON200, r.HTTPResponse.Header.Get("ETag")
	}
	patch := func(ifMatch *string, name string) *api.UpdateMeResponse {
		t.Helper()
		return in.setFullName(t, tok, ifMatch, name)
	}

	_, phone := get() // two devices read the profile
	laptop := phone
	r := patch(&phone, "Ada from the phone")
	wantStatus(t, r, r.Body, http.StatusOK)
	edited := r.HTTPResponse.Header.Get("ETag")
	if edited == "" || edited == phone {
		t.Fatalf("PATCH's ETag = %q after %q: want the new version's", edited, phone)
	}
	if u, now := get(); now != edited || u.FullName.MustGet() != "Ada from the phone" {
		t.Fatalf("GET after the edit: ETag %q, name %v; want %q and the phone's name", now, u.FullName, edited)
	}
	r = patch(&laptop, "Ada from the laptop")
	wantProblem(t, r, r.Body, http.StatusPreconditionFailed, "precondition-failed")
	// A field past the spec's bound is the client's error, named, not a 412 or a 500.
	huge := strings.Repeat(edited+", ", 100)
	r = patch(&huge, "Ada the huge")
	wantField(t, wantProblem(t, r, r.Body, http.StatusBadRequest, "validation-failed"), "If-Match")

	// An admin's change of the user is a change too: the phone's tag is stale after it.
	ar, err := in.client.AdminUpdateUserWithResponse(ctx, a.User.Id, nil, api.AdminUpdateUserJSONRequestBody{IsVerified: new(true)}, bearer(adminPair.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, ar, ar.Body, http.StatusOK)
	r = patch(&edited, "Ada again")
	wantProblem(t, r, r.Body, http.StatusPreconditionFailed, "precondition-failed")
	u, current := get()
	if u.FullName.MustGet() != "Ada from the phone" || !u.IsVerified {
		t.Fatalf("after refused edits: %+v, want the phone's name and the admin's verification", u)
	}

	// The current version, "*", or no If-Match at all, applies.
	for _, cond := range []*string{&current, new("*"), nil} {
		r = patch(cond, "Ada King")
		wantStatus(t, r, r.Body, http.StatusOK)
	}
}

// A 201 says where the new user is read (Location, RFC 9110 10.2.2) and at which version
// (ETag), so a client can follow it, and guard its next change, without another read.
func TestCreatedUserHasLocationAndETag(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	_, staff := in.createWithRole(t, "admin")
	tok := staff.AccessToken

	c, err := in.client.AdminCreateUserWithResponse(ctx, api.AdminCreateUserJSONRequestBody{
		Email: "located@example.com", Username: "located", Password: "a long and unusual passphrase", Role: api.RoleUser,
	}, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, c, c.Body, http.StatusCreated)
	loc, etag := c.HTTPResponse.Header.Get("Location"), c.HTTPResponse.Header.Get("ETag")
	if want := "/api/v1/admin/users/" + c.JSON201.Id.String(); loc != want {
		t.Fatalf("Location = %q, want %q", loc, want)
	}
	resp, body := in.raw(t, http.MethodGet, loc, "", nil, "Authorization", "Bearer "+tok)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"username":"located"`) {
		t.Fatalf("GET Location = %d %s, want the created user", resp.StatusCode, body)
	}
	if etag == "" || resp.Header.Get("ETag") != etag {
		t.Fatalf("ETag of the 201 = %q, of a read of the user = %q: want the same version", etag, resp.Header.Get("ETag"))
	}
	u, err := in.client.AdminUpdateUserWithResponse(ctx, c.JSON201.Id, &api.AdminUpdateUserParams{IfMatch: &etag},
		api.AdminUpdateUserJSONRequestBody{IsVerified: new(true)}, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, u, u.Body, http.StatusOK)

	r, err := in.client.RegisterUserWithResponse(ctx, api.RegisterUserJSONRequestBody{
		Email: "registered@example.com", Username: "registered", Password: "a long and unusual passphrase",
	})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusCreated)
	if loc := r.HTTPResponse.Header.Get("Location"); loc != "/api/v1/users/me" {
		t.Fatalf("Location of a registration = %q, want /api/v1/users/me", loc)
	}
	pair := in.login(t, account{User: *r.JSON201, Password: "a long and unusual passphrase"})
	resp, body = in.raw(t, http.MethodGet, "/api/v1/users/me", "", nil, "Authorization", "Bearer "+pair.AccessToken)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") != r.HTTPResponse.Header.Get("ETag") || r.HTTPResponse.Header.Get("ETag") == "" {
		t.Fatalf("GET /users/me = %d %s with ETag %q; the registration's was %q", resp.StatusCode, body, resp.Header.Get("ETag"), r.HTTPResponse.Header.Get("ETag"))
	}
}
