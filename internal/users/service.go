package users

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/password"
)

// Service is the users domain.
type Service struct {
	store  *Store
	hasher *password.Hasher
	logger *slog.Logger
	now    func() time.Time
}

// NewService returns a Service storing users in store and hashing with hasher.
func NewService(store *Store, hasher *password.Hasher, logger *slog.Logger) *Service {
	return &Service{store: store, hasher: hasher, logger: logger, now: time.Now}
}

// Register creates an account with the user role. It returns an Invalid error naming the field
// for a malformed email, username or name, ErrPasswordTooShort, ErrPasswordTooLong,
// ErrPasswordCommon, ErrEmailTaken or ErrUsernameTaken.
func (s *Service) Register(ctx context.Context, nu NewUser) (User, error) {
	return s.create(ctx, AdminNewUser{NewUser: nu, Role: RoleUser}, audit.Event{Action: audit.ActionRegister})
}

// create validates, hashes and stores a new account, recording ev (whose actor defaults to the
// new user) in the same transaction.
func (s *Service) create(ctx context.Context, nu AdminNewUser, ev audit.Event) (User, error) {
	nu.Email = strings.TrimSpace(nu.Email)
	if err := errors.Join(validateEmail(nu.Email), validateUsername(nu.Username), validateFullName(nu.FullName)); err != nil {
		return User{}, firstError(err)
	}
	hash, err := s.hashNew(nu.Password, "password")
	if err != nil {
		return User{}, err
	}
	now := s.now().UTC()
	id := uuid.Must(uuid.NewV7())
	if ev.Action == audit.ActionRegister {
		ev.Actor = &id
	}
	return s.store.insert(ctx, userRecord{
		User: User{
			ID: id, Email: nu.Email, Username: nu.Username, FullName: nu.FullName,
			Role: nu.Role, IsActive: true, IsVerified: nu.IsVerified, CreatedAt: now, UpdatedAt: now,
		},
		PasswordHash: hash,
	}, ev)
}

// Authenticate checks credentials. An unknown account and a wrong password both return
// ErrInvalidCredentials after the same amount of hashing work. A disabled account with the
// right password returns ErrAccountDisabled. Hashes made with weaker parameters are upgraded.
func (s *Service) Authenticate(ctx context.Context, c Credentials) (User, error) {
	if (c.Email == "") == (c.Username == "") {
		return User{}, ErrIdentifierAmbiguous
	}
	var (
		rec userRecord
		err error
	)
	if c.Email != "" {
		rec, err = s.store.getByEmail(ctx, strings.TrimSpace(c.Email))
	} else {
		rec, err = s.store.getByUsername(ctx, c.Username)
	}
	pw := password.Normalize(c.Password)
	if errors.Is(err, ErrNotFound) {
		s.hasher.VerifyDummy(pw)
		return User{}, s.loginFailed(ctx, nil, "unknown_account", ErrInvalidCredentials)
	}
	if err != nil {
		return User{}, err
	}
	ok, needsRehash, err := s.hasher.Verify(pw, rec.PasswordHash)
	if err != nil {
		return User{}, fmt.Errorf("verify password of %s: %w", rec.ID, err)
	}
	if !ok {
		return User{}, s.loginFailed(ctx, &rec.ID, "wrong_password", ErrInvalidCredentials)
	}
	if !rec.IsActive {
		return User{}, s.loginFailed(ctx, &rec.ID, "account_disabled", ErrAccountDisabled)
	}
	if needsRehash {
		s.upgradeHash(ctx, rec.ID, pw)
	}
	return rec.User, nil
}

// loginFailed audits a failed login (never the password) and returns result.
func (s *Service) loginFailed(ctx context.Context, id *uuid.UUID, reason string, result error) error {
	ev := audit.Event{Action: audit.ActionLogin, Failed: true, Detail: map[string]any{"reason": reason}}
	if id != nil {
		ev = audit.UserTarget(ev, *id)
	}
	if err := s.store.record(ctx, ev); err != nil {
		return fmt.Errorf("audit failed login: %w", err)
	}
	return result
}

// upgradeHash re-hashes a password whose stored hash used weaker parameters. A failure is
// logged and the login goes on: the old hash still verifies.
func (s *Service) upgradeHash(ctx context.Context, id uuid.UUID, pw string) {
	hash, err := s.hasher.Hash(pw)
	if err == nil {
		err = s.store.setPassword(ctx, id, hash, s.now().UTC())
	}
	if err != nil {
		s.logger.WarnContext(ctx, "upgrade password hash", "user_id", id.String(), "error", err)
	}
}

// Get returns a user by id, or ErrNotFound.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (User, error) {
	rec, err := s.store.get(ctx, id)
	return rec.User, err
}

// UpdateProfile changes a user's username and full name. It returns an Invalid error naming
// the field, ErrUsernameTaken or ErrNotFound.
func (s *Service) UpdateProfile(ctx context.Context, id uuid.UUID, p ProfileUpdate) (User, error) {
	if err := p.validate(); err != nil {
		return User{}, err
	}
	return s.store.updateProfile(ctx, id, p, s.now().UTC(), audit.Event{Action: audit.ActionProfileUpdate, Actor: &id})
}

// ChangePassword replaces the password after checking the current one, and revokes every
// session of the user except keep, in the same transaction. It returns the revoked session ids,
// or ErrWrongPassword, ErrPasswordUnchanged, ErrPasswordTooShort, ErrPasswordTooLong,
// ErrPasswordCommon or ErrNotFound.
func (s *Service) ChangePassword(ctx context.Context, id uuid.UUID, current, next string, keep uuid.UUID) ([]uuid.UUID, error) {
	rec, err := s.store.get(ctx, id)
	if err != nil {
		return nil, err
	}
	ok, _, err := s.hasher.Verify(password.Normalize(current), rec.PasswordHash)
	if err != nil {
		return nil, fmt.Errorf("verify password of %s: %w", id, err)
	}
	if !ok {
		return nil, ErrWrongPassword
	}
	if password.Normalize(next) == password.Normalize(current) {
		return nil, ErrPasswordUnchanged
	}
	hash, err := s.hashNew(next, "new_password")
	if err != nil {
		return nil, err
	}
	return s.store.setPasswordRevokingSessions(ctx, id, hash, keep, s.now().UTC(), audit.Event{Action: audit.ActionPasswordChange, Actor: &id})
}

// hashNew checks a new password against the policy and hashes its normalised form. field names
// the request field in errors.
func (s *Service) hashNew(pw, field string) (string, error) {
	switch err := password.Check(pw); {
	case errors.Is(err, password.ErrTooShort):
		return "", ErrPasswordTooShort.WithField(field, err.Error())
	case errors.Is(err, password.ErrTooLong):
		return "", ErrPasswordTooLong.WithField(field, err.Error())
	case errors.Is(err, password.ErrCommon):
		return "", ErrPasswordCommon.WithField(field, err.Error())
	case err != nil:
		return "", err
	}
	hash, err := s.hasher.Hash(password.Normalize(pw))
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return hash, nil
}

// firstError returns the first error joined in err, so one field is reported at a time.
func firstError(err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		if errs := j.Unwrap(); len(errs) > 0 {
			return errs[0]
		}
	}
	return err
}
