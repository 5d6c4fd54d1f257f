package users

import (
	"context"

	"github.com/google/uuid"

	"github.com/portcullis/portcullis/internal/apperr"
	"github.com/portcullis/portcullis/internal/audit"
)

// ErrLastAdmin is returned when a change would leave no active admin.
var ErrLastAdmin = apperr.New(apperr.Conflict, "last-admin", "the last active admin cannot be demoted, deactivated or deleted")

// ErrUnknownRole is returned for a role that is not defined.
var ErrUnknownRole = apperr.Invalidf("role", "must be one of user, moderator, admin")

// ValidRole reports whether role is defined.
func ValidRole(role string) bool {
	return role == RoleUser || role == RoleModerator || role == RoleAdmin
}

// Actor is the account an administrative act is done on behalf of, and the check its role must
// still pass when the act lands: the role the request was authorised with may have been taken
// away while it was under way (by another administrator's demotion, deactivation or deletion of
// the account, landing first). The store reads the role again in the act's transaction, under a
// share lock held to its end, and passes it to May ("" when the account is disabled or gone).
type Actor struct {
	ID  uuid.UUID
	May func(role string) error
}

// AdminNewUser is what an administrator (or the CLI) gives to create an account.
type AdminNewUser struct {
	NewUser
	Role       string
	IsVerified bool
}

// AdminPatch changes the fields that are set. Passwords are never among them.
type AdminPatch struct {
	Role        *string
	IsActive    *bool
	IsVerified  *bool
	Username    *string
	SetFullName bool
	FullName    *string
	// IfMatch is the request's If-Match field (nil: none): the change applies only to a user
	// whose ETag it names, else ErrPreconditionFailed.
	IfMatch *string
}

// AdminResult is an updated user and what the change did to their sessions.
type AdminResult struct {
	User User
	// RevokedSessions were ended because the user was deactivated.
	RevokedSessions []uuid.UUID
	// Restated are the live sessions whose role changed, read in the change's transaction:
	// every instance must re-read them.
	Restated []uuid.UUID
}

// Create makes an account with a role on behalf of actor (nil for the command line). It returns
// the errors of Register, ErrUnknownRole and those of actor.May.
func (s *Service) Create(ctx context.Context, actor *Actor, nu AdminNewUser) (User, error) {
	if !ValidRole(nu.Role) {
		return User{}, ErrUnknownRole
	}
	ev := audit.Event{Action: audit.ActionAdminCreateUser, Detail: map[string]any{"role": nu.Role}}
	if actor != nil {
		ev.Actor = &actor.ID
	}
	return s.create(ctx, nu, ev, actor)
}

// AdminUpdate applies p to user id on behalf of actor. Deactivation revokes every session of
// the user. It returns ErrNotFound, ErrPreconditionFailed, ErrLastAdmin, ErrUnknownRole,
// ErrUsernameTaken, an Invalid error naming the field or the errors of actor.May.
func (s *Service) AdminUpdate(ctx context.Context, actor Actor, id uuid.UUID, p AdminPatch) (AdminResult, error) {
	if p.Role != nil && !ValidRole(*p.Role) {
		return AdminResult{}, ErrUnknownRole
	}
	p.FullName = normalizeFullName(p.FullName)
	if err := (ProfileUpdate{Username: p.Username, SetFullName: p.SetFullName, FullName: p.FullName}).validate(); err != nil {
		return AdminResult{}, err
	}
	res, err := s.store.adminUpdate(ctx, id, p, s.now().UTC(), actor)
	s.changed(ctx, err, id)
	return res, err
}

// Delete removes user id and their sessions on behalf of actor, returning the sessions that
// were live; with ifMatch (an If-Match field) only a user whose ETag it names. It returns
// ErrNotFound, ErrPreconditionFailed, ErrLastAdmin or the errors of actor.May.
func (s *Service) Delete(ctx context.Context, actor Actor, id uuid.UUID, ifMatch *string) ([]uuid.UUID, error) {
	live, err := s.store.delete(ctx, id, ifMatch, s.now().UTC(), actor)
	s.changed(ctx, err, id)
	return live, err
}

// changes names the fields p sets, for the audit trail (values of personal fields left out).
func (p AdminPatch) changes(before User) map[string]any {
	d := map[string]any{}
	if p.Role != nil && *p.Role != before.Role {
		d["role"] = map[string]string{"from": before.Role, "to": *p.Role}
	}
	if p.IsActive != nil && *p.IsActive != before.IsActive {
		d["is_active"] = *p.IsActive
	}
	if p.IsVerified != nil && *p.IsVerified != before.IsVerified {
		d["is_verified"] = *p.IsVerified
	}
	if p.Username != nil && *p.Username != before.Username {
		d["username"] = "changed"
	}
	if (ProfileUpdate{SetFullName: p.SetFullName, FullName: p.FullName}).changes(before) {
		d["full_name"] = "changed"
	}
	return d
}

// removesAdmin reports whether applying p to before takes an active admin away.
func (p AdminPatch) removesAdmin(before User) bool {
	if before.Role != RoleAdmin || !before.IsActive {
		return false
	}
	return (p.Role != nil && *p.Role != RoleAdmin) || (p.IsActive != nil && !*p.IsActive)
}
