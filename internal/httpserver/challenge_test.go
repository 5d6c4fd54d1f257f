package httpserver_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	api "github.com/portcullis/portcullis/gen/api"
)

// The Bearer challenges of RFC 6750, through the validating client, which fails a response
// whose WWW-Authenticate the spec does not declare: 401 without a token and with a bad one,
// 403 insufficient_scope naming the scopes the operation needs.
func TestBearerChallengesAreDeclared(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	pair := in.login(t, in.register(t))

	r, err := in.client.GetMeWithResponse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, r, r.Body, http.StatusUnauthorized, "missing-token")
	if got := r.HTTPResponse.Header.Get("WWW-Authenticate"); got != `Bearer realm="portcullis"` {
		t.Errorf("401 missing-token: WWW-Authenticate = %q", got)
	}

	r, err = in.client.GetMeWithResponse(ctx, bearer("not.a.jwt"))
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, r, r.Body, http.StatusUnauthorized, "invalid-token")
	if got := r.HTTPResponse.Header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
		t.Errorf("401 invalid-token: WWW-Authenticate = %q", got)
	}

	l, err := in.client.AdminListUsersWithResponse(ctx, &api.AdminListUsersParams{}, bearer(pair.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, l, l.Body, http.StatusForbidden, "insufficient-permissions")
	if got := l.HTTPResponse.Header.Get("WWW-Authenticate"); !strings.Contains(got, `error="insufficient_scope", scope="users:read"`) {
		t.Errorf("403: WWW-Authenticate = %q", got)
	}
}
