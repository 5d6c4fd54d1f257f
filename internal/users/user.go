// Package users is the account domain: registration, credentials, profile and password.
package users

import (
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"

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

// normalizeEmail returns an address in the form it is stored and looked up in: trimmed, in
// Unicode NFC ("é" typed as one code point or as "e" and a combining accent is one address, not
// two look-alike accounts), and with its domain mapped through IDNA (emailDomains) to its
// Unicode form in lower case. Mail systems look a domain up through that mapping, so
// "ada@ＥＸＡＭＰＬＥ．com", "ada@EXAMPLE.com" and "ada@example。com" all reach the mailbox of
// ada@example.com, and "ada@xn--exmple-cua.de" that of ada@exämple.de: each is that address,
// not another account's. The local part stays as typed (in NFC): only the receiving domain
// knows whether "Ada" and "ada", or "a.da" and "ada", are one mailbox. A domain IDNA refuses,
// or a domain literal ("[192.0.2.1]", a host's address), is left as it is: validateEmail refuses
// the former, and an account stored with one before domains were mapped is still found by it.
func normalizeEmail(email string) string {
	email = nfcEmail(email)
	at := strings.LastIndexByte(email, '@')
	if at < 0 || strings.HasPrefix(email[at+1:], "[") {
		return email
	}
	domain, err := mapDomain(email[at+1:])
	if err != nil {
		return email
	}
	return email[:at+1] + domain
}

// nfcEmail is an address as it was stored before its domain was mapped through IDNA: trimmed
// and in NFC only. Accounts registered then may still hold such a spelling.
func nfcEmail(email string) string { return norm.NFC.String(strings.TrimSpace(email)) }

// emailDomains maps and checks the domain of an address as UTS #46 has a domain looked up:
// compatibility forms (fullwidth letters, the ideographic full stop), case and punycode labels
// are mapped, nontransitionally (ß and ς stay themselves, as every registry since IDNA 2008
// has them), and a domain is refused unless every label is valid: letters, digits and hyphens
// of ASCII (STD3), no hyphen at either end nor in the third and fourth place but for an
// "xn--" label whose punycode decodes to a valid non-ASCII label, the joiner and bidi rules,
// at most 63 bytes a label and 253 in all in its ASCII form.
var emailDomains = idna.New(idna.MapForLookup(), idna.Transitional(false), idna.BidiRule(), idna.VerifyDNSLength(true))

// mapDomain returns domain's form in emailDomains: its Unicode form (U-labels), lower case, or
// the error of a domain IDNA refuses.
func mapDomain(domain string) (string, error) {
	ascii, err := emailDomains.ToASCII(domain)
	if err != nil {
		return "", err
	}
	return emailDomains.ToUnicode(ascii)
}

const plainEmail = "must be a plain email address such as ada@example.com"

// validateEmail accepts a bare address (no display name, no angle brackets) of at most 254 bytes
// in the form normalizeEmail gives it, whose domain is a domain name IDNA accepts (or an address
// literal).
func validateEmail(email string) error {
	if len(email) > 254 || strings.ContainsAny(email, " \t\r\n<>\"") || strings.IndexFunc(email, invisible) >= 0 {
		return apperr.Invalidf("email", plainEmail)
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" || !strings.Contains(email[strings.LastIndexByte(email, '@')+1:], ".") {
		return apperr.Invalidf("email", plainEmail)
	}
	if domain := email[strings.LastIndexByte(email, '@')+1:]; !strings.HasPrefix(domain, "[") {
		if mapped, err := mapDomain(domain); err != nil || mapped != domain {
			return apperr.Invalidf("email", "the domain must be a valid internationalized domain name (IDNA, UTS #46): letters, digits and hyphens, no hyphen at the start or end of a label, labels of at most 63 characters")
		}
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
