package httpserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	api "github.com/portcullis/portcullis/gen/api"
)

// Every class of bad input gets its own clear 4xx problem, and nothing is written.
func TestRegisterRejectsBadInput(t *testing.T) {
	in := start(t)
	long := strings.Repeat("x", 129)
	tests := []struct {
		name   string
		body   string
		status int
		code   string
		field  string
	}{
		{"malformed json", `{"email":`, 400, "malformed-json", "body"},
		{"not an object", `[1,2]`, 400, "validation-failed", "body"},
		{"unknown field", `{"email":"a@example.com","username":"abc","password":"a long passphrase","role":"admin"}`, 400, "validation-failed", "role"},
		{"missing field", `{"email":"a@example.com","password":"a long passphrase"}`, 400, "validation-failed", "username"},
		{"wrong type", `{"email":"a@example.com","username":42,"password":"a long passphrase"}`, 400, "validation-failed", "username"},
		{"bad email", `{"email":"not-an-email","username":"abc","password":"a long passphrase"}`, 400, "validation-failed", "email"},
		{"email with display name", `{"email":"Ada <a@example.com>","username":"abc","password":"a long passphrase"}`, 400, "validation-failed", "email"},
		{"email with a space", `{"email":"a b@example.com","username":"abc","password":"a long passphrase"}`, 400, "validation-failed", "email"},
		{"email without a dotted domain", `{"email":"ada@localhost","username":"abc","password":"a long passphrase"}`, 400, "invalid-request", "email"},
		{"username pattern", `{"email":"a@example.com","username":"a b","password":"a long passphrase"}`, 400, "validation-failed", "username"},
		{"password too short", `{"email":"a@example.com","username":"abc","password":"short"}`, 400, "password-too-short", "password"},
		{"password too long", `{"email":"a@example.com","username":"abc","password":"` + long + `"}`, 400, "password-too-long", "password"},
		{"common password", `{"email":"a@example.com","username":"abc","password":"password123"}`, 422, "password-too-common", "password"},
		{"common password any case", `{"email":"a@example.com","username":"abc","password":"PassWord123"}`, 422, "password-too-common", "password"},
		{"NUL in full name", `{"email":"a@example.com","username":"abc","password":"a long passphrase","full_name":"Ada\u0000"}`, 400, "nul-character", "full_name"},
		{"bell in full name", `{"email":"a@example.com","username":"abc","password":"a long passphrase","full_name":"Ada\u0007"}`, 400, "invalid-request", "full_name"},
		{"duplicate key", `{"email":"a@example.com","email":"b@example.com","username":"abc","password":"a long passphrase"}`, 400, "duplicate-key", "email"},
		{"too deep", `{"email":"a@example.com","username":"abc","password":"a long passphrase","full_name":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, 400, "json-too-deep", "full_name.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0"},
		{"null for required", `{"email":null,"username":"abc","password":"a long passphrase"}`, 400, "validation-failed", "email"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := in.client.RegisterUserWithBodyWithResponse(context.Background(), "application/json", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			p := wantProblem(t, r, r.Body, tt.status, tt.code)
			wantField(t, p, tt.field)
		})
	}
	// None of it created an account.
	var n int
	if err := in.app.Pool.QueryRow(context.Background(), "SELECT count(*) FROM users").Scan(&n); err != nil || n != 0 {
		t.Fatalf("users after hostile registrations: %d (%v), want 0", n, err)
	}
}

func TestDuplicateEmailOrUsernameInAnyCase(t *testing.T) {
	in := start(t)
	a := in.register(t)
	ctx := context.Background()
	tests := []struct {
		name, email, username, code, field string
	}{
		{"email upper", strings.ToUpper(string(a.User.Email)), "different", "email-taken", "email"},
		{"username upper", "fresh@example.com", strings.ToUpper(a.User.Username), "username-taken", "username"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := in.client.RegisterUserWithResponse(ctx, api.RegisterUserJSONRequestBody{Email: api.Email(tt.email), Username: tt.username, Password: "a long and unusual passphrase"})
			if err != nil {
				t.Fatal(err)
			}
			p := wantProblem(t, r, r.Body, http.StatusConflict, tt.code)
			wantField(t, p, tt.field)
		})
	}
}

func TestTransportLevelProblems(t *testing.T) {
	in := start(t)
	big := `{"email":"a@example.com","username":"abc","password":"` + strings.Repeat("y", 70<<10) + `"}`
	tests := []struct {
		name, method, path, ctype, body string
		status                          int
		code                            string
	}{
		{"oversized body", "POST", "/api/v1/auth/register", "application/json", big, 413, "body-too-large"},
		{"wrong content type", "POST", "/api/v1/auth/register", "text/plain", `{"email":"a@example.com"}`, 415, "unsupported-media-type"},
		{"form content type", "POST", "/api/v1/auth/login", "application/x-www-form-urlencoded", `email=a`, 415, "unsupported-media-type"},
		{"missing body", "POST", "/api/v1/auth/login", "", "", 400, "validation-failed"},
		{"unknown route", "GET", "/api/v1/nope", "", "", 404, "not-found"},
		{"unknown root route", "GET", "/wp-admin", "", "", 404, "not-found"},
		{"wrong method", "DELETE", "/api/v1/auth/login", "", "", 405, "method-not-allowed"},
		{"secured route without a token is refused before validation", "DELETE", "/api/v1/users/me/sessions/not-a-uuid", "", "", 401, "missing-token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := in.raw(t, tt.method, tt.path, tt.ctype, strings.NewReader(tt.body))
			wantProblem(t, rawStatus{resp}, body, tt.status, tt.code)
			if strings.Contains(string(body), "goroutine") || strings.Contains(string(body), ".go:") {
				t.Fatalf("stack trace in a response: %s", body)
			}
		})
	}
}

// A media type's name is case-insensitive (RFC 9110, 8.3.1): a JSON body declared as
// "Application/JSON" is JSON, all the way to the handler, and not a 415 from the binder after
// every check before it took it for JSON.
func TestJSONMediaTypeInAnyCase(t *testing.T) {
	in := start(t)
	n := uniqueName()
	body := object("email", jsonString(n+"@example.com"), "username", jsonString(n), "password", jsonString(strongPassword))
	resp, b := in.raw(t, "POST", "/api/v1/auth/register", "Application/JSON; Charset=UTF-8", strings.NewReader(body))
	wantStatus(t, rawStatus{resp}, b, http.StatusCreated)
	resp, b = in.raw(t, "POST", "/api/v1/auth/login", "APPLICATION/JSON", strings.NewReader(object("email", jsonString(n+"@example.com"), "password", jsonString(strongPassword))))
	wantStatus(t, rawStatus{resp}, b, http.StatusOK)
}

func TestEverySecuredOperationRefusesMissingAndBadTokens(t *testing.T) {
	in := start(t)
	spec, err := api.GetSwagger()
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Security != nil && len(*op.Security) == 0 {
				continue // declared public
			}
			concrete := strings.ReplaceAll(path, "{session_id}", "0190a5b8-0000-7000-8000-000000000000")
			for _, tok := range []struct{ header, code string }{
				{"", "missing-token"},
				{"Bearer not.a.jwt", "invalid-token"},
				{"Basic YTpi", "missing-token"},
			} {
				var hdrs []string
				if tok.header != "" {
					hdrs = []string{"Authorization", tok.header}
				}
				ctype, body := "", ""
				if op.RequestBody != nil {
					ctype, body = "application/json", `{"full_name":"x","current_password":"x","new_password":"long enough password"}`
				}
				resp, b := in.raw(t, method, concrete, ctype, strings.NewReader(body), hdrs...)
				// Authentication comes before validation (TestTransportLevelProblems): exactly 401.
				if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), `"code":"`+tok.code+`"`) {
					t.Fatalf("%s %s with %q: %d %s, want 401 %s", method, path, tok.header, resp.StatusCode, b, tok.code)
				}
				if resp.StatusCode == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Fatalf("%s %s: 401 without a Bearer challenge", method, path)
				}
			}
			checked++
		}
	}
	if checked < 7 {
		t.Fatalf("checked %d secured operations, expected at least 7", checked)
	}
}

// A NUL or control character never reaches PostgreSQL (which would answer with an error): each
// field that is looked up or stored refuses it with 400.
func TestControlCharactersAreRefusedBeforeTheDatabase(t *testing.T) {
	in := start(t)
	a := in.register(t)
	tok := in.login(t, a).AccessToken
	tests := []struct {
		name, method, path, body, field string
		auth                            bool
	}{
		{"login email", "POST", "/api/v1/auth/login", `{"email":"ada\u0000@example.com","password":"whatever it is"}`, "email", false},
		{"login username", "POST", "/api/v1/auth/login", `{"username":"ada\u0000","password":"whatever it is"}`, "username", false},
		{"register email", "POST", "/api/v1/auth/register", `{"email":"a\u0001b@example.com","username":"abc","password":"a long passphrase"}`, "email", false},
		{"refresh token", "POST", "/api/v1/auth/refresh", `{"refresh_token":"prt_\u0000"}`, "refresh_token", false},
		{"patch username", "PATCH", "/api/v1/users/me", `{"username":"a\u0000b"}`, "username", true},
		{"patch full name", "PATCH", "/api/v1/users/me", `{"full_name":"a\u0000b"}`, "full_name", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdrs []string
			if tt.auth {
				hdrs = []string{"Authorization", "Bearer " + tok}
			}
			resp, body := in.raw(t, tt.method, tt.path, "application/json", strings.NewReader(tt.body), hdrs...)
			if resp.StatusCode >= 500 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"field":"`+tt.field+`"`) {
				t.Fatalf("status %d, want 400 naming %s: %s", resp.StatusCode, tt.field, body)
			}
		})
	}
}

// An address spelled with a precomposed letter and the same address spelled with a base letter
// and a combining mark are one address: stored in NFC, the second registration is a conflict,
// and either spelling signs in.
func TestEmailsAreOneAccountWhateverTheirUnicodeForm(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	const pw = "a long and unusual passphrase for élodie"
	composed, decomposed := "\u00e9lodie@example.com", "e\u0301lodie@example.com"
	r, err := in.client.RegisterUserWithResponse(ctx, api.RegisterUserJSONRequestBody{Email: api.Email(decomposed), Username: "elodie", Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusCreated)
	if got := string(r.JSON201.Email); got != composed {
		t.Fatalf("stored email %q, want the NFC form %q", got, composed)
	}
	r, err = in.client.RegisterUserWithResponse(ctx, api.RegisterUserJSONRequestBody{Email: api.Email(composed), Username: "elodie2", Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, r, r.Body, http.StatusConflict, "email-taken")
	for _, e := range []string{composed, decomposed} {
		if l := in.loginWith(t, api.Email(e), pw); l.StatusCode() != http.StatusOK {
			t.Fatalf("login as %q: %d %s", e, l.StatusCode(), l.Body)
		}
	}
}

// A domain is a host name that mail systems look up through IDNA (UTS #46): fullwidth letters,
// capitals and the ASCII (punycode) form of a label name the host the plain spelling names. So
// an address whose domain is another spelling of an account's is that account's: registering it
// is 409 email-taken, and it signs in to that account. A domain IDNA refuses is refused naming
// "email", at registration and at an admin's creation alike, never a 500.
func TestEmailDomainsAreOneAccountWhateverTheirIDNASpelling(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	_, adminPair := in.createWithRole(t, "admin")
	local := uniqueName()
	plain := local + "@example.com"
	r, err := in.client.RegisterUserWithResponse(ctx, api.RegisterUserJSONRequestBody{Email: api.Email(plain), Username: local, Password: strongPassword})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusCreated)
	fullwidth := local + "@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com"
	for _, e := range []string{fullwidth, local + "@EXAMPLE.COM", local + "@\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25\uff0e\uff43\uff4f\uff4d", local + "@example\u3002com"} {
		r, err := in.client.RegisterUserWithResponse(ctx, api.RegisterUserJSONRequestBody{Email: api.Email(e), Username: uniqueName(), Password: strongPassword})
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, r, r.Body, http.StatusConflict, "email-taken")
		if l := in.loginWith(t, api.Email(e), strongPassword); l.StatusCode() != http.StatusOK {
			t.Fatalf("login as %q: %d %s", e, l.StatusCode(), l.Body)
		}
	}

	// An internationalised domain is stored in its Unicode form, lower case; its ASCII form is
	// the same address.
	local = uniqueName()
	r, err = in.client.RegisterUserWithResponse(ctx, api.RegisterUserJSONRequestBody{Email: api.Email(local + "@EX\u00c4MPLE.de"), Username: local, Password: strongPassword})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusCreated)
	if got, want := string(r.JSON201.Email), local+"@ex\u00e4mple.de"; got != want {
		t.Fatalf("stored email %q, want %q", got, want)
	}
	r, err = in.client.RegisterUserWithResponse(ctx, api.RegisterUserJSONRequestBody{Email: api.Email(local + "@xn--exmple-cua.de"), Username: uniqueName(), Password: strongPassword})
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, r, r.Body, http.StatusConflict, "email-taken")
	if l := in.loginWith(t, api.Email(local+"@xn--exmple-cua.de"), strongPassword); l.StatusCode() != http.StatusOK {
		t.Fatalf("login by the ASCII form: %d %s", l.StatusCode(), l.Body)
	}

	auth := []string{"Authorization", "Bearer " + adminPair.AccessToken}
	for _, email := range []string{"ada@exam_ple.com", "ada@ab--cd.com", "ada@xn--a.com", "ada@" + strings.Repeat("a", 64) + ".com"} {
		n := uniqueName()
		for _, c := range []struct {
			op, path, body string
			hdrs           []string
		}{
			{"register", "/api/v1/auth/register", object("email", jsonString(email), "username", jsonString(n), "password", jsonString(strongPassword)), nil},
			{"admin create", "/api/v1/admin/users", object("email", jsonString(email), "username", jsonString(n), "password", jsonString(strongPassword), "role", `"user"`), auth},
		} {
			t.Run(c.op+" "+email, func(t *testing.T) {
				resp, body := in.raw(t, "POST", c.path, ctJSON, strings.NewReader(c.body), c.hdrs...)
				if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUnprocessableEntity {
					t.Fatalf("status %d, want 400 or 422: %s", resp.StatusCode, body)
				}
				var p api.Problem
				if err := json.Unmarshal(body, &p); err != nil {
					t.Fatalf("problem body does not decode: %v: %s", err, body)
				}
				wantField(t, p, "email")
			})
		}
	}
}

// An address whose dots are misplaced (doubled, leading or trailing, in either part) is refused
// naming "email", as every other bad address is: it passed the spec's pattern, and the generated
// type's net/mail parse refused it with a problem that named "body" (found in review).
func TestMisplacedDotInEmailNamesTheEmailField(t *testing.T) {
	in := start(t)
	_, adminPair := in.createWithRole(t, "admin")
	auth := []string{"Authorization", "Bearer " + adminPair.AccessToken}
	for _, email := range []string{"ada..lovelace@example.com", ".ada@example.com", "ada.@example.com", "ada@example.com.", "ada@example..com", "ada@.example.com"} {
		n := uniqueName()
		for _, c := range []struct {
			op, path, body string
			hdrs           []string
		}{
			{"register", "/api/v1/auth/register", object("email", jsonString(email), "username", jsonString(n), "password", jsonString(strongPassword)), nil},
			{"login", "/api/v1/auth/login", object("email", jsonString(email), "password", jsonString(strongPassword)), nil},
			{"admin create", "/api/v1/admin/users", object("email", jsonString(email), "username", jsonString(n), "password", jsonString(strongPassword), "role", `"user"`), auth},
		} {
			t.Run(c.op+" "+email, func(t *testing.T) {
				resp, body := in.raw(t, "POST", c.path, ctJSON, strings.NewReader(c.body), c.hdrs...)
				p := wantProblem(t, rawStatus{resp}, body, http.StatusBadRequest, "validation-failed")
				wantField(t, p, "email")
			})
		}
	}
	// Dots where they belong are fine.
	n := uniqueName()
	resp, body := in.raw(t, "POST", "/api/v1/auth/register", ctJSON, strings.NewReader(object(
		"email", jsonString("ada.love.lace@mail.example.co.uk"), "username", jsonString(n), "password", jsonString(strongPassword))))
	wantStatus(t, rawStatus{resp}, body, http.StatusCreated)
}

// is_verified is a boolean that may be left out (false) but not null, like every other
// non-nullable field: kin-openapi put the schema's default in place of an explicit null, and the
// account was created, 201 for a body the contract calls invalid (found in review).
func TestNullIsVerifiedIsRefused(t *testing.T) {
	in := start(t)
	_, adminPair := in.createWithRole(t, "admin")
	n := uniqueName()
	body := object("email", jsonString(n+"@example.com"), "username", jsonString(n), "password", jsonString(strongPassword), "role", `"user"`, "is_verified", "null")
	resp, b := in.raw(t, "POST", "/api/v1/admin/users", ctJSON, strings.NewReader(body), "Authorization", "Bearer "+adminPair.AccessToken)
	p := wantProblem(t, rawStatus{resp}, b, http.StatusBadRequest, "validation-failed")
	wantField(t, p, "is_verified")
	// Left out, it is false.
	n = uniqueName()
	body = object("email", jsonString(n+"@example.com"), "username", jsonString(n), "password", jsonString(strongPassword), "role", `"user"`)
	resp, b = in.raw(t, "POST", "/api/v1/admin/users", ctJSON, strings.NewReader(body), "Authorization", "Bearer "+adminPair.AccessToken)
	wantStatus(t, rawStatus{resp}, b, http.StatusCreated)
	if !strings.Contains(string(b), `"is_verified":false`) {
		t.Errorf("created without is_verified: %s", b)
	}
}

// A body with a content coding (gzip, say) is refused with 415, as RFC 9110 asks of a coding the
// server does not take, with Accept-Encoding naming none: it was read as plain JSON, so a gzipped
// body got 400 invalid-utf8 and a plain one labelled gzip was taken as it was (found in review).
func TestEncodedBodyIs415(t *testing.T) {
	in := start(t)
	body := object("email", jsonString(uniqueName()+"@example.com"), "username", jsonString(uniqueName()), "password", jsonString(strongPassword))
	for _, coding := range []string{"gzip", "br", "deflate, gzip"} {
		resp, b := in.raw(t, "POST", "/api/v1/auth/register", ctJSON, strings.NewReader(body), "Content-Encoding", coding)
		wantProblem(t, rawStatus{resp}, b, http.StatusUnsupportedMediaType, "unsupported-media-type")
		if got := resp.Header.Get("Accept-Encoding"); got != "identity" {
			t.Errorf("Content-Encoding %s: Accept-Encoding %q, want identity", coding, got)
		}
	}
	resp, b := in.raw(t, "POST", "/api/v1/auth/register", ctJSON, strings.NewReader(body), "Content-Encoding", "identity")
	wantStatus(t, rawStatus{resp}, b, http.StatusCreated)
}

// A common password does not become uncommon by the spaces around it: " password123 ", a tab
// after it or an ideographic space (NFKC: a space) before it is still password123, the first
// thing a guesser tries with spaces, and is refused as it is; nothing is created.
func TestCommonPasswordsPaddedWithSpacesAreRefused(t *testing.T) {
	in := start(t)
	for _, pw := range []string{" password123 ", "PASSWORD123\t", "\u3000password123", "\u00a0password123\u00a0", "\n\npassword123"} {
		t.Run(strconv.Quote(pw), func(t *testing.T) {
			n := uniqueName()
			r, err := in.client.RegisterUserWithResponse(context.Background(), api.RegisterUserJSONRequestBody{
				Email: api.Email(n + "@example.com"), Username: n, Password: pw,
			})
			if err != nil {
				t.Fatal(err)
			}
			p := wantProblem(t, r, r.Body, http.StatusUnprocessableEntity, "password-too-common")
			wantField(t, p, "password")
		})
	}
	var n int
	if err := in.app.Pool.QueryRow(context.Background(), "SELECT count(*) FROM users").Scan(&n); err != nil || n != 0 {
		t.Fatalf("users = %d (%v), want 0", n, err)
	}
}

// A password's 8–128 characters are counted after NFKC, as README says and as it is hashed:
// three "ﬃ" ligatures are nine characters (and sign in typed as "ffiffiffi"), 100 accented
// letters typed decomposed (200 code points as sent) are 100; "short" and 129 letters are
// refused with the password's own codes.
func TestPasswordLengthIsCountedAfterNFKC(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	for _, c := range []struct{ sent, typed string }{
		{"\ufb03\ufb03\ufb03", "ffiffiffi"},
		{strings.Repeat("e\u0301", 100), strings.Repeat("\u00e9", 100)},
	} {
		n := uniqueName()
		email := api.Email(n + "@example.com")
		r, err := in.client.RegisterUserWithResponse(ctx, api.RegisterUserJSONRequestBody{Email: email, Username: n, Password: c.sent})
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, r, r.Body, http.StatusCreated)
		l, err := in.client.LoginWithResponse(ctx, api.LoginJSONRequestBody{Email: &email, Password: c.typed})
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, l, l.Body, http.StatusOK)
	}
	for _, c := range []struct{ pw, code string }{{"short", "password-too-short"}, {strings.Repeat("x", 129), "password-too-long"}} {
		n := uniqueName()
		r, err := in.client.RegisterUserWithResponse(ctx, api.RegisterUserJSONRequestBody{Email: api.Email(n + "@example.com"), Username: n, Password: c.pw})
		if err != nil {
			t.Fatal(err)
		}
		wantField(t, wantProblem(t, r, r.Body, http.StatusBadRequest, c.code), "password")
	}
}
