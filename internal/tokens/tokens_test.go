package tokens

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/postgres"
	"github.com/portcullis/portcullis/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// epoch is where every fake clock starts: a whole second, so JWT NumericDates (seconds) and
// PostgreSQL timestamps (microseconds) hold it exactly.
var epoch = time.Date(2031, time.March, 14, 9, 26, 53, 0, time.UTC)

func newFakeClock() *testenv.Clock { return testenv.NewClock(epoch) }

func testConfig(t testing.TB) config.Auth {
	t.Helper()
	kek := make([]byte, 32)
	if _, err := rand.Read(kek); err != nil {
		t.Fatal(err)
	}
	return config.Auth{
		Issuer:              "https://portcullis.test",
		Audience:            "portcullis-test",
		AccessTokenTTL:      15 * time.Minute,
		ClockSkew:           30 * time.Second,
		SigningKeyRotation:  720 * time.Hour,
		JWKSPrepublish:      10 * time.Minute,
		KeyEncryptionKey:    kek,
		SigningKeyAlgorithm: "EdDSA",
		VerifiedTokenCache:  1024,
	}
}

// newDB returns the URL of a fresh migrated database, skipping under -short.
func newDB(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	return testenv.NewDB(t)
}

func openPool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := postgres.Open(context.Background(), url, 4)
	if err != nil {
		t.Fatalf("postgres.Open() error = %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func startService(t testing.TB, pool *pgxpool.Pool, cfg config.Auth, clock *testenv.Clock) *Service {
	t.Helper()
	s, err := newService(context.Background(), pool, cfg, testenv.Logger(t), clock.Now)
	if err != nil {
		t.Fatalf("newService() error = %v", err)
	}
	return s
}

// fixture is one Service on its own database, driven by a fake clock.
type fixture struct {
	clock *testenv.Clock
	cfg   config.Auth
	url   string
	pool  *pgxpool.Pool
	svc   *Service
}

func newFixture(t testing.TB, edits ...func(*config.Auth)) *fixture {
	t.Helper()
	cfg := testConfig(t)
	for _, edit := range edits {
		edit(&cfg)
	}
	clock := newFakeClock()
	url := newDB(t)
	pool := openPool(t, url)
	return &fixture{clock: clock, cfg: cfg, url: url, pool: pool, svc: startService(t, pool, cfg, clock)}
}

// instance starts another Service on the fixture's database with its own pool, as a second
// replica would, sharing the fixture's clock.
func (f *fixture) instance(t testing.TB) *Service {
	t.Helper()
	return startService(t, openPool(t, f.url), f.cfg, f.clock)
}

// craft signs a token with the service's current key, from a header and claims that Issue
// would produce, after edit has changed them.
func (f *fixture) craft(t testing.TB, edit func(hdr, claims map[string]any)) string {
	t.Helper()
	return craftWith(t, currentKey(f.svc), f.cfg, f.clock.Now(), edit)
}

func craftWith(t testing.TB, key signingKey, cfg config.Auth, now time.Time, edit func(hdr, claims map[string]any)) string {
	t.Helper()
	hdr, claims := headerFor(key.kid), claimsAt(cfg, now)
	if edit != nil {
		edit(hdr, claims)
	}
	return compact(t, hdr, claims, edSign(key.private))
}

func currentKey(s *Service) signingKey { return s.signer(s.now()) }

func headerFor(kid string) map[string]any {
	return map[string]any{"alg": "EdDSA", "typ": TokenType, "kid": kid}
}

func claimsAt(cfg config.Auth, now time.Time) map[string]any {
	return map[string]any{
		"iss":  cfg.Issuer,
		"aud":  []string{cfg.Audience},
		"sub":  uuid.NewString(),
		"sid":  uuid.NewString(),
		"role": "user",
		"jti":  "crafted",
		"iat":  now.Unix(),
		"nbf":  now.Unix(),
		"exp":  now.Add(cfg.AccessTokenTTL).Unix(),
	}
}

type signFunc func(input []byte) []byte

func edSign(priv ed25519.PrivateKey) signFunc {
	return func(input []byte) []byte { return ed25519.Sign(priv, input) }
}

func hsSign(secret []byte) signFunc {
	return func(input []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(input)
		return m.Sum(nil)
	}
}

// compact hand-builds a compact JWS, so tests control every header byte; a nil sign leaves
// the signature empty.
func compact(t testing.TB, hdr, claims map[string]any, sign signFunc) string {
	t.Helper()
	input := b64JSON(t, hdr) + "." + b64JSON(t, claims)
	var sig []byte
	if sign != nil {
		sig = sign([]byte(input))
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func b64JSON(t testing.TB, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

func decodeSegment(t testing.TB, seg string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("decode segment: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("decode segment: %v", err)
	}
	return m
}

// flip replaces the character at i with another base64url character. Away from the last
// character of a segment every character carries six whole bits, so the decoded bytes change.
func flip(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

func publicJWKJSON(t testing.TB, priv ed25519.PrivateKey) json.RawMessage {
	t.Helper()
	key, err := jwk.FromRaw(priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(key)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// attackerKey is an Ed25519 key the service has never seen, with its thumbprint kid.
func attackerKey(t testing.TB) signingKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kid, err := thumbprint(priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid: kid, private: priv}
}

// diff reports want and got when they differ, as "(-want +got)".
func diff(want, got any) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	return fmt.Sprintf("-%+v\n+%+v", want, got)
}

// utc drops the location of the times in c, which jwx and time.Date set differently.
func utc(c Claims) Claims {
	c.IssuedAt, c.ExpiresAt = c.IssuedAt.UTC(), c.ExpiresAt.UTC()
	return c
}

func jwksKids(t testing.TB, set jwk.Set) []string {
	t.Helper()
	var kids []string
	for i := 0; i < set.Len(); i++ {
		key, ok := set.Key(i)
		if !ok {
			t.Fatalf("JWKS key %d missing", i)
		}
		kids = append(kids, key.KeyID())
	}
	return kids
}

func hasKid(set jwk.Set, kid string) bool {
	_, ok := set.LookupKeyID(kid)
	return ok
}

func countKeys(t testing.TB, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM signing_keys").Scan(&n); err != nil {
		t.Fatalf("count signing keys: %v", err)
	}
	return n
}

func countPending(t testing.TB, pool *pgxpool.Pool, now time.Time) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM signing_keys WHERE activates_at > $1", now).Scan(&n); err != nil {
		t.Fatalf("count pending signing keys: %v", err)
	}
	return n
}

func mustIssue(t testing.TB, s *Service) string {
	t.Helper()
	token, _, err := s.Issue(uuid.New(), uuid.New(), "user")
	if err != nil {
		t.Fatalf("Issue() error = %v", err)
	}
	return token
}

func mustVerify(t testing.TB, s *Service, token string) Claims {
	t.Helper()
	c, err := s.Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("Verify() error = %v, want nil", err)
	}
	return c
}

func mustReject(t testing.TB, s *Service, token string) {
	t.Helper()
	c, err := s.Verify(context.Background(), token)
	if !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("Verify() error = %v, want ErrInvalidToken", err)
	}
	if c != (Claims{}) {
		t.Fatalf("Verify() claims = %+v on error, want zero", c)
	}
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	userID, sessionID := uuid.New(), uuid.New()

	token, expiresAt, err := f.svc.Issue(userID, sessionID, "admin")
	if err != nil {
		t.Fatalf("Issue() error = %v", err)
	}
	if want := epoch.Add(15 * time.Minute); !expiresAt.Equal(want) {
		t.Errorf("Issue() expiresAt = %v, want %v", expiresAt, want)
	}

	got, err := f.svc.Verify(t.Context(), token)
	if err != nil {
		t.Fatalf("Verify() error = %v", err)
	}
	if got.ID == "" {
		t.Error("Verify() ID is empty")
	}
	want := Claims{UserID: userID, SessionID: sessionID, Role: "admin", ID: got.ID, IssuedAt: epoch, ExpiresAt: epoch.Add(15 * time.Minute)}
	if d := diff(want, utc(got)); d != "" {
		t.Errorf("Verify() claims mismatch (-want +got):\n%s", d)
	}

	segs := strings.Split(token, ".")
	wantHdr := map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": f.svc.SigningKeyID()}
	if d := diff(wantHdr, decodeSegment(t, segs[0])); d != "" {
		t.Errorf("token header mismatch (-want +got):\n%s", d)
	}
	if f.svc.SigningKeyID() == "" {
		t.Error("SigningKeyID() is empty")
	}
	payload := decodeSegment(t, segs[1])
	for claim, want := range map[string]any{
		"iss": "https://portcullis.test", "aud": []any{"portcullis-test"}, "sub": userID.String(),
		"sid": sessionID.String(), "role": "admin", "jti": got.ID,
		"iat": float64(epoch.Unix()), "nbf": float64(epoch.Unix()), "exp": float64(epoch.Add(15 * time.Minute).Unix()),
	} {
		if d := diff(want, payload[claim]); d != "" {
			t.Errorf("payload %q mismatch (-want +got):\n%s", claim, d)
		}
	}

	other, _, err := f.svc.Issue(userID, sessionID, "admin")
	if err != nil {
		t.Fatalf("Issue() error = %v", err)
	}
	if c := mustVerify(t, f.svc, other); c.ID == got.ID {
		t.Errorf("two tokens share the jti %q", c.ID)
	}
}

// TestJWKSPublishesOnlyPublicKeys checks that a third party holding only JWKS() can verify
// an issued token, and that the set carries no private material.
func TestJWKSPublishesOnlyPublicKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	token := mustIssue(t, f.svc)
	set := f.svc.JWKS()

	if _, err := jws.Verify([]byte(token), jws.WithKeySet(set, jws.WithInferAlgorithmFromKey(false))); err != nil {
		t.Fatalf("jws.Verify() with the published JWKS error = %v", err)
	}
	if set.Len() != 1 {
		t.Fatalf("JWKS() has %d keys, want 1", set.Len())
	}
	key, _ := set.Key(0)
	if _, ok := key.(jwk.OKPPublicKey); !ok {
		t.Errorf("JWKS() key is %T, want jwk.OKPPublicKey", key)
	}
	raw, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	pub := currentKey(f.svc).private.Public().(ed25519.PublicKey)
	want := map[string]any{
		"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
		"kid": f.svc.SigningKeyID(), "x": base64.RawURLEncoding.EncodeToString(pub),
	}
	if d := diff(want, doc.Keys[0]); d != "" {
		t.Errorf("JWKS() key mismatch (-want +got):\n%s", d)
	}
	if key.Algorithm() != jwa.EdDSA {
		t.Errorf("JWKS() key alg = %v, want EdDSA", key.Algorithm())
	}
}

func TestVerifyRejectsHostileTokens(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ours := currentKey(f.svc)
	attacker := attackerKey(t)
	issued := mustIssue(t, f.svc)
	seg := strings.Split(issued, ".")

	// The crafting helpers must make tokens that verify, so that each row below fails for the
	// one thing it changes.
	mustVerify(t, f.svc, issued)
	mustVerify(t, f.svc, f.craft(t, nil))

	pubSecret := []byte(ours.private.Public().(ed25519.PublicKey))
	jwksJSON, err := json.Marshal(f.svc.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	skew := f.cfg.ClockSkew

	tests := []struct {
		name  string
		token func(t testing.TB) string
		after time.Duration // the clock when verifying, from epoch
	}{
		{
			name:  "expired beyond skew",
			token: func(testing.TB) string { return issued },
			after: f.cfg.AccessTokenTTL + skew + time.Second,
		},
		{
			name: "not yet valid beyond skew",
			token: func(t testing.TB) string {
				return f.craft(t, func(_, c map[string]any) { c["nbf"] = epoch.Add(skew + time.Minute).Unix() })
			},
		},
		{
			name: "issued in the future beyond skew",
			token: func(t testing.TB) string {
				return f.craft(t, func(_, c map[string]any) { c["iat"] = epoch.Add(skew + time.Minute).Unix() })
			},
		},
		{
			name: "wrong issuer",
			token: func(t testing.TB) string {
				return f.craft(t, func(_, c map[string]any) { c["iss"] = "https://evil.test" })
			},
		},
		{
			name:  "missing issuer",
			token: func(t testing.TB) string { return f.craft(t, func(_, c map[string]any) { delete(c, "iss") }) },
		},
		{
			name: "wrong audience",
			token: func(t testing.TB) string {
				return f.craft(t, func(_, c map[string]any) { c["aud"] = []string{"other-api"} })
			},
		},
		{
			name:  "missing audience",
			token: func(t testing.TB) string { return f.craft(t, func(_, c map[string]any) { delete(c, "aud") }) },
		},
		{
			name:  "missing sid",
			token: func(t testing.TB) string { return f.craft(t, func(_, c map[string]any) { delete(c, "sid") }) },
		},
		{
			name:  "sid not a uuid",
			token: func(t testing.TB) string { return f.craft(t, func(_, c map[string]any) { c["sid"] = "session-1" }) },
		},
		{
			name:  "missing exp",
			token: func(t testing.TB) string { return f.craft(t, func(_, c map[string]any) { delete(c, "exp") }) },
		},
		{
			name:  "missing iat",
			token: func(t testing.TB) string { return f.craft(t, func(_, c map[string]any) { delete(c, "iat") }) },
		},
		{
			name:  "missing sub",
			token: func(t testing.TB) string { return f.craft(t, func(_, c map[string]any) { delete(c, "sub") }) },
		},
		{
			name:  "sub not a uuid",
			token: func(t testing.TB) string { return f.craft(t, func(_, c map[string]any) { c["sub"] = "admin" }) },
		},
		{
			name:  "payload character flipped",
			token: func(testing.TB) string { return seg[0] + "." + flip(seg[1], len(seg[1])/2) + "." + seg[2] },
		},
		{
			name: "payload role escalated without re-signing",
			token: func(t testing.TB) string {
				c := decodeSegment(t, seg[1])
				c["role"] = "admin"
				return seg[0] + "." + b64JSON(t, c) + "." + seg[2]
			},
		},
		{
			name:  "signature character flipped",
			token: func(testing.TB) string { return seg[0] + "." + seg[1] + "." + flip(seg[2], 10) },
		},
		{
			name:  "signature stripped",
			token: func(testing.TB) string { return seg[0] + "." + seg[1] + "." },
		},
		{
			name: "alg none",
			token: func(t testing.TB) string {
				h := headerFor(ours.kid)
				h["alg"] = "none"
				return compact(t, h, claimsAt(f.cfg, epoch), nil)
			},
		},
		{
			name: "alg HS256 keyed with the public key bytes",
			token: func(t testing.TB) string {
				h := headerFor(ours.kid)
				h["alg"] = "HS256"
				return compact(t, h, claimsAt(f.cfg, epoch), hsSign(pubSecret))
			},
		},
		{
			name: "alg HS256 keyed with the published JWKS",
			token: func(t testing.TB) string {
				h := headerFor(ours.kid)
				h["alg"] = "HS256"
				return compact(t, h, claimsAt(f.cfg, epoch), hsSign(jwksJSON))
			},
		},
		{
			name: "embedded jwk of the attacker's key",
			token: func(t testing.TB) string {
				return craftWith(t, attacker, f.cfg, epoch, func(h, _ map[string]any) { h["jwk"] = publicJWKJSON(t, attacker.private) })
			},
		},
		{
			name: "embedded jwk with the real kid",
			token: func(t testing.TB) string {
				return craftWith(t, attacker, f.cfg, epoch, func(h, _ map[string]any) {
					h["kid"] = ours.kid
					h["jwk"] = publicJWKJSON(t, attacker.private)
				})
			},
		},
		{
			name: "embedded jwk of the real key",
			token: func(t testing.TB) string {
				return f.craft(t, func(h, _ map[string]any) { h["jwk"] = publicJWKJSON(t, ours.private) })
			},
		},
		{
			name: "jku header",
			token: func(t testing.TB) string {
				return f.craft(t, func(h, _ map[string]any) { h["jku"] = "https://evil.test/jwks.json" })
			},
		},
		{
			name: "x5u header",
			token: func(t testing.TB) string {
				return f.craft(t, func(h, _ map[string]any) { h["x5u"] = "https://evil.test/cert.pem" })
			},
		},
		{
			name: "x5c header",
			token: func(t testing.TB) string {
				return f.craft(t, func(h, _ map[string]any) { h["x5c"] = []string{"MIIBdummy"} })
			},
		},
		{
			name:  "cty nesting header",
			token: func(t testing.TB) string { return f.craft(t, func(h, _ map[string]any) { h["cty"] = "JWT" }) },
		},
		{
			name:  "typ JWT",
			token: func(t testing.TB) string { return f.craft(t, func(h, _ map[string]any) { h["typ"] = "JWT" }) },
		},
		{
			name:  "typ missing",
			token: func(t testing.TB) string { return f.craft(t, func(h, _ map[string]any) { delete(h, "typ") }) },
		},
		{
			name:  "kid missing",
			token: func(t testing.TB) string { return f.craft(t, func(h, _ map[string]any) { delete(h, "kid") }) },
		},
		{
			name:  "unknown kid signed by an attacker key",
			token: func(t testing.TB) string { return craftWith(t, attacker, f.cfg, epoch, nil) },
		},
		{
			name: "unknown kid after the reload interval",
			token: func(t testing.TB) string {
				return craftWith(t, attacker, f.cfg, epoch.Add(time.Minute), nil)
			},
			after: time.Minute,
		},
		{
			name: "real kid signed by an attacker key",
			token: func(t testing.TB) string {
				return craftWith(t, attacker, f.cfg, epoch, func(h, _ map[string]any) { h["kid"] = ours.kid })
			},
		},
		{
			name:  "empty string",
			token: func(testing.TB) string { return "" },
		},
		{
			name:  "three dots",
			token: func(testing.TB) string { return "..." },
		},
		{
			name:  "valid token with a fourth segment",
			token: func(testing.TB) string { return issued + "." },
		},
		{
			name:  "two dots only",
			token: func(testing.TB) string { return ".." },
		},
		{
			name:  "5000 characters",
			token: func(testing.TB) string { return strings.Repeat("a", 2500) + "." + strings.Repeat("b", 2498) + "." },
		},
		{
			name: "validly signed but over 4096 characters",
			token: func(t testing.TB) string {
				return f.craft(t, func(_, c map[string]any) { c["pad"] = strings.Repeat("x", 5000) })
			},
		},
		{
			name:  "non-base64 header",
			token: func(testing.TB) string { return "!!not-base64!!." + seg[1] + "." + seg[2] },
		},
		{
			name: "header not json",
			token: func(testing.TB) string {
				return base64.RawURLEncoding.EncodeToString([]byte("EdDSA")) + "." + seg[1] + "." + seg[2]
			},
		},
		{
			name: "json serialization smuggling two dots",
			token: func(t testing.TB) string {
				payload := b64JSON(t, claimsAt(f.cfg, epoch))
				protected := b64JSON(t, headerFor(ours.kid))
				sig := ed25519.Sign(ours.private, []byte(protected+"."+payload))
				raw, err := json.Marshal(map[string]any{
					"protected": protected, "payload": payload, "header": map[string]string{"note": "a.b.c"},
					"signature": base64.RawURLEncoding.EncodeToString(sig),
				})
				if err != nil {
					t.Fatal(err)
				}
				return string(raw)
			},
		},
	}
	for _, tt := range tests {
		// Sequential: the rows share the fixture's clock.
		t.Run(tt.name, func(t *testing.T) {
			token := tt.token(t)
			f.clock.Set(epoch.Add(tt.after))
			t.Cleanup(func() { f.clock.Set(epoch) })
			mustReject(t, f.svc, token)
		})
	}
	if len(tests) < 15 {
		t.Fatalf("only %d hostile tokens", len(tests))
	}
}

func TestVerifyClockSkew(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	token, expiresAt, err := f.svc.Issue(uuid.New(), uuid.New(), "user")
	if err != nil {
		t.Fatal(err)
	}
	notBefore := func(d time.Duration) string {
		return f.craft(t, func(_, c map[string]any) { c["nbf"] = epoch.Add(d).Unix() })
	}

	tests := []struct {
		name    string
		token   string
		at      time.Time
		wantErr error
	}{
		{"just before expiry", token, expiresAt.Add(-time.Second), nil},
		{"at expiry", token, expiresAt, nil},
		{"expired 1s ago", token, expiresAt.Add(time.Second), nil},
		{"expired 29s ago", token, expiresAt.Add(29 * time.Second), nil},
		{"expired 31s ago", token, expiresAt.Add(31 * time.Second), ErrInvalidToken},
		{"expired 1h ago", token, expiresAt.Add(time.Hour), ErrInvalidToken},
		{"valid in 29s", notBefore(29 * time.Second), epoch, nil},
		{"valid in 31s", notBefore(31 * time.Second), epoch, ErrInvalidToken},
	}
	for _, tt := range tests {
		// Sequential: the rows share the fixture's clock.
		t.Run(tt.name, func(t *testing.T) {
			f.clock.Set(tt.at)
			t.Cleanup(func() { f.clock.Set(epoch) })
			_, err := f.svc.Verify(t.Context(), tt.token)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify() at %v error = %v, want %v", tt.at.Sub(epoch), err, tt.wantErr)
			}
		})
	}
}

func TestRotatePublishesBeforeSigning(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	old := currentKey(f.svc)
	oldToken := mustIssue(t, f.svc)

	if err := f.svc.Rotate(ctx, true); err != nil {
		t.Fatalf("Rotate(force) error = %v", err)
	}
	set := f.svc.JWKS()
	if set.Len() != 2 {
		t.Fatalf("JWKS() after Rotate(force) has kids %v, want 2", jwksKids(t, set))
	}
	var newKid string
	for _, kid := range jwksKids(t, set) {
		if kid != old.kid {
			newKid = kid
		}
	}
	if newKid == "" {
		t.Fatalf("JWKS() kids %v hold no new key", jwksKids(t, set))
	}
	if got := f.svc.SigningKeyID(); got != old.kid {
		t.Fatalf("SigningKeyID() right after Rotate(force) = %q, want the old %q", got, old.kid)
	}

	// Still publishing only, even after a reload just before the key is due.
	f.clock.Set(epoch.Add(f.cfg.JWKSPrepublish - time.Second))
	if err := f.svc.Rotate(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := f.svc.SigningKeyID(); got != old.kid {
		t.Fatalf("SigningKeyID() 1s before activation = %q, want the old %q", got, old.kid)
	}
	if n := countKeys(t, f.pool); n != 2 {
		t.Fatalf("%d signing keys after a reload with a pending key, want 2", n)
	}

	activated := f.clock.Advance(2 * time.Second)
	if err := f.svc.Rotate(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := f.svc.SigningKeyID(); got != newKid {
		t.Fatalf("SigningKeyID() after activation = %q, want the new %q", got, newKid)
	}
	newToken := mustIssue(t, f.svc)
	if kid := decodeSegment(t, strings.Split(newToken, ".")[0])["kid"]; kid != newKid {
		t.Errorf("new token kid = %v, want %q", kid, newKid)
	}
	mustVerify(t, f.svc, newToken)
	mustVerify(t, f.svc, oldToken)
	// A token the old key signed just before the switch lives on for a full TTL.
	lateOld := craftWith(t, old, f.cfg, activated, nil)
	mustVerify(t, f.svc, lateOld)

	// Once the new key has signed for longer than a token lives, the old key goes.
	f.clock.Advance(f.cfg.AccessTokenTTL - time.Minute)
	if err := f.svc.Rotate(ctx, false); err != nil {
		t.Fatal(err)
	}
	if !hasKid(f.svc.JWKS(), old.kid) {
		t.Fatal("old key pruned while tokens it signed can still be valid")
	}
	stillOld := craftWith(t, old, f.cfg, f.clock.Now(), nil)
	mustVerify(t, f.svc, stillOld)

	f.clock.Set(activated.Add(f.cfg.AccessTokenTTL + f.cfg.ClockSkew + time.Second))
	if err := f.svc.Rotate(ctx, false); err != nil {
		t.Fatal(err)
	}
	if d := diff([]string{newKid}, jwksKids(t, f.svc.JWKS())); d != "" {
		t.Fatalf("JWKS() kids after pruning (-want +got):\n%s", d)
	}
	if n := countKeys(t, f.pool); n != 1 {
		t.Fatalf("%d signing keys after pruning, want 1", n)
	}
	// Signed by the old key with claims valid now: only the missing key can reject it.
	mustReject(t, f.svc, craftWith(t, old, f.cfg, f.clock.Now(), nil))
	mustVerify(t, f.svc, craftWith(t, currentKey(f.svc), f.cfg, f.clock.Now(), nil))
}

func TestRotateOnSchedule(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	first := f.svc.SigningKeyID()
	due := epoch.Add(f.cfg.SigningKeyRotation - f.cfg.JWKSPrepublish)

	f.clock.Set(due.Add(-time.Second))
	if err := f.svc.Rotate(ctx, false); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, f.pool); n != 1 {
		t.Fatalf("%d signing keys 1s before rotation is due, want 1", n)
	}

	f.clock.Set(due)
	for i := range 2 {
		if err := f.svc.Rotate(ctx, false); err != nil {
			t.Fatalf("Rotate() #%d error = %v", i+1, err)
		}
	}
	if n := countPending(t, f.pool, due); n != 1 {
		t.Fatalf("%d pending signing keys after two scheduled rotations, want 1", n)
	}
	if n := countKeys(t, f.pool); n != 2 {
		t.Fatalf("%d signing keys, want 2", n)
	}
	var activatesAt time.Time
	if err := f.pool.QueryRow(ctx, "SELECT activates_at FROM signing_keys WHERE kid <> $1", first).Scan(&activatesAt); err != nil {
		t.Fatal(err)
	}
	if want := epoch.Add(f.cfg.SigningKeyRotation); !activatesAt.Equal(want) {
		t.Errorf("pending key activates at %v, want %v (the active key's rotation time)", activatesAt.UTC(), want)
	}
	if got := f.svc.SigningKeyID(); got != first {
		t.Errorf("SigningKeyID() with a pending key = %q, want %q", got, first)
	}
	if n := f.svc.JWKS().Len(); n != 2 {
		t.Errorf("JWKS() has %d keys with a pending key, want 2", n)
	}

	f.clock.Set(epoch.Add(f.cfg.SigningKeyRotation))
	if err := f.svc.Rotate(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := f.svc.SigningKeyID(); got == first {
		t.Error("SigningKeyID() unchanged once the scheduled key is active")
	}
	if n := countKeys(t, f.pool); n != 2 {
		t.Errorf("%d signing keys right after the switch, want 2 (no new pending key, old kept)", n)
	}
}

// TestRotateLateStillPrepublishes checks that a rotation run after the active key's period
// has ended (every instance was down) still publishes the new key before it signs.
func TestRotateLateStillPrepublishes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	first := f.svc.SigningKeyID()
	late := f.clock.Advance(f.cfg.SigningKeyRotation + time.Hour)

	if err := f.svc.Rotate(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if got := f.svc.SigningKeyID(); got != first {
		t.Fatalf("SigningKeyID() right after a late rotation = %q, want the old %q", got, first)
	}
	var activatesAt time.Time
	if err := f.pool.QueryRow(t.Context(), "SELECT activates_at FROM signing_keys WHERE kid <> $1", first).Scan(&activatesAt); err != nil {
		t.Fatalf("find the new key: %v", err)
	}
	if want := late.Add(f.cfg.JWKSPrepublish); !activatesAt.Equal(want) {
		t.Errorf("late key activates at %v, want %v", activatesAt.UTC(), want)
	}
}

func TestRotateConcurrentInstances(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	clock := newFakeClock()
	url := newDB(t)
	pools := []*pgxpool.Pool{openPool(t, url), openPool(t, url)}

	// Both instances start on an empty database at once: one first key, shared.
	services := make([]*Service, len(pools))
	errs := make([]error, len(pools))
	var wg sync.WaitGroup
	for i, pool := range pools {
		wg.Go(func() {
			services[i], errs[i] = newService(context.Background(), pool, cfg, testenv.Logger(t), clock.Now)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("newService() #%d error = %v", i, err)
		}
	}
	if n := countKeys(t, pools[0]); n != 1 {
		t.Fatalf("%d signing keys after concurrent start, want 1", n)
	}
	first := services[0].SigningKeyID()
	if got := services[1].SigningKeyID(); got != first {
		t.Fatalf("instances sign with %q and %q, want one key", first, got)
	}

	due := clock.Advance(cfg.SigningKeyRotation - cfg.JWKSPrepublish)
	start := make(chan struct{})
	const perInstance = 4
	rotateErrs := make(chan error, len(services)*perInstance)
	for _, s := range services {
		for range perInstance {
			wg.Go(func() {
				<-start
				rotateErrs <- s.Rotate(context.Background(), false)
			})
		}
	}
	close(start)
	wg.Wait()
	close(rotateErrs)
	for err := range rotateErrs {
		if err != nil {
			t.Fatalf("Rotate() error = %v", err)
		}
	}
	if n := countPending(t, pools[0], due); n != 1 {
		t.Fatalf("%d pending signing keys after concurrent rotation, want 1", n)
	}
	for i, s := range services {
		if got := s.SigningKeyID(); got != first {
			t.Errorf("instance %d SigningKeyID() = %q, want %q", i, got, first)
		}
		if n := s.JWKS().Len(); n != 2 {
			t.Errorf("instance %d JWKS() has %d keys, want 2", i, n)
		}
	}
}

func TestInstancesShareKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	a, b := f.svc, f.instance(t)

	if got := mustVerify(t, b, mustIssue(t, a)); got.Role != "user" {
		t.Fatalf("B verified A's token with role %q", got.Role)
	}

	old := a.SigningKeyID()
	if err := a.Rotate(ctx, true); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(f.cfg.JWKSPrepublish + time.Second)
	if err := a.Rotate(ctx, false); err != nil {
		t.Fatal(err)
	}
	newKid := a.SigningKeyID()
	if newKid == old {
		t.Fatal("A still signs with the old key after activation")
	}
	if hasKid(b.JWKS(), newKid) {
		t.Fatal("B knew the new key before anything made it reload; the test proves nothing")
	}

	// B's last load is older than reloadEvery, so the unknown kid makes it re-read the keys.
	token := mustIssue(t, a)
	mustVerify(t, b, token)
	if !hasKid(b.JWKS(), newKid) {
		t.Error("B's JWKS() lacks the new key after verifying a token it signed")
	}
	if got := b.SigningKeyID(); got != newKid {
		t.Errorf("B SigningKeyID() after reload = %q, want %q", got, newKid)
	}
	mustVerify(t, a, mustIssue(t, b))
}

func TestVerifyReloadIsRateLimited(t *testing.T) {
	t.Parallel()
	// Keys sign at once, so a new key can appear within reloadEvery of B's last load.
	f := newFixture(t, func(c *config.Auth) { c.JWKSPrepublish = 0 })
	ctx := t.Context()
	a, b := f.svc, f.instance(t)

	f.clock.Advance(time.Second)
	if err := a.Rotate(ctx, true); err != nil {
		t.Fatal(err)
	}
	token := mustIssue(t, a)
	if a.SigningKeyID() == b.SigningKeyID() {
		t.Fatal("A and B sign with the same key after A rotated")
	}

	// 1s after B's load: no reload, so the unknown kid is refused.
	mustReject(t, b, token)

	f.clock.Set(epoch.Add(reloadEvery - time.Second))
	mustReject(t, b, token)

	f.clock.Set(epoch.Add(reloadEvery))
	mustVerify(t, b, token)
}

func TestSigningKeysAreSealed(t *testing.T) {
	t.Parallel()

	t.Run("with a key encryption key", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		ctx := t.Context()
		key := currentKey(f.svc)
		seed := key.private.Seed()

		var stored []byte
		var sealed bool
		if err := f.pool.QueryRow(ctx, "SELECT private_key, sealed FROM signing_keys WHERE kid = $1", key.kid).Scan(&stored, &sealed); err != nil {
			t.Fatal(err)
		}
		if !sealed {
			t.Error("sealed = false with a key encryption key")
		}
		if bytes.Contains(stored, seed) {
			t.Error("private_key holds the raw seed")
		}
		if got, err := unseal(f.cfg.KeyEncryptionKey, key.kid, stored); err != nil || !bytes.Equal(got, seed) {
			t.Errorf("unseal(private_key) = %x, %v; want the signing seed", got, err)
		}

		// The same KEK opens the key on another instance.
		if got := f.instance(t).SigningKeyID(); got != key.kid {
			t.Errorf("second instance SigningKeyID() = %q, want %q", got, key.kid)
		}

		otherKEK := testConfig(t).KeyEncryptionKey
		for name, kek := range map[string][]byte{"different kek": otherKEK, "no kek": nil} {
			cfg := f.cfg
			cfg.KeyEncryptionKey = kek
			_, err := newService(ctx, openPool(t, f.url), cfg, testenv.Logger(t), f.clock.Now)
			if err == nil || !strings.Contains(err.Error(), "PORTCULLIS_KEY_ENCRYPTION_KEY") {
				t.Errorf("%s: newService() error = %v, want one naming PORTCULLIS_KEY_ENCRYPTION_KEY", name, err)
			}
		}
		if n := countKeys(t, f.pool); n != 1 {
			t.Errorf("%d signing keys after the failed starts, want 1", n)
		}
	})

	t.Run("without a key encryption key", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, func(c *config.Auth) { c.KeyEncryptionKey = nil })
		key := currentKey(f.svc)

		var stored []byte
		var sealed bool
		if err := f.pool.QueryRow(t.Context(), "SELECT private_key, sealed FROM signing_keys WHERE kid = $1", key.kid).Scan(&stored, &sealed); err != nil {
			t.Fatal(err)
		}
		if sealed {
			t.Error("sealed = true without a key encryption key")
		}
		if !bytes.Equal(stored, key.private.Seed()) {
			t.Error("unsealed private_key is not the signing seed")
		}
		mustVerify(t, f.svc, mustIssue(t, f.svc))
	})
}

// A pending key signs from the moment it activates, without waiting for a reload, so no
// instance keeps signing with a key about to be pruned.
func TestPendingKeySignsWithoutReload(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if err := f.svc.Rotate(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	old := f.svc.SigningKeyID()
	f.clock.Advance(f.cfg.JWKSPrepublish + time.Second) // no Rotate, no reload
	if got := f.svc.SigningKeyID(); got == old {
		t.Fatalf("SigningKeyID() after activation = %q, still the old key", got)
	}
	tok := mustIssue(t, f.svc)
	if kid := decodeSegment(t, strings.Split(tok, ".")[0])["kid"]; kid == old {
		t.Fatalf("issued with the old key %v after the new one activated", kid)
	}
	mustVerify(t, f.svc, tok)
}

// Tokens whose lifetime is zero, negative or longer than we ever issue are refused, even when
// properly signed: jwx would otherwise treat "exp": 0 as no expiry at all.
func TestVerifyRefusesImpossibleLifetimes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := f.clock.Now()
	tests := []struct {
		name string
		exp  int64
	}{
		{"exp zero", 0},
		{"exp before iat", now.Add(-time.Minute).Unix()},
		{"a day long", now.Add(24 * time.Hour).Unix()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := f.craft(t, func(_, claims map[string]any) { claims["exp"] = tt.exp })
			mustReject(t, f.svc, tok)
		})
	}
}

// An instance started with the wrong PORTCULLIS_KEY_ENCRYPTION_KEY, or none, while a rotation
// is due refuses to start without writing a key: a key sealed with a KEK the others do not
// hold would stop every instance from reloading, and from starting again once the KEK is
// fixed; one stored unsealed would put a private key in the clear.
func TestWrongKeyEncryptionKeyWritesNoKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.clock.Advance(f.cfg.SigningKeyRotation) // the next key is overdue
	for name, kek := range map[string][]byte{"different kek": testConfig(t).KeyEncryptionKey, "no kek": nil} {
		cfg := f.cfg
		cfg.KeyEncryptionKey = kek
		if _, err := newService(t.Context(), openPool(t, f.url), cfg, testenv.Logger(t), f.clock.Now); err == nil {
			t.Errorf("%s: newService() succeeded", name)
		}
		if n := countKeys(t, f.pool); n != 1 {
			t.Errorf("%s: %d signing keys after the failed start, want 1", name, n)
		}
	}
	// The right KEK still starts, and rotates.
	if n := countPending(t, f.instance(t).store.pool, f.clock.Now()); n != 1 {
		t.Errorf("%d pending keys after a start with the right KEK, want 1", n)
	}
}

// `portcullis keys rotate` prunes too, from a shell whose PORTCULLIS_ACCESS_TOKEN_TTL may not be
// the servers'. Run with a shorter one, it must not delete a key whose tokens, signed by the
// servers with theirs, are still valid; once those have expired, it prunes.
func TestShorterLivedRotationKeepsKeysTheServersTokensNeed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *config.Auth) { c.AccessTokenTTL = time.Hour })
	ctx := t.Context()
	old := currentKey(f.svc)
	shell := f.cfg
	shell.AccessTokenTTL = 15 * time.Minute
	cli := startService(t, openPool(t, f.url), shell, f.clock)

	if err := f.svc.Rotate(ctx, true); err != nil {
		t.Fatal(err)
	}
	activated := epoch.Add(f.cfg.JWKSPrepublish)
	f.clock.Set(activated)
	if err := f.svc.Rotate(ctx, false); err != nil {
		t.Fatal(err)
	}
	if currentKey(f.svc).kid == old.kid {
		t.Fatal("the new key does not sign after its activation")
	}
	// Signed by the old key just before the switch, with the servers' hour.
	lastOld := craftWith(t, old, f.cfg, activated.Add(-time.Second), nil)

	f.clock.Set(activated.Add(shell.AccessTokenTTL + shell.ClockSkew + time.Minute))
	if err := cli.Rotate(ctx, false); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, f.pool); n != 2 {
		t.Fatalf("%d signing keys after a rotation with a 15m TTL, 16m after the switch: the servers' tokens of the old key live 1h", n)
	}
	if err := f.svc.Rotate(ctx, false); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, f.svc, lastOld)

	f.clock.Set(activated.Add(f.cfg.AccessTokenTTL + f.cfg.ClockSkew + time.Second))
	if err := cli.Rotate(ctx, false); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, f.pool); n != 1 {
		t.Fatalf("%d signing keys once every token of the old key has expired, want 1", n)
	}
}

// An instance whose PostgreSQL only reads for a while (a hot standby answering during a
// failover, default_transaction_read_only) still learns the keys other instances rotated in, to
// verify their tokens: reading the keys must not depend on writing the token lifetime.
func TestReloadOnAReadOnlyDatabaseStillVerifiesNewKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	b := f.instance(t)
	if err := f.svc.Rotate(ctx, true); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(f.cfg.JWKSPrepublish + time.Second)
	if err := f.svc.Rotate(ctx, false); err != nil {
		t.Fatal(err)
	}
	if hasKid(b.JWKS(), f.svc.SigningKeyID()) {
		t.Fatal("B knew the new key before anything made it reload; the test proves nothing")
	}
	var name string
	if err := f.pool.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pool.Exec(ctx, "ALTER DATABASE "+name+" SET default_transaction_read_only = on"); err != nil {
		t.Fatal(err)
	}
	b.store.pool.Reset() // B's next connections only read
	token := mustIssue(t, f.svc)
	mustVerify(t, b, token)
	if !hasKid(b.JWKS(), f.svc.SigningKeyID()) {
		t.Error("B's JWKS lacks the new key after a reload on a read-only database")
	}
	if b.SigningKeyID() == f.svc.SigningKeyID() {
		t.Error("B signs with a key it read without recording its token lifetime on it")
	}
}
