package postgres

import (
	"fmt"
	"strings"
	"time"
)

// Where builds the WHERE clause of a query whose shape varies at run time (optional filters,
// a keyset position). Conditions use `$?` placeholders, numbered in the order their arguments
// are added, so values are always bind parameters and never spliced into the text.
type Where struct {
	conds []string
	args  []any
}

// Add appends a condition with one `$?` per argument.
func (w *Where) Add(cond string, args ...any) {
	for _, a := range args {
		w.args = append(w.args, a)
		cond = strings.Replace(cond, "$?", fmt.Sprintf("$%d", len(w.args)), 1)
	}
	w.conds = append(w.conds, cond)
}

// Arg adds an argument that is not a condition (a LIMIT, say) and returns its placeholder.
func (w *Where) Arg(v any) string {
	w.args = append(w.args, v)
	return fmt.Sprintf("$%d", len(w.args))
}

// String is the conditions joined with AND, or "true" when there are none.
func (w *Where) String() string {
	if len(w.conds) == 0 {
		return "true"
	}
	return strings.Join(w.conds, " AND ")
}

// Args are the bind arguments, in placeholder order.
func (w *Where) Args() []any { return w.args }

// Bound returns the instant a timestamptz column (whole microseconds) is compared with for the
// bound t: t itself, or the next whole microsecond when t falls between two. Then `col >= $1`
// and `col < $1` hold exactly when they would against t. pgx truncates a time's nanoseconds,
// which let `created_at >= T` take a row from just before T, and `< T` leave out one before it.
func Bound(t time.Time) time.Time {
	if c := t.Truncate(time.Microsecond); !c.Equal(t) {
		return c.Add(time.Microsecond)
	}
	return t
}
