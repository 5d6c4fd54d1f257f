// Package audit records who did what to whom. Events are written by the stores in the same
// transaction as the change they record, so the trail never claims a change that was rolled
// back nor misses one that was committed. Details never hold secrets.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	dbgen "github.com/portcullis/portcullis/gen/db"
)

// Actions recorded in the trail.
const (
	ActionRegister         = "user.register"
	ActionLogin            = "user.login"
	ActionRefresh          = "session.refresh"
	ActionRefreshReuse     = "session.refresh_reuse_detected"
	ActionLogout           = "session.logout"
	ActionLogoutAll        = "session.logout_all"
	ActionSessionRevoke    = "session.revoke"
	ActionPasswordChange   = "user.password_change"
	ActionProfileUpdate    = "user.profile_update"
	ActionAdminCreateUser  = "admin.user_create"
	ActionAdminUpdateUser  = "admin.user_update"
	ActionAdminRoleChange  = "admin.role_change"
	ActionAdminDeleteUser  = "admin.user_delete"
	ActionAdminRevokeAll   = "admin.sessions_revoke_all"
	ActionAdminRevokeOne   = "admin.session_revoke"
	ActionPasswordReset    = "admin.password_reset"
	ActionRateLimitLockout = "security.lockout"
	ActionAuditPurge       = "audit.purge"
	TargetUser             = "user"
	TargetSession          = "session"
	OutcomeSuccess         = "success"
	OutcomeFailure         = "failure"
	maxUserAgent           = 512
	maxRequestID           = 64
)

// Event is one entry of the trail. ID, time and request metadata are filled in by Record.
type Event struct {
	Action     string
	Actor      *uuid.UUID
	TargetType string
	TargetID   string
	Failed     bool
	Detail     map[string]any
}

// Request is where a request came from, for the trail.
type Request struct {
	IP        netip.Addr
	UserAgent string
	ID        string
}

type requestKey struct{}

// WithRequest returns a context that carries r for every event recorded under it.
func WithRequest(ctx context.Context, r Request) context.Context {
	return context.WithValue(ctx, requestKey{}, r)
}

// RequestFrom returns the request metadata carried by ctx.
func RequestFrom(ctx context.Context) Request {
	r, _ := ctx.Value(requestKey{}).(Request)
	return r
}

// Record writes e through q, which the caller runs inside the transaction of the change.
func Record(ctx context.Context, q *dbgen.Queries, e Event) error {
	return q.InsertAuditEvent(ctx, Params(ctx, e, time.Now().UTC()))
}

// Params turns e into the row to insert, for stores that insert it with their own statement.
func Params(ctx context.Context, e Event, now time.Time) dbgen.InsertAuditEventParams {
	r := RequestFrom(ctx)
	p := dbgen.InsertAuditEventParams{
		ID: uuid.Must(uuid.NewV7()), OccurredAt: now, ActorID: e.Actor, Action: e.Action,
		Outcome: OutcomeSuccess, Detail: []byte("{}"),
	}
	if e.Failed {
		p.Outcome = OutcomeFailure
	}
	if e.TargetType != "" {
		p.TargetType, p.TargetID = &e.TargetType, &e.TargetID
	}
	if r.IP.IsValid() {
		ip := r.IP.Unmap()
		p.IpAddress = &ip
	}
	if ua := truncate(printable(r.UserAgent), maxUserAgent); ua != "" {
		p.UserAgent = &ua
	}
	if id := truncate(printable(r.ID), maxRequestID); id != "" {
		p.RequestID = &id
	}
	if len(e.Detail) > 0 {
		if b, err := json.Marshal(e.Detail); err == nil && len(b) <= 4096 {
			p.Detail = b
		} else {
			p.Detail = []byte(fmt.Sprintf(`{"detail_dropped":%q}`, "too large or not encodable"))
		}
	}
	return p
}

// UserTarget is a shorthand for events about a user.
func UserTarget(e Event, id uuid.UUID) Event {
	e.TargetType, e.TargetID = TargetUser, id.String()
	return e
}

// SessionTarget is a shorthand for events about a session.
func SessionTarget(e Event, id uuid.UUID) Event {
	e.TargetType, e.TargetID = TargetSession, id.String()
	return e
}

// Ptr returns a pointer to id, for Event.Actor.
func Ptr(id uuid.UUID) *uuid.UUID { return &id }

// printable drops control characters and invalid UTF-8, which PostgreSQL text may refuse.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && (s[n]&0xC0) == 0x80 { // do not split a UTF-8 sequence
		n--
	}
	return s[:n]
}
