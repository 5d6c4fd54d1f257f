package tokens

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"
)

// A header that encoding/json reads one way and jwx another ("kid" names the key that signed,
// a member encoding/json also takes for kid names another loaded key) must be refused: once
// remembered under the other key, the token would still be accepted after the key that signed
// it is deleted (after a compromise).
func TestTokenOfRemovedKeyIsForgottenWhateverItsHeaderSpells(t *testing.T) {
	t.Parallel()
	for _, spelling := range []string{"KID", "Kid", "\u212aid"} { // the last with a Kelvin sign
		t.Run(spelling, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			old := currentKey(f.svc)
			if err := f.svc.Rotate(context.Background(), true); err != nil {
				t.Fatal(err)
			}
			newKid, _ := f.svc.NewestKey()

			hdr := fmt.Sprintf(`{"alg":"EdDSA","typ":"at+jwt","kid":%q,%q:%q}`, old.kid, spelling, newKid)
			input := base64.RawURLEncoding.EncodeToString([]byte(hdr)) + "." + b64JSON(t, claimsAt(f.cfg, f.clock.Now()))
			token := input + "." + base64.RawURLEncoding.EncodeToString(edSign(old.private)([]byte(input)))
			_, _ = f.svc.Verify(context.Background(), token)

			// The old key is deleted, as an operator would after a compromise.
			f.clock.Advance(f.cfg.JWKSPrepublish)
			if _, err := f.pool.Exec(context.Background(), "DELETE FROM signing_keys WHERE kid = $1", old.kid); err != nil {
				t.Fatal(err)
			}
			if err := f.svc.reload(context.Background()); err != nil {
				t.Fatal(err)
			}
			mustReject(t, f.svc, craftWith(t, old, f.cfg, f.clock.Now(), nil))
			mustReject(t, f.svc, token)
		})
	}
}
