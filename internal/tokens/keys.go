package tokens

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

const algEdDSA = "EdDSA"

// signingKey is a usable key: the private half for signing, the public JWK for verifying.
type signingKey struct {
	kid         string
	private     ed25519.PrivateKey
	public      jwk.Key
	activatesAt time.Time
}

// newStoredKey makes a fresh Ed25519 key, sealed with kek when one is configured. Its kid is
// the RFC 7638 thumbprint of the public key.
func newStoredKey(kek []byte, now, activatesAt time.Time) (*storedKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	kid, err := thumbprint(pub)
	if err != nil {
		return nil, err
	}
	seed := priv.Seed()
	sealed := false
	if kek != nil {
		if seed, err = seal(kek, kid, seed); err != nil {
			return nil, err
		}
		sealed = true
	}
	return &storedKey{Kid: kid, Algorithm: algEdDSA, PrivateKey: seed, Sealed: sealed, CreatedAt: now, ActivatesAt: activatesAt}, nil
}

// open turns a stored key into a usable one, unsealing it with kek.
func (k storedKey) open(kek []byte) (signingKey, error) {
	if k.Algorithm != algEdDSA {
		return signingKey{}, fmt.Errorf("signing key %s: unsupported algorithm %q", k.Kid, k.Algorithm)
	}
	seed := k.PrivateKey
	if k.Sealed {
		if kek == nil {
			return signingKey{}, fmt.Errorf("signing key %s is sealed and PORTCULLIS_KEY_ENCRYPTION_KEY is not set", k.Kid)
		}
		var err error
		if seed, err = unseal(kek, k.Kid, seed); err != nil {
			return signingKey{}, fmt.Errorf("signing key %s: %w", k.Kid, err)
		}
	}
	if len(seed) != ed25519.SeedSize {
		return signingKey{}, fmt.Errorf("signing key %s: bad seed length", k.Kid)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub, err := publicJWK(priv.Public().(ed25519.PublicKey), k.Kid)
	if err != nil {
		return signingKey{}, err
	}
	return signingKey{kid: k.Kid, private: priv, public: pub, activatesAt: k.ActivatesAt}, nil
}

func publicJWK(pub ed25519.PublicKey, kid string) (jwk.Key, error) {
	key, err := jwk.FromRaw(pub)
	if err != nil {
		return nil, fmt.Errorf("public jwk: %w", err)
	}
	for name, v := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: jwa.EdDSA, jwk.KeyUsageKey: "sig"} {
		if err := key.Set(name, v); err != nil {
			return nil, fmt.Errorf("public jwk %s: %w", name, err)
		}
	}
	return key, nil
}

func thumbprint(pub ed25519.PublicKey) (string, error) {
	key, err := jwk.FromRaw(pub)
	if err != nil {
		return "", fmt.Errorf("public jwk: %w", err)
	}
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("thumbprint: %w", err)
	}
	return base64url(tp), nil
}

// seal encrypts plaintext with AES-256-GCM, binding it to kid so sealed keys cannot be swapped.
func seal(kek []byte, kid string, plaintext []byte) ([]byte, error) {
	aead, err := gcm(kek)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plaintext, []byte(kid)), nil
}

func unseal(kek []byte, kid string, sealed []byte) ([]byte, error) {
	aead, err := gcm(kek)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("sealed key too short")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(kid))
	if err != nil {
		return nil, errors.New("cannot unseal: wrong PORTCULLIS_KEY_ENCRYPTION_KEY")
	}
	return plain, nil
}

func gcm(kek []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("key encryption key: %w", err)
	}
	return cipher.NewGCM(block)
}
