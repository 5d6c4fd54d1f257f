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

	"github.com/portcullis/portcullis/internal/apperr"
	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/password"
	"github.com/portcullis/portcullis/internal/postgres"
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
	pw, generated := "", false
	if *fromStdin {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read password from stdin: %w", err)
		}
		pw = strings.TrimRight(line, "\r\n")
	} else {
		b := make([]byte, 18)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		pw, generated = base64.RawURLEncoding.EncodeToString(b), true
	}

	pool, err := postgres.Open(ctx, cfg.Postgres.URL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	if cfg.Postgres.AutoMigrate {
		if err := postgres.Migrate(ctx, pool, "up", slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	hasher := password.NewHasher(password.Params{MemoryKiB: cfg.Password.MemoryKiB, Iterations: cfg.Password.Iterations, Parallelism: cfg.Password.Parallelism})
	svc := users.NewService(users.NewStore(pool), hasher, password.NewGate(1, 0), slog.New(slog.NewTextHandler(io.Discard, nil)))
	nu := users.AdminNewUser{NewUser: users.NewUser{Email: *email, Username: *username, Password: pw}, Role: users.RoleAdmin, IsVerified: true}
	if *fullName != "" {
		nu.FullName = fullName
	}
	// A generated password is shown before the account exists: if it cannot be, nothing is
	// created, rather than an admin whose only password was lost.
	if generated {
		if _, err := fmt.Fprintf(stdout, "password (shown once, store it now): %s\n", pw); err != nil {
			return fmt.Errorf("cannot show the generated password, so no admin was created: %w", err)
		}
	}
	u, err := svc.Create(ctx, nil, nu)
	if err != nil {
		return describe(err)
	}
	_, err = fmt.Fprintf(stdout, "created admin %s (%s), id %s\n", u.Username, u.Email, u.ID)
	return err
}

// describe spells out a domain error for a terminal, naming the offending fields.
func describe(err error) error {
	ae, ok := apperr.As(err)
	if !ok {
		return err
	}
	msg := ae.Message
	for _, f := range ae.Fields {
		msg += fmt.Sprintf("; %s %s", f.Field, f.Detail)
	}
	return fmt.Errorf("cannot create the admin: %s", msg)
}
