package httpserver

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/auth"
)

// bearerScheme is the security scheme in api/openapi.yaml that access tokens satisfy.
const bearerScheme = "bearerAuth"

// securedOperations reads from the spec which operations need a bearer token, keyed by the Go
// name the strict server passes to its middleware, with the scopes each one declares. The spec
// is the only list: an operation is public only where it says `security: []`.
func securedOperations(spec *openapi3.T) map[string][]string {
	out := map[string][]string{}
	for _, item := range spec.Paths.Map() {
		for _, op := range item.Operations() {
			reqs := spec.Security
			if op.Security != nil {
				reqs = *op.Security
			}
			scopes, needs := bearerScopes(reqs)
			if needs {
				out[goName(op.OperationID)] = scopes
			}
		}
	}
	return out
}

// bearerScopes reports whether reqs demand a bearer token (no alternative is empty) and the scopes.
func bearerScopes(reqs openapi3.SecurityRequirements) ([]string, bool) {
	if len(reqs) == 0 {
		return nil, false
	}
	var scopes []string
	for _, req := range reqs {
		s, ok := req[bearerScheme]
		if !ok || len(req) == 0 {
			return nil, false
		}
		scopes = append(scopes, s...)
	}
	return scopes, true
}

func goName(operationID string) string {
	if operationID == "" {
		return ""
	}
	return strings.ToUpper(operationID[:1]) + operationID[1:]
}

// authenticate is the strict middleware that admits a request to a secured operation only with
// a valid access token of a live session, and puts the principal on the request context.
func (s *Server) authenticate(secured map[string][]string) api.StrictMiddlewareFunc {
	return func(next api.StrictHandlerFunc, operationID string) api.StrictHandlerFunc {
		needed, ok := secured[operationID]
		if !ok {
			return next
		}
		return func(c echo.Context, req any) (any, error) {
			token, ok := bearerToken(c.Request())
			if !ok {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="portcullis"`)
				return nil, auth.ErrNotAuthenticated
			}
			p, err := s.authHandler.auth.Authenticate(c.Request().Context(), token)
			if err != nil {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="portcullis", error="invalid_token"`)
				return nil, err
			}
			// The role is the session's current one (from the session cache), not the token's claim.
			if !auth.Allowed(p.Role, needed) {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, fmt.Sprintf(`Bearer realm="portcullis", error="insufficient_scope", scope=%q`, strings.Join(needed, " ")))
				return nil, auth.ErrForbidden
			}
			c.SetRequest(c.Request().WithContext(auth.WithPrincipal(c.Request().Context(), p)))
			return next(c, req)
		}
	}
}

// bearerToken takes the token from "Authorization: Bearer <token>" (scheme case-insensitive).
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get(echo.HeaderAuthorization)
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
