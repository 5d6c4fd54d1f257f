package password

import (
	"crypto/rand"
	"errors"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

// cheap keeps tests fast; only TestOWASP and the benchmark use OWASP.
var cheap = Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}

func TestRoundTrip(t *testing.T) {
	h := NewHasher(cheap)
	enc, err := h.Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	ok, rehash, err := h.Verify("correct horse battery staple", enc)
	if err != nil || !ok || rehash {
		t.Fatalf("Verify(right) = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
	ok, rehash, err = h.Verify("correct horse battery stapler", enc)
	if err != nil || ok || rehash {
		t.Fatalf("Verify(wrong) = %v, %v, %v; want false, false, nil", ok, rehash, err)
	}
	enc2, _ := h.Hash("correct horse battery staple")
	if enc2 == enc {
		t.Fatal("two hashes of one password are equal; salt is not random")
	}
}

func TestPHCFormat(t *testing.T) {
	enc, err := NewHasher(cheap).Hash("hunter2hunter2")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^\$argon2id\$v=19\$m=64,t=1,p=1\$([A-Za-z0-9+/]{22})\$([A-Za-z0-9+/]{43})$`)
	if !re.MatchString(enc) {
		t.Fatalf("Hash = %q, not a PHC argon2id string with 16-byte salt and 32-byte key", enc)
	}
	p, salt, key, err := decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if p != cheap || len(salt) != 16 || len(key) != 32 {
		t.Fatalf("decode = %+v, %d-byte salt, %d-byte key", p, len(salt), len(key))
	}
}

func TestOWASP(t *testing.T) {
	h := NewHasher(OWASP)
	if h.Params() != OWASP {
		t.Fatalf("Params() = %+v, want %+v", h.Params(), OWASP)
	}
	enc, err := h.Hash("Tr0ub4dor&3 but longer")
	if err != nil {
		t.Fatal(err)
	}
	if want := "$argon2id$v=19$m=19456,t=2,p=1$"; !strings.HasPrefix(enc, want) {
		t.Fatalf("Hash = %q, want prefix %q", enc, want)
	}
	ok, rehash, err := h.Verify("Tr0ub4dor&3 but longer", enc)
	if err != nil || !ok || rehash {
		t.Fatalf("Verify = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
}

func TestNeedsRehash(t *testing.T) {
	const pw = "a long enough passphrase"
	strong := NewHasher(Params{MemoryKiB: 128, Iterations: 2, Parallelism: 2, SaltLen: 16, KeyLen: 32})
	weaker := map[string]Params{
		"memory":      {MemoryKiB: 64, Iterations: 2, Parallelism: 2, SaltLen: 16, KeyLen: 32},
		"iterations":  {MemoryKiB: 128, Iterations: 1, Parallelism: 2, SaltLen: 16, KeyLen: 32},
		"parallelism": {MemoryKiB: 128, Iterations: 2, Parallelism: 1, SaltLen: 16, KeyLen: 32},
		"salt":        {MemoryKiB: 128, Iterations: 2, Parallelism: 2, SaltLen: 8, KeyLen: 32},
		"key":         {MemoryKiB: 128, Iterations: 2, Parallelism: 2, SaltLen: 16, KeyLen: 16},
	}
	for name, p := range weaker {
		enc, err := NewHasher(p).Hash(pw)
		if err != nil {
			t.Fatal(err)
		}
		ok, rehash, err := strong.Verify(pw, enc)
		if err != nil || !ok || !rehash {
			t.Errorf("%s: Verify = %v, %v, %v; want true, true, nil", name, ok, rehash, err)
		}
		// A wrong password never asks for a re-hash.
		if ok, rehash, _ := strong.Verify(pw+"x", enc); ok || rehash {
			t.Errorf("%s: Verify(wrong) = %v, %v; want false, false", name, ok, rehash)
		}
		// Current tells hashes of another time cost (salt and key length set none).
		if got, want := strong.Current(enc), name == "salt" || name == "key"; got != want {
			t.Errorf("%s: Current = %v; want %v", name, got, want)
		}
	}
	if same, _ := strong.Hash(pw); !strong.Current(same) || strong.Current("$argon2id$v=19$m=x") {
		t.Error("Current: want true for strong's own hash and false for a malformed one")
	}
	same, _ := strong.Hash(pw)
	if ok, rehash, err := strong.Verify(pw, same); err != nil || !ok || rehash {
		t.Errorf("same params: Verify = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
	// Stronger than h's params is not a reason to re-hash.
	if ok, rehash, err := NewHasher(cheap).Verify(pw, same); err != nil || !ok || rehash {
		t.Errorf("stronger params: Verify = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
}

func TestVerifyMalformed(t *testing.T) {
	const salt, key = "c29tZXNhbHRzb21lc2FsdA", "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"
	hdr := func(alg, v, params string) string { return "$" + alg + "$" + v + "$" + params + "$" }
	good := hdr("argon2id", "v=19", "m=64,t=1,p=1") + salt + "$" + key
	if _, _, err := NewHasher(cheap).Verify("x", good); err != nil {
		t.Fatalf("control %q: %v", good, err)
	}
	cases := map[string]string{
		"empty":          "",
		"dollar only":    "$",
		"wrong alg":      hdr("argon2i", "v=19", "m=64,t=1,p=1") + salt + "$" + key,
		"bcrypt":         "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"wrong version":  hdr("argon2id", "v=16", "m=64,t=1,p=1") + salt + "$" + key,
		"no version":     "$argon2id$m=64,t=1,p=1$" + salt + "$" + key,
		"missing key":    hdr("argon2id", "v=19", "m=64,t=1,p=1") + salt,
		"extra part":     good + "$x",
		"no leading $":   good[1:],
		"bad salt b64":   hdr("argon2id", "v=19", "m=64,t=1,p=1") + "!!!!notbase64!!!!!!!!!" + "$" + key,
		"bad key b64":    hdr("argon2id", "v=19", "m=64,t=1,p=1") + salt + "$" + key[:42] + "*",
		"padded key":     hdr("argon2id", "v=19", "m=64,t=1,p=1") + salt + "$" + key + "=",
		"empty key":      hdr("argon2id", "v=19", "m=64,t=1,p=1") + salt + "$",
		"CR in salt":     hdr("argon2id", "v=19", "m=64,t=1,p=1") + "\r" + salt + "$" + key,
		"LF in key":      hdr("argon2id", "v=19", "m=64,t=1,p=1") + salt + "$" + key[:20] + "\n" + key[20:],
		"short salt":     hdr("argon2id", "v=19", "m=64,t=1,p=1") + "c2FsdA" + "$" + key,
		"huge salt":      hdr("argon2id", "v=19", "m=64,t=1,p=1") + strings.Repeat("A", 1<<20) + "$" + key,
		"huge key":       hdr("argon2id", "v=19", "m=64,t=1,p=1") + salt + "$" + strings.Repeat("A", 1<<20),
		"huge m":         hdr("argon2id", "v=19", "m=4294967295,t=1,p=1") + salt + "$" + key,
		"m over 4 GiB":   hdr("argon2id", "v=19", "m=4194305,t=1,p=1") + salt + "$" + key,
		"m overflows":    hdr("argon2id", "v=19", "m=99999999999,t=1,p=1") + salt + "$" + key,
		"m below 8p":     hdr("argon2id", "v=19", "m=8,t=1,p=2") + salt + "$" + key,
		"t=0":            hdr("argon2id", "v=19", "m=64,t=0,p=1") + salt + "$" + key,
		"t=101":          hdr("argon2id", "v=19", "m=64,t=101,p=1") + salt + "$" + key,
		"p=0":            hdr("argon2id", "v=19", "m=64,t=1,p=0") + salt + "$" + key,
		"p=65":           hdr("argon2id", "v=19", "m=1024,t=1,p=65") + salt + "$" + key,
		"p=256":          hdr("argon2id", "v=19", "m=4096,t=1,p=256") + salt + "$" + key,
		"negative t":     hdr("argon2id", "v=19", "m=64,t=-1,p=1") + salt + "$" + key,
		"plus sign":      hdr("argon2id", "v=19", "m=+64,t=1,p=1") + salt + "$" + key,
		"leading zero":   hdr("argon2id", "v=19", "m=064,t=1,p=1") + salt + "$" + key,
		"params order":   hdr("argon2id", "v=19", "t=1,m=64,p=1") + salt + "$" + key,
		"missing param":  hdr("argon2id", "v=19", "m=64,t=1") + salt + "$" + key,
		"extra param":    hdr("argon2id", "v=19", "m=64,t=1,p=1,x=1") + salt + "$" + key,
		"empty value":    hdr("argon2id", "v=19", "m=,t=1,p=1") + salt + "$" + key,
		"missing params": "$argon2id$v=19$" + salt + "$" + key,
	}
	h := NewHasher(cheap)
	for name, enc := range cases {
		ok, rehash, err := h.Verify("password", enc)
		if !errors.Is(err, ErrMalformedHash) || ok || rehash {
			t.Errorf("%s: Verify = %v, %v, %v; want false, false, ErrMalformedHash", name, ok, rehash, err)
		}
	}
}

func TestVerifyDummy(t *testing.T) {
	h := NewHasher(cheap)
	if h.VerifyDummy("anything at all") || h.VerifyDummy("") {
		t.Fatal("VerifyDummy returned true")
	}
	// The dummy must cost what a real hash at h's params costs.
	if p, _, _, err := decode(h.dummy); err != nil || p != h.Params() {
		t.Fatalf("dummy hash %q decodes to %+v, %v; want %+v", h.dummy, p, err, h.Params())
	}
}

func TestNewHasherDefaults(t *testing.T) {
	if got := NewHasher(Params{}).Params(); got != OWASP {
		t.Errorf("NewHasher(Params{}).Params() = %+v, want OWASP", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("NewHasher with t=1000 did not panic")
		}
	}()
	NewHasher(Params{Iterations: 1000})
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name, pw string
		want     error
	}{
		{"7 chars", "k7#Qm2!", ErrTooShort},
		{"8 chars", "k7#Qm2!x", nil},
		{"empty", "", ErrTooShort},
		{"128 chars", strings.Repeat("Zq9!", 32), nil},
		{"129 chars", strings.Repeat("Zq9!", 32) + "a", ErrTooLong},
		{"8 x é", strings.Repeat("é", 8), nil},
		{"7 x € (21 bytes)", strings.Repeat("€", 7), ErrTooShort},
		{"7 x e+combining acute composes to 7", strings.Repeat("e\u0301", 7), ErrTooShort},
		{"4 x ﬁ ligature expands to 8", strings.Repeat("ﬁ", 4), nil},
		{"128 x € (384 bytes)", strings.Repeat("€", 128), nil},
		{"common", "password123", ErrCommon},
		{"common mixed case", "PassWord123", ErrCommon},
		{"common iloveyou1", "ILoveYou1", ErrCommon},
		{"common fullwidth", "ｐａｓｓｗｏｒｄ１２３", ErrCommon},
		{"strong phrase", "violet tractor sings 47 quiet anthems", nil},
	}
	for _, c := range cases {
		if got := Check(c.pw); got != c.want {
			t.Errorf("%s: Check(%q) = %v, want %v", c.name, c.pw, got, c.want)
		}
	}
}

func TestNormalize(t *testing.T) {
	if got, want := Normalize("e\u0301ﬁ"), "\u00e9fi"; got != want {
		t.Errorf("Normalize = %q, want %q", got, want)
	}
}

func TestCommonList(t *testing.T) {
	if n := CommonCount(); n < 10000 {
		t.Fatalf("CommonCount() = %d, want >= 10000", n)
	}
	for _, l := range strings.Split(strings.TrimSpace(commonText), "\n") {
		if l == "" || l != strings.ToLower(Normalize(l)) {
			t.Fatalf("list entry %q is not lowercase NFKC", l)
		}
	}
}

func BenchmarkVerifyOWASP(b *testing.B) {
	h := NewHasher(OWASP)
	enc, err := h.Hash("benchmark password")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		h.Verify("benchmark password", enc)
	}
}

// A hash stored with other parameters than the Hasher's still verifies (through x/crypto), and
// a hash made by x/crypto with the Hasher's own parameters verifies through the pool.
func TestVerifyAcrossImplementations(t *testing.T) {
	h := NewHasher(cheap)
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	other := Params{MemoryKiB: 128, Iterations: 2, Parallelism: 2, SaltLen: 16, KeyLen: 32}
	for _, p := range []Params{cheap, other} {
		enc := encode(p, salt, argon2.IDKey([]byte("pw"), salt, p.Iterations, p.MemoryKiB, p.Parallelism, p.KeyLen))
		if ok, _, err := h.Verify("pw", enc); !ok || err != nil {
			t.Errorf("%s: Verify(right) = %v, %v; want true, nil", enc, ok, err)
		}
		if ok, _, _ := h.Verify("pW", enc); ok {
			t.Errorf("%s: Verify(wrong) = true", enc)
		}
	}
}

func FuzzVerifyMalformed(f *testing.F) {
	h := NewHasher(cheap)
	// A fixed salt keeps good the same in every fuzzing worker process.
	salt := []byte("fixed salt 16 by")
	good := encode(cheap, salt, h.idKey("password", salt, cheap))
	for _, s := range []string{
		good, "", "$", "$argon2id$v=19$m=64,t=1,p=1$$",
		"$argon2id$v=19$m=4294967295,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U",
		"$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, enc string) {
		// Valid strings may ask for up to 4 GiB and 100 passes, which Verify
		// accepts but is too slow for fuzzing; skip all but cheap ones.
		p, _, _, err := decode(enc)
		if err == nil && (p.MemoryKiB > 1024 || p.Iterations > 2 || p.Parallelism > 4) {
			return
		}
		ok, rehash, err := h.Verify("password", enc)
		if err != nil && !errors.Is(err, ErrMalformedHash) {
			t.Fatalf("Verify(%q) error %v is not ErrMalformedHash", enc, err)
		}
		if err != nil && (ok || rehash) || ok && enc != good {
			t.Fatalf("Verify(%q) = %v, %v, %v", enc, ok, rehash, err)
		}
	})
}
