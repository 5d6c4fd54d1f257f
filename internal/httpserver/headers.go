package httpserver

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/portcullis/portcullis/internal/config"
)

// apiCSP is the Content-Security-Policy of every API response: nothing may load, nothing may
// frame it. A page that needs more (the docs) sets its own, exact policy.
const apiCSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// securityHeaders sets the response headers every answer carries, errors included, before
// anything is written.
func securityHeaders(cfg config.HTTP) echo.MiddlewareFunc {
	// Names canonicalised once and values set straight into the header map: Header.Set would
	// canonicalise each name and allocate each value on every request.
	// Cross-Origin-Opener-Policy isolates the one page served (/docs, where a token may be typed
	// in) from any window that opened it or that it opens.
	names := []string{"Cache-Control", "X-Content-Type-Options", "Referrer-Policy", "Content-Security-Policy", "Cross-Origin-Resource-Policy", "Cross-Origin-Opener-Policy", "X-Frame-Options"}
	values := []string{"no-store", "nosniff", "no-referrer", apiCSP, "same-origin", "same-origin", "DENY"}
	if cfg.HSTSMaxAge > 0 && (cfg.TLSCertFile != "" || cfg.ForceHSTS) {
		names = append(names, "Strict-Transport-Security")
		values = append(values, fmt.Sprintf("max-age=%d; includeSubDomains", int(cfg.HSTSMaxAge.Seconds())))
	}
	for i, n := range names {
		names[i] = http.CanonicalHeaderKey(n)
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Response().Header()
			vs := make([]string, len(values)) // one allocation for every value; each entry gets its own capacity-1 slice of it
			copy(vs, values)
			for i, n := range names {
				h[n] = vs[i : i+1 : i+1]
			}
			return next(c)
		}
	}
}

// cors allows browsers on the configured origins, and only those, to call the API. With no
// origins configured it adds nothing at all. Credentials are never paired with a wildcard:
// the configuration refuses "*".
func cors(cfg config.HTTP) echo.MiddlewareFunc {
	if len(cfg.CORSOrigins) == 0 {
		return func(next echo.HandlerFunc) echo.HandlerFunc { return next }
	}
	// Matched exactly, by our own function: given AllowOrigins, Echo would read '*' in an entry
	// as a wildcard and match subdomains and patterns.
	allowed := make(map[string]bool, len(cfg.CORSOrigins))
	for _, o := range cfg.CORSOrigins {
		allowed[o] = true
	}
	// Traceparent and Tracestate: a page that propagates its trace (OpenTelemetry's fetch
	// instrumentation) sends them, and every call of it fails if the preflight leaves them out.
	// If-Match and ETag: an admin page's guarded changes of a user (a page cannot read a header
	// that is not exposed, nor send one the preflight leaves out).
	grant := middleware.CORSWithConfig(middleware.CORSConfig{
		AllowOriginFunc:  func(origin string) (bool, error) { return allowed[origin], nil },
		AllowMethods:     []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete},
		AllowHeaders:     []string{echo.HeaderAuthorization, echo.HeaderContentType, echo.HeaderXRequestID, "Traceparent", "Tracestate", "If-Match"},
		ExposeHeaders:    []string{echo.HeaderXRequestID, "X-Trace-Id", "RateLimit", "RateLimit-Policy", echo.HeaderRetryAfter, echo.HeaderWWWAuthenticate, "Deprecation", "Sunset", "ETag", echo.HeaderLocation},
		AllowCredentials: cfg.CORSAllowCredentials,
		MaxAge:           600,
	})
	// A preflight to a path that is no route gets the 404 its request would: Echo's CORS
	// answers every preflight 204 before the router's verdict is heard. Other requests to such
	// a path keep the CORS headers, so the page can read the 404 problem.
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		granted := grant(next)
		return func(c echo.Context) error {
			if c.Path() == "" && c.Request().Method == http.MethodOptions {
				return next(c)
			}
			return granted(c)
		}
	}
}

// NewHTTPServer returns the http.Server for handler with cfg's limits against slow or
// oversized clients, and TLS settings when the binary terminates TLS itself.
func NewHTTPServer(cfg config.HTTP, handler http.Handler, logger *slog.Logger) *http.Server {
	srv := &http.Server{
		Addr:              cfg.Addr,
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if cfg.TLSCertFile != "" {
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return srv
}

// maxHeaderBytes bounds request headers; larger ones get 431 from net/http.
const maxHeaderBytes = 16 << 10
