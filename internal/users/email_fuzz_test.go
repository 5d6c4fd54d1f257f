package users

import (
	"net/mail"
	"strings"
	"testing"
)

// FuzzValidateEmail checks what validateEmail promises of every address it accepts: at most
// 254 bytes, no ASCII whitespace, control character, angle bracket or double quote, exactly
// one '@', and net/mail reads it back as exactly itself with no display name and a dot in the
// domain.
func FuzzValidateEmail(f *testing.F) {
	for _, seed := range []string{
		"ada@example.com",
		"ADA.LOVELACE@EXAMPLE.COM",
		"ada+tag@mail.example.co.uk",
		"Ada <ada@example.com>",
		"<ada@example.com>",
		`"ada lovelace"@example.com`,
		`"ada"@example.com`,
		"ada@[192.168.0.1]",
		"ada@[IPv6:2001:db8::1]",
		"ada@localhost",
		"ada@example.com (Ada)",
		"adä@exämple.de",
		"ada\x00@example.com",
		"ada@example.com\r\nBcc: eve@example.com",
		"ada@example.com\n",
		"a@b@example.com",
		"ada..lovelace@example.com",
		".ada@example.com",
		"ada@example.com.",
		strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com", // 254 bytes
		strings.Repeat("a", 64) + "@" + strings.Repeat("b", 186) + ".com", // 255 bytes
		"",
		"@",
		"\xff@example.com",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, email string) {
		if err := validateEmail(email); err != nil {
			return
		}
		if len(email) > 254 {
			t.Fatalf("validateEmail(%q) = nil for %d bytes, want at most 254", email, len(email))
		}
		for i := 0; i < len(email); i++ {
			if c := email[i]; c < 0x20 || c == 0x7f || strings.IndexByte(" <>\"", c) >= 0 {
				t.Fatalf("validateEmail(%q) = nil, but byte %d is %q", email, i, c)
			}
		}
		addr, err := mail.ParseAddress(email)
		if err != nil {
			t.Fatalf("validateEmail(%q) = nil, but mail.ParseAddress fails: %v", email, err)
		}
		if addr.Address != email || addr.Name != "" {
			t.Fatalf("validateEmail(%q) = nil, but mail.ParseAddress reads address %q, name %q", email, addr.Address, addr.Name)
		}
		// Quoted local parts are refused and net/mail requires a domain literal to be an IP
		// address, so no '@' can hide in either part.
		at := strings.IndexByte(email, '@')
		if at <= 0 || strings.Count(email, "@") != 1 || !strings.Contains(email[at+1:], ".") {
			t.Fatalf("validateEmail(%q) = nil, want one '@' between a local part and a dotted domain", email)
		}
	})
}

func TestValidateEmailRefusesInvisibleCharacters(t *testing.T) {
	for _, email := range []string{
		"a\u0085b@example.com", "a\u009bb@example.com", "a\u00a0b@example.com", "a\u2028b@example.com",
		"a\u200bb@example.com", "a@b.c\u0085", "a\u202eb@example.com", "\ufeffa@example.com",
	} {
		if err := validateEmail(email); err == nil {
			t.Errorf("validateEmail(%q) accepted an invisible character", email)
		}
	}
	if err := validateEmail("jürgen@example.com"); err != nil {
		t.Errorf("a visible non-ASCII address was refused: %v", err)
	}
}
