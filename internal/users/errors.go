package users

import (
	"errors"

	"github.com/portcullis/portcullis/internal/apperr"
)

// ErrSessionEnded is the answer of ChangePassword and UpdateProfile when the session that asked
// for the change was revoked or expired before the change could commit: the change is not made.
// Callers answer it as their own "session revoked".
var ErrSessionEnded = errors.New("the session asking for the change has ended")

// Errors the users domain returns.
var (
	ErrNotFound            = apperr.New(apperr.NotFound, "user-not-found", "no such user")
	ErrEmailTaken          = apperr.New(apperr.Conflict, "email-taken", "the email is already registered").WithField("email", "is already registered")
	ErrUsernameTaken       = apperr.New(apperr.Conflict, "username-taken", "the username is already taken").WithField("username", "is already taken")
	ErrInvalidCredentials  = apperr.New(apperr.Unauthenticated, "invalid-credentials", "the account or password is wrong")
	ErrAccountDisabled     = apperr.New(apperr.Forbidden, "account-disabled", "the account is disabled")
	ErrWrongPassword       = apperr.New(apperr.Forbidden, "current-password-incorrect", "the current password is wrong").WithField("current_password", "is wrong")
	ErrPasswordTooShort    = apperr.New(apperr.Invalid, "password-too-short", "the password is too short")
	ErrPasswordTooLong     = apperr.New(apperr.Invalid, "password-too-long", "the password is too long")
	ErrPasswordCommon      = apperr.New(apperr.Unprocessable, "password-too-common", "the password is among the most commonly used passwords; choose another")
	ErrPasswordUnchanged   = apperr.New(apperr.Unprocessable, "password-unchanged", "the new password must differ from the current one").WithField("new_password", "equals the current password")
	ErrIdentifierAmbiguous = apperr.Invalidf("email", "give exactly one of email or username")
	ErrPreconditionFailed  = apperr.New(apperr.PreconditionFailed, "precondition-failed", "the user has changed since the version If-Match names; read it again").WithField("If-Match", "names none of the user's current version")
)
