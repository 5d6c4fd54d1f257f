package httpserver

import (
	"context"
	"time"

	api "github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/auth"
	"github.com/portcullis/portcullis/internal/users"
)

// authHandler serves the "auth" tag.
type authHandler struct {
	auth  *auth.Service
	users *users.Service
}

func (h authHandler) RegisterUser(ctx context.Context, req api.RegisterUserRequestObject) (api.RegisterUserResponseObject, error) {
	u, err := h.users.Register(ctx, users.NewUser{
		Email: string(req.Body.Email), Username: req.Body.Username, Password: req.Body.Password, FullName: req.Body.FullName,
	})
	if err != nil {
		return nil, err
	}
	// The new user reads their account at /users/me, with the token of their first login.
	return api.RegisterUser201JSONResponse{Body: toAPIUser(u), Headers: api.RegisterUser201ResponseHeaders{
		Location: new("/api/v1/users/me"), ETag: new(users.ETag(u)),
	}}, nil
}

func (h authHandler) Login(ctx context.Context, req api.LoginRequestObject) (api.LoginResponseObject, error) {
	c := users.Credentials{Password: req.Body.Password}
	if req.Body.Email != nil {
		c.Email = string(*req.Body.Email)
	}
	if req.Body.Username != nil {
		c.Username = *req.Body.Username
	}
	pair, err := h.auth.Login(ctx, c, clientFrom(ctx))
	if err != nil {
		return nil, err
	}
	return api.Login200JSONResponse(toAPITokenPair(pair)), nil
}

func (h authHandler) RefreshTokens(ctx context.Context, req api.RefreshTokensRequestObject) (api.RefreshTokensResponseObject, error) {
	pair, err := h.auth.Refresh(ctx, req.Body.RefreshToken)
	if err != nil {
		return nil, err
	}
	return api.RefreshTokens200JSONResponse(toAPITokenPair(pair)), nil
}

func (h authHandler) Logout(ctx context.Context, _ api.LogoutRequestObject) (api.LogoutResponseObject, error) {
	if err := h.auth.Logout(ctx); err != nil {
		return nil, err
	}
	return api.Logout204Response{}, nil
}

func (h authHandler) LogoutAll(ctx context.Context, _ api.LogoutAllRequestObject) (api.LogoutAllResponseObject, error) {
	if err := h.auth.LogoutAll(ctx); err != nil {
		return nil, err
	}
	return api.LogoutAll204Response{}, nil
}

func (h authHandler) ChangePassword(ctx context.Context, req api.ChangePasswordRequestObject) (api.ChangePasswordResponseObject, error) {
	if err := h.auth.ChangePassword(ctx, req.Body.CurrentPassword, req.Body.NewPassword); err != nil {
		return nil, err
	}
	return api.ChangePassword204Response{}, nil
}

func toAPITokenPair(p auth.TokenPair) api.TokenPair {
	now := time.Now()
	return api.TokenPair{
		AccessToken:      p.AccessToken,
		TokenType:        api.Bearer,
		ExpiresIn:        int(p.AccessExpiresAt.Sub(now).Round(time.Second).Seconds()),
		RefreshToken:     p.RefreshToken,
		RefreshExpiresIn: int(p.RefreshExpiresAt.Sub(now).Round(time.Second).Seconds()),
		SessionId:        p.SessionID,
	}
}
