package sessions

import (
	"context"
	"errors"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/password"
	"github.com/portcullis/portcullis/internal/postgres"
	"github.com/portcullis/portcullis/internal/redis"
	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/internal/users"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// testAuth is the session part of config.Auth the tests run with.
var testAuth = config.Auth{
	RefreshTokenTTL:    720 * time.Hour,
	SessionMaxLifetime: 2160 * time.Hour,
	RefreshReuseGrace:  10 * time.Second,
}

var tokenShape = regexp.MustCompile(`^prt_[A-Za-z0-9_-]{43}$`)

// env is one test's infrastructure: its own database, its own Redis key prefix and a fake clock
// shared by every Service it builds.
type env struct {
	pool   *pgxpool.Pool
	prefix string
	clock  *testenv.Clock
	users  *users.Service
	raw    rueidis.Client // straight to the real Redis, to look behind the services' backs
}

func newEnv(t testing.TB) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL and Redis")
	}
	ctx := context.Background()
	pool, err := postgres.Open(ctx, testenv.NewDB(t), 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	opt, err := rueidis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	opt.DisableCache = true
	raw, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatalf("connect to redis: %v", err)
	}
	t.Cleanup(raw.Close)
	return &env{
		pool:   pool,
		prefix: testenv.RedisPrefix(t),
		// PostgreSQL keeps microseconds; a clock on that grid makes round trips exact.
		clock: testenv.NewClock(time.Now().UTC().Truncate(time.Microsecond)),
		users: users.NewService(users.NewStore(pool), password.NewHasher(password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}), password.NewGate(2, 64), testenv.Logger(t)),
		raw:   raw,
	}
}

// service returns a Service on e's database whose cache is the Redis at redisURL under e's prefix.
func (e *env) service(t testing.TB, redisURL string, auth config.Auth) *Service {
	t.Helper()
	cfg := config.Redis{URL: redisURL, KeyPrefix: e.prefix, Timeout: 150 * time.Millisecond, SessionCacheTTL: 30 * time.Second}
	rc, err := redis.Open(cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	s := NewService(NewStore(e.pool), rc, cfg.SessionCacheTTL, auth, testenv.Logger(t))
	s.now = e.clock.Now
	return s
}

// testUser is a registered user and the password hash stored for them, which Open asks for.
type testUser struct {
	users.User
	hash string
}

func (e *env) user(t testing.TB, name string) testUser {
	t.Helper()
	ctx := context.Background()
	u, err := e.users.Register(ctx, users.NewUser{Email: name + "@example.com", Username: name, Password: "correct horse battery staple"})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	tu := testUser{User: u}
	if err := e.pool.QueryRow(ctx, "SELECT hashed_password FROM users WHERE id = $1", u.ID).Scan(&tu.hash); err != nil {
		t.Fatal(err)
	}
	return tu
}

// staleMarker is what redis.Coherent writes over an invalidated key.
const staleMarker = "stale"

func (e *env) cacheKey(id uuid.UUID) string { return e.prefix + "session:" + id.String() }

// cached returns the raw cache entry of a session and its TTL, or ok false when there is none.
func (e *env) cached(t testing.TB, id uuid.UUID) (raw string, ttl time.Duration, ok bool) {
	t.Helper()
	ctx := context.Background()
	raw, err := e.raw.Do(ctx, e.raw.B().Get().Key(e.cacheKey(id)).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return "", 0, false
	}
	if err != nil {
		t.Fatalf("redis GET: %v", err)
	}
	ms, err := e.raw.Do(ctx, e.raw.B().Pttl().Key(e.cacheKey(id)).Build()).AsInt64()
	if err != nil {
		t.Fatalf("redis PTTL: %v", err)
	}
	return raw, time.Duration(ms) * time.Millisecond, true
}

// wantNoLiveEntry fails unless Redis holds nothing for a revoked session, or a revoked state
// (a tombstone) that lives no longer than the cache TTL.
func (e *env) wantNoLiveEntry(t testing.TB, id uuid.UUID, after string) {
	t.Helper()
	raw, ttl, ok := e.cached(t, id)
	if !ok {
		return
	}
	if st, err := decodeState(id, raw); raw != staleMarker && (err != nil || !st.Revoked) {
		t.Errorf("after %s Redis holds %q for session %s; want no entry, a stale marker or a revoked state", after, raw, id)
	}
	if ttl <= 0 || ttl > 30*time.Second {
		t.Errorf("after %s the cache entry of %s has TTL %v; want in (0, 30s]", after, id, ttl)
	}
}

type sessionRow struct {
	createdAt, expiresAt time.Time
	revokedAt            *time.Time
	revokedReason        *string
	generation           int
}

func (e *env) row(t testing.TB, id uuid.UUID) sessionRow {
	t.Helper()
	var r sessionRow
	err := e.pool.QueryRow(context.Background(),
		`SELECT created_at, expires_at, revoked_at, revoked_reason, refresh_generation FROM user_sessions WHERE id = $1`, id,
	).Scan(&r.createdAt, &r.expiresAt, &r.revokedAt, &r.revokedReason, &r.generation)
	if err != nil {
		t.Fatalf("read session %s: %v", id, err)
	}
	return r
}

func (e *env) spentCount(t testing.TB, id uuid.UUID) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM spent_refresh_tokens WHERE session_id = $1`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func open(t testing.TB, s *Service, u testUser, c Client) Issued {
	t.Helper()
	iss, err := s.Open(context.Background(), u.ID, u.Role, u.hash, c)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return iss
}

func mustCheck(t testing.TB, s *Service, iss Issued) State {
	t.Helper()
	st, err := s.Check(context.Background(), iss.SessionID, iss.UserID)
	if err != nil {
		t.Fatalf("Check(%s) = %v; want a live session", iss.SessionID, err)
	}
	return st
}

func wantRevoked(t testing.TB, s *Service, iss Issued) {
	t.Helper()
	if _, err := s.Check(context.Background(), iss.SessionID, iss.UserID); !errors.Is(err, ErrSessionRevoked) {
		t.Fatalf("Check(%s) error = %v; want ErrSessionRevoked", iss.SessionID, err)
	}
}

func mustRotate(t testing.TB, s *Service, token string) Issued {
	t.Helper()
	iss, err := s.Rotate(context.Background(), token)
	if err != nil {
		t.Fatalf("Rotate = %v; want a new token", err)
	}
	return iss
}

func TestOpenThenCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.service(t, testenv.RedisURL(), testAuth)
	ctx := context.Background()
	ada, bob := e.user(t, "ada"), e.user(t, "bob")

	iss := open(t, s, ada, Client{})
	if !tokenShape.MatchString(iss.RefreshToken) {
		t.Errorf("RefreshToken = %q; want prt_ and 43 base64url characters", iss.RefreshToken)
	}
	if want := e.clock.Now().Add(testAuth.RefreshTokenTTL); !iss.RefreshExpiresAt.Equal(want) {
		t.Errorf("RefreshExpiresAt = %v; want %v", iss.RefreshExpiresAt, want)
	}
	// Twice: once from PostgreSQL, once from the entry the first call cached.
	for i := range 2 {
		st := mustCheck(t, s, iss)
		if st.SessionID != iss.SessionID || st.UserID != ada.ID || st.Role != users.RoleUser || !st.UserActive || st.Revoked {
			t.Errorf("Check #%d = %+v; want session %s of user %s, role %q, active, not revoked", i+1, st, iss.SessionID, ada.ID, users.RoleUser)
		}
		// The cache keeps milliseconds: a cached expiry may come up to 1ms early, never late.
		if d := iss.RefreshExpiresAt.Sub(st.ExpiresAt); d < 0 || d >= time.Millisecond {
			t.Errorf("Check #%d ExpiresAt = %v; want %v (to the millisecond)", i+1, st.ExpiresAt, iss.RefreshExpiresAt)
		}
	}

	if _, err := s.Check(ctx, iss.SessionID, bob.ID); !errors.Is(err, ErrSessionRevoked) {
		t.Errorf("Check with another user's id error = %v; want ErrSessionRevoked", err)
	}
	if _, err := s.Check(ctx, uuid.New(), ada.ID); !errors.Is(err, ErrSessionRevoked) {
		t.Errorf("Check of an unknown session error = %v; want ErrSessionRevoked", err)
	}
}

func TestRotateReuseDetection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.service(t, testenv.RedisURL(), testAuth)
	ctx := context.Background()
	ada := e.user(t, "ada")
	first := open(t, s, ada, Client{})

	second := mustRotate(t, s, first.RefreshToken)
	if second.RefreshToken == first.RefreshToken || !tokenShape.MatchString(second.RefreshToken) {
		t.Fatalf("Rotate token = %q (old %q); want a different prt_ token of 43 characters", second.RefreshToken, first.RefreshToken)
	}
	if second.SessionID != first.SessionID || second.UserID != ada.ID || second.Role != users.RoleUser {
		t.Errorf("Rotate = session %s, user %s, role %q; want session %s, user %s, role %q",
			second.SessionID, second.UserID, second.Role, first.SessionID, ada.ID, users.RoleUser)
	}

	// Within the grace window the old token is a lost race, not theft: the session lives on.
	e.clock.Advance(5 * time.Second)
	if _, err := s.Rotate(ctx, first.RefreshToken); !errors.Is(err, ErrRefreshRace) {
		t.Fatalf("Rotate(spent token, within grace) error = %v; want ErrRefreshRace", err)
	}
	mustCheck(t, s, first)
	third := mustRotate(t, s, second.RefreshToken)

	// Past the grace window a spent token ends the whole family.
	e.clock.Advance(11 * time.Second)
	if _, err := s.Rotate(ctx, second.RefreshToken); !errors.Is(err, ErrRefreshTokenReused) {
		t.Fatalf("Rotate(spent token, after grace) error = %v; want ErrRefreshTokenReused", err)
	}
	wantRevoked(t, s, first)
	r := e.row(t, first.SessionID)
	if r.revokedAt == nil || !r.revokedAt.Equal(e.clock.Now()) || r.revokedReason == nil || *r.revokedReason != ReasonRefreshReused {
		t.Errorf("revoked_at, revoked_reason = %v, %v; want %v, %q", r.revokedAt, r.revokedReason, e.clock.Now(), ReasonRefreshReused)
	}
	if _, err := s.Rotate(ctx, third.RefreshToken); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Errorf("Rotate(newest token of a revoked session) error = %v; want ErrInvalidRefreshToken", err)
	}
	// A revoked family answers every old token the same way, without another revocation.
	if _, err := s.Rotate(ctx, first.RefreshToken); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Errorf("Rotate(spent token of a revoked session) error = %v; want ErrInvalidRefreshToken", err)
	}
}

func TestRotateConcurrentRequestsWithOneToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.service(t, testenv.RedisURL(), testAuth)
	ada := e.user(t, "ada")
	iss := open(t, s, ada, Client{})

	const n = 20
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		got   [n]Issued
		errs  [n]error
	)
	for i := range n {
		wg.Go(func() {
			<-start
			got[i], errs[i] = s.Rotate(context.Background(), iss.RefreshToken)
		})
	}
	close(start)
	wg.Wait()

	var winner Issued
	wins := 0
	for i := range n {
		switch {
		case errs[i] == nil:
			wins++
			winner = got[i]
		case !errors.Is(errs[i], ErrRefreshRace):
			t.Errorf("request %d error = %v; want nil or ErrRefreshRace", i, errs[i])
		}
	}
	if wins != 1 {
		t.Fatalf("%d requests rotated the token; want exactly 1", wins)
	}
	if r := e.row(t, iss.SessionID); r.generation != 1 || r.revokedAt != nil {
		t.Errorf("refresh_generation, revoked_at = %d, %v; want 1, nil", r.generation, r.revokedAt)
	}
	if n := e.spentCount(t, iss.SessionID); n != 1 {
		t.Errorf("spent tokens = %d; want 1", n)
	}
	mustCheck(t, s, iss)
	mustRotate(t, s, winner.RefreshToken)
}

func TestRotateMalformedToken(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("A", 43)
	tests := []struct {
		name  string
		token string
	}{
		{"empty", ""},
		{"prefix only", "prt_"},
		{"wrong prefix", "prx_" + body},
		{"upper-case prefix", "PRT_" + body},
		{"no prefix", body + "AAAA"},
		{"one character short", "prt_" + body[1:]},
		{"one character long", "prt_" + body + "A"},
		{"padded", "prt_" + body[1:] + "="},
		{"standard base64 alphabet", "prt_" + body[2:] + "+/"},
		{"not base64", "prt_" + body[3:] + "!@#"},
		{"non-canonical trailing bits", "prt_" + body[1:] + "B"},
		{"multi-byte characters", "prt_" + body[2:] + "é"},
		{"10 KB", "prt_" + strings.Repeat("A", 10<<10)},
	}
	// A store whose database does not exist: touching it would fail with some other error.
	pool, err := pgxpool.New(context.Background(), "postgres://127.0.0.1:1/none?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s := &Service{store: NewStore(pool), now: func() time.Time { t.Error("Rotate read the clock"); return time.Time{} }}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Rotate(context.Background(), tt.token); !errors.Is(err, ErrInvalidRefreshToken) {
				t.Errorf("Rotate(%.40q) error = %v; want ErrInvalidRefreshToken", tt.token, err)
			}
		})
	}
}

func TestRotateUnknownToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.service(t, testenv.RedisURL(), testAuth)
	iss := open(t, s, e.user(t, "ada"), Client{})

	unknown, _ := newRefreshToken()
	if _, err := s.Rotate(context.Background(), unknown); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Fatalf("Rotate(unknown token) error = %v; want ErrInvalidRefreshToken", err)
	}
	if r := e.row(t, iss.SessionID); r.generation != 0 || r.revokedAt != nil {
		t.Errorf("refresh_generation, revoked_at = %d, %v; want 0, nil", r.generation, r.revokedAt)
	}
	mustRotate(t, s, iss.RefreshToken)
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.service(t, testenv.RedisURL(), testAuth)
	ada := e.user(t, "ada")
	iss := open(t, s, ada, Client{})
	mustCheck(t, s, iss) // caches the state: expiry must hold on the cached path too

	e.clock.Advance(testAuth.RefreshTokenTTL - 3*time.Second)
	mustCheck(t, s, iss)
	// A state cached shortly before expiry lives in Redis no longer than the session.
	if _, err := e.raw.Do(context.Background(), e.raw.B().Del().Key(e.cacheKey(iss.SessionID)).Build()).AsInt64(); err != nil {
		t.Fatal(err)
	}
	// The delete came from another connection: until its invalidation reaches the service's
	// connection, the service may still answer from its in-memory copy and fill nothing.
	var (
		ttl time.Duration
		ok  bool
	)
	for deadline := time.Now().Add(2 * time.Second); !ok && time.Now().Before(deadline); {
		mustCheck(t, s, iss)
		if _, ttl, ok = e.cached(t, iss.SessionID); !ok {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if !ok || ttl > 3*time.Second {
		t.Errorf("cache TTL 3s before expiry = %v (cached %v); want at most 3s", ttl, ok)
	}
	e.clock.Advance(2 * time.Second)
	mustCheck(t, s, iss)
	e.clock.Advance(2 * time.Second)
	wantRevoked(t, s, iss)
	if _, err := s.Rotate(context.Background(), iss.RefreshToken); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Errorf("Rotate(expired) error = %v; want ErrInvalidRefreshToken", err)
	}
	if _, err := e.raw.Do(context.Background(), e.raw.B().Del().Key(e.cacheKey(iss.SessionID)).Build()).AsInt64(); err != nil {
		t.Fatal(err)
	}
	wantRevoked(t, s, iss) // and from PostgreSQL
	if l, err := s.List(context.Background(), ada.ID); err != nil || len(l) != 0 {
		t.Errorf("List = %d sessions, %v; want none", len(l), err)
	}
}

func TestRotateSlidingExpiryIsCapped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	auth := testAuth
	auth.SessionMaxLifetime = auth.RefreshTokenTTL + time.Hour
	s := e.service(t, testenv.RedisURL(), auth)
	iss := open(t, s, e.user(t, "ada"), Client{})
	created := e.row(t, iss.SessionID).createdAt
	limit := created.Add(auth.SessionMaxLifetime)

	// Still under the cap: the expiry slides a full TTL from now.
	e.clock.Advance(59 * time.Minute)
	iss = mustRotate(t, s, iss.RefreshToken)
	want := e.clock.Now().Add(auth.RefreshTokenTTL)
	if got := e.row(t, iss.SessionID).expiresAt; !got.Equal(want) || !iss.RefreshExpiresAt.Equal(want) {
		t.Errorf("after rotating at +59m: expires_at = %v, RefreshExpiresAt = %v; want %v", got, iss.RefreshExpiresAt, want)
	}

	// A full TTL from now would pass the cap: the expiry stops at it.
	e.clock.Advance(61 * time.Minute)
	iss = mustRotate(t, s, iss.RefreshToken)
	got := e.row(t, iss.SessionID).expiresAt
	if got.After(limit) {
		t.Errorf("after rotating at +2h: expires_at = %v, past created_at + SessionMaxLifetime = %v", got, limit)
	}
	if !got.Equal(limit) || !iss.RefreshExpiresAt.Equal(limit) {
		t.Errorf("after rotating at +2h: expires_at = %v, RefreshExpiresAt = %v; want %v", got, iss.RefreshExpiresAt, limit)
	}

	e.clock.Advance(limit.Sub(e.clock.Now()) + time.Second)
	if _, err := s.Rotate(context.Background(), iss.RefreshToken); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Errorf("Rotate past the absolute lifetime error = %v; want ErrInvalidRefreshToken", err)
	}
}

func TestRevokeSeenThroughCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.service(t, testenv.RedisURL(), testAuth)
	iss := open(t, s, e.user(t, "ada"), Client{})

	mustCheck(t, s, iss)
	raw, ttl, ok := e.cached(t, iss.SessionID)
	if !ok {
		t.Fatalf("no Redis key %q after Check", e.cacheKey(iss.SessionID))
	}
	if ttl <= 0 || ttl > 30*time.Second {
		t.Errorf("cache TTL = %v; want in (0, 30s]", ttl)
	}
	if st, err := decodeState(iss.SessionID, raw); err != nil || st.Revoked || st.UserID != iss.UserID {
		t.Errorf("cached %q decodes to %+v, %v; want a live session of %s", raw, st, err, iss.UserID)
	}

	if err := s.Revoke(context.Background(), iss.SessionID, ReasonLogout, testEvent); err != nil {
		t.Fatal(err)
	}
	e.wantNoLiveEntry(t, iss.SessionID, "Revoke")
	wantRevoked(t, s, iss)
	if r := e.row(t, iss.SessionID); r.revokedReason == nil || *r.revokedReason != ReasonLogout {
		t.Errorf("revoked_reason = %v; want %q", r.revokedReason, ReasonLogout)
	}
	// The dead state is cached too, and stays dead.
	wantRevoked(t, s, iss)
}

func TestRevokeOnAnotherInstance(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.service(t, testenv.RedisURL(), testAuth)
	b := e.service(t, testenv.RedisURL(), testAuth)
	iss := open(t, a, e.user(t, "ada"), Client{})

	mustCheck(t, a, iss)
	if _, _, ok := e.cached(t, iss.SessionID); !ok {
		t.Fatal("instance A's Check cached nothing")
	}
	if err := b.Revoke(context.Background(), iss.SessionID, ReasonLogout, testEvent); err != nil {
		t.Fatal(err)
	}
	e.wantNoLiveEntry(t, iss.SessionID, "Revoke on instance B")
	wantRevoked(t, a, iss)
}

// A Check that read PostgreSQL just before another instance revoked the session writes the cache
// late; that write must not bring the session back for anyone.
func TestLateCacheFillAfterRevoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.service(t, testenv.RedisURL(), testAuth)
	b := e.service(t, testenv.RedisURL(), testAuth)
	ctx := context.Background()
	iss := open(t, a, e.user(t, "ada"), Client{})

	read, err := a.store.state(ctx, iss.SessionID) // A's read, before the revocation
	if err != nil || !read.live(e.clock.Now()) {
		t.Fatalf("state = %+v, %v; want a live session", read, err)
	}
	if err := b.Revoke(ctx, iss.SessionID, ReasonLogout, testEvent); err != nil {
		t.Fatal(err)
	}
	if err := a.cache.fill(ctx, read, e.clock.Now(), time.Now()); err != nil { // A's write, after it
		t.Fatal(err)
	}
	e.wantNoLiveEntry(t, iss.SessionID, "a late fill")
	wantRevoked(t, a, iss)
	wantRevoked(t, b, iss)
}

func TestRevokeAllKeepsOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.service(t, testenv.RedisURL(), testAuth)
	ada, bob := e.user(t, "ada"), e.user(t, "bob")
	keep, other1, other2 := open(t, s, ada, Client{}), open(t, s, ada, Client{}), open(t, s, ada, Client{})
	bobs := open(t, s, bob, Client{})
	for _, iss := range []Issued{keep, other1, other2, bobs} {
		mustCheck(t, s, iss)
	}

	if err := s.RevokeAll(context.Background(), ada.ID, keep.SessionID, nil, ReasonLogoutAll, testEvent); err != nil {
		t.Fatal(err)
	}
	e.wantNoLiveEntry(t, other1.SessionID, "RevokeAll")
	e.wantNoLiveEntry(t, other2.SessionID, "RevokeAll")
	wantRevoked(t, s, other1)
	wantRevoked(t, s, other2)
	mustCheck(t, s, keep)
	mustCheck(t, s, bobs)
	if r := e.row(t, other1.SessionID); r.revokedReason == nil || *r.revokedReason != ReasonLogoutAll {
		t.Errorf("revoked_reason = %v; want %q", r.revokedReason, ReasonLogoutAll)
	}

	if err := s.RevokeAll(context.Background(), ada.ID, uuid.Nil, nil, ReasonPasswordChange, testEvent); err != nil {
		t.Fatal(err)
	}
	wantRevoked(t, s, keep)
	mustCheck(t, s, bobs)
}

func TestRevokeOwned(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.service(t, testenv.RedisURL(), testAuth)
	ctx := context.Background()
	ada, bob := e.user(t, "ada"), e.user(t, "bob")
	adas, bobs := open(t, s, ada, Client{}), open(t, s, bob, Client{})
	mustCheck(t, s, bobs)

	if err := s.RevokeOwned(ctx, ada.ID, bobs.SessionID, nil, ReasonRevokedByUser, testEvent); !errors.Is(err, ErrNotFound) {
		t.Errorf("RevokeOwned(another user's session) error = %v; want ErrNotFound", err)
	}
	mustCheck(t, s, bobs)
	if r := e.row(t, bobs.SessionID); r.revokedAt != nil {
		t.Errorf("bob's session revoked_at = %v; want nil", r.revokedAt)
	}
	if err := s.RevokeOwned(ctx, ada.ID, uuid.New(), nil, ReasonRevokedByUser, testEvent); !errors.Is(err, ErrNotFound) {
		t.Errorf("RevokeOwned(unknown session) error = %v; want ErrNotFound", err)
	}

	if err := s.RevokeOwned(ctx, ada.ID, adas.SessionID, nil, ReasonRevokedByUser, testEvent); err != nil {
		t.Fatalf("RevokeOwned(own session) = %v", err)
	}
	wantRevoked(t, s, adas)
	if err := s.RevokeOwned(ctx, ada.ID, adas.SessionID, nil, ReasonRevokedByUser, testEvent); !errors.Is(err, ErrNotFound) {
		t.Errorf("RevokeOwned(already revoked) error = %v; want ErrNotFound", err)
	}
}

func TestRedisCutMidFlight(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := testenv.NewProxy(t, "127.0.0.1:6379")
	s := e.service(t, "redis://"+p.Addr()+"/0", testAuth)
	ctx := context.Background()
	live, doomed := open(t, s, e.user(t, "ada"), Client{}), open(t, s, e.user(t, "bob"), Client{})
	mustCheck(t, s, live)
	mustCheck(t, s, doomed)
	if _, _, ok := e.cached(t, doomed.SessionID); !ok {
		t.Fatal("Check through the proxy cached nothing")
	}

	p.Cut()
	mustCheck(t, s, live)
	if err := s.Revoke(ctx, doomed.SessionID, ReasonLogout, testEvent); err != nil {
		t.Fatalf("Revoke while Redis is down: %v", err)
	}
	raw, _, ok := e.cached(t, doomed.SessionID)
	if st, err := decodeState(doomed.SessionID, raw); !ok || err != nil || st.Revoked {
		t.Fatalf("Redis entry = %q, %v; want the stale live entry (is the proxy really cut?)", raw, ok)
	}
	wantRevoked(t, s, doomed)

	// Redis is back but still holds the stale entry: this instance must keep ignoring it.
	p.Restore()
	wantRevoked(t, s, doomed)
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.retryPending(ctx)
		if !s.isPending(doomed.SessionID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("retryPending did not clear the pending invalidation within 5s of Restore")
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.wantNoLiveEntry(t, doomed.SessionID, "retryPending")
	wantRevoked(t, s, doomed)
	raw, _, ok = e.cached(t, doomed.SessionID)
	if st, err := decodeState(doomed.SessionID, raw); !ok || raw != staleMarker && (err != nil || !st.Revoked) {
		t.Errorf("Redis entry after Restore = %q, %v; want a stale marker or a revoked state cached", raw, ok)
	}
	mustCheck(t, s, live)
}

func TestRunRetriesPendingInvalidations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := testenv.NewProxy(t, "127.0.0.1:6379")
	s := e.service(t, "redis://"+p.Addr()+"/0", testAuth)
	ctx, cancel := context.WithCancel(context.Background())
	iss := open(t, s, e.user(t, "ada"), Client{})
	mustCheck(t, s, iss)

	p.Cut()
	if err := s.Revoke(ctx, iss.SessionID, ReasonLogout, testEvent); err != nil {
		t.Fatal(err)
	}
	if !s.isPending(iss.SessionID) {
		t.Fatal("a failed invalidation was not remembered")
	}
	p.Restore()
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx, 20*time.Millisecond) }()
	t.Cleanup(func() { cancel(); <-done })

	deadline := time.Now().Add(5 * time.Second)
	for s.isPending(iss.SessionID) {
		if time.Now().After(deadline) {
			t.Fatal("Run did not clear the pending invalidation within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.wantNoLiveEntry(t, iss.SessionID, "Run")
	wantRevoked(t, s, iss)
}

func TestRedisUnreachableFromStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.service(t, "redis://127.0.0.1:1/0", testAuth)
	ctx := context.Background()
	ada := e.user(t, "ada")

	iss := open(t, s, ada, Client{})
	mustCheck(t, s, iss)
	next := mustRotate(t, s, iss.RefreshToken)
	if next.SessionID != iss.SessionID {
		t.Errorf("Rotate session = %s; want %s", next.SessionID, iss.SessionID)
	}
	mustCheck(t, s, iss)
	if err := s.Revoke(ctx, iss.SessionID, ReasonLogout, testEvent); err != nil {
		t.Fatalf("Revoke without Redis: %v", err)
	}
	wantRevoked(t, s, iss)
	if _, err := s.Rotate(ctx, next.RefreshToken); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Errorf("Rotate after Revoke error = %v; want ErrInvalidRefreshToken", err)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.service(t, testenv.RedisURL(), testAuth)
	short := testAuth
	short.RefreshTokenTTL = time.Hour
	shortLived := e.service(t, testenv.RedisURL(), short)
	ctx := context.Background()
	ada, bob := e.user(t, "ada"), e.user(t, "bob")

	open(t, shortLived, ada, Client{}) // expired by the time List runs
	e.clock.Advance(2 * time.Hour)
	oldest := open(t, s, ada, Client{IP: netip.MustParseAddr("203.0.113.7"), UserAgent: "Firefox/128.0"})
	e.clock.Advance(time.Second)
	revoked := open(t, s, ada, Client{})
	e.clock.Advance(time.Second)
	newest := open(t, s, ada, Client{IP: netip.MustParseAddr("::ffff:198.51.100.9")})
	open(t, s, bob, Client{})
	if err := s.Revoke(ctx, revoked.SessionID, ReasonLogout, testEvent); err != nil {
		t.Fatal(err)
	}

	got, err := s.List(ctx, ada.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != newest.SessionID || got[1].ID != oldest.SessionID {
		ids := make([]uuid.UUID, len(got))
		for i, g := range got {
			ids[i] = g.ID
		}
		t.Fatalf("List = %v; want [%s %s]", ids, newest.SessionID, oldest.SessionID)
	}
	n, o := got[0], got[1]
	if n.IPAddress == nil || *n.IPAddress != netip.MustParseAddr("198.51.100.9") {
		t.Errorf("newest IPAddress = %v; want 198.51.100.9 (unmapped)", n.IPAddress)
	}
	if n.UserAgent != nil {
		t.Errorf("newest UserAgent = %q; want nil", *n.UserAgent)
	}
	if o.IPAddress == nil || *o.IPAddress != netip.MustParseAddr("203.0.113.7") {
		t.Errorf("oldest IPAddress = %v; want 203.0.113.7", o.IPAddress)
	}
	if o.UserAgent == nil || *o.UserAgent != "Firefox/128.0" {
		t.Errorf("oldest UserAgent = %v; want Firefox/128.0", o.UserAgent)
	}
	if o.UserID != ada.ID || !o.CreatedAt.Equal(o.LastUsedAt) || !o.ExpiresAt.Equal(oldest.RefreshExpiresAt) {
		t.Errorf("oldest = %+v; want user %s, last_used_at = created_at, expires_at %v", o, ada.ID, oldest.RefreshExpiresAt)
	}

	e.clock.Advance(time.Minute)
	mustRotate(t, s, oldest.RefreshToken)
	got, err = s.List(ctx, ada.ID)
	if err != nil || len(got) != 2 {
		t.Fatalf("List after Rotate = %d sessions, %v; want 2", len(got), err)
	}
	if !got[1].LastUsedAt.Equal(e.clock.Now()) {
		t.Errorf("LastUsedAt after Rotate = %v; want %v", got[1].LastUsedAt, e.clock.Now())
	}
}

func TestCleanUserAgent(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 511) + "é" // 513 bytes: the last rune does not fit
	tests := []struct {
		name string
		in   string
		want *string
	}{
		{"empty is absent", "", nil},
		{"plain", "Mozilla/5.0 (X11; Linux x86_64)", ptr("Mozilla/5.0 (X11; Linux x86_64)")},
		{"control characters", "Moz\x00illa\r\n/5.0\t\x1b[31m\x7f\u0085", ptr("Mozilla/5.0[31m")},
		{"invalid UTF-8", "Moz\xffilla\xc3", ptr("Mozilla")},
		{"non-ASCII kept", "Navigateur/1.0 (Français; 日本語)", ptr("Navigateur/1.0 (Français; 日本語)")},
		{"exactly 512 bytes", strings.Repeat("b", 512), ptr(strings.Repeat("b", 512))},
		{"capped at 512 bytes", strings.Repeat("c", 10<<10), ptr(strings.Repeat("c", 512))},
		{"cap never splits a rune", long, ptr(strings.Repeat("a", 511))},
		{"control characters do not count", strings.Repeat("\x00", 600) + "ok", ptr("ok")},
		{"only control characters is absent", "\x01\x02\t", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := cleanUserAgent(tt.in)
			switch {
			case tt.want == nil && got != nil:
				t.Fatalf("cleanUserAgent = %.80q; want nil", *got)
			case tt.want == nil:
				return
			case got == nil:
				t.Fatalf("cleanUserAgent = nil; want %.80q", *tt.want)
			case *got != *tt.want:
				t.Errorf("cleanUserAgent = %.80q (%d bytes); want %.80q (%d bytes)", *got, len(*got), *tt.want, len(*tt.want))
			}
			if len(*got) > maxUserAgent || !utf8.ValidString(*got) {
				t.Errorf("cleanUserAgent = %d bytes, valid UTF-8 %v; want at most %d bytes of valid UTF-8", len(*got), utf8.ValidString(*got), maxUserAgent)
			}
		})
	}
}

func TestRefreshTokenShape(t *testing.T) {
	t.Parallel()
	a, ha := newRefreshToken()
	b, _ := newRefreshToken()
	if !tokenShape.MatchString(a) || !wellFormed(a) {
		t.Errorf("newRefreshToken = %q; want a well-formed prt_ token", a)
	}
	if a == b {
		t.Error("two refresh tokens are equal")
	}
	if string(ha) != string(hashToken(a)) || len(ha) != 32 {
		t.Errorf("hash = %x; want the 32-byte SHA-256 of the token", ha)
	}
}

func ptr(s string) *string { return &s }

// testEvent is the audit entry the tests' revocations record.
var testEvent = audit.Event{Action: audit.ActionSessionRevoke}

// After Refresh (a role change, say) every instance reads the session from PostgreSQL again,
// and a fill that read the old state earlier cannot put it back.
func TestRefreshMakesEveryInstanceRereadTheState(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.service(t, testenv.RedisURL(), testAuth)
	b := e.service(t, testenv.RedisURL(), testAuth)
	ada := e.user(t, "ada")
	iss := open(t, a, ada, Client{})
	before := mustCheck(t, b, iss) // B caches role "user"
	if _, err := e.pool.Exec(context.Background(), "UPDATE users SET role = 'admin' WHERE id = $1", ada.ID); err != nil {
		t.Fatal(err)
	}
	a.Refresh(context.Background(), iss.SessionID)
	// A late fill carrying the old state must not win.
	if err := b.cache.fill(context.Background(), before, time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Service{a, b} {
		if st := mustCheck(t, s, iss); st.Role != "admin" {
			t.Fatalf("role after Refresh = %q, want admin", st.Role)
		}
	}
}
