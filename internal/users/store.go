package users

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	dbgen "github.com/portcullis/portcullis/gen/db"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/postgres"
)

// Store keeps users in PostgreSQL.
type Store struct {
	pool        *pgxpool.Pool
	q           *dbgen.Queries
	searchStats searchStatsCache // of the search column and its tripled form, for List
}

// NewStore returns a Store on pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool, q: dbgen.New(pool)} }

// userRecord is a user with its password hash, seen only inside this package.
type userRecord struct {
	User
	PasswordHash string
}

// insert creates a user and records ev about it in the same transaction, on behalf of actor
// when not nil (see checkActor).
func (s *Store) insert(ctx context.Context, u userRecord, ev audit.Event, actor *Actor) (User, error) {
	var out User
	err := postgres.InTx(ctx, s.pool, func(q *dbgen.Queries) error {
		if actor != nil {
			if err := checkActor(ctx, q, *actor); err != nil {
				return err
			}
		}
		row, err := q.CreateUser(ctx, dbgen.CreateUserParams{
			ID: u.ID, Email: u.Email, Username: u.Username, HashedPassword: u.PasswordHash,
			FullName: u.FullName, Role: u.Role, IsActive: u.IsActive, IsVerified: u.IsVerified, CreatedAt: u.CreatedAt,
		})
		if err != nil {
			return mapWriteError(err, "insert user")
		}
		out = userFromRow(row).User
		return audit.Record(ctx, q, audit.UserTarget(ev, out.ID))
	})
	return out, err
}

// record writes an event that accompanies no change, such as a failed login.
func (s *Store) record(ctx context.Context, ev audit.Event) error {
	return audit.Record(ctx, s.q, ev)
}

// reservePasswordGuess reserves, at now, a place for a password guess of user id in flight, if
// admit allows it given the user's guesses since since and since its failures were last
// forgotten (audited wrong passwords and guesses still in flight, oldest first, at most limit
// of the newest). It runs under a per-user lock, so guesses reserved at once, on any instance,
// each see those reserved before. It returns the reservation's id, or admit's error.
func (s *Store) reservePasswordGuess(ctx context.Context, id uuid.UUID, now, since time.Time, limit int32, admit func([]time.Time) error) (uuid.UUID, error) {
	rid := uuid.Must(uuid.NewV7())
	err := postgres.InTx(ctx, s.pool, func(q *dbgen.Queries) error {
		if err := q.LockPasswordGuesses(ctx, id.String()); err != nil {
			return fmt.Errorf("lock password guesses of %s: %w", id, err)
		}
		if err := q.DeletePasswordGuessesInFlightBefore(ctx, dbgen.DeletePasswordGuessesInFlightBeforeParams{UserID: id, Before: since}); err != nil {
			return fmt.Errorf("prune password guesses of %s: %w", id, err)
		}
		at, err := q.PasswordGuessesSince(ctx, dbgen.PasswordGuessesSinceParams{Since: since, UserID: id, MaxRows: limit})
		if err != nil {
			return fmt.Errorf("password guesses of %s: %w", id, err)
		}
		if err := admit(at); err != nil {
			return err
		}
		if err := q.InsertPasswordGuessInFlight(ctx, dbgen.InsertPasswordGuessInFlightParams{ID: rid, UserID: id, StartedAt: now}); err != nil {
			return fmt.Errorf("reserve password guess of %s: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return uuid.Nil, err
	}
	return rid, nil
}

// releasePasswordGuess ends the reservation rid (reservePasswordGuess).
func (s *Store) releasePasswordGuess(ctx context.Context, rid uuid.UUID) error {
	return s.q.DeletePasswordGuessInFlight(ctx, rid)
}

func (s *Store) get(ctx context.Context, id uuid.UUID) (userRecord, error) {
	row, err := s.q.GetUserByID(ctx, id)
	return recordOrNotFound(row, err, "get user")
}

// getByEmail reads the account of the address typed, the one holding its normalised form
// before one that holds the spelling typed (see GetUserByEmail).
// getByEmail finds the account of address normalized (normalizeEmail of typed), or else one
// stored before domains were mapped as typed (see GetUserByEmail).
func (s *Store) getByEmail(ctx context.Context, normalized, typed string) (userRecord, error) {
	row, err := s.q.GetUserByEmail(ctx, dbgen.GetUserByEmailParams{Email: normalized, AsTyped: nfcEmail(typed)})
	return recordOrNotFound(row, err, "get user by email")
}

func (s *Store) getByUsername(ctx context.Context, username string) (userRecord, error) {
	row, err := s.q.GetUserByUsername(ctx, username)
	return recordOrNotFound(row, err, "get user by username")
}

func (s *Store) updateProfile(ctx context.Context, id uuid.UUID, p ProfileUpdate, now time.Time, ev audit.Event) (User, error) {
	var out User
	err := postgres.InTx(ctx, s.pool, func(q *dbgen.Queries) error {
		before, err := lockUser(ctx, q, id)
		if err != nil {
			return err
		}
		if !ifMatch(p.IfMatch, before) {
			return ErrPreconditionFailed
		}
		if err := askingSessionLive(ctx, q, id, p.Session, now); err != nil {
			return err
		}
		if !p.changes(before) {
			out = before
			return nil
		}
		row, err := q.UpdateUserProfile(ctx, dbgen.UpdateUserProfileParams{
			ID: id, Username: p.Username, SetFullName: p.SetFullName, FullName: p.FullName, UpdatedAt: now,
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return mapWriteError(err, "update profile")
		}
		out = userFromRow(row).User
		return audit.Record(ctx, q, audit.UserTarget(ev, id))
	})
	return out, err
}

// upgradePassword replaces the hash old with hash, if old is still the stored one; else it
// returns ErrNotFound. The user's updated_at stays (see UpgradeUserPassword).
func (s *Store) upgradePassword(ctx context.Context, id uuid.UUID, old, hash string) error {
	n, err := s.q.UpgradeUserPassword(ctx, dbgen.UpgradeUserPasswordParams{ID: id, OldHashedPassword: old, HashedPassword: hash})
	if err != nil {
		return fmt.Errorf("upgrade password: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// setPasswordRevokingSessions stores a new hash and, in the same transaction, revokes every
// live session of the user but keep. It returns the revoked session ids. With verified (the
// hash the caller checked the current password against) it returns ErrWrongPassword, writing
// nothing, when that is no longer the stored hash: another change landed meanwhile.
func (s *Store) setPasswordRevokingSessions(ctx context.Context, id uuid.UUID, verified, hash string, keep uuid.UUID, now time.Time, ev audit.Event) ([]uuid.UUID, error) {
	var revoked []uuid.UUID
	err := postgres.InTx(ctx, s.pool, func(q *dbgen.Queries) error {
		if verified != "" {
			rec, err := lockRecord(ctx, q, id)
			if err != nil {
				return err
			}
			if rec.PasswordHash != verified {
				return ErrWrongPassword
			}
		}
		if err := askingSessionLive(ctx, q, id, keep, now); err != nil {
			return err
		}
		n, err := q.UpdateUserPassword(ctx, dbgen.UpdateUserPasswordParams{ID: id, HashedPassword: hash, UpdatedAt: now})
		if err != nil {
			return fmt.Errorf("update password: %w", err)
		}
		if n == 0 {
			return ErrNotFound
		}
		reason := "password_changed"
		revoked, err = q.RevokeUserSessions(ctx, dbgen.RevokeUserSessionsParams{UserID: id, KeepID: keep, Now: now, Reason: &reason})
		if err != nil {
			return fmt.Errorf("revoke sessions: %w", err)
		}
		ev.Detail = map[string]any{"sessions_revoked": len(revoked)}
		return audit.Record(ctx, q, audit.UserTarget(ev, id))
	})
	return revoked, err
}

func recordOrNotFound(row dbgen.User, err error, step string) (userRecord, error) {
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return userRecord{}, ErrNotFound
	case err != nil:
		return userRecord{}, fmt.Errorf("%s: %w", step, err)
	}
	return userFromRow(row), nil
}

func mapWriteError(err error, step string) error {
	switch {
	case postgres.IsUniqueViolation(err, "users_email_lower_key"):
		return ErrEmailTaken
	case postgres.IsUniqueViolation(err, "users_username_lower_key"):
		return ErrUsernameTaken
	}
	return fmt.Errorf("%s: %w", step, err)
}

func userFromRow(r dbgen.User) userRecord {
	return userRecord{
		User: User{
			ID: r.ID, Email: r.Email, Username: r.Username, FullName: r.FullName, Role: r.Role,
			IsActive: r.IsActive, IsVerified: r.IsVerified, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		},
		PasswordHash: r.HashedPassword,
	}
}

// adminUpdate applies p under a row lock, guarding the last active admin, revoking every
// session when the user is deactivated, and auditing, all in one transaction.
func (s *Store) adminUpdate(ctx context.Context, id uuid.UUID, p AdminPatch, now time.Time, by Actor) (AdminResult, error) {
	var res AdminResult
	actor := &by.ID
	err := postgres.InTx(ctx, s.pool, func(q *dbgen.Queries) error {
		before, err := lockUserForActor(ctx, q, id, by)
		if err != nil {
			return err
		}
		if !ifMatch(p.IfMatch, before) {
			return ErrPreconditionFailed
		}
		changes := p.changes(before)
		if len(changes) == 0 { // nothing to write, nor to record as changed
			res.User = before
			return nil
		}
		if p.removesAdmin(before) {
			if err := guardLastAdmin(ctx, q); err != nil {
				return err
			}
		}
		row, err := q.UpdateUserByAdmin(ctx, dbgen.UpdateUserByAdminParams{
			ID: id, Role: p.Role, IsActive: p.IsActive, IsVerified: p.IsVerified, Username: p.Username,
			SetFullName: p.SetFullName, FullName: p.FullName, UpdatedAt: now,
		})
		if err != nil {
			return mapWriteError(err, "update user")
		}
		res.User = userFromRow(row).User
		if res.User.Role != before.Role && res.User.IsActive {
			if res.Restated, err = q.ListLiveSessionIDsByUser(ctx, dbgen.ListLiveSessionIDsByUserParams{UserID: id, Now: now}); err != nil {
				return fmt.Errorf("list live sessions: %w", err)
			}
		}
		if before.IsActive && !res.User.IsActive {
			reason := "user_deactivated"
			if res.RevokedSessions, err = q.RevokeUserSessions(ctx, dbgen.RevokeUserSessionsParams{UserID: id, KeepID: uuid.Nil, Now: now, Reason: &reason}); err != nil {
				return fmt.Errorf("revoke sessions: %w", err)
			}
		}
		if role, ok := changes["role"]; ok {
			ev := audit.Event{Action: audit.ActionAdminRoleChange, Actor: actor, Detail: map[string]any{"role": role}}
			if err := audit.Record(ctx, q, audit.UserTarget(ev, id)); err != nil {
				return err
			}
		}
		if len(res.RevokedSessions) > 0 {
			changes["sessions_revoked"] = len(res.RevokedSessions)
		}
		return audit.Record(ctx, q, audit.UserTarget(audit.Event{Action: audit.ActionAdminUpdateUser, Actor: actor, Detail: changes}, id))
	})
	return res, err
}

// delete removes a user (sessions cascade) under the last-admin guard and audits it; it returns
// the sessions that were live.
func (s *Store) delete(ctx context.Context, id uuid.UUID, cond *string, now time.Time, by Actor) ([]uuid.UUID, error) {
	var live []uuid.UUID
	actor := &by.ID
	err := postgres.InTx(ctx, s.pool, func(q *dbgen.Queries) error {
		before, err := lockUserForActor(ctx, q, id, by)
		if err != nil {
			return err
		}
		if !ifMatch(cond, before) {
			return ErrPreconditionFailed
		}
		if before.Role == RoleAdmin && before.IsActive {
			if err := guardLastAdmin(ctx, q); err != nil {
				return err
			}
		}
		if live, err = q.DeleteUser(ctx, dbgen.DeleteUserParams{ID: id, Now: now}); err != nil {
			return fmt.Errorf("delete user: %w", err)
		}
		ev := audit.Event{Action: audit.ActionAdminDeleteUser, Actor: actor, Detail: map[string]any{"role": before.Role, "sessions_revoked": len(live)}}
		return audit.Record(ctx, q, audit.UserTarget(ev, id))
	})
	return live, err
}

// askingSessionLive returns ErrSessionEnded unless session (of user id; uuid.Nil for none) is
// still live. A change asked for by a session must land only while that session is live: one
// revoked while the change was under way (a sign-out everywhere, an admin's revocation) has no
// say any more. A plain read is enough: a revocation that commits after it is as if it came
// after the change, which it does not depend on. (A lock on the row would add an order of locks
// that a refresh batch holding the user's other sessions could deadlock with.)
func askingSessionLive(ctx context.Context, q *dbgen.Queries, id, session uuid.UUID, now time.Time) error {
	if session == uuid.Nil {
		return nil
	}
	live, err := q.SessionIsLive(ctx, dbgen.SessionIsLiveParams{ID: session, UserID: id, Now: now})
	if err != nil {
		return fmt.Errorf("read asking session: %w", err)
	}
	if !live {
		return ErrSessionEnded
	}
	return nil
}

// lockUser reads user id's row, locked until the transaction ends, or returns ErrNotFound.
func lockUser(ctx context.Context, q *dbgen.Queries, id uuid.UUID) (User, error) {
	rec, err := lockRecord(ctx, q, id)
	return rec.User, err
}

// lockUserForActor is lockUser for an act on behalf of actor, whose role must still pass
// actor.May (checkActor). The two rows are locked lower id first (postgres.InIDOrder): two acts
// on each other's accounts (two admins demoting each other) then queue at the same row, and the
// one that goes second sees the first's outcome.
func lockUserForActor(ctx context.Context, q *dbgen.Queries, id uuid.UUID, actor Actor) (User, error) {
	if actor.ID == id { // one row: the act's own lock covers the check
		u, err := lockUser(ctx, q, id)
		if err != nil {
			return User{}, err
		}
		return u, actor.May(actingRole(u.Role, u.IsActive))
	}
	var u User
	err := postgres.InIDOrder(id, actor.ID,
		func() (err error) { u, err = lockUser(ctx, q, id); return err },
		func() error { return checkActor(ctx, q, actor) })
	return u, err
}

// checkActor share-locks actor's account until the transaction ends and runs actor.May on its
// role: a demotion, deactivation or deletion of the account that landed while the act was under
// way is seen, and one that comes later waits for the act, which is as if it came after.
func checkActor(ctx context.Context, q *dbgen.Queries, actor Actor) error {
	row, err := q.LockActingUser(ctx, actor.ID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return actor.May("")
	case err != nil:
		return fmt.Errorf("lock acting user: %w", err)
	}
	return actor.May(actingRole(row.Role, row.IsActive))
}

// actingRole is the role an account acts with: none once it is disabled.
func actingRole(role string, active bool) string {
	if !active {
		return ""
	}
	return role
}

// lockRecord is lockUser with the stored password hash.
func lockRecord(ctx context.Context, q *dbgen.Queries, id uuid.UUID) (userRecord, error) {
	row, err := q.GetUserForUpdate(ctx, id)
	return recordOrNotFound(row, err, "lock user")
}

// guardLastAdmin fails with ErrLastAdmin unless another active admin remains. The advisory lock
// serialises concurrent demotions, so two admins cannot demote each other at once.
func guardLastAdmin(ctx context.Context, q *dbgen.Queries) error {
	if err := q.LockAdmins(ctx); err != nil {
		return fmt.Errorf("lock admins: %w", err)
	}
	n, err := q.CountActiveAdmins(ctx)
	if err != nil {
		return fmt.Errorf("count admins: %w", err)
	}
	if n <= 1 {
		return ErrLastAdmin
	}
	return nil
}
