package tokens

import (
	"crypto/sha256"
	"time"
	"unsafe"

	"github.com/maypok86/otter/v2"
)

// verified remembers access tokens whose signature, header and claims have been checked, keyed
// by a SHA-256 of the whole token text: the signature is checked once per token rather than
// once per request. Only successes are remembered, and the time claims are checked again on
// every use. A nil *verified remembers nothing.
type verified struct {
	c *otter.Cache[[sha256.Size]byte, verifiedToken]
}

type verifiedToken struct {
	claims Claims
	kid    string
	// validFrom and validUntil are when the token starts and stops verifying, clock skew
	// included: the latest of nbf and iat less the skew, and exp plus the skew.
	validFrom, validUntil time.Time
}

func newVerified(size int) *verified {
	if size <= 0 {
		return nil
	}
	return &verified{c: otter.Must(&otter.Options[[sha256.Size]byte, verifiedToken]{
		MaximumSize: size,
		// Evicted once it can no longer verify (the service's clock decides before that).
		ExpiryCalculator: otter.ExpiryCreatingFunc(func(e otter.Entry[[sha256.Size]byte, verifiedToken]) time.Duration {
			return max(time.Until(e.Value.validUntil), time.Second)
		}),
	})}
}

// tokenKey is the cache key of token: its SHA-256, hashed from the string's own bytes. Sum256
// only reads them; []byte(token) copied the ~500-byte token onto the heap on every request.
func tokenKey(token string) [sha256.Size]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

// get returns the claims of a remembered token that verifies at now.
func (v *verified) get(key [sha256.Size]byte, now time.Time) (Claims, bool) {
	if v == nil {
		return Claims{}, false
	}
	t, ok := v.c.GetIfPresent(key)
	if !ok || now.Before(t.validFrom) || !now.Before(t.validUntil) {
		return Claims{}, false
	}
	return t.claims, true
}

func (v *verified) put(key [sha256.Size]byte, t verifiedToken) {
	if v != nil {
		v.c.Set(key, t)
	}
}

// forgetKeys drops every remembered token signed by a key no longer in kids.
func (v *verified) forgetKeys(kids map[string]bool) {
	if v == nil {
		return
	}
	for key, t := range v.c.All() {
		if !kids[t.kid] {
			v.c.Invalidate(key)
		}
	}
}

// len reports how many tokens are remembered (tests).
func (v *verified) len() int {
	if v == nil {
		return 0
	}
	return v.c.EstimatedSize()
}
