package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/password"
	"github.com/portcullis/portcullis/internal/postgres"
	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/internal/users"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestMigrateCommands(t *testing.T) {
	url := testenv.NewDB(t)
	ctx := context.Background()
	for _, cmd := range [][]string{{"migrate", "status"}, {"migrate", "down"}, {"migrate", "up"}} {
		var out bytes.Buffer
		if err := run(ctx, cmd, env(map[string]string{"DATABASE_URL": url}), strings.NewReader(""), &out); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
		if !strings.Contains(out.String(), "migration") {
			t.Fatalf("%v logged nothing about migrations: %s", cmd, out.String())
		}
	}
}

func TestRunRefusesBadInvocations(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no command", nil, nil, "usage"},
		{"unknown command", []string{"explode"}, nil, `unknown command "explode"`},
		{"bad migrate", []string{"migrate"}, nil, "usage"},
		{"bad config", []string{"serve"}, map[string]string{"PORTCULLIS_ACCESS_TOKEN_TTL": "forever"}, "PORTCULLIS_ACCESS_TOKEN_TTL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), tt.args, env(tt.env), strings.NewReader(""), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run(%v) = %v, want an error mentioning %q", tt.args, err, tt.want)
			}
		})
	}
}

// A configuration serve cannot run with stops it before it creates or migrates anything, with
// an error naming the variable: a malformed rate limit, TLS files that cannot be read (they
// failed only once the migrations had run, naming no variable), an address that is no
// host:port.
func TestServeRefusesBadSettingsBeforeTouchingTheDatabase(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"malformed limit", map[string]string{"PORTCULLIS_RATE_LIMIT_IP": "lots"}, "PORTCULLIS_RATE_LIMIT_IP"},
		{"missing tls files", map[string]string{"PORTCULLIS_TLS_CERT_FILE": "/nonexistent/cert.pem", "PORTCULLIS_TLS_KEY_FILE": "/nonexistent/key.pem"}, "PORTCULLIS_TLS_CERT_FILE"},
		{"address without a port", map[string]string{"PORTCULLIS_HTTP_ADDR": "localhost"}, "PORTCULLIS_HTTP_ADDR"},
		{"metrics address without a port", map[string]string{"PORTCULLIS_METRICS_ADDR": "0.0.0.0"}, "PORTCULLIS_METRICS_ADDR"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := "pc_never_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
			vars := map[string]string{"DATABASE_URL": testenv.DatabaseURL(name), "PORTCULLIS_CREATE_DATABASE": "true"}
			maps.Copy(vars, tt.env)
			err := run(context.Background(), []string{"serve"}, env(vars), strings.NewReader(""), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("serve = %v, want an error naming %s", err, tt.want)
			}
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, testenv.AdminURL())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var exists bool
			if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
				t.Fatal(err)
			}
			if exists {
				_, _ = conn.Exec(ctx, "DROP DATABASE "+name)
				t.Fatal("serve created the database before refusing its configuration")
			}
		})
	}
}

// serve runs end to end: it answers, then shuts down cleanly when its context ends.
func TestServeAnswersAndShutsDown(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	want := before + 1 // no GOMAXPROCS in the test's environment
	if before < runtime.NumCPU() {
		want = before // go test -cpu, or a CPU limit: left alone
	}
	srv := startServe(t, map[string]string{"PORTCULLIS_METRICS_ADDR": "127.0.0.1:0"}, http.DefaultClient, "http")
	if got := runtime.GOMAXPROCS(0); got != want {
		t.Errorf("GOMAXPROCS while serving = %d, want %d", got, want)
	}
	srv.stop(t)
	if !strings.Contains(srv.out.String(), `"msg":"shutting down"`) {
		t.Fatalf("no shutdown in the log:\n%s", srv.out.String())
	}
	if !strings.Contains(srv.out.String(), fmt.Sprintf(`"gomaxprocs":%d,`, want)) {
		t.Errorf("the start is not logged with gomaxprocs %d:\n%s", want, srv.out.String())
	}
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Errorf("GOMAXPROCS after serve = %d, want %d back", got, before)
	}
}

// served is `portcullis serve` running in the background for one test.
type served struct {
	addr   string
	cancel context.CancelFunc // SIGTERM
	done   chan error
	out    *safeBuffer
}

// startServe runs serve on a fresh database and Redis prefix with extra settings, and waits
// until client answers scheme://addr/healthz.
func startServe(t *testing.T, extra map[string]string, client *http.Client, scheme string) *served {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	vars := map[string]string{
		"DATABASE_URL":              testenv.NewDB(t),
		"PORTCULLIS_HTTP_ADDR":      addr,
		"PORTCULLIS_REDIS_PREFIX":   testenv.RedisPrefix(t),
		"PORTCULLIS_METRICS_ADDR":   "off",
		"PORTCULLIS_SHUTDOWN_DRAIN": "0s",
	}
	for k, v := range extra {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{addr: addr, cancel: cancel, done: make(chan error, 1), out: &safeBuffer{}}
	t.Cleanup(cancel)
	go func() { s.done <- run(ctx, []string{"serve", "-no-migrate"}, env(vars), strings.NewReader(""), s.out) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get(scheme + "://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("healthz: %d", resp.StatusCode)
			}
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve never answered: %v\n%s", err, s.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends the shutdown and waits for serve to return, failing on an error or a hang.
func (s *served) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not shut down")
	}
}

type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAdminCreate(t *testing.T) {
	url := testenv.NewDB(t)
	ctx := context.Background()
	cheap := map[string]string{"DATABASE_URL": url, "PORTCULLIS_ARGON2_MEMORY_KIB": "64", "PORTCULLIS_ARGON2_ITERATIONS": "1"}

	var out bytes.Buffer
	if err := run(ctx, []string{"admin", "create", "-email", "root@example.com", "-username", "root"}, env(cheap), strings.NewReader(""), &out); err != nil {
		t.Fatal(err)
	}
	_, generated, ok := strings.Cut(out.String(), "password (shown once, store it now): ")
	if !ok || len(strings.TrimSpace(generated)) < 20 {
		t.Fatalf("no generated password printed: %q", out.String())
	}

	out.Reset()
	err := run(ctx, []string{"admin", "create", "-email", "second@example.com", "-username", "second", "-password-stdin"}, env(cheap), strings.NewReader("a chosen admin passphrase\n"), &out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "passphrase") || strings.Contains(out.String(), "password") {
		t.Fatalf("a password from stdin was echoed: %q", out.String())
	}

	pool := testenv.Pool(t, url)
	var admins, audited int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM users WHERE role = 'admin' AND is_active AND is_verified").Scan(&admins); err != nil || admins != 2 {
		t.Fatalf("active admins = %d (%v), want 2", admins, err)
	}
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM audit_events WHERE action = 'admin.user_create' AND actor_id IS NULL").Scan(&audited); err != nil || audited != 2 {
		t.Fatalf("audited creations = %d (%v), want 2", audited, err)
	}

	tests := []struct {
		name  string
		args  []string
		stdin string
		want  string
	}{
		{"duplicate email", []string{"-email", "ROOT@example.com", "-username", "other"}, "", "email"},
		{"common password", []string{"-email", "x@example.com", "-username", "xx1", "-password-stdin"}, "password123\n", "common"},
		{"missing username", []string{"-email", "y@example.com"}, "", "-username"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(ctx, append([]string{"admin", "create"}, tt.args...), env(cheap), strings.NewReader(tt.stdin), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

// An admin who lost their password gets back in from the command line: the new password works,
// the old one does not, every session ended, and the trail says so.
func TestAdminSetPassword(t *testing.T) {
	url := testenv.NewDB(t)
	ctx := context.Background()
	cheap := map[string]string{"DATABASE_URL": url, "PORTCULLIS_REDIS_PREFIX": testenv.RedisPrefix(t), "PORTCULLIS_ARGON2_MEMORY_KIB": "64", "PORTCULLIS_ARGON2_ITERATIONS": "1"}
	const old = "the first admin passphrase"
	if err := run(ctx, []string{"admin", "create", "-email", "root@example.com", "-username", "root", "-password-stdin"}, env(cheap), strings.NewReader(old+"\n"), &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	pool := testenv.Pool(t, url)
	svc := users.NewService(users.NewStore(pool), password.NewHasher(password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}), password.NewGate(1, 0), testenv.Logger(t))
	var id uuid.UUID
	if err := pool.QueryRow(ctx, "SELECT id FROM users WHERE email = 'root@example.com'").Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO user_sessions (id, user_id, refresh_token_hash, created_at, last_used_at, expires_at)
		VALUES (gen_random_uuid(), $1, sha256('r'::bytea), now(), now(), now() + interval '1 day')`, id); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := run(ctx, []string{"admin", "set-password", "-email", "ROOT@example.com"}, env(cheap), strings.NewReader(""), &out); err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(out.String(), "password (shown once, store it now): ")
	generated, _, _ := strings.Cut(rest, "\n")
	if !ok || len(generated) < 20 || !strings.Contains(out.String(), "1 sessions ended") {
		t.Fatalf("output %q: want the generated password and one session ended", out.String())
	}
	for _, c := range []struct {
		pw   string
		want error
	}{{generated, nil}, {old, users.ErrInvalidCredentials}} {
		a, err := svc.FindAccount(ctx, users.Credentials{Email: "root@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Authenticate(ctx, a, c.pw); !errors.Is(err, c.want) && (err != nil || c.want != nil) {
			t.Fatalf("password %q after set-password: %v, want %v", c.pw, err, c.want)
		}
	}
	var live, audited int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM user_sessions WHERE user_id = $1 AND revoked_at IS NULL),
		(SELECT count(*) FROM audit_events WHERE action = 'admin.password_reset' AND actor_id IS NULL AND target_id = $1::text)`, id).Scan(&live, &audited); err != nil {
		t.Fatal(err)
	}
	if live != 0 || audited != 1 {
		t.Fatalf("live sessions %d, audited resets %d; want 0 and 1", live, audited)
	}
	for _, c := range []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"-email", "nobody@example.com", "-password-stdin"}, "a perfectly fine passphrase\n", "no such user"},
		{[]string{"-email", "root@example.com", "-password-stdin"}, "password123\n", "common"},
		{[]string{}, "", "-email"},
	} {
		if err := run(ctx, append([]string{"admin", "set-password"}, c.args...), env(cheap), strings.NewReader(c.stdin), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("set-password %v = %v, want an error mentioning %q", c.args, err, c.want)
		}
	}
}

// The admin commands take the address's domain through IDNA as the API does: an admin created
// with fullwidth capitals in the domain is stored under the plain host, another spelling of it
// is taken, set-password finds the account by any spelling, and a domain IDNA refuses is refused.
func TestAdminCommandsMapTheEmailDomain(t *testing.T) {
	url := testenv.NewDB(t)
	ctx := context.Background()
	cheap := map[string]string{"DATABASE_URL": url, "PORTCULLIS_REDIS_PREFIX": testenv.RedisPrefix(t), "PORTCULLIS_ARGON2_MEMORY_KIB": "64", "PORTCULLIS_ARGON2_ITERATIONS": "1"}
	const fullwidth = "root@\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25.com"
	if err := run(ctx, []string{"admin", "create", "-email", fullwidth, "-username", "root", "-password-stdin"}, env(cheap), strings.NewReader("the first admin passphrase\n"), &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	pool := testenv.Pool(t, url)
	var stored string
	if err := pool.QueryRow(ctx, "SELECT email FROM users WHERE username = 'root'").Scan(&stored); err != nil || stored != "root@example.com" {
		t.Fatalf("stored email %q (%v), want root@example.com", stored, err)
	}
	for _, c := range []struct {
		cmd   string
		args  []string
		stdin string
		want  string
	}{
		{"create", []string{"-email", "root@example.com", "-username", "other", "-password-stdin"}, "another admin passphrase\n", "email"},
		{"create", []string{"-email", "x@exam_ple.com", "-username", "xx1", "-password-stdin"}, "another admin passphrase\n", "email"},
		{"set-password", []string{"-email", "root@xn--exmple-cua.de", "-password-stdin"}, "a perfectly fine passphrase\n", "no such user"},
	} {
		if err := run(ctx, append([]string{"admin", c.cmd}, c.args...), env(cheap), strings.NewReader(c.stdin), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s %v = %v, want an error mentioning %q", c.cmd, c.args, err, c.want)
		}
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"admin", "set-password", "-email", "root@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45\uff0e\uff43\uff4f\uff4d", "-password-stdin"}, env(cheap), strings.NewReader("a perfectly fine passphrase\n"), &out); err != nil {
		t.Fatalf("set-password by a fullwidth spelling: %v", err)
	}
	if !strings.Contains(out.String(), "root@example.com") {
		t.Fatalf("output %q: want the account root@example.com", out.String())
	}
}

// brokenWriter fails every write, like stdout redirected to a full disk.
type brokenWriter struct{}

func (brokenWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// A generated password that cannot be shown creates no admin: one whose only password was lost
// could never sign in, and its address would be taken.
func TestAdminCreateNeedsToShowTheGeneratedPassword(t *testing.T) {
	url := testenv.NewDB(t)
	ctx := context.Background()
	cheap := map[string]string{"DATABASE_URL": url, "PORTCULLIS_ARGON2_MEMORY_KIB": "64", "PORTCULLIS_ARGON2_ITERATIONS": "1"}
	err := run(ctx, []string{"admin", "create", "-email", "root@example.com", "-username", "root"}, env(cheap), strings.NewReader(""), brokenWriter{})
	if err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("admin create with an unwritable stdout = %v, want the write error", err)
	}
	pool := testenv.Pool(t, url)
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&n); err != nil || n != 0 {
		t.Fatalf("users after the failed create = %d (%v), want 0", n, err)
	}
}

// With a certificate and key configured, the binary terminates TLS itself and sends HSTS.
func TestServeTerminatesTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, certFile, keyFile)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // our own throwaway certificate
	srv := startServe(t, map[string]string{"PORTCULLIS_TLS_CERT_FILE": certFile, "PORTCULLIS_TLS_KEY_FILE": keyFile}, client, "https")
	addr := srv.addr
	resp, err := client.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("status %d, tls %+v", resp.StatusCode, resp.TLS)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(got, "max-age=31536000") {
		t.Fatalf("HSTS over TLS = %q", got)
	}
	// Plain HTTP on the TLS port gets nothing useful.
	if plain, err := http.Get("http://" + addr + "/healthz"); err == nil {
		plain.Body.Close()
		if plain.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP was served on the TLS port")
		}
	}
	srv.stop(t)
}

func writeSelfSigned(t *testing.T, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// On shutdown, a request already in flight finishes with its real answer.
func TestShutdownLetsInFlightRequestsFinish(t *testing.T) {
	srv := startServe(t, map[string]string{
		"PORTCULLIS_ARGON2_MEMORY_KIB": "131072", // slow enough (~0.5 s) to be caught in flight
		"PORTCULLIS_ARGON2_ITERATIONS": "3",
	}, http.DefaultClient, "http")
	addr := srv.addr
	result := make(chan int, 1)
	go func() {
		resp, err := http.Post("http://"+addr+"/api/v1/auth/login", "application/json",
			strings.NewReader(`{"email":"nobody@example.com","password":"some password or other"}`))
		if err != nil {
			result <- -1
			return
		}
		resp.Body.Close()
		result <- resp.StatusCode
	}()
	time.Sleep(150 * time.Millisecond) // the login is hashing now
	srv.cancel()                       // SIGTERM
	if got := <-result; got != http.StatusUnauthorized {
		t.Fatalf("in-flight login during shutdown: %d, want its real answer 401", got)
	}
	srv.stop(t)
}

// set-password reaches the running instances through Redis: a session it ends is refused on the
// next request, not after PORTCULLIS_SESSION_CACHE_TTL (30 s) of cached trust, and an owner
// locked out by failed sign-ins gets in with the new password at once.
func TestAdminSetPasswordReachesRunningInstances(t *testing.T) {
	ctx := context.Background()
	const next = "the recovered admin passphrase"
	vars, login, me := lockedOutRoot(t)

	var out bytes.Buffer
	if err := run(ctx, []string{"admin", "set-password", "-email", "root@example.com", "-password-stdin"}, env(vars), strings.NewReader(next+"\n"), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "running instances refuse the ended sessions at once") {
		t.Fatalf("set-password said %q", out.String())
	}
	untilRefused(t, me, "a session set-password ended")
	if r := login(next); r.JSON200 == nil {
		t.Fatalf("the new password after set-password: %d %s, want 200 (the lockout lifted)", r.StatusCode(), r.Body)
	}
}

// Without Redis, set-password still sets the password in PostgreSQL and says what it could not
// carry to the running instances.
func TestAdminSetPasswordWithoutRedisSaysWhatItMissed(t *testing.T) {
	vars := signedInRootWithoutRedis(t)
	ctx := context.Background()
	var out bytes.Buffer
	if err := run(ctx, []string{"admin", "set-password", "-email", "root@example.com", "-password-stdin"}, env(vars), strings.NewReader("the recovered admin passphrase\n"), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"password set for root (root@example.com); 1 sessions ended", "may accept it for up to 30s", "stays locked until its failure budget refills"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("set-password without Redis said %q; want it to mention %q", out.String(), want)
		}
	}
	if strings.Contains(out.String(), "refuse the ended sessions at once") {
		t.Fatalf("set-password without Redis claims the instances were told: %q", out.String())
	}
}

// keys rotate names the key it published, and when it will sign, apart from the key that signs
// until then.
func TestKeysRotateNamesThePublishedKey(t *testing.T) {
	url := testenv.NewDB(t)
	vars := map[string]string{"DATABASE_URL": url, "PORTCULLIS_REDIS_PREFIX": testenv.RedisPrefix(t)}
	ctx := context.Background()
	var out bytes.Buffer
	if err := run(ctx, []string{"keys", "rotate"}, env(vars), strings.NewReader(""), &out); err != nil {
		t.Fatal(err)
	}
	var line struct {
		Msg          string    `json:"msg"`
		PublishedKID string    `json:"published_kid"`
		SignsFrom    time.Time `json:"signs_from"`
		SigningKID   string    `json:"signing_kid"`
	}
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, `"signing key published"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	pool := testenv.Pool(t, url)
	var newest string
	var activates time.Time
	if err := pool.QueryRow(ctx, "SELECT kid, activates_at FROM signing_keys ORDER BY activates_at DESC LIMIT 1").Scan(&newest, &activates); err != nil {
		t.Fatal(err)
	}
	if line.PublishedKID != newest || line.PublishedKID == line.SigningKID || !line.SignsFrom.Equal(activates.Truncate(time.Second)) {
		t.Fatalf("keys rotate logged %+v; want published_kid %s (not the signing one) signing from %s\n%s", line, newest, activates, out.String())
	}
	if until := time.Until(line.SignsFrom); until < 9*time.Minute || until > 11*time.Minute {
		t.Fatalf("the published key signs in %s, want PORTCULLIS_JWKS_PREPUBLISH (10m)", until)
	}
}

// A set-password whose COMMIT reply is lost has, here, set the password. The command cannot know:
// it must say so rather than claim the password shown was not applied, and the running instances
// must re-read the sessions it may have ended instead of trusting their cached states.
func TestAdminSetPasswordWhoseCommitReplyIsLost(t *testing.T) {
	ctx := context.Background()
	vars, login, me := lockedOutRoot(t)
	cli := maps.Clone(vars)
	var proxy *testenv.Proxy
	cli["DATABASE_URL"], proxy = testenv.BehindProxy(t, vars["DATABASE_URL"])
	cli["PORTCULLIS_AUTO_MIGRATE"] = "false"
	proxy.LoseReplyTo("commit")
	var out bytes.Buffer
	err := run(ctx, []string{"admin", "set-password", "-email", "root@example.com"}, env(cli), strings.NewReader(""), &out)
	if !errors.Is(err, postgres.ErrCommitUnknown) {
		t.Fatalf("set-password with its commit's reply lost: %v; want postgres.ErrCommitUnknown", err)
	}
	if strings.Contains(err.Error(), "not applied") || !strings.Contains(err.Error(), "may have been applied") {
		t.Errorf("set-password said %q; want it to say the password may have been applied", err)
	}
	_, generated, ok := strings.Cut(strings.TrimSpace(out.String()), "password (shown once, store it now): ")
	if !ok {
		t.Fatalf("set-password printed %q; want the generated password", out.String())
	}
	untilRefused(t, me, "a session the unanswered set-password ended")
	if r := login(generated); r.JSON200 == nil { // it was applied, and the lockout lifted
		t.Fatalf("the generated password: %d %s, want 200 (applied, and the lockout lifted as by a set-password that was answered)", r.StatusCode(), r.Body)
	}
}

// lockedOutRoot runs serve on a fresh database whose admin root@example.com (password "the first
// admin passphrase") is signed in and then locked out by two failed sign-ins against a budget of
// two, and returns serve's settings and serveSignedInRoot's login and me.
func lockedOutRoot(t *testing.T) (vars map[string]string, login func(pw string) *api.LoginResponse, me func() int) {
	t.Helper()
	vars = map[string]string{
		"DATABASE_URL":                                 testenv.NewDB(t),
		"REDIS_URL":                                    testenv.RedisURL(),
		"PORTCULLIS_REDIS_PREFIX":                      testenv.RedisPrefix(t),
		"PORTCULLIS_ARGON2_MEMORY_KIB":                 "64",
		"PORTCULLIS_ARGON2_ITERATIONS":                 "1",
		"PORTCULLIS_RATE_LIMIT_LOGIN_ACCOUNT_FAILURES": "2/1h",
	}
	const pw = "the first admin passphrase"
	login, me = serveSignedInRoot(t, vars, pw)
	for range 2 {
		if r := login("a wrong passphrase here"); r.StatusCode() != http.StatusUnauthorized {
			t.Fatalf("wrong password: %d %s", r.StatusCode(), r.Body)
		}
	}
	if r := login(pw); r.StatusCode() != http.StatusTooManyRequests || !strings.Contains(string(r.Body), "account-locked") {
		t.Fatalf("the right password past the failure budget: %d %s, want 429 account-locked", r.StatusCode(), r.Body)
	}
	return vars, login, me
}

// serveSignedInRoot creates the admin root@example.com with password pw, runs serve on vars until
// t ends, and signs root in there. login signs root in with a password; me calls GET /users/me
// with the first session, which is live and cached by the instance when this returns.
func serveSignedInRoot(t *testing.T, vars map[string]string, pw string) (login func(pw string) *api.LoginResponse, me func() int) {
	t.Helper()
	ctx := context.Background()
	if err := run(ctx, []string{"admin", "create", "-email", "root@example.com", "-username", "root", "-password-stdin"}, env(vars), strings.NewReader(pw+"\n"), &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, vars, http.DefaultClient, "http")
	t.Cleanup(func() { s.stop(t) })
	c, err := api.NewClientWithResponses("http://" + s.addr)
	if err != nil {
		t.Fatal(err)
	}
	email := api.Email("root@example.com")
	login = func(pw string) *api.LoginResponse {
		t.Helper()
		r, err := c.LoginWithResponse(ctx, api.LoginJSONRequestBody{Email: &email, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	signedIn := login(pw)
	if signedIn.JSON200 == nil {
		t.Fatalf("login: %d %s", signedIn.StatusCode(), signedIn.Body)
	}
	me = func() int {
		t.Helper()
		r, err := c.GetMeWithResponse(ctx, func(_ context.Context, r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+signedIn.JSON200.AccessToken)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return r.StatusCode()
	}
	for range 2 { // the first read fills Redis; the second puts the state in the instance's memory
		if got := me(); got != http.StatusOK {
			t.Fatalf("GET /users/me: %d", got)
		}
	}
	return login, me
}

// When set-password's commit goes unanswered and Redis cannot be reached either, the operator is
// told that running instances may keep accepting the sessions it may have ended.
func TestAdminSetPasswordWhoseCommitReplyIsLostWithoutRedis(t *testing.T) {
	vars := signedInRootWithoutRedis(t)
	db := vars["DATABASE_URL"]
	ctx := context.Background()
	var proxy *testenv.Proxy
	vars["DATABASE_URL"], proxy = testenv.BehindProxy(t, db)
	vars["PORTCULLIS_AUTO_MIGRATE"] = "false"
	proxy.LoseReplyTo("commit")
	err := run(ctx, []string{"admin", "set-password", "-email", "root@example.com", "-password-stdin"}, env(vars), strings.NewReader("the recovered admin passphrase\n"), &bytes.Buffer{})
	if !errors.Is(err, postgres.ErrCommitUnknown) || !strings.Contains(err.Error(), "Redis could not be told") || !strings.Contains(err.Error(), "may accept it for up to 30s") {
		t.Fatalf("set-password with its commit's reply lost and no Redis: %v; want ErrCommitUnknown and what Redis was not told", err)
	}
}

// signedInRootWithoutRedis returns the settings of a fresh database holding the admin
// root@example.com with one live session (inserted as a login would have, without a server) and
// of a Redis that cannot be reached.
func signedInRootWithoutRedis(t *testing.T) map[string]string {
	t.Helper()
	vars := map[string]string{
		"DATABASE_URL":                 testenv.NewDB(t),
		"REDIS_URL":                    "redis://127.0.0.1:1/0", // nothing listens on port 1
		"PORTCULLIS_ARGON2_MEMORY_KIB": "64",
		"PORTCULLIS_ARGON2_ITERATIONS": "1",
	}
	ctx := context.Background()
	if err := run(ctx, []string{"admin", "create", "-email", "root@example.com", "-username", "root", "-password-stdin"}, env(vars), strings.NewReader("the first admin passphrase\n"), &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	pool := testenv.Pool(t, vars["DATABASE_URL"])
	if _, err := pool.Exec(ctx, `INSERT INTO user_sessions (id, user_id, refresh_token_hash, created_at, last_used_at, expires_at)
		SELECT gen_random_uuid(), id, sha256('r'::bytea), now(), now(), now() + interval '1 day' FROM users`); err != nil {
		t.Fatal(err)
	}
	return vars
}

// untilRefused waits up to a second for me to answer 401. Redis pushes an invalidation to the
// instance before the command that wrote it returns; the push may still be in the instance's
// socket, so a moment is allowed (the cached state would last 30 s).
func untilRefused(t *testing.T, me func() int, what string) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for me() != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatalf("the instance still accepts %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// On a database whose lower() folds ASCII letters only, "Émile@x" could register beside
// "émile@x": serve and the admin commands refuse it before touching its schema, naming the
// setting that accepts the hazard; with it they run.
func TestADatabaseThatFoldsASCIIOnlyIsRefused(t *testing.T) {
	vars := map[string]string{
		"DATABASE_URL":                 testenv.NewEmptyDB(t, "UTF8", "C"),
		"REDIS_URL":                    testenv.RedisURL(),
		"PORTCULLIS_REDIS_PREFIX":      testenv.RedisPrefix(t),
		"PORTCULLIS_HTTP_ADDR":         "127.0.0.1:0",
		"PORTCULLIS_METRICS_ADDR":      "off",
		"PORTCULLIS_ARGON2_MEMORY_KIB": "64",
		"PORTCULLIS_ARGON2_ITERATIONS": "1",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := run(ctx, []string{"serve"}, env(vars), strings.NewReader(""), &bytes.Buffer{}); !errors.Is(err, postgres.ErrASCIICaseFolding) {
		t.Fatalf("serve on an LC_CTYPE C database: %v; want ErrASCIICaseFolding", err)
	}
	create := func() error {
		return run(ctx, []string{"admin", "create", "-email", "root@example.com", "-username", "root", "-password-stdin"},
			env(vars), strings.NewReader("the first admin passphrase\n"), &bytes.Buffer{})
	}
	if err := create(); !errors.Is(err, postgres.ErrASCIICaseFolding) {
		t.Fatalf("admin create on an LC_CTYPE C database: %v; want ErrASCIICaseFolding", err)
	}
	if err := run(ctx, []string{"migrate", "up"}, env(vars), strings.NewReader(""), &bytes.Buffer{}); !errors.Is(err, postgres.ErrASCIICaseFolding) {
		t.Fatalf("migrate up on an LC_CTYPE C database: %v; want ErrASCIICaseFolding", err)
	}
	pool := testenv.Pool(t, vars["DATABASE_URL"])
	var tables int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("%d tables (%v) after the refusals; want none: the schema was touched", tables, err)
	}
	vars["PORTCULLIS_ALLOW_ASCII_CASE_FOLDING"] = "true"
	if err := create(); err != nil {
		t.Fatalf("admin create with the hazard accepted: %v", err)
	}
}

// A connection string pgx cannot parse is quoted in its error with a best-effort redaction,
// which leaves a password written in some forms the configuration log hides: that error goes
// to stderr, and from there to the log shipper.
func TestStartupErrorsHideTheDatabasePassword(t *testing.T) {
	for _, db := range []string{
		"host=127.0.0.1 password = 'hunter2 with spaces' sslmode=bogus",
		`host=127.0.0.1 password=hunter2\ escaped sslmode=bogus`,
		"postgres://u:hunter2@127.0.0.1/x?sslmode=bogus",
	} {
		for _, tt := range []struct {
			args []string
			env  map[string]string
		}{
			{[]string{"serve"}, nil},
			{[]string{"serve"}, map[string]string{"PORTCULLIS_CREATE_DATABASE": "true"}},
			{[]string{"migrate", "up"}, nil},
			{[]string{"admin", "create", "-email", "root@example.com", "-username", "root", "-password-stdin"}, nil},
		} {
			vars := map[string]string{"DATABASE_URL": db, "PORTCULLIS_METRICS_ADDR": "off"}
			maps.Copy(vars, tt.env)
			var out bytes.Buffer
			err := run(context.Background(), tt.args, env(vars), strings.NewReader("a long admin password\n"), &out)
			if err == nil {
				t.Fatalf("%v with DATABASE_URL %q succeeded", tt.args, db)
			}
			if msg := err.Error() + out.String(); strings.Contains(msg, "hunter2") || strings.Contains(msg, "escaped") {
				t.Errorf("%v %v with DATABASE_URL %q shows its password: %v\n%s", tt.args, tt.env, db, err, out.String())
			}
		}
	}
}

// The metrics listener answers its errors as the API does, in problem+json, not net/http's
// text/plain "404 page not found".
func TestMetricsListenerErrorsAreProblems(t *testing.T) {
	srv := startServe(t, map[string]string{"PORTCULLIS_METRICS_ADDR": "127.0.0.1:0"}, http.DefaultClient, "http")
	defer srv.stop(t)
	m := regexp.MustCompile(`"msg":"metrics listening","addr":"([^"]+)"`).FindStringSubmatch(srv.out.String())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", srv.out.String())
	}
	base := "http://" + m[1]
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "portcullis_ready") {
		t.Fatalf("GET /metrics: %d %.200s", resp.StatusCode, body)
	}
	for _, tt := range []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{http.MethodGet, "/nope", http.StatusNotFound, "not-found", ""},
		{http.MethodGet, "/", http.StatusNotFound, "not-found", ""},
		{http.MethodPost, "/metrics", http.StatusMethodNotAllowed, "method-not-allowed", "GET, HEAD"},
	} {
		req, _ := http.NewRequest(tt.method, base+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			Status int    `json:"status"`
			Code   string `json:"code"`
		}
		err = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if resp.StatusCode != tt.status || resp.Header.Get("Content-Type") != "application/problem+json" || err != nil || p.Status != tt.status || p.Code != tt.code || resp.Header.Get("Allow") != tt.allow {
			t.Errorf("%s %s: %d %q %+v (%v), Allow %q; want %d problem %q, Allow %q", tt.method, tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), p, err, resp.Header.Get("Allow"), tt.status, tt.code, tt.allow)
		}
	}
}

// A password from stdin that no login could ever send is refused, not stored: the API takes
// only valid UTF-8 without NUL characters (400 invalid-utf8, nul-character), so a password typed
// in a Latin-1 terminal ("caf\xe9") or holding a NUL would lock the admin out for good.
func TestAdminCommandsRefuseAPasswordNoLoginCouldSend(t *testing.T) {
	url := testenv.NewDB(t)
	ctx := context.Background()
	cheap := map[string]string{"DATABASE_URL": url, "PORTCULLIS_REDIS_PREFIX": testenv.RedisPrefix(t), "PORTCULLIS_ARGON2_MEMORY_KIB": "64", "PORTCULLIS_ARGON2_ITERATIONS": "1"}
	for _, pw := range []string{"un caf\xe9 au lait, merci", "a long passphrase\x00with a NUL"} {
		err := run(ctx, []string{"admin", "create", "-email", "root@example.com", "-username", "root", "-password-stdin"}, env(cheap), strings.NewReader(pw+"\n"), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "password") {
			t.Fatalf("create with password %q = %v, want an error about the password", pw, err)
		}
	}
	pool := testenv.Pool(t, url)
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&n); err != nil || n != 0 {
		t.Fatalf("users = %d (%v), want 0", n, err)
	}
	if err := run(ctx, []string{"admin", "create", "-email", "root@example.com", "-username", "root", "-password-stdin"}, env(cheap), strings.NewReader("the first admin passphrase\n"), &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	err := run(ctx, []string{"admin", "set-password", "-email", "root@example.com", "-password-stdin"}, env(cheap), strings.NewReader("un caf\xe9 au lait, merci\n"), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("set-password with invalid UTF-8 = %v, want an error about the password", err)
	}
	svc := users.NewService(users.NewStore(pool), password.NewHasher(password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}), password.NewGate(1, 0), testenv.Logger(t))
	a, err := svc.FindAccount(ctx, users.Credentials{Email: "root@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(ctx, a, "the first admin passphrase"); err != nil {
		t.Fatalf("the password before the refused set-password: %v", err)
	}
}

// A database migrated by a newer release (a binary rolled back, an old instance restarted
// mid-deploy) is one this binary has no migration for. serve still starts (a release's
// migrations keep the previous release working), but says so, naming both versions, at WARN;
// `migrate status` lists the version it does not know; `migrate down` refuses, naming it,
// instead of failing on a migration it does not have.
func TestADatabaseNewerThanTheBinaryIsNamed(t *testing.T) {
	ctx := context.Background()
	url := testenv.NewDB(t)
	pool := testenv.Pool(t, url)
	var known int64
	if err := pool.QueryRow(ctx, "SELECT max(version_id) FROM goose_db_version").Scan(&known); err != nil {
		t.Fatal(err)
	}
	newer := known + 1
	if _, err := pool.Exec(ctx, "INSERT INTO goose_db_version (version_id, is_applied) VALUES ($1, true)", newer); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"DATABASE_URL": url}

	var status bytes.Buffer
	if err := run(ctx, []string{"migrate", "status"}, env(vars), strings.NewReader(""), &status); err != nil {
		t.Fatalf("migrate status: %v", err)
	}
	if !strings.Contains(status.String(), fmt.Sprintf(`"version":%d,`, newer)) || !strings.Contains(status.String(), `"level":"WARN"`) {
		t.Errorf("migrate status does not warn of version %d, which this binary lacks:\n%s", newer, status.String())
	}

	err := run(ctx, []string{"migrate", "down"}, env(vars), strings.NewReader(""), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprint(newer)) || !strings.Contains(err.Error(), "newer") {
		t.Errorf("migrate down = %v, want a refusal naming version %d as newer than this binary", err, newer)
	}
	var current int64
	if err := pool.QueryRow(ctx, "SELECT max(version_id) FROM goose_db_version").Scan(&current); err != nil || current != newer {
		t.Errorf("after migrate down the database is at %d (%v), want %d untouched", current, err, newer)
	}

	srv := startServe(t, map[string]string{"DATABASE_URL": url, "PORTCULLIS_AUTO_MIGRATE": "true"}, http.DefaultClient, "http")
	srv.stop(t)
	var warned bool
	for _, line := range strings.Split(srv.out.String(), "\n") {
		if strings.Contains(line, `"level":"WARN"`) && strings.Contains(line, fmt.Sprintf(`"database_version":%d`, newer)) &&
			strings.Contains(line, fmt.Sprintf(`"binary_version":%d`, known)) {
			warned = true
		}
	}
	if !warned {
		t.Errorf("serve on a database at version %d (this binary knows up to %d) did not warn, naming both:\n%s", newer, known, srv.out.String())
	}
}

// keys rotate is one shot: it runs no retention purge, which would fire at its start and be cut
// off by its own exit (a cancelled audit purge records audit.purge with count_unknown).
func TestKeysRotateRunsNoRetentionPurge(t *testing.T) {
	url := testenv.NewDB(t)
	vars := map[string]string{"DATABASE_URL": url, "PORTCULLIS_REDIS_PREFIX": testenv.RedisPrefix(t), "PORTCULLIS_AUDIT_RETENTION": "24h"}
	ctx := context.Background()
	var out bytes.Buffer
	if err := run(ctx, []string{"keys", "rotate"}, env(vars), strings.NewReader(""), &out); err != nil {
		t.Fatal(err)
	}
	pool := testenv.Pool(t, url)
	if _, err := pool.Exec(ctx, `INSERT INTO audit_events (id, occurred_at, action, outcome)
		VALUES (gen_random_uuid(), now() - interval '30 days', 'user.register', 'success')`); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(ctx, []string{"keys", "rotate"}, env(vars), strings.NewReader(""), &out); err != nil {
		t.Fatal(err)
	}
	var old, purges int
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE occurred_at < now() - interval '1 day'),
		count(*) FILTER (WHERE action = 'audit.purge') FROM audit_events`).Scan(&old, &purges); err != nil {
		t.Fatal(err)
	}
	if old != 1 || purges != 0 {
		t.Fatalf("after keys rotate: %d old events (want 1, kept), %d audit.purge events (want 0)\n%s", old, purges, out.String())
	}
}
