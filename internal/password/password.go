// Package password hashes and verifies passwords with argon2id and checks
// new passwords against the NIST SP 800-63B rules.
//
// Hash and Verify work on the bytes they are given; callers pass passwords
// through Normalize first.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"github.com/portcullis/portcullis/internal/argon2"
)

// Params are argon2id cost parameters.
type Params struct {
	MemoryKiB   uint32
	Iterations  uint32
	Parallelism uint8
	SaltLen     uint32 // bytes, 16
	KeyLen      uint32 // bytes, 32
}

// OWASP is the OWASP Password Storage Cheat Sheet's argon2id setting: m=19456 KiB, t=2, p=1.
var OWASP = Params{MemoryKiB: 19456, Iterations: 2, Parallelism: 1, SaltLen: 16, KeyLen: 32}

// ErrMalformedHash is returned by Verify for an encoded hash it cannot parse
// or whose parameters are outside the accepted bounds.
var ErrMalformedHash = errors.New("malformed password hash")

// Bounds on the parameters of a hash that Verify accepts, so that a hostile
// stored string cannot make it allocate or compute absurdly. A Hasher's own
// parameters must be within them too (and MemoryKiB at least 8 × Parallelism).
const (
	MaxMemoryKiB   = 4 << 20 // 4 GiB
	MaxIterations  = 100
	MaxParallelism = 64
	minSaltLen     = 8
	maxSaltLen     = 64
	minKeyLen      = 16
	maxKeyLen      = 64
)

var b64 = base64.RawStdEncoding.Strict()

// Hasher hashes and verifies passwords with argon2id at its Params.
type Hasher struct {
	p     Params
	dummy string // hash of no known password, made with p; see VerifyDummy
	// pool computes argon2id at p's memory, iterations and parallelism in working memory it
	// keeps (zeroed after each use): a hash then allocates nothing, so logins neither churn the
	// heap nor drive the garbage collector. Hashes stored with other parameters go through
	// argon2.IDKey, which allocates per call.
	pool *argon2.Pool
}

// NewHasher returns a Hasher using p that keeps working memory for GOMAXPROCS hashes at once.
// Zero fields of p take OWASP's value. NewHasher panics if the result is outside the bounds
// that Verify accepts.
func NewHasher(p Params) *Hasher { return NewHasherFor(p, runtime.GOMAXPROCS(0)) }

// NewHasherFor is NewHasher for a caller that runs at most concurrency hashes at once (a Gate's
// concurrency): it keeps working memory for that many, concurrency × p.MemoryKiB in all.
func NewHasherFor(p Params, concurrency int) *Hasher {
	if p.MemoryKiB == 0 {
		p.MemoryKiB = OWASP.MemoryKiB
	}
	if p.Iterations == 0 {
		p.Iterations = OWASP.Iterations
	}
	if p.Parallelism == 0 {
		p.Parallelism = OWASP.Parallelism
	}
	if p.SaltLen == 0 {
		p.SaltLen = OWASP.SaltLen
	}
	if p.KeyLen == 0 {
		p.KeyLen = OWASP.KeyLen
	}
	if !p.valid() {
		panic(fmt.Sprintf("password: params out of bounds: %+v", p))
	}
	// The dummy's key is random, so no password is known to match it.
	return &Hasher{p: p, dummy: encode(p, randomBytes(p.SaltLen), randomBytes(p.KeyLen)),
		pool: argon2.NewPool(p.Iterations, p.MemoryKiB, p.Parallelism, concurrency)}
}

// Params returns h's parameters.
func (h *Hasher) Params() Params { return h.p }

// Hash returns the PHC string of password, made with h's params and a fresh
// random salt; with OWASP it reads
// $argon2id$v=19$m=19456,t=2,p=1$<b64 salt no padding>$<b64 key no padding>.
func (h *Hasher) Hash(password string) (string, error) {
	salt := make([]byte, h.p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return encode(h.p, salt, h.idKey(password, salt, h.p)), nil
}

// Verify reports whether password matches encoded, comparing in constant time,
// and, when it matches, whether encoded was made with weaker parameters than h's
// (lower m, t, p or key length, or a shorter salt), so the caller re-hashes it.
// A malformed encoded string, or one with parameters outside sane bounds,
// returns ErrMalformedHash.
func (h *Hasher) Verify(password, encoded string) (ok, needsRehash bool, err error) {
	p, salt, key, err := decode(encoded)
	if err != nil {
		return false, false, err
	}
	ok = subtle.ConstantTimeCompare(h.idKey(password, salt, p), key) == 1
	weaker := p.MemoryKiB < h.p.MemoryKiB || p.Iterations < h.p.Iterations ||
		p.Parallelism < h.p.Parallelism || p.KeyLen < h.p.KeyLen || p.SaltLen < h.p.SaltLen
	return ok, ok && weaker, nil
}

// Current reports whether encoded was made with h's memory, iterations and parallelism, the
// parameters that set a hash's time; false for a malformed hash.
func (h *Hasher) Current(encoded string) bool {
	p, _, _, err := decode(encoded)
	return err == nil && h.sameCost(p)
}

// sameCost reports whether p hashes at h's memory, iterations and parallelism.
func (h *Hasher) sameCost(p Params) bool {
	return p.MemoryKiB == h.p.MemoryKiB && p.Iterations == h.p.Iterations && p.Parallelism == h.p.Parallelism
}

// Warm reports whether a hash at h's params now would run in working memory h keeps; a cold
// one (the first, or the first after a pause, see argon2.KeepIdle) takes two to three times as
// long.
func (h *Hasher) Warm() bool { return h.pool.Warm() }

// VerifyDummy spends the same time as Verify on a real hash made with h's params,
// and always returns false. Login calls it for unknown users so that an unknown
// email and a wrong password take the same time.
func (h *Hasher) VerifyDummy(password string) bool {
	_, _, _ = h.Verify(password, h.dummy)
	return false
}

func (h *Hasher) idKey(password string, salt []byte, p Params) []byte {
	if h.sameCost(p) {
		return h.pool.IDKey([]byte(password), salt, p.KeyLen)
	}
	return argon2.IDKey([]byte(password), salt, p.Iterations, p.MemoryKiB, p.Parallelism, p.KeyLen)
}

func (p Params) valid() bool {
	return p.Iterations >= 1 && p.Iterations <= MaxIterations &&
		p.Parallelism >= 1 && p.Parallelism <= MaxParallelism &&
		p.MemoryKiB >= 8*uint32(p.Parallelism) && p.MemoryKiB <= MaxMemoryKiB &&
		p.SaltLen >= minSaltLen && p.SaltLen <= maxSaltLen &&
		p.KeyLen >= minKeyLen && p.KeyLen <= maxKeyLen
}

func encode(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Iterations, p.Parallelism,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// decode parses a PHC argon2id string and checks its parameters are within bounds.
func decode(encoded string) (p Params, salt, key []byte, err error) {
	parts := strings.SplitN(encoded, "$", 7)
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" ||
		parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, ErrMalformedHash
	}
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		return p, nil, nil, ErrMalformedHash
	}
	m, err1 := param(kv[0], "m=", 32)
	t, err2 := param(kv[1], "t=", 32)
	par, err3 := param(kv[2], "p=", 8)
	if err1 != nil || err2 != nil || err3 != nil {
		return p, nil, nil, ErrMalformedHash
	}
	salt, err1 = unb64(parts[4], maxSaltLen)
	key, err2 = unb64(parts[5], maxKeyLen)
	if err1 != nil || err2 != nil {
		return p, nil, nil, ErrMalformedHash
	}
	p = Params{MemoryKiB: uint32(m), Iterations: uint32(t), Parallelism: uint8(par),
		SaltLen: uint32(len(salt)), KeyLen: uint32(len(key))}
	if !p.valid() {
		return Params{}, nil, nil, ErrMalformedHash
	}
	return p, salt, key, nil
}

// param parses "name=<decimal>" with no sign or leading zeros.
func param(s, name string, bits int) (uint64, error) {
	v, ok := strings.CutPrefix(s, name)
	if !ok || v == "" || (len(v) > 1 && v[0] == '0') {
		return 0, ErrMalformedHash
	}
	return strconv.ParseUint(v, 10, bits)
}

// unb64 decodes unpadded standard base64 of at most limit bytes. It checks the
// length first, so nothing large is allocated, and rejects the CR and LF
// that encoding/base64 otherwise skips.
func unb64(s string, limit int) ([]byte, error) {
	if b64.DecodedLen(len(s)) > limit || strings.ContainsAny(s, "\r\n") {
		return nil, ErrMalformedHash
	}
	return b64.DecodeString(s)
}

func randomBytes(n uint32) []byte {
	b := make([]byte, n)
	rand.Read(b) // never returns an error; crashes the program if randomness fails
	return b
}
