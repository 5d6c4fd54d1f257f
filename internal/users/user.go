// Package users is the account domain: registration, credentials, profile and password.
package users

import (
	"golang.org/x/text/unicode/norm"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/portcullis/portcullis/internal/apperr"
)

// Roles a user can hold. The role decides permissions; see the auth package.
const (
	RoleUser      = "user"
	RoleModerator = "moderator"
	RoleAdmin     = "admin"
)

// User is an account as the rest of the service sees it; the password hash never leaves the store.
type User struct {
	ID         uuid.UUID
	Email      string
	Username   string
	FullName   *string
	Role       string
	IsActive   bool
	IsVerified bool
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// NewUser is what registration asks for.
type NewUser struct {
	Email    string
	Username string
	Password string
	FullName *string
}

// Credentials identify an account by exactly one of Email or Username.
type Credentials struct {
	Email    string
	Username string
	Password string
}

// ProfileUpdate changes the fields that are set: Username when non-nil, FullName when
// SetFullName (a nil FullName then clears it).
type ProfileUpdate struct {
	Username    *string
	SetFullName bool
	FullName    *string
	// IfMatch is the request's If-Match field (nil: none): the change applies only to a user
	// whose ETag it names, else ErrPreconditionFailed.
	IfMatch *string
	// Session is the user's session that asks for the change (uuid.Nil: none): it must still be
	// live when the change lands, else ErrSessionEnded.
	Session uuid.UUID
}

const maxFullName = 200

// changes reports whether applying p to u changes anything: a PATCH that restates the current
// values is answered with the user as it is, writing nothing (no updated_at, no audit event).
// A username in another letter case is a change.
func (p ProfileUpdate) changes(u User) bool {
	if p.Username != nil && *p.Username != u.Username {
		return true
	}
	if !p.SetFullName {
		return false
	}
	if p.FullName == nil || u.FullName == nil {
		return (p.FullName == nil) != (u.FullName == nil)
	}
	return *p.FullName != *u.FullName
}

// validate checks the fields p sets.
func (p ProfileUpdate) validate() error {
	if p.Username != nil {
		if err := validateUsername(*p.Username); err != nil {
			return err
		}
	}
	if p.SetFullName {
		return validateFullName(p.FullName)
	}
	return nil
}

// normalizeEmail trims an address and puts it in Unicode NFC, the form it is stored and looked
// up in: "é" typed as one code point or as "e" and a combining accent is one address, not two
// look-alike accounts.
func normalizeEmail(email string) string { return norm.NFC.String(strings.TrimSpace(email)) }

// validateEmail accepts a bare address (no display name, no angle brackets) of at most 254 bytes.
func validateEmail(email string) error {
	if len(email) > 254 || strings.ContainsAny(email, " \t\r\n<>\"") || strings.IndexFunc(email, invisible) >= 0 {
		return apperr.Invalidf("email", "must be a plain email address such as ada@example.com")
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" || !strings.Contains(email[strings.LastIndexByte(email, '@')+1:], ".") {
		return apperr.Invalidf("email", "must be a plain email address such as ada@example.com")
	}
	return nil
}

// invisible reports runes that render as nothing or as space, or steer the terminal: controls
// (C0, C1), every Unicode space and separator, and format characters such as U+200B. net/mail
// accepts them all above ASCII; an address holding one is a spoof waiting to happen.
func invisible(r rune) bool {
	return unicode.IsControl(r) || unicode.IsSpace(r) || unicode.In(r, unicode.Cf, unicode.Zs, unicode.Zl, unicode.Zp)
}

func validateUsername(username string) error {
	if len(username) < 3 || len(username) > 32 {
		return apperr.Invalidf("username", "must be 3 to 32 characters")
	}
	for _, r := range username {
		if !(r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '.' || r == '-')) {
			return apperr.Invalidf("username", "may hold only ASCII letters, digits, '_', '.' and '-'")
		}
	}
	return nil
}

// normalizeFullName returns name in Unicode NFC, the form it is stored, shown and searched in
// ("é" typed as one code point or as "e" and a combining accent is one name), without the
// spaces around it; nil, and a name of nothing but spaces, are no name (nil), so "" and null do
// not mean two things. It comes before validateFullName: composing can lengthen a name (U+0344
// becomes two).
func normalizeFullName(name *string) *string {
	if name == nil {
		return nil
	}
	// Spaces only: a control character (a tab, a line break) is refused wherever it stands.
	v := strings.TrimFunc(norm.NFC.String(*name), func(r rune) bool { return unicode.IsSpace(r) && !unicode.IsControl(r) })
	if v == "" {
		return nil
	}
	return &v
}

func validateFullName(name *string) error {
	if name == nil {
		return nil
	}
	if !utf8.ValidString(*name) || utf8.RuneCountInString(*name) > maxFullName {
		return apperr.Invalidf("full_name", "must be valid text of at most %d characters, counted composed (NFC)", maxFullName)
	}
	for _, r := range *name {
		if unicode.IsControl(r) {
			return apperr.Invalidf("full_name", "must not contain control characters")
		}
		if bidiControl(r) {
			return apperr.Invalidf("full_name", "must not contain bidirectional embedding, override or isolate characters (U+202A-U+202E, U+2066-U+2069)")
		}
	}
	return nil
}

// bidiControl reports whether r is an explicit bidirectional embedding, override or isolate
// (or the end of one). Such a character reorders the text after it wherever the name is shown:
// "invoice\u202efdp.exe" reads as "invoiceexe.pdf" in an admin's list or an email. Right-to-left
// names need none of them (the Unicode bidirectional algorithm lays them out); the marks
// U+200E, U+200F and U+061C, which affect only their neighbours, and the joiners that scripts and
// emoji need (U+200C, U+200D) stay allowed.
func bidiControl(r rune) bool {
	return '\u202a' <= r && r <= '\u202e' || '\u2066' <= r && r <= '\u2069'
}
