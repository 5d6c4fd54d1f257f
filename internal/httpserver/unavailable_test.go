package httpserver_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/oapi-codegen/nullable"

	api "github.com/portcullis/portcullis/gen/api"
)

// With PostgreSQL unreachable, every operation that needs it answers 503 `unavailable` with
// Retry-After, which its spec declares (the validating client checks the header), and a
// secured one does not call the caller's good token invalid.
func TestEveryOperationIsUnavailableWithoutPostgres(t *testing.T) {
	in, proxy := startBehindPostgresProxy(t)
	acct := in.register(t)
	pair := in.login(t, acct)
	_, adminPair := in.createWithRole(t, "admin")
	ctx := context.Background()
	me, admin := bearer(pair.AccessToken), bearer(adminPair.AccessToken)
	email := acct.User.Email
	name := "fresh" + uuid.NewString()[:8]
	uid, sid := acct.User.Id, pair.SessionId
	proxy.Cut()
	type call func() (statusCoder, http.Header, []byte, error)
	wrap := func(r interface {
		StatusCode() int
	}, h *http.Response, b []byte, err error) (statusCoder, http.Header, []byte, error) {
		if err != nil {
			return nil, nil, nil, err
		}
		return r, h.Header, b, nil
	}
	calls := map[string]call{
		"registerUser": func() (statusCoder, http.Header, []byte, error) {
			r, err := in.client.RegisterUserWithResponse(ctx, api.RegisterUserJSONRequestBody{Email: api.Email(name + "@example.com"), Username: name, Password: "a long and unusual passphrase"})
			if err != nil {
				return nil, nil, nil, err
			}
			return wrap(r, r.HTTPResponse, r.Body, err)
		},
		"login": func() (statusCoder, http.Header, []byte, error) {
			r, err := in.client.LoginWithResponse(ctx, api.LoginJSONRequestBody{Email: &email, Password: acct.Password})
			if err != nil {
				return nil, nil, nil, err
			}
			return wrap(r, r.HTTPResponse, r.Body, err)
		},
		"refreshTokens": func() (statusCoder, http.Header, []byte, error) {
			r, err := in.client.RefreshTokensWithResponse(ctx, api.RefreshTokensJSONRequestBody{RefreshToken: pair.RefreshToken})
			if err != nil {
				return nil, nil, nil, err
			}
			return wrap(r, r.HTTPResponse, r.Body, err)
		},
		"updateMe": func() (statusCoder, http.Header, []byte, error) {
			r, err := in.client.UpdateMeWithResponse(ctx, nil, api.UpdateMeJSONRequestBody{FullName: nullable.NewNullableWithValue("Ada")}, me)
			if err != nil {
				return nil, nil, nil, err
			}
			return wrap(r, r.HTTPResponse, r.Body, err)
		},
		"changePassword": func() (statusCoder, http.Header, []byte, error) {
			r, err := in.client.ChangePasswordWithResponse(ctx, api.ChangePasswordJSONRequestBody{CurrentPassword: acct.Password, NewPassword: acct.Password + " v2"}, me)
			if err != nil {
				return nil, nil, nil, err
			}
			return wrap(r, r.HTTPResponse, r.Body, err)
		},
		"listMySessions": func() (statusCoder, http.Header, []byte, error) {
			r, err := in.client.ListMySessionsWithResponse(ctx, me)
			if err != nil {
				return nil, nil, nil, err
			}
			return wrap(r, r.HTTPResponse, r.Body, err)
		},
		"revokeMySession": func() (statusCoder, http.Header, []byte, error) {
			r, err := in.client.RevokeMySessionWithResponse(ctx, uuid.Must(uuid.NewV7()), me)
			if err != nil {
				return nil, nil, nil, err
			}
			return wrap(r, r.HTTPResponse, r.Body, err)
		},
		"adminListUsers": func() (statusCoder, http.Header, []byte, error) {
			r, err := in.client.AdminListUsersWithResponse(ctx, &api.AdminListUsersParams{}, admin)
			if err != nil {
				return nil, nil, nil, err
			}
			return wrap(r, r.HTTPResponse, r.Body, err)
		},
		"adminCreateUser": func() (statusCoder, http.Header, []byte, error) {
			r, err := in.client.AdminCreateUserWithResponse(ctx, api.AdminCreateUserJSONRequestBody{Email: api.Email("x" + name + "@example.com"), Username: "x" + name, Password: "a long and unusual passphrase", Role: api.RoleUser}, admin)
			if err != nil {
				return nil, nil, nil, err
			}
			return wrap(r, r.HTTPResponse, r.Body, err)
		},
		"adminGetUser": func() (statusCoder, http.Header, []byte, error) {
			r, err := in.client.AdminGetUserWithResponse(ctx, uuid.Must(uuid.NewV7()), admin)
			if err != nil {
				return nil, nil, nil, err
			}
			return wrap(r, r.HTTPResponse, r.Body, err)
		},
		"adminUpdateUser": func() (statusCoder, http.Header, []byte, error) {
			v := true
			r, err := in.client.AdminUpdateUserWithResponse(ctx, uid, nil, api.AdminUpdateUserJSONRequestBody{IsVerified: &v}, admin)
			if err != nil {
				return nil, nil, nil, err
			}
			return wrap(r, r.HTTPResponse, r.Body, err)
		},
		"adminListUserSessions": func() (statusCoder, http.Header, []byte, error) {
			r, err := in.client.AdminListUserSessionsWithResponse(ctx, uid, admin)
			if err != nil {
				return nil, nil, nil, err
			}
			return wrap(r, r.HTTPResponse, r.Body, err)
		},
		"adminRevokeUserSession": func() (statusCoder, http.Header, []byte, error) {
			r, err := in.client.AdminRevokeUserSessionWithResponse(ctx, uid, sid, admin)
			if err != nil {
				return nil, nil, nil, err
			}
			return wrap(r, r.HTTPResponse, r.Body, err)
		},
		"adminRevokeUserSessions": func() (statusCoder, http.Header, []byte, error) {
			r, err := in.client.AdminRevokeUserSessionsWithResponse(ctx, uid, admin)
			if err != nil {
				return nil, nil, nil, err
			}
			return wrap(r, r.HTTPResponse, r.Body, err)
		},
		"adminDeleteUser": func() (statusCoder, http.Header, []byte, error) {
			r, err := in.client.AdminDeleteUserWithResponse(ctx, uuid.Must(uuid.NewV7()), nil, admin)
			if err != nil {
				return nil, nil, nil, err
			}
			return wrap(r, r.HTTPResponse, r.Body, err)
		},
		"adminListAuditEvents": func() (statusCoder, http.Header, []byte, error) {
			r, err := in.client.AdminListAuditEventsWithResponse(ctx, &api.AdminListAuditEventsParams{}, admin)
			if err != nil {
				return nil, nil, nil, err
			}
			return wrap(r, r.HTTPResponse, r.Body, err)
		},
		"getMe": func() (statusCoder, http.Header, []byte, error) {
			r, err := in.client.GetMeWithResponse(ctx, me)
			if err != nil {
				return nil, nil, nil, err
			}
			return wrap(r, r.HTTPResponse, r.Body, err)
		},
		"logout": func() (statusCoder, http.Header, []byte, error) {
			r, err := in.client.LogoutWithResponse(ctx, me)
			if err != nil {
				return nil, nil, nil, err
			}
			return wrap(r, r.HTTPResponse, r.Body, err)
		},
		"logoutAll": func() (statusCoder, http.Header, []byte, error) {
			r, err := in.client.LogoutAllWithResponse(ctx, admin)
			if err != nil {
				return nil, nil, nil, err
			}
			return wrap(r, r.HTTPResponse, r.Body, err)
		},
	}
	for op, c := range calls {
		r, h, body, err := c()
		if err != nil {
			t.Errorf("%s: %v", op, err)
			continue
		}
		if r.StatusCode() != http.StatusServiceUnavailable {
			t.Errorf("%s with PostgreSQL down: %d %s, want 503", op, r.StatusCode(), body)
			continue
		}
		wantProblem(t, r, body, http.StatusServiceUnavailable, "unavailable")
		if !declaresStatus(t, op, http.StatusServiceUnavailable) {
			t.Errorf("%s: the spec leaves its 503 to `default`", op)
		}
		if h.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", op)
		}
		// The token is fine; only the database is not: nothing asks the client to replace it.
		if v := h.Get("WWW-Authenticate"); v != "" {
			t.Errorf("%s: 503 with WWW-Authenticate %q", op, v)
		}
	}
}

// declaresStatus reports whether the spec names status among operationID's responses.
func declaresStatus(t testing.TB, operationID string, status int) bool {
	t.Helper()
	spec, err := api.GetSwagger()
	if err != nil {
		t.Fatal(err)
	}
	for _, item := range spec.Paths.Map() {
		for _, op := range item.Operations() {
			if strings.EqualFold(op.OperationID, operationID) { // the embedded copy renames them
				return op.Responses.Status(status) != nil
			}
		}
	}
	t.Fatalf("no operation %s", operationID)
	return false
}

// PostgreSQL cancelling a statement (statement_timeout, as deployments commonly set, or an
// operator's pg_cancel_backend: SQLSTATE 57014) is the database not serving in time, 503 with
// Retry-After, not 500 internal (found in review).
func TestCancelledStatementIs503(t *testing.T) {
	in := start(t)
	acct := in.register(t)
	pair := in.login(t, acct)
	ctx := context.Background()
	var db string
	if err := in.app.Pool.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	if _, err := in.app.Pool.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" SET statement_timeout = '300ms'"); err != nil {
		t.Fatal(err)
	}
	in.app.Pool.Reset() // new connections take the setting
	holdRow(t, in, "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE", acct.User.Id)
	r, err := in.client.UpdateMeWithResponse(ctx, nil, api.UpdateMeJSONRequestBody{FullName: nullable.NewNullableWithValue("Renamed")}, bearer(pair.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, r, r.Body, http.StatusServiceUnavailable, "unavailable")
	if r.HTTPResponse.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
}
