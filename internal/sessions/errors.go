package sessions

import (
	"errors"

	"github.com/portcullis/portcullis/internal/apperr"
)

// Errors the sessions domain returns.
var (
	ErrNotFound            = apperr.New(apperr.NotFound, "session-not-found", "no such active session")
	ErrSessionRevoked      = apperr.New(apperr.Unauthenticated, "session-revoked", "the session has ended; sign in again")
	ErrInvalidRefreshToken = apperr.New(apperr.Unauthenticated, "invalid-refresh-token", "the refresh token is invalid or expired")
	ErrRefreshTokenReused  = apperr.New(apperr.Unauthenticated, "refresh-token-reused", "the refresh token was already used; the session is revoked")
	ErrRefreshRace         = apperr.New(apperr.Conflict, "refresh-token-race", "the refresh token was just used by a concurrent request; use the tokens that request received")
	// ErrUserChanged is Open's answer when the user's password changed, or the user was
	// disabled or deleted, after the login read them: no session was opened.
	ErrUserChanged = errors.New("sessions: the user changed while signing in")
)
