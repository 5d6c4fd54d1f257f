package tokens

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// fuzzStateEnv carries a FuzzVerify fixture from the `go test -fuzz` coordinator to the worker
// processes it starts. Workers inherit the coordinator's environment as it is when f.Fuzz
// starts them, so with it every process verifies against the same database keys and knows
// every token issued in the run; without it a worker would make its own keys, and the issued
// tokens among the seeds would be just more forgeries to it.
const fuzzStateEnv = "PORTCULLIS_TOKENS_FUZZ_STATE"

type fuzzState struct {
	URL    string   `json:"url"`
	KEK    []byte   `json:"kek"`
	Issued []string `json:"issued"`
}

// fuzzFixture returns a Service on a real database, driven by a clock that stays at epoch, and
// the tokens it issued. The process that creates the database (the coordinator under -fuzz,
// or the only process otherwise) publishes it in fuzzStateEnv for the workers.
func fuzzFixture(f *testing.F) (*Service, []string) {
	f.Helper()
	if testing.Short() {
		f.Skip("needs PostgreSQL")
	}
	clock := newFakeClock()
	cfg := testConfig(f)
	// The fuzz target may not log through f, and testenv.Logger would.
	logger := slog.New(slog.DiscardHandler)

	if raw := os.Getenv(fuzzStateEnv); raw != "" {
		var st fuzzState
		if err := json.Unmarshal([]byte(raw), &st); err != nil {
			f.Fatalf("%s: %v", fuzzStateEnv, err)
		}
		cfg.KeyEncryptionKey = st.KEK
		svc, err := newService(context.Background(), openPool(f, st.URL), cfg, logger, clock.Now)
		if err != nil {
			f.Fatalf("newService() error = %v", err)
		}
		return svc, st.Issued
	}

	url := newDB(f)
	svc, err := newService(context.Background(), openPool(f, url), cfg, logger, clock.Now)
	if err != nil {
		f.Fatalf("newService() error = %v", err)
	}
	var issued []string
	for _, role := range []string{"user", "moderator", "admin"} {
		token, _, err := svc.Issue(uuid.New(), uuid.New(), role)
		if err != nil {
			f.Fatalf("Issue() error = %v", err)
		}
		issued = append(issued, token)
	}
	raw, err := json.Marshal(fuzzState{URL: url, KEK: cfg.KeyEncryptionKey, Issued: issued})
	if err != nil {
		f.Fatal(err)
	}
	f.Setenv(fuzzStateEnv, string(raw))
	return svc, issued
}

// FuzzVerify checks that Verify never panics, fails only with ErrInvalidToken and zero claims,
// and accepts no token but the exact bytes of one the service issued: fuzzing never forges.
func FuzzVerify(f *testing.F) {
	svc, issued := fuzzFixture(f)
	valid := make(map[string]bool, len(issued))
	for _, token := range issued {
		valid[token] = true
	}
	ctx := context.Background()
	for _, token := range issued {
		if _, err := svc.Verify(ctx, token); err != nil {
			f.Fatalf("Verify(issued) error = %v", err)
		}
	}

	kid := currentKey(svc).kid
	seg := strings.Split(issued[0], ".")
	attacker := attackerKey(f)
	pubSecret := []byte(currentKey(svc).private.Public().(ed25519.PublicKey))
	withHeader := func(edit func(h map[string]any)) map[string]any {
		h := headerFor(kid)
		edit(h)
		return h
	}
	claims := claimsAt(svc.cfg, epoch)

	seeds := append([]string{}, issued...)
	seeds = append(seeds,
		seg[0]+"."+flip(seg[1], len(seg[1])/2)+"."+seg[2], // tampered payload
		seg[0]+"."+seg[1]+"."+flip(seg[2], 10),            // tampered signature
		seg[0]+"."+seg[1]+".",                             // signature stripped
		seg[0]+"."+seg[1]+"."+seg[2]+"=",                  // padded
		seg[0]+"."+seg[1],
		"",
		"a.b.c",
		"..",
		"eyJ.eyJ.AA",
		compact(f, withHeader(func(h map[string]any) { h["alg"] = "none" }), claims, nil),
		compact(f, withHeader(func(h map[string]any) { h["alg"] = "HS256" }), claims, hsSign(pubSecret)),
		compact(f, withHeader(func(h map[string]any) { h["typ"] = "JWT" }), claims, edSign(attacker.private)),
		compact(f, withHeader(func(h map[string]any) { h["jwk"] = publicJWKJSON(f, attacker.private) }), claims, edSign(attacker.private)),
		craftWith(f, attacker, svc.cfg, epoch, nil),
		randomSegment(f, 40)+"."+randomSegment(f, 200)+"."+randomSegment(f, 64),
		randomSegment(f, 3)+"."+randomSegment(f, 1)+"."+randomSegment(f, 2),
	)
	for _, s := range seeds {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, token string) {
		c, err := svc.Verify(ctx, token)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Verify(%q) error = %v, want ErrInvalidToken", token, err)
			}
			if c != (Claims{}) {
				t.Fatalf("Verify(%q) claims = %+v on error, want zero", token, c)
			}
			return
		}
		if !valid[token] {
			t.Fatalf("Verify(%q) accepted a token the service never issued: %+v", token, c)
		}
	})
}

// FuzzParseHeader checks that parseHeader never panics and accepts only unpadded base64url.
func FuzzParseHeader(f *testing.F) {
	b64 := base64.RawURLEncoding.EncodeToString
	for _, s := range []string{
		b64([]byte(`{"alg":"EdDSA","kid":"abc","typ":"at+jwt"}`)),
		b64([]byte(`{"alg":"none"}`)),
		b64([]byte(`{"alg":"EdDSA","jwk":{"kty":"OKP","crv":"Ed25519","x":"AA"},"x5c":["AA"]}`)),
		b64([]byte(`{"ALG":"EdDSA","alg":"none","Kid":1}`)),
		b64([]byte(`{"alg":"EdDSA"} trailing`)),
		b64([]byte(`null`)),
		b64([]byte(`[]`)),
		b64([]byte(strings.Repeat("[", 100))),
		b64([]byte("{\"alg\":\"\xff\"}")),
		b64([]byte(`{"alg":"\ud800"}`)),
		base64.URLEncoding.EncodeToString([]byte(`{"alg":"EdDSA"}`)),
		base64.StdEncoding.EncodeToString([]byte(`{"a":"??>>"}`)),
		"",
		"!",
		"e",
		"eyJ9",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, seg string) {
		if _, err := parseHeader(seg); err != nil {
			return
		}
		if _, err := base64.RawURLEncoding.DecodeString(seg); err != nil {
			t.Fatalf("parseHeader(%q) = nil error, but it is not unpadded base64url: %v", seg, err)
		}
	})
}

func randomSegment(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Changing the last character of a segment only in bits base64 ignores must not leave a token
// that still verifies: every segment must be canonical.
func TestVerifyRefusesNonCanonicalBase64(t *testing.T) {
	f := newFixture(t)
	tok := mustIssue(t, f.svc)
	segs := strings.Split(tok, ".")
	for i := range segs {
		seg := segs[i]
		last := seg[len(seg)-1]
		idx := strings.IndexByte(b64alphabet, last)
		// Flip the lowest bit of the final character: for unpadded segments whose length is not a
		// multiple of 4, the low bits of the last character are padding that decoders may ignore.
		alt := b64alphabet[idx^1]
		forged := append([]string(nil), segs...)
		forged[i] = seg[:len(seg)-1] + string(alt)
		mustReject(t, f.svc, strings.Join(forged, "."))
	}
}

const b64alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
