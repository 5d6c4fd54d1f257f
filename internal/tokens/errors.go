package tokens

import "github.com/portcullis/portcullis/internal/apperr"

// ErrInvalidToken is returned for an access token that is malformed, forged, expired, of the
// wrong type or meant for someone else. Clients learn nothing more specific.
var ErrInvalidToken = apperr.New(apperr.Unauthenticated, "invalid-token", "the access token is invalid or expired")
