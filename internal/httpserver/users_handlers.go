package httpserver

import (
	"context"
	"errors"
	"strings"

	"github.com/google/uuid"
	"github.com/oapi-codegen/nullable"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/auth"
	"github.com/portcullis/portcullis/internal/sessions"
	"github.com/portcullis/portcullis/internal/users"
)

// usersHandler serves the "users" tag: the signed-in user's own account.
type usersHandler struct {
	auth     *auth.Service
	users    *users.Service
	sessions *sessions.Service
	// askUsername spends one event of the client IP's registration budget, or returns the 429
	// of a spent one: a username change answers whether another account holds the name (409
	// username-taken), as a registration does, and no faster.
	askUsername func(context.Context) error
}

func (h usersHandler) GetMe(ctx context.Context, _ api.GetMeRequestObject) (api.GetMeResponseObject, error) {
	p, ok := auth.PrincipalFrom(ctx)
	if !ok {
		return nil, auth.ErrNotAuthenticated
	}
	u, err := h.users.Get(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	return meResponse{u}, nil
}

func (h usersHandler) UpdateMe(ctx context.Context, req api.UpdateMeRequestObject) (api.UpdateMeResponseObject, error) {
	p, ok := auth.PrincipalFrom(ctx)
	if !ok {
		return nil, auth.ErrNotAuthenticated
	}
	if name := req.Body.Username; name != nil {
		cur, err := h.users.Get(ctx, p.UserID)
		if err != nil {
			return nil, err
		}
		if !strings.EqualFold(*name, cur.Username) { // one's own name, in any case, asks about no one
			if err := h.askUsername(ctx); err != nil {
				return nil, err
			}
		}
	}
	upd := users.ProfileUpdate{Username: req.Body.Username, IfMatch: req.Params.IfMatch, Session: p.SessionID}
	upd.SetFullName, upd.FullName = nullableField(req.Body.FullName)
	u, err := h.users.UpdateProfile(ctx, p.UserID, upd)
	if errors.Is(err, users.ErrSessionEnded) {
		return nil, sessions.ErrSessionRevoked
	}
	if err != nil {
		return nil, err
	}
	return api.UpdateMe200JSONResponse{Body: toAPIUser(u), Headers: api.UpdateMe200ResponseHeaders{ETag: new(users.ETag(u))}}, nil
}

func (h usersHandler) ListMySessions(ctx context.Context, _ api.ListMySessionsRequestObject) (api.ListMySessionsResponseObject, error) {
	p, ok := auth.PrincipalFrom(ctx)
	if !ok {
		return nil, auth.ErrNotAuthenticated
	}
	list, err := h.sessions.List(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	items := make([]api.Session, len(list))
	for i, s := range list {
		items[i] = toAPISession(s, p.SessionID)
	}
	return api.ListMySessions200JSONResponse{Items: items}, nil
}

func (h usersHandler) RevokeMySession(ctx context.Context, req api.RevokeMySessionRequestObject) (api.RevokeMySessionResponseObject, error) {
	if err := h.auth.RevokeSession(ctx, req.SessionId); err != nil {
		return nil, err
	}
	return api.RevokeMySession204Response{}, nil
}

func toAPIUser(u users.User) api.User {
	out := api.User{
		Id: u.ID, Email: api.Email(u.Email), Username: u.Username, Role: api.Role(u.Role),
		IsActive: u.IsActive, IsVerified: u.IsVerified, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt,
		FullName: nullable.NewNullNullable[string](),
	}
	if u.FullName != nil {
		out.FullName = nullable.NewNullableWithValue(*u.FullName)
	}
	return out
}

// currentSession is the session the request was made with, if any.
func currentSession(ctx context.Context) uuid.UUID {
	p, _ := auth.PrincipalFrom(ctx)
	return p.SessionID
}

func toAPISession(s sessions.Session, current uuid.UUID) api.Session {
	out := api.Session{
		Id: s.ID, CreatedAt: s.CreatedAt, LastUsedAt: s.LastUsedAt, ExpiresAt: s.ExpiresAt,
		Current:   s.ID == current,
		IpAddress: nullable.NewNullNullable[string](),
		UserAgent: nullable.NewNullNullable[string](),
	}
	if s.IPAddress != nil {
		out.IpAddress = nullable.NewNullableWithValue(s.IPAddress.String())
	}
	if s.UserAgent != nil {
		out.UserAgent = nullable.NewNullableWithValue(*s.UserAgent)
	}
	return out
}
