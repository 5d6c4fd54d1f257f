// Package sessions is the session domain: opening a session at login, rotating its refresh
// token, revoking it, and answering "is this session still good?" on every authenticated
// request, fast from Redis and truthfully from PostgreSQL.
package sessions

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Session is one login of a user.
type Session struct {
	ID         uuid.UUID
	UserID     uuid.UUID
	IPAddress  *netip.Addr
	UserAgent  *string
	CreatedAt  time.Time
	LastUsedAt time.Time
	ExpiresAt  time.Time
}

// Client describes where a request came from.
type Client struct {
	IP        netip.Addr
	UserAgent string
}

// State is what an authenticated request needs to know about its session.
type State struct {
	SessionID  uuid.UUID
	UserID     uuid.UUID
	Role       string
	UserActive bool
	Revoked    bool
	ExpiresAt  time.Time
}

// live reports whether the session may be used at now.
func (s State) live(now time.Time) bool {
	return s.UserActive && !s.Revoked && now.Before(s.ExpiresAt)
}

// Issued is a session's new refresh token and what the access token needs.
type Issued struct {
	SessionID        uuid.UUID
	UserID           uuid.UUID
	Role             string
	RefreshToken     string
	RefreshExpiresAt time.Time
}

const (
	refreshPrefix   = "prt_"
	refreshBytes    = 32
	refreshTokenLen = len(refreshPrefix) + 43 // base64url of 32 bytes, unpadded
	maxUserAgent    = 512
)

// newRefreshToken returns an opaque refresh token and the hash stored in its place.
func newRefreshToken() (token string, hash []byte) {
	b := make([]byte, refreshBytes)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	token = refreshPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, hashToken(token)
}

// hashToken hashes a refresh token for storage. The token has 256 bits of entropy, so a fast
// hash is enough: nothing can be guessed from it.
func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// wellFormed reports whether token has the shape of a refresh token we issue.
func wellFormed(token string) bool {
	if len(token) != refreshTokenLen || !strings.HasPrefix(token, refreshPrefix) {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(token[len(refreshPrefix):])
	return err == nil
}

// cleanUserAgent keeps at most maxUserAgent bytes of printable, valid UTF-8; nil when nothing is left.
func cleanUserAgent(ua string) *string {
	if ua == "" {
		return nil
	}
	var b strings.Builder
	for _, r := range ua {
		if r == utf8.RuneError || unicode.IsControl(r) {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > maxUserAgent {
			break
		}
		b.WriteRune(r)
	}
	if b.Len() == 0 {
		return nil
	}
	s := b.String()
	return &s
}
