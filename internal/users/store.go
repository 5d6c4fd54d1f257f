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
	"github.com/portcullis/portcullis/internal/postgres"
)

// Store keeps users in PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
	q    *dbgen.Queries
}

// NewStore returns a Store on pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool, q: dbgen.New(pool)} }

// userRecord is a user with its password hash, seen only inside this package.
type userRecord struct {
	User
	PasswordHash string
}

func (s *Store) insert(ctx context.Context, u userRecord) (User, error) {
	row, err := s.q.CreateUser(ctx, dbgen.CreateUserParams{
		ID: u.ID, Email: u.Email, Username: u.Username, HashedPassword: u.PasswordHash,
		FullName: u.FullName, Role: u.Role, IsActive: u.IsActive, IsVerified: u.IsVerified, CreatedAt: u.CreatedAt,
	})
	if err != nil {
		return User{}, mapWriteError(err, "insert user")
	}
	return userFromRow(row).User, nil
}

func (s *Store) get(ctx context.Context, id uuid.UUID) (userRecord, error) {
	row, err := s.q.GetUserByID(ctx, id)
	return recordOrNotFound(row, err, "get user")
}

func (s *Store) getByEmail(ctx context.Context, email string) (userRecord, error) {
	row, err := s.q.GetUserByEmail(ctx, email)
	return recordOrNotFound(row, err, "get user by email")
}

func (s *Store) getByUsername(ctx context.Context, username string) (userRecord, error) {
	row, err := s.q.GetUserByUsername(ctx, username)
	return recordOrNotFound(row, err, "get user by username")
}

func (s *Store) updateProfile(ctx context.Context, id uuid.UUID, p ProfileUpdate, now time.Time) (User, error) {
	row, err := s.q.UpdateUserProfile(ctx, dbgen.UpdateUserProfileParams{
		ID: id, Username: p.Username, SetFullName: p.SetFullName, FullName: p.FullName, UpdatedAt: now,
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, mapWriteError(err, "update profile")
	}
	return userFromRow(row).User, nil
}

// setPassword stores a new hash.
func (s *Store) setPassword(ctx context.Context, id uuid.UUID, hash string, now time.Time) error {
	n, err := s.q.UpdateUserPassword(ctx, dbgen.UpdateUserPasswordParams{ID: id, HashedPassword: hash, UpdatedAt: now})
	if err != nil {
		return fmt.Errorf("update password: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// setPasswordRevokingSessions stores a new hash and, in the same transaction, revokes every
// live session of the user but keep. It returns the revoked session ids.
func (s *Store) setPasswordRevokingSessions(ctx context.Context, id uuid.UUID, hash string, keep uuid.UUID, now time.Time) ([]uuid.UUID, error) {
	var revoked []uuid.UUID
	err := postgres.InTx(ctx, s.pool, func(q *dbgen.Queries) error {
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
		return nil
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
