package httpserver

import (
	"context"

	"github.com/google/uuid"
	"github.com/oapi-codegen/nullable"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/admin"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/users"
)

// adminHandler serves the "admin" tag. Permissions are enforced before it runs, from the
// scopes each operation declares in the spec.
type adminHandler struct{ admin *admin.Service }

func (h adminHandler) AdminListUsers(ctx context.Context, req api.AdminListUsersRequestObject) (api.AdminListUsersResponseObject, error) {
	p := req.Params
	f := users.Filter{
		Cursor: deref(p.Cursor), Role: (*string)(p.Role), IsActive: p.IsActive, IsVerified: p.IsVerified,
		CreatedAfter: p.CreatedAfter, CreatedBefore: p.CreatedBefore, Query: p.Q,
	}
	if p.Limit != nil {
		f.Limit = *p.Limit
	}
	if p.Sort != nil {
		f.Sort = string(*p.Sort)
	}
	page, err := h.admin.ListUsers(ctx, f)
	if err != nil {
		return nil, err
	}
	out := api.UserPage{Items: make([]api.User, len(page.Users)), NextCursor: optional(page.NextCursor)}
	for i, u := range page.Users {
		out.Items[i] = toAPIUser(u)
	}
	return api.AdminListUsers200JSONResponse(out), nil
}

func (h adminHandler) AdminCreateUser(ctx context.Context, req api.AdminCreateUserRequestObject) (api.AdminCreateUserResponseObject, error) {
	b := req.Body
	u, err := h.admin.CreateUser(ctx, users.AdminNewUser{
		NewUser:    users.NewUser{Email: string(b.Email), Username: b.Username, Password: b.Password, FullName: b.FullName},
		Role:       string(b.Role),
		IsVerified: b.IsVerified != nil && *b.IsVerified,
	})
	if err != nil {
		return nil, err
	}
	return api.AdminCreateUser201JSONResponse{Body: toAPIUser(u), Headers: api.AdminCreateUser201ResponseHeaders{
		Location: new("/api/v1/admin/users/" + u.ID.String()), ETag: new(users.ETag(u)),
	}}, nil
}

func (h adminHandler) AdminGetUser(ctx context.Context, req api.AdminGetUserRequestObject) (api.AdminGetUserResponseObject, error) {
	u, err := h.admin.GetUser(ctx, req.UserId)
	if err != nil {
		return nil, err
	}
	return api.AdminGetUser200JSONResponse{Body: toAPIUser(u), Headers: api.AdminGetUser200ResponseHeaders{ETag: new(users.ETag(u))}}, nil
}

func (h adminHandler) AdminUpdateUser(ctx context.Context, req api.AdminUpdateUserRequestObject) (api.AdminUpdateUserResponseObject, error) {
	b := req.Body
	p := users.AdminPatch{Role: (*string)(b.Role), IsActive: b.IsActive, IsVerified: b.IsVerified, Username: b.Username, IfMatch: req.Params.IfMatch}
	p.SetFullName, p.FullName = nullableField(b.FullName)
	u, err := h.admin.UpdateUser(ctx, req.UserId, p)
	if err != nil {
		return nil, err
	}
	return api.AdminUpdateUser200JSONResponse{Body: toAPIUser(u), Headers: api.AdminUpdateUser200ResponseHeaders{ETag: new(users.ETag(u))}}, nil
}

func (h adminHandler) AdminDeleteUser(ctx context.Context, req api.AdminDeleteUserRequestObject) (api.AdminDeleteUserResponseObject, error) {
	if err := h.admin.DeleteUser(ctx, req.UserId, req.Params.IfMatch); err != nil {
		return nil, err
	}
	return api.AdminDeleteUser204Response{}, nil
}

func (h adminHandler) AdminListUserSessions(ctx context.Context, req api.AdminListUserSessionsRequestObject) (api.AdminListUserSessionsResponseObject, error) {
	list, err := h.admin.ListSessions(ctx, req.UserId)
	if err != nil {
		return nil, err
	}
	items := make([]api.Session, len(list))
	for i, s := range list {
		items[i] = toAPISession(s, currentSession(ctx))
	}
	return api.AdminListUserSessions200JSONResponse{Items: items}, nil
}

func (h adminHandler) AdminRevokeUserSessions(ctx context.Context, req api.AdminRevokeUserSessionsRequestObject) (api.AdminRevokeUserSessionsResponseObject, error) {
	if err := h.admin.RevokeSessions(ctx, req.UserId); err != nil {
		return nil, err
	}
	return api.AdminRevokeUserSessions204Response{}, nil
}

func (h adminHandler) AdminRevokeUserSession(ctx context.Context, req api.AdminRevokeUserSessionRequestObject) (api.AdminRevokeUserSessionResponseObject, error) {
	if err := h.admin.RevokeSession(ctx, req.UserId, req.SessionId); err != nil {
		return nil, err
	}
	return api.AdminRevokeUserSession204Response{}, nil
}

func (h adminHandler) AdminListAuditEvents(ctx context.Context, req api.AdminListAuditEventsRequestObject) (api.AdminListAuditEventsResponseObject, error) {
	p := req.Params
	f := audit.Filter{
		Cursor: deref(p.Cursor), ActorID: p.ActorId, TargetType: (*string)(p.TargetType), TargetID: p.TargetId,
		Action: p.Action, OccurredAfter: p.OccurredAfter, OccurredBefore: p.OccurredBefore,
	}
	if p.Limit != nil {
		f.Limit = *p.Limit
	}
	page, err := h.admin.ListAuditEvents(ctx, f)
	if err != nil {
		return nil, err
	}
	out := api.AuditEventPage{Items: make([]api.AuditEvent, len(page.Entries)), NextCursor: optional(page.NextCursor)}
	for i, e := range page.Entries {
		out.Items[i] = toAPIAuditEvent(e)
	}
	return api.AdminListAuditEvents200JSONResponse(out), nil
}

func toAPIAuditEvent(e audit.Entry) api.AuditEvent {
	out := api.AuditEvent{
		Id: e.ID, OccurredAt: e.OccurredAt, Action: e.Action, Outcome: api.AuditEventOutcome(e.Outcome),
		Detail: e.Detail, ActorId: nullable.NewNullNullable[uuid.UUID](),
		TargetType: nullOf(e.TargetType), TargetId: nullOf(e.TargetID), UserAgent: nullOf(e.UserAgent), RequestId: nullOf(e.RequestID),
		IpAddress: nullable.NewNullNullable[string](),
	}
	if e.ActorID != nil {
		out.ActorId = nullable.NewNullableWithValue(*e.ActorID)
	}
	if e.IPAddress != nil {
		out.IpAddress = nullable.NewNullableWithValue(e.IPAddress.String())
	}
	if out.Detail == nil {
		out.Detail = map[string]any{}
	}
	return out
}

// nullOf maps a nil pointer to JSON null.
func nullOf(s *string) nullable.Nullable[string] {
	if s == nil {
		return nullable.NewNullNullable[string]()
	}
	return nullable.NewNullableWithValue(*s)
}

// optional maps "" to JSON null.
func optional(s string) nullable.Nullable[string] {
	if s == "" {
		return nullable.NewNullNullable[string]()
	}
	return nullable.NewNullableWithValue(s)
}

// nullableField reads a PATCH field where absent keeps, null clears and a value sets.
func nullableField(n nullable.Nullable[string]) (set bool, value *string) {
	if !n.IsSpecified() {
		return false, nil
	}
	if n.IsNull() {
		return true, nil
	}
	v := n.MustGet()
	return true, &v
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
