// Package postgres opens the connection pool, runs the embedded migrations and offers the
// transaction and error helpers the domain stores share.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/portcullis/portcullis/db"
	dbgen "github.com/portcullis/portcullis/gen/db"
	"github.com/portcullis/portcullis/internal/every"
)

// DefaultConnectTimeout bounds a connection's start (dial, TLS, authentication) when the URL sets
// no connect_timeout (or 0). pgx's own default is none: a server that accepts and never answers
// held the service's start, and every request needing a new connection, as long as its caller
// waited.
const DefaultConnectTimeout = 5 * time.Second

// boundConnect gives c DefaultConnectTimeout unless its URL set one.
func boundConnect(c *pgconn.Config) {
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
}

// Open connects a pool to url and checks that the server answers.
func Open(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", parseError(err))
	}
	boundConnect(&cfg.ConnConfig.Config)
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	// A span per query, under the request's span, named by sqlc's query name.
	cfg.ConnConfig.Tracer = otelpgx.NewTracer(otelpgx.WithSpanNameFunc(queryName))
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("reach postgresql at %s: %w", cfg.ConnConfig.Host, err)
	}
	return pool, nil
}

// parseError is the error of parsing a connection string without the string itself. pgx quotes
// it with a best-effort redaction that leaves some spellings of a password whole ("password =
// 'a b'", "password=a\ b"), and this error reaches stderr and the logs; the reason is kept.
func parseError(err error) error {
	var pe *pgconn.ParseConfigError
	if !errors.As(err, &pe) {
		return err
	}
	// Error() is "cannot parse `<string>`: <reason>"; the reason holds no backquote.
	msg := err.Error()
	if i := strings.LastIndex(msg, "`: "); i >= 0 {
		return errors.New("cannot parse it: " + msg[i+len("`: "):])
	}
	return errors.New("cannot parse it")
}

// createLocale is EnsureDatabase's LC_COLLATE and LC_CTYPE (a variable for the tests).
var createLocale = "C.UTF-8"

// EnsureDatabase creates the database that url names when it does not exist yet, connecting to
// the server's "postgres" maintenance database to do so.
func EnsureDatabase(ctx context.Context, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("parse database url: %w", parseError(err))
	}
	boundConnect(&cfg.Config)
	name := cfg.Database
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("reach postgresql at %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	// UTF-8, with a locale whose lower() folds every letter (RequireCaseFolding), whatever the
	// cluster's default. Where the system lacks that locale (42809, invalid locale name), UTF-8
	// with the cluster's default locale; where that locale does not fit UTF-8 (22023), the
	// cluster's default, which RequireCaseFolding then judges.
	create := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	for _, options := range []string{
		fmt.Sprintf(" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE '%s' LC_CTYPE '%[1]s'", createLocale),
		" TEMPLATE template0 ENCODING 'UTF8'",
		"",
	} {
		if _, err = conn.Exec(ctx, create+options); !IsCode(err, "42809") && !IsCode(err, "22023") {
			break
		}
	}
	if err != nil && !IsCode(err, "42P04") {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

// Migrate runs goose with the embedded migrations: command is "up", "down" or "status".
func Migrate(ctx context.Context, pool *pgxpool.Pool, command string, logger *slog.Logger) error {
	migrations, err := fs.Sub(db.Migrations, "migrations")
	if err != nil {
		return err
	}
	sqlDB := stdlib.OpenDBFromPool(pool)
	defer sqlDB.Close()
	// Every instance migrates at start: instances started at once (a rolling deploy, several
	// replicas) would otherwise run the same pending migration side by side, and all but one
	// fail to start (or a migration that tolerates it runs twice). A session advisory lock
	// makes them take turns; the next one in finds nothing left to do. It is polled every
	// second, for at most 10 minutes.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 600))
	if err != nil {
		return err
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrations, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	// A database a newer release migrated holds versions this binary has no migration for.
	newer, known, err := Newer(ctx, pool)
	if err != nil {
		return err
	}
	if len(newer) > 0 && command == "down" {
		return fmt.Errorf("the database is at migration %d, newer than this binary's (up to %d): roll it back with the release that applied it",
			newer[len(newer)-1], known)
	}
	if len(newer) > 0 && command == "up" {
		WarnNewer(ctx, logger, newer, known)
	}
	switch command {
	case "up":
		results, err := provider.Up(ctx)
		for _, r := range results {
			logger.InfoContext(ctx, "migration applied", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration.String())
		}
		return err
	case "down":
		r, err := provider.Down(ctx)
		if r != nil {
			logger.InfoContext(ctx, "migration rolled back", "version", r.Source.Version, "file", r.Source.Path)
		}
		return err
	case "status":
		statuses, err := provider.Status(ctx)
		for _, s := range statuses {
			logger.InfoContext(ctx, "migration", "version", s.Source.Version, "file", s.Source.Path, "state", string(s.State))
		}
		for _, v := range newer {
			logger.WarnContext(ctx, "migration", "version", v, "state", "applied by a newer release: unknown to this binary")
		}
		return err
	default:
		return fmt.Errorf("unknown migrate command %q (want up, down or status)", command)
	}
}

// Newer returns the migration versions applied to the database that this binary has none for,
// in order (a newer release migrated it), and the newest version the binary has.
func Newer(ctx context.Context, pool *pgxpool.Pool) (newer []int64, known int64, err error) {
	names, err := fs.Glob(db.Migrations, "migrations/*.sql")
	if err != nil {
		return nil, 0, err
	}
	for _, name := range names {
		v, err := goose.NumericComponent(name)
		if err != nil {
			return nil, 0, fmt.Errorf("migration %s: %w", name, err)
		}
		known = max(known, v)
	}
	var migrated bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('goose_db_version') IS NOT NULL").Scan(&migrated); err != nil {
		return nil, 0, fmt.Errorf("read the schema's version: %w", err)
	}
	if !migrated {
		return nil, known, nil
	}
	rows, err := pool.Query(ctx, "SELECT DISTINCT version_id FROM goose_db_version WHERE is_applied AND version_id > $1 ORDER BY version_id", known)
	if err == nil {
		newer, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read the schema's version: %w", err)
	}
	return newer, known, nil
}

// WarnNewer logs that the database's schema is newer than this binary (see Newer).
func WarnNewer(ctx context.Context, logger *slog.Logger, newer []int64, known int64) {
	logger.WarnContext(ctx, "the database schema is newer than this binary: a newer release migrated it; running on it as the previous release",
		"database_version", newer[len(newer)-1], "binary_version", known)
}

// queryName names a statement's span: sqlc's "-- name: GetUserByID :one" when present, otherwise
// the first SQL keyword. Never the statement text, which could be long or dynamic.
func queryName(stmt string) string {
	if rest, ok := strings.CutPrefix(strings.TrimSpace(stmt), "-- name: "); ok {
		if name, _, ok := strings.Cut(rest, " "); ok {
			return name
		}
	}
	for _, f := range strings.Fields(stmt) {
		if !strings.HasPrefix(f, "--") {
			return strings.ToUpper(f)
		}
	}
	return "query"
}

// ErrCommitUnknown is in the error of a transaction whose COMMIT was sent and got no answer: the
// connection failed, or the context ended, before PostgreSQL replied. The transaction may have
// committed. A caller that keeps caches of what it changed must treat it as committed (see
// MayHaveCommitted), and the rows it read inside the transaction are returned with the error.
var ErrCommitUnknown = errors.New("the commit's outcome is unknown")

// InTx runs fn in a transaction, committing when it returns nil and rolling back otherwise. The
// error of a commit whose outcome is unknown wraps ErrCommitUnknown.
func InTx(ctx context.Context, pool *pgxpool.Pool, fn func(q *dbgen.Queries) error) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after commit
	if err := fn(dbgen.New(tx)); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		if !Refused(err) {
			return fmt.Errorf("commit: %w: %w", ErrCommitUnknown, err)
		}
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Refused reports whether err is PostgreSQL's own answer to a statement or a commit (an error,
// or ROLLBACK for a failed transaction), which says it changed nothing. Any other error (a lost
// connection, an ended context) leaves the outcome unknown once the statement may have been
// sent. pgconn.SafeToRetry cannot tell: a COMMIT whose reply was lost comes back as pgconn's
// "conn closed", which claims to be safe to retry (pgx v5.12.0, TestChangeWhoseCommitReplyIsLost).
func Refused(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) || errors.Is(err, pgx.ErrTxCommitRollback)
}

// Unanswered reports whether err is the failure of a statement that may have been sent and got
// no answer from PostgreSQL (a lost connection, an ended context): it may have taken effect.
// PostgreSQL's own refusals (Refused) and failures to connect, which send nothing, are not.
func Unanswered(err error) bool {
	var notConnected *pgconn.ConnectError
	return err != nil && !Refused(err) && !errors.As(err, &notConnected)
}

// MayHaveCommitted reports whether a write that returned err may have changed the database: it
// succeeded, or its commit's outcome is unknown. Caches of what it changed must then be
// invalidated; a write that surely failed changed nothing.
func MayHaveCommitted(err error) bool { return err == nil || errors.Is(err, ErrCommitUnknown) }

// IsCode reports whether err is a PostgreSQL error with the SQLSTATE code.
func IsCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// Unavailable reports whether err says PostgreSQL could not serve a statement for a reason that
// passes: the server unreachable or the connection lost, the server shutting down, starting or
// out of connections, a serialization failure or deadlock that chose this transaction, a
// statement cancelled by a timeout or an operator, or a server that only reads (a failover). A
// retry shortly may succeed, so the HTTP layer answers 503 with Retry-After, not 500 (which
// says the service has a bug). Errors of the statement itself (constraints, bad input) are not.
func Unavailable(err error) bool {
	if errors.Is(err, ErrCommitUnknown) { // whatever ended the wait for the answer
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch class := pgErr.Code[:min(2, len(pgErr.Code))]; {
		case class == "08", class == "53": // connection exception, insufficient resources
			return true
		case pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // shutting down, starting
			return true
		case pgErr.Code == "40001", pgErr.Code == "40P01": // serialization failure, deadlock
			return true
		case pgErr.Code == "57014", pgErr.Code == "55P03": // statement cancelled (statement_timeout, pg_cancel_backend), lock_timeout
			return true
		case pgErr.Code == "25006": // read-only transaction: a standby answers, a failover under way
			return true
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// LowersBeyondASCII reports whether the database's lower() folds letters beyond ASCII (É to é,
// Α to α) as Go's strings.ToLower does. Under LC_CTYPE C it does not: the case-insensitive
// uniqueness of emails and usernames (unique indexes on lower()) and the admin search's
// case-insensitivity then hold for ASCII letters only.
func LowersBeyondASCII(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	var ok bool
	err := pool.QueryRow(ctx, `SELECT lower(U&'\00C9\0391') = U&'\00E9\03B1'`).Scan(&ok)
	return ok, err
}

// ErrASCIICaseFolding is the error of RequireCaseFolding on a database whose lower() folds
// ASCII letters only.
var ErrASCIICaseFolding = errors.New("the database's LC_CTYPE lower-cases ASCII letters only, so emails and usernames " +
	"would be unique regardless of case for ASCII letters only (É@x and é@x could be two accounts) and the admin search " +
	"case-blind for ASCII only: create the database with a UTF-8 locale such as C.UTF-8 or en_US.UTF-8, or set " +
	"PORTCULLIS_ALLOW_ASCII_CASE_FOLDING=true to accept that")

// ErrNotUTF8 is the error of RequireCaseFolding on a database whose encoding is not UTF8.
var ErrNotUTF8 = errors.New("the database's encoding is not UTF8, so emails and usernames beyond ASCII cannot be " +
	"stored and compared as written: create the database with ENCODING 'UTF8' and a UTF-8 locale such as C.UTF-8")

// RequireCaseFolding returns ErrNotUTF8 for a database whose encoding is not UTF8, and
// ErrASCIICaseFolding for one whose lower() does not fold letters beyond ASCII
// (LowersBeyondASCII), or the error of finding out. With allow, it logs the second hazard as a
// warning instead; the first it refuses always.
func RequireCaseFolding(ctx context.Context, pool *pgxpool.Pool, allow bool, logger *slog.Logger) error {
	var encoding string
	if err := pool.QueryRow(ctx, "SHOW server_encoding").Scan(&encoding); err != nil {
		return fmt.Errorf("read the database's encoding: %w", err)
	}
	if encoding != "UTF8" {
		return fmt.Errorf("%w (it is %s)", ErrNotUTF8, encoding)
	}
	ok, err := LowersBeyondASCII(ctx, pool)
	switch {
	case err != nil:
		return fmt.Errorf("check the database's case folding: %w", err)
	case ok:
		return nil
	case allow:
		logger.WarnContext(ctx, ErrASCIICaseFolding.Error()+" (accepted by PORTCULLIS_ALLOW_ASCII_CASE_FOLDING)")
		return nil
	}
	return ErrASCIICaseFolding
}

// IsUniqueViolation reports whether err violates the unique constraint or index named constraint.
func IsUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == constraint
}

// DeleteInBatches calls del until it deletes fewer than batch rows, and returns how many it
// deleted in all: retention purges stay short statements that hold their locks briefly, however
// much there is to delete.
func DeleteInBatches(ctx context.Context, batch int32, del func(ctx context.Context, batch int32) (int64, error)) (int64, error) {
	var total int64
	for {
		n, err := del(ctx, batch)
		total += n
		if err != nil || n < int64(batch) {
			return total, err
		}
	}
}

// PurgeEvery runs purge at once, then every interval until ctx ends: a retention loop. It logs how many rows
// of what ("ended sessions") went, and a failure, which the next tick retries. Instances may
// purge at once: a DELETE finds the rows another one took already gone.
func PurgeEvery(ctx context.Context, interval time.Duration, logger *slog.Logger, what string, retention time.Duration, purge func(context.Context) (int64, error)) {
	once := func() bool {
		n, err := purge(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.WarnContext(ctx, "purging "+what+" failed; will retry", "error", err, "purged", n)
		case n > 0:
			logger.InfoContext(ctx, "purged "+what, "deleted", n, "retention", retention.String())
		}
		return true
	}
	// At start too: an instance that lives less than an interval (restarted by each deploy,
	// scaled in) would otherwise never purge.
	if ctx.Err() == nil {
		once()
	}
	every.Tick(ctx, interval, once)
}
