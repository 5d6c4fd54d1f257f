package httpserver_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/oapi-codegen/nullable"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/users"
)

// listUsersAll returns every user matching p, which must fit on one page of 200.
func (in *instance) listUsersAll(t *testing.T, tok string, p api.AdminListUsersParams) []api.User {
	t.Helper()
	p.Limit = new(200)
	r, err := in.client.AdminListUsersWithResponse(context.Background(), &p, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusOK)
	if !r.JSON200.NextCursor.IsNull() {
		t.Fatalf("a listing of at most 200 users has a next page: %s", r.Body)
	}
	return r.JSON200.Items
}

// listAuditAll returns every audit event matching p, which must fit on one page of 200.
func (in *instance) listAuditAll(t *testing.T, tok string, p api.AdminListAuditEventsParams) []api.AuditEvent {
	t.Helper()
	p.Limit = new(200)
	r, err := in.client.AdminListAuditEventsWithResponse(context.Background(), &p, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusOK)
	if !r.JSON200.NextCursor.IsNull() {
		t.Fatalf("a listing of at most 200 events has a next page: %s", r.Body)
	}
	return r.JSON200.Items
}

func userIDs(us []api.User) []uuid.UUID {
	out := make([]uuid.UUID, len(us))
	for i, u := range us {
		out[i] = u.Id
	}
	return out
}

func eventIDs(es []api.AuditEvent) []uuid.UUID {
	out := make([]uuid.UUID, len(es))
	for i, e := range es {
		out[i] = e.Id
	}
	return out
}

// sortedIDs returns ids in byte order, for comparing sets.
func sortedIDs(ids []uuid.UUID) []uuid.UUID {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// nullableValue reads a nullable field; ok is false for null or absent.
func nullableValue[T any](n nullable.Nullable[T]) (v T, ok bool) {
	v, err := n.Get()
	return v, err == nil
}

// userOrder compares two users in the order of sort (as the service's sorts are documented:
// lower(email) and lower(username) are unique; created_at ties are broken by id).
func userOrder(sort string) func(a, b api.User) int {
	byCreated := func(a, b api.User) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return bytes.Compare(a.Id[:], b.Id[:])
	}
	byEmail := func(a, b api.User) int {
		return strings.Compare(strings.ToLower(string(a.Email)), strings.ToLower(string(b.Email)))
	}
	byUsername := func(a, b api.User) int {
		return strings.Compare(strings.ToLower(a.Username), strings.ToLower(b.Username))
	}
	reverse := func(f func(a, b api.User) int) func(a, b api.User) int {
		return func(a, b api.User) int { return f(b, a) }
	}
	switch sort {
	case "created_at":
		return byCreated
	case "-created_at", "":
		return reverse(byCreated)
	case "email":
		return byEmail
	case "-email":
		return reverse(byEmail)
	case "username":
		return byUsername
	case "-username":
		return reverse(byUsername)
	}
	panic("unknown sort " + sort)
}

// forgedCursor builds a cursor in the service's format with a value it never hands out.
func forgedCursor(sort, value string) string {
	b, _ := json.Marshal(map[string]string{"s": sort, "v": value, "i": uuid.NewString()})
	return base64.RawURLEncoding.EncodeToString(b)
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func TestAdminListUsersFilters(t *testing.T) {
	in := start(t)
	admin, adminPair := in.createWithRole(t, "admin")
	tok := adminPair.AccessToken
	ctx := context.Background()

	mod1, _ := in.createWithRole(t, "moderator")
	mod2, _ := in.createWithRole(t, "moderator")
	var plain []api.User
	for range 10 {
		plain = append(plain, in.register(t).User)
	}
	patch := func(id uuid.UUID, body api.AdminUpdateUserJSONRequestBody) api.User {
		t.Helper()
		r, err := in.client.AdminUpdateUserWithResponse(ctx, id, nil, body, bearer(tok))
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, r, r.Body, http.StatusOK)
		return *r.JSON200
	}
	kiwi := "Kiwi-" + strings.ToUpper(randomName("")[:6]) // a username unlike any email
	patch(plain[0].Id, api.AdminUpdateUserJSONRequestBody{IsActive: new(false)})
	patch(plain[1].Id, api.AdminUpdateUserJSONRequestBody{IsActive: new(false), IsVerified: new(true)})
	patch(plain[2].Id, api.AdminUpdateUserJSONRequestBody{IsVerified: new(true)})
	patch(plain[3].Id, api.AdminUpdateUserJSONRequestBody{IsVerified: new(true), FullName: nullable.NewNullableWithValue("100% Real_Name")})
	patch(plain[4].Id, api.AdminUpdateUserJSONRequestBody{FullName: nullable.NewNullableWithValue("100Xreal Name")})
	patch(plain[5].Id, api.AdminUpdateUserJSONRequestBody{FullName: nullable.NewNullableWithValue("Snake_real_case")})
	patch(plain[6].Id, api.AdminUpdateUserJSONRequestBody{FullName: nullable.NewNullableWithValue(`Back\slash Name`)})
	patch(plain[7].Id, api.AdminUpdateUserJSONRequestBody{Username: &kiwi})
	patch(plain[8].Id, api.AdminUpdateUserJSONRequestBody{FullName: nullable.NewNullableWithValue("Zebra Quokka")})
	patch(mod2.User.Id, api.AdminUpdateUserJSONRequestBody{IsActive: new(false)})

	all := in.listUsersAll(t, tok, api.AdminListUsersParams{})
	if len(all) != 13 {
		t.Fatalf("listing has %d users, want 13 (admin, 2 moderators, 10 users)", len(all))
	}
	byID := map[uuid.UUID]api.User{}
	for _, u := range all {
		byID[u.Id] = u
	}
	id := func(us ...api.User) []uuid.UUID { return userIDs(us) }
	allExcept := func(skip ...uuid.UUID) []uuid.UUID {
		var out []uuid.UUID
		for _, u := range all {
			if !slices.Contains(skip, u.Id) {
				out = append(out, u.Id)
			}
		}
		return out
	}
	byCreated := slices.Clone(all)
	slices.SortFunc(byCreated, userOrder("created_at"))
	for i := 1; i < len(byCreated); i++ {
		if !byCreated[i].CreatedAt.After(byCreated[i-1].CreatedAt) {
			t.Fatalf("two users share created_at %v; the window cases need distinct instants", byCreated[i].CreatedAt)
		}
	}
	lo, hi := byCreated[3].CreatedAt, byCreated[9].CreatedAt
	email2 := string(plain[2].Email)
	emailPart := strings.ToUpper(email2[len(email2)-len("@example.com")-4:]) // the end of the local part and the domain
	plainIDs := userIDs(plain)

	tests := []struct {
		name   string
		params api.AdminListUsersParams
		want   []uuid.UUID
	}{
		{"role moderator", api.AdminListUsersParams{Role: new(api.RoleModerator)}, id(mod1.User, mod2.User)},
		{"role admin", api.AdminListUsersParams{Role: new(api.RoleAdmin)}, id(admin.User)},
		{"role user", api.AdminListUsersParams{Role: new(api.RoleUser)}, plainIDs},
		{"inactive", api.AdminListUsersParams{IsActive: new(false)}, id(plain[0], plain[1], mod2.User)},
		{"active", api.AdminListUsersParams{IsActive: new(true)}, allExcept(plain[0].Id, plain[1].Id, mod2.User.Id)},
		{"verified", api.AdminListUsersParams{IsVerified: new(true)}, id(plain[1], plain[2], plain[3])},
		{"unverified", api.AdminListUsersParams{IsVerified: new(false)}, allExcept(plain[1].Id, plain[2].Id, plain[3].Id)},
		{"inactive and verified", api.AdminListUsersParams{IsActive: new(false), IsVerified: new(true)}, id(plain[1])},
		{"created window", api.AdminListUsersParams{CreatedAfter: &lo, CreatedBefore: &hi}, userIDs(byCreated[3:9])},
		{"created after (inclusive)", api.AdminListUsersParams{CreatedAfter: &lo}, userIDs(byCreated[3:])},
		{"created before (exclusive)", api.AdminListUsersParams{CreatedBefore: &hi}, userIDs(byCreated[:9])},
		{"empty window", api.AdminListUsersParams{CreatedAfter: &hi, CreatedBefore: &lo}, nil},
		{"q email part, other case", api.AdminListUsersParams{Q: &emailPart}, id(plain[2])},
		{"q username part, other case", api.AdminListUsersParams{Q: new(strings.ToLower(kiwi))}, id(plain[7])},
		{"q full name part, other case", api.AdminListUsersParams{Q: new("zebra QUOKKA")}, id(plain[8])},
		{"q plain word", api.AdminListUsersParams{Q: new("REAL")}, id(plain[3], plain[4], plain[5])},
		{"q percent is literal", api.AdminListUsersParams{Q: new("%")}, id(plain[3])},
		{"q percent after a digit", api.AdminListUsersParams{Q: new("0%")}, id(plain[3])},
		{"q underscore is literal", api.AdminListUsersParams{Q: new("_")}, id(plain[3], plain[5])},
		{"q underscore between letters", api.AdminListUsersParams{Q: new("L_N")}, id(plain[3])},
		{"q underscore before a word", api.AdminListUsersParams{Q: new("_real")}, id(plain[5])},
		{"q backslash is literal", api.AdminListUsersParams{Q: new(`\`)}, id(plain[6])},
		{"q no match", api.AdminListUsersParams{Q: new("no such person anywhere")}, nil},
		{"filters combine", api.AdminListUsersParams{Role: new(api.RoleUser), IsVerified: new(true), Q: new("real")}, id(plain[3])},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := userIDs(in.listUsersAll(t, tok, tt.params))
			if want := sortedIDs(tt.want); !slices.Equal(sortedIDs(got), want) {
				t.Errorf("ids = %v\nwant %v", sortedIDs(got), want)
			}
		})
	}

	for _, sort := range []string{"", "-created_at", "created_at", "email", "-email", "username", "-username"} {
		t.Run("sort "+sort, func(t *testing.T) {
			p := api.AdminListUsersParams{}
			if sort != "" {
				p.Sort = new(api.AdminListUsersParamsSort(sort))
			}
			got := in.listUsersAll(t, tok, p)
			want := slices.Clone(all)
			slices.SortFunc(want, userOrder(sort))
			if !slices.Equal(userIDs(got), userIDs(want)) {
				t.Errorf("order = %v\nwant %v", userIDs(got), userIDs(want))
			}
			// The same order in pages of 5, following the cursor: page 2 onwards is a keyset query.
			var paged []api.User
			var cur *string
			for pages := 1; ; pages++ {
				p.Limit, p.Cursor = new(5), cur
				r, err := in.client.AdminListUsersWithResponse(ctx, &p, bearer(tok))
				if err != nil {
					t.Fatal(err)
				}
				wantStatus(t, r, r.Body, http.StatusOK)
				paged = append(paged, r.JSON200.Items...)
				next, more := nullableValue(r.JSON200.NextCursor)
				if !more {
					break
				}
				if pages > len(all) {
					t.Fatalf("paging by %q does not end", sort)
				}
				cur = &next
			}
			if !slices.Equal(userIDs(paged), userIDs(want)) {
				t.Errorf("paged order = %v\nwant %v", userIDs(paged), userIDs(want))
			}
		})
	}
	// Every field of a listed user is the user's current state.
	if u := byID[plain[3].Id]; !u.IsVerified || !u.IsActive || u.Role != api.RoleUser || u.FullName.MustGet() != "100% Real_Name" {
		t.Errorf("listed user = %+v", u)
	}

	first, err := in.client.AdminListUsersWithResponse(ctx, &api.AdminListUsersParams{Limit: new(2), Sort: new(api.AdminListUsersParamsSort("email"))}, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, first, first.Body, http.StatusOK)
	emailCursor, ok := nullableValue(first.JSON200.NextCursor)
	if !ok || len(first.JSON200.Items) != 2 {
		t.Fatalf("first page of 2 by email: %s", first.Body)
	}
	bad := []struct {
		name   string
		params api.AdminListUsersParams
		code   string
		field  string
	}{
		{"limit 0", api.AdminListUsersParams{Limit: new(0)}, "validation-failed", "limit"},
		{"limit 201", api.AdminListUsersParams{Limit: new(201)}, "validation-failed", "limit"},
		{"sort on a secret", api.AdminListUsersParams{Sort: new(api.AdminListUsersParamsSort("password"))}, "validation-failed", "sort"},
		{"unknown role", api.AdminListUsersParams{Role: new(api.Role("root"))}, "validation-failed", "role"},
		{"q too long", api.AdminListUsersParams{Q: new(strings.Repeat("q", 101))}, "validation-failed", "q"},
		{"garbage cursor", api.AdminListUsersParams{Cursor: new("not-a-cursor!")}, "invalid-request", "cursor"},
		{"cursor of another sort", api.AdminListUsersParams{Cursor: &emailCursor, Sort: new(api.AdminListUsersParamsSort("-created_at"))}, "invalid-request", "cursor"},
		{"cursor of the default sort used with email", api.AdminListUsersParams{Cursor: new(forgedCursor("-created_at", "2026-01-02T03:04:05Z")), Sort: new(api.AdminListUsersParamsSort("email"))}, "invalid-request", "cursor"},
		// A cursor is opaque but comes from the client: one whose position is not a time must be
		// refused as a bad cursor, not reach the database as a cast that fails.
		{"forged cursor with a bad time", api.AdminListUsersParams{Cursor: new(forgedCursor("-created_at", "not a time"))}, "invalid-request", "cursor"},
		{"forged cursor with a bad time, created_at", api.AdminListUsersParams{Cursor: new(forgedCursor("created_at", "yesterday-ish")), Sort: new(api.AdminListUsersParamsSort("created_at"))}, "invalid-request", "cursor"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			r, err := in.client.AdminListUsersWithResponse(ctx, &tt.params, bearer(tok))
			if err != nil {
				t.Fatal(err)
			}
			wantField(t, wantProblem(t, r, r.Body, http.StatusBadRequest, tt.code), tt.field)
		})
	}
	t.Run("empty q", func(t *testing.T) {
		resp, body := in.raw(t, http.MethodGet, "/api/v1/admin/users?q=", "", nil, "Authorization", "Bearer "+tok)
		wantField(t, wantProblem(t, rawStatus{resp}, body, http.StatusBadRequest, "validation-failed"), "q")
	})
}

func TestAdminListUsersPaginationWalk(t *testing.T) {
	in := start(t)
	_, adminPair := in.createWithRole(t, "admin")
	tok := adminPair.AccessToken
	ctx := context.Background()
	// Random names spread new users over the whole email and username order, so that users
	// created during a walk land both behind and ahead of its position.
	create := func() uuid.UUID {
		t.Helper()
		name := randomName("")
		u, err := in.app.Users.Create(ctx, nil, users.AdminNewUser{
			NewUser: users.NewUser{Email: name + "@example.com", Username: "u" + name, Password: "a long and unusual passphrase"}, Role: "user",
		})
		if err != nil {
			t.Fatal(err)
		}
		return u.ID
	}
	for range 60 {
		create()
	}

	const limit = 7
	for _, sort := range []string{"-created_at", "created_at", "email", "-username"} {
		t.Run(sort, func(t *testing.T) {
			order := userOrder(sort)
			existing := in.listUsersAll(t, tok, api.AdminListUsersParams{})
			type insert struct {
				id    uuid.UUID
				after api.User // the last user the walk had returned when this one was created
			}
			var (
				walk     []api.User
				inserted []insert
				cur      *string
			)
			for pages := 1; ; pages++ {
				if pages > 40 {
					t.Fatalf("the walk has not ended after %d pages", pages)
				}
				r, err := in.client.AdminListUsersWithResponse(ctx, &api.AdminListUsersParams{Limit: new(limit), Sort: new(api.AdminListUsersParamsSort(sort)), Cursor: cur}, bearer(tok))
				if err != nil {
					t.Fatal(err)
				}
				wantStatus(t, r, r.Body, http.StatusOK)
				items := r.JSON200.Items
				if len(items) > limit {
					t.Fatalf("page %d has %d users, limit %d", pages, len(items), limit)
				}
				walk = append(walk, items...)
				next, more := nullableValue(r.JSON200.NextCursor)
				if !more {
					break
				}
				if len(items) == 0 {
					t.Fatalf("page %d is empty but has a next cursor", pages)
				}
				cur = &next
				// A user created between two page fetches, from this goroutine, so that the
				// interleaving is certain.
				inserted = append(inserted, insert{id: create(), after: walk[len(walk)-1]})
			}
			if len(inserted) < 5 {
				t.Fatalf("only %d users were created during the walk", len(inserted))
			}

			count := map[uuid.UUID]int{}
			for i, u := range walk {
				count[u.Id]++
				if count[u.Id] > 1 {
					t.Errorf("user %s (%s) appears twice", u.Id, u.Email)
				}
				if i > 0 && order(walk[i-1], u) >= 0 {
					t.Errorf("walk out of %s order at %d: %s (%s, %s, %v) then %s (%s, %s, %v)", sort, i,
						walk[i-1].Id, walk[i-1].Email, walk[i-1].Username, walk[i-1].CreatedAt, u.Id, u.Email, u.Username, u.CreatedAt)
				}
			}
			for _, u := range existing {
				if count[u.Id] != 1 {
					t.Errorf("user %s (%s), there before the walk, appears %d times", u.Id, u.Email, count[u.Id])
				}
			}
			// A user created during the walk is seen exactly when it sorts after the walk's position
			// at that moment: keyset pagination neither skips ahead nor goes back.
			all := map[uuid.UUID]api.User{}
			for _, u := range in.listUsersAll(t, tok, api.AdminListUsersParams{}) {
				all[u.Id] = u
			}
			ahead := 0
			for _, ins := range inserted {
				u, ok := all[ins.id]
				if !ok {
					t.Fatalf("user %s created during the walk is not listed", ins.id)
				}
				want := 0
				if order(ins.after, u) < 0 {
					want, ahead = 1, ahead+1
				}
				if count[ins.id] != want {
					t.Errorf("user %s (%s) created after %s (%s): seen %d times, want %d", u.Id, u.Email, ins.after.Id, ins.after.Email, count[ins.id], want)
				}
			}
			if len(walk) != len(existing)+ahead {
				t.Errorf("walk has %d users, want %d existing + %d created ahead of it", len(walk), len(existing), ahead)
			}
		})
	}
}

func TestAuditTrail(t *testing.T) {
	in := start(t, func(c *config.Config) { c.Auth.RefreshReuseGrace = 0 })
	ctx := context.Background()
	began := time.Now()
	admin, adminPair := in.createWithRole(t, "admin")
	mod, modPair := in.createWithRole(t, "moderator")
	adminTok := adminPair.AccessToken

	const ua = "audit-trail-test/1.0 (portcullis)"
	// req tags one request with a request id of its own and the test's user agent.
	req := func(id string, more ...api.RequestEditorFn) []api.RequestEditorFn {
		return append([]api.RequestEditorFn{header("X-Request-ID", id), header("User-Agent", ua)}, more...)
	}
	var tokens []string // every access and refresh token handed out, to look for in the trail
	keep := func(p api.TokenPair) api.TokenPair {
		tokens = append(tokens, p.AccessToken, p.RefreshToken)
		return p
	}
	keep(adminPair)
	keep(modPair)

	const (
		pwA      = "first passphrase of A 7f3c"
		pwA2     = "second passphrase of A 2b9e"
		pwWrong  = "wrong passphrase for A 91ab"
		pwNobody = "unknown account passphrase 5e2d"
		pwB      = "passphrase chosen by admin c04d"
	)
	emailA := api.Email("audit-a@example.com")
	reg, err := in.client.RegisterUserWithResponse(ctx, api.RegisterUserJSONRequestBody{Email: emailA, Username: "audit_a", Password: pwA}, req("rid-register")...)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, reg, reg.Body, http.StatusCreated)
	a := reg.JSON201.Id

	login := func(rid string, email api.Email, pw string) *api.LoginResponse {
		t.Helper()
		r, err := in.client.LoginWithResponse(ctx, api.LoginJSONRequestBody{Email: &email, Password: pw}, req(rid)...)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := login("rid-login-wrong", emailA, pwWrong)
	wantProblem(t, r, r.Body, http.StatusUnauthorized, "invalid-credentials")
	r = login("rid-login-unknown", "nobody-audit@example.com", pwNobody)
	wantProblem(t, r, r.Body, http.StatusUnauthorized, "invalid-credentials")
	r = login("rid-login-a-1", emailA, pwA)
	wantStatus(t, r, r.Body, http.StatusOK)
	first := keep(*r.JSON200)

	ref, err := in.client.RefreshTokensWithResponse(ctx, api.RefreshTokensJSONRequestBody{RefreshToken: first.RefreshToken}, req("rid-refresh")...)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, ref, ref.Body, http.StatusOK)
	keep(*ref.JSON200)
	reuse, err := in.client.RefreshTokensWithResponse(ctx, api.RefreshTokensJSONRequestBody{RefreshToken: first.RefreshToken}, req("rid-reuse")...)
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, reuse, reuse.Body, http.StatusUnauthorized, "refresh-token-reused")

	r = login("rid-login-a-2", emailA, pwA)
	wantStatus(t, r, r.Body, http.StatusOK)
	second := keep(*r.JSON200)
	pc, err := in.client.ChangePasswordWithResponse(ctx, api.ChangePasswordJSONRequestBody{CurrentPassword: pwA, NewPassword: pwA2}, req("rid-password", bearer(second.AccessToken))...)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, pc, pc.Body, http.StatusNoContent)
	um, err := in.client.UpdateMeWithResponse(ctx, nil, api.UpdateMeJSONRequestBody{FullName: nullable.NewNullableWithValue("Audit A")}, req("rid-profile", bearer(second.AccessToken))...)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, um, um.Body, http.StatusOK)
	out, err := in.client.LogoutWithResponse(ctx, req("rid-logout", bearer(second.AccessToken))...)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, out, out.Body, http.StatusNoContent)

	cr, err := in.client.AdminCreateUserWithResponse(ctx, api.AdminCreateUserJSONRequestBody{
		Email: "audit-b@example.com", Username: "audit_b", Password: pwB, Role: api.RoleUser,
	}, req("rid-admin-create", bearer(adminTok))...)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, cr, cr.Body, http.StatusCreated)
	b := cr.JSON201.Id
	r = login("rid-login-b", "audit-b@example.com", pwB)
	wantStatus(t, r, r.Body, http.StatusOK)
	loginB := keep(*r.JSON200)
	rc, err := in.client.AdminUpdateUserWithResponse(ctx, b, nil, api.AdminUpdateUserJSONRequestBody{Role: new(api.RoleModerator)}, req("rid-role-change", bearer(adminTok))...)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, rc, rc.Body, http.StatusOK)
	rv, err := in.client.AdminRevokeUserSessionsWithResponse(ctx, b, req("rid-revoke-all", bearer(adminTok))...)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, rv, rv.Body, http.StatusNoContent)
	del, err := in.client.AdminDeleteUserWithResponse(ctx, b, nil, req("rid-delete", bearer(adminTok))...)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, del, del.Body, http.StatusNoContent)
	ended := time.Now()

	events := in.listAuditAll(t, adminTok, api.AdminListAuditEventsParams{})
	var rows int
	if err := in.app.Pool.QueryRow(ctx, "SELECT count(*) FROM audit_events").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if len(events) != rows {
		t.Fatalf("listing has %d events, the table %d", len(events), rows)
	}
	for i := 1; i < len(events); i++ {
		p, e := events[i-1], events[i]
		if c := p.OccurredAt.Compare(e.OccurredAt); c < 0 || c == 0 && bytes.Compare(p.Id[:], e.Id[:]) <= 0 {
			t.Fatalf("events not newest first at %d: %v %s then %v %s", i, p.OccurredAt, p.Id, e.OccurredAt, e.Id)
		}
	}

	u := func(id uuid.UUID) *uuid.UUID { return &id }
	num := func(n int) float64 { return float64(n) }
	wants := []struct {
		action, rid          string
		actor                *uuid.UUID // nil: no actor
		targetType, targetID string     // "": no target
		outcome              api.AuditEventOutcome
		detail               map[string]any // keys that must be present with these values
	}{
		{"user.register", "rid-register", u(a), "user", a.String(), "success", nil},
		// A failed login proves nobody's identity: no actor, the account tried as the target.
		{"user.login", "rid-login-wrong", nil, "user", a.String(), "failure", map[string]any{"reason": "wrong_password"}},
		{"user.login", "rid-login-unknown", nil, "", "", "failure", map[string]any{"reason": "unknown_account"}},
		{"user.login", "rid-login-a-1", u(a), "session", first.SessionId.String(), "success", nil},
		{"session.refresh", "rid-refresh", u(a), "session", first.SessionId.String(), "success", nil},
		{"session.refresh_reuse_detected", "rid-reuse", nil, "session", first.SessionId.String(), "failure", map[string]any{"user_id": a.String()}},
		{"user.login", "rid-login-a-2", u(a), "session", second.SessionId.String(), "success", nil},
		{"user.password_change", "rid-password", u(a), "user", a.String(), "success", map[string]any{"sessions_revoked": num(0)}},
		{"user.profile_update", "rid-profile", u(a), "user", a.String(), "success", nil},
		{"session.logout", "rid-logout", u(a), "session", second.SessionId.String(), "success", nil},
		{"admin.user_create", "rid-admin-create", u(admin.User.Id), "user", b.String(), "success", map[string]any{"role": "user"}},
		{"user.login", "rid-login-b", u(b), "session", loginB.SessionId.String(), "success", nil},
		{"admin.role_change", "rid-role-change", u(admin.User.Id), "user", b.String(), "success", map[string]any{"role": map[string]any{"from": "user", "to": "moderator"}}},
		{"admin.user_update", "rid-role-change", u(admin.User.Id), "user", b.String(), "success", map[string]any{"role": map[string]any{"from": "user", "to": "moderator"}}},
		{"admin.sessions_revoke_all", "rid-revoke-all", u(admin.User.Id), "user", b.String(), "success", map[string]any{"sessions_revoked": num(1)}},
		{"admin.user_delete", "rid-delete", u(admin.User.Id), "user", b.String(), "success", map[string]any{"role": "moderator"}},
	}
	for _, w := range wants {
		t.Run(w.action+" "+w.rid, func(t *testing.T) {
			var found []api.AuditEvent
			for _, e := range events {
				if rid, _ := nullableValue(e.RequestId); e.Action == w.action && rid == w.rid {
					found = append(found, e)
				}
			}
			if len(found) != 1 {
				t.Fatalf("%d events %s with request id %s, want 1", len(found), w.action, w.rid)
			}
			e := found[0]
			if actor, ok := nullableValue(e.ActorId); ok != (w.actor != nil) || ok && actor != *w.actor {
				t.Errorf("actor_id = %v (set %v), want %v", actor, ok, w.actor)
			}
			tt, okType := nullableValue(e.TargetType)
			tid, okID := nullableValue(e.TargetId)
			if tt != w.targetType || tid != w.targetID || okType != (w.targetType != "") || okID != (w.targetID != "") {
				t.Errorf("target = %q %q, want %q %q", tt, tid, w.targetType, w.targetID)
			}
			if e.Outcome != w.outcome {
				t.Errorf("outcome = %q, want %q", e.Outcome, w.outcome)
			}
			for k, v := range w.detail {
				if !reflect.DeepEqual(e.Detail[k], v) {
					t.Errorf("detail[%q] = %#v, want %#v (detail %v)", k, e.Detail[k], v, e.Detail)
				}
			}
			if ip, _ := nullableValue(e.IpAddress); ip != "127.0.0.1" {
				t.Errorf("ip_address = %q, want 127.0.0.1", ip)
			}
			if got, _ := nullableValue(e.UserAgent); got != ua {
				t.Errorf("user_agent = %q, want %q", got, ua)
			}
			if e.OccurredAt.Before(began.Add(-time.Second)) || e.OccurredAt.After(ended.Add(time.Second)) {
				t.Errorf("occurred_at %v outside the test (%v to %v)", e.OccurredAt, began, ended)
			}
		})
	}

	actionLogin := "user.login"
	targetUser := api.AdminListAuditEventsParamsTargetType("user")
	targetSession := api.AdminListAuditEventsParamsTargetType("session")
	bID := b.String()
	older, newer := events[len(events)-4].OccurredAt, events[3].OccurredAt // a window strictly inside the trail
	filters := []struct {
		name   string
		params api.AdminListAuditEventsParams
		match  func(api.AuditEvent) bool
		count  int // -1: whatever match selects, at least one
	}{
		{"actor", api.AdminListAuditEventsParams{ActorId: &a}, func(e api.AuditEvent) bool { v, ok := nullableValue(e.ActorId); return ok && v == a }, 7},
		{"target user", api.AdminListAuditEventsParams{TargetType: &targetUser, TargetId: &bID}, func(e api.AuditEvent) bool {
			tt, _ := nullableValue(e.TargetType)
			tid, _ := nullableValue(e.TargetId)
			return tt == "user" && tid == bID
		}, 5},
		{"target type", api.AdminListAuditEventsParams{TargetType: &targetSession}, func(e api.AuditEvent) bool { tt, _ := nullableValue(e.TargetType); return tt == "session" }, -1},
		{"action", api.AdminListAuditEventsParams{Action: &actionLogin}, func(e api.AuditEvent) bool { return e.Action == actionLogin }, 7},
		{"actor and action", api.AdminListAuditEventsParams{ActorId: &admin.User.Id, Action: new("admin.user_update")}, func(e api.AuditEvent) bool {
			v, ok := nullableValue(e.ActorId)
			return ok && v == admin.User.Id && e.Action == "admin.user_update"
		}, 1},
		{"occurred window", api.AdminListAuditEventsParams{OccurredAfter: &older, OccurredBefore: &newer}, func(e api.AuditEvent) bool {
			return !e.OccurredAt.Before(older) && e.OccurredAt.Before(newer)
		}, -1},
		{"occurred after (inclusive)", api.AdminListAuditEventsParams{OccurredAfter: &newer}, func(e api.AuditEvent) bool { return !e.OccurredAt.Before(newer) }, -1},
		{"occurred before (exclusive)", api.AdminListAuditEventsParams{OccurredBefore: &older}, func(e api.AuditEvent) bool { return e.OccurredAt.Before(older) }, -1},
		{"unknown action", api.AdminListAuditEventsParams{Action: new("no.such_action")}, func(api.AuditEvent) bool { return false }, 0},
	}
	for _, f := range filters {
		t.Run("filter "+f.name, func(t *testing.T) {
			var want []uuid.UUID
			for _, e := range events {
				if f.match(e) {
					want = append(want, e.Id)
				}
			}
			if f.count >= 0 && len(want) != f.count || f.count < 0 && (len(want) == 0 || len(want) == len(events)) {
				t.Fatalf("the unfiltered trail has %d matching events, want %d (of %d)", len(want), f.count, len(events))
			}
			got := eventIDs(in.listAuditAll(t, adminTok, f.params))
			if !slices.Equal(got, want) {
				t.Errorf("ids = %v\nwant %v", got, want)
			}
		})
	}

	t.Run("pagination", func(t *testing.T) {
		var walk []uuid.UUID
		var cur *string
		for pages := 1; ; pages++ {
			if pages > len(events) {
				t.Fatalf("the walk has not ended after %d pages", pages)
			}
			r, err := in.client.AdminListAuditEventsWithResponse(ctx, &api.AdminListAuditEventsParams{Limit: new(3), Cursor: cur}, bearer(adminTok))
			if err != nil {
				t.Fatal(err)
			}
			wantStatus(t, r, r.Body, http.StatusOK)
			if n := len(r.JSON200.Items); n > 3 || n == 0 {
				t.Fatalf("page %d has %d events, want 1 to 3", pages, n)
			}
			walk = append(walk, eventIDs(r.JSON200.Items)...)
			next, more := nullableValue(r.JSON200.NextCursor)
			if !more {
				break
			}
			cur = &next
		}
		if want := eventIDs(events); !slices.Equal(walk, want) {
			t.Errorf("walk = %v\nwant %v", walk, want)
		}
	})

	t.Run("bad cursors", func(t *testing.T) {
		userCursor, err := in.client.AdminListUsersWithResponse(ctx, &api.AdminListUsersParams{Limit: new(1)}, bearer(adminTok))
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, userCursor, userCursor.Body, http.StatusOK)
		for name, c := range map[string]string{
			"garbage":                        "not-a-cursor!",
			"a cursor of the users' listing": userCursor.JSON200.NextCursor.MustGet(),
			"forged with a bad time":         forgedCursor("-occurred_at", "not a time"),
		} {
			t.Run(name, func(t *testing.T) {
				r, err := in.client.AdminListAuditEventsWithResponse(ctx, &api.AdminListAuditEventsParams{Cursor: &c}, bearer(adminTok))
				if err != nil {
					t.Fatal(err)
				}
				wantField(t, wantProblem(t, r, r.Body, http.StatusBadRequest, "invalid-request"), "cursor")
			})
		}
	})

	t.Run("no secrets", func(t *testing.T) {
		secrets := []string{pwA, pwA2, pwWrong, pwNobody, pwB, admin.Password, mod.Password}
		for _, tok := range tokens {
			secrets = append(secrets, tok, tok[len(tok)-16:])
			if rest, ok := strings.CutPrefix(tok, "prt_"); ok {
				secrets = append(secrets, rest)
			}
			if parts := strings.Split(tok, "."); len(parts) == 3 {
				secrets = append(secrets, parts[1], parts[2])
			}
		}
		rows, err := in.app.Pool.Query(ctx, `SELECT action, detail::text, coalesce(user_agent, ''), coalesce(request_id, ''), coalesce(target_id, '') FROM audit_events`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var action, detail, agent, rid, target string
			if err := rows.Scan(&action, &detail, &agent, &rid, &target); err != nil {
				t.Fatal(err)
			}
			n++
			row := strings.Join([]string{action, detail, agent, rid, target}, "\x00")
			for _, s := range secrets {
				if strings.Contains(row, s) {
					t.Errorf("audit row %s holds a secret %.12q…: %s", action, s, detail)
				}
			}
			var d map[string]any
			if err := json.Unmarshal([]byte(detail), &d); err != nil {
				t.Fatalf("detail of %s is not a JSON object: %s", action, detail)
			}
			if k, ok := secretKey(d); ok {
				t.Errorf("detail of %s has a key %q with a value: %s", action, k, detail)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if n != len(events) {
			t.Fatalf("read %d rows, listed %d events", n, len(events))
		}
	})

	t.Run("permissions", func(t *testing.T) {
		r, err := in.client.AdminListAuditEventsWithResponse(ctx, &api.AdminListAuditEventsParams{}, bearer(modPair.AccessToken))
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, r, r.Body, http.StatusForbidden, "insufficient-permissions")
		r, err = in.client.AdminListAuditEventsWithResponse(ctx, &api.AdminListAuditEventsParams{})
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, r, r.Body, http.StatusUnauthorized, "missing-token")
	})
}

// secretKey finds, at any depth of d, a key naming a password, token or secret that holds a
// value.
func secretKey(d map[string]any) (string, bool) {
	for k, v := range d {
		lk := strings.ToLower(k)
		if (strings.Contains(lk, "password") || strings.Contains(lk, "token") || strings.Contains(lk, "secret")) && v != nil && v != "" {
			return k, true
		}
		if m, ok := v.(map[string]any); ok {
			if k, ok := secretKey(m); ok {
				return k, true
			}
		}
	}
	return "", false
}

func TestFailedRegistrationLeavesNoAuditEvent(t *testing.T) {
	in := start(t)
	a := in.register(t)
	ctx := context.Background()
	counts := func() (registered, userRows int) {
		t.Helper()
		err := in.app.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM audit_events WHERE action = 'user.register'), (SELECT count(*) FROM users)`).Scan(&registered, &userRows)
		if err != nil {
			t.Fatal(err)
		}
		return registered, userRows
	}
	regBefore, usersBefore := counts()
	if regBefore != 1 || usersBefore != 1 {
		t.Fatalf("after one registration: %d user.register events, %d users; want 1 and 1", regBefore, usersBefore)
	}
	for _, tt := range []struct{ name, email, username, code string }{
		{"email taken", strings.ToUpper(string(a.User.Email)), "someone_else", "email-taken"},
		{"username taken", "someone-else@example.com", strings.ToUpper(a.User.Username), "username-taken"},
	} {
		r, err := in.client.RegisterUserWithResponse(ctx, api.RegisterUserJSONRequestBody{
			Email: api.Email(tt.email), Username: tt.username, Password: "a long and unusual passphrase",
		})
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, r, r.Body, http.StatusConflict, tt.code)
	}
	if reg, n := counts(); reg != regBefore || n != usersBefore {
		t.Fatalf("after refused registrations: %d user.register events and %d users, want %d and %d", reg, n, regBefore, usersBefore)
	}
}

// On an analyzed table whose users share most trigrams (every email holds "member" and
// "example.com", most names "person"), the text filter asks the trigram index for the rare part
// of q only and matches q itself afterwards. Whatever part it picks, the users and their order
// must be those of a plain substring match, page after page.
func TestAdminListUsersTextFilterOnAnalyzedTable(t *testing.T) {
	in := start(t)
	_, adminPair := in.createWithRole(t, "admin")
	tok := adminPair.AccessToken
	ctx := context.Background()
	// Bulk-loaded in SQL like the benchmark's million: thousands of registrations through the
	// service would spend minutes hashing passwords.
	if _, err := in.app.Pool.Exec(ctx, `
INSERT INTO users (id, email, username, hashed_password, full_name, created_at, updated_at)
SELECT gen_random_uuid(), 'member' || i || '@example.com', 'member' || i, 'unused',
       CASE WHEN i <= array_length(names, 1) THEN names[i]
            WHEN i % 4 = 0 THEN NULL
            ELSE 'Person ' || md5(i::text) END,
       timestamptz '2026-01-01' + i * interval '1 second', timestamptz '2026-01-01' + i * interval '1 second'
FROM generate_series(1, 4000) AS i,
     (SELECT ARRAY['Person 4F% Off', 'PERSON 4f_x', 'Ωperson 4fy', 'person 4fé', 'Xperson 4f', 'person  4f', 'Person 4', 'Person 4f\x', 'Jo Zq', 'Zq Q%_', 'Al Zq'] AS names) AS n`); err != nil {
		t.Fatal(err)
	}
	if _, err := in.app.Pool.Exec(ctx, "ANALYZE users, users_search"); err != nil {
		t.Fatal(err)
	}
	// The statistics that make List leave trigrams out: "mem" in every user, "per" in most,
	// " 4f" too rare to be listed.
	freq := map[string]float64{}
	rows, _ := in.app.Pool.Query(ctx, `SELECT e.t, e.f FROM pg_stats_ext_exprs s,
unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) AS e (t, f)
WHERE s.statistics_name = 'users_search_trgm_stats' AND e.t IS NOT NULL`)
	var trigram string
	var f float64
	if _, err := pgx.ForEachRow(rows, []any{&trigram, &f}, func() error { freq[trigram] = f; return nil }); err != nil {
		t.Fatal(err)
	}
	if freq["mem"] < 0.9 || freq["per"] < 0.5 || freq[" 4f"] > 0.01 {
		t.Fatalf("trigram statistics: mem %v, per %v, \" 4f\" %v", freq["mem"], freq["per"], freq[" 4f"])
	}

	orderBy := map[string]string{"-created_at": "created_at DESC, id DESC", "email": "lower(email)", "-username": "lower(username) DESC"}
	// check walks q in sort (and among active users, if active) in pages and compares the walk
	// with a plain substring match over users.
	check := func(t *testing.T, q, sort string, active *bool) {
		t.Helper()
		var want []uuid.UUID
		rows, _ := in.app.Pool.Query(ctx, `SELECT id FROM users
WHERE (strpos(lower(email), lower($1)) > 0 OR strpos(lower(username), lower($1)) > 0
    OR strpos(lower(coalesce(full_name, '')), lower($1)) > 0)
  AND ($2::boolean IS NULL OR is_active = $2)
ORDER BY `+orderBy[sort], q, active)
		var id uuid.UUID
		if _, err := pgx.ForEachRow(rows, []any{&id}, func() error { want = append(want, id); return nil }); err != nil {
			t.Fatal(err)
		}
		var got []uuid.UUID
		p := api.AdminListUsersParams{Q: &q, Sort: new(api.AdminListUsersParamsSort(sort)), Limit: new(4), IsActive: active}
		for pages := 1; ; pages++ {
			if pages > 1000 {
				t.Fatal("the walk does not end")
			}
			r, err := in.client.AdminListUsersWithResponse(ctx, &p, bearer(tok))
			if err != nil {
				t.Fatal(err)
			}
			wantStatus(t, r, r.Body, http.StatusOK)
			got = append(got, userIDs(r.JSON200.Items)...)
			next, more := nullableValue(r.JSON200.NextCursor)
			if !more {
				break
			}
			p.Cursor = &next
		}
		if len(want) == 0 && q != "n  4f" {
			t.Fatalf("q %q matches no one: a case that tests nothing", q)
		}
		if !slices.Equal(got, want) {
			t.Errorf("q %q by %s: %d users %v\nwant %d %v", q, sort, len(got), got, len(want), want)
		}
	}
	for _, q := range []string{
		"person 4f", "PERSON 4F", "erson 4f", "person 4f%", "n 4f_", "4f\\", "ωperson 4f", "son 4fé", "n  4f",
		"member1234", "member123", "ember29", "ber12@example.com", "r2@example.co", "4f", "son",
		"zq", "j", "q%", "Q%_", "o z", "%",
	} {
		for sort := range orderBy {
			t.Run(q+" "+sort, func(t *testing.T) { check(t, q, sort, nil) })
		}
	}
	t.Run("with another filter", func(t *testing.T) {
		if _, err := in.app.Pool.Exec(ctx, "UPDATE users SET is_active = false WHERE full_name ILIKE '%person 4f%' AND random() < 0.5"); err != nil {
			t.Fatal(err)
		}
		for sort := range orderBy {
			check(t, "person 4f", sort, new(true))
		}
	})
	// users_search follows users in the same transactions: a renamed, a deleted and a new user.
	t.Run("after changes", func(t *testing.T) {
		var renamed, deleted uuid.UUID
		if err := in.app.Pool.QueryRow(ctx, "SELECT id FROM users WHERE full_name ILIKE 'person 4f%' ORDER BY created_at LIMIT 1").Scan(&renamed); err != nil {
			t.Fatal(err)
		}
		if err := in.app.Pool.QueryRow(ctx, "SELECT id FROM users WHERE full_name ILIKE 'person 4f%' ORDER BY created_at DESC LIMIT 1").Scan(&deleted); err != nil {
			t.Fatal(err)
		}
		r, err := in.client.AdminUpdateUserWithResponse(ctx, renamed, nil, api.AdminUpdateUserJSONRequestBody{FullName: nullable.NewNullableWithValue("Someone Else")}, bearer(tok))
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, r, r.Body, http.StatusOK)
		d, err := in.client.AdminDeleteUserWithResponse(ctx, deleted, nil, bearer(tok))
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, d, d.Body, http.StatusNoContent)
		created := in.register(t).User
		r, err = in.client.AdminUpdateUserWithResponse(ctx, created.Id, nil, api.AdminUpdateUserJSONRequestBody{FullName: nullable.NewNullableWithValue("New Person 4F")}, bearer(tok))
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, r, r.Body, http.StatusOK)
		for sort := range orderBy {
			check(t, "person 4f", sort, nil)
		}
		got := userIDs(in.listUsersAll(t, tok, api.AdminListUsersParams{Q: new("person 4f")}))
		if slices.Contains(got, renamed) || slices.Contains(got, deleted) || !slices.Contains(got, created.Id) {
			t.Errorf("after the changes q lists %v: renamed %s, deleted %s, created %s", got, renamed, deleted, created.Id)
		}
	})
}

// q is a substring of the email, the username or the full name: never of two of them joined. A
// q spanning the end of one field and the start of the next matched (the search column joins
// them with spaces), and a q of one space matched every user (found in review).
func TestQueryDoesNotSpanFields(t *testing.T) {
	in := start(t)
	_, adminPair := in.createWithRole(t, "admin")
	tok := adminPair.AccessToken
	u := in.register(t) // email <name>@example.com, username <name>, no full name
	named := in.register(t)
	full := "Ada Lovelace"
	r, err := in.client.UpdateMeWithResponse(context.Background(), nil, api.UpdateMeJSONRequestBody{FullName: nullable.NewNullableWithValue(full)}, bearer(in.login(t, named).AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusOK)
	for _, q := range []string{
		"example.com " + u.User.Username, // the email's end, a space, the username
		u.User.Username + " ",            // the username and the space after it
		" ",                              // nobody but named has a space in a field
		named.User.Username + " ada",     // the username, a space, the full name's start
	} {
		got := userIDs(in.listUsersAll(t, tok, api.AdminListUsersParams{Q: &q}))
		if slices.Contains(got, u.User.Id) || q != " " && slices.Contains(got, named.User.Id) {
			t.Errorf("q=%q matches a user none of whose fields holds it; %d users matched", q, len(got))
		}
	}
	for _, q := range []string{" ", "a l", "ada lovelace", named.User.Username, "@example.com"} {
		if got := userIDs(in.listUsersAll(t, tok, api.AdminListUsersParams{Q: &q})); !slices.Contains(got, named.User.Id) {
			t.Errorf("q=%q does not find the user whose field holds it", q)
		}
	}
}

// target_id names a user or a session by its UUID, and a UUID is the same whatever case it is
// written in (RFC 9562), as actor_id already reads it: the upper-case form of a user's id (as
// many tools print UUIDs) must find that user's events, not an empty trail that says nothing
// happened to them.
func TestAuditTargetIDIsReadAsTheUUIDItNames(t *testing.T) {
	in := start(t)
	_, adminPair := in.createWithRole(t, "admin")
	u := in.register(t)
	ctx := context.Background()
	id := u.User.Id.String()
	want := eventIDs(in.listAuditAll(t, adminPair.AccessToken, api.AdminListAuditEventsParams{TargetId: &id}))
	if len(want) == 0 {
		t.Fatal("the registration left no event about the user")
	}
	user := api.AdminListAuditEventsParamsTargetType("user")
	for _, form := range []string{strings.ToUpper(id), "{" + id + "}", strings.ReplaceAll(id, "-", "")} {
		for _, tt := range []*api.AdminListAuditEventsParamsTargetType{nil, &user} {
			got := eventIDs(in.listAuditAll(t, adminPair.AccessToken, api.AdminListAuditEventsParams{TargetId: &form, TargetType: tt}))
			if !slices.Equal(got, want) {
				t.Errorf("target_id=%s (target_type %v): events %v, want %v", form, tt != nil, got, want)
			}
		}
	}
	// Anything else is compared as written, and matches nothing.
	other := "not-a-uuid"
	r, err := in.client.AdminListAuditEventsWithResponse(ctx, &api.AdminListAuditEventsParams{TargetId: &other}, bearer(adminPair.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, r.Body, http.StatusOK)
	if len(r.JSON200.Items) != 0 {
		t.Errorf("target_id=%s: %d events, want none", other, len(r.JSON200.Items))
	}
}

// The time bounds are instants, and RFC 3339 gives them to the nanosecond while PostgreSQL
// keeps microseconds: a bound between two microseconds must still select by the instant given.
// A user created at T is not created at or after T+500ns, and was created before it; so for
// an audit event.
func TestTimeBoundsBetweenMicrosecondsAreTheInstantsGiven(t *testing.T) {
	in := start(t)
	_, adminPair := in.createWithRole(t, "admin")
	tok := adminPair.AccessToken
	u := in.register(t)
	created := in.listUsersAll(t, tok, api.AdminListUsersParams{Q: new(u.User.Username)})
	if len(created) != 1 {
		t.Fatalf("q=%s lists %d users, want 1", u.User.Username, len(created))
	}
	just := created[0].CreatedAt.Add(500 * time.Nanosecond)
	if got := userIDs(in.listUsersAll(t, tok, api.AdminListUsersParams{CreatedAfter: &just})); slices.Contains(got, u.User.Id) {
		t.Errorf("created_after=%s lists the user created at %s", just.Format(time.RFC3339Nano), created[0].CreatedAt.Format(time.RFC3339Nano))
	}
	if got := userIDs(in.listUsersAll(t, tok, api.AdminListUsersParams{CreatedBefore: &just})); !slices.Contains(got, u.User.Id) {
		t.Errorf("created_before=%s leaves out the user created at %s", just.Format(time.RFC3339Nano), created[0].CreatedAt.Format(time.RFC3339Nano))
	}

	id := u.User.Id.String()
	events := in.listAuditAll(t, tok, api.AdminListAuditEventsParams{TargetId: &id})
	if len(events) != 1 {
		t.Fatalf("%d events about the user, want 1 (the registration)", len(events))
	}
	just = events[0].OccurredAt.Add(500 * time.Nanosecond)
	if got := in.listAuditAll(t, tok, api.AdminListAuditEventsParams{TargetId: &id, OccurredAfter: &just}); len(got) != 0 {
		t.Errorf("occurred_after=%s lists the event of %s", just.Format(time.RFC3339Nano), events[0].OccurredAt.Format(time.RFC3339Nano))
	}
	if got := in.listAuditAll(t, tok, api.AdminListAuditEventsParams{TargetId: &id, OccurredBefore: &just}); len(got) != 1 {
		t.Errorf("occurred_before=%s leaves out the event of %s", just.Format(time.RFC3339Nano), events[0].OccurredAt.Format(time.RFC3339Nano))
	}
}
