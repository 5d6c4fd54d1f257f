package httpserver_test

// The hostile suite: every threat of SECURITY.md attacked over real HTTP. Each attack is a
// subtest that asserts the exact status and problem code and that the database is exactly as
// before (users, sessions, spent refresh tokens and signing keys; audit events are left out,
// since failed attempts are legitimately recorded). The few attacks whose correct answer
// changes state say so and assert that precise change instead.

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/routers"
	"github.com/google/uuid"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/httpserver"
	"github.com/portcullis/portcullis/internal/testenv"
)

const ctJSON = "application/json"

// strongPassword passes the password policy wherever a valid one is needed.
const strongPassword = "a long and unusual passphrase"

// ---------------------------------------------------------------------------------------------
// Database snapshots

// dbState is the security-relevant content of the database: one JSON line per row, keyed by
// table and primary key. Audit events are not part of it.
type dbState map[string]string

// dumpQuery reads every column of users, spent_refresh_tokens and signing_keys, and the columns
// of user_sessions that decide whether a session and its refresh token still work
// (last_used_at is left out).
const dumpQuery = `
SELECT 'users/' || u.id::text, row_to_json(u)::text FROM users u
UNION ALL
SELECT 'user_sessions/' || s.id::text, json_build_object(
    'id', s.id, 'revoked_at', s.revoked_at, 'refresh_token_hash', encode(s.refresh_token_hash, 'hex'),
    'refresh_generation', s.refresh_generation, 'expires_at', s.expires_at)::text
FROM user_sessions s
UNION ALL
SELECT 'spent_refresh_tokens/' || encode(t.token_hash, 'hex'), row_to_json(t)::text FROM spent_refresh_tokens t
UNION ALL
SELECT 'signing_keys/' || k.kid, row_to_json(k)::text FROM signing_keys k`

func dump(t testing.TB, in *instance) dbState {
	t.Helper()
	rows, err := in.app.Pool.Query(context.Background(), dumpQuery)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	defer rows.Close()
	s := dbState{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		s[k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return s
}

// digest is a SHA-256 over the rows in key order.
func (s dbState) digest() string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(s)) {
		fmt.Fprintf(h, "%s\t%s\n", k, s[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// snapshot returns a digest of the users, user_sessions, spent_refresh_tokens and signing_keys
// rows of in's database.
func snapshot(t testing.TB, in *instance) string {
	t.Helper()
	return dump(t, in).digest()
}

const (
	rowAdded   = "+row"
	rowDeleted = "-row"
)

// changesBetween lists, per row key, the columns that differ ([rowAdded] or [rowDeleted] for
// whole rows).
func changesBetween(t testing.TB, before, after dbState) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	for k, a := range after {
		b, ok := before[k]
		switch {
		case !ok:
			got[k] = []string{rowAdded}
		case a != b:
			got[k] = columnsChanged(t, b, a)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			got[k] = []string{rowDeleted}
		}
	}
	return got
}

func columnsChanged(t testing.TB, before, after string) []string {
	t.Helper()
	var b, a map[string]any
	if err := json.Unmarshal([]byte(before), &b); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(after), &a); err != nil {
		t.Fatal(err)
	}
	var cols []string
	for k := range maps.Keys(a) {
		if !reflect.DeepEqual(a[k], b[k]) {
			cols = append(cols, k)
		}
	}
	for k := range maps.Keys(b) {
		if _, ok := a[k]; !ok {
			cols = append(cols, k)
		}
	}
	slices.Sort(cols)
	return cols
}

// rowChange is one expected change: the columns of a row that change, or nil for a new row.
type rowChange struct {
	key     string
	columns []string
}

// wantChanges asserts that exactly the listed rows changed, in exactly the listed columns.
func wantChanges(t testing.TB, before, after dbState, want ...rowChange) {
	t.Helper()
	w := map[string][]string{}
	for _, c := range want {
		cols := slices.Sorted(slices.Values(c.columns))
		if c.columns == nil {
			cols = []string{rowAdded}
		}
		w[c.key] = cols
	}
	if got := changesBetween(t, before, after); !reflect.DeepEqual(got, w) {
		t.Errorf("database changes = %v, want exactly %v", got, w)
	}
}

// newUserRow expects exactly one change: a new users row for the user in body.
func newUserRow(t *testing.T, body []byte, before, after dbState) {
	t.Helper()
	var u api.User
	if err := json.Unmarshal(body, &u); err != nil {
		t.Fatalf("created user does not decode: %v: %s", err, body)
	}
	wantChanges(t, before, after, rowChange{key: "users/" + u.Id.String()})
}

// ---------------------------------------------------------------------------------------------
// Attacks

// attack is one hostile request and the answer it must get.
type attack struct {
	name  string
	setup func(t *testing.T) // runs before the "before" snapshot
	send  func(t *testing.T) (*http.Response, []byte)
	// status and code are the exact answer; code is "" for a success, or for an answer that
	// net/http gives before the service sees the request.
	status int
	code   string
	field  string // a field the problem must name, if any
	check  func(t *testing.T, resp *http.Response, body []byte)
	// change asserts the one legitimate change of an attack that must change state; nil means
	// nothing may change.
	change func(t *testing.T, body []byte, before, after dbState)
}

// hostile sends hand-made requests to one instance; every answer to a documented operation is
// validated against the spec.
type hostile struct {
	in     *instance
	router routers.Router
}

func newHostile(t testing.TB, in *instance) *hostile {
	t.Helper()
	return &hostile{in: in, router: specRouter(t)}
}

// send makes one request; headers are name/value pairs, added (so a name may repeat).
func (h *hostile) send(t *testing.T, method, path, ctype string, body io.Reader, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, h.in.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	hc := &http.Client{Transport: &specValidator{t: t, next: http.DefaultTransport, router: h.router}}
	return do(t, hc, req)
}

func do(t *testing.T, hc *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %.80s: %v", req.Method, req.URL.String(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// call returns a sender of one fixed request.
func (h *hostile) call(method, path, ctype, body string, headers ...string) func(*testing.T) (*http.Response, []byte) {
	return func(t *testing.T) (*http.Response, []byte) {
		t.Helper()
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		return h.send(t, method, path, ctype, r, headers...)
	}
}

// run runs each attack as a subtest between two snapshots and returns how many it ran.
func (h *hostile) run(t *testing.T, attacks []attack) int {
	t.Helper()
	seen := map[string]bool{}
	for _, a := range attacks {
		if seen[a.name] || a.send == nil {
			t.Fatalf("attack %q is repeated or sends nothing", a.name)
		}
		seen[a.name] = true
		t.Run(a.name, func(t *testing.T) {
			if a.setup != nil {
				a.setup(t)
			}
			before := dump(t, h.in)
			resp, body := a.send(t)
			after := dump(t, h.in)
			if a.change != nil {
				a.change(t, body, before, after)
			} else if before.digest() != after.digest() {
				t.Errorf("the database changed: %v", changesBetween(t, before, after))
			}
			if answered(t, resp, body, a.status, a.code, a.field) && a.check != nil {
				a.check(t, resp, body)
			}
		})
	}
	return len(attacks)
}

// answered asserts what every answer to an attack must be, then the exact status, problem code
// and field; it reports whether the status was the expected one.
func answered(t *testing.T, resp *http.Response, body []byte, status int, code, field string) bool {
	t.Helper()
	if resp.StatusCode >= 500 {
		t.Errorf("server error %d: %s", resp.StatusCode, body)
	}
	if s := string(body); strings.Contains(s, "goroutine ") || strings.Contains(s, ".go:") || strings.Contains(s, "panic") {
		t.Errorf("a stack trace or panic in the answer: %s", body)
	}
	for name, values := range resp.Header {
		if strings.EqualFold(name, "X-Injected") {
			t.Errorf("header injected into the response: %s: %v", name, values)
		}
		for _, v := range values {
			if strings.ContainsAny(v, "\r\n") {
				t.Errorf("header %s carries a line break: %q", name, v)
			}
		}
	}
	if resp.StatusCode != status {
		t.Errorf("status = %d, want %d; body: %.600s", resp.StatusCode, status, body)
		return false
	}
	if code != "" {
		p := wantProblem(t, rawStatus{resp}, body, status, code)
		if field != "" {
			wantField(t, p, field)
		}
	}
	return true
}

// challenge asserts a WWW-Authenticate header containing want.
func challenge(want string) func(*testing.T, *http.Response, []byte) {
	return func(t *testing.T, resp *http.Response, _ []byte) {
		t.Helper()
		if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") || !strings.Contains(got, want) {
			t.Errorf("WWW-Authenticate = %q, want a Bearer challenge with %s", got, want)
		}
	}
}

// bareChallenge asserts a Bearer challenge with no error code, as RFC 6750 asks when the
// request carried no credentials.
func bareChallenge(t *testing.T, resp *http.Response, _ []byte) {
	t.Helper()
	if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") || strings.Contains(got, "error=") {
		t.Errorf("WWW-Authenticate = %q, want a Bearer challenge without an error", got)
	}
}

// sameProblem asserts that two problems are identical apart from request_id and instance.
func sameProblem(t *testing.T, a, b []byte) {
	t.Helper()
	strip := func(raw []byte) map[string]any {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("problem does not decode: %v: %s", err, raw)
		}
		delete(m, "request_id")
		delete(m, "instance")
		delete(m, "trace_id")
		return m
	}
	if ma, mb := strip(a), strip(b); !reflect.DeepEqual(ma, mb) {
		t.Errorf("the answers tell the two apart:\n%s\n%s", a, b)
	}
}

// jsonString encodes s as a JSON string without HTML escaping, so "<script>" is sent as typed.
func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// object builds a JSON object from key and raw JSON value pairs, in order.
func object(kv ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(jsonString(kv[i]))
		b.WriteByte(':')
		b.WriteString(kv[i+1])
	}
	b.WriteByte('}')
	return b.String()
}

func uniqueName() string { return "h" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16] }

// loginWith signs in through h with a JSON password literal and returns the token pair.
func (h *hostile) loginWith(t *testing.T, email, passwordJSON string) api.TokenPair {
	t.Helper()
	resp, body := h.send(t, "POST", "/api/v1/auth/login", ctJSON, strings.NewReader(object("email", jsonString(email), "password", passwordJSON)))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login with the stored password: %d %s", resp.StatusCode, body)
	}
	var p api.TokenPair
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// getUser reads a user through path with token.
func (h *hostile) getUser(t *testing.T, path, token string) api.User {
	t.Helper()
	resp, body := h.send(t, "GET", path, "", nil, "Authorization", "Bearer "+token)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	var u api.User
	if err := json.Unmarshal(body, &u); err != nil {
		t.Fatal(err)
	}
	return u
}

func fullName(t *testing.T, u api.User) string {
	t.Helper()
	v, err := u.FullName.Get()
	if err != nil {
		t.Fatalf("full_name is null or absent: %+v", u)
	}
	return v
}

// ---------------------------------------------------------------------------------------------
// Tokens

// seg encodes one JWS segment.
func seg(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// compact builds a compact JWS; sign nil leaves the signature empty.
func compact(hdr, claims map[string]any, sign func([]byte) []byte) string {
	input := seg(hdr) + "." + seg(claims)
	s := ""
	if sign != nil {
		s = base64.RawURLEncoding.EncodeToString(sign([]byte(input)))
	}
	return input + "." + s
}

func splitJWT(t testing.TB, token string) (hdr, claims map[string]any, sig []byte) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", token)
	}
	for i, v := range []*map[string]any{&hdr, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatal(err)
		}
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	return hdr, claims, sig
}

// drop marks a member to remove in edit.
type drop struct{}

// edit returns a copy of m with edits applied.
func edit(m map[string]any, edits map[string]any) map[string]any {
	out := maps.Clone(m)
	for k, v := range edits {
		if _, ok := v.(drop); ok {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

func edSign(k ed25519.PrivateKey) func([]byte) []byte {
	return func(b []byte) []byte { return ed25519.Sign(k, b) }
}

func hsSign(key []byte) func([]byte) []byte {
	return func(b []byte) []byte {
		m := hmac.New(sha256.New, key)
		m.Write(b)
		return m.Sum(nil)
	}
}

func keepSig(sig []byte) func([]byte) []byte { return func([]byte) []byte { return sig } }

// serverSigningKey unseals the key the service signs with, from its database and its key
// encryption key. With it the suite makes tokens whose signature is genuine, to prove that
// every other check holds on its own.
func serverSigningKey(t testing.TB, in *instance) (string, ed25519.PrivateKey) {
	t.Helper()
	var (
		kid    string
		stored []byte
		sealed bool
	)
	err := in.app.Pool.QueryRow(context.Background(),
		`SELECT kid, private_key, sealed FROM signing_keys WHERE activates_at <= now() ORDER BY activates_at DESC LIMIT 1`).Scan(&kid, &stored, &sealed)
	if err != nil {
		t.Fatal(err)
	}
	seed := stored
	if sealed {
		block, err := aes.NewCipher(in.cfg.Auth.KeyEncryptionKey)
		if err != nil {
			t.Fatal(err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			t.Fatal(err)
		}
		n := aead.NonceSize()
		if seed, err = aead.Open(nil, stored[:n], stored[n:], []byte(kid)); err != nil {
			t.Fatalf("unseal signing key: %v", err)
		}
	}
	return kid, ed25519.NewKeyFromSeed(seed)
}

// Forged and tampered access tokens against GET /users/me. Proves: only EdDSA tokens signed by
// our own keys verify (alg none, HMAC keyed with the public key, embedded or remote keys,
// unknown kids, tampered claims and stripped signatures all fail); with a genuine signature,
// typ, iss, aud, exp, nbf, iat, the lifetime bound, sid and sub are each still enforced; the
// role and the session come from the live session, not from the token; refresh tokens are not
// access tokens nor the reverse; tokens travel only in the Authorization header, and two of
// them are refused.
func TestHostileTokens(t *testing.T) {
	t.Parallel()
	in := start(t)
	h := newHostile(t, in)
	ctx := context.Background()
	me := in.register(t)
	pair := in.login(t, me)
	victim := in.register(t)
	victimPair := in.login(t, victim)

	hdr, claims, sig := splitJWT(t, pair.AccessToken)
	kid, _ := hdr["kid"].(string)
	jwks, err := in.client.GetJWKSWithResponse(ctx)
	if err != nil || jwks.JSON200 == nil {
		t.Fatalf("jwks: %v", err)
	}
	var jwkX string
	for _, k := range jwks.JSON200.Keys {
		if k.Kid == kid && k.X != nil {
			jwkX = *k.X
		}
	}
	pub, err := base64.RawURLEncoding.DecodeString(jwkX)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		t.Fatalf("public key %q of kid %q: %v", jwkX, kid, err)
	}
	serverKid, serverKey := serverSigningKey(t, in)
	if serverKid != kid {
		t.Fatalf("signing key %s, token kid %s", serverKid, kid)
	}
	server := edSign(serverKey)
	_, attackerKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	attacker := edSign(attackerKey)
	attackerJWK := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(attackerKey.Public().(ed25519.PublicKey))}
	now := time.Now().Unix()
	forge := func(hEdits, cEdits map[string]any, sign func([]byte) []byte) string {
		return compact(edit(hdr, hEdits), edit(claims, cEdits), sign)
	}
	fresh := func() string { return base64.RawURLEncoding.EncodeToString([]byte(uuid.NewString())) }

	// Another issuer with its own database and keys; and one sharing our database, so our keys.
	other := start(t, func(c *config.Config) { c.Auth.Issuer = "https://other-issuer.example" })
	otherPair := other.login(t, other.register(t))
	sharedCfg := in.cfg
	sharedCfg.Auth.Issuer = "https://other-issuer.example"
	sharedPair := startWith(t, sharedCfg).login(t, me)

	get := func(headers ...string) func(*testing.T) (*http.Response, []byte) {
		return h.call("GET", "/api/v1/users/me", "", "", headers...)
	}
	ok := func(name string, headers ...string) attack {
		return attack{name: name, send: get(headers...), status: 200}
	}
	invalid := func(name, token string) attack {
		return attack{name: name, send: get("Authorization", "Bearer "+token), status: 401, code: "invalid-token", check: challenge(`error="invalid_token"`)}
	}
	oversized := forge(nil, map[string]any{"jti": fresh(), "pad": strings.Repeat("p", 4096)}, server)
	parts := strings.Split(pair.AccessToken, ".")

	attacks := []attack{
		ok("control: genuine token", "Authorization", "Bearer "+pair.AccessToken),
		ok("control: lowercase bearer scheme", "Authorization", "bearer "+pair.AccessToken),
		ok("control: genuine claims re-signed with the server key", "Authorization", "Bearer "+forge(nil, map[string]any{"jti": fresh()}, server)),

		invalid("alg none without signature", forge(map[string]any{"alg": "none"}, nil, nil)),
		invalid("alg none keeping the signature", forge(map[string]any{"alg": "none"}, nil, keepSig(sig))),
		invalid("HS256 keyed with the JWKS public key bytes", forge(map[string]any{"alg": "HS256"}, nil, hsSign(pub))),
		invalid("HS256 keyed with the JWKS x text", forge(map[string]any{"alg": "HS256"}, nil, hsSign([]byte(jwkX)))),
		invalid("role admin in the payload with the original signature", forge(nil, map[string]any{"role": "admin"}, keepSig(sig))),
		invalid("exp pushed forward with the original signature", forge(nil, map[string]any{"exp": now + 3600}, keepSig(sig))),
		invalid("signature stripped", parts[0]+"."+parts[1]+"."),
		invalid("another token's signature", parts[0]+"."+parts[1]+"."+strings.Split(victimPair.AccessToken, ".")[2]),
		invalid("embedded jwk of the attacker's key", forge(map[string]any{"jwk": attackerJWK}, nil, attacker)),
		invalid("jku pointing at 127.0.0.1:1", forge(map[string]any{"jku": "http://127.0.0.1:1/"}, nil, attacker)),
		invalid("x5u pointing at 127.0.0.1:1", forge(map[string]any{"x5u": "http://127.0.0.1:1/cert.pem"}, nil, attacker)),
		invalid("unknown kid signed by the attacker", forge(map[string]any{"kid": "attacker-key"}, nil, attacker)),
		invalid("kid carrying SQL and a path", forge(map[string]any{"kid": "' OR '1'='1' -- ../../../../dev/null"}, nil, attacker)),
		invalid("our kid signed by the attacker", forge(nil, nil, attacker)),
		invalid("genuine signature with an embedded jwk", forge(map[string]any{"jwk": attackerJWK}, map[string]any{"jti": fresh()}, server)),
		invalid("genuine signature with x5c", forge(map[string]any{"x5c": []string{"MIIB"}}, map[string]any{"jti": fresh()}, server)),
		invalid("genuine signature with cty JWT (nesting)", forge(map[string]any{"cty": "JWT"}, map[string]any{"jti": fresh()}, server)),
		invalid("genuine signature without kid", forge(map[string]any{"kid": drop{}}, map[string]any{"jti": fresh()}, server)),
		invalid("genuine signature with typ JWT", forge(map[string]any{"typ": "JWT"}, map[string]any{"jti": fresh()}, server)),
		invalid("genuine signature without typ", forge(map[string]any{"typ": drop{}}, map[string]any{"jti": fresh()}, server)),
		invalid("genuine signature, expired", forge(nil, map[string]any{"iat": now - 1200, "nbf": now - 1200, "exp": now - 300}, server)),
		invalid("genuine signature, not yet valid", forge(nil, map[string]any{"iat": now, "nbf": now + 600, "exp": now + 900}, server)),
		invalid("genuine signature, issued in the future", forge(nil, map[string]any{"iat": now + 600, "nbf": now, "exp": now + 900}, server)),
		invalid("genuine signature, another issuer", forge(nil, map[string]any{"iss": "https://evil.example"}, server)),
		invalid("genuine signature, another audience", forge(nil, map[string]any{"aud": []string{"someone-else"}}, server)),
		invalid("genuine signature, lifetime of a day", forge(nil, map[string]any{"iat": now, "nbf": now, "exp": now + 86400}, server)),
		invalid("genuine signature, no exp", forge(nil, map[string]any{"exp": drop{}}, server)),
		invalid("genuine signature, no sid", forge(nil, map[string]any{"sid": drop{}}, server)),
		invalid("genuine signature, sub not a uuid", forge(nil, map[string]any{"sub": "admin"}, server)),
		invalid("genuine signature, over 4096 bytes", oversized),
		invalid("token of another issuer with its own keys", otherPair.AccessToken),
		invalid("token of another issuer sharing our keys", sharedPair.AccessToken),
		invalid("refresh token as a bearer token", pair.RefreshToken),
		invalid("four segments", pair.AccessToken+".e30"),
		invalid("JWS JSON serialization", fmt.Sprintf(`{"protected":%q,"payload":%q,"signature":%q}`, parts[0], parts[1], parts[2])),
		{
			name: "genuine signature naming another user's session", send: get("Authorization", "Bearer "+forge(nil, map[string]any{"sid": victimPair.SessionId.String()}, server)),
			status: 401, code: "session-revoked", check: challenge(`error="invalid_token"`),
		},
		{
			name: "genuine signature with role admin on an admin route", send: h.call("GET", "/api/v1/admin/users", "", "", "Authorization", "Bearer "+forge(nil, map[string]any{"role": "admin", "jti": fresh()}, server)),
			status: 403, code: "insufficient-permissions", check: challenge(`error="insufficient_scope"`),
		},
		{
			name: "Bearer with an empty token", send: get("Authorization", "Bearer "),
			status: 401, code: "missing-token", check: bareChallenge,
		},
		{
			name: "token in the query string", send: h.call("GET", "/api/v1/users/me?access_token="+pair.AccessToken, "", ""),
			status: 401, code: "missing-token", check: bareChallenge,
		},
		{
			name: "token in a cookie", send: get("Cookie", "access_token="+pair.AccessToken),
			status: 401, code: "missing-token", check: bareChallenge,
		},
		{
			name: "two Authorization headers, the genuine one first", send: get("Authorization", "Bearer "+pair.AccessToken, "Authorization", "Bearer "+forge(map[string]any{"alg": "none"}, nil, nil)),
			status: 401, code: "invalid-token", check: challenge(`error="invalid_token"`),
		},
		{
			name: "two Authorization headers, the forged one first", send: get("Authorization", "Bearer "+forge(map[string]any{"alg": "none"}, nil, nil), "Authorization", "Bearer "+pair.AccessToken),
			status: 401, code: "invalid-token", check: challenge(`error="invalid_token"`),
		},
		{
			name: "access token used as a refresh token", send: h.call("POST", "/api/v1/auth/refresh", ctJSON, object("refresh_token", jsonString(pair.AccessToken))),
			// Longer than the spec's maxLength of 256, so refused before the handler.
			status: 400, code: "validation-failed", field: "refresh_token",
			setup: func(t *testing.T) {
				if len(pair.AccessToken) <= 256 {
					t.Fatalf("access token of %d bytes: the expected answer is 401 invalid-refresh-token", len(pair.AccessToken))
				}
			},
		},
	}
	whole := snapshot(t, in)
	n := h.run(t, attacks)
	if snapshot(t, in) != whole {
		t.Error("the database changed over the whole group")
	}
	// The victim's session was never touched by any of it.
	if got := in.me(t, victimPair.AccessToken); got != http.StatusOK {
		t.Errorf("victim's session after the attacks: %d", got)
	}
	t.Logf("%d token attacks", n)
}

// ---------------------------------------------------------------------------------------------
// Refresh tokens

// Refresh-token abuse, with no reuse grace. Proves: a spent token replayed revokes its session
// (and only that); a dead family stays dead; unknown, malformed, altered, logged-out, expired and
// deactivated-user tokens are refused with 401 invalid-refresh-token (or 400 where the spec
// refuses the shape) without consuming anything; and the live token those variants were derived
// from still rotates afterwards.
func TestHostileRefresh(t *testing.T) {
	t.Parallel()
	in := start(t, func(c *config.Config) { c.Auth.RefreshReuseGrace = 0 })
	h := newHostile(t, in)
	ctx := context.Background()
	refresh := func(token string) func(*testing.T) (*http.Response, []byte) {
		return h.call("POST", "/api/v1/auth/refresh", ctJSON, object("refresh_token", jsonString(token)))
	}
	rotate := func(token string) api.TokenPair {
		r, err := in.client.RefreshTokensWithResponse(ctx, api.RefreshTokensJSONRequestBody{RefreshToken: token})
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, r, r.Body, http.StatusOK)
		return *r.JSON200
	}
	exec := func(sql string, args ...any) {
		if _, err := in.app.Pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}

	first := in.login(t, in.register(t))
	second := rotate(first.RefreshToken) // first.RefreshToken is now spent

	liveAcct := in.register(t)
	live := in.login(t, liveAcct)
	flipped := []byte(live.RefreshToken)
	for i := 4; i < len(flipped); i++ {
		if c := rune(flipped[i]); unicode.IsLetter(c) {
			flipped[i] ^= 0x20 // swap letter case
			break
		}
	}

	loggedOut := in.login(t, in.register(t))
	if r, err := in.client.LogoutWithResponse(ctx, bearer(loggedOut.AccessToken)); err != nil || r.StatusCode() != http.StatusNoContent {
		t.Fatalf("logout: %v", err)
	}
	disabledAcct := in.register(t)
	disabled := in.login(t, disabledAcct)
	exec("UPDATE users SET is_active = false WHERE id = $1", disabledAcct.User.Id)
	expired := in.login(t, in.register(t))
	exec("UPDATE user_sessions SET expires_at = now() - interval '1 minute' WHERE id = $1", expired.SessionId)

	random := make([]byte, 32)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	spentHash := sha256.Sum256([]byte(live.RefreshToken))
	invalid := func(name, token string) attack {
		return attack{name: name, send: refresh(token), status: 401, code: "invalid-refresh-token"}
	}

	attacks := []attack{
		{
			name: "spent token replayed after the grace window", send: refresh(first.RefreshToken),
			status: 401, code: "refresh-token-reused",
			// Expected change: the session is revoked, nothing else.
			change: func(t *testing.T, _ []byte, before, after dbState) {
				wantChanges(t, before, after, rowChange{key: "user_sessions/" + first.SessionId.String(), columns: []string{"revoked_at"}})
			},
			check: func(t *testing.T, _ *http.Response, _ []byte) {
				if got := in.me(t, second.AccessToken); got != http.StatusUnauthorized {
					t.Errorf("access token of the revoked session: %d, want 401", got)
				}
			},
		},
		invalid("spent token replayed again after the revocation", first.RefreshToken),
		invalid("successor token of the revoked family", second.RefreshToken),
		invalid("random well-formed token", "prt_"+base64.RawURLEncoding.EncodeToString(random)),
		invalid("token of a logged-out session", loggedOut.RefreshToken),
		invalid("token of a deactivated user's live session", disabled.RefreshToken),
		invalid("token of an expired session", expired.RefreshToken),
		invalid("live token with another prefix", "prx_"+live.RefreshToken[4:]),
		invalid("live token without its prefix", live.RefreshToken[4:]),
		invalid("live token truncated by one character", live.RefreshToken[:len(live.RefreshToken)-1]),
		invalid("live token with trailing whitespace", live.RefreshToken+" "),
		invalid("live token with a trailing newline", live.RefreshToken+"\n"),
		invalid("live token with leading whitespace", " "+live.RefreshToken),
		invalid("live token with base64 padding", live.RefreshToken+"="),
		invalid("live token with one letter's case flipped", string(flipped)),
		invalid("live token in standard base64", strings.NewReplacer("-", "+", "_", "/").Replace(live.RefreshToken)+"+/"),
		{name: "token of 257 characters", send: refresh("prt_" + strings.Repeat("A", 253)), status: 400, code: "validation-failed", field: "refresh_token"},
		{name: "empty token", send: refresh(""), status: 400, code: "validation-failed", field: "refresh_token"},
		{name: "token as a number", send: h.call("POST", "/api/v1/auth/refresh", ctJSON, `{"refresh_token":12345}`), status: 400, code: "validation-failed", field: "refresh_token"},
		{name: "token as an array", send: h.call("POST", "/api/v1/auth/refresh", ctJSON, object("refresh_token", "["+jsonString(live.RefreshToken)+"]")), status: 400, code: "validation-failed", field: "refresh_token"},
		{
			name: "control: the live token still rotates after all of that", send: refresh(live.RefreshToken), status: 200,
			// Expected change: the session's token rotates and the old hash is recorded as spent.
			change: func(t *testing.T, _ []byte, before, after dbState) {
				wantChanges(t, before, after,
					rowChange{key: "user_sessions/" + live.SessionId.String(), columns: []string{"expires_at", "refresh_generation", "refresh_token_hash"}},
					rowChange{key: "spent_refresh_tokens/" + hex.EncodeToString(spentHash[:])})
			},
		},
	}
	t.Logf("%d refresh attacks", h.run(t, attacks))
}

// ---------------------------------------------------------------------------------------------
// Enumeration

// Account enumeration through login, with a budget of 3 failures per account. Proves: unknown
// email, unknown username and a disabled account with a wrong password answer exactly like a
// wrong password; a locked real account and a locked unknown identifier answer the same 429
// with Retry-After; a locked account stays locked for its correct password and in any letter
// case, and (SECURITY.md: a per-account budget) when addressed by its username instead.
func TestHostileEnumeration(t *testing.T) {
	t.Parallel()
	in := start(t, func(c *config.Config) { c.Limits.LoginAccountFailures = "3/15m" })
	h := newHostile(t, in)
	loginBody := func(idKey, id, password string) string {
		return object(idKey, jsonString(id), "password", jsonString(password))
	}
	post := func(t *testing.T, body string) (*http.Response, []byte) {
		return h.send(t, "POST", "/api/v1/auth/login", ctJSON, strings.NewReader(body))
	}
	const wrong = "not the password at all"

	// compare sends the real account's request, then the other one, and expects the same answer.
	compare := func(name, realBody, otherBody string, status int, code string) attack {
		var realResp *http.Response
		var realAnswer []byte
		return attack{
			name: name, status: status, code: code,
			send: func(t *testing.T) (*http.Response, []byte) {
				realResp, realAnswer = post(t, realBody)
				return post(t, otherBody)
			},
			check: func(t *testing.T, resp *http.Response, body []byte) {
				wantProblem(t, rawStatus{realResp}, realAnswer, status, code)
				sameProblem(t, realAnswer, body)
				if status == http.StatusTooManyRequests {
					ra, rb := realResp.Header.Get("Retry-After"), resp.Header.Get("Retry-After")
					na, errA := strconv.Atoi(ra)
					nb, errB := strconv.Atoi(rb)
					if errA != nil || errB != nil || na <= 0 || nb <= 0 || na-nb > 1 || nb-na > 1 {
						t.Errorf("Retry-After = %q and %q, want the same positive number of seconds", ra, rb)
					}
				}
			},
		}
	}

	byEmail, byName, disabled, locked := in.register(t), in.register(t), in.register(t), in.register(t)
	if _, err := in.app.Pool.Exec(context.Background(), "UPDATE users SET is_active = false WHERE id = $1", disabled.User.Id); err != nil {
		t.Fatal(err)
	}
	unknownLocked := "nobody-" + uniqueName() + "@example.com"
	lockBoth := func(t *testing.T) {
		for range 3 {
			for _, body := range []string{loginBody("email", string(locked.User.Email), wrong), loginBody("email", unknownLocked, wrong)} {
				resp, b := post(t, body)
				wantProblem(t, rawStatus{resp}, b, http.StatusUnauthorized, "invalid-credentials")
			}
		}
	}

	attacks := []attack{
		compare("unknown email answers like a wrong password",
			loginBody("email", string(byEmail.User.Email), wrong), loginBody("email", "nobody-"+string(byEmail.User.Email), wrong), 401, "invalid-credentials"),
		compare("unknown username answers like a wrong password",
			loginBody("username", byName.User.Username, wrong), loginBody("username", "nobody_"+byName.User.Username[:10], wrong), 401, "invalid-credentials"),
		compare("disabled account with a wrong password answers like an unknown one",
			loginBody("email", string(disabled.User.Email), wrong), loginBody("email", "nobody-"+string(disabled.User.Email), wrong), 401, "invalid-credentials"),
		func() attack {
			a := compare("locked account answers like a locked unknown identifier",
				loginBody("email", string(locked.User.Email), wrong), loginBody("email", unknownLocked, wrong), 429, "account-locked")
			a.setup = lockBoth
			return a
		}(),
		{
			name: "locked account with its correct password opens no session", status: 429, code: "account-locked",
			send: h.call("POST", "/api/v1/auth/login", ctJSON, loginBody("email", string(locked.User.Email), locked.Password)),
		},
		{
			name: "locked account in upper case", status: 429, code: "account-locked",
			send: h.call("POST", "/api/v1/auth/login", ctJSON, loginBody("email", strings.ToUpper(string(locked.User.Email)), wrong)),
		},
		{
			name: "locked account addressed by its username", status: 429, code: "account-locked",
			send: h.call("POST", "/api/v1/auth/login", ctJSON, loginBody("username", locked.User.Username, wrong)),
		},
	}
	t.Logf("%d enumeration attacks", h.run(t, attacks))
}

// ---------------------------------------------------------------------------------------------
// Mass assignment

// Mass assignment and privilege escalation. Proves: no request body accepts a field it does not
// declare (role, is_active, is_verified, id, created_at, hashed_password, password, email, in
// any letter case or under __proto__), a refused body applies none of its valid fields either,
// and the admin API refuses users and moderators who try to promote themselves.
func TestHostileMassAssignment(t *testing.T) {
	t.Parallel()
	in := start(t)
	h := newHostile(t, in)
	user := in.register(t)
	userTok := in.login(t, user).AccessToken
	moderator, modPair := in.createWithRole(t, "moderator")
	_, adminPair := in.createWithRole(t, "admin")

	register := func(extra ...string) func(*testing.T) (*http.Response, []byte) {
		n := uniqueName()
		kv := append([]string{"email", jsonString(n + "@example.com"), "username", jsonString(n), "password", jsonString(strongPassword)}, extra...)
		return h.call("POST", "/api/v1/auth/register", ctJSON, object(kv...))
	}
	patchMe := func(body string) func(*testing.T) (*http.Response, []byte) {
		return h.call("PATCH", "/api/v1/users/me", ctJSON, body, "Authorization", "Bearer "+userTok)
	}
	adminPatch := func(id uuid.UUID, token, body string) func(*testing.T) (*http.Response, []byte) {
		return h.call("PATCH", "/api/v1/admin/users/"+id.String(), ctJSON, body, "Authorization", "Bearer "+token)
	}
	refused := func(name string, send func(*testing.T) (*http.Response, []byte), field string) attack {
		return attack{name: name, send: send, status: 400, code: "validation-failed", field: field}
	}
	n := uniqueName()
	attacks := []attack{
		refused("register with role admin", register("role", `"admin"`), "role"),
		refused("register with is_active", register("is_active", "true"), "is_active"),
		refused("register with is_verified", register("is_verified", "true"), "is_verified"),
		refused("register with a chosen id", register("id", jsonString(user.User.Id.String())), "id"),
		refused("register with a backdated created_at", register("created_at", `"2000-01-01T00:00:00Z"`), "created_at"),
		refused("register with a hashed_password", register("hashed_password", `"$argon2id$v=19$m=65536,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"`), "hashed_password"),
		refused("register with Role in another letter case", register("Role", `"admin"`), "Role"),
		refused("register with __proto__.role", register("__proto__", `{"role":"admin"}`), "__proto__"),
		refused("register with an object for full_name", register("full_name", `{"role":"admin"}`), "full_name"),
		refused("PATCH me with role", patchMe(`{"role":"admin"}`), "role"),
		refused("PATCH me with role beside a valid full_name", patchMe(`{"full_name":"Legit Name","role":"admin"}`), "role"),
		refused("PATCH me with email", patchMe(`{"email":"new-address@example.com"}`), "email"),
		refused("PATCH me with is_active", patchMe(`{"is_active":true}`), "is_active"),
		refused("PATCH me with another user's id", patchMe(object("id", jsonString(moderator.User.Id.String()))), "id"),
		refused("PATCH me with password", patchMe(`{"password":"a brand new passphrase"}`), "password"),
		refused("admin PATCH with password", adminPatch(user.User.Id, adminPair.AccessToken, `{"password":"chosen by the admin"}`), "password"),
		refused("admin PATCH with hashed_password beside a role", adminPatch(user.User.Id, adminPair.AccessToken, `{"role":"moderator","hashed_password":"x"}`), "hashed_password"),
		refused("admin PATCH with email", adminPatch(user.User.Id, adminPair.AccessToken, `{"email":"moved@example.com"}`), "email"),
		refused("admin create with a chosen id", h.call("POST", "/api/v1/admin/users", ctJSON,
			object("email", jsonString(n+"@example.com"), "username", jsonString(n), "password", jsonString(strongPassword), "role", `"user"`, "id", jsonString(user.User.Id.String())),
			"Authorization", "Bearer "+adminPair.AccessToken), "id"),
		{
			name: "user promotes itself through the admin API", send: adminPatch(user.User.Id, userTok, `{"role":"admin"}`),
			status: 403, code: "insufficient-permissions", check: challenge(`error="insufficient_scope"`),
		},
		{
			name: "moderator promotes itself through the admin API", send: adminPatch(moderator.User.Id, modPair.AccessToken, `{"role":"admin"}`),
			status: 403, code: "insufficient-permissions", check: challenge(`error="insufficient_scope"`),
		},
	}
	whole := snapshot(t, in)
	t.Logf("%d mass-assignment attacks", h.run(t, attacks))
	if snapshot(t, in) != whole {
		t.Error("the database changed over the whole group")
	}
	if u := h.getUser(t, "/api/v1/users/me", userTok); u.Role != api.RoleUser || u.IsVerified || !u.IsActive {
		t.Errorf("the user after the attacks: %+v", u)
	}
}

// ---------------------------------------------------------------------------------------------
// Injection

// payload is a hostile string; literal is its JSON text when json.Marshal cannot produce it.
type payload struct {
	name      string
	value     string
	literal   string
	nul       bool
	surrogate bool
}

func (p payload) json() string {
	if p.literal != "" {
		return p.literal
	}
	return jsonString(p.value)
}

var payloads = []payload{
	{name: "sql", value: "' OR 1=1 --"},
	{name: "nul", value: "\x00", nul: true},
	{name: "script", value: "<script>alert(1)</script>"},
	{name: "jndi", value: "${jndi:ldap://x}"},
	{name: "percent-encoded nul", value: "%00"},
	{name: "crlf header", value: "\r\nX-Injected: 1"},
	{name: "1000 é", value: strings.Repeat("é", 1000)},
	{name: "rtl override", value: "invoice\u202efdp.exe"},
	{name: "rtl isolate", value: "Ada \u2067Lovelace\u2069"},
	{name: "rtl name and marks", value: "\u05d3\u05d5\u05d3 \u200fLevi\u200e \u0645\u062d\u0645\u062f\u200c"},
	{name: "lone surrogate", literal: `"\ud800"`, surrogate: true},
}

// fieldKind is how the spec and the domain treat a string field.
type fieldKind int

const (
	identifier   fieldKind = iota // email or username: a strict pattern
	newPassword                   // 8 to 128 characters (1 to 512 by the spec), anything else goes
	secret                        // a password to check: 1 to 1024 characters
	freeText                      // full_name: at most 200 characters (800 by the spec), no control characters, no bidi embeddings, overrides or isolates
	refreshToken                  // 1 to 256 characters, then the handler decides
)

// refusal is the answer a payload gets in a field of kind k before any handler acts on it, or
// refused=false when it is valid there and the handler decides.
func refusal(k fieldKind, p payload) (status int, code string, refused bool) {
	switch {
	case p.nul:
		return 400, "nul-character", true
	case p.surrogate:
		return 400, "invalid-utf8", true
	}
	n := utf8.RuneCountInString(p.value)
	control := strings.IndexFunc(p.value, unicode.IsControl) >= 0
	bidi := strings.ContainsFunc(p.value, func(r rune) bool { return '\u202a' <= r && r <= '\u202e' || '\u2066' <= r && r <= '\u2069' })
	// The spec's limits let through what the service counts itself (a password's characters
	// after NFKC, a name's after NFC), so it can name the rule; no payload here changes length
	// under either form.
	switch {
	case k == identifier,
		k == newPassword && (n < 1 || n > 512),
		k == secret && n > 1024,
		k == freeText && n > 800,
		k == refreshToken && n > 256:
		return 400, "validation-failed", true
	case k == newPassword && n < 8:
		return 400, "password-too-short", true
	case k == newPassword && n > 128:
		return 400, "password-too-long", true
	case k == freeText && (control || bidi || n > 200):
		return 400, "invalid-request", true
	}
	return 0, "", false
}

// target is one string field of one operation; build makes the attack for a payload, with the
// handler's answer for a payload that passes validation.
type target struct {
	name, field string
	kind        fieldKind
	build       func(p payload) attack
}

// Injection characters in every string field of register, login, refresh, PATCH /users/me,
// change password and admin create. Proves: nothing reaches a 5xx or a response header; NUL
// and lone surrogates are refused before the database; identifiers refuse every payload by
// pattern; SQL and markup metacharacters in free text and passwords are stored and read back
// verbatim (so queries are parameterised), and refused values change nothing.
func TestHostileInjection(t *testing.T) {
	t.Parallel()
	in := start(t)
	h := newHostile(t, in)
	victim := in.register(t)
	_, adminPair := in.createWithRole(t, "admin")
	adminTok := adminPair.AccessToken
	patcher := in.register(t)
	patcherTok := in.login(t, patcher).AccessToken
	checker := in.register(t)
	checkerTok := in.login(t, checker).AccessToken

	post := func(path, body, token string) func(*testing.T) (*http.Response, []byte) {
		var hdrs []string
		if token != "" {
			hdrs = []string{"Authorization", "Bearer " + token}
		}
		return h.call("POST", path, ctJSON, body, hdrs...)
	}
	// registerBody is a valid registration with field replaced by lit.
	registerBody := func(field, lit string) (body, email string) {
		n := uniqueName()
		email = n + "@example.com"
		kv := []string{"email", jsonString(email), "username", jsonString(n), "password", jsonString(strongPassword)}
		for i := 0; i < len(kv); i += 2 {
			if kv[i] == field {
				kv[i+1] = lit
			}
		}
		if field == "full_name" {
			kv = append(kv, "full_name", lit)
		}
		return object(kv...), email
	}
	adminBody := func(field, lit string) string {
		body, _ := registerBody(field, lit)
		return strings.TrimSuffix(body, "}") + `,"role":"user"}`
	}
	patternOnly := func(path, token string, body func(lit string) string) func(p payload) attack {
		return func(p payload) attack {
			return attack{send: post(path, body(p.json()), token)}
		}
	}

	targets := []target{
		{"register", "email", identifier, patternOnly("/api/v1/auth/register", "", func(l string) string { b, _ := registerBody("email", l); return b })},
		{"register", "username", identifier, patternOnly("/api/v1/auth/register", "", func(l string) string { b, _ := registerBody("username", l); return b })},
		{"register", "password", newPassword, func(p payload) attack {
			body, email := registerBody("password", p.json())
			return attack{
				send: post("/api/v1/auth/register", body, ""), status: 201,
				change: newUserRow, // expected change: the account is created
				check: func(t *testing.T, _ *http.Response, _ []byte) {
					h.loginWith(t, email, p.json()) // the password works exactly as sent
				},
			}
		}},
		{"register", "full_name", freeText, func(p payload) attack {
			body, email := registerBody("full_name", p.json())
			return attack{
				send: post("/api/v1/auth/register", body, ""), status: 201,
				change: newUserRow, // expected change: the account is created
				check: func(t *testing.T, _ *http.Response, body []byte) {
					var u api.User
					if err := json.Unmarshal(body, &u); err != nil {
						t.Fatal(err)
					}
					tok := h.loginWith(t, email, jsonString(strongPassword)).AccessToken
					for _, got := range []string{fullName(t, u), fullName(t, h.getUser(t, "/api/v1/users/me", tok))} {
						if got != p.value {
							t.Errorf("full_name = %q, want %q verbatim", got, p.value)
						}
					}
				},
			}
		}},
		{"login", "email", identifier, patternOnly("/api/v1/auth/login", "", func(l string) string {
			return object("email", l, "password", jsonString(strongPassword))
		})},
		{"login", "username", identifier, patternOnly("/api/v1/auth/login", "", func(l string) string {
			return object("username", l, "password", jsonString(strongPassword))
		})},
		{"login", "password", secret, func(p payload) attack {
			return attack{send: post("/api/v1/auth/login", object("email", jsonString(string(victim.User.Email)), "password", p.json()), ""), status: 401, code: "invalid-credentials"}
		}},
		{"refresh", "refresh_token", refreshToken, func(p payload) attack {
			return attack{send: post("/api/v1/auth/refresh", object("refresh_token", p.json()), ""), status: 401, code: "invalid-refresh-token"}
		}},
		{"PATCH me", "username", identifier, func(p payload) attack {
			return attack{send: h.call("PATCH", "/api/v1/users/me", ctJSON, object("username", p.json()), "Authorization", "Bearer "+patcherTok)}
		}},
		{"PATCH me", "full_name", freeText, func(p payload) attack {
			return attack{
				send:   h.call("PATCH", "/api/v1/users/me", ctJSON, object("full_name", p.json()), "Authorization", "Bearer "+patcherTok),
				status: 200,
				// Expected change: the name, and the time of the change.
				change: func(t *testing.T, _ []byte, before, after dbState) {
					wantChanges(t, before, after, rowChange{key: "users/" + patcher.User.Id.String(), columns: []string{"full_name", "updated_at"}})
				},
				check: func(t *testing.T, _ *http.Response, _ []byte) {
					if got := fullName(t, h.getUser(t, "/api/v1/users/me", patcherTok)); got != p.value {
						t.Errorf("full_name = %q, want %q verbatim", got, p.value)
					}
				},
			}
		}},
		{"change password", "current_password", secret, func(p payload) attack {
			return attack{
				send:   post("/api/v1/users/me/password", object("current_password", p.json(), "new_password", jsonString("an entirely new passphrase")), checkerTok),
				status: 403, code: "current-password-incorrect", field: "current_password",
			}
		}},
		{"change password", "new_password", newPassword, func(p payload) attack {
			var acct account
			var tok string
			return attack{
				setup: func(t *testing.T) { acct = in.register(t); tok = in.login(t, acct).AccessToken },
				send: func(t *testing.T) (*http.Response, []byte) {
					return post("/api/v1/users/me/password", object("current_password", jsonString(acct.Password), "new_password", p.json()), tok)(t)
				},
				status: 204,
				// Expected change: the password hash, and the time of the change.
				change: func(t *testing.T, _ []byte, before, after dbState) {
					wantChanges(t, before, after, rowChange{key: "users/" + acct.User.Id.String(), columns: []string{"hashed_password", "updated_at"}})
				},
				check: func(t *testing.T, _ *http.Response, _ []byte) {
					h.loginWith(t, string(acct.User.Email), p.json())
				},
			}
		}},
		{"admin create", "email", identifier, patternOnly("/api/v1/admin/users", adminTok, func(l string) string { return adminBody("email", l) })},
		{"admin create", "username", identifier, patternOnly("/api/v1/admin/users", adminTok, func(l string) string { return adminBody("username", l) })},
		{"admin create", "full_name", freeText, func(p payload) attack {
			return attack{
				send: post("/api/v1/admin/users", adminBody("full_name", p.json()), adminTok), status: 201,
				change: newUserRow, // expected change: the account is created
				check: func(t *testing.T, _ *http.Response, body []byte) {
					var u api.User
					if err := json.Unmarshal(body, &u); err != nil {
						t.Fatal(err)
					}
					if got := fullName(t, h.getUser(t, "/api/v1/admin/users/"+u.Id.String(), adminTok)); got != p.value {
						t.Errorf("full_name = %q, want %q verbatim", got, p.value)
					}
				},
			}
		}},
	}

	var attacks []attack
	for _, tg := range targets {
		for _, p := range payloads {
			a := tg.build(p)
			a.name = tg.name + " " + tg.field + "/" + p.name
			if status, code, refused := refusal(tg.kind, p); refused {
				a.status, a.code, a.field, a.change, a.check = status, code, tg.field, nil, nil
			} else if a.status == 0 {
				t.Fatalf("%s: a payload the pattern should refuse reaches the handler", a.name)
			}
			attacks = append(attacks, a)
		}
	}
	t.Logf("%d injection attacks", h.run(t, attacks))
}

// ---------------------------------------------------------------------------------------------
// Malformed bodies

// Malformed bodies. Proves: only a single, well-formed, UTF-8, application/json object of at
// most 64 KiB is read, whatever the framing (Content-Length or chunked); everything else gets a
// 4xx problem with its own code and nothing is written.
func TestHostileMalformedBodies(t *testing.T) {
	t.Parallel()
	in := start(t)
	h := newHostile(t, in)
	tok := in.login(t, in.register(t)).AccessToken
	valid := func() string {
		n := uniqueName()
		return object("email", jsonString(n+"@example.com"), "username", jsonString(n), "password", jsonString(strongPassword))
	}
	register := func(ctype, body string) func(*testing.T) (*http.Response, []byte) {
		return h.call("POST", "/api/v1/auth/register", ctype, body)
	}
	big := func() string {
		return strings.TrimSuffix(valid(), "}") + `,"full_name":"` + strings.Repeat("y", 70<<10) + `"}`
	}
	var manyKeys strings.Builder
	manyKeys.WriteString(strings.TrimSuffix(valid(), "}"))
	for i := range 300 {
		fmt.Fprintf(&manyKeys, `,"k%d":%d`, i, i)
	}
	manyKeys.WriteString("}")
	bad := func(name string, send func(*testing.T) (*http.Response, []byte), status int, code, field string) attack {
		return attack{name: name, send: send, status: status, code: code, field: field}
	}

	attacks := []attack{
		bad("invalid JSON", register(ctJSON, `{"email":`), 400, "malformed-json", "body"),
		bad("trailing garbage after the object", register(ctJSON, valid()+` garbage`), 400, "malformed-json", "body"),
		bad("two objects", register(ctJSON, valid()+valid()), 400, "malformed-json", "body"),
		bad("JSON array instead of an object", register(ctJSON, "["+valid()+"]"), 400, "validation-failed", "body"),
		bad("JSON string instead of an object", register(ctJSON, `"hello"`), 400, "validation-failed", "body"),
		bad("JSON null instead of an object", register(ctJSON, `null`), 400, "validation-failed", "body"),
		bad("number too large for any type", register(ctJSON, strings.TrimSuffix(valid(), "}")+`,"full_name":1e999999}`), 400, "validation-failed", "full_name"),
		bad("body of 70 KiB", register(ctJSON, big()), 413, "body-too-large", ""),
		bad("body of 70 KiB, chunked", func(t *testing.T) (*http.Response, []byte) {
			// A reader of unknown length: the body goes out chunked, without Content-Length.
			return h.send(t, "POST", "/api/v1/auth/register", ctJSON, io.MultiReader(strings.NewReader(big())))
		}, 413, "body-too-large", ""),
		bad("objects nested 100 deep", register(ctJSON, strings.Repeat(`{"a":`, 100)+"1"+strings.Repeat("}", 100)), 400, "json-too-deep", ""),
		bad("duplicate keys", register(ctJSON, strings.TrimSuffix(valid(), "}")+`,"email":"other@example.com"}`), 400, "duplicate-key", "email"),
		bad("duplicate key spelled with an escape", register(ctJSON, strings.TrimSuffix(valid(), "}")+`,"em\u0061il":"other@example.com"}`), 400, "duplicate-key", "email"),
		bad("invalid UTF-8 bytes", register(ctJSON, strings.TrimSuffix(valid(), "}")+`,"full_name":"Ada `+"\xff\xfe"+`"}`), 400, "invalid-utf8", "body"),
		bad("overlong UTF-8 encoding of /", register(ctJSON, strings.TrimSuffix(valid(), "}")+`,"full_name":"`+"\xc0\xaf"+`"}`), 400, "invalid-utf8", "body"),
		bad("UTF-8 byte order mark", register(ctJSON, "\xef\xbb\xbf"+valid()), 400, "malformed-json", "body"),
		bad("300 unknown keys", register(ctJSON, manyKeys.String()), 400, "validation-failed", "k0"),
		bad("Content-Type text/plain", register("text/plain", valid()), 415, "unsupported-media-type", ""),
		bad("Content-Type application/json; charset=latin1", register("application/json; charset=latin1", valid()), 415, "unsupported-media-type", ""),
		bad("no Content-Type with a body", register("", valid()), 415, "unsupported-media-type", ""),
		bad("merge-patch Content-Type on PATCH me", h.call("PATCH", "/api/v1/users/me", "application/merge-patch+json", `{"full_name":"x"}`, "Authorization", "Bearer "+tok), 415, "unsupported-media-type", ""),
		bad("empty JSON body on login", h.call("POST", "/api/v1/auth/login", ctJSON, ""), 400, "malformed-json", "body"),
		bad("whitespace-only JSON body on login", h.call("POST", "/api/v1/auth/login", ctJSON, " \n\t "), 400, "malformed-json", "body"),
	}
	whole := snapshot(t, in)
	t.Logf("%d malformed-body attacks", h.run(t, attacks))
	if snapshot(t, in) != whole {
		t.Error("the database changed over the whole group")
	}
}

// ---------------------------------------------------------------------------------------------
// Paths, methods and transport

// Paths, methods and the transport. Proves: traversal in any spelling reaches no route; TRACE
// echoes nothing; method-override headers are ignored; oversized request lines and headers are
// refused by the production server settings (431), never with a 5xx; a hostile X-Request-ID is
// not reflected; no CORS grant goes to an unlisted origin; and forged forwarding headers do not
// escape the per-IP limit.
func TestHostilePathsAndMethods(t *testing.T) {
	t.Parallel()
	in := start(t, func(c *config.Config) { c.Limits.RefreshIP = "2/1m" })
	h := newHostile(t, in)
	victim := in.register(t)
	tok := in.login(t, victim).AccessToken
	_, adminPair := in.createWithRole(t, "admin")

	// The same handler under the production http.Server settings (header limits, timeouts).
	prod := httptest.NewUnstartedServer(in.app.Handler)
	prod.Config = httpserver.NewHTTPServer(in.cfg.HTTP, in.app.Handler, testenv.Logger(t))
	prod.Start()
	t.Cleanup(prod.Close)
	toProd := func(path string, headers ...string) func(*testing.T) (*http.Response, []byte) {
		return func(t *testing.T) (*http.Response, []byte) {
			req, err := http.NewRequest("GET", prod.URL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i+1 < len(headers); i += 2 {
				req.Header.Add(headers[i], headers[i+1])
			}
			return do(t, http.DefaultClient, req) // net/http answers itself: not a problem document
		}
	}
	const secretProbe = "s3cr3t-probe-value"
	notFound := func(name, path string) attack {
		return attack{name: name, send: h.call("GET", path, "", "", "Authorization", "Bearer "+tok), status: 404, code: "not-found"}
	}
	noEcho := func(t *testing.T, _ *http.Response, body []byte) {
		if strings.Contains(string(body), secretProbe) || strings.Contains(string(body), tok) {
			t.Errorf("the answer echoes the request's headers: %s", body)
		}
	}
	noCORS := func(t *testing.T, resp *http.Response, _ []byte) {
		for _, name := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Methods"} {
			if v := resp.Header.Get(name); v != "" {
				t.Errorf("%s: %s granted to an unlisted origin", name, v)
			}
		}
	}
	randomRefresh := func() string {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		return object("refresh_token", jsonString("prt_"+base64.RawURLEncoding.EncodeToString(b)))
	}

	attacks := []attack{
		notFound("path traversal", "/api/v1/../../etc/passwd"),
		notFound("percent-encoded traversal", "/api/v1/%2e%2e/%2e%2e/etc/passwd"),
		notFound("encoded slashes towards the admin API", "/api/v1/users/me/..%2f..%2fadmin%2fusers"),
		notFound("double-encoded traversal", "/api/v1/%252e%252e/%252e%252e/etc/passwd"),
		notFound("backslash traversal", `/api/v1/..\..\etc\passwd`),
		notFound("encoded NUL in the path", "/api/v1/users/me%00"),
		notFound("doubled leading slash", "//api/v1/users/me"),
		notFound("upper-case path", "/API/V1/USERS/ME"),
		notFound("path of 20 KB", "/api/v1/"+strings.Repeat("a", 20<<10)),
		{
			name: "TRACE on an API route", send: h.call("TRACE", "/api/v1/users/me", "", "", "Authorization", "Bearer "+tok, "X-Probe", secretProbe),
			status: 405, code: "method-not-allowed", check: noEcho,
		},
		{
			name: "TRACE on an unknown path", send: h.call("TRACE", "/", "", "", "X-Probe", secretProbe),
			status: 404, code: "not-found", check: noEcho,
		},
		{
			name: "method-override headers turning GET into DELETE", status: 200,
			send: h.call("GET", "/api/v1/admin/users/"+victim.User.Id.String(), "", "", "Authorization", "Bearer "+adminPair.AccessToken,
				"X-HTTP-Method-Override", "DELETE", "X-HTTP-Method", "DELETE", "X-Method-Override", "DELETE"),
		},
		{
			// The spec declares no HEAD: refused before authentication, and without a body.
			name: "HEAD on an API route", send: h.call("HEAD", "/api/v1/users/me", "", "", "X-Probe", secretProbe), status: 405,
			check: func(t *testing.T, _ *http.Response, body []byte) {
				if len(body) != 0 {
					t.Errorf("HEAD answered with a body: %s", body)
				}
			},
		},
		{
			name: "query string of 20 KB on the production server", send: toProd("/api/v1/users/me?q=" + strings.Repeat("a", 20<<10)),
			status: 431,
		},
		{
			name: "header of 20 KB on the production server", send: toProd("/api/v1/users/me", "X-Padding", strings.Repeat("a", 20<<10)),
			status: 431,
		},
		{
			name: "hostile X-Request-ID is not reflected", status: 401, code: "missing-token",
			send: h.call("GET", "/api/v1/users/me", "", "", "X-Request-ID", `<script>alert(1)</script>`),
			check: func(t *testing.T, resp *http.Response, body []byte) {
				if id := resp.Header.Get("X-Request-ID"); strings.Contains(id, "<") || uuid.Validate(id) != nil {
					t.Errorf("X-Request-ID = %q, want a fresh uuid", id)
				}
				if strings.Contains(string(body), "<script>") {
					t.Errorf("the problem reflects the request id: %s", body)
				}
			},
		},
		{
			name: "request from an unlisted origin", status: 200, check: noCORS,
			send: h.call("GET", "/api/v1/users/me", "", "", "Authorization", "Bearer "+tok, "Origin", "https://evil.example"),
		},
		{
			// Echo answers OPTIONS itself (204 with Allow); what matters is that nothing is granted.
			name: "preflight from an unlisted origin", status: 204, check: noCORS,
			send: h.call("OPTIONS", "/api/v1/users/me", "", "", "Origin", "https://evil.example", "Access-Control-Request-Method", "PATCH", "Access-Control-Request-Headers", "authorization"),
		},
		{
			name: "forged forwarding headers do not escape the per-IP limit", status: 429, code: "rate-limited",
			setup: func(t *testing.T) {
				for range 2 { // spend the limit of 2 refreshes a minute
					resp, body := h.send(t, "POST", "/api/v1/auth/refresh", ctJSON, strings.NewReader(randomRefresh()))
					wantProblem(t, rawStatus{resp}, body, http.StatusUnauthorized, "invalid-refresh-token")
				}
			},
			send: h.call("POST", "/api/v1/auth/refresh", ctJSON, randomRefresh(),
				"X-Forwarded-For", "198.51.100.7", "X-Real-IP", "198.51.100.8", "Forwarded", "for=198.51.100.9", "True-Client-IP", "198.51.100.10"),
			check: func(t *testing.T, resp *http.Response, _ []byte) {
				if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n <= 0 {
					t.Errorf("Retry-After = %q", resp.Header.Get("Retry-After"))
				}
			},
		},
	}
	whole := snapshot(t, in)
	t.Logf("%d path, method and transport attacks", h.run(t, attacks))
	if snapshot(t, in) != whole {
		t.Error("the database changed over the whole group")
	}
}

// A control character or invalid UTF-8 in a query parameter, or inside a cursor, is a 400
// naming it: PostgreSQL refuses NUL in text, and no filter has a use for either.
func TestControlCharactersInQueryAreRefused(t *testing.T) {
	in := start(t)
	_, adminPair := in.createWithRole(t, "admin")
	auth := "Bearer " + adminPair.AccessToken
	forged := base64.RawURLEncoding.EncodeToString([]byte(`{"s":"email","v":"\u0000","i":"` + uuid.NewString() + `"}`))
	for _, c := range []struct{ path, code, field string }{
		{"/api/v1/admin/users?q=%00", "validation-failed", "q"},
		{"/api/v1/admin/users?q=a%00b", "validation-failed", "q"},
		{"/api/v1/admin/users?q=%ff", "validation-failed", "q"},
		{"/api/v1/admin/users?q=tab%09", "validation-failed", "q"},
		{"/api/v1/admin/users?sort=email&cursor=" + forged, "invalid-request", "cursor"},
		{"/api/v1/admin/audit-events?target_id=a%00b", "validation-failed", "target_id"},
	} {
		resp, body := in.raw(t, "GET", c.path, "", nil, "Authorization", auth)
		p := wantProblem(t, rawStatus{resp}, body, http.StatusBadRequest, c.code)
		wantField(t, p, c.field)
	}
}

// A path parameter that is not what the spec says is a 400 validation-failed naming it, on the
// operations that declare their parameters on the path (the admin ones) as on the others: not an
// invalid-request about "the body" that quotes the generated binder and its Go types.
func TestMalformedPathParametersNameThemselves(t *testing.T) {
	in := start(t)
	_, adminPair := in.createWithRole(t, "admin")
	auth := "Bearer " + adminPair.AccessToken
	id := uuid.Must(uuid.NewV7()).String()
	for _, c := range []struct{ method, path, field string }{
		{"GET", "/api/v1/admin/users/not-a-uuid", "user_id"},
		{"DELETE", "/api/v1/admin/users/not-a-uuid", "user_id"},
		{"GET", "/api/v1/admin/users/%2e%2e/sessions", "user_id"},
		{"DELETE", "/api/v1/admin/users/" + id + "/sessions/not-a-uuid", "session_id"},
		{"DELETE", "/api/v1/users/me/sessions/not-a-uuid", "session_id"},
	} {
		resp, body := in.raw(t, c.method, c.path, "", nil, "Authorization", auth)
		p := wantProblem(t, rawStatus{resp}, body, http.StatusBadRequest, "validation-failed")
		wantField(t, p, c.field)
		if strings.Contains(string(body), "uuid.UUID") || strings.Contains(string(body), "unmarshaling") {
			t.Errorf("%s %s: the problem quotes the binder: %s", c.method, c.path, body)
		}
	}
}

// A query parameter that does not parse, or comes twice, is a 400 naming it (not "the body"),
// never the first of two values taken silently. So is a pair Go's URL parser would drop (a bare
// ';', a broken %-escape: the filter it carried never reached validation, and the answer was a
// wider list than asked for, with 200), and a value the spec's validator accepts but the
// generated binder cannot parse (a leap second: RFC 3339 allows ":60", time.Parse does not),
// whose problem quoted the binder and named "body" (both found in review).
func TestMalformedOrRepeatedQueryParametersNameThemselves(t *testing.T) {
	in := start(t)
	_, adminPair := in.createWithRole(t, "admin")
	auth := "Bearer " + adminPair.AccessToken
	for _, c := range []struct{ path, field string }{
		{"/api/v1/admin/users?limit=1.5", "limit"},
		{"/api/v1/admin/users?limit=1e2", "limit"},
		{"/api/v1/admin/users?limit=1&limit=999", "limit"},
		{"/api/v1/admin/users?sort=email&sort=created_at", "sort"},
		{"/api/v1/admin/users?created_after=2020-01-01T00:00:00Z&created_after=x", "created_after"},
		{"/api/v1/admin/audit-events?limit=2&limit=3", "limit"},
		{"/api/v1/admin/users?role=moderator;x", "role"},
		{"/api/v1/admin/users?q=zzzz%zz", "q"},
		{"/api/v1/admin/users?limit=1;", "limit"},
		{"/api/v1/admin/users?sort=email&q%zz=x", "q%zz"},
		{"/api/v1/admin/audit-events?actor_id=" + uuid.NewString() + ";", "actor_id"},
		{"/api/v1/admin/audit-events?action=no.such.action%", "action"},
		{"/api/v1/admin/audit-events?limit=5&action=a;b", "action"},
		{"/api/v1/admin/users?created_after=2016-12-31T23:59:60Z", "created_after"},
		{"/api/v1/admin/users?created_before=2016-12-31T23:59:60Z", "created_before"},
		{"/api/v1/admin/audit-events?occurred_after=2016-12-31T23:59:60Z", "occurred_after"},
		{"/api/v1/admin/audit-events?occurred_before=2016-12-31T23:59:60Z", "occurred_before"},
	} {
		resp, body := in.raw(t, "GET", c.path, "", nil, "Authorization", auth)
		if strings.Contains(string(body), "2006-01-02") || strings.Contains(string(body), "Invalid format for parameter") {
			t.Errorf("%s: the problem quotes the generated binder: %s", c.path, body)
		}
		p := wantProblem(t, rawStatus{resp}, body, http.StatusBadRequest, "validation-failed")
		wantField(t, p, c.field)
	}
	// A parameter the operation does not take is ignored, however it looks.
	resp, body := in.raw(t, "GET", "/api/v1/admin/users?utm=%ff&utm=%00", "", nil, "Authorization", auth)
	wantStatus(t, rawStatus{resp}, body, http.StatusOK)
	// Escaped, ';' and '%' are values like any other.
	resp, body = in.raw(t, "GET", "/api/v1/admin/users?q=a%3Bb%25", "", nil, "Authorization", auth)
	wantStatus(t, rawStatus{resp}, body, http.StatusOK)
}
