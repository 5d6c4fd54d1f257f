// Package tokens issues and verifies access tokens: EdDSA-signed JWTs (RFC 9068 "at+jwt") whose
// keys live in PostgreSQL, so every instance on the database signs and verifies with the same
// keys, and rotate: a new key is published before it signs, and old keys keep verifying until
// the tokens they signed have expired.
package tokens

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/every"
	"github.com/portcullis/portcullis/internal/postgres"
	"github.com/portcullis/portcullis/internal/strictjson"
)

// TokenType is the JOSE "typ" of access tokens (RFC 9068).
const TokenType = "at+jwt"

// reloadEvery bounds how often an unknown kid makes an instance re-read the keys.
const reloadEvery = 5 * time.Second

// Claims are what a verified access token says.
type Claims struct {
	UserID    uuid.UUID
	SessionID uuid.UUID
	Role      string
	ID        string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Service signs and verifies access tokens.
type Service struct {
	cfg    config.Auth
	store  *store
	logger *slog.Logger
	now    func() time.Time

	mu         sync.RWMutex
	signers    []signingKey // newest activation first; pending keys included
	verifiers  jwk.Set
	loadedAt   time.Time
	reloadLock sync.Mutex

	verified *verified // tokens already verified; nil when the cache is off
}

// New loads the keys, creating the first one when the database has none.
func New(ctx context.Context, pool *pgxpool.Pool, cfg config.Auth, logger *slog.Logger) (*Service, error) {
	return newService(ctx, pool, cfg, logger, time.Now)
}

func newService(ctx context.Context, pool *pgxpool.Pool, cfg config.Auth, logger *slog.Logger, now func() time.Time) (*Service, error) {
	s := &Service{cfg: cfg, store: newStore(pool, cfg.AccessTokenTTL+cfg.ClockSkew), logger: logger, now: now, verified: newVerified(cfg.VerifiedTokenCache)}
	if cfg.KeyEncryptionKey == nil {
		logger.WarnContext(ctx, "PORTCULLIS_KEY_ENCRYPTION_KEY is not set: signing keys are stored unsealed in PostgreSQL")
	}
	if err := s.Rotate(ctx, false); err != nil {
		return nil, err
	}
	return s, nil
}

// Rotate creates the next signing key when one is due (or now, when force is set), prunes keys
// no token can need any more, and reloads. Safe to call from every instance at once.
func (s *Service) Rotate(ctx context.Context, force bool) error {
	now := s.now()
	// A key is pruned once its successor has been signing for longer than a token it signed can
	// live: the longest lifetime recorded on it by the instances that loaded it (store.list).
	err := s.store.rotate(ctx, now, func(keys []storedKey) (*storedKey, error) {
		// An instance that cannot open the keys (a wrong or missing key encryption key) writes
		// none: a key sealed with a KEK the others lack would stop them all from reloading, and
		// from starting again even once this one's KEK is fixed.
		for _, k := range keys {
			if _, err := k.open(s.cfg.KeyEncryptionKey); err != nil {
				return nil, err
			}
		}
		var active *storedKey
		for i := range keys {
			if !keys[i].ActivatesAt.After(now) {
				active = &keys[i]
				break
			}
		}
		pending := len(keys) > 0 && keys[0].ActivatesAt.After(now)
		switch {
		case active == nil && !pending:
			return newStoredKey(s.cfg.KeyEncryptionKey, now, now) // the very first key signs at once
		case pending && !force:
			return nil, nil
		case force:
			// Publish now; sign once verifiers caching the JWKS have had time to see it.
			return newStoredKey(s.cfg.KeyEncryptionKey, now, now.Add(s.cfg.JWKSPrepublish))
		case !now.Before(active.ActivatesAt.Add(s.cfg.SigningKeyRotation - s.cfg.JWKSPrepublish)):
			return newStoredKey(s.cfg.KeyEncryptionKey, now, maxTime(now.Add(s.cfg.JWKSPrepublish), active.ActivatesAt.Add(s.cfg.SigningKeyRotation)))
		}
		return nil, nil
	})
	if err != nil {
		return fmt.Errorf("rotate signing keys: %w", err)
	}
	// Under reloadLock, as verifierFor's reloads: two reloads at once could swap in the older
	// list last, bringing back a key deleted between their reads until the next reload.
	s.reloadLock.Lock()
	defer s.reloadLock.Unlock()
	return s.reload(ctx)
}

// Run rotates and reloads keys every interval until ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	every.Tick(ctx, interval, func() bool {
		if err := s.Rotate(ctx, false); err != nil && ctx.Err() == nil {
			s.logger.ErrorContext(ctx, "signing key rotation failed", "error", err)
		}
		return true
	})
}

// reload reads the keys and swaps them in; callers hold reloadLock. On a server that only
// reads (a hot standby during a failover), where the token lifetime cannot be recorded on the
// keys, it still swaps in the keys that verify, so tokens of keys rotated in meanwhile are
// accepted; this instance keeps signing with the keys it last loaded with their lifetime
// recorded, and signs with the others only once it has recorded it (its next reload or Rotate
// that can write).
func (s *Service) reload(ctx context.Context) error {
	keys, err := s.store.list(ctx)
	canSign := true
	if postgres.IsCode(err, "25006") { // read_only_sql_transaction
		keys, err = s.store.read(ctx)
		canSign = false
	}
	if err != nil {
		return err
	}
	now := s.now()
	signers, set, err := s.openKeys(keys)
	if err != nil {
		return err
	}
	if !canSign {
		s.logger.WarnContext(ctx, "signing keys reloaded from a database that only reads: new keys verify, signing stays with the keys loaded before")
	} else if next := signers[len(signers)-1]; next.activatesAt.After(now) {
		// Every active key is gone: deleted by an operator (after a compromise, say) while its
		// successor waits out PORTCULLIS_JWKS_PREPUBLISH. Keeping the old set would keep the
		// deleted key verifying and signing; the next key signs ahead of its time instead
		// (signer), and a verifier that cached the JWKS before it was published refuses its
		// tokens until it fetches the JWKS again.
		s.logger.WarnContext(ctx, "no signing key is active: the next one signs ahead of its activation",
			"kid", next.kid, "activates_at", next.activatesAt)
	}
	s.mu.Lock()
	if canSign {
		s.signers = signers
	}
	s.verifiers, s.loadedAt = set, now
	s.mu.Unlock()
	// A pruned key verifies nothing any more, remembered or not.
	kids := make(map[string]bool, len(signers))
	for _, k := range signers {
		kids[k.kid] = true
	}
	s.verified.forgetKeys(kids)
	return nil
}

// openKeys opens keys (listed newest activation first) into signing keys in the same order and
// the key set that verifies, refusing an empty list.
func (s *Service) openKeys(keys []storedKey) ([]signingKey, jwk.Set, error) {
	set := jwk.NewSet()
	signers := make([]signingKey, 0, len(keys))
	for _, k := range keys {
		sk, err := k.open(s.cfg.KeyEncryptionKey)
		if err != nil {
			return nil, nil, err
		}
		if err := set.AddKey(sk.public); err != nil {
			return nil, nil, fmt.Errorf("add key %s: %w", sk.kid, err)
		}
		signers = append(signers, sk)
	}
	if len(signers) == 0 {
		return nil, nil, errors.New("no signing key")
	}
	return signers, set, nil
}

// signer returns the newest loaded key already active at now: a pending key starts signing
// the moment it activates, without waiting for the next reload. When none is active (see
// reload), the next to activate signs.
func (s *Service) signer(now time.Time) signingKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, k := range s.signers {
		if !k.activatesAt.After(now) {
			return k
		}
	}
	return s.signers[len(s.signers)-1]
}

// JWKS returns the public keys that verify access tokens, including a key about to sign.
func (s *Service) JWKS() jwk.Set {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.verifiers
}

// SigningKeyID returns the kid of the key that signs now.
func (s *Service) SigningKeyID() string { return s.signer(s.now()).kid }

// NewestKey returns the kid of the newest loaded key and when it signs (or began to): after a
// forced Rotate, the key just published.
func (s *Service) NewestKey() (kid string, activatesAt time.Time) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.signers[0].kid, s.signers[0].activatesAt // listed newest activation first
}

// Issue signs an access token for a session.
//
// The token is built by hand rather than through jwx: it is a fixed shape, signed on every
// login and refresh, and jwx's generic builder and serializer cost twice the signature itself.
// Verify, which faces untrusted input, parses with jwx; the tests check that every token
// issued here verifies there.
func (s *Service) Issue(userID, sessionID uuid.UUID, role string) (token string, expiresAt time.Time, err error) {
	now := s.now()
	signer := s.signer(now)
	expiresAt = now.Add(s.cfg.AccessTokenTTL)
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", time.Time{}, err
	}
	hdr, err := json.Marshal(joseHeader{Alg: algEdDSA, Kid: signer.kid, Typ: TokenType})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token header: %w", err)
	}
	claims, err := json.Marshal(accessClaims{
		Iss: s.cfg.Issuer, Sub: userID.String(), Aud: []string{s.cfg.Audience},
		Exp: expiresAt.Unix(), Nbf: now.Unix(), Iat: now.Unix(),
		Jti: base64url(jti), Sid: sessionID.String(), Role: role,
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token claims: %w", err)
	}
	b64 := base64.RawURLEncoding
	buf := make([]byte, 0, b64.EncodedLen(len(hdr))+b64.EncodedLen(len(claims))+b64.EncodedLen(ed25519.SignatureSize)+2)
	buf = b64.AppendEncode(buf, hdr)
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, claims)
	sig := ed25519.Sign(signer.private, buf)
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, sig)
	return string(buf), expiresAt, nil
}

// joseHeader and accessClaims are what Issue writes (RFC 9068).
type joseHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

type accessClaims struct {
	Iss  string   `json:"iss"`
	Sub  string   `json:"sub"`
	Aud  []string `json:"aud"`
	Exp  int64    `json:"exp"`
	Nbf  int64    `json:"nbf"`
	Iat  int64    `json:"iat"`
	Jti  string   `json:"jti"`
	Sid  string   `json:"sid"`
	Role string   `json:"role"`
}

// header is the part of a JOSE header checked before any signature work.
type header struct {
	Alg string          `json:"alg"`
	Typ string          `json:"typ"`
	Kid string          `json:"kid"`
	Jwk json.RawMessage `json:"jwk"`
	Jku string          `json:"jku"`
	X5u string          `json:"x5u"`
	X5c json.RawMessage `json:"x5c"`
	Cty string          `json:"cty"`
}

// Verify checks an access token's header, signature and claims. It returns ErrInvalidToken for
// anything wrong with it; the reason is wrapped for logs only. A token verified before is
// answered from memory, its time claims checked again.
func (s *Service) Verify(ctx context.Context, token string) (Claims, error) {
	if len(token) > 4096 || strings.Count(token, ".") != 2 {
		return Claims{}, ErrInvalidToken.Wrap(errors.New("not a compact JWS"))
	}
	key := tokenKey(token)
	if c, ok := s.verified.get(key, s.now()); ok {
		return c, nil
	}
	c, err := s.verify(ctx, token)
	if err != nil {
		return Claims{}, err
	}
	s.remember(key, c)
	return c.claims, nil
}

// remember caches a verified token while its key is still loaded. A reload that removed the
// key while the token was being verified has already run forgetKeys, and nothing would forget
// the token until the next one: checked and put under the read lock, the put either sees the
// new set (and is skipped) or lands before the swap (and the reload's forgetKeys drops it).
func (s *Service) remember(key [32]byte, c verifiedToken) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.verifiers.LookupKeyID(c.kid); ok {
		s.verified.put(key, c)
	}
}

// verify is Verify without the cache.
func (s *Service) verify(ctx context.Context, token string) (verifiedToken, error) {
	// Each segment must be canonical base64url: otherwise several strings would verify as the
	// same token, and anything keyed on the token text could be sidestepped.
	for _, seg := range strings.Split(token, ".") {
		if _, err := base64.RawURLEncoding.Strict().DecodeString(seg); err != nil {
			return verifiedToken{}, ErrInvalidToken.Wrap(errors.New("segment is not canonical base64url"))
		}
	}
	h, err := parseHeader(token[:strings.IndexByte(token, '.')])
	if err != nil {
		return verifiedToken{}, ErrInvalidToken.Wrap(err)
	}
	// Keys come only from our own set: headers that name or carry keys are refused outright.
	switch {
	case h.Alg != algEdDSA:
		return verifiedToken{}, ErrInvalidToken.Wrap(fmt.Errorf("alg %q not accepted", h.Alg))
	case h.Typ != TokenType:
		return verifiedToken{}, ErrInvalidToken.Wrap(fmt.Errorf("typ %q not accepted", h.Typ))
	case h.Jwk != nil || h.Jku != "" || h.X5u != "" || h.X5c != nil || h.Cty != "":
		return verifiedToken{}, ErrInvalidToken.Wrap(errors.New("header carries key material or nesting"))
	case h.Kid == "":
		return verifiedToken{}, ErrInvalidToken.Wrap(errors.New("no kid"))
	}
	set := s.verifierFor(ctx, h.Kid)
	t, err := jwt.ParseString(token,
		jwt.WithKeySet(set, jws.WithInferAlgorithmFromKey(false)),
		jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(s.now)),
		jwt.WithAcceptableSkew(s.cfg.ClockSkew),
		jwt.WithIssuer(s.cfg.Issuer),
		jwt.WithAudience(s.cfg.Audience),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.IssuedAtKey),
		jwt.WithRequiredClaim(jwt.SubjectKey),
		jwt.WithRequiredClaim("sid"),
	)
	if err != nil {
		return verifiedToken{}, ErrInvalidToken.Wrap(err)
	}
	// jwx treats exp 0 as absent; and no token we issue lives longer than the configured TTL.
	if life := t.Expiration().Sub(t.IssuedAt()); life <= 0 || life > s.cfg.AccessTokenTTL+s.cfg.ClockSkew {
		return verifiedToken{}, ErrInvalidToken.Wrap(fmt.Errorf("lifetime %v out of bounds", life))
	}
	claims, err := claimsFrom(t)
	if err != nil {
		return verifiedToken{}, err
	}
	from := t.IssuedAt()
	if nbf := t.NotBefore(); nbf.After(from) {
		from = nbf
	}
	skew := s.cfg.ClockSkew
	return verifiedToken{claims: claims, kid: h.Kid, validFrom: from.Add(-skew), validUntil: t.Expiration().Add(skew)}, nil
}

// verifierFor returns the key set, re-reading it first (at most every reloadEvery) when kid is
// not in it: another instance may have rotated.
func (s *Service) verifierFor(ctx context.Context, kid string) jwk.Set {
	s.mu.RLock()
	set, loadedAt := s.verifiers, s.loadedAt
	s.mu.RUnlock()
	if _, ok := set.LookupKeyID(kid); ok || s.now().Sub(loadedAt) < reloadEvery {
		return set
	}
	if s.reloadLock.TryLock() {
		defer s.reloadLock.Unlock()
		if err := s.reload(ctx); err != nil {
			s.logger.WarnContext(ctx, "reload signing keys", "error", err)
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.verifiers
}

func claimsFrom(t jwt.Token) (Claims, error) {
	uid, err := uuid.Parse(t.Subject())
	if err != nil {
		return Claims{}, ErrInvalidToken.Wrap(errors.New("sub is not a uuid"))
	}
	sidRaw, _ := t.Get("sid")
	sidStr, _ := sidRaw.(string)
	sid, err := uuid.Parse(sidStr)
	if err != nil {
		return Claims{}, ErrInvalidToken.Wrap(errors.New("sid is not a uuid"))
	}
	roleRaw, _ := t.Get("role")
	role, _ := roleRaw.(string)
	return Claims{UserID: uid, SessionID: sid, Role: role, ID: t.JwtID(), IssuedAt: t.IssuedAt(), ExpiresAt: t.Expiration()}, nil
}

func parseHeader(seg string) (header, error) {
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return header{}, fmt.Errorf("header: %w", err)
	}
	// Read the header as jwx does, or these checks and the signature check could read two
	// headers: encoding/json keeps the last of a repeated member and takes "KID" (or "Kid") for
	// kid, where jwx reads only "kid", so a token could be remembered under a key that did not
	// sign it, and outlive that key's removal.
	if err := strictjson.Check(raw); err != nil {
		return header{}, fmt.Errorf("header: %w", err)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return header{}, fmt.Errorf("header: %w", err)
	}
	for name := range members {
		for _, known := range headerMembers {
			if name != known && strings.EqualFold(name, known) {
				return header{}, fmt.Errorf("header member %q is not %q", name, known)
			}
		}
	}
	var h header
	if err := json.Unmarshal(raw, &h); err != nil {
		return header{}, fmt.Errorf("header: %w", err)
	}
	return h, nil
}

// headerMembers are the JSON names of header's fields.
var headerMembers = []string{"alg", "typ", "kid", "jwk", "jku", "x5u", "x5c", "cty"}

func base64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
