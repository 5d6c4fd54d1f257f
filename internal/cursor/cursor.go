// Package cursor encodes keyset-pagination positions as opaque strings. A cursor names the sort
// it was made for, so it cannot be replayed against another ordering.
package cursor

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"

	"github.com/portcullis/portcullis/internal/apperr"
)

// ErrInvalid is returned for a cursor that was not made by Encode for this sort.
var ErrInvalid = apperr.Invalidf("cursor", "is not a cursor this listing handed out; start again without it")

// Position is where a page ended: the last row's sort value and id.
type Position struct {
	Sort  string    `json:"s"`
	Value string    `json:"v"`
	ID    uuid.UUID `json:"i"`
}

// Encode returns the opaque form of p: at most 1024 characters for any value a listing keys on
// (an email of 254 bytes at worst), as the spec's cursor parameter allows.
func Encode(p Position) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "&" stays one byte, not six
	_ = enc.Encode(p)        // a struct of strings and a uuid always encodes
	return base64.RawURLEncoding.EncodeToString(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// TimeValue is how a time key is written into a Position.
func TimeValue(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Time reads a time key written by TimeValue, or returns ErrInvalid for a forged one.
func (p Position) Time() (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, p.Value)
	if err != nil {
		return time.Time{}, ErrInvalid
	}
	return t, nil
}

// Decode parses a cursor made by Encode for sort, or returns ErrInvalid.
func Decode(s, sort string) (Position, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Position{}, ErrInvalid
	}
	var p Position
	// A value with a control character was never handed out (PostgreSQL refuses NUL in text).
	if err := json.Unmarshal(b, &p); err != nil || p.Sort != sort || p.ID == uuid.Nil || strings.ContainsFunc(p.Value, unicode.IsControl) {
		return Position{}, ErrInvalid
	}
	return p, nil
}
