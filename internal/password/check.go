package password

import (
	_ "embed"
	"errors"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MinLength is the fewest code points, after Normalize, that Check accepts.
const MinLength = 8

// MaxLength is the most code points, after Normalize, that Check accepts.
const MaxLength = 128

// Errors returned by Check.
var (
	// ErrTooShort means the password has fewer than MinLength code points.
	ErrTooShort = errors.New("password must be at least 8 characters")
	// ErrTooLong means the password has more than MaxLength code points.
	ErrTooLong = errors.New("password must be at most 128 characters")
	// ErrCommon means the password is in the embedded common-password list.
	ErrCommon = errors.New("password is among the most commonly used passwords")
	// ErrNotText means the password is not valid UTF-8 or holds a NUL character: no login
	// could send it (the API refuses such JSON), so it could never be typed again.
	ErrNotText = errors.New("password must be valid UTF-8 text without NUL characters")
)

// commonText holds one lowercase, NFKC-normalised password a line.
// See SOURCE.md for where it comes from.
//
//go:embed common-passwords.txt
var commonText string

var common = sync.OnceValue(func() map[string]struct{} {
	lines := strings.Split(strings.TrimSpace(commonText), "\n")
	set := make(map[string]struct{}, len(lines))
	for _, l := range lines {
		set[l] = struct{}{}
	}
	return set
})

// Normalize returns the NFKC form of password, used both by Check and,
// by the caller, before hashing.
func Normalize(password string) string {
	return norm.NFKC.String(password)
}

// Check applies NIST SP 800-63B: the length, counted in Unicode code points
// after Normalize, must be between MinLength and MaxLength, and the password
// must not be in the common-password list (compared case-insensitively after
// Normalize, without the spaces around it). It applies no composition rules. A
// password that is not valid UTF-8 or holds a NUL character (which only the
// command line can pass) is refused first. It returns nil, ErrNotText,
// ErrTooShort, ErrTooLong or ErrCommon.
func Check(password string) error {
	if !utf8.ValidString(password) || strings.IndexByte(password, 0) >= 0 {
		return ErrNotText
	}
	n := Normalize(password)
	switch l := utf8.RuneCountInString(n); {
	case l < MinLength:
		return ErrTooShort
	case l > MaxLength:
		return ErrTooLong
	}
	// Spaces around a common password leave it common: " password123 " is the first variant a
	// guesser tries. Only the comparison trims; the password is hashed as typed.
	if _, ok := common()[strings.TrimSpace(strings.ToLower(n))]; ok {
		return ErrCommon
	}
	return nil
}

// CommonCount returns how many entries the embedded common-password list holds.
func CommonCount() int {
	return len(common())
}
