package httpserver_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/oapi-codegen/nullable"

	api "github.com/portcullis/portcullis/gen/api"
)

// prismChecker fails the test on any answer Stoplight Prism marks as disagreeing with the spec:
// in --errors mode it replaces such a response with a 500 carrying an sl-violations header.
type prismChecker struct {
	t    *testing.T
	next http.RoundTripper
}

func (p prismChecker) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := p.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if v := resp.Header.Get("sl-violations"); v != "" || resp.StatusCode >= 500 {
		p.t.Errorf("prism: %s %s → %d violates the spec: %s", req.Method, req.URL.Path, resp.StatusCode, v)
	}
	return resp, nil
}

// TestContractThroughPrism walks every operation, with a success and a documented error each,
// through `prism proxy` in front of a real server (make contract sets it up; see Makefile). The
// walk is independent of this package's own validator: the judge is a tool we did not write.
func TestContractThroughPrism(t *testing.T) {
	base := os.Getenv("PORTCULLIS_CONTRACT_URL")
	if base == "" {
		t.Skip("run by make contract, which starts the server and prism and sets PORTCULLIS_CONTRACT_URL")
	}
	c, err := api.NewClientWithResponses(base, api.WithHTTPClient(&http.Client{Transport: prismChecker{t, http.DefaultTransport}}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	want := func(name string, got, status int) {
		t.Helper()
		if got != status {
			t.Errorf("%s: status %d, want %d", name, got, status)
		}
	}
	status := func(r interface{ StatusCode() int }, err error) int {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return r.StatusCode()
	}
	tag := strings.ReplaceAll(uuid.NewString()[:12], "-", "")
	email := api.Email("contract" + tag + "@example.com")
	pw := "a long and unusual contract passphrase"

	want("healthz", status(c.GetHealthWithResponse(ctx)), 200)
	want("readyz", status(c.GetReadinessWithResponse(ctx)), 200)
	want("jwks", status(c.GetJWKSWithResponse(ctx)), 200)
	want("openapi.json", status(c.GetOpenAPIJSONWithResponse(ctx)), 200)
	want("openapi.yaml", status(c.GetOpenAPIYAMLWithResponse(ctx)), 200)

	reg, err := c.RegisterUserWithResponse(ctx, api.RegisterUserJSONRequestBody{Email: email, Username: "contract" + tag, Password: pw})
	want("register", status(reg, err), 201)
	want("register duplicate", status(c.RegisterUserWithResponse(ctx, api.RegisterUserJSONRequestBody{Email: email, Username: "other" + tag, Password: pw})), 409)
	want("register common password", status(c.RegisterUserWithResponse(ctx, api.RegisterUserJSONRequestBody{Email: "x" + email, Username: "x" + tag, Password: "password123"})), 422)

	bad := "wrong password entirely"
	want("login wrong password", status(c.LoginWithResponse(ctx, api.LoginJSONRequestBody{Email: &email, Password: bad})), 401)
	login, err := c.LoginWithResponse(ctx, api.LoginJSONRequestBody{Email: &email, Password: pw})
	want("login", status(login, err), 200)
	tok := login.JSON200
	second, err := c.LoginWithResponse(ctx, api.LoginJSONRequestBody{Email: &email, Password: pw})
	want("second login", status(second, err), 200)
	auth := bearer(tok.AccessToken)

	want("me", status(c.GetMeWithResponse(ctx, auth)), 200)
	want("me without token", status(c.GetMeWithResponse(ctx)), 401)
	want("update me", status(c.UpdateMeWithResponse(ctx, nil, api.UpdateMeJSONRequestBody{FullName: nullable.NewNullableWithValue("Contract Tester")}, auth)), 200)
	want("update me without token", status(c.UpdateMeWithResponse(ctx, nil, api.UpdateMeJSONRequestBody{FullName: nullable.NewNullableWithValue("x")})), 401)
	want("list sessions", status(c.ListMySessionsWithResponse(ctx, auth)), 200)
	want("list sessions without token", status(c.ListMySessionsWithResponse(ctx)), 401)
	want("revoke unknown session", status(c.RevokeMySessionWithResponse(ctx, uuid.Must(uuid.NewV7()), auth)), 404)
	want("revoke second session", status(c.RevokeMySessionWithResponse(ctx, second.JSON200.SessionId, auth)), 204)
	want("change password wrong current", status(c.ChangePasswordWithResponse(ctx, api.ChangePasswordJSONRequestBody{CurrentPassword: bad, NewPassword: pw + " v2"}, auth)), 403)
	want("change password", status(c.ChangePasswordWithResponse(ctx, api.ChangePasswordJSONRequestBody{CurrentPassword: pw, NewPassword: pw + " v2"}, auth)), 204)

	ref, err := c.RefreshTokensWithResponse(ctx, api.RefreshTokensJSONRequestBody{RefreshToken: tok.RefreshToken})
	want("refresh", status(ref, err), 200)
	want("refresh unknown token", status(c.RefreshTokensWithResponse(ctx, api.RefreshTokensJSONRequestBody{RefreshToken: "prt_" + strings.Repeat("A", 43)})), 401)
	auth = bearer(ref.JSON200.AccessToken)

	// Administration, as the admin `make contract` bootstrapped with `portcullis admin create`.
	adminEmail := api.Email(os.Getenv("PORTCULLIS_CONTRACT_ADMIN_EMAIL"))
	al, err := c.LoginWithResponse(ctx, api.LoginJSONRequestBody{Email: &adminEmail, Password: os.Getenv("PORTCULLIS_CONTRACT_ADMIN_PASSWORD")})
	want("admin login", status(al, err), 200)
	admin := bearer(al.JSON200.AccessToken)
	uid := reg.JSON201.Id
	unknown := uuid.Must(uuid.NewV7())
	want("admin list", status(c.AdminListUsersWithResponse(ctx, &api.AdminListUsersParams{}, admin)), 200)
	want("admin list as user", status(c.AdminListUsersWithResponse(ctx, &api.AdminListUsersParams{}, auth)), 403)
	created, err := c.AdminCreateUserWithResponse(ctx, api.AdminCreateUserJSONRequestBody{Email: "made" + email, Username: "made" + tag, Password: pw, Role: api.RoleModerator}, admin)
	want("admin create", status(created, err), 201)
	want("admin create duplicate", status(c.AdminCreateUserWithResponse(ctx, api.AdminCreateUserJSONRequestBody{Email: "made" + email, Username: "made2" + tag, Password: pw, Role: api.RoleUser}, admin)), 409)
	want("admin get", status(c.AdminGetUserWithResponse(ctx, uid, admin)), 200)
	want("admin get unknown", status(c.AdminGetUserWithResponse(ctx, unknown, admin)), 404)
	verified := true
	want("admin update", status(c.AdminUpdateUserWithResponse(ctx, uid, nil, api.AdminUpdateUserJSONRequestBody{IsVerified: &verified}, admin)), 200)
	want("admin update unknown", status(c.AdminUpdateUserWithResponse(ctx, unknown, nil, api.AdminUpdateUserJSONRequestBody{IsVerified: &verified}, admin)), 404)
	want("admin sessions", status(c.AdminListUserSessionsWithResponse(ctx, uid, admin)), 200)
	want("admin sessions unknown", status(c.AdminListUserSessionsWithResponse(ctx, unknown, admin)), 404)
	want("admin revoke one unknown", status(c.AdminRevokeUserSessionWithResponse(ctx, uid, unknown, admin)), 404)
	want("admin revoke one", status(c.AdminRevokeUserSessionWithResponse(ctx, uid, ref.JSON200.SessionId, admin)), 204)
	want("admin revoke all", status(c.AdminRevokeUserSessionsWithResponse(ctx, uid, admin)), 204)
	want("admin revoke all unknown", status(c.AdminRevokeUserSessionsWithResponse(ctx, unknown, admin)), 404)
	want("audit", status(c.AdminListAuditEventsWithResponse(ctx, &api.AdminListAuditEventsParams{}, admin)), 200)
	want("audit as user", status(c.AdminListAuditEventsWithResponse(ctx, &api.AdminListAuditEventsParams{}, auth)), 401) // revoked above
	want("admin delete", status(c.AdminDeleteUserWithResponse(ctx, created.JSON201.Id, nil, admin)), 204)
	want("admin delete unknown", status(c.AdminDeleteUserWithResponse(ctx, unknown, nil, admin)), 404)

	// Sign-outs last: they end the sessions the walk used.
	l2, err := c.LoginWithResponse(ctx, api.LoginJSONRequestBody{Email: &email, Password: pw + " v2"})
	want("login with new password", status(l2, err), 200)
	want("logout", status(c.LogoutWithResponse(ctx, bearer(l2.JSON200.AccessToken))), 204)
	want("logout again", status(c.LogoutWithResponse(ctx, bearer(l2.JSON200.AccessToken))), 401)
	want("logout-all", status(c.LogoutAllWithResponse(ctx, admin)), 204)
	want("logout-all again", status(c.LogoutAllWithResponse(ctx, admin)), 401)
}
