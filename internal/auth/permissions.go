package auth

import (
	"slices"

	"github.com/portcullis/portcullis/internal/apperr"
)

// Permissions an operation can demand. Each operation of api/openapi.yaml lists the ones it
// needs as the scopes of its bearerAuth requirement; an operation with none needs only a
// signed-in user.
const (
	PermUsersRead      = "users:read"
	PermUsersWrite     = "users:write"
	PermSessionsRead   = "sessions:read"
	PermSessionsRevoke = "sessions:revoke"
	PermAuditRead      = "audit:read"
)

// rolePermissions is the one table of what each role may do. Add a role here and to roleRank
// (and to the Role enum of the spec and the users_role check) to extend it.
var rolePermissions = map[string][]string{
	"user":      {},
	"moderator": {PermUsersRead, PermSessionsRead, PermSessionsRevoke},
	"admin":     {PermUsersRead, PermUsersWrite, PermSessionsRead, PermSessionsRevoke, PermAuditRead},
}

// roleRank orders the roles: staff act on the sessions of lower ranks only (MayManage).
var roleRank = map[string]int{"user": 0, "moderator": 1, "admin": 2}

// MayManage reports whether a caller with role may act on the account of a user with target's
// role: an administrator on anyone, anyone else on lower ranks only, so a moderator cannot
// list an administrator's sessions (their IP addresses) or keep signing them out. Reading user
// records is users:read, which moderators have for every role.
func MayManage(role, target string) bool {
	r, ok := roleRank[role]
	t, known := roleRank[target]
	return ok && (role == "admin" || known && t < r)
}

// ErrForbidden is returned when the caller's role lacks a permission the operation needs.
var ErrForbidden = apperr.New(apperr.Forbidden, "insufficient-permissions", "your role does not allow this operation")

// Permissions returns the permissions of role; an unknown role has none.
func Permissions(role string) []string { return slices.Clone(rolePermissions[role]) }

// Roles returns the defined roles.
func Roles() []string {
	out := make([]string, 0, len(rolePermissions))
	for r := range rolePermissions {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// Allowed reports whether role holds every permission in needed.
func Allowed(role string, needed []string) bool {
	have := rolePermissions[role]
	for _, n := range needed {
		if !slices.Contains(have, n) {
			return false
		}
	}
	return true
}
