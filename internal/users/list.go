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
	"github.com/portcullis/portcullis/internal/postgres"
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

// sortSpec is how one sort order pages: its ORDER BY, the keyset condition after a position,
// and the key a cursor records. Text keys are computed by PostgreSQL's lower(), so a cursor
// compares exactly as the index orders, whatever the letters.
type sortSpec struct {
	orderBy string
	after   string // `$?` placeholders: the position's key, then (for created_at) its id
	key     string // SQL expression of the cursor key; empty for created_at, whose key is the time
}

// The allow-list of sorts. lower(email) and lower(username) are unique, so they alone order
// rows totally; created_at ties are broken by id.
var sorts = map[string]sortSpec{
	SortCreatedDesc:  {"created_at DESC, id DESC", "(created_at, id) < ($?::timestamptz, $?::uuid)", ""},
	SortCreatedAsc:   {"created_at ASC, id ASC", "(created_at, id) > ($?::timestamptz, $?::uuid)", ""},
	SortEmailAsc:     {"lower(email) ASC", "lower(email) > $?::text", "lower(email)"},
	SortEmailDesc:    {"lower(email) DESC", "lower(email) < $?::text", "lower(email)"},
	SortUsernameAsc:  {"lower(username) ASC", "lower(username) > $?::text", "lower(username)"},
	SortUsernameDesc: {"lower(username) DESC", "lower(username) < $?::text", "lower(username)"},
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
	var q postgres.Where
	if f.Cursor != "" {
		pos, err := cursor.Decode(f.Cursor, f.Sort)
		if err != nil {
			return Page{}, err
		}
		if spec.key != "" {
			q.Add(spec.after, pos.Value)
		} else {
			at, err := pos.Time()
			if err != nil {
				return Page{}, err
			}
			q.Add(spec.after, at, pos.ID)
		}
	}
	if f.Role != nil {
		q.Add("role = $?", *f.Role)
	}
	if f.IsActive != nil {
		q.Add("is_active = $?", *f.IsActive)
	}
	if f.IsVerified != nil {
		q.Add("is_verified = $?", *f.IsVerified)
	}
	if f.CreatedAfter != nil {
		q.Add("created_at >= $?", *f.CreatedAfter)
	}
	if f.CreatedBefore != nil {
		q.Add("created_at < $?", *f.CreatedBefore)
	}
	if f.Query != nil && *f.Query != "" {
		q.Add(searchText+" LIKE $?", "%"+escapeLike(strings.ToLower(*f.Query))+"%")
	}
	key := "''"
	if spec.key != "" {
		key = spec.key
	}
	sql := fmt.Sprintf(`SELECT id, email, username, hashed_password, full_name, role, is_active, is_verified, created_at, updated_at, %s
FROM users WHERE %s ORDER BY %s LIMIT %s`, key, q.String(), spec.orderBy, q.Arg(f.Limit+1))

	// Planned with the actual values every time: a cached generic plan cannot know whether `q`
	// is rare (use the trigram index) or common (walk the sort index), and guessing wrong costs
	// a full index walk.
	rows, err := s.store.pool.Query(ctx, sql, append([]any{pgx.QueryExecModeExec}, q.Args()...)...)
	if err != nil {
		return Page{}, fmt.Errorf("list users: %w", err)
	}
	type listed struct {
		user User
		key  string
	}
	found, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (listed, error) {
		var r dbgen.User
		var k string
		err := row.Scan(&r.ID, &r.Email, &r.Username, &r.HashedPassword, &r.FullName, &r.Role, &r.IsActive, &r.IsVerified, &r.CreatedAt, &r.UpdatedAt, &k)
		return listed{userFromRow(r).User, k}, err
	})
	if err != nil {
		return Page{}, fmt.Errorf("list users: %w", err)
	}
	page := Page{Users: make([]User, 0, min(len(found), f.Limit))}
	for i, r := range found {
		if i == f.Limit {
			last := found[i-1]
			value := last.key
			if spec.key == "" {
				value = cursor.TimeValue(last.user.CreatedAt)
			}
			page.NextCursor = cursor.Encode(cursor.Position{Sort: f.Sort, Value: value, ID: last.user.ID})
			break
		}
		page.Users = append(page.Users, r.user)
	}
	return page, nil
}

var errInvalidSort = apperr.Invalidf("sort", "must be one of created_at, -created_at, email, -email, username, -username")

// escapeLike makes %, _ and \ in s match themselves in a LIKE pattern (escape character \).
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
