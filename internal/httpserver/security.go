package httpserver

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	"github.com/portcullis/portcullis/internal/apperr"
	"github.com/portcullis/portcullis/internal/auth"
)

// bearerScheme is the security scheme in api/openapi.yaml that access tokens satisfy.
const bearerScheme = "bearerAuth"

// requiredScopes reads from the spec whether op needs a bearer token and which scopes (the
// permissions its caller's role must hold). The spec is the only list: an operation is public
// only where it says `security: []`; otherwise the document's default applies.
func requiredScopes(spec *openapi3.T, op *openapi3.Operation) (scopes []string, secured bool) {
	reqs := spec.Security
	if op.Security != nil {
		reqs = *op.Security
	}
	if len(reqs) == 0 {
		return nil, false
	}
	for _, req := range reqs {
		s, ok := req[bearerScheme]
		if !ok || len(req) == 0 {
			return nil, false // an alternative without a bearer token: public
		}
		scopes = append(scopes, s...)
	}
	return scopes, true
}

// authenticate admits a request to a secured operation only with a valid access token of a
// live session whose current role holds every permission in needed, and puts the principal on
// the request context. It runs before the request is validated or read: callers without a
// token learn nothing about the operation.
func (s *Server) authenticate(needed []string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			token, ok := bearerToken(c.Request())
			if !ok {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="portcullis"`)
				return auth.ErrNotAuthenticated
			}
			p, err := s.authHandler.auth.Authenticate(c.Request().Context(), token)
			if err != nil {
				// Only a refused token is invalid_token (RFC 6750): a database outage or a bug
				// checking a good one is not the client's to fix by replacing it.
				if ae, ok := apperr.As(err); ok && ae.Kind == apperr.Unauthenticated {
					c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="portcullis", error="invalid_token"`)
				}
				return err
			}
			// The role is the session's current one (from the session cache), not the token's claim.
			if !auth.Allowed(p.Role, needed) {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, fmt.Sprintf(`Bearer realm="portcullis", error="insufficient_scope", scope=%q`, strings.Join(needed, " ")))
				return auth.ErrForbidden
			}
			c.SetRequest(c.Request().WithContext(auth.WithPrincipal(c.Request().Context(), p)))
			return next(c)
		}
	}
}

// bearerToken takes the token from "Authorization: Bearer <token>" (scheme case-insensitive).
func bearerToken(r *http.Request) (string, bool) {
	values := r.Header.Values(echo.HeaderAuthorization)
	if len(values) > 1 {
		// Two credentials: a proxy reading the last and us reading the first would disagree
		// about who is calling. Refuse rather than pick.
		return "", true
	}
	h := r.Header.Get(echo.HeaderAuthorization)
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
