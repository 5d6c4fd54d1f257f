package sessions

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/password"
	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/internal/users"
)

// A login is FindAccount, Authenticate (the hash, which may wait in a queue) and Open. These
// tests run its steps one at a time with a change to the user landing in between, the way a
// slow login and a password change or a deactivation race.

const (
	racePassword = "correct horse battery staple"
	raceNext     = "a brand new and quite different passphrase"
)

// sessionRows counts the user's sessions and the login events audited for them.
func (e *env) sessionRows(t *testing.T, id uuid.UUID) (sessions, logins int) {
	t.Helper()
	err := e.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM user_sessions WHERE user_id = $1),
		(SELECT count(*) FROM audit_events WHERE action = 'user.login' AND outcome = 'success' AND actor_id = $1)`, id).Scan(&sessions, &logins)
	if err != nil {
		t.Fatal(err)
	}
	return sessions, logins
}

// A password change that lands while a login with the old password hashes leaves that login
// without a session: the change revoked every session, and the old password must not mint one.
func TestLoginRacingPasswordChangeOpensNothing(t *testing.T) {
	e := newEnv(t)
	s := e.service(t, testenv.RedisURL(), testAuth)
	ctx := context.Background()
	u := e.user(t, "victim")
	acct, err := e.users.FindAccount(ctx, users.Credentials{Email: "victim@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.users.ChangePassword(ctx, u.ID, racePassword, raceNext, uuid.Nil); err != nil {
		t.Fatal(err)
	}
	v, err := e.users.Authenticate(ctx, acct, racePassword) // the record read before the change
	if err != nil {
		t.Fatalf("the old password against the old record: %v", err)
	}
	if _, err := s.Open(ctx, v.User.ID, v.User.Role, v.PasswordHash, Client{}); !errors.Is(err, ErrUserChanged) {
		t.Fatalf("Open after the password changed = %v, want ErrUserChanged", err)
	}
	if n, logins := e.sessionRows(t, u.ID); n != 0 || logins != 0 {
		t.Fatalf("%d sessions and %d login events written, want none", n, logins)
	}
}

// A deactivation that lands while a login hashes leaves no session either (one would come back
// to life if the account were reactivated).
func TestLoginRacingDeactivationOpensNothing(t *testing.T) {
	e := newEnv(t)
	s := e.service(t, testenv.RedisURL(), testAuth)
	ctx := context.Background()
	u := e.user(t, "leaver")
	acct, err := e.users.FindAccount(ctx, users.Credentials{Email: "leaver@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.users.Authenticate(ctx, acct, racePassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, "UPDATE users SET is_active = false WHERE id = $1", u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, v.User.ID, v.User.Role, v.PasswordHash, Client{}); !errors.Is(err, ErrUserChanged) {
		t.Fatalf("Open after deactivation = %v, want ErrUserChanged", err)
	}
	if n, logins := e.sessionRows(t, u.ID); n != 0 || logins != 0 {
		t.Fatalf("%d sessions and %d login events written, want none", n, logins)
	}
}

// Upgrading a weaker hash at login replaces only the hash it verified: a password change that
// landed first keeps the new password, and the stale login opens no session.
func TestHashUpgradeNeverUndoesAPasswordChange(t *testing.T) {
	e := newEnv(t)
	s := e.service(t, testenv.RedisURL(), testAuth)
	ctx := context.Background()
	u := e.user(t, "carol") // hashed with the env's 64 KiB
	stronger := users.NewService(users.NewStore(e.pool), password.NewHasher(password.Params{MemoryKiB: 128, Iterations: 2, Parallelism: 1}), password.NewGate(2, 64), testenv.Logger(t))
	acct, err := stronger.FindAccount(ctx, users.Credentials{Email: "carol@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.users.ChangePassword(ctx, u.ID, racePassword, raceNext, uuid.Nil); err != nil {
		t.Fatal(err)
	}
	v, err := stronger.Authenticate(ctx, acct, racePassword) // old record, weaker hash: upgrades
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, v.User.ID, v.User.Role, v.PasswordHash, Client{}); !errors.Is(err, ErrUserChanged) {
		t.Fatalf("Open for the stale login = %v, want ErrUserChanged", err)
	}
	for _, c := range []struct {
		pw   string
		want error
	}{{raceNext, nil}, {racePassword, users.ErrInvalidCredentials}} {
		a, err := stronger.FindAccount(ctx, users.Credentials{Email: "carol@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stronger.Authenticate(ctx, a, c.pw); !errors.Is(err, c.want) && (err != nil || c.want != nil) {
			t.Fatalf("after the change and the stale login, password %q: %v, want %v", c.pw, err, c.want)
		}
	}
}

// upgradeAtLogin registers name and signs it in through a users service with stronger hashing
// parameters, which upgrades its hash; it returns the user as registered, that service and the
// login's verified account.
func (e *env) upgradeAtLogin(t *testing.T, name string) (testUser, *users.Service, users.Verified) {
	t.Helper()
	ctx := context.Background()
	u := e.user(t, name)
	stronger := users.NewService(users.NewStore(e.pool), password.NewHasher(password.Params{MemoryKiB: 128, Iterations: 2, Parallelism: 1}), password.NewGate(2, 64), testenv.Logger(t))
	acct, err := stronger.FindAccount(ctx, users.Credentials{Email: name + "@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := stronger.Authenticate(ctx, acct, racePassword)
	if err != nil {
		t.Fatal(err)
	}
	if v.PasswordHash == u.hash {
		t.Fatal("the weaker hash was not upgraded")
	}
	return u, stronger, v
}

// Without a race, an upgrade at login stores the stronger hash and the login's session opens.
func TestHashUpgradeAtLoginOpensTheSession(t *testing.T) {
	e := newEnv(t)
	s := e.service(t, testenv.RedisURL(), testAuth)
	ctx := context.Background()
	_, _, v := e.upgradeAtLogin(t, "dave")
	if _, err := s.Open(ctx, v.User.ID, v.User.Role, v.PasswordHash, Client{}); err != nil {
		t.Fatalf("Open after the upgrade: %v", err)
	}
}

// An upgrade at login leaves the user's version (updated_at, and so its ETag) as it was: the
// stored hash is not part of the user the API shows, and an admin or another device holding
// that version must not get 412 because the user signed in.
func TestHashUpgradeLeavesTheUsersVersion(t *testing.T) {
	e := newEnv(t)
	u, stronger, _ := e.upgradeAtLogin(t, "erin")
	after, err := stronger.Get(context.Background(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !after.UpdatedAt.Equal(u.UpdatedAt) || users.ETag(after) != users.ETag(u.User) {
		t.Fatalf("after the upgrade: updated_at %v, ETag %s; want %v, %s as before", after.UpdatedAt, users.ETag(after), u.UpdatedAt, users.ETag(u.User))
	}
}

// Two logins with the right password that both read the weaker hash before either upgrades it
// (overlapping sign-ins just after the parameters were raised) both open: the one whose upgrade
// lost to the other's checks the password against the hash stored now.
func TestOverlappingUpgradesBothOpen(t *testing.T) {
	e := newEnv(t)
	s := e.service(t, testenv.RedisURL(), testAuth)
	ctx := context.Background()
	e.user(t, "erin")
	stronger := users.NewService(users.NewStore(e.pool), password.NewHasher(password.Params{MemoryKiB: 128, Iterations: 2, Parallelism: 1}), password.NewGate(2, 64), testenv.Logger(t))
	var vs []users.Verified
	accts := make([]users.Account, 2)
	for i := range accts {
		a, err := stronger.FindAccount(ctx, users.Credentials{Email: "erin@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		accts[i] = a
	}
	for _, a := range accts {
		v, err := stronger.Authenticate(ctx, a, racePassword)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	for i, v := range vs {
		if _, err := s.Open(ctx, v.User.ID, v.User.Role, v.PasswordHash, Client{}); err != nil {
			t.Fatalf("login %d with the right password: %v", i+1, err)
		}
	}
}

// A password change still in flight when the login's insert runs makes the insert wait for it
// (the row lock) and then find the new hash: no session, rather than one the change's
// revocation, already past, would miss.
func TestLoginWaitsForAPasswordChangeInFlight(t *testing.T) {
	e := newEnv(t)
	s := e.service(t, testenv.RedisURL(), testAuth)
	ctx := context.Background()
	u := e.user(t, "frank")
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "UPDATE users SET hashed_password = 'changed elsewhere' WHERE id = $1", u.ID); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Open(ctx, u.ID, u.Role, u.hash, Client{})
		done <- err
	}()
	// Wait until the insert is seen waiting on a lock; if it finishes first, it did not wait.
	for deadline := time.Now().Add(5 * time.Second); ; {
		var waiting int
		if err := e.pool.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO user_sessions%'").Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Open finished (%v) while the change was in flight, without waiting for it", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("Open neither waited on the row lock nor finished in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrUserChanged) {
		t.Fatalf("Open after the change committed = %v, want ErrUserChanged", err)
	}
	if n, logins := e.sessionRows(t, u.ID); n != 0 || logins != 0 {
		t.Fatalf("%d sessions and %d login events written, want none", n, logins)
	}
}

// A password change asked for by a session that was revoked while the passwords hashed (a sign
// out everywhere from another device, an admin's revocation) is not made: the revoked session no
// longer speaks for the user. One asked for by a live session is, and keeps that session.
func TestPasswordChangeByARevokedSessionChangesNothing(t *testing.T) {
	e := newEnv(t)
	s := e.service(t, testenv.RedisURL(), testAuth)
	ctx := context.Background()
	u := e.user(t, "dora")
	open := func() uuid.UUID {
		t.Helper()
		is, err := s.Open(ctx, u.ID, u.Role, u.hash, Client{})
		if err != nil {
			t.Fatal(err)
		}
		return is.SessionID
	}
	asking, other := open(), open()
	if err := s.Revoke(ctx, asking, "logout", audit.Event{Action: audit.ActionLogout, Actor: &u.ID}); err != nil {
		t.Fatal(err)
	}
	revoked, err := e.users.ChangePassword(ctx, u.ID, racePassword, raceNext, asking)
	if !errors.Is(err, users.ErrSessionEnded) || len(revoked) != 0 {
		t.Fatalf("change asked by a revoked session = %v (revoked %v), want ErrSessionEnded", err, revoked)
	}
	var live int
	if err := e.pool.QueryRow(ctx, "SELECT count(*) FROM user_sessions WHERE id = $1 AND revoked_at IS NULL", other).Scan(&live); err != nil || live != 1 {
		t.Fatalf("the other session live: %d (%v), want 1: the refused change revoked it", live, err)
	}
	acct, err := e.users.FindAccount(ctx, users.Credentials{Email: "dora@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.users.Authenticate(ctx, acct, racePassword); err != nil {
		t.Fatalf("the old password after the refused change: %v, want it still valid", err)
	}

	revoked, err = e.users.ChangePassword(ctx, u.ID, racePassword, raceNext, other)
	if err != nil || len(revoked) != 0 {
		t.Fatalf("change asked by a live session = %v (revoked %v), want nil and nothing else live to revoke", err, revoked)
	}
	if err := e.pool.QueryRow(ctx, "SELECT count(*) FROM user_sessions WHERE id = $1 AND revoked_at IS NULL", other).Scan(&live); err != nil || live != 1 {
		t.Fatalf("the asking session live after its change: %d (%v), want 1", live, err)
	}
}
