// Package testenv gives tests real infrastructure: a PostgreSQL database per test cloned from a
// migrated template, a Redis key prefix per test, and a configuration pointing at both.
//
// PostgreSQL is reached through TEST_DATABASE_URL (a URL of a database the tests may connect to
// with the right to create databases), by default postgres://postgres@127.0.0.1:5432/postgres.
// Redis is REDIS_URL, by default redis://127.0.0.1:6379/0. Run `make services` to start both.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/postgres"
)

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// Main runs a package's tests and drops the package's template database afterwards. Call it
// from TestMain.
func Main(m *testing.M) { MainThen(m, nil) }

// MainThen is Main with a check that runs after the tests and may turn a pass into a failure.
func MainThen(m *testing.M, after func() error) {
	code := m.Run()
	if code == 0 && after != nil {
		if err := after(); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL:", err)
			code = 1
		}
	}
	if templateName != "" {
		_ = dropDatabase(context.Background(), templateName)
	}
	os.Exit(code)
}

// AdminURL is the URL of the maintenance database the tests create databases through.
func AdminURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// RedisURL is the Redis the tests use.
func RedisURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// DatabaseURL returns the URL of a database named name on the test server.
func DatabaseURL(name string) string {
	u, err := url.Parse(AdminURL())
	if err != nil {
		panic(err)
	}
	u.Path = "/" + name
	return u.String()
}

// SkipShort skips t under -short: `make test-short` runs the unit tests without PostgreSQL and
// Redis, so every test that needs either skips.
func SkipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL and Redis; skipped with -short")
	}
}

// NewDB creates a fresh, migrated database for t, dropped when t ends, and returns its URL.
func NewDB(t testing.TB) string {
	t.Helper()
	SkipShort(t)
	ctx := context.Background()
	templateOnce.Do(func() { templateName, templateErr = createTemplate(ctx) })
	if templateErr != nil {
		t.Fatalf("postgresql template: %v (is PostgreSQL running? try `make services`)", templateErr)
	}
	return createDB(t, dbName("test", time.Now()), "TEMPLATE "+templateName)
}

// Pool opens a small pool on the database at url, closed when t ends.
func Pool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := postgres.Open(context.Background(), url, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// NewEmptyDB creates an empty database for t with encoding and, for LC_COLLATE and LC_CTYPE,
// locale, dropped when t ends, and returns its URL. Under locale C PostgreSQL's lower() folds
// ASCII letters only.
func NewEmptyDB(t testing.TB, encoding, locale string) string {
	t.Helper()
	SkipShort(t)
	return createDB(t, dbName("empty", time.Now()), fmt.Sprintf("TEMPLATE template0 ENCODING '%s' LC_COLLATE '%s' LC_CTYPE '%s'", encoding, locale, locale))
}

// createDB creates the database name with the CREATE DATABASE options given, dropped when t
// ends, and returns its URL.
func createDB(t testing.TB, name, options string) string {
	t.Helper()
	ctx := context.Background()
	err := withAdmin(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s %s", name, options))
		return err
	})
	if err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := dropDatabase(context.Background(), name); err != nil {
			t.Errorf("drop %s: %v (the database is left behind)", name, err)
		}
	})
	return DatabaseURL(name)
}

func createTemplate(ctx context.Context) (string, error) {
	_, _ = dropStale(ctx, time.Now()) // best effort: a failure here shows again in what follows
	name := dbName("tmpl", time.Now())
	if err := withAdmin(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, "CREATE DATABASE "+name)
		return err
	}); err != nil {
		return "", err
	}
	pool, err := postgres.Open(ctx, DatabaseURL(name), 2)
	if err != nil {
		return name, err
	}
	defer pool.Close()
	return name, postgres.Migrate(ctx, pool, "up", slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// dbName names a test database of kind created at: pc_<kind>_<unix seconds>_<random>, so that
// dropStale can tell its age.
func dbName(kind string, at time.Time) string {
	return fmt.Sprintf("pc_%s_%d_%s", kind, at.Unix(), randomHex(4))
}

// staleAfter is the age past which a test database that nobody is connected to was left behind
// by a test binary that was killed (a -timeout panic skips every cleanup): make test takes
// minutes, so a concurrently running package's databases are far younger.
const staleAfter = 2 * time.Hour

var testDBName = regexp.MustCompile(`^pc_(test|tmpl|empty)_([0-9]+)_[0-9a-f]+$`)

// dropStale drops the test databases (dbName) created before now less staleAfter that nobody is
// connected to, and returns their names. One in use is left: DROP without FORCE refuses it.
func dropStale(ctx context.Context, now time.Time) (dropped []string, err error) {
	err = withAdmin(ctx, func(c *pgx.Conn) error {
		// Those with a connection are left at once (DROP would wait 5 s for it to go).
		rows, err := c.Query(ctx, `SELECT datname FROM pg_database d WHERE datname LIKE 'pc\_%'
			AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datid = d.oid)`)
		if err != nil {
			return err
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, name := range names {
			m := testDBName.FindStringSubmatch(name)
			if m == nil {
				continue
			}
			if secs, err := strconv.ParseInt(m[2], 10, 64); err != nil || now.Sub(time.Unix(secs, 0)) < staleAfter {
				continue
			}
			if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name); err == nil {
				dropped = append(dropped, name)
			}
		}
		return nil
	})
	return dropped, err
}

func dropDatabase(ctx context.Context, name string) error {
	return withAdmin(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name))
		return err
	})
}

func withAdmin(ctx context.Context, fn func(*pgx.Conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	return fn(c)
}

// RedisPrefix returns a key prefix unique to t; its keys are deleted when t ends.
func RedisPrefix(t testing.TB) string {
	t.Helper()
	SkipShort(t)
	prefix := "pc_test:" + randomHex(6) + ":"
	t.Cleanup(func() { deleteKeys(t, prefix) })
	return prefix
}

func deleteKeys(t testing.TB, prefix string) {
	opt, err := rueidis.ParseURL(RedisURL())
	if err != nil {
		return
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return
	}
	defer c.Close()
	ctx := context.Background()
	var cursor uint64
	for {
		e, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match(prefix+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			t.Logf("scan redis: %v", err)
			return
		}
		if len(e.Elements) > 0 {
			c.Do(ctx, c.B().Del().Key(e.Elements...).Build())
		}
		if cursor = e.Cursor; cursor == 0 {
			return
		}
	}
}

// Config returns a service configuration for t: a fresh database, its own Redis prefix, cheap
// argon2 parameters (tests are about behaviour; make bench measures real costs), a random key
// encryption key, and no automatic migration (the template is migrated).
func Config(t testing.TB) config.Config {
	t.Helper()
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Postgres.URL = NewDB(t)
	cfg.Postgres.AutoMigrate = false
	cfg.Redis.URL = RedisURL()
	cfg.Redis.KeyPrefix = RedisPrefix(t)
	cfg.Password = config.Password{MemoryKiB: 64, Iterations: 1, Parallelism: 1}
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	cfg.Auth.KeyEncryptionKey = kek
	// Tests hammer from one address: limits are generous unless a test sets its own.
	generous := "100000/1m"
	cfg.Limits = config.Limits{IP: generous, LoginIP: generous, LoginAccountFailures: generous, RegisterIP: generous,
		RefreshIP: generous, PasswordIP: generous, PasswordAccount: generous, IPv6Prefix: 64}
	cfg.Auth.Issuer = "https://portcullis.test"
	cfg.Auth.Audience = "portcullis-test"
	return cfg
}

// Logger returns a logger that writes to t's log, so output appears only for failing tests.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RandomKey returns n random bytes, base64 encoded, for configuration values.
func RandomKey(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
