// Package apperr declares the kinds of error the domains return and the HTTP layer maps, so that
// one place picks statuses and every failure carries a stable machine-readable code.
package apperr

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an error for the HTTP mapper.
type Kind int

// The kinds of error. Each maps to exactly one HTTP status in internal/httpserver.
const (
	Internal           Kind = iota // 500: a bug or a dependency failure; detail is never shown
	Invalid                        // 400: the request is malformed
	Unauthenticated                // 401: no or bad credentials
	Forbidden                      // 403: authenticated, but not allowed
	NotFound                       // 404
	Conflict                       // 409: clashes with current state
	Unprocessable                  // 422: well formed, but breaks a business rule
	PreconditionFailed             // 412: the resource changed since the version the request named
	RateLimited                    // 429
	Unavailable                    // 503: a dependency or capacity is exhausted; retry later
)

// FieldError names one offending field of a request and why.
type FieldError struct {
	Field  string
	Detail string
}

// Error is a domain error with a kind, a stable code and a message safe to show to clients.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Fields  []FieldError
	// RetryAfter, when set on RateLimited or Unavailable errors, becomes the Retry-After header.
	RetryAfter time.Duration
	err        error
}

// New returns a sentinel error. Compare with errors.Is; derived errors made by WithField or Wrap
// still match it.
func New(kind Kind, code, message string) *Error {
	return &Error{Kind: kind, Code: code, Message: message}
}

func (e *Error) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%s: %v", e.Message, e.err)
	}
	return e.Message
}

// Unwrap exposes the wrapped cause, if any.
func (e *Error) Unwrap() error { return e.err }

// Is matches any error derived from the same sentinel (same kind and code).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind && t.Code == e.Code
}

// WithField returns a copy of e that names the offending request field.
func (e *Error) WithField(field, detail string) *Error {
	c := *e
	c.Fields = append(append([]FieldError(nil), e.Fields...), FieldError{Field: field, Detail: detail})
	return &c
}

// WithMessage returns a copy of e with another client-safe message.
func (e *Error) WithMessage(msg string) *Error {
	c := *e
	c.Message = msg
	return &c
}

// After returns a copy of e that tells clients to retry after d.
func (e *Error) After(d time.Duration) *Error {
	c := *e
	c.RetryAfter = d
	return &c
}

// Wrap returns a copy of e that carries cause for logs; the cause is never shown to clients.
func (e *Error) Wrap(cause error) *Error {
	c := *e
	c.err = cause
	return &c
}

// As returns the *Error in err's chain, if there is one.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Invalidf returns an Invalid error with code "invalid-request" naming one field.
func Invalidf(field, format string, args ...any) *Error {
	detail := fmt.Sprintf(format, args...)
	return New(Invalid, "invalid-request", "the request is invalid").WithField(field, detail)
}
