package auth

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis/portcullis/internal/apperr"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/sessions"
	"github.com/portcullis/portcullis/internal/tokens"
	"github.com/portcullis/portcullis/internal/users"
)

// ErrNotAuthenticated is returned by operations that need a principal when there is none.
var ErrNotAuthenticated = apperr.New(apperr.Unauthenticated, "missing-token", "this operation needs a bearer access token")

// TokenPair is what a login or a refresh hands out.
type TokenPair struct {
	AccessToken      string
	AccessExpiresAt  time.Time
	RefreshToken     string
	RefreshExpiresAt time.Time
	SessionID        uuid.UUID
}

// Service signs users in and out.
type Service struct {
	users    *users.Service
	sessions *sessions.Service
	tokens   *tokens.Service
}

// NewService returns a Service.
func NewService(u *users.Service, s *sessions.Service, t *tokens.Service) *Service {
	return &Service{users: u, sessions: s, tokens: t}
}

// Login checks credentials and opens a session. It returns users.ErrInvalidCredentials,
// users.ErrAccountDisabled or an Invalid error when neither or both identifiers are given.
func (s *Service) Login(ctx context.Context, c users.Credentials, client sessions.Client) (TokenPair, error) {
	u, err := s.users.Authenticate(ctx, c)
	if err != nil {
		return TokenPair{}, err
	}
	issued, err := s.sessions.Open(ctx, u.ID, u.Role, client)
	if err != nil {
		return TokenPair{}, err
	}
	return s.pair(issued)
}

// Refresh spends a refresh token for a new pair. It returns the errors of sessions.Rotate.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (TokenPair, error) {
	issued, err := s.sessions.Rotate(ctx, refreshToken)
	if err != nil {
		return TokenPair{}, err
	}
	return s.pair(issued)
}

func (s *Service) pair(i sessions.Issued) (TokenPair, error) {
	access, exp, err := s.tokens.Issue(i.UserID, i.SessionID, i.Role)
	if err != nil {
		return TokenPair{}, err
	}
	return TokenPair{AccessToken: access, AccessExpiresAt: exp, RefreshToken: i.RefreshToken, RefreshExpiresAt: i.RefreshExpiresAt, SessionID: i.SessionID}, nil
}

// Authenticate verifies a bearer access token and that its session is still live. It returns
// tokens.ErrInvalidToken or sessions.ErrSessionRevoked.
func (s *Service) Authenticate(ctx context.Context, bearer string) (Principal, error) {
	claims, err := s.tokens.Verify(ctx, bearer)
	if err != nil {
		return Principal{}, err
	}
	st, err := s.sessions.Check(ctx, claims.SessionID, claims.UserID)
	if err != nil {
		return Principal{}, err
	}
	return Principal{UserID: st.UserID, SessionID: st.SessionID, Role: st.Role}, nil
}

// Logout ends the caller's session.
func (s *Service) Logout(ctx context.Context) error {
	p, ok := PrincipalFrom(ctx)
	if !ok {
		return ErrNotAuthenticated
	}
	return s.sessions.Revoke(ctx, p.SessionID, sessions.ReasonLogout, audit.Event{Action: audit.ActionLogout, Actor: &p.UserID})
}

// LogoutAll ends every session of the caller, the current one included.
func (s *Service) LogoutAll(ctx context.Context) error {
	p, ok := PrincipalFrom(ctx)
	if !ok {
		return ErrNotAuthenticated
	}
	return s.sessions.RevokeAll(ctx, p.UserID, uuid.Nil, sessions.ReasonLogoutAll, audit.Event{Action: audit.ActionLogoutAll, Actor: &p.UserID})
}

// RevokeSession ends one of the caller's own sessions. It returns sessions.ErrNotFound for a
// session that is not the caller's or not live.
func (s *Service) RevokeSession(ctx context.Context, id uuid.UUID) error {
	p, ok := PrincipalFrom(ctx)
	if !ok {
		return ErrNotAuthenticated
	}
	return s.sessions.RevokeOwned(ctx, p.UserID, id, sessions.ReasonRevokedByUser, audit.Event{Action: audit.ActionSessionRevoke, Actor: &p.UserID})
}

// ChangePassword changes the caller's password and ends their other sessions. It returns the
// errors of users.Service.ChangePassword.
func (s *Service) ChangePassword(ctx context.Context, current, next string) error {
	p, ok := PrincipalFrom(ctx)
	if !ok {
		return ErrNotAuthenticated
	}
	revoked, err := s.users.ChangePassword(ctx, p.UserID, current, next, p.SessionID)
	if err != nil {
		return err
	}
	s.sessions.Forget(ctx, revoked...)
	return nil
}
