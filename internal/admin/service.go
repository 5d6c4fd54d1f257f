// Package admin is what administrators do to other accounts: create, change, delete, end their
// sessions, and read the audit trail. It orchestrates the users and sessions domains so that a
// change reaches every instance's session cache at once.
package admin

import (
	"context"

	"github.com/google/uuid"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/auth"
	"github.com/portcullis/portcullis/internal/sessions"
	"github.com/portcullis/portcullis/internal/users"
)

// reasonRevokedByAdmin is recorded on sessions an administrator ends.
const reasonRevokedByAdmin = "revoked_by_admin"

// Service is the admin domain.
type Service struct {
	users    *users.Service
	sessions *sessions.Service
	trail    *audit.Trail
}

// NewService returns a Service.
func NewService(u *users.Service, s *sessions.Service, t *audit.Trail) *Service {
	return &Service{users: u, sessions: s, trail: t}
}

func actor(ctx context.Context) (uuid.UUID, error) {
	p, ok := auth.PrincipalFrom(ctx)
	if !ok {
		return uuid.Nil, auth.ErrNotAuthenticated
	}
	return p.UserID, nil
}

// writer is the caller as the actor of a change to accounts: the request was authorised for
// users:write by the role its session had when it arrived, and the change checks it again, in its
// own transaction, against the role the caller holds when it lands (users.Actor).
func writer(ctx context.Context) (users.Actor, error) {
	a, err := actor(ctx)
	if err != nil {
		return users.Actor{}, err
	}
	return users.Actor{ID: a, May: func(role string) error {
		if !auth.Allowed(role, []string{auth.PermUsersWrite}) {
			return auth.ErrForbidden
		}
		return nil
	}}, nil
}

// CreateUser creates an account with a role. It returns the errors of users.Service.Create.
func (s *Service) CreateUser(ctx context.Context, nu users.AdminNewUser) (users.User, error) {
	a, err := writer(ctx)
	if err != nil {
		return users.User{}, err
	}
	return s.users.Create(ctx, &a, nu)
}

// GetUser returns a user, or users.ErrNotFound.
func (s *Service) GetUser(ctx context.Context, id uuid.UUID) (users.User, error) {
	return s.users.Get(ctx, id)
}

// ListUsers returns one page of users.
func (s *Service) ListUsers(ctx context.Context, f users.Filter) (users.Page, error) {
	return s.users.List(ctx, f)
}

// UpdateUser changes a user. A deactivation ends every session and a role change makes every
// instance re-read the user's sessions, both before this returns; the sessions concerned are
// read in the change's transaction, so nothing can fail after it commits. It returns the errors of
// users.Service.AdminUpdate.
func (s *Service) UpdateUser(ctx context.Context, id uuid.UUID, p users.AdminPatch) (users.User, error) {
	a, err := writer(ctx)
	if err != nil {
		return users.User{}, err
	}
	res, err := s.users.AdminUpdate(ctx, a, id, p)
	if err != nil {
		// A change whose commit went unanswered may have ended or restated these sessions.
		s.sessions.Unsure(ctx, err, append(res.RevokedSessions, res.Restated...)...)
		return users.User{}, err
	}
	s.sessions.Revoked(ctx, "user_deactivated", res.RevokedSessions...)
	s.sessions.Refresh(ctx, res.Restated...)
	return res.User, nil
}

// DeleteUser deletes a user and ends their sessions everywhere. It returns users.ErrNotFound or
// users.ErrLastAdmin.
func (s *Service) DeleteUser(ctx context.Context, id uuid.UUID, ifMatch *string) error {
	a, err := writer(ctx)
	if err != nil {
		return err
	}
	live, err := s.users.Delete(ctx, a, id, ifMatch)
	if err != nil {
		s.sessions.Unsure(ctx, err, live...)
		return err
	}
	s.sessions.Revoked(ctx, "user_deleted", live...)
	return nil
}

// managed returns the caller and checks that they may act on the sessions of user id: it
// returns users.ErrNotFound, or auth.ErrForbidden when the user's role is not below the
// caller's (auth.MayManage). The check comes again with the act (the StaffCheck), against the
// roles the caller and the user hold then: a demotion of the caller or a promotion of the user
// can land between the two.
func (s *Service) managed(ctx context.Context, id uuid.UUID, needed string) (uuid.UUID, *sessions.StaffCheck, error) {
	p, ok := auth.PrincipalFrom(ctx)
	if !ok {
		return uuid.Nil, nil, auth.ErrNotAuthenticated
	}
	u, err := s.users.Get(ctx, id)
	if err != nil {
		return uuid.Nil, nil, err
	}
	may := func(actorRole, role string) error {
		switch {
		case !auth.Allowed(actorRole, []string{needed}):
			return auth.ErrForbidden
		case role == "": // deleted meanwhile
			return users.ErrNotFound
		case !auth.MayManage(actorRole, role):
			return auth.ErrForbidden
		}
		return nil
	}
	if err := may(p.Role, u.Role); err != nil {
		return uuid.Nil, nil, err
	}
	return p.UserID, &sessions.StaffCheck{Actor: p.UserID, May: may}, nil
}

// ListSessions returns a user's live sessions. It returns the errors of managed.
func (s *Service) ListSessions(ctx context.Context, id uuid.UUID) ([]sessions.Session, error) {
	if _, _, err := s.managed(ctx, id, auth.PermSessionsRead); err != nil {
		return nil, err
	}
	return s.sessions.List(ctx, id)
}

// RevokeSessions ends every session of a user. It returns the errors of managed.
func (s *Service) RevokeSessions(ctx context.Context, id uuid.UUID) error {
	a, may, err := s.managed(ctx, id, auth.PermSessionsRevoke)
	if err != nil {
		return err
	}
	return s.sessions.RevokeAll(ctx, id, uuid.Nil, may, reasonRevokedByAdmin, audit.Event{Action: audit.ActionAdminRevokeAll, Actor: &a})
}

// RevokeSession ends one session of a user. It returns the errors of managed, and
// sessions.ErrNotFound when the session is not a live session of that user.
func (s *Service) RevokeSession(ctx context.Context, userID, sessionID uuid.UUID) error {
	a, may, err := s.managed(ctx, userID, auth.PermSessionsRevoke)
	if err != nil {
		return err
	}
	return s.sessions.RevokeOwned(ctx, userID, sessionID, may, reasonRevokedByAdmin, audit.Event{Action: audit.ActionAdminRevokeOne, Actor: &a})
}

// ListAuditEvents returns one page of the audit trail.
func (s *Service) ListAuditEvents(ctx context.Context, f audit.Filter) (audit.Page, error) {
	return s.trail.List(ctx, f)
}
