// Package config reads the service's configuration from environment variables, applies defaults
// in one place and validates the result.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/password"
)

// How a new signing key reaches verifiers: the JWKS is served with a max-age of JWKSMaxAge and
// every instance re-reads the keys each KeyReload, so a key is published at least their sum,
// MinJWKSPrepublish, before it signs.
const (
	JWKSMaxAge        = 5 * time.Minute
	KeyReload         = time.Minute
	MinJWKSPrepublish = JWKSMaxAge + KeyReload
)

// Config is the whole service configuration. Constructors take only their own part.
type Config struct {
	HTTP     HTTP
	Postgres Postgres
	Redis    Redis
	Auth     Auth
	Password Password
	Limits   Limits
	LogLevel string
	// MetricsAddr is the separate listener of /metrics; empty turns it off.
	MetricsAddr string
	// DebugAddr is the separate listener of /debug/pprof/; empty (the default) turns it off.
	DebugAddr string
	// AuditRetention is how long audit events are kept; 0 (the default) keeps them forever.
	AuditRetention time.Duration
	// ShutdownDrain is how long readiness reports "draining" before the server stops accepting.
	ShutdownDrain time.Duration
	// Processors is the GOMAXPROCS serve sets, or 0 to leave Go's (see processors).
	Processors int
}

// Limits are the rate limits, each "count/period" such as "300/1m" (see internal/ratelimit).
type Limits struct {
	IP                   string // every request, per client IP
	LoginIP              string // login attempts per client IP
	LoginAccountFailures string // failed logins per account before it is locked for a while
	RegisterIP           string // registrations per client IP
	RefreshIP            string // refreshes per client IP
	PasswordIP           string // password changes per client IP
	PasswordAccount      string // password changes per account
	// IPv6Prefix is how many leading bits of an IPv6 client address its per-IP limits key on.
	IPv6Prefix int
}

// HTTP configures the public listener.
type HTTP struct {
	Addr              string
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	// RequestTimeout bounds a request's work: past it, what it waits for (PostgreSQL, Redis, a
	// hashing slot) gives up, and it answers 503 where it can.
	RequestTimeout  time.Duration
	ShutdownTimeout time.Duration
	MaxBodyBytes    int64
	// TrustedProxies are the CIDRs whose X-Forwarded-For is believed. Empty: the peer address is the client.
	TrustedProxies []string
	// CORSOrigins are the exact origins allowed to call the API from a browser.
	CORSOrigins          []string
	CORSAllowCredentials bool
	// TLSCertFile and TLSKeyFile, when both set, make the binary terminate TLS itself.
	TLSCertFile string
	TLSKeyFile  string
	// HSTSMaxAge is sent as Strict-Transport-Security when serving TLS (or when ForceHSTS is set
	// behind a TLS-terminating proxy); 0 sends none.
	HSTSMaxAge time.Duration
	ForceHSTS  bool
}

// Postgres configures the database.
type Postgres struct {
	URL         string
	AutoMigrate bool
	// CreateDatabase creates the database named in URL when it is missing (used by make run).
	CreateDatabase bool
	MaxConns       int32
	// AllowASCIICaseFolding accepts a database whose lower() folds ASCII letters only
	// (LC_CTYPE C), which is otherwise refused (postgres.RequireCaseFolding).
	AllowASCIICaseFolding bool
}

// Redis configures the cache.
type Redis struct {
	URL       string
	KeyPrefix string
	// Timeout bounds every Redis call; past it the service answers from PostgreSQL.
	Timeout time.Duration
	// SessionCacheTTL bounds how long a session's state is cached in Redis.
	SessionCacheTTL time.Duration
}

// Auth configures tokens and sessions.
type Auth struct {
	Issuer             string
	Audience           string
	AccessTokenTTL     time.Duration
	RefreshTokenTTL    time.Duration
	SessionMaxLifetime time.Duration
	RefreshReuseGrace  time.Duration
	// SessionRetention is how long an ended (expired or revoked) session and its spent refresh
	// tokens are kept before they are deleted; 0 keeps them forever.
	SessionRetention    time.Duration
	ClockSkew           time.Duration
	SigningKeyRotation  time.Duration
	KeyEncryptionKey    []byte // 32 bytes, or nil to store signing keys unsealed
	JWKSPrepublish      time.Duration
	SigningKeyAlgorithm string
	// VerifiedTokenCache bounds how many verified access tokens each instance remembers, so a
	// token's signature is checked once rather than on every request; 0 turns the cache off.
	VerifiedTokenCache int
}

// Password configures argon2id.
type Password struct {
	MemoryKiB   uint32
	Iterations  uint32
	Parallelism uint8
	// Concurrency hashes run at once and Queue more wait; beyond that logins get 503 at once.
	Concurrency int
	Queue       int
}

// Load reads the configuration through getenv (os.Getenv in production, a map in tests).
func Load(getenv func(string) string) (Config, error) {
	return load(reader{getenv: getenv})
}

// processors is the GOMAXPROCS a server runs with: one more than Go's default (the CPUs, or
// fewer under a CPU limit) when the environment sets no GOMAXPROCS and no CPU limit narrows the
// default below the machine's CPUs; otherwise 0, leaving Go's. A goroutine waits while the OS
// runs another process on the CPU of the thread holding its processor; with one processor more
// than the CPUs, the others run it. On 2 CPUs shared with the load generator, PostgreSQL and
// Redis that cut /users/me's p99 by ~40% (README, Performance), and the hashing gate's 503s,
// answered while argon2id fills the CPUs, 3-4 times. The gate stays at the CPUs
// (Password.Concurrency). Under a CPU limit (a container's quota) an extra thread would only
// spend the quota sooner and be throttled, so none is added.
func processors(envSet bool, goDefault, cpus int) int {
	if envSet || goDefault < cpus {
		return 0
	}
	return goDefault + 1
}

func load(r reader) (Config, error) {
	c := Config{
		HTTP: HTTP{
			Addr:                 r.str("PORTCULLIS_HTTP_ADDR", ":8080"),
			ReadHeaderTimeout:    r.dur("PORTCULLIS_HTTP_READ_HEADER_TIMEOUT", 5*time.Second),
			ReadTimeout:          r.dur("PORTCULLIS_HTTP_READ_TIMEOUT", 15*time.Second),
			WriteTimeout:         r.dur("PORTCULLIS_HTTP_WRITE_TIMEOUT", 30*time.Second),
			IdleTimeout:          r.dur("PORTCULLIS_HTTP_IDLE_TIMEOUT", 120*time.Second),
			RequestTimeout:       r.dur("PORTCULLIS_HTTP_REQUEST_TIMEOUT", 10*time.Second),
			ShutdownTimeout:      r.dur("PORTCULLIS_HTTP_SHUTDOWN_TIMEOUT", 20*time.Second),
			MaxBodyBytes:         int64(r.int("PORTCULLIS_HTTP_MAX_BODY_BYTES", 64<<10)),
			TrustedProxies:       r.list("PORTCULLIS_TRUSTED_PROXIES"),
			CORSOrigins:          r.list("PORTCULLIS_CORS_ORIGINS"),
			CORSAllowCredentials: r.bool("PORTCULLIS_CORS_ALLOW_CREDENTIALS", false),
			TLSCertFile:          r.str("PORTCULLIS_TLS_CERT_FILE", ""),
			TLSKeyFile:           r.str("PORTCULLIS_TLS_KEY_FILE", ""),
			HSTSMaxAge:           r.dur("PORTCULLIS_HSTS_MAX_AGE", 365*24*time.Hour),
			ForceHSTS:            r.bool("PORTCULLIS_FORCE_HSTS", false),
		},
		Postgres: Postgres{
			URL:            r.str("DATABASE_URL", "postgres://127.0.0.1:5432/portcullis?sslmode=disable"),
			AutoMigrate:    r.bool("PORTCULLIS_AUTO_MIGRATE", true),
			CreateDatabase: r.bool("PORTCULLIS_CREATE_DATABASE", false),
			MaxConns:       int32(r.intUpTo("PORTCULLIS_DB_MAX_CONNS", 16, math.MaxInt32)),

			AllowASCIICaseFolding: r.bool("PORTCULLIS_ALLOW_ASCII_CASE_FOLDING", false),
		},
		Redis: Redis{
			URL:             r.str("REDIS_URL", "redis://127.0.0.1:6379/0"),
			KeyPrefix:       r.str("PORTCULLIS_REDIS_PREFIX", "portcullis:"),
			Timeout:         r.dur("PORTCULLIS_REDIS_TIMEOUT", 150*time.Millisecond),
			SessionCacheTTL: r.dur("PORTCULLIS_SESSION_CACHE_TTL", 30*time.Second),
		},
		Auth: Auth{
			Issuer:              r.str("PORTCULLIS_ISSUER", "http://localhost:8080"),
			Audience:            r.str("PORTCULLIS_AUDIENCE", "portcullis"),
			AccessTokenTTL:      r.dur("PORTCULLIS_ACCESS_TOKEN_TTL", 15*time.Minute),
			RefreshTokenTTL:     r.dur("PORTCULLIS_REFRESH_TOKEN_TTL", 30*24*time.Hour),
			SessionMaxLifetime:  r.dur("PORTCULLIS_SESSION_MAX_LIFETIME", 90*24*time.Hour),
			RefreshReuseGrace:   r.dur("PORTCULLIS_REFRESH_REUSE_GRACE", 10*time.Second),
			SessionRetention:    r.dur("PORTCULLIS_SESSION_RETENTION", 7*24*time.Hour),
			ClockSkew:           r.dur("PORTCULLIS_CLOCK_SKEW", 30*time.Second),
			SigningKeyRotation:  r.dur("PORTCULLIS_SIGNING_KEY_ROTATION", 30*24*time.Hour),
			JWKSPrepublish:      r.dur("PORTCULLIS_JWKS_PREPUBLISH", 10*time.Minute),
			KeyEncryptionKey:    r.base64("PORTCULLIS_KEY_ENCRYPTION_KEY"),
			SigningKeyAlgorithm: "EdDSA",
			VerifiedTokenCache:  r.int("PORTCULLIS_TOKEN_CACHE_SIZE", 65536),
		},
		Password: Password{
			MemoryKiB:   uint32(r.intUpTo("PORTCULLIS_ARGON2_MEMORY_KIB", 19456, math.MaxUint32)),
			Iterations:  uint32(r.intUpTo("PORTCULLIS_ARGON2_ITERATIONS", 2, math.MaxUint32)),
			Parallelism: uint8(r.intUpTo("PORTCULLIS_ARGON2_PARALLELISM", 1, math.MaxUint8)),
			// Bounded so that the gate's concurrency + queue cannot wrap around (to a negative
			// bound that refused every hash); each running hash holds its argon2 memory.
			Concurrency: r.intUpTo("PORTCULLIS_HASH_CONCURRENCY", runtime.GOMAXPROCS(0), 1024),
			Queue:       r.intUpTo("PORTCULLIS_HASH_QUEUE", 2*runtime.GOMAXPROCS(0), 1_000_000),
		},
		Limits: Limits{
			IP:                   r.str("PORTCULLIS_RATE_LIMIT_IP", "300/1m"),
			LoginIP:              r.str("PORTCULLIS_RATE_LIMIT_LOGIN_IP", "60/1m"),
			LoginAccountFailures: r.str("PORTCULLIS_RATE_LIMIT_LOGIN_ACCOUNT_FAILURES", "10/15m"),
			RegisterIP:           r.str("PORTCULLIS_RATE_LIMIT_REGISTER_IP", "20/1h"),
			RefreshIP:            r.str("PORTCULLIS_RATE_LIMIT_REFRESH_IP", "120/1m"),
			PasswordIP:           r.str("PORTCULLIS_RATE_LIMIT_PASSWORD_IP", "20/1m"),
			PasswordAccount:      r.str("PORTCULLIS_RATE_LIMIT_PASSWORD_ACCOUNT", "5/15m"),
			IPv6Prefix:           r.int("PORTCULLIS_RATE_LIMIT_IPV6_PREFIX", 64),
		},
		LogLevel:       r.str("PORTCULLIS_LOG_LEVEL", "info"),
		MetricsAddr:    r.str("PORTCULLIS_METRICS_ADDR", "127.0.0.1:9090"),
		DebugAddr:      r.str("PORTCULLIS_DEBUG_ADDR", ""),
		AuditRetention: r.dur("PORTCULLIS_AUDIT_RETENTION", 0),
		ShutdownDrain:  r.dur("PORTCULLIS_SHUTDOWN_DRAIN", 5*time.Second),
		Processors:     processors(r.getenv("GOMAXPROCS") != "", runtime.GOMAXPROCS(0), runtime.NumCPU()),
	}
	if err := errors.Join(r.errs...); err != nil {
		return Config{}, err
	}
	if c.MetricsAddr == "off" { // main passes "off" for a variable set to the empty string
		c.MetricsAddr = ""
	}
	return c, c.validate()
}

// maxLifetime bounds the lifetimes and retentions: ten years is longer than anyone means, and a
// duration near Go's largest overflowed when added to or taken from a time (a purge cutoff far
// in the future deleted every spent refresh token at once).
const maxLifetime = 10 * 365 * 24 * time.Hour

func (c Config) validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.Auth.AccessTokenTTL >= time.Minute && c.Auth.AccessTokenTTL <= 24*time.Hour, "PORTCULLIS_ACCESS_TOKEN_TTL must be between 1m and 24h")
	check(c.Auth.VerifiedTokenCache >= 0, "PORTCULLIS_TOKEN_CACHE_SIZE must not be negative")
	check(c.Auth.RefreshTokenTTL > c.Auth.AccessTokenTTL, "PORTCULLIS_REFRESH_TOKEN_TTL must exceed the access token TTL")
	check(c.Auth.RefreshTokenTTL <= maxLifetime, "PORTCULLIS_REFRESH_TOKEN_TTL must be at most %s", maxLifetime)
	check(c.Auth.SessionMaxLifetime >= c.Auth.RefreshTokenTTL, "PORTCULLIS_SESSION_MAX_LIFETIME must be at least the refresh token TTL")
	check(c.Auth.SessionMaxLifetime <= maxLifetime, "PORTCULLIS_SESSION_MAX_LIFETIME must be at most %s", maxLifetime)
	check(c.Auth.RefreshReuseGrace >= 0 && c.Auth.RefreshReuseGrace <= time.Minute, "PORTCULLIS_REFRESH_REUSE_GRACE must be between 0 and 1m")
	check(c.Auth.SessionRetention == 0 || c.Auth.SessionRetention >= time.Hour && c.Auth.SessionRetention <= maxLifetime,
		"PORTCULLIS_SESSION_RETENTION must be 0 (keep forever) or between 1h and %s", maxLifetime)
	check(c.AuditRetention == 0 || c.AuditRetention >= 24*time.Hour && c.AuditRetention <= maxLifetime,
		"PORTCULLIS_AUDIT_RETENTION must be 0 (keep forever) or between 24h and %s", maxLifetime)
	check(c.Auth.ClockSkew >= 0 && c.Auth.ClockSkew <= 5*time.Minute, "PORTCULLIS_CLOCK_SKEW must be between 0 and 5m")
	check(c.Auth.SigningKeyRotation >= time.Hour, "PORTCULLIS_SIGNING_KEY_ROTATION must be at least 1h")
	// A new key must be in every verifier's JWKS before it signs: the JWKS is served with
	// max-age 300 s and each instance re-reads the keys every minute, so a shorter lead would let
	// tokens signed by the new key fail where the old JWKS is cached, and an instance that has
	// not yet seen it keep signing with a key pruned before those tokens expire.
	check(c.Auth.JWKSPrepublish >= MinJWKSPrepublish, "PORTCULLIS_JWKS_PREPUBLISH must be at least 6m (the JWKS is cached for 5m, and instances re-read keys every minute)")
	check(c.Auth.JWKSPrepublish < c.Auth.SigningKeyRotation, "PORTCULLIS_JWKS_PREPUBLISH must be shorter than the rotation period")
	check(c.Auth.KeyEncryptionKey == nil || len(c.Auth.KeyEncryptionKey) == 32, "PORTCULLIS_KEY_ENCRYPTION_KEY must be 32 bytes, base64 encoded")
	check(c.Auth.Issuer != "" && c.Auth.Audience != "", "PORTCULLIS_ISSUER and PORTCULLIS_AUDIENCE must be set")
	// The bounds Verify accepts: past them NewHasher would panic, and its hashes never verify.
	check(c.Password.MemoryKiB >= 8 && c.Password.MemoryKiB <= password.MaxMemoryKiB, "PORTCULLIS_ARGON2_MEMORY_KIB must be between 8 and %d", password.MaxMemoryKiB)
	check(c.Password.Iterations >= 1 && c.Password.Iterations <= password.MaxIterations, "PORTCULLIS_ARGON2_ITERATIONS must be between 1 and %d", password.MaxIterations)
	check(c.Password.Parallelism >= 1 && c.Password.Parallelism <= password.MaxParallelism, "PORTCULLIS_ARGON2_PARALLELISM must be between 1 and %d", password.MaxParallelism)
	check(c.Password.MemoryKiB >= 8*uint32(c.Password.Parallelism), "PORTCULLIS_ARGON2_MEMORY_KIB must be at least 8 × PORTCULLIS_ARGON2_PARALLELISM (8 KiB a lane)")
	check(c.HTTP.MaxBodyBytes >= 1024, "PORTCULLIS_HTTP_MAX_BODY_BYTES must be at least 1024")
	check(c.Postgres.MaxConns >= 2, "PORTCULLIS_DB_MAX_CONNS must be at least 2")
	check(c.Redis.Timeout > 0, "PORTCULLIS_REDIS_TIMEOUT must be positive")
	// net/http reads a zero or negative timeout as none, which would silently turn off the
	// protection against slow clients; a zero shutdown timeout would cut in-flight requests.
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"PORTCULLIS_HTTP_READ_HEADER_TIMEOUT", c.HTTP.ReadHeaderTimeout}, {"PORTCULLIS_HTTP_READ_TIMEOUT", c.HTTP.ReadTimeout},
		{"PORTCULLIS_HTTP_WRITE_TIMEOUT", c.HTTP.WriteTimeout}, {"PORTCULLIS_HTTP_IDLE_TIMEOUT", c.HTTP.IdleTimeout},
		{"PORTCULLIS_HTTP_SHUTDOWN_TIMEOUT", c.HTTP.ShutdownTimeout}, {"PORTCULLIS_HTTP_REQUEST_TIMEOUT", c.HTTP.RequestTimeout},
	} {
		check(d.v > 0, "%s must be positive", d.name)
	}
	// The 503 of a request that ran out of time must still be written.
	check(c.HTTP.RequestTimeout < c.HTTP.WriteTimeout, "PORTCULLIS_HTTP_REQUEST_TIMEOUT must be shorter than PORTCULLIS_HTTP_WRITE_TIMEOUT")
	// A shutdown that gave up first would cut requests in flight off, and close the pool under them.
	check(c.HTTP.ShutdownTimeout > c.HTTP.RequestTimeout, "PORTCULLIS_HTTP_SHUTDOWN_TIMEOUT must be longer than PORTCULLIS_HTTP_REQUEST_TIMEOUT, so requests in flight at a shutdown can finish")
	check(c.HTTP.HSTSMaxAge == 0 || c.HTTP.HSTSMaxAge >= time.Second, "PORTCULLIS_HSTS_MAX_AGE must be 0 (none) or at least 1s")
	check(c.ShutdownDrain >= 0, "PORTCULLIS_SHUTDOWN_DRAIN must not be negative")
	check(c.Redis.SessionCacheTTL >= time.Second, "PORTCULLIS_SESSION_CACHE_TTL must be at least 1s")
	check((c.HTTP.TLSCertFile == "") == (c.HTTP.TLSKeyFile == ""), "PORTCULLIS_TLS_CERT_FILE and PORTCULLIS_TLS_KEY_FILE must be set together")
	// The logger would fall back to info without a word: "warning" or "trace" must not pass.
	// Not slog's parser: it takes an offset too, and "error+8" would silence every record.
	check(slices.Contains([]string{"debug", "info", "warn", "error"}, strings.ToLower(c.LogLevel)), "PORTCULLIS_LOG_LEVEL: %q is not debug, info, warn or error", c.LogLevel)
	check(c.Password.Concurrency >= 1, "PORTCULLIS_HASH_CONCURRENCY must be at least 1")
	check(c.Limits.IPv6Prefix >= 32 && c.Limits.IPv6Prefix <= 128, "PORTCULLIS_RATE_LIMIT_IPV6_PREFIX must be between 32 and 128")
	for _, cidr := range c.HTTP.TrustedProxies {
		_, _, err := net.ParseCIDR(cidr)
		check(err == nil, "PORTCULLIS_TRUSTED_PROXIES: %q is not a CIDR such as 10.0.0.0/8", cidr)
	}
	for _, o := range c.HTTP.CORSOrigins {
		u, err := url.Parse(o)
		// url.Parse takes '*' in a host, and Echo's CORS would read it as a wildcard.
		check(err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && !strings.Contains(u.Host, "*") && u.Path == "" && u.RawQuery == "" && o == u.Scheme+"://"+u.Host,
			"PORTCULLIS_CORS_ORIGINS: %q is not an exact origin such as https://app.example.com (no wildcards, no null)", o)
		// Origins are matched exactly, and browsers send them lower-case without a default port:
		// any other spelling would never match, silently.
		check(err != nil || o == strings.ToLower(o) && u.Port() != map[string]string{"https": "443", "http": "80"}[u.Scheme],
			"PORTCULLIS_CORS_ORIGINS: %q is not written as browsers send it (lower case, no default port)", o)
	}
	for _, a := range []struct{ name, addr string }{
		{"PORTCULLIS_HTTP_ADDR", c.HTTP.Addr}, {"PORTCULLIS_METRICS_ADDR", c.MetricsAddr}, {"PORTCULLIS_DEBUG_ADDR", c.DebugAddr},
	} {
		_, _, err := net.SplitHostPort(a.addr)
		check(a.addr == "" && a.name != "PORTCULLIS_HTTP_ADDR" || err == nil,
			"%s: %q is not host:port, such as :8080 or 127.0.0.1:9090", a.name, a.addr)
	}
	check(connString(c.Postgres.URL), "DATABASE_URL is not a PostgreSQL URL or key=value connection string")
	_, err := url.Parse(c.Redis.URL)
	check(err == nil, "REDIS_URL is not a URL")
	return errors.Join(errs...)
}

// keywordPair is one key=value of a libpq connection string: the value bare or single-quoted,
// with backslash escapes in either.
var keywordPair = regexp.MustCompile(`^\s*[A-Za-z_]+\s*=\s*(?:'(?:[^'\\]|\\.)*'|(?:[^\s'\\]|\\.)+)`)

// connString reports whether s has the form of a PostgreSQL connection string, as pgx reads it:
// a postgres:// or postgresql:// URL, or key=value pairs (which url.Parse refuses when a colon
// comes before any '/': an IPv6 host, a password holding ':'). What the values mean is pgx's to
// check when it connects.
func connString(s string) bool {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		_, err := url.Parse(s)
		return err == nil
	}
	if strings.TrimSpace(s) == "" {
		return false
	}
	for rest := s; strings.TrimSpace(rest) != ""; {
		m := keywordPair.FindString(rest)
		if m == "" {
			return false
		}
		rest = rest[len(m):]
	}
	return true
}

// Redacted returns the settings safe to log: URLs lose their passwords and secrets are masked.
func (c Config) Redacted() map[string]any {
	return map[string]any{
		"http_addr":          c.HTTP.Addr,
		"database_url":       redactURL(c.Postgres.URL),
		"redis_url":          redactURL(c.Redis.URL),
		"redis_prefix":       c.Redis.KeyPrefix,
		"issuer":             c.Auth.Issuer,
		"audience":           c.Auth.Audience,
		"access_token_ttl":   c.Auth.AccessTokenTTL.String(),
		"refresh_token_ttl":  c.Auth.RefreshTokenTTL.String(),
		"key_encryption_key": c.Auth.KeyEncryptionKey != nil,
		"auto_migrate":       c.Postgres.AutoMigrate,
	}
}

// keywordPassword is a password of a key=value connection string (password=…, sslpassword=…),
// quoted, or unquoted with backslash escapes.
var keywordPassword = regexp.MustCompile(`(?i)(\b(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|(?:\\.|\S)+)`)

// redactURL masks the passwords of a connection string in each form the drivers take: the URL's
// userinfo, a password or sslpassword query parameter, and those keywords of the key=value
// form. A URL whose userinfo holds a '#' parses as a fragment; it is shown only up to the host.
func redactURL(raw string) string {
	raw = maskUserinfo(raw)
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "(unparseable)"
	case u.Scheme == "":
		return keywordPassword.ReplaceAllString(raw, "${1}xxxxx")
	case u.Fragment != "" || u.RawFragment != "":
		return u.Scheme + "://(redacted)"
	}
	u.RawQuery = maskQueryPasswords(u.RawQuery)
	return u.Redacted()
}

// maskUserinfo masks the password of a URL's userinfo as pgx (like libpq) finds it: everything
// after the first ':' up to the first '@' that comes before any '/'. Go's parser ends the
// authority at a '?' or '#' too, so it read "postgres://u:?pw@db/x" (or "u:5?pw") as the host u
// and a query, and left the password pgx connects with whole.
func maskUserinfo(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || scheme == "" || strings.ContainsAny(scheme, " =/") {
		return raw
	}
	if i := strings.IndexAny(rest, "@/"); i >= 0 && rest[i] == '@' {
		if user, _, hasPassword := strings.Cut(rest[:i], ":"); hasPassword {
			return scheme + "://" + user + ":xxxxx" + rest[i:]
		}
	}
	return raw
}

// maskQueryPasswords masks the password and sslpassword parameters of a raw query, pair by pair:
// url.Values drops a pair whose value is not validly %-encoded ("password=50%off"), so such a
// password was neither found nor masked.
func maskQueryPasswords(rawQuery string) string {
	if rawQuery == "" {
		return rawQuery
	}
	pairs := strings.Split(rawQuery, "&")
	for i, pair := range pairs {
		key, _, _ := strings.Cut(pair, "=")
		if k, err := url.QueryUnescape(key); err == nil {
			key = k
		}
		if strings.EqualFold(key, "password") || strings.EqualFold(key, "sslpassword") {
			pairs[i] = key + "=xxxxx"
		}
	}
	return strings.Join(pairs, "&")
}

type reader struct {
	getenv func(string) string
	errs   []error
}

func (r *reader) str(key, def string) string {
	if v := strings.TrimSpace(r.getenv(key)); v != "" {
		return v
	}
	return def
}

func (r *reader) dur(key string, def time.Duration) time.Duration {
	v := strings.TrimSpace(r.getenv(key))
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s: %q is not a duration such as 15m", key, v))
	}
	return d
}

func (r *reader) int(key string, def int) int {
	v := strings.TrimSpace(r.getenv(key))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		r.errs = append(r.errs, fmt.Errorf("%s: %q is not a non-negative integer", key, v))
	}
	return n
}

// intUpTo is int for a field narrower than int: a value above max is refused rather than
// wrapped around to a small one (4294967304 KiB of argon2 memory would be 8).
func (r *reader) intUpTo(key string, def, max int) int {
	n := r.int(key, def)
	if n > max {
		r.errs = append(r.errs, fmt.Errorf("%s: %d is more than %d", key, n, max))
	}
	return n
}

func (r *reader) bool(key string, def bool) bool {
	v := strings.TrimSpace(r.getenv(key))
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s: %q is not a boolean", key, v))
	}
	return b
}

func (r *reader) list(key string) []string {
	var out []string
	for _, s := range strings.Split(r.getenv(key), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (r *reader) base64(key string) []byte {
	v := strings.TrimSpace(r.getenv(key))
	if v == "" {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s: not valid base64", key))
	}
	return b
}
