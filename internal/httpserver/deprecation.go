package httpserver

import (
	"fmt"
	"net/http"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"
)

// deprecation returns a middleware announcing that op is deprecated, when the spec says so:
// `Deprecation: @<unix time>` (RFC 9745) from the operation's `x-deprecated-at` and, when it has
// `x-sunset`, `Sunset: <HTTP-date>` (RFC 8594). A deprecated operation without `x-deprecated-at`
// is a spec error, refused at start-up, so the header is always well formed. It returns nil for
// an operation that is not deprecated.
func deprecation(op *openapi3.Operation) (echo.MiddlewareFunc, error) {
	if !op.Deprecated {
		return nil, nil
	}
	at, err := extensionTime(op, "x-deprecated-at")
	if err != nil {
		return nil, err
	}
	if at.IsZero() {
		return nil, fmt.Errorf("operation %s is deprecated but has no x-deprecated-at", op.OperationID)
	}
	sunset, err := extensionTime(op, "x-sunset")
	if err != nil {
		return nil, err
	}
	dep := fmt.Sprintf("@%d", at.Unix())
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Response().Header()
			h.Set("Deprecation", dep)
			if !sunset.IsZero() {
				h.Set("Sunset", sunset.UTC().Format(http.TimeFormat))
			}
			return next(c)
		}
	}, nil
}

// extensionTime reads an RFC 3339 timestamp from an operation extension; zero when absent.
func extensionTime(op *openapi3.Operation, name string) (time.Time, error) {
	raw, ok := op.Extensions[name]
	if !ok {
		return time.Time{}, nil
	}
	s, ok := raw.(string)
	if !ok {
		return time.Time{}, fmt.Errorf("operation %s: %s must be an RFC 3339 timestamp string", op.OperationID, name)
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("operation %s: %s: %w", op.OperationID, name, err)
	}
	return t, nil
}
