package auth

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis/portcullis/internal/apperr"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/ratelimit"
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

// ErrAccountLocked is returned after too many failed logins for one account, until the
// failure budget refills (Retry-After says when). Unknown accounts lock the same way, so the
// lock reveals nothing about which accounts exist.
var ErrAccountLocked = apperr.New(apperr.RateLimited, "account-locked", "too many failed sign-in attempts for this account; retry later")

// Service signs users in and out.
type Service struct {
	users    *users.Service
	sessions *sessions.Service
	tokens   *tokens.Service
	limiter  *ratelimit.Limiter
	failures ratelimit.Limit
}

// NewService returns a Service that allows at most failures failed logins per account.
func NewService(u *users.Service, s *sessions.Service, t *tokens.Service, limiter *ratelimit.Limiter, failures ratelimit.Limit) *Service {
	return &Service{users: u, sessions: s, tokens: t, limiter: limiter, failures: failures}
}

// Login checks credentials and opens a session. It returns ErrAccountLocked,
// users.ErrInvalidCredentials, users.ErrAccountDisabled, users.ErrOverloaded or an Invalid
// error when neither or both identifiers are given.
func (s *Service) Login(ctx context.Context, c users.Credentials, client sessions.Client) (TokenPair, error) {
	acct, err := s.users.FindAccount(ctx, c)
	if err != nil {
		return TokenPair{}, err
	}
	key := acct.FailureKey()
	// Every attempt takes a failure slot before its hash and keeps it only by failing: a burst of
	// guesses sent at once gets no more passwords tested than the budget allows, where checking
	// first and counting after would let every guess in flight through. The price: attempts in
	// flight count too, so more sign-ins of one account at once than its budget are refused
	// until the others finish.
	slot := s.limiter.Allow(ctx, s.failures, key)
	if !slot.Allowed {
		return TokenPair{}, ErrAccountLocked.After(slot.RetryAfter)
	}
	settle := context.WithoutCancel(ctx) // a client gone after its hash must not keep the slot
	release := func() {}
	if id, ok := acct.UserID(); ok {
		var berr error
		if release, berr = s.sharedBudget(ctx, settle, slot, key, id); berr != nil {
			return TokenPair{}, berr
		}
	}
	v, err := s.users.Authenticate(ctx, acct, c.Password)
	release() // the guess is audited now, if it was wrong
	switch {
	case errors.Is(err, users.ErrInvalidCredentials):
		if slot.Remaining == 0 { // this guess took the last slot: the account is locked now
			if aerr := s.users.RecordLockout(ctx, acct, slot.Reset); aerr != nil {
				return TokenPair{}, aerr
			}
		}
		return TokenPair{}, err
	case errors.Is(err, users.ErrAccountDisabled), errors.Is(err, users.ErrOverloaded), errors.Is(err, users.ErrNotHashed):
		// The right password of a disabled account, or no password tested (the server was at
		// capacity, or the client left while the guess waited for a hashing slot): the slot goes
		// back. A client that leaves once its guess is hashing gets no refund: that password
		// has been tested.
		s.limiter.Refund(settle, slot, key)
		return TokenPair{}, err
	case err != nil:
		return TokenPair{}, err // a store error: the slot stays spent, which errs on the safe side
	default:
		s.rightPassword(settle, slot, key)
	}
	issued, err := s.sessions.Open(ctx, v.User.ID, v.User.Role, v.PasswordHash, client)
	if errors.Is(err, sessions.ErrUserChanged) {
		// The password changed, or the account was disabled, while this login hashed: the
		// password it proved is no longer the account's.
		return TokenPair{}, users.ErrInvalidCredentials
	}
	if err != nil {
		return TokenPair{}, err
	}
	return s.pair(issued)
}

// sharedBudget checks a password guess for user id, admitted by slot, against the budget every
// instance shares when slot could not be: with Redis out of reach each instance counts failures
// in process, from none, so N instances would give an account N budgets and forget the failures
// counted before the outage. The failures audited in PostgreSQL are replayed instead (see
// ratelimit.Replay: two periods hold at most three budgets' worth), with the guesses in flight
// on every instance, which are not audited yet: the guess takes its place among them, to be
// released (release) once it has been audited; guesses sent at once would otherwise all read
// the same audit and all be tested. A locked account gets ErrAccountLocked, its slot back.
// Unknown accounts have no audited failures to replay and stay limited in process. An error
// reading the audit also gives the slot back: no password was tested.
func (s *Service) sharedBudget(ctx, settle context.Context, slot ratelimit.Result, key string, id uuid.UUID) (release func(), err error) {
	if !slot.Local() {
		return func() {}, nil
	}
	now := time.Now()
	release, err = s.users.ReservePasswordGuess(ctx, id, now, now.Add(-2*s.failures.Period), 3*s.failures.Count, func(at []time.Time) error {
		if r := ratelimit.Replay(s.failures, at, now); !r.Allowed {
			return ErrAccountLocked.After(r.RetryAfter)
		}
		return nil
	})
	if err != nil {
		s.limiter.Refund(settle, slot, key)
	}
	return release, err
}

// settleChange settles a password change's failure slot by the change's outcome err: a wrong
// current password keeps it (locking the account if it was the last), a right one forgets the
// account's failures as a right login does, and one never tested gives it back. Any other
// error keeps it, erring on the safe side.
func (s *Service) settleChange(ctx context.Context, id uuid.UUID, slot ratelimit.Result, err error) error {
	settle := context.WithoutCancel(ctx)
	key := users.FailureKeyOf(id)
	switch {
	case errors.Is(err, users.ErrWrongPassword):
		if slot.Remaining == 0 {
			return s.users.RecordUserLockout(ctx, &id, slot.Reset)
		}
	case errors.Is(err, users.ErrOverloaded), errors.Is(err, users.ErrNotHashed), errors.Is(err, users.ErrSessionEnded):
		s.limiter.Refund(settle, slot, key)
	case err == nil, errors.Is(err, users.ErrPasswordUnchanged), errors.Is(err, users.ErrPasswordTooShort),
		errors.Is(err, users.ErrPasswordTooLong), errors.Is(err, users.ErrPasswordCommon):
		s.rightPassword(settle, slot, key)
	}
	return nil
}

// rightPassword settles the failure slot of a password proved right: the right password forgets
// the account's earlier failures, this slot with them; a slot that was the bucket's only event
// is simply given back.
func (s *Service) rightPassword(ctx context.Context, slot ratelimit.Result, key string) {
	if slot.Remaining == slot.Limit.Count-1 {
		s.limiter.Refund(ctx, slot, key)
		return
	}
	s.limiter.Reset(ctx, s.failures, key)
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
	return s.sessions.RevokeAll(ctx, p.UserID, uuid.Nil, nil, sessions.ReasonLogoutAll, audit.Event{Action: audit.ActionLogoutAll, Actor: &p.UserID})
}

// RevokeSession ends one of the caller's own sessions. It returns sessions.ErrNotFound for a
// session that is not the caller's or not live.
func (s *Service) RevokeSession(ctx context.Context, id uuid.UUID) error {
	p, ok := PrincipalFrom(ctx)
	if !ok {
		return ErrNotAuthenticated
	}
	return s.sessions.RevokeOwned(ctx, p.UserID, id, nil, sessions.ReasonRevokedByUser, audit.Event{Action: audit.ActionSessionRevoke, Actor: &p.UserID})
}

// ChangePassword changes the caller's password and ends their other sessions. It returns the
// errors of users.Service.ChangePassword.
func (s *Service) ChangePassword(ctx context.Context, current, next string) error {
	p, ok := PrincipalFrom(ctx)
	if !ok {
		return ErrNotAuthenticated
	}
	// A guess of the current password spends the failed-login budget as a login's does (see
	// Login): a stolen session gets no guesses past the account's lockout, nor a budget of its
	// own on top of login's.
	key := users.FailureKeyOf(p.UserID)
	slot := s.limiter.Allow(ctx, s.failures, key)
	if !slot.Allowed {
		return ErrAccountLocked.After(slot.RetryAfter)
	}
	release, err := s.sharedBudget(ctx, context.WithoutCancel(ctx), slot, key, p.UserID)
	if err != nil {
		return err
	}
	revoked, err := s.users.ChangePassword(ctx, p.UserID, current, next, p.SessionID)
	release() // the guess is audited now, if it was wrong
	if lerr := s.settleChange(ctx, p.UserID, slot, err); lerr != nil {
		return lerr
	}
	if errors.Is(err, users.ErrSessionEnded) {
		return sessions.ErrSessionRevoked
	}
	if err != nil {
		s.sessions.Unsure(ctx, err, revoked...)
		return err
	}
	s.sessions.Revoked(ctx, sessions.ReasonPasswordChange, revoked...)
	return nil
}
