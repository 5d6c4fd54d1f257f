package postgres_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/portcullis/portcullis/db"
	"github.com/portcullis/portcullis/internal/postgres"
	"github.com/portcullis/portcullis/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Every migration rolls back cleanly and applies again: Down sections are real.
func TestMigrationsGoDownAndUpAgain(t *testing.T) {
	ctx := context.Background()
	pool := testenv.Pool(t, testenv.NewDB(t))
	tables := func() int {
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> 'goose_db_version'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const want = 7 // users, user_sessions, spent_refresh_tokens, signing_keys, audit_events, users_search, password_guesses_in_flight
	if got := tables(); got != want {
		t.Fatalf("tables after up = %d, want %d", got, want)
	}
	migrations, err := fs.Glob(db.Migrations, "migrations/*.sql")
	if err != nil || len(migrations) == 0 {
		t.Fatalf("embedded migrations: %v, %d", err, len(migrations))
	}
	for i := range migrations {
		if err := postgres.Migrate(ctx, pool, "down", quiet()); err != nil {
			t.Fatalf("down #%d: %v", i+1, err)
		}
	}
	if got := tables(); got != 0 {
		t.Fatalf("tables after every down = %d, want 0", got)
	}
	if err := postgres.Migrate(ctx, pool, "up", quiet()); err != nil {
		t.Fatal(err)
	}
	if got := tables(); got != want {
		t.Fatalf("tables after up again = %d, want %d", got, want)
	}
	if err := postgres.Migrate(ctx, pool, "status", quiet()); err != nil {
		t.Fatal(err)
	}
	if err := postgres.Migrate(ctx, pool, "sideways", quiet()); err == nil {
		t.Fatal("an unknown migrate command was accepted")
	}
}

func TestEnsureDatabaseCreatesItOnce(t *testing.T) {
	testenv.SkipShort(t)
	ctx := context.Background()
	name := fmt.Sprintf("pc_ensure_%d", time.Now().UnixNano()) // lower case: unquoted DROP finds it
	url := testenv.DatabaseURL(name)
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, testenv.AdminURL())
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	for i := 0; i < 2; i++ { // the second call finds it and does nothing
		if err := postgres.EnsureDatabase(ctx, url); err != nil {
			t.Fatalf("EnsureDatabase #%d: %v", i+1, err)
		}
	}
	pool, err := postgres.Open(ctx, url, 2)
	if err != nil {
		t.Fatalf("open the created database: %v", err)
	}
	defer pool.Close()
	// UTF-8 with a locale that folds every letter, whatever the cluster's default (on this
	// machine's clusters the default is C.UTF-8 too, so only the refusal below would tell).
	var encoding, ctype string
	if err := pool.QueryRow(ctx, "SELECT pg_encoding_to_char(encoding), datctype FROM pg_database WHERE datname = current_database()").Scan(&encoding, &ctype); err != nil {
		t.Fatal(err)
	}
	if encoding != "UTF8" || ctype != "C.UTF-8" {
		t.Fatalf("created with encoding %s, LC_CTYPE %s; want UTF8, C.UTF-8", encoding, ctype)
	}
	if err := postgres.RequireCaseFolding(ctx, pool, false, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("the created database is refused: %v", err)
	}
}

func TestOpenSaysWhereItFailed(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://127.0.0.1:1/nothing?connect_timeout=2", 2)
	if err == nil {
		t.Fatal("Open succeeded against a closed port")
	}
}

// Migration 00006 moves addresses to NFC, one account per NFC form, and never fails on
// addresses that fold together: an NFC one and its NFD spelling, or two NFD spellings of one
// NFC form.
func TestEmailMigrationFoldsToNFCWithoutCollisions(t *testing.T) {
	ctx := context.Background()
	pool := testenv.Pool(t, testenv.NewDB(t))
	downTo(t, pool, 5) // back before 00006
	rows := []struct{ name, email string }{
		{"lone_nfd", "e\u0301mile@example.com"},    // moves
		{"nfc_first", "\u00e9va@example.com"},      // already NFC: keeps it
		{"nfd_twin", "e\u0301va@example.com"},      // its NFC form is taken: stays
		{"older", "e\u0301\u0323lo@example.com"},   // two spellings of one NFC form:
		{"younger", "e\u0323\u0301lo@example.com"}, // the older moves, the younger stays
		{"ascii", "plain@example.com"},             // untouched
	}
	for i, r := range rows {
		if _, err := pool.Exec(ctx, `INSERT INTO users (id, email, username, hashed_password, role, is_active, is_verified, created_at, updated_at)
			VALUES (gen_random_uuid(), $1, $2, 'x', 'user', true, false, $3, $3)`, r.email, r.name, time.Unix(1_700_000_000+int64(i), 0)); err != nil {
			t.Fatalf("insert %s: %v", r.name, err)
		}
	}
	if err := postgres.Migrate(ctx, pool, "up", quiet()); err != nil {
		t.Fatalf("up: %v", err)
	}
	want := map[string]bool{"lone_nfd": true, "nfc_first": true, "nfd_twin": false, "older": true, "younger": false, "ascii": true}
	for name, nfc := range want {
		var got bool
		if err := pool.QueryRow(ctx, "SELECT email IS NFC NORMALIZED FROM users WHERE username = $1", name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != nfc {
			t.Errorf("%s: email in NFC = %v, want %v", name, got, nfc)
		}
	}
}

// Migration 00011 stores the ASCII domains of existing addresses in lower case, the form
// users.normalizeEmail gives them from now on (IDNA maps an ASCII letter to its lower case and
// nothing else of ASCII), with a new updated_at so that the user's ETag changes with what the
// API shows. Domains SQL cannot map faithfully stay as stored: non-ASCII ones (fullwidth
// letters, say) and those holding a punycode label. Local parts are never touched.
func TestEmailMigrationLowersASCIIDomains(t *testing.T) {
	ctx := context.Background()
	pool := testenv.Pool(t, testenv.NewDB(t))
	downTo(t, pool, 10) // back before 00011
	rows := []struct{ name, email, want string }{
		{"upper", "Ada.Lovelace@EXAMPLE.Com", "Ada.Lovelace@example.com"},
		{"plain", "ada@example.com", "ada@example.com"},
		{"puny", "puny@XN--EXMPLE-CUA.DE", "puny@XN--EXMPLE-CUA.DE"},
		{"wide", "wide@\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25.COM", "wide@\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25.COM"},
		{"umlaut", "umlaut@EX\u00c4MPLE.DE", "umlaut@EX\u00c4MPLE.DE"},
		{"literal", "lit@[192.168.0.1]", "lit@[192.168.0.1]"},
	}
	before := time.Unix(1_700_000_000, 0).UTC()
	for _, r := range rows {
		if _, err := pool.Exec(ctx, `INSERT INTO users (id, email, username, hashed_password, role, is_active, is_verified, created_at, updated_at)
			VALUES (gen_random_uuid(), $1, $2, 'x', 'user', true, false, $3, $3)`, r.email, r.name, before); err != nil {
			t.Fatalf("insert %s: %v", r.name, err)
		}
	}
	if err := postgres.Migrate(ctx, pool, "up", quiet()); err != nil {
		t.Fatalf("up: %v", err)
	}
	for _, r := range rows {
		var got string
		var updated time.Time
		if err := pool.QueryRow(ctx, "SELECT email, updated_at FROM users WHERE username = $1", r.name).Scan(&got, &updated); err != nil {
			t.Fatal(err)
		}
		if got != r.want {
			t.Errorf("%s: email %q, want %q", r.name, got, r.want)
		}
		if changed := r.email != r.want; changed == updated.Equal(before) {
			t.Errorf("%s: updated_at %v (was %v); want it moved only when the address changed", r.name, updated, before)
		}
	}
}

// Unavailable tells a passing failure of PostgreSQL (503, retry) from one of the statement.
func TestUnavailable(t *testing.T) {
	for code, want := range map[string]bool{
		"08006": true, "53300": true, "57P01": true, "57P03": true, "40001": true, "40P01": true,
		"57014": true, "55P03": true, "25006": true,
		"23505": false, "23514": false, "22001": false, "22P02": false, "42P01": false,
	} {
		if got := postgres.Unavailable(fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: code})); got != want {
			t.Errorf("Unavailable(SQLSTATE %s) = %v, want %v", code, got, want)
		}
	}
	_, err := postgres.Open(context.Background(), "postgres://127.0.0.1:1/nothing?connect_timeout=2", 2)
	if !postgres.Unavailable(err) {
		t.Errorf("Unavailable(%v) = false for a refused connection", err)
	}
	if postgres.Unavailable(context.Canceled) || postgres.Unavailable(pgx.ErrNoRows) {
		t.Error("Unavailable is true for a cancelled request or no rows")
	}
}

// downTo rolls pool's database back, one migration at a time, until version is the last one
// applied.
func downTo(t *testing.T, pool *pgxpool.Pool, version int64) {
	t.Helper()
	ctx := context.Background()
	for {
		var current int64
		if err := pool.QueryRow(ctx, "SELECT coalesce(max(version_id), 0) FROM goose_db_version").Scan(&current); err != nil {
			t.Fatal(err)
		}
		if current <= version {
			return
		}
		if err := postgres.Migrate(ctx, pool, "down", quiet()); err != nil {
			t.Fatal(err)
		}
	}
}

// A database created with LC_CTYPE C lower-cases ASCII only, which serve warns about; the
// test databases (C.UTF-8, like the server's default here) fold É and Α as Go does.
func TestLowersBeyondASCII(t *testing.T) {
	ctx := context.Background()
	pool := testenv.Pool(t, testenv.NewDB(t))
	if ok, err := postgres.LowersBeyondASCII(ctx, pool); !ok || err != nil {
		t.Fatalf("on a C.UTF-8 database: %v, %v; want true", ok, err)
	}
	c := testenv.Pool(t, testenv.NewEmptyDB(t, "UTF8", "C"))
	if ok, err := postgres.LowersBeyondASCII(ctx, c); ok || err != nil {
		t.Fatalf("on an LC_CTYPE C database: %v, %v; want false", ok, err)
	}
}

// A database whose lower() folds ASCII only would let "Émile@x" register beside "émile@x": the
// service refuses it unless the operator accepts that, and then warns.
func TestRequireCaseFolding(t *testing.T) {
	ctx := context.Background()
	var logs strings.Builder
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	good := testenv.Pool(t, testenv.NewDB(t))
	if err := postgres.RequireCaseFolding(ctx, good, false, logger); err != nil || logs.Len() != 0 {
		t.Fatalf("on a C.UTF-8 database: %v, logged %q; want nil and nothing", err, logs.String())
	}
	bad := testenv.Pool(t, testenv.NewEmptyDB(t, "UTF8", "C"))
	err := postgres.RequireCaseFolding(ctx, bad, false, logger)
	if !errors.Is(err, postgres.ErrASCIICaseFolding) || !strings.Contains(err.Error(), "PORTCULLIS_ALLOW_ASCII_CASE_FOLDING") {
		t.Fatalf("on an LC_CTYPE C database: %v; want ErrASCIICaseFolding naming the setting that accepts it", err)
	}
	if err := postgres.RequireCaseFolding(ctx, bad, true, logger); err != nil || !strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("accepted: %v, logged %q; want nil and a warning", err, logs.String())
	}
	// A database that is not UTF-8 cannot store or compare such names at all: refused even with
	// the override, with a remedy (the case-folding query itself fails there).
	for _, enc := range []string{"SQL_ASCII", "LATIN1"} {
		other := testenv.Pool(t, testenv.NewEmptyDB(t, enc, "C"))
		if err := postgres.RequireCaseFolding(ctx, other, true, logger); !errors.Is(err, postgres.ErrNotUTF8) || !strings.Contains(err.Error(), enc) {
			t.Fatalf("on a %s database with the override: %v; want ErrNotUTF8 naming %s", enc, err, enc)
		}
	}
}

// EnsureDatabase asks for its locale (C here, unlike this cluster's default C.UTF-8, so the
// options are seen to apply), and falls back on the cluster's default where the system lacks
// it (42809).
func TestEnsureDatabaseLocaleAndFallback(t *testing.T) {
	testenv.SkipShort(t)
	ctx := context.Background()
	for _, c := range []struct{ locale, want string }{{"C", "C"}, {"xx_NOPE.UTF-8", ""}} {
		name := fmt.Sprintf("pc_ensure_loc_%d", time.Now().UnixNano())
		t.Cleanup(func() {
			if a, err := pgx.Connect(ctx, testenv.AdminURL()); err == nil {
				defer a.Close(ctx)
				_, _ = a.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			}
		})
		postgres.SetCreateLocale(t, c.locale)
		if err := postgres.EnsureDatabase(ctx, testenv.DatabaseURL(name)); err != nil {
			t.Fatalf("locale %s: %v", c.locale, err)
		}
		a, err := pgx.Connect(ctx, testenv.AdminURL())
		if err != nil {
			t.Fatal(err)
		}
		var ctype, def string
		err = a.QueryRow(ctx, "SELECT (SELECT datctype FROM pg_database WHERE datname = $1), (SELECT datctype FROM pg_database WHERE datname = 'template1')", name).Scan(&ctype, &def)
		a.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := cmp.Or(c.want, def); ctype != want {
			t.Fatalf("asked for %s: LC_CTYPE %s, want %s", c.locale, ctype, want)
		}
	}
}

// A PostgreSQL that accepts connections and never answers (a hung server, a proxy whose backend
// is gone) fails Open within the default connect timeout, naming where it failed, rather than
// holding the service's start, or any request that needs a new connection, for as long as the
// caller waits. connect_timeout in the URL still sets it.
func TestOpenGivesUpOnAServerThatNeverAnswers(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() }) // held open, never answered
		}
	}()
	for _, tt := range []struct {
		query string
		want  time.Duration
	}{
		{"", postgres.DefaultConnectTimeout},
		{"?connect_timeout=1", time.Second},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := time.Now()
		_, err := postgres.Open(ctx, "postgres://u@"+ln.Addr().String()+"/db"+tt.query, 2)
		took := time.Since(start)
		outerEnded := ctx.Err() != nil
		cancel()
		if err == nil || outerEnded {
			t.Fatalf("Open%s against a server that never answers: %v after %v, want its own timeout", tt.query, err, took)
		}
		if took < tt.want-100*time.Millisecond || took > tt.want+2*time.Second {
			t.Fatalf("Open%s gave up after %v, want about %v", tt.query, took, tt.want)
		}
		if !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("Open's error %q does not say where it failed", err)
		}
	}
}
