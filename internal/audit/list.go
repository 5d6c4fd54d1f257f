package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/portcullis/portcullis/internal/cursor"
	"github.com/portcullis/portcullis/internal/postgres"
)

// Entry is a recorded event as the trail returns it.
type Entry struct {
	ID         uuid.UUID
	OccurredAt time.Time
	ActorID    *uuid.UUID
	Action     string
	TargetType *string
	TargetID   *string
	Outcome    string
	IPAddress  *netip.Addr
	UserAgent  *string
	RequestID  *string
	Detail     map[string]any
}

// Filter selects the entries of one page, newest first.
type Filter struct {
	Limit          int
	Cursor         string
	ActorID        *uuid.UUID
	TargetType     *string
	TargetID       *string
	Action         *string
	OccurredAfter  *time.Time
	OccurredBefore *time.Time
}

// Page is one page of entries; NextCursor is empty on the last page.
type Page struct {
	Entries    []Entry
	NextCursor string
}

// Trail reads the audit trail.
type Trail struct{ pool *pgxpool.Pool }

// NewTrail returns a Trail on pool.
func NewTrail(pool *pgxpool.Pool) *Trail { return &Trail{pool: pool} }

const sortNewest = "-occurred_at"

// List returns one page of entries, newest first, by keyset on (occurred_at, id). It returns
// cursor.ErrInvalid for a cursor it did not hand out. Filters are bind parameters; the query
// text varies only in which of them are present.
func (t *Trail) List(ctx context.Context, f Filter) (Page, error) {
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = 50
	}
	var w postgres.Where
	if f.Cursor != "" {
		pos, err := cursor.Decode(f.Cursor, sortNewest)
		if err != nil {
			return Page{}, err
		}
		at, err := pos.Time()
		if err != nil {
			return Page{}, err
		}
		w.Add("(occurred_at, id) < ($?::timestamptz, $?::uuid)", at, pos.ID)
	}
	if f.ActorID != nil {
		w.Add("actor_id = $?", *f.ActorID)
	}
	if f.TargetType != nil {
		w.Add("target_type = $?", *f.TargetType)
	}
	if f.TargetID != nil {
		if f.TargetType == nil {
			// Every event with a target_id has one of these types (Params sets both, the
			// schema checks the type): naming them lets audit_events_target_idx, which leads
			// with target_type, find the target instead of a scan of the whole trail.
			w.Add("target_type IN ($?, $?)", TargetUser, TargetSession)
		}
		w.Add("target_id = $?", canonicalTarget(*f.TargetID))
	}
	if f.Action != nil {
		w.Add("action = $?", *f.Action)
	}
	if f.OccurredAfter != nil {
		w.Add("occurred_at >= $?", postgres.Bound(*f.OccurredAfter))
	}
	if f.OccurredBefore != nil {
		w.Add("occurred_at < $?", postgres.Bound(*f.OccurredBefore))
	}
	sql := fmt.Sprintf(`SELECT id, occurred_at, actor_id, action, target_type, target_id, outcome, ip_address, user_agent, request_id, detail
FROM audit_events WHERE %s ORDER BY occurred_at DESC, id DESC LIMIT %s`, w.String(), w.Arg(f.Limit+1))
	rows, err := t.pool.Query(ctx, sql, append([]any{pgx.QueryExecModeExec}, w.Args()...)...)
	if err != nil {
		return Page{}, fmt.Errorf("list audit events: %w", err)
	}
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Entry, error) {
		var e Entry
		var detail []byte
		err := r.Scan(&e.ID, &e.OccurredAt, &e.ActorID, &e.Action, &e.TargetType, &e.TargetID, &e.Outcome, &e.IPAddress, &e.UserAgent, &e.RequestID, &detail)
		if err == nil {
			err = json.Unmarshal(detail, &e.Detail)
		}
		return e, err
	})
	if err != nil {
		return Page{}, fmt.Errorf("list audit events: %w", err)
	}
	var page Page
	if len(entries) > f.Limit {
		last := entries[f.Limit-1]
		page.NextCursor = cursor.Encode(cursor.Position{Sort: sortNewest, Value: cursor.TimeValue(last.OccurredAt), ID: last.ID})
		entries = entries[:f.Limit]
	}
	page.Entries = entries
	return page, nil
}

// canonicalTarget returns id as the trail stores target ids when it is a UUID in any form
// uuid.Parse reads (upper case, braces, no hyphens): uuid.UUID.String, lower case. Every
// target is a user or a session, named by its UUID, and a UUID is the same whatever its case, as
// actor_id (a uuid column) already compares it. Anything else is compared as written.
func canonicalTarget(id string) string {
	if u, err := uuid.Parse(id); err == nil {
		return u.String()
	}
	return id
}
