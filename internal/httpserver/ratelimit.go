package httpserver

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/portcullis/portcullis/internal/apperr"
	"github.com/portcullis/portcullis/internal/auth"
	"github.com/portcullis/portcullis/internal/ratelimit"
	"github.com/portcullis/portcullis/internal/users"
)

// Limits are the HTTP rate limits: every request per client IP, tighter ones per IP on the
// routes that cost a password hash or a token rotation, and per account on password changes.
// (Failed logins per account are limited by the auth service, which knows which ones failed.)
type Limits struct {
	IP              ratelimit.Limit
	LoginIP         ratelimit.Limit
	RegisterIP      ratelimit.Limit
	RefreshIP       ratelimit.Limit
	PasswordIP      ratelimit.Limit
	PasswordAccount ratelimit.Limit
}

// ErrRateLimited is the 429 of an exhausted limit; Retry-After tells when to come back.
var ErrRateLimited = apperr.New(apperr.RateLimited, "rate-limited", "too many requests; retry later")

const limitResultsKey = "portcullis.ratelimits"

// limitBy checks lim for the key keyOf derives from the request, records the result for the
// RateLimit headers, and refuses the request with 429 when the limit is exhausted.
func (s *Server) limitBy(lim ratelimit.Limit, keyOf func(echo.Context) string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := s.limiter.Allow(c.Request().Context(), lim, keyOf(c))
			results, _ := c.Get(limitResultsKey).([]ratelimit.Result)
			results = append(results, r)
			c.Set(limitResultsKey, results)
			writeLimitHeaders(c, results)
			if !r.Allowed {
				c.Response().Header().Set(echo.HeaderRetryAfter, seconds(r.RetryAfter))
				return ErrRateLimited.After(r.RetryAfter)
			}
			return next(c)
		}
	}
}

func byIP(c echo.Context) string { return "ip:" + clientFrom(c.Request().Context()).IP.String() }

func byAccount(c echo.Context) string {
	p, _ := auth.PrincipalFrom(c.Request().Context())
	return "user:" + p.UserID.String()
}

// routeLimits are the extra per-IP limits of an operation, by operationId, and for the
// operations that hash a password, the refusal of requests beyond the hashing queue.
func (s *Server) routeLimits(operationID string) []echo.MiddlewareFunc {
	switch operationID {
	case "login":
		return []echo.MiddlewareFunc{s.limitBy(s.limits.LoginIP, byIP), s.shedHashing}
	case "registerUser":
		return []echo.MiddlewareFunc{s.limitBy(s.limits.RegisterIP, byIP), s.shedHashing}
	case "refreshTokens":
		return []echo.MiddlewareFunc{s.limitBy(s.limits.RefreshIP, byIP)}
	case "changePassword":
		return []echo.MiddlewareFunc{s.limitBy(s.limits.PasswordIP, byIP)}
	}
	return nil
}

// shedHashing answers 503 at once, before the body is read, when password hashing is at
// capacity: under a flood, a request the hashing queue cannot take costs as little as possible,
// and the cores stay with the hashes already admitted.
func (s *Server) shedHashing(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.users.HashingFull() {
			return users.ErrOverloaded
		}
		return next(c)
	}
}

// accountLimits run after authentication, keyed by the signed-in user.
func (s *Server) accountLimits(operationID string) []echo.MiddlewareFunc {
	if operationID == "changePassword" {
		return []echo.MiddlewareFunc{s.limitBy(s.limits.PasswordAccount, byAccount)}
	}
	return nil
}

// writeLimitHeaders sets the IETF RateLimit-Policy (every policy applied) and RateLimit (the
// one closest to exhaustion) headers, draft-ietf-httpapi-ratelimit-headers.
func writeLimitHeaders(c echo.Context, results []ratelimit.Result) {
	policies := make([]string, len(results))
	tightest := results[0]
	for i, r := range results {
		policies[i] = fmt.Sprintf("%q;q=%d;w=%d", r.Limit.Name, r.Limit.Count, int(r.Limit.Period.Seconds()))
		if r.Remaining < tightest.Remaining || !r.Allowed {
			tightest = r
		}
	}
	h := c.Response().Header()
	h.Set("RateLimit-Policy", strings.Join(policies, ", "))
	h.Set("RateLimit", fmt.Sprintf("%q;r=%d;t=%s", tightest.Limit.Name, tightest.Remaining, seconds(tightest.Reset)))
}

// seconds renders d as whole seconds, rounded up, at least 1.
func seconds(d time.Duration) string {
	return fmt.Sprint(max(1, int(math.Ceil(d.Seconds()))))
}
