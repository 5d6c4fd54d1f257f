package users

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	dbgen "github.com/portcullis/portcullis/gen/db"
	"github.com/portcullis/portcullis/internal/apperr"
	"github.com/portcullis/portcullis/internal/cursor"
)

// Sort orders of List. Each is backed by an index, so every page is an index range scan.
const (
	SortCreatedDesc  = "-created_at"
	SortCreatedAsc   = "created_at"
	SortEmailAsc     = "email"
	SortEmailDesc    = "-email"
	SortUsernameAsc  = "username"
	SortUsernameDesc = "-username"
)

// Filter selects and orders the users of one page.
type Filter struct {
	Limit         int
	Cursor        string
	Sort          string
	Role          *string
	IsActive      *bool
	IsVerified    *bool
	CreatedAfter  *time.Time
	CreatedBefore *time.Time
	Query         *string
}

// Page is one page of users; NextCursor is empty on the last page.
type Page struct {
	Users      []User
	NextCursor string
}

// sortSpec is how one sort order pages: its ORDER BY and the keyset condition after a position.
type sortSpec struct {
	orderBy string
	after   string // with $1 the position's value and $2 its id
	value   func(User) string
}

func createdValue(u User) string { return u.CreatedAt.UTC().Format(time.RFC3339Nano) }

// The allow-list of sorts. lower(email) and lower(username) are unique, so they alone order
// rows totally; created_at ties are broken by id.
var sorts = map[string]sortSpec{
	SortCreatedDesc:  {"created_at DESC, id DESC", "(created_at, id) < ($1::text::timestamptz, $2::uuid)", createdValue},
	SortCreatedAsc:   {"created_at ASC, id ASC", "(created_at, id) > ($1::text::timestamptz, $2::uuid)", createdValue},
	SortEmailAsc:     {"lower(email) ASC", "lower(email) > $1::text", func(u User) string { return strings.ToLower(u.Email) }},
	SortEmailDesc:    {"lower(email) DESC", "lower(email) < $1::text", func(u User) string { return strings.ToLower(u.Email) }},
	SortUsernameAsc:  {"lower(username) ASC", "lower(username) > $1::text", func(u User) string { return strings.ToLower(u.Username) }},
	SortUsernameDesc: {"lower(username) DESC", "lower(username) < $1::text", func(u User) string { return strings.ToLower(u.Username) }},
}

// searchText is the expression of the users_search_trgm_idx index; q matches inside it.
const searchText = "(lower(email) || ' ' || lower(username) || ' ' || lower(coalesce(full_name, '')))"

// List returns one page of users. It returns cursor.ErrInvalid for a cursor of another sort,
// and an Invalid error for an unknown sort or role. This is the one query built at run time
// (sqlc cannot vary ORDER BY); every value is a bind parameter and every identifier comes from
// the allow-list above.
func (s *Service) List(ctx context.Context, f Filter) (Page, error) {
	if f.Sort == "" {
		f.Sort = SortCreatedDesc
	}
	spec, ok := sorts[f.Sort]
	if !ok {
		return Page{}, errInvalidSort
	}
	if f.Role != nil && !ValidRole(*f.Role) {
		return Page{}, ErrUnknownRole
	}
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = 50
	}
	var pos cursor.Position
	args := []any{nil, nil} // $1 and $2 hold the cursor position, when there is one
	var where []string
	if f.Cursor != "" {
		var err error
		if pos, err = cursor.Decode(f.Cursor, f.Sort); err != nil {
			return Page{}, err
		}
		args[0], args[1] = pos.Value, pos.ID
		where = append(where, spec.after)
	} else {
		where = append(where, "$1::text IS NULL AND $2::uuid IS NULL")
	}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Role != nil {
		add("role = $%d", *f.Role)
	}
	if f.IsActive != nil {
		add("is_active = $%d", *f.IsActive)
	}
	if f.IsVerified != nil {
		add("is_verified = $%d", *f.IsVerified)
	}
	if f.CreatedAfter != nil {
		add("created_at >= $%d", *f.CreatedAfter)
	}
	if f.CreatedBefore != nil {
		add("created_at < $%d", *f.CreatedBefore)
	}
	if f.Query != nil && *f.Query != "" {
		add(searchText+" LIKE $%d", "%"+escapeLike(strings.ToLower(*f.Query))+"%")
	}
	args = append(args, f.Limit+1)
	sql := fmt.Sprintf(`SELECT id, email, username, hashed_password, full_name, role, is_active, is_verified, created_at, updated_at
FROM users WHERE %s ORDER BY %s LIMIT $%d`, strings.Join(where, " AND "), spec.orderBy, len(args))

	rows, err := s.store.pool.Query(ctx, sql, args...)
	if err != nil {
		return Page{}, fmt.Errorf("list users: %w", err)
	}
	recs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[dbgen.User])
	if err != nil {
		return Page{}, fmt.Errorf("list users: %w", err)
	}
	page := Page{Users: make([]User, 0, min(len(recs), f.Limit))}
	for i, r := range recs {
		if i == f.Limit {
			last := page.Users[len(page.Users)-1]
			page.NextCursor = cursor.Encode(cursor.Position{Sort: f.Sort, Value: spec.value(last), ID: last.ID})
			break
		}
		page.Users = append(page.Users, userFromRow(r).User)
	}
	return page, nil
}

var errInvalidSort = apperr.Invalidf("sort", "must be one of created_at, -created_at, email, -email, username, -username")

// escapeLike makes %, _ and \ in s match themselves in a LIKE pattern (escape character \).
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
