package users

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/text/unicode/norm"

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
// compares exactly as the index orders, whatever the letters. The keys are written {created_at},
// {id}, {email} and {username}, and read from users or from their copies in users_search
// (see keysOf).
type sortSpec struct {
	orderBy string
	after   string // `$?` placeholders: the position's key, then (for created_at) its id
	key     string // SQL expression of the cursor key; empty for created_at, whose key is the time
}

// The allow-list of sorts. lower(email) and lower(username) are unique, so they alone order
// rows totally; created_at ties are broken by id.
var sorts = map[string]sortSpec{
	SortCreatedDesc:  {"{created_at} DESC, {id} DESC", "({created_at}, {id}) < ($?::timestamptz, $?::uuid)", ""},
	SortCreatedAsc:   {"{created_at} ASC, {id} ASC", "({created_at}, {id}) > ($?::timestamptz, $?::uuid)", ""},
	SortEmailAsc:     {"{email} ASC", "{email} > $?::text", "{email}"},
	SortEmailDesc:    {"{email} DESC", "{email} < $?::text", "{email}"},
	SortUsernameAsc:  {"{username} ASC", "{username} > $?::text", "{username}"},
	SortUsernameDesc: {"{username} DESC", "{username} < $?::text", "{username}"},
}

// The sort keys as read from users u, from users_search s (migration 00005, which keeps email
// and username lowered) and from the page k of ids that a users_search query selects.
var (
	usersKeys  = strings.NewReplacer("{created_at}", "u.created_at", "{id}", "u.id", "{email}", "lower(u.email)", "{username}", "lower(u.username)")
	searchKeys = strings.NewReplacer("{created_at}", "s.created_at", "{id}", "s.id", "{email}", "s.email", "{username}", "s.username")
	pageKeys   = strings.NewReplacer("{created_at}", "k.created_at", "{id}", "k.id", "{email}", "k.email", "{username}", "k.username")
)

// keysOf returns spec with its keys read through r.
func keysOf(spec sortSpec, r *strings.Replacer) sortSpec {
	return sortSpec{orderBy: r.Replace(spec.orderBy), after: r.Replace(spec.after), key: r.Replace(spec.key)}
}

const userColumns = "u.id, u.email, u.username, u.hashed_password, u.full_name, u.role, u.is_active, u.is_verified, u.created_at, u.updated_at"

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
	var text, tripled string
	var pieces []string
	if f.Query != nil && *f.Query != "" {
		// Composed (NFC), as emails are stored and names almost always typed: "José" entered
		// with a combining accent finds the José stored composed.
		text = norm.NFC.String(strings.ToLower(*f.Query))
		stats := s.searchStats(ctx)
		pieces = searchPieces(text, stats.trigrams)
		tripled = shortSearch(text, stats.tripled)
	}
	// A rare q whose other filters users_search can answer too is paged there alone: its
	// matches are sorted from that narrow table and only the page's users rows are read.
	// Otherwise users is paged, joined to users_search for q, and the planner picks between
	// walking a sort index and the trigram index.
	narrow := (pieces != nil || tripled != "") && f.Role == nil && f.IsActive == nil && f.IsVerified == nil
	from := usersKeys
	if narrow {
		from = searchKeys
	}
	keys := keysOf(spec, from)
	var q postgres.Where
	if f.Cursor != "" {
		pos, err := cursor.Decode(f.Cursor, f.Sort)
		if err != nil {
			return Page{}, err
		}
		if spec.key != "" {
			q.Add(keys.after, pos.Value)
		} else {
			at, err := pos.Time()
			if err != nil {
				return Page{}, err
			}
			q.Add(keys.after, at, pos.ID)
		}
	}
	if f.Role != nil {
		q.Add("u.role = $?", *f.Role)
	}
	if f.IsActive != nil {
		q.Add("u.is_active = $?", *f.IsActive)
	}
	if f.IsVerified != nil {
		q.Add("u.is_verified = $?", *f.IsVerified)
	}
	created := from.Replace("{created_at}")
	if f.CreatedAfter != nil {
		q.Add(created+" >= $?", postgres.Bound(*f.CreatedAfter))
	}
	if f.CreatedBefore != nil {
		q.Add(created+" < $?", postgres.Bound(*f.CreatedBefore))
	}
	if text != "" {
		addSearch(&q, text, pieces, tripled)
	}
	key := "''"
	if keys.key != "" {
		key = keys.key
	}
	limit := q.Arg(f.Limit + 1)
	var sql string
	switch {
	case narrow:
		page := keysOf(spec, pageKeys)
		if page.key == "" {
			page.key = "''"
		}
		sql = fmt.Sprintf(`SELECT %s, %s FROM (
    SELECT s.id, s.created_at, s.email, s.username FROM users_search s WHERE %s ORDER BY %s LIMIT %s
) k JOIN users u ON u.id = k.id ORDER BY %s`, userColumns, page.key, q.String(), keys.orderBy, limit, page.orderBy)
	case text != "":
		sql = fmt.Sprintf(`SELECT %s, %s FROM users u JOIN users_search s ON s.id = u.id WHERE %s ORDER BY %s LIMIT %s`,
			userColumns, key, q.String(), keys.orderBy, limit)
	default:
		sql = fmt.Sprintf(`SELECT %s, %s FROM users u WHERE %s ORDER BY %s LIMIT %s`, userColumns, key, q.String(), keys.orderBy, limit)
	}

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

// searchStats returns the statistics that shape the text filter's query (see searchPieces and
// shortSearch); what is cached when they cannot be read.
func (s *Service) searchStats(ctx context.Context) searchStats {
	stats, err := s.store.searchStats.get(ctx, s.store.pool, s.now())
	if err != nil {
		s.logger.WarnContext(ctx, "search trigram statistics unavailable", "error", err)
	}
	return stats
}

// tripledSearch is the expression of users_search_tripled_idx (migration 00008): search with
// every character written three times.
const tripledSearch = `regexp_replace(s.search, '(.)', '\1\1\1', 'g')`

// addSearch adds the condition that text occurs in users_search s: through the tripled index
// when tripled is set (see shortSearch), through pieces when there are some (see
// searchPieces), else whole. The search column joins the fields with spaces, so a match there
// may span two of them ("example.com ada" in an email and a username); inField then keeps only
// matches inside one.
func addSearch(w *postgres.Where, text string, pieces []string, tripled string) {
	switch {
	case tripled != "":
		w.Add(tripledSearch+" LIKE $?", "%"+escapeLike(tripled)+"%")
		w.Add("s.search LIKE $?", "%"+escapeLike(text)+"%")
	case pieces == nil:
		w.Add("s.search LIKE $?", "%"+escapeLike(text)+"%")
	default:
		for _, p := range pieces {
			w.Add("s.search LIKE $?", "%"+escapeLike(p)+"%")
		}
	}
	w.Add(fmt.Sprintf(inField, w.Arg(text)))
}

// inField holds when the text at placeholder %[1]s (lower case) occurs within one field of
// users_search s: its email, its username, or the full name that follows them and their two
// separators in search.
const inField = `(strpos(s.email, %[1]s) > 0 OR strpos(s.username, %[1]s) > 0
	OR strpos(substr(s.search, length(s.email) + length(s.username) + 3), %[1]s) > 0)`

// Trigram frequencies, as the fraction of users whose search column holds the trigram.
const (
	// commonTrigram: reading the posting list of a trigram held more widely than this costs
	// more than the candidates it rules out.
	commonTrigram = 0.10
	// rareTrigram: substrings replace q only when they hold a trigram rarer than this, so the
	// index yields few candidates whatever q is.
	rareTrigram = 0.01
	// trigramStatsTTL: statistics change only when the table is analyzed.
	trigramStatsTTL = 5 * time.Minute
)

// searchStats are the most common trigrams of the search column (users_search_trgm_stats) and
// of its tripled form (users_search_tripled_stats), with the fraction of users holding each,
// as ANALYZE keeps them. A trigram missing from a map is rarer than every one listed; a map is
// nil until read, or while the table has never been analyzed.
type searchStats struct {
	trigrams, tripled map[string]float64
}

// searchStatsCache caches the searchStats. The zero value is ready to use.
type searchStatsCache struct {
	mu    sync.Mutex
	at    time.Time // when stats were last read or tried
	stats searchStats
}

// get returns the statistics, reading them again once they are trigramStatsTTL old. One
// caller reads; the others go on with what is cached meanwhile.
func (t *searchStatsCache) get(ctx context.Context, pool *pgxpool.Pool, now time.Time) (searchStats, error) {
	t.mu.Lock()
	stats := t.stats
	stale := t.at.IsZero() || now.Sub(t.at) >= trigramStatsTTL
	if stale {
		t.at = now
	}
	t.mu.Unlock()
	if !stale {
		return stats, nil
	}
	// pg_stats_ext_exprs keeps the elements as anyarray; its text form is a text[] literal.
	rows, err := pool.Query(ctx, `SELECT s.statistics_name, e.trigram, e.freq
FROM pg_stats_ext_exprs s, unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) AS e (trigram, freq)
WHERE s.statistics_schemaname = current_schema()
  AND s.statistics_name IN ('users_search_trgm_stats', 'users_search_tripled_stats') AND e.trigram IS NOT NULL`)
	if err != nil {
		return stats, fmt.Errorf("read trigram statistics: %w", err)
	}
	var fresh searchStats
	var name, trigram string
	var f float64
	if _, err := pgx.ForEachRow(rows, []any{&name, &trigram, &f}, func() error {
		m := &fresh.trigrams
		if name == "users_search_tripled_stats" {
			m = &fresh.tripled
		}
		if *m == nil {
			*m = map[string]float64{}
		}
		(*m)[trigram] = f
		return nil
	}); err != nil {
		return stats, fmt.Errorf("read trigram statistics: %w", err)
	}
	t.mu.Lock()
	t.stats = fresh
	t.mu.Unlock()
	return fresh, nil
}

// shortSearch returns text written three times over, character by character, when
// users_search_tripled_idx (migration 00008) is to be asked for it: text is ASCII, pg_trgm
// draws no trigram from it (one or two characters, say), and the statistics of the tripled
// column show a trigram of the tripled text that fewer than rareTrigram of users hold.
// Otherwise "": no statistics (walking a sort index is then as good a guess as any), or only
// common trigrams, whose matches a walk finds within a few pages of rows.
func shortSearch(text string, tripledFreq map[string]float64) string {
	if tripledFreq == nil || len(likeTrigrams(text)) > 0 {
		return ""
	}
	var b strings.Builder
	for i := range len(text) {
		if text[i] >= utf8.RuneSelf {
			return ""
		}
		b.WriteString(strings.Repeat(text[i:i+1], 3))
	}
	tripled := b.String()
	if slices.ContainsFunc(likeTrigrams(tripled), func(t string) bool { return tripledFreq[t] < rareTrigram }) {
		return tripled
	}
	return ""
}

// window is a substring text[from:to] and the trigrams pg_trgm draws from it.
type window struct {
	from, to int
	trigrams []string
}

// searchPieces returns substrings of text (already lower case) to ask the trigram index for in
// its place, or nil when text should be asked for whole: without statistics, when none of its
// trigrams is common (nothing to save) or when no substring of only uncommon trigrams holds a
// rare one.
//
// pg_trgm answers `search LIKE '%text%'` from the posting list of every trigram of text, read
// whole: a trigram that most users hold (the "com" of every email) costs milliseconds however
// rare text is. When the statistics show such trigrams next to a rare one, the index is asked
// only for substrings of text whose trigrams are all uncommon, and text itself is matched by
// strpos, which no index serves: the same rows, from a much cheaper index scan.
func searchPieces(text string, freq map[string]float64) []string {
	if freq == nil {
		return nil
	}
	uncommon := func(w window) bool {
		return !slices.ContainsFunc(w.trigrams, func(t string) bool { return freq[t] > commonTrigram })
	}
	var keep []window
	common, rare := false, false
	for _, w := range trigramWindows(text) {
		if !uncommon(w) {
			common = true
			continue
		}
		keep = append(keep, w)
		// A trigram missing from the statistics is rarer than the least common listed one.
		rare = rare || slices.ContainsFunc(w.trigrams, func(t string) bool { return freq[t] < rareTrigram })
	}
	if !common || !rare {
		return nil
	}
	// Overlapping windows join while the joined substring still holds no common trigram: fewer,
	// longer LIKE patterns.
	var pieces []string
	cur := keep[0]
	for _, w := range keep[1:] {
		if w.from < cur.to {
			joined := window{from: cur.from, to: max(cur.to, w.to)}
			joined.trigrams = likeTrigrams(text[joined.from:joined.to])
			if uncommon(joined) {
				cur = joined
				continue
			}
		}
		pieces = append(pieces, text[cur.from:cur.to])
		cur = w
	}
	return append(pieces, text[cur.from:cur.to])
}

// trigramWindows returns, for each trigram pg_trgm draws from the pattern '%' + text + '%' that
// can be told without the database's locale, the shortest substring of text whose own pattern
// draws it (and at most one other trigram of the same word). Words are runs of ASCII letters
// and digits; a word next to a non-ASCII character may run on past it, so only its inner
// trigrams are certain there.
func trigramWindows(text string) []window {
	var out []window
	add := func(from, to int) {
		out = append(out, window{from: from, to: to, trigrams: likeTrigrams(text[from:to])})
	}
	for i, j := range words(text) {
		sepBefore := i > 0 && text[i-1] < utf8.RuneSelf
		sepAfter := j < len(text) && text[j] < utf8.RuneSelf
		if sepBefore {
			add(i-1, i+1) // "  a"
			if j-i >= 2 {
				add(i-1, i+2) // " ab", with "  a"
			}
		}
		for k := i; k+3 <= j; k++ {
			add(k, k+3) // "abc"
		}
		switch {
		case sepAfter && j-i >= 2:
			add(j-2, j+1) // "yz "
		case sepAfter && sepBefore:
			add(i-1, j+1) // " a ", with "  a"
		}
	}
	return out
}

// likeTrigrams returns the trigrams pg_trgm's GIN support draws from the LIKE pattern
// '%' + s + '%' for an ASCII s (generate_wildcard_trgm in contrib/pg_trgm): each run of letters
// and digits is a word, padded with two spaces in front when a character of s precedes it and
// with one behind when one follows it, then cut into every three consecutive characters.
// Escaping s for LIKE does not change them: an escaped character is a non-word character.
func likeTrigrams(s string) []string {
	var out []string
	for i, j := range words(s) {
		w := s[i:j]
		if i > 0 {
			w = "  " + w
		}
		if j < len(s) {
			w += " "
		}
		for k := 0; k+3 <= len(w); k++ {
			out = append(out, w[k:k+3])
		}
	}
	return out
}

// words yields the start and end of each run of ASCII letters and digits in s.
func words(s string) iter.Seq2[int, int] {
	return func(yield func(int, int) bool) {
		for i := 0; i < len(s); {
			if !isWordByte(s[i]) {
				i++
				continue
			}
			j := i
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			if !yield(i, j) {
				return
			}
			i = j
		}
	}
}

// isWordByte reports whether b is an ASCII letter or digit, a word character of pg_trgm in any
// locale. Upper case does not occur: text is lower case.
func isWordByte(b byte) bool {
	return 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || 'A' <= b && b <= 'Z'
}
