// Package httpserver serves the API: Echo with the generated strict server, request validation
// against the embedded OpenAPI document, authentication, and one problem+json error mapper.
package httpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	oapimw "github.com/oapi-codegen/echo-middleware"
	"go.opentelemetry.io/contrib/instrumentation/github.com/labstack/echo/otelecho"
	"golang.org/x/sync/singleflight"

	apispec "github.com/portcullis/portcullis/api"
	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/admin"
	"github.com/portcullis/portcullis/internal/apperr"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/auth"
	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/docs"
	"github.com/portcullis/portcullis/internal/ratelimit"
	"github.com/portcullis/portcullis/internal/sessions"
	"github.com/portcullis/portcullis/internal/strictjson"
	"github.com/portcullis/portcullis/internal/telemetry"
	"github.com/portcullis/portcullis/internal/tokens"
	"github.com/portcullis/portcullis/internal/users"
)

// Pinger checks that a dependency answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Deps are what the handlers call.
type Deps struct {
	Auth     *auth.Service
	Admin    *admin.Service
	Users    *users.Service
	Sessions *sessions.Service
	Tokens   *tokens.Service
	Limiter  *ratelimit.Limiter
	Limits   Limits
	// Metrics, when set, receives the RED and business metrics.
	Metrics *telemetry.Metrics
	// Ready lists the dependencies /readyz checks, by name. Probes that arrive while a check of
	// them runs share it.
	Ready map[string]Pinger
	// Degrades lists dependencies /readyz reports by name without failing: the service answers
	// correctly without them, only more slowly (Redis). Failing readiness on a dependency every
	// instance shares would take them all out of their load balancer at once.
	Degrades map[string]Pinger
	// Serving, when set, says whether this instance still takes traffic (it fails while
	// draining). Every probe asks it itself, as "server": a probe sent after the drain began
	// must not be answered by a shared check that began before.
	Serving Pinger
	Logger  *slog.Logger
}

// Server is the HTTP API.
type Server struct {
	authHandler
	usersHandler
	adminHandler
	opsHandler

	echo    *echo.Echo
	logger  *slog.Logger
	limiter *ratelimit.Limiter
	limits  Limits
	users   *users.Service
	timeout time.Duration // of a request's work (config.HTTP.RequestTimeout)
}

var _ api.StrictServerInterface = (*Server)(nil)

var defineFormats sync.Once

// New builds the Echo instance for cfg with every route of the spec.
func New(cfg config.HTTP, d Deps) (*Server, error) {
	// kin-openapi checks these formats only once they are defined; its registry is global.
	defineFormats.Do(func() {
		openapi3.DefineStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562))
		openapi3.DefineStringFormatValidator("email", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForEmail))
	})
	// The document as written: oapi-codegen's embedded copy renames operationIds.
	spec, err := openapi3.NewLoader().LoadFromData(apispec.OpenAPIYAML)
	if err != nil {
		return nil, fmt.Errorf("load spec: %w", err)
	}
	if err := spec.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("invalid spec: %w", err)
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("marshal spec: %w", err)
	}
	var specDoc map[string]any
	if err := json.Unmarshal(specJSON, &specDoc); err != nil {
		return nil, fmt.Errorf("unmarshal spec: %w", err)
	}
	s := &Server{
		authHandler:  authHandler{auth: d.Auth, users: d.Users},
		usersHandler: usersHandler{auth: d.Auth, users: d.Users, sessions: d.Sessions},
		adminHandler: adminHandler{admin: d.Admin},
		opsHandler:   opsHandler{tokens: d.Tokens, ready: d.Ready, degrades: d.Degrades, serving: d.Serving, checking: new(singleflight.Group), specJSON: specDoc, specYAML: apispec.OpenAPIYAML},
		logger:       d.Logger,
		limiter:      d.Limiter,
		users:        d.Users,
		limits:       d.Limits,
		timeout:      cfg.RequestTimeout,
	}
	s.usersHandler.askUsername = s.askUsername

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor, err = ipExtractor(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	// Spans are named by the route template (otelecho uses c.Path()); an incoming traceparent
	// continues its trace.
	e.Use(otelecho.Middleware("portcullis", otelecho.WithSkipper(func(c echo.Context) bool {
		if isProbe(c) { // probes every few seconds would drown the traces
			return true
		}
		// With tracing off the span is a no-op, and only an incoming traceparent (echoed as
		// X-Trace-Id) needs the middleware: skipping it spared ~5% of an authenticated read.
		return !telemetry.Tracing() && len(c.Request().Header["Traceparent"]) == 0
	})))
	e.Use(s.observe(d.Metrics))
	// Inside observe, so a panic is answered through the one error mapper, gets its access line
	// and is counted as a 5xx; its stack (the panicking goroutine's only) is logged once, here.
	// The stack must be captured (DisablePrintStack would leave it empty) for LogErrorFunc to
	// log it; echo prints nothing itself when LogErrorFunc is set.
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisableStackAll:     true,
		DisableErrorHandler: true, // return the error to observe, which answers and counts it
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.logger.ErrorContext(c.Request().Context(), "panic", "error", err, "stack", string(stack),
				"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
			return err
		},
	}))
	e.Use(securityHeaders(cfg))
	e.Use(s.requestContext)
	e.Use(cors(cfg))
	e.Use(unlessProbe(s.limitBy(d.Limits.IP, s.byIP)))

	validator := oapimw.OapiRequestValidatorWithOptions(spec, &oapimw.Options{
		SilenceServersWarning: true,
		Options: openapi3filter.Options{
			MultiError: true,
			// Authentication is enforced by the strict middleware; the validator checks shape only.
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		},
		MultiErrorHandler: func(me openapi3.MultiError) *echo.HTTPError {
			return &echo.HTTPError{Code: http.StatusBadRequest, Message: specMismatch, Internal: me}
		},
	})
	strict := api.NewStrictHandler(s, nil)
	var routeErr error
	api.RegisterHandlers(routeMiddleware{
		e: e,
		m: func(method, path string) []echo.MiddlewareFunc {
			op := operationFor(spec, method, path)
			if op == nil {
				routeErr = fmt.Errorf("route %s %s is not in the spec", method, path)
				return nil
			}
			// Order: rate limits, bound the body, authenticate and authorise, then read and validate.
			mws := append(s.routeLimits(op.OperationID), limitBody(cfg.MaxBodyBytes))
			dep, err := deprecation(op)
			if err != nil {
				routeErr = err
			}
			if dep != nil {
				mws = append([]echo.MiddlewareFunc{dep}, mws...)
			}
			if scopes, secured := requiredScopes(spec, op); secured {
				mws = append(mws, s.authenticate(scopes))
				mws = append(mws, s.accountLimits(op.OperationID)...)
			}
			if op.RequestBody != nil {
				mws = append(mws, requireJSON)
			}
			// An operation with no parameters and no body has nothing to validate: skipping the
			// validator spares those requests (GET /users/me among them) its route lookup. A path
			// parameter may be declared on the path rather than the operation (the admin ones are),
			// and path is Echo's form of the route, which writes it ":name".
			if op.RequestBody == nil && len(op.Parameters) == 0 && !strings.Contains(path, ":") {
				return mws
			}
			return append(mws, plainQuery(op), validator)
		},
	}, strict)
	if routeErr != nil {
		return nil, routeErr
	}
	// GET /docs: Swagger UI on /openapi.json, embedded. Its handlers replace the API's strict
	// Content-Security-Policy with docs.CSP, the least that page needs.
	docs.Register(e)
	s.echo = e
	return s, nil
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// routeMiddleware registers routes with per-route middleware, so that validation runs only for
// routes that exist: unknown paths and methods get Echo's own 404 and 405.
type routeMiddleware struct {
	e *echo.Echo
	m func(method, path string) []echo.MiddlewareFunc
}

func (r routeMiddleware) add(method, path string, h echo.HandlerFunc, m []echo.MiddlewareFunc) *echo.Route {
	return r.e.Add(method, path, h, append(r.m(method, path), m...)...)
}

func (r routeMiddleware) CONNECT(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodConnect, p, h, m)
}
func (r routeMiddleware) DELETE(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodDelete, p, h, m)
}
func (r routeMiddleware) GET(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodGet, p, h, m)
}
func (r routeMiddleware) HEAD(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodHead, p, h, m)
}
func (r routeMiddleware) OPTIONS(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodOptions, p, h, m)
}
func (r routeMiddleware) PATCH(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodPatch, p, h, m)
}
func (r routeMiddleware) POST(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodPost, p, h, m)
}
func (r routeMiddleware) PUT(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodPut, p, h, m)
}
func (r routeMiddleware) TRACE(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodTrace, p, h, m)
}

var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// operationFor finds the spec operation of an Echo route ("/users/:id" is "/users/{id}").
func operationFor(spec *openapi3.T, method, echoPath string) *openapi3.Operation {
	item := spec.Paths.Find(echoParam.ReplaceAllString(echoPath, "{$1}"))
	if item == nil {
		return nil
	}
	return item.GetOperation(method)
}

// limitBody refuses bodies over max bytes: at once when Content-Length says so, otherwise when
// reading crosses the limit (the mapper turns *http.MaxBytesError into 413).
func limitBody(max int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if r.ContentLength > max {
				return &http.MaxBytesError{Limit: max}
			}
			r.Body = http.MaxBytesReader(c.Response(), r.Body, max)
			return next(c)
		}
	}
}

// plainQuery answers 400 naming the parameter for a value of a query parameter the operation
// declares that holds a control character or invalid UTF-8 (no filter has a use for either,
// and PostgreSQL refuses NUL in text), or that comes twice when the operation takes it once
// (the binder would keep the first silently), and a query string that does not parse
// (unparsableQuery). Parameters the operation does not declare are otherwise ignored, as the
// validator ignores them.
func plainQuery(op *openapi3.Operation) echo.MiddlewareFunc {
	declared := map[string]bool{} // name -> may repeat
	for _, p := range op.Parameters {
		if v := p.Value; v != nil && v.In == openapi3.ParameterInQuery {
			declared[v.Name] = v.Schema != nil && v.Schema.Value != nil && v.Schema.Value.Type.Is(openapi3.TypeArray)
		}
	}
	refuse := func(name, detail string) error {
		return apperr.New(apperr.Invalid, "validation-failed", specMismatch).WithField(name, detail)
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if len(declared) == 0 {
			return next
		}
		return func(c echo.Context) error {
			raw := c.Request().URL.RawQuery
			if raw == "" {
				return next(c)
			}
			if name, detail, ok := unparsableQuery(raw); !ok {
				return refuse(name, detail)
			}
			for name, values := range c.QueryParams() {
				many, ok := declared[name]
				switch {
				case !ok:
				case len(values) > 1 && !many:
					return refuse(name, "must be given once")
				default:
					for _, v := range values {
						if !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
							return refuse(name, "must be UTF-8 text without control characters")
						}
					}
				}
			}
			return next(c)
		}
	}
}

// unparsableQuery finds the first pair of the query string raw that Go's URL parser would drop
// without a word (it holds a ';', or a %-escape that does not decode) and returns its name and
// what is wrong; ok when there is none. Dropped, a filter would silently widen the answer.
func unparsableQuery(raw string) (name, detail string, ok bool) {
	for pair := range strings.SplitSeq(raw, "&") {
		key, value, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(key)
		if err != nil {
			return key, "the parameter's name is not validly %-encoded", false
		}
		if strings.Contains(pair, ";") {
			return name, "must not hold a bare ';' (parameters are separated by '&'; a ';' in a value is %3B)", false
		}
		if _, err := url.QueryUnescape(value); err != nil {
			return name, "is not validly %-encoded (a '%' in a value is %25)", false
		}
	}
	return "", "", true
}

// requireJSON answers 415 to a body that is not declared as JSON or comes content-encoded, and
// 400 to JSON that is syntactically valid but hostile: nested too deep, not UTF-8, a repeated key
// (which parsers resolve differently), or a NUL character (which PostgreSQL text refuses). The body is read
// once here, within the body limit, and handed on unchanged, declared as application/json.
func requireJSON(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		ct := r.Header.Get(echo.HeaderContentType)
		if ct == "" && r.ContentLength == 0 {
			return next(c) // no body at all: the validator reports the missing body
		}
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || mt != echo.MIMEApplicationJSON || (params["charset"] != "" && !strings.EqualFold(params["charset"], "utf-8")) {
			return echo.NewHTTPError(http.StatusUnsupportedMediaType, "the request body must be application/json")
		}
		for _, coding := range r.Header.Values("Content-Encoding") {
			if !strings.EqualFold(strings.TrimSpace(coding), "identity") {
				// RFC 9110 15.5.16: a coding the server does not take is a 415 naming the ones it
				// does. Read as plain JSON, a gzipped body was "invalid UTF-8", and a plain one
				// labelled gzip was taken as it was.
				c.Response().Header().Set("Accept-Encoding", "identity")
				return echo.NewHTTPError(http.StatusUnsupportedMediaType, "the request body must not be content-encoded")
			}
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				return err // 413
			}
			// The client went away or stalled mid-body (unexpected EOF, a read timeout): its
			// fault, and not PostgreSQL's, which the mapper would read such a network error as.
			return echo.NewHTTPError(http.StatusBadRequest, "the request body could not be read")
		}
		if err := strictjson.Check(body); err != nil {
			return hostileJSON(err)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		// Media types are case-insensitive, Echo's binder is not: "Application/JSON" would be
		// a 415 from it after every check here took it for JSON.
		r.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
		return next(c)
	}
}

// hostileJSON maps a strictjson refusal to a 400 naming the offending field.
func hostileJSON(err error) error {
	var je *strictjson.Error
	if !errors.As(err, &je) {
		return err
	}
	code := map[string]string{
		"syntax": "malformed-json", "trailing-data": "malformed-json", "depth": "json-too-deep",
		"duplicate-key": "duplicate-key", "invalid-utf8": "invalid-utf8", "nul": "nul-character",
	}[je.Kind]
	if code == "" {
		code = "malformed-json"
	}
	return apperr.New(apperr.Invalid, code, "the request body is not acceptable JSON").WithField(je.Path, je.Detail)
}

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// requestContext gives every request an id (a valid incoming X-Request-ID, or a new one), echoes
// it back, and records it with the client's address and user agent on the request context, once,
// for the handlers and the audit trail alike; the context ends after the request timeout.
func (s *Server) requestContext(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		id := r.Header.Get(echo.HeaderXRequestID)
		if !validRequestID.MatchString(id) {
			id = uuid.NewString()
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		req := audit.Request{UserAgent: r.UserAgent(), ID: id}
		if ip, err := netip.ParseAddr(c.RealIP()); err == nil {
			req.IP = ip
		}
		// RFC 9110 5.3: a list-valued field sent as several lines is one list. The generated
		// binder takes one line only and refused more with 400.
		if v := r.Header.Values("If-Match"); len(v) > 1 {
			r.Header.Set("If-Match", strings.Join(v, ", "))
		}
		ctx := audit.WithRequest(r.Context(), req)
		if s.timeout > 0 {
			// A PostgreSQL or Redis that stops answering on an open connection (dropped packets, a
			// hung server) would hold the request as long as its client waits, and the pool's
			// connection with it: past the deadline a query gives up (pgx closes its connection)
			// and the request answers 503 unavailable.
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, s.timeout)
			defer cancel()
		}
		c.SetRequest(r.WithContext(ctx))
		return next(c)
	}
}

func requestID(ctx context.Context) string { return audit.RequestFrom(ctx).ID }

func clientFrom(ctx context.Context) sessions.Client {
	r := audit.RequestFrom(ctx)
	return sessions.Client{IP: r.IP, UserAgent: r.UserAgent}
}

// ipExtractor believes X-Forwarded-For only from the trusted proxies; with none, the peer
// address is the client, whatever headers it sends.
func ipExtractor(trusted []string) (echo.IPExtractor, error) {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect(), nil
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, cidr := range trusted {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			return nil, fmt.Errorf("PORTCULLIS_TRUSTED_PROXIES: %q is not a CIDR", cidr)
		}
		opts = append(opts, echo.TrustIPRange(n))
	}
	xff := echo.ExtractIPFromXFFHeader(opts...)
	return func(r *http.Request) string {
		// Some proxies (Azure Application Gateway) append the client's port; echo cannot parse
		// such an entry and would answer with the proxy's address, one bucket for everyone
		// behind it. The entries are read without their ports, from a copy of that header alone
		// (echo reads no other).
		vs := r.Header.Values(echo.HeaderXForwardedFor)
		if !slices.ContainsFunc(vs, func(v string) bool { return strings.Contains(v, ":") }) {
			return xff(r)
		}
		bare := make([]string, len(vs))
		for i, v := range vs {
			parts := strings.Split(v, ",")
			for j, p := range parts {
				parts[j] = withoutPort(strings.TrimSpace(p))
			}
			bare[i] = strings.Join(parts, ", ")
		}
		r2 := *r
		r2.Header = http.Header{echo.HeaderXForwardedFor: bare}
		return xff(&r2)
	}, nil
}

// withoutPort is a forwarded address without the port some proxies append: "192.0.2.1:5678" and
// "[2001:db8::1]:443" lose it; a bare address, IPv6 included, is kept as it is.
func withoutPort(a string) string {
	if host, _, err := net.SplitHostPort(a); err == nil {
		return host
	}
	return a
}
