package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/labstack/echo/v4"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/apperr"
	"github.com/portcullis/portcullis/internal/postgres"
)

// statusClientClosed is the status recorded for a request its client closed first (nginx's 499).
const statusClientClosed = 499

// problemBase prefixes every problem type; the code completes it.
const problemBase = "https://portcullis.dev/problems/"

var kindStatus = map[apperr.Kind]int{
	apperr.Internal:           http.StatusInternalServerError,
	apperr.Invalid:            http.StatusBadRequest,
	apperr.Unauthenticated:    http.StatusUnauthorized,
	apperr.Forbidden:          http.StatusForbidden,
	apperr.NotFound:           http.StatusNotFound,
	apperr.Conflict:           http.StatusConflict,
	apperr.Unprocessable:      http.StatusUnprocessableEntity,
	apperr.PreconditionFailed: http.StatusPreconditionFailed,
	apperr.RateLimited:        http.StatusTooManyRequests,
	apperr.Unavailable:        http.StatusServiceUnavailable,
}

// statusCodes are the codes of errors raised by the HTTP layer itself rather than a domain.
var statusCodes = map[int]string{
	http.StatusBadRequest:                   "invalid-request",
	http.StatusNotFound:                     "not-found",
	http.StatusMethodNotAllowed:             "method-not-allowed",
	http.StatusPreconditionFailed:           "precondition-failed",
	http.StatusRequestEntityTooLarge:        "body-too-large",
	http.StatusRequestedRangeNotSatisfiable: "range-not-satisfiable",
	http.StatusUnsupportedMediaType:         "unsupported-media-type",
	http.StatusTooManyRequests:              "rate-limited",
	http.StatusServiceUnavailable:           "unavailable",
}

// handleError is the only place that turns errors into HTTP statuses. Every non-2xx answer is
// an RFC 9457 problem. Unexpected errors are logged once, here, and shown as a fixed message.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	p := s.toProblem(err, c)
	if p.Status >= 500 {
		s.logger.ErrorContext(c.Request().Context(), "request failed", "error", err, "method", c.Request().Method, "route", c.Path())
	}
	if c.Request().Method == http.MethodHead { // a GET's headers, without the body
		c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
		c.Response().WriteHeader(p.Status)
		return
	}
	writeProblem(c, p)
}

func writeProblem(c echo.Context, p api.Problem) { writeProblemTo(c.Response(), p) }

// writeProblemTo answers w with p as application/problem+json.
func writeProblemTo(w http.ResponseWriter, p api.Problem) {
	body, err := json.Marshal(p)
	if err != nil {
		body = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500,"code":"internal"}`)
	}
	w.Header().Set(echo.HeaderContentType, "application/problem+json")
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}

func (s *Server) toProblem(err error, c echo.Context) api.Problem {
	var (
		status int
		code   string
		detail string
		fields []apperr.FieldError
	)
	var (
		ae       *apperr.Error
		he       *echo.HTTPError
		tooLarge *http.MaxBytesError
	)
	switch {
	case errors.As(err, &tooLarge):
		status, code, detail = http.StatusRequestEntityTooLarge, "body-too-large", fmt.Sprintf("the request body exceeds %d bytes", tooLarge.Limit)
	case errors.As(err, &ae):
		status, code, detail, fields = kindStatus[ae.Kind], ae.Code, ae.Message, ae.Fields
		if ae.RetryAfter > 0 {
			c.Response().Header().Set(echo.HeaderRetryAfter, seconds(ae.RetryAfter))
		}
		if ae.Kind == apperr.Internal {
			detail = "an internal error occurred"
		}
	case errors.Is(err, context.Canceled) && c.Request().Context().Err() != nil:
		// The client closed the request before its answer: nobody reads this one, and it is no
		// failure of the service's to count as a 5xx or log as an error. 499 is nginx's code.
		status, code, detail = statusClientClosed, "client-closed-request", "the client closed the request"
	case postgres.Unavailable(err):
		// PostgreSQL unreachable, restarting or full, or a deadlock: retry, not a bug.
		status, code, detail = http.StatusServiceUnavailable, "unavailable", "the database is unavailable; retry shortly"
		c.Response().Header().Set(echo.HeaderRetryAfter, "1")
	case errors.As(err, &he):
		status = he.Code
		code = statusCodes[status]
		detail = strings.ToLower(http.StatusText(status))
		if m, ok := he.Message.(string); ok && status < 500 {
			detail = m
		}
		if he.Internal != nil {
			code, detail, fields = describeValidation(he.Internal, code, detail)
		}
		if name, ok := binderRefusal(he); ok {
			code, detail, fields = "validation-failed", specMismatch, []apperr.FieldError{{Field: name, Detail: "is not in the format the API specification gives"}}
		}
		if status == http.StatusBadRequest && len(fields) == 0 {
			fields = []apperr.FieldError{{Field: "body", Detail: detail}}
		}
	}
	if status == 0 || status >= 500 && code == "" {
		status, code, detail = http.StatusInternalServerError, "internal", "an internal error occurred"
	}
	if code == "" {
		code = "error"
	}
	p := api.Problem{
		Type:      problemBase + code,
		Title:     http.StatusText(status),
		Status:    status,
		Code:      code,
		Detail:    &detail,
		Instance:  ptr(c.Request().URL.Path),
		RequestId: ptr(requestID(c.Request().Context())),
	}
	if len(fields) > 0 {
		fe := make([]api.FieldError, len(fields))
		for i, f := range fields {
			fe[i] = api.FieldError{Field: f.Field, Detail: f.Detail}
		}
		p.Errors = &fe
	}
	return p
}

// binderRefusal returns the parameter named by the generated binder's 400 for a value it cannot
// parse ("Invalid format for parameter NAME: …") that the spec's validator let through, such as
// a leap second, which RFC 3339 allows and Go's time.Parse does not. Its message quotes Go's
// parser; the problem names the parameter instead.
func binderRefusal(he *echo.HTTPError) (string, bool) {
	m, ok := he.Message.(string)
	if !ok || he.Code != http.StatusBadRequest {
		return "", false
	}
	rest, ok := strings.CutPrefix(m, "Invalid format for parameter ")
	name, _, found := strings.Cut(rest, ": ")
	return name, ok && found && name != ""
}

// specMismatch is the detail of a 400 validation-failed: the fields it names say what.
const specMismatch = "the request does not match the API specification"

// describeValidation turns kin-openapi's request validation errors into field errors.
func describeValidation(err error, code, detail string) (string, string, []apperr.FieldError) {
	var fields []apperr.FieldError
	var (
		parse *openapi3filter.ParseError
		req   *openapi3filter.RequestError
	)
	// A parameter that does not parse is that parameter's error, below; only the body's is JSON.
	if errors.As(err, &parse) && !(errors.As(err, &req) && req.Parameter != nil) {
		return "malformed-json", "the request body is not valid JSON", []apperr.FieldError{{Field: "body", Detail: "is not valid JSON"}}
	}
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case openapi3.MultiError:
			for _, inner := range e {
				walk(inner)
			}
		case *openapi3filter.RequestError:
			switch {
			case e.Parameter != nil:
				detail := firstLine(reason(e))
				var se *openapi3.SchemaError
				if errors.As(e.Err, &se) {
					detail = se.Reason
				}
				fields = append(fields, apperr.FieldError{Field: e.Parameter.Name, Detail: detail})
			case e.Err != nil:
				walk(e.Err)
			default:
				fields = append(fields, apperr.FieldError{Field: "body", Detail: firstLine(reason(e))})
			}
		case *openapi3.SchemaError:
			fields = append(fields, schemaField(e))
		default:
			fields = append(fields, apperr.FieldError{Field: "body", Detail: firstLine(err.Error())})
		}
	}
	walk(err)
	if len(fields) > 0 {
		sort.SliceStable(fields, func(i, j int) bool { return fields[i].Field < fields[j].Field })
		return "validation-failed", specMismatch, fields
	}
	return code, detail, nil
}

// schemaField names the field a schema error is about: its JSON path, or for an unknown or
// missing property, that property.
func schemaField(se *openapi3.SchemaError) apperr.FieldError {
	path := se.JSONPointer()
	field := strings.Join(path, ".")
	if name, ok := quotedProperty(se.Reason); ok && (se.SchemaField == "additionalProperties" || se.SchemaField == "required" || se.SchemaField == "properties") {
		if len(path) == 0 || path[len(path)-1] != name {
			field = strings.Join(append(append([]string(nil), path...), name), ".")
		}
	}
	if field == "" {
		field = "body"
	}
	return apperr.FieldError{Field: field, Detail: se.Reason}
}

// quotedProperty extracts NAME from kin-openapi reasons such as `property "NAME" is unsupported`.
func quotedProperty(reason string) (string, bool) {
	_, rest, ok := strings.Cut(reason, `property "`)
	if !ok {
		return "", false
	}
	name, _, ok := strings.Cut(rest, `"`)
	return name, ok
}

func reason(re *openapi3filter.RequestError) string {
	if re.Reason != "" {
		return re.Reason
	}
	if re.Err != nil {
		return re.Err.Error()
	}
	return "is invalid"
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func ptr[T any](v T) *T { return &v }

// WriteStatusProblem answers w with the problem of an HTTP-layer status (404 not-found, 405
// method-not-allowed, ...), for the listeners outside the API's router: every error of the
// service is problem+json, there too.
func WriteStatusProblem(w http.ResponseWriter, status int) {
	code, ok := statusCodes[status]
	if !ok {
		code = "internal"
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	writeProblemTo(w, api.Problem{Type: problemBase + code, Title: http.StatusText(status), Status: status, Code: code})
}
