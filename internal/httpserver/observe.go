package httpserver

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/portcullis/portcullis/internal/auth"
	"github.com/portcullis/portcullis/internal/telemetry"
)

// observe writes one access log line and the RED metrics for every request, labelled by the
// route template (never the raw path: 10,000 random paths add no series), handles errors so the
// final status is known, and echoes the trace id as X-Trace-Id.
func (s *Server) observe(m *telemetry.Metrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			begin := time.Now()
			sc := trace.SpanContextFromContext(c.Request().Context())
			if sc.IsValid() {
				c.Response().Header().Set("X-Trace-Id", sc.TraceID().String())
			}
			code := ""
			if err := next(c); err != nil {
				code = s.toProblem(err, c).Code
				s.handleError(err, c)
			}
			route := routeTemplate(c.Path())
			if route == "" || c.Response().Status == 404 && code == "not-found" {
				route = "unmatched"
			}
			method := methodLabel(c.Request().Method)
			if span := trace.SpanFromContext(c.Request().Context()); span.IsRecording() {
				span.SetName(method + " " + route)
				// otelecho took http.client_ip from X-Forwarded-For whoever sent it: the client is
				// the one the limits and the audit trail see (PORTCULLIS_TRUSTED_PROXIES).
				span.SetAttributes(attribute.String("http.route", route), attribute.String("http.client_ip", c.RealIP()))
			}
			status := c.Response().Status
			elapsed := time.Since(begin)
			if m != nil {
				m.Requests.WithLabelValues(route, method, statusClass(status)).Inc()
				m.Duration.WithLabelValues(route, method).Observe(elapsed.Seconds())
				recordOutcome(m, route, status, code)
			}
			ctx := c.Request().Context()
			if !s.logger.Enabled(ctx, slog.LevelInfo) {
				return nil
			}
			attrs := []any{
				"method", c.Request().Method, "route", route, "status", status,
				"duration_ms", float64(elapsed.Microseconds()) / 1000,
				"request_id", c.Response().Header().Get(echo.HeaderXRequestID),
			}
			if p, ok := auth.PrincipalFrom(ctx); ok {
				attrs = append(attrs, "user_id", p.UserID.String())
			}
			if code != "" {
				attrs = append(attrs, "code", code)
			}
			s.logger.LogAttrs(ctx, slog.LevelInfo, "request", argsToAttrs(attrs)...)
			return nil
		}
	}
}

// templates maps Echo's route paths to OpenAPI templates, worked out once per route.
var templates sync.Map

// routeTemplate returns the OpenAPI template ("/users/{id}") of an Echo route path (":id").
func routeTemplate(path string) string {
	if t, ok := templates.Load(path); ok {
		return t.(string)
	}
	t := echoParam.ReplaceAllString(path, "{$1}")
	templates.Store(path, t) // one entry per registered route: paths come from the router, not the request
	return t
}

// recordOutcome counts the business outcomes of the auth routes from their answers.
func recordOutcome(m *telemetry.Metrics, route string, status int, code string) {
	switch route {
	case "/api/v1/auth/register":
		if status == 201 {
			m.Registrations.Inc()
		}
	case "/api/v1/auth/login":
		outcome := map[string]string{
			"": "success", "invalid-credentials": "bad_credentials", "account-locked": "locked",
			"rate-limited": "rate_limited", "account-disabled": "disabled", "overloaded": "overloaded",
		}[code]
		if outcome != "" && (status == 200 || code != "") {
			m.Logins.WithLabelValues(outcome).Inc()
		}
	case "/api/v1/auth/refresh":
		outcome := map[string]string{
			"": "success", "invalid-refresh-token": "invalid", "refresh-token-reused": "reused", "refresh-token-race": "race",
		}[code]
		if outcome != "" && (status == 200 || code != "") {
			m.Refreshes.WithLabelValues(outcome).Inc()
		}
		if code == "refresh-token-reused" {
			m.RefreshReuse.Inc()
		}
	}
}

// methodLabel bounds the method label and span name: net/http accepts any token as a method,
// and each made-up one would otherwise add a series per route (a counter and every histogram
// bucket), even for requests the rate limit refuses. The access log keeps the method as sent.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "OTHER"
}

func statusClass(status int) string {
	switch {
	case status >= 500:
		return "5xx"
	case status >= 400:
		return "4xx"
	case status >= 300:
		return "3xx"
	default:
		return "2xx"
	}
}

func argsToAttrs(kv []any) []slog.Attr {
	out := make([]slog.Attr, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, slog.Any(kv[i].(string), kv[i+1]))
	}
	return out
}
