package config

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadDefaults(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != ":8080" || c.Auth.AccessTokenTTL != 15*time.Minute || c.Auth.RefreshTokenTTL != 720*time.Hour || c.Auth.SessionRetention != 7*24*time.Hour || c.AuditRetention != 0 {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if c.Postgres.URL != "postgres://127.0.0.1:5432/portcullis?sslmode=disable" || c.Redis.URL != "redis://127.0.0.1:6379/0" {
		t.Fatalf("unexpected default URLs: %q %q", c.Postgres.URL, c.Redis.URL)
	}
	if c.Limits.IPv6Prefix != 64 {
		t.Fatalf("IPv6 clients are limited by /%d, want /64", c.Limits.IPv6Prefix)
	}
	if c.Password.MemoryKiB != 19456 || c.Password.Iterations != 2 || c.Password.Parallelism != 1 {
		t.Fatalf("argon2 defaults are not OWASP's: %+v", c.Password)
	}
}

func TestLoadRejectsBadValues(t *testing.T) {
	tests := []struct {
		name, key, value, want string
	}{
		{"bad duration", "PORTCULLIS_ACCESS_TOKEN_TTL", "fifteen", "PORTCULLIS_ACCESS_TOKEN_TTL"},
		{"ttl too long", "PORTCULLIS_ACCESS_TOKEN_TTL", "48h", "between 1m and 24h"},
		{"short kek", "PORTCULLIS_KEY_ENCRYPTION_KEY", "c2hvcnQ=", "32 bytes"},
		{"bad bool", "PORTCULLIS_AUTO_MIGRATE", "perhaps", "not a boolean"},
		{"wildcard origin", "PORTCULLIS_CORS_ORIGINS", "*", "exact origin"},
		{"null origin", "PORTCULLIS_CORS_ORIGINS", "null", "exact origin"},
		{"origin with path", "PORTCULLIS_CORS_ORIGINS", "https://app.example.com/x", "exact origin"},
		// Echo's CORS reads '*' in an allowed origin as a wildcard (and "http://a*" as any http
		// origin starting with a), so the "no wildcards" promise needs '*' refused anywhere.
		{"subdomain wildcard origin", "PORTCULLIS_CORS_ORIGINS", "https://*.example.com", "exact origin"},
		{"trailing wildcard origin", "PORTCULLIS_CORS_ORIGINS", "https://app.example.com,http://a*", "exact origin"},
		// Refused at load, before the database is created or migrated.
		{"proxy not a cidr", "PORTCULLIS_TRUSTED_PROXIES", "10.0.0.0/8,10.1.2.3", "PORTCULLIS_TRUSTED_PROXIES"},
		// Browsers send origins lower-case and without a default port; another spelling never matches.
		{"upper-case origin", "PORTCULLIS_CORS_ORIGINS", "https://App.example.com", "as browsers send it"},
		{"origin with its default port", "PORTCULLIS_CORS_ORIGINS", "https://app.example.com:443", "as browsers send it"},
		{"half of tls", "PORTCULLIS_TLS_CERT_FILE", "/x.pem", "set together"},
		{"unknown log level", "PORTCULLIS_LOG_LEVEL", "warning", "PORTCULLIS_LOG_LEVEL"},
		// slog's parser takes an offset: "error+8" logged nothing at all, errors included (review).
		{"log level with an offset", "PORTCULLIS_LOG_LEVEL", "error+8", "PORTCULLIS_LOG_LEVEL"},
		{"log level with a negative offset", "PORTCULLIS_LOG_LEVEL", "debug-4", "PORTCULLIS_LOG_LEVEL"},
		// now - refresh TTL - retention overflowed into the future: the purge deleted every spent
		// refresh token at once, and a replayed one was unknown instead of revoking its session.
		{"retention overflowing", "PORTCULLIS_SESSION_RETENTION", "2562047h", "PORTCULLIS_SESSION_RETENTION must be 0"},
		{"audit retention overflowing", "PORTCULLIS_AUDIT_RETENTION", "2562047h", "PORTCULLIS_AUDIT_RETENTION must be 0"},
		{"refresh ttl overflowing", "PORTCULLIS_REFRESH_TOKEN_TTL", "2562047h", "PORTCULLIS_REFRESH_TOKEN_TTL"},
		{"session lifetime overflowing", "PORTCULLIS_SESSION_MAX_LIFETIME", "2562047h", "PORTCULLIS_SESSION_MAX_LIFETIME"},
		{"database url neither form", "DATABASE_URL", "postgres://a b:c@", "DATABASE_URL"},
		{"database keyword without a value", "DATABASE_URL", "host=db password", "DATABASE_URL"},
		{"database keyword value unterminated", "DATABASE_URL", "host=db password='x y", "DATABASE_URL"},
		// net/http reads a zero or negative timeout as none: the slow-client protection would be
		// silently off, and a zero shutdown timeout cuts every in-flight request.
		{"no read header timeout", "PORTCULLIS_HTTP_READ_HEADER_TIMEOUT", "0s", "PORTCULLIS_HTTP_READ_HEADER_TIMEOUT must be positive"},
		{"negative read timeout", "PORTCULLIS_HTTP_READ_TIMEOUT", "-1s", "PORTCULLIS_HTTP_READ_TIMEOUT must be positive"},
		{"no write timeout", "PORTCULLIS_HTTP_WRITE_TIMEOUT", "0s", "PORTCULLIS_HTTP_WRITE_TIMEOUT must be positive"},
		{"negative idle timeout", "PORTCULLIS_HTTP_IDLE_TIMEOUT", "-5m", "PORTCULLIS_HTTP_IDLE_TIMEOUT must be positive"},
		{"no shutdown timeout", "PORTCULLIS_HTTP_SHUTDOWN_TIMEOUT", "0s", "PORTCULLIS_HTTP_SHUTDOWN_TIMEOUT must be positive"},
		{"no request timeout", "PORTCULLIS_HTTP_REQUEST_TIMEOUT", "0s", "PORTCULLIS_HTTP_REQUEST_TIMEOUT must be positive"},
		// Its 503 could not be written any more.
		{"request timeout past the write timeout", "PORTCULLIS_HTTP_REQUEST_TIMEOUT", "30s", "PORTCULLIS_HTTP_REQUEST_TIMEOUT must be shorter"},
		// A shutdown that gives up before a request's own time is up cuts requests in flight off
		// and closes the pool under them.
		{"shutdown timeout within the request timeout", "PORTCULLIS_HTTP_SHUTDOWN_TIMEOUT", "10s", "PORTCULLIS_HTTP_SHUTDOWN_TIMEOUT must be longer than PORTCULLIS_HTTP_REQUEST_TIMEOUT"},
		// A negative max-age sent no HSTS without a word; under a second sent "max-age=0", which
		// tells browsers to forget the policy.
		{"negative hsts max-age", "PORTCULLIS_HSTS_MAX_AGE", "-1h", "PORTCULLIS_HSTS_MAX_AGE"},
		{"sub-second hsts max-age", "PORTCULLIS_HSTS_MAX_AGE", "500ms", "PORTCULLIS_HSTS_MAX_AGE"},
		{"negative drain", "PORTCULLIS_SHUTDOWN_DRAIN", "-5s", "PORTCULLIS_SHUTDOWN_DRAIN must not be negative"},
		// A number too large for its field wrapped around to a small one.
		{"argon2 memory overflow", "PORTCULLIS_ARGON2_MEMORY_KIB", "4294967304", "PORTCULLIS_ARGON2_MEMORY_KIB"},
		{"argon2 parallelism overflow", "PORTCULLIS_ARGON2_PARALLELISM", "257", "PORTCULLIS_ARGON2_PARALLELISM"},
		{"db conns overflow", "PORTCULLIS_DB_MAX_CONNS", "4294967298", "PORTCULLIS_DB_MAX_CONNS"},
		// Past the bounds Verify accepts, NewHasher panicked in serve, after the migrations ran.
		{"argon2 iterations beyond verify's bound", "PORTCULLIS_ARGON2_ITERATIONS", "101", "PORTCULLIS_ARGON2_ITERATIONS"},
		{"argon2 parallelism beyond verify's bound", "PORTCULLIS_ARGON2_PARALLELISM", "65", "PORTCULLIS_ARGON2_PARALLELISM"},
		{"argon2 memory beyond verify's bound", "PORTCULLIS_ARGON2_MEMORY_KIB", "4194305", "PORTCULLIS_ARGON2_MEMORY_KIB"},
		{"argon2 memory under 8 KiB", "PORTCULLIS_ARGON2_MEMORY_KIB", "7", "PORTCULLIS_ARGON2_MEMORY_KIB"},
		{"no argon2 iterations", "PORTCULLIS_ARGON2_ITERATIONS", "0", "PORTCULLIS_ARGON2_ITERATIONS"},
		// The hashing gate admits concurrency + queue: a sum past the largest int wrapped to a
		// negative bound, and every login and registration got 503 for good.
		{"hash queue overflow", "PORTCULLIS_HASH_QUEUE", "9223372036854775807", "PORTCULLIS_HASH_QUEUE"},
		{"hash concurrency overflow", "PORTCULLIS_HASH_CONCURRENCY", "9223372036854775807", "PORTCULLIS_HASH_CONCURRENCY"},
		{"retention too short", "PORTCULLIS_SESSION_RETENTION", "10m", "PORTCULLIS_SESSION_RETENTION must be 0"},
		{"negative retention", "PORTCULLIS_SESSION_RETENTION", "-1h", "PORTCULLIS_SESSION_RETENTION must be 0"},
		{"audit retention too short", "PORTCULLIS_AUDIT_RETENTION", "12h", "PORTCULLIS_AUDIT_RETENTION must be 0"},
		{"negative audit retention", "PORTCULLIS_AUDIT_RETENTION", "-24h", "PORTCULLIS_AUDIT_RETENTION must be 0"},
		{"ipv6 prefix too wide", "PORTCULLIS_RATE_LIMIT_IPV6_PREFIX", "16", "PORTCULLIS_RATE_LIMIT_IPV6_PREFIX must be between 32 and 128"},
		// Verifiers cache the JWKS for 5 minutes and instances re-read keys every minute: a new
		// key published for less than that may sign before a verifier (or an instance) has it.
		{"prepublish shorter than the jwks cache", "PORTCULLIS_JWKS_PREPUBLISH", "5m", "PORTCULLIS_JWKS_PREPUBLISH must be at least 6m"},
		{"ipv6 prefix too long", "PORTCULLIS_RATE_LIMIT_IPV6_PREFIX", "129", "PORTCULLIS_RATE_LIMIT_IPV6_PREFIX must be between 32 and 128"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(env(map[string]string{tt.key: tt.value}))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load() error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// argon2id needs 8 KiB of memory a lane: fewer made NewHasher panic in serve, after the
// migrations ran, rather than an error naming the variables.
func TestLoadRejectsArgon2MemoryBelowItsLanes(t *testing.T) {
	_, err := Load(env(map[string]string{"PORTCULLIS_ARGON2_MEMORY_KIB": "8", "PORTCULLIS_ARGON2_PARALLELISM": "2"}))
	if err == nil || !strings.Contains(err.Error(), "PORTCULLIS_ARGON2_MEMORY_KIB") || !strings.Contains(err.Error(), "PORTCULLIS_ARGON2_PARALLELISM") {
		t.Fatalf("Load() error = %v, want it to name PORTCULLIS_ARGON2_MEMORY_KIB and PORTCULLIS_ARGON2_PARALLELISM", err)
	}
}

// Every form of connection string pgx and rueidis take hides its password from the log: in the
// userinfo, as a query parameter, or as a keyword of the key=value form.
func TestRedactedHidesPasswords(t *testing.T) {
	for _, db := range []string{
		"postgres://u:hunter2@db/x",
		"postgres://db:5432/x?user=u&password=hunter2&sslmode=disable",
		"postgresql://db/x?PASSWORD=hunter2",
		"host=db user=u password=hunter2 dbname=x",
		"host=db password = 'hunter2 with spaces' dbname=x",
		`host=db password=hunter2\ escaped dbname=x`,
		"host=db sslpassword=hunter2 sslkey=/k",
		"postgres://db/x?sslpassword=hunter2",
		"postgres://u:123#hunter2@db/x",
	} {
		c, err := Load(env(map[string]string{"DATABASE_URL": db, "REDIS_URL": "redis://:s3cret@r:6379/0?password=s3cret"}))
		if err != nil {
			t.Fatalf("%s: %v", db, err)
		}
		for k, v := range c.Redacted() {
			if s, ok := v.(string); ok && (strings.Contains(s, "hunter2") || strings.Contains(s, "escaped") || strings.Contains(s, "s3cret")) {
				t.Fatalf("%s leaks a password: %s", k, s)
			}
		}
	}
}

// A server gets one processor more than Go's default only when nothing chose otherwise: no
// GOMAXPROCS in the environment, and no CPU limit (a container's quota) below the machine's CPUs.
// The hashing gate's defaults stay at the CPUs.
func TestProcessors(t *testing.T) {
	for _, c := range []struct {
		envSet          bool
		goDefault, cpus int
		want            int
	}{
		{false, 2, 2, 3},
		{false, 1, 1, 2},
		{false, 64, 64, 65},
		{true, 2, 2, 0},   // GOMAXPROCS chosen by the operator
		{false, 2, 16, 0}, // a CPU limit of 2 on 16 CPUs: an extra thread would be throttled
	} {
		if got := processors(c.envSet, c.goDefault, c.cpus); got != c.want {
			t.Errorf("processors(env set %v, Go's default %d, %d CPUs) = %d, want %d", c.envSet, c.goDefault, c.cpus, got, c.want)
		}
	}
	set, err := Load(func(k string) string {
		if k == "GOMAXPROCS" {
			return "5"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if set.Processors != 0 {
		t.Fatalf("with GOMAXPROCS=5 in the environment, Processors = %d, want 0 (Go's)", set.Processors)
	}
	unset, err := Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if want := processors(false, runtime.GOMAXPROCS(0), runtime.NumCPU()); unset.Processors != want {
		t.Fatalf("Processors = %d, want %d", unset.Processors, want)
	}
	if unset.Password.Concurrency != runtime.GOMAXPROCS(0) || unset.Password.Queue != 2*runtime.GOMAXPROCS(0) {
		t.Fatalf("hashing %d at once and %d waiting, want Go's default %d and twice it", unset.Password.Concurrency, unset.Password.Queue, runtime.GOMAXPROCS(0))
	}
}

// DATABASE_URL may be a URL or a key=value connection string, as pgx takes both: one with a
// colon before its first '/' (an IPv6 host, a password holding ':') failed url.Parse and the
// service refused to start, "DATABASE_URL is not a URL" (found in review).
func TestKeywordConnectionStringsAreAccepted(t *testing.T) {
	for _, dsn := range []string{
		"host=::1 port=5432 user=postgres dbname=portcullis sslmode=disable",
		"host=127.0.0.1 user=postgres password=a:b dbname=portcullis sslmode=disable",
		"postgres://postgres@[::1]:5432/portcullis?sslmode=disable",
	} {
		if _, err := Load(env(map[string]string{"DATABASE_URL": dsn})); err != nil {
			t.Errorf("Load(DATABASE_URL=%q) = %v", dsn, err)
		}
	}
}

// pgx, like libpq, reads a URL's userinfo up to the first '@' before any '/', where Go's parser
// stops at a '?' too: "postgres://u:?hunter2@db/x" connects with the password "?hunter2", which
// Go read as a host u and a query, and the start log printed it whole. A password parameter
// whose value is not validly %-encoded was dropped by url.Values, and so left unmasked too.
func TestRedactedHidesPasswordsWhereverTheDriversFindThem(t *testing.T) {
	for _, tt := range []struct {
		db, redis string
		pgxReads  bool // pgx connects with hunter2 in the password
	}{
		{db: "postgres://u:?hunter2@db/x", pgxReads: true},
		{db: "postgres://u:5432?hunter2@db:5432/x", pgxReads: true},
		{db: "postgresql://u:?hunter2#@db/x", pgxReads: true},
		{db: "postgres://db/x?sslmode=disable&password=hunter2%"},
		{db: "postgres://db/x?PassWord=50%off-hunter2"},
		{redis: "redis://:6379?hunter2@r/0"},
		{redis: "redis://r:6379/0?password=hunter2%zz"},
	} {
		vars := map[string]string{"DATABASE_URL": tt.db, "REDIS_URL": tt.redis}
		c, err := Load(env(vars))
		if err != nil {
			t.Fatalf("%v: %v", vars, err)
		}
		if tt.pgxReads {
			if pc, err := pgconn.ParseConfig(tt.db); err != nil || !strings.Contains(pc.Password, "hunter2") {
				t.Fatalf("pgx does not read hunter2 as the password of %s: %v", tt.db, err)
			}
		}
		for k, v := range c.Redacted() {
			if s, ok := v.(string); ok && strings.Contains(s, "hunter2") {
				t.Errorf("%s leaks a password: %s", k, s)
			}
		}
	}
}
