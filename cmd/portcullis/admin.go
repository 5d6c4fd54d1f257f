package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/portcullis/portcullis/internal/app"
	"github.com/portcullis/portcullis/internal/apperr"
	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/password"
	"github.com/portcullis/portcullis/internal/postgres"
	"github.com/portcullis/portcullis/internal/ratelimit"
	"github.com/portcullis/portcullis/internal/redis"
	"github.com/portcullis/portcullis/internal/sessions"
	"github.com/portcullis/portcullis/internal/users"
)

// createAdmin bootstraps an admin account from the command line. The password comes from the
// first line of stdin with -password-stdin; otherwise a random one is generated and printed
// once, to stdout only, never to a log, before the account is created (a create that fails
// after it leaves that password unused).
func createAdmin(ctx context.Context, cfg config.Config, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("admin create", flag.ContinueOnError)
	email := fs.String("email", "", "the admin's email address")
	username := fs.String("username", "", "the admin's username")
	fullName := fs.String("full-name", "", "the admin's full name (optional)")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *email == "" || *username == "" {
		return errors.New("admin create needs -email and -username")
	}
	pw, generated, err := newPassword(*fromStdin, stdin)
	if err != nil {
		return err
	}
	svc, pool, err := usersService(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	nu := users.AdminNewUser{NewUser: users.NewUser{Email: *email, Username: *username, Password: pw}, Role: users.RoleAdmin, IsVerified: true}
	if *fullName != "" {
		nu.FullName = fullName
	}
	// A generated password is shown before the account exists: if it cannot be, nothing is
	// created, rather than an admin whose only password was lost.
	if err := showGenerated(stdout, pw, generated, "no admin was created"); err != nil {
		return err
	}
	u, err := svc.Create(ctx, nil, nu)
	if err != nil {
		return unapplied(describe(err, "create the admin"), generated)
	}
	_, err = fmt.Fprintf(stdout, "created admin %s (%s), id %s\n", u.Username, u.Email, u.ID)
	return err
}

// setPassword sets the password of the account with -email from the command line, the way back
// in for an admin who lost theirs: every session of the account ends, and the change is audited
// with a null actor. Through the instances' shared Redis it then tells them (reachInstances), so
// the ended sessions are refused at once and a lockout by failed sign-ins is lifted. The
// password comes as in createAdmin.
func setPassword(ctx context.Context, cfg config.Config, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("admin set-password", flag.ContinueOnError)
	email := fs.String("email", "", "the account's email address")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *email == "" {
		return errors.New("admin set-password needs -email")
	}
	pw, generated, err := newPassword(*fromStdin, stdin)
	if err != nil {
		return err
	}
	rc, err := redis.Open(cfg.Redis, quiet)
	if err != nil {
		return err
	}
	defer rc.Close()
	svc, pool, err := usersService(ctx, cfg, users.WithCache(rc, cfg.Redis.SessionCacheTTL))
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := showGenerated(stdout, pw, generated, "the password was not changed"); err != nil {
		return err
	}
	u, revoked, err := svc.ResetPassword(ctx, nil, *email, pw)
	if err != nil {
		// A reset whose commit went unanswered may have ended these sessions: the running
		// instances re-read them from PostgreSQL rather than trust their cached states.
		sess := sessions.NewService(sessions.NewStore(pool), rc, cfg.Redis.SessionCacheTTL, cfg.Auth, quiet)
		if rerr := sess.Unsure(ctx, err, revoked...); rerr != nil {
			err = fmt.Errorf("%w; and Redis could not be told (%v): running instances that cached a session it may have ended may accept it for up to %s", err, rerr, cfg.Redis.SessionCacheTTL)
		}
		// The new password may be the account's now: lift the lockout as an answered reset
		// does, or its owner would be refused it until the budget refilled. If the reset did
		// not commit, the lockout is lifted all the same, as the operator meant it to be.
		if errors.Is(err, postgres.ErrCommitUnknown) {
			if m := liftLockout(ctx, cfg, rc, svc, *email); m != "" {
				err = fmt.Errorf("%w; and %s", err, m)
			}
		}
		return unapplied(describe(err, "set the password"), generated)
	}
	_, err = fmt.Fprintf(stdout, "password set for %s (%s); %d sessions ended\n", u.Username, u.Email, len(revoked))
	if err == nil && !u.IsActive {
		_, err = fmt.Fprintln(stdout, "note: the account is disabled; it cannot sign in until an admin reactivates it")
	}
	missed := reachInstances(ctx, cfg, rc, pool, svc, u.Email, revoked)
	if len(missed) == 0 && err == nil {
		_, err = fmt.Fprintln(stdout, "running instances refuse the ended sessions at once, and the account's failed sign-ins are forgotten")
	}
	for _, m := range missed {
		if err == nil {
			_, err = fmt.Fprintln(stdout, "note: "+m)
		}
	}
	return err
}

// reachInstances carries a password reset already committed to PostgreSQL to the running
// instances through their shared Redis. The ended sessions get tombstones, so every instance
// refuses them on its next request instead of trusting a cached state for up to
// PORTCULLIS_SESSION_CACHE_TTL; the account's failed sign-in budget is reset, so an owner locked
// out by failures (their own or an attacker's) signs in with the new password at once. It
// returns what it could not do, for the operator to read. An instance that has itself lost Redis
// keeps its own in-process lock until the budget refills.
func reachInstances(ctx context.Context, cfg config.Config, rc *redis.Client, pool *pgxpool.Pool, svc *users.Service, email string, revoked []uuid.UUID) []string {
	var missed []string
	sess := sessions.NewService(sessions.NewStore(pool), rc, cfg.Redis.SessionCacheTTL, cfg.Auth, quiet)
	if err := sess.Forget(ctx, revoked...); err != nil {
		missed = append(missed, fmt.Sprintf("Redis could not be told (%v): running instances that cached an ended session may accept it for up to %s", err, cfg.Redis.SessionCacheTTL))
	}
	if m := liftLockout(ctx, cfg, rc, svc, email); m != "" {
		missed = append(missed, m)
	}
	return missed
}

// liftLockout resets the failed sign-in budget of the account with email, in the instances'
// shared Redis, and returns what went wrong, for the operator to read, or "".
func liftLockout(ctx context.Context, cfg config.Config, rc *redis.Client, svc *users.Service, email string) string {
	_, failures, err := app.ParseLimits(cfg.Limits)
	var acct users.Account
	if err == nil {
		acct, err = svc.FindAccount(ctx, users.Credentials{Email: email})
	}
	if err == nil {
		err = ratelimit.New(rc, quiet).Reset(ctx, failures, acct.FailureKey())
	}
	if err != nil {
		return fmt.Sprintf("the failed sign-ins could not be forgotten (%v): an account locked by them stays locked until its failure budget refills", err)
	}
	return ""
}

// quiet discards the logs of the services the CLI borrows: it reports to the operator itself.
var quiet = slog.New(slog.DiscardHandler)

// unapplied says, when a generated password was shown, that it was not applied; when the commit
// went unanswered, that the change may have been.
func unapplied(err error, generated bool) error {
	if errors.Is(err, postgres.ErrCommitUnknown) {
		return fmt.Errorf("%w (PostgreSQL did not answer the commit: the change may have been applied; check before running the command again)", err)
	}
	if generated {
		return fmt.Errorf("%w (the password shown above was not applied)", err)
	}
	return err
}

// newPassword is the first line of stdin when fromStdin, else a random password (generated).
func newPassword(fromStdin bool, stdin io.Reader) (pw string, generated bool, err error) {
	if fromStdin {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", false, fmt.Errorf("read password from stdin: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), false, nil
	}
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", false, err
	}
	return base64.RawURLEncoding.EncodeToString(b), true, nil
}

// showGenerated prints a generated password, once, before it is used; when it cannot, the
// caller must not go on (unshown says what did not happen).
func showGenerated(stdout io.Writer, pw string, generated bool, unshown string) error {
	if !generated {
		return nil
	}
	if _, err := fmt.Fprintf(stdout, "password (shown once, store it now): %s\n", pw); err != nil {
		return fmt.Errorf("cannot show the generated password, so %s: %w", unshown, err)
	}
	return nil
}

// usersService opens the database, migrated first when so configured, and the users domain on
// it with the configured hashing parameters and opts; the caller closes pool.
func usersService(ctx context.Context, cfg config.Config, opts ...users.Option) (svc *users.Service, pool *pgxpool.Pool, err error) {
	pool, err = postgres.Open(ctx, cfg.Postgres.URL, 2)
	if err != nil {
		return nil, nil, err
	}
	if err := postgres.RequireCaseFolding(ctx, pool, cfg.Postgres.AllowASCIICaseFolding, quiet); err != nil {
		pool.Close()
		return nil, nil, err
	}
	if cfg.Postgres.AutoMigrate {
		if err := postgres.Migrate(ctx, pool, "up", quiet); err != nil {
			pool.Close()
			return nil, nil, fmt.Errorf("migrate: %w", err)
		}
	}
	hasher := password.NewHasher(password.Params{MemoryKiB: cfg.Password.MemoryKiB, Iterations: cfg.Password.Iterations, Parallelism: cfg.Password.Parallelism})
	return users.NewService(users.NewStore(pool), hasher, password.NewGate(1, 0), quiet, opts...), pool, nil
}

// describe spells out a domain error of doing something for a terminal, naming the offending
// fields.
func describe(err error, doing string) error {
	ae, ok := apperr.As(err)
	if !ok {
		return err
	}
	msg := ae.Message
	for _, f := range ae.Fields {
		msg += fmt.Sprintf("; %s %s", f.Field, f.Detail)
	}
	return fmt.Errorf("cannot %s: %s", doing, msg)
}
