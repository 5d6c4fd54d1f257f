package httpserver

import (
	"context"
	"math"
	"net/netip"
	"strconv"
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
	// IPv6Prefix is how many leading bits of an IPv6 client address the per-IP limits key on;
	// 0 means 64.
	IPv6Prefix int
}

// ErrRateLimited is the 429 of an exhausted limit; Retry-After tells when to come back.
var ErrRateLimited = apperr.New(apperr.RateLimited, "rate-limited", "too many requests; retry later")

const limitResultsKey = "portcullis.ratelimits"

// limitBy checks lim for the key keyOf derives from the request, records the result for the
// RateLimit headers, and refuses the request with 429 when the limit is exhausted.
func (s *Server) limitBy(lim ratelimit.Limit, keyOf func(echo.Context) string) echo.MiddlewareFunc {
	policy := string(appendPolicy(nil, lim))
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := s.limiter.Allow(c.Request().Context(), lim, keyOf(c))
			applied, _ := c.Get(limitResultsKey).([]appliedLimit)
			applied = append(applied, appliedLimit{r, policy})
			c.Set(limitResultsKey, applied)
			writeLimitHeaders(c, applied)
			if !r.Allowed {
				c.Response().Header().Set(echo.HeaderRetryAfter, seconds(r.RetryAfter))
				return ErrRateLimited.After(r.RetryAfter)
			}
			return next(c)
		}
	}
}

// unlessProbe runs m on every route but the probes, /healthz and /readyz. A kubelet or load
// balancer probing from an address that also carries clients' traffic (a node port's SNAT, a
// proxy not among the trusted ones) would read a 429 as a dead or unready instance, and restart
// or drain it. The probes cost little to answer whatever the rate: /healthz touches nothing, and
// /readyz runs one check at a time, shared by every probe that arrives meanwhile.
func unlessProbe(m echo.MiddlewareFunc) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		limited := m(next)
		return func(c echo.Context) error {
			if isProbe(c) {
				return next(c)
			}
			return limited(c)
		}
	}
}

// isProbe reports whether c is routed to /healthz or /readyz.
func isProbe(c echo.Context) bool {
	switch c.Path() {
	case "/healthz", "/readyz":
		return true
	}
	return false
}

// appliedLimit is a limit checked for this request, and its RateLimit-Policy item.
type appliedLimit struct {
	ratelimit.Result
	policy string
}

// byIP keys a per-IP limit by the client's address: an IPv4 address whole (written as IPv4
// when it came IPv4-mapped, or through a NAT64 translator's well-known prefix 64:ff9b::/96), an
// IPv6 one by its first Limits.IPv6Prefix bits (/64 by default), since one subscriber is handed
// a /64 or more and would otherwise get a fresh budget from every address in it.
func (s *Server) byIP(c echo.Context) string {
	return ipKey(clientFrom(c.Request().Context()).IP, s.limits.IPv6Prefix)
}

// nat64 is RFC 6052's well-known prefix: its addresses carry an IPv4 client in the last 32 bits.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

func ipKey(ip netip.Addr, v6bits int) string {
	if v6bits < 1 || v6bits > 128 {
		v6bits = 64
	}
	ip = ip.WithZone("").Unmap()
	if nat64.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:]))
	}
	if ip.Is6() {
		if p, err := ip.Prefix(v6bits); err == nil {
			return "ip:" + p.String()
		}
	}
	return "ip:" + ip.String()
}

func byAccount(c echo.Context) string {
	p, _ := auth.PrincipalFrom(c.Request().Context())
	return "user:" + p.UserID.String()
}

// routeLimits are the extra per-IP limits of an operation, by operationId, and for the
// operations that hash a password, the refusal of requests beyond the hashing queue. The
// refusal comes first: a request it turns away tested no password and created no account, so
// it spends none of the client's budget for either, and it costs no limiter call.
func (s *Server) routeLimits(operationID string) []echo.MiddlewareFunc {
	switch operationID {
	case "login":
		return []echo.MiddlewareFunc{s.shedHashing, s.limitBy(s.limits.LoginIP, s.byIP)}
	case "registerUser":
		return []echo.MiddlewareFunc{s.shedHashing, s.limitBy(s.limits.RegisterIP, s.byIP)}
	case "refreshTokens":
		return []echo.MiddlewareFunc{s.limitBy(s.limits.RefreshIP, s.byIP)}
	case "changePassword":
		return []echo.MiddlewareFunc{s.limitBy(s.limits.PasswordIP, s.byIP)}
	}
	return nil
}

// askUsername spends one event of the registration limit of the request's client IP (see
// usersHandler.askUsername), or returns ErrRateLimited with its wait.
func (s *Server) askUsername(ctx context.Context) error {
	r := s.limiter.Allow(ctx, s.limits.RegisterIP, ipKey(clientFrom(ctx).IP, s.limits.IPv6Prefix))
	if !r.Allowed {
		return ErrRateLimited.After(r.RetryAfter)
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
func writeLimitHeaders(c echo.Context, applied []appliedLimit) {
	// Built with strconv, and set under canonical names: this runs on every request, and fmt
	// with Header.Set was 4% of an authenticated read's CPU.
	policies := applied[0].policy
	tightest := applied[0].Result
	for i, a := range applied {
		if i > 0 {
			policies += ", " + a.policy
		}
		if a.Remaining < tightest.Remaining || !a.Allowed {
			tightest = a.Result
		}
	}
	b := make([]byte, 0, 48)
	b = strconv.AppendQuote(b, tightest.Limit.Name)
	b = append(b, ";r="...)
	b = strconv.AppendInt(b, int64(tightest.Remaining), 10)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, ceilSeconds(tightest.Reset), 10)
	h := c.Response().Header()
	h["Ratelimit-Policy"] = []string{policies}
	h["Ratelimit"] = []string{string(b)}
}

// appendPolicy appends l as a RateLimit-Policy item: "name";q=count;w=seconds.
func appendPolicy(b []byte, l ratelimit.Limit) []byte {
	b = strconv.AppendQuote(b, l.Name)
	b = append(b, ";q="...)
	b = strconv.AppendInt(b, int64(l.Count), 10)
	b = append(b, ";w="...)
	return strconv.AppendInt(b, int64(l.Period/time.Second), 10)
}

// seconds renders d as whole seconds, rounded up, at least 1.
func seconds(d time.Duration) string { return strconv.FormatInt(ceilSeconds(d), 10) }

func ceilSeconds(d time.Duration) int64 { return max(1, int64(math.Ceil(d.Seconds()))) }
