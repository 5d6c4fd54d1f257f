package users

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/portcullis/portcullis/internal/apperr"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/password"
	"github.com/portcullis/portcullis/internal/redis"
)

// tracer returns the users package's tracer from the current global provider: asked for per
// span (a password hash costs tens of milliseconds; the lookup, nanoseconds), so a provider set
// after start-up, as tests do, is the one that records.
func tracer() trace.Tracer { return otel.Tracer("github.com/portcullis/portcullis/internal/users") }

// ErrOverloaded is returned when password hashing is at capacity: the client retries shortly.
var ErrOverloaded = apperr.New(apperr.Unavailable, "overloaded", "the service is at capacity; retry shortly").After(time.Second)

// Service is the users domain.
type Service struct {
	store  *Store
	hasher *password.Hasher
	gate   *password.Gate
	logger *slog.Logger
	now    func() time.Time
	cache  *redis.Coherent // nil: every Get reads PostgreSQL
	clock  hashClock       // how long a hash at the current parameters takes
}

// NewService returns a Service storing users in store and hashing with hasher, at most as many
// hashes at once as gate admits.
func NewService(store *Store, hasher *password.Hasher, gate *password.Gate, logger *slog.Logger, opts ...Option) *Service {
	s := &Service{store: store, hasher: hasher, gate: gate, logger: logger, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// HashingFull reports whether password hashing is at capacity: a login or registration now
// would get ErrOverloaded.
func (s *Service) HashingFull() bool { return s.gate.Full() }

// hash, verify and verifyDummy run the hasher under the gate; a full gate is ErrOverloaded.
func (s *Service) hash(ctx context.Context, pw string) (hash string, err error) {
	ctx, span := tracer().Start(ctx, "password.Hash")
	defer span.End()
	if gerr := s.gate.Do(ctx, func() { hash, err = s.hasher.Hash(pw) }); gerr != nil {
		return "", gateError(gerr)
	}
	return hash, err
}

// verify also returns how long the hash took; one at the current parameters is timed for
// padWrongPassword.
func (s *Service) verify(ctx context.Context, pw, encoded string) (ok, needsRehash bool, took time.Duration, err error) {
	ctx, span := tracer().Start(ctx, "password.Verify")
	defer span.End()
	warm := false
	if gerr := s.gate.Do(ctx, func() {
		warm = s.hasher.Warm()
		start := time.Now()
		ok, needsRehash, err = s.hasher.Verify(pw, encoded)
		took = time.Since(start)
	}); gerr != nil {
		return false, false, 0, gateError(gerr)
	}
	if err == nil && warm && s.hasher.Current(encoded) {
		s.clock.observe(took)
	}
	return ok, needsRehash, took, err
}

func (s *Service) verifyDummy(ctx context.Context, pw string) error {
	ctx, span := tracer().Start(ctx, "password.Verify")
	defer span.End()
	return gateError(s.gate.Do(ctx, func() {
		warm := s.hasher.Warm()
		start := time.Now()
		s.hasher.VerifyDummy(pw)
		if warm {
			s.clock.observe(time.Since(start))
		}
	}))
}

// ErrNotHashed is in the error of a call whose request ended while it waited for a hashing
// slot: no password was hashed. auth.Login gives such a guess its failure slot back; a guess
// whose password was hashed keeps it, whatever happens to its request afterwards.
var ErrNotHashed = errors.New("the request ended before its password was hashed")

func gateError(err error) error {
	switch {
	case errors.Is(err, password.ErrBusy):
		return ErrOverloaded
	case err != nil:
		return fmt.Errorf("%w: %w", ErrNotHashed, err)
	}
	return nil
}

// Register creates an account with the user role. It returns an Invalid error naming the field
// for a malformed email, username or name, ErrPasswordTooShort, ErrPasswordTooLong,
// ErrPasswordCommon, ErrEmailTaken or ErrUsernameTaken.
func (s *Service) Register(ctx context.Context, nu NewUser) (User, error) {
	return s.create(ctx, AdminNewUser{NewUser: nu, Role: RoleUser}, audit.Event{Action: audit.ActionRegister}, nil)
}

// create validates, hashes and stores a new account, recording ev (whose actor defaults to the
// new user) in the same transaction.
func (s *Service) create(ctx context.Context, nu AdminNewUser, ev audit.Event, actor *Actor) (User, error) {
	nu.Email, nu.FullName = normalizeEmail(nu.Email), normalizeFullName(nu.FullName)
	if err := errors.Join(validateEmail(nu.Email), validateUsername(nu.Username), validateFullName(nu.FullName)); err != nil {
		return User{}, firstError(err)
	}
	hash, err := s.hashNew(ctx, nu.Password, "password")
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
	}, ev, actor)
}

// Account is login credentials looked up once: the user when one matches, and the failed-login
// budget the attempt counts against either way.
type Account struct {
	rec   userRecord
	found bool
	key   string
}

// FailureKey names the failed-login budget: the account itself when it exists, so its email and
// its username share one budget, or else a hash of the identifier, so unknown accounts lock
// exactly like real ones. The identifier is never kept in clear.
func (a Account) FailureKey() string { return a.key }

// UserID returns the id of the account's user, and false when no account matched.
func (a Account) UserID() (uuid.UUID, bool) { return a.rec.ID, a.found }

// ReservePasswordGuess decides whether a password guess of user id may be tested, by admit,
// from when the user's wrong password guesses (at login, and of the current password at a
// password change) were made at or after since, oldest first: the failures audited in
// PostgreSQL, which every instance shares, and the guesses still in flight on any instance,
// each of which may yet be wrong. Guesses before the failures were last forgotten (a right
// password, a reset) are left out, as the failed-login budget forgets them; so are all but the
// newest limit. When admit allows it the guess is counted as in flight until release is
// called, which the caller does once the guess has been audited (or has tested nothing). It
// returns admit's error, or one reading or writing PostgreSQL.
func (s *Service) ReservePasswordGuess(ctx context.Context, id uuid.UUID, now, since time.Time, limit int, admit func([]time.Time) error) (release func(), err error) {
	rid, err := s.store.reservePasswordGuess(ctx, id, now.UTC(), since, int32(min(limit, math.MaxInt32)), admit)
	if err != nil {
		return func() {}, err
	}
	return func() {
		rctx, cancel := detached(ctx)
		defer cancel()
		if err := s.store.releasePasswordGuess(rctx, rid); err != nil {
			// The guess stays counted as a failure until it is older than the replay reads.
			s.logger.WarnContext(ctx, "release password guess", "user_id", id.String(), "error", err)
		}
	}, nil
}

// FailureKeyOf is the failed-login budget of the user with id (Account.FailureKey of that
// account), for a caller that already knows who it is: a password change.
func FailureKeyOf(id uuid.UUID) string { return accountKey(id) }

func accountKey(id uuid.UUID) string { return "acct:" + id.String() }

// FindAccount looks up the account c names, once per login. An unknown account is not an error.
// It returns ErrIdentifierAmbiguous unless exactly one of email or username is given.
func (s *Service) FindAccount(ctx context.Context, c Credentials) (Account, error) {
	if (c.Email == "") == (c.Username == "") {
		return Account{}, ErrIdentifierAmbiguous
	}
	var (
		rec userRecord
		err error
		id  string
	)
	if c.Email != "" {
		// Every spelling of an address shares one budget while it names no account.
		email := normalizeEmail(c.Email)
		id = "e:" + strings.ToLower(email)
		rec, err = s.store.getByEmail(ctx, email, c.Email)
	} else {
		id = "u:" + strings.ToLower(c.Username)
		rec, err = s.store.getByUsername(ctx, c.Username)
	}
	switch {
	case err == nil:
		return Account{rec: rec, found: true, key: accountKey(rec.ID)}, nil
	case errors.Is(err, ErrNotFound):
		sum := sha256.Sum256([]byte(id))
		return Account{key: "ident:" + hex.EncodeToString(sum[:16])}, nil
	}
	return Account{}, err
}

// Verified is a user whose password a login has just checked, and the stored hash it matched:
// a session opens only while that hash is still the user's (sessions.Service.Open).
type Verified struct {
	User         User
	PasswordHash string
}

// Authenticate checks a password for an account found by FindAccount. An unknown account and a
// wrong password both return ErrInvalidCredentials after the same amount of hashing work. A
// disabled account with the right password returns ErrAccountDisabled. Hashes made with weaker
// parameters are upgraded.
func (s *Service) Authenticate(ctx context.Context, a Account, pass string) (Verified, error) {
	pw := password.Normalize(pass)
	if !a.found {
		if err := s.verifyDummy(ctx, pw); err != nil {
			return Verified{}, err
		}
		return Verified{}, s.loginFailed(ctx, nil, "unknown_account", ErrInvalidCredentials)
	}
	rec := a.rec
	ok, needsRehash, took, err := s.verify(ctx, pw, rec.PasswordHash)
	if errors.Is(err, ErrOverloaded) {
		return Verified{}, err
	}
	if err != nil {
		return Verified{}, fmt.Errorf("verify password of %s: %w", rec.ID, err)
	}
	if !ok {
		if !s.hasher.Current(rec.PasswordHash) {
			s.padWrongPassword(ctx, pw, took)
		}
		return Verified{}, s.loginFailed(ctx, &rec.ID, "wrong_password", ErrInvalidCredentials)
	}
	if !rec.IsActive {
		return Verified{}, s.loginFailed(ctx, &rec.ID, "account_disabled", ErrAccountDisabled)
	}
	v := Verified{User: rec.User, PasswordHash: rec.PasswordHash}
	if needsRehash {
		v.PasswordHash = s.upgradeHash(ctx, rec.ID, rec.PasswordHash, pw)
	}
	return v, nil
}

// loginFailed audits a failed login (never the password) and returns result.
func (s *Service) loginFailed(ctx context.Context, id *uuid.UUID, reason string, result error) error {
	ev := audit.Event{Action: audit.ActionLogin, Failed: true, Detail: map[string]any{"reason": reason}}
	if id != nil {
		ev = audit.UserTarget(ev, *id)
	}
	// The password has been tested: the failure is recorded even when the client has hung up
	// meanwhile, or the guess would go unaudited (and auth.Login could not tell it from one
	// that tested nothing).
	if err := s.recordDetached(ctx, ev); err != nil {
		return fmt.Errorf("audit failed login: %w", err)
	}
	return result
}

// recordDetached records ev even when the request has ended (see detached): for the events of
// a password that has been tested, which must not go unaudited.
func (s *Service) recordDetached(ctx context.Context, ev audit.Event) error {
	rctx, cancel := detached(ctx)
	defer cancel()
	return s.store.record(rctx, ev)
}

// detachedTimeout bounds a write that must outlive its request (detached).
const detachedTimeout = 5 * time.Second

// detached is ctx without its cancellation or deadline, for a write that must be made even
// when the request has ended (its client gone, its time up), bounded by detachedTimeout so that
// a PostgreSQL that stopped answering cannot hold it, and its connection, for good.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), detachedTimeout)
}

// RecordLockout audits that account a is locked after too many failed logins, for lockedFor.
// The event names the user when the account exists; the identifier is not stored.
func (s *Service) RecordLockout(ctx context.Context, a Account, lockedFor time.Duration) error {
	if a.found {
		return s.RecordUserLockout(ctx, &a.rec.ID, lockedFor)
	}
	return s.RecordUserLockout(ctx, nil, lockedFor)
}

// RecordUserLockout audits that the account of user id (nil: an unknown account) is locked after
// too many failed password attempts, for lockedFor.
func (s *Service) RecordUserLockout(ctx context.Context, id *uuid.UUID, lockedFor time.Duration) error {
	ev := audit.Event{Action: audit.ActionRateLimitLockout, Failed: true, Detail: map[string]any{"locked_seconds": int(lockedFor.Seconds())}}
	if id != nil {
		ev = audit.UserTarget(ev, *id)
	}
	if err := s.recordDetached(ctx, ev); err != nil {
		return fmt.Errorf("audit lockout: %w", err)
	}
	return nil
}

// upgradeHash re-hashes a password whose stored hash, old, used weaker parameters, and returns
// the stored hash this login has proved the password against: the new one; or, when old was
// replaced meanwhile, whatever is stored now if the password matches it too (another login of
// the same password upgraded first); else old, which no longer opens a session (the password
// changed). It replaces old only if it is still the stored hash, so it never writes the old
// password over a change. A failure to upgrade is logged; the old hash still verifies.
func (s *Service) upgradeHash(ctx context.Context, id uuid.UUID, old, pw string) string {
	hash, err := s.hash(ctx, pw)
	if err == nil {
		err = s.store.upgradePassword(ctx, id, old, hash)
	}
	switch {
	case err == nil:
		s.changed(ctx, nil, id)
		return hash
	case errors.Is(err, ErrNotFound): // old was replaced meanwhile
		if rec, gerr := s.store.get(ctx, id); gerr == nil {
			if ok, _, _, verr := s.verify(ctx, pw, rec.PasswordHash); verr == nil && ok {
				return rec.PasswordHash
			}
		}
		return old
	default:
		s.logger.WarnContext(ctx, "upgrade password hash", "user_id", id.String(), "error", err)
		// The update's reply may have been lost after it committed: the stored hash is then
		// hash, and only it opens a session.
		if hash != "" {
			if rec, gerr := s.store.get(ctx, id); gerr == nil && rec.PasswordHash == hash {
				s.changed(ctx, nil, id)
				return hash
			}
		}
		return old
	}
}

// Get returns a user by id, or ErrNotFound: from the cache when it holds the user, else from
// PostgreSQL.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (User, error) {
	u, hit, fill := s.cached(ctx, id)
	if hit {
		return u, nil
	}
	readAt := time.Now()
	rec, err := s.store.get(ctx, id)
	if err != nil {
		return User{}, err
	}
	if fill {
		s.fill(ctx, rec.User, readAt)
	}
	return rec.User, nil
}

// UpdateProfile changes a user's username and full name; one that changes neither writes
// nothing and returns the user as stored. It returns an Invalid error naming the field,
// ErrUsernameTaken, ErrPreconditionFailed (p.IfMatch names another version) or ErrNotFound.
func (s *Service) UpdateProfile(ctx context.Context, id uuid.UUID, p ProfileUpdate) (User, error) {
	p.FullName = normalizeFullName(p.FullName)
	if err := p.validate(); err != nil {
		return User{}, err
	}
	u, err := s.store.updateProfile(ctx, id, p, s.now().UTC(), audit.Event{Action: audit.ActionProfileUpdate, Actor: &id})
	s.changed(ctx, err, id)
	return u, err
}

// ChangePassword replaces the password after checking the current one, and revokes every
// session of the user except keep, in the same transaction. A change that lands while the
// current password is checked makes it ErrWrongPassword: it is no longer the current one; a
// keep (the asking session; uuid.Nil for none) that is no longer live when the change would
// land makes it ErrSessionEnded, and nothing changes. It returns the revoked session ids, or
// ErrWrongPassword, ErrPasswordUnchanged, ErrPasswordTooShort, ErrPasswordTooLong,
// ErrPasswordCommon, ErrSessionEnded or ErrNotFound.
func (s *Service) ChangePassword(ctx context.Context, id uuid.UUID, current, next string, keep uuid.UUID) ([]uuid.UUID, error) {
	rec, err := s.store.get(ctx, id)
	if err != nil {
		return nil, err
	}
	ok, _, _, err := s.verify(ctx, password.Normalize(current), rec.PasswordHash)
	if errors.Is(err, ErrOverloaded) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("verify password of %s: %w", id, err)
	}
	if !ok {
		// Audited as a failed login is: the guess spends the same budget (auth.ChangePassword),
		// which is re-derived from these records when Redis is out of reach.
		ev := audit.UserTarget(audit.Event{Action: audit.ActionPasswordChange, Actor: &id, Failed: true,
			Detail: map[string]any{"reason": "wrong_password"}}, id)
		if err := s.recordDetached(ctx, ev); err != nil {
			return nil, fmt.Errorf("audit failed password change: %w", err)
		}
		return nil, ErrWrongPassword
	}
	if password.Normalize(next) == password.Normalize(current) {
		return nil, ErrPasswordUnchanged
	}
	hash, err := s.hashNew(ctx, next, "new_password")
	if err != nil {
		return nil, err
	}
	revoked, err := s.store.setPasswordRevokingSessions(ctx, id, rec.PasswordHash, hash, keep, s.now().UTC(), audit.Event{Action: audit.ActionPasswordChange, Actor: &id})
	s.changed(ctx, err, id)
	return revoked, err
}

// ResetPassword sets the password of the account with email, without the current one (the
// command line's recovery of a lost admin password), and revokes all its sessions in the same
// transaction, audited with actor. It returns the user and the revoked session ids, or
// ErrNotFound and the errors of the password policy. With an error wrapping
// postgres.ErrCommitUnknown it still returns the ids the reset may have revoked.
func (s *Service) ResetPassword(ctx context.Context, actor *uuid.UUID, email, next string) (User, []uuid.UUID, error) {
	rec, err := s.store.getByEmail(ctx, normalizeEmail(email), email)
	if err != nil {
		return User{}, nil, err
	}
	hash, err := s.hashNew(ctx, next, "password")
	if err != nil {
		return User{}, nil, err
	}
	revoked, err := s.store.setPasswordRevokingSessions(ctx, rec.ID, "", hash, uuid.Nil, s.now().UTC(), audit.Event{Action: audit.ActionPasswordReset, Actor: actor})
	s.changed(ctx, err, rec.ID)
	if err != nil {
		return User{}, revoked, err
	}
	return rec.User, revoked, nil
}

// hashNew checks a new password against the policy and hashes its normalised form. field names
// the request field in errors.
func (s *Service) hashNew(ctx context.Context, pw, field string) (string, error) {
	switch err := password.Check(pw); {
	case errors.Is(err, password.ErrTooShort):
		return "", ErrPasswordTooShort.WithField(field, err.Error())
	case errors.Is(err, password.ErrTooLong):
		return "", ErrPasswordTooLong.WithField(field, err.Error())
	case errors.Is(err, password.ErrCommon):
		return "", ErrPasswordCommon.WithField(field, err.Error())
	case errors.Is(err, password.ErrNotText):
		return "", apperr.Invalidf(field, "%s", err.Error())
	case err != nil:
		return "", err
	}
	hash, err := s.hash(ctx, password.Normalize(pw))
	if errors.Is(err, ErrOverloaded) {
		return "", err
	}
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
