package users

import (
	"errors"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/apperr"
)

// The domain of an address is a host name, which mail systems look up through IDNA (UTS #46):
// fullwidth letters, capitals, the ideographic full stop and the punycode form of a label all
// name the same host as the plain spelling. normalizeEmail maps the domain to that one form
// (Unicode, lower case), so no second account can hold another spelling of someone's domain.
// The local part is the receiving domain's business: it stays as typed, in NFC.
func TestNormalizeEmailMapsTheDomainThroughIDNA(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"ada@example.com", "ada@example.com"},
		{"ada@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com", "ada@example.com"},                     // fullwidth letters
		{"ada@\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25\uff0e\uff43\uff4f\uff4d", "ada@example.com"}, // and a fullwidth full stop
		{"ada@EXAMPLE.COM", "ada@example.com"},
		{"Ada.Lovelace@Example.Com", "Ada.Lovelace@example.com"}, // the local part keeps its case and dots
		{"ada@example\u3002com", "ada@example.com"},              // ideographic full stop
		{"ada@xn--exmple-cua.de", "ada@ex\u00e4mple.de"},         // the ASCII form of a label
		{"ada@EX\u00c4MPLE.de", "ada@ex\u00e4mple.de"},
		{"ada@exa\u0308mple.de", "ada@ex\u00e4mple.de"}, // decomposed
		{"ada@fa\u00df.de", "ada@fa\u00df.de"},          // nontransitional: ß stays ß
		{"e\u0301lodie@example.com", "\u00e9lodie@example.com"},
		{"  ada@Example.com\t", "ada@example.com"},
		{"ada@[192.168.0.1]", "ada@[192.168.0.1]"}, // a domain literal names no host to map
	} {
		if got := normalizeEmail(tt.in); got != tt.want {
			t.Errorf("normalizeEmail(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if err := validateEmail(tt.want); err != nil {
			t.Errorf("validateEmail(%q), the normalised form of %q: %v", tt.want, tt.in, err)
		}
	}
}

// A domain IDNA refuses names no host a mail system would look up: it is refused, naming the
// email field, however it is spelled.
func TestValidateEmailRefusesDomainsIDNARefuses(t *testing.T) {
	for _, email := range []string{
		"ada@exam_ple.com",                        // not a letter, digit or hyphen
		"ada@-example.com",                        // leading hyphen
		"ada@example-.com",                        // trailing hyphen
		"ada@ab--cd.com",                          // hyphens in the third and fourth place, not an A-label
		"ada@xn--a.com",                           // punycode that decodes to nothing valid
		"ada@xn--example-.com",                    // punycode of ASCII only
		"ada@" + strings.Repeat("a", 64) + ".com", // a label longer than 63
		"ada@\u0627b.com",                         // a right-to-left letter next to a left-to-right one (Bidi rule)
		"ada@\u2488.com",                          // disallowed in IDNA 2008 (U+2488 DIGIT ONE FULL STOP)
	} {
		err := validateEmail(normalizeEmail(email))
		if err == nil {
			t.Errorf("validateEmail(normalizeEmail(%q)) accepted a domain IDNA refuses", email)
			continue
		}
		var ae *apperr.Error
		if !errors.As(err, &ae) || len(ae.Fields) != 1 || ae.Fields[0].Field != "email" || !strings.Contains(ae.Fields[0].Detail, "IDNA") {
			t.Errorf("validateEmail(normalizeEmail(%q)) = %#v, want an error naming email, saying IDNA refuses the domain", email, err)
		}
	}
}
