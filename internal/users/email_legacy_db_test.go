package users_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/internal/users"
)

// Addresses registered before domains went through IDNA may hold a spelling that is not the
// normalised one (fullwidth letters, a punycode label), which no migration can map in SQL. Such
// an account still signs in by the address as stored; once an account holds the normalised
// form, every spelling of it signs in there, and a new registration of any spelling of an
// existing address is taken.
func TestAddressesStoredBeforeIDNAAreStillFound(t *testing.T) {
	ctx := context.Background()
	url := testenv.NewDB(t)
	pool := testenv.Pool(t, url)
	svc := cheapService(t, pool)
	const (
		wide = "old@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com" // stored before the fix
		puny = "puny@xn--exmple-cua.de"
	)
	for i, e := range []struct{ email, username string }{{wide, "old_wide"}, {puny, "old_puny"}} {
		if _, err := pool.Exec(ctx, `INSERT INTO users (id, email, username, hashed_password, role, is_active, is_verified, created_at, updated_at)
			VALUES (gen_random_uuid(), $1, $2, 'x', 'user', true, false, $3, $3)`, e.email, e.username, time.Unix(1_700_000_000+int64(i), 0)); err != nil {
			t.Fatal(err)
		}
	}
	find := func(email string) (string, bool) {
		t.Helper()
		a, err := svc.FindAccount(ctx, users.Credentials{Email: email})
		if err != nil {
			t.Fatal(err)
		}
		id, ok := a.UserID()
		if !ok {
			return "", false
		}
		var name string
		if err := pool.QueryRow(ctx, "SELECT username FROM users WHERE id = $1", id).Scan(&name); err != nil {
			t.Fatal(err)
		}
		return name, true
	}
	for email, want := range map[string]string{wide: "old_wide", "OLD@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.COM": "old_wide", puny: "old_puny"} {
		if got, ok := find(email); got != want {
			t.Errorf("FindAccount(%q) = %q, %v; want %q", email, got, ok, want)
		}
	}

	// The normalised form was free: it registers, and from then on every spelling is its.
	u, err := svc.Register(ctx, users.NewUser{Email: "old@example.com", Username: "new_plain", Password: "a long and unusual passphrase"})
	if err != nil {
		t.Fatalf("register the normalised form: %v", err)
	}
	if u.Email != "old@example.com" {
		t.Fatalf("stored %q", u.Email)
	}
	for _, email := range []string{wide, "old@EXAMPLE.com", "old@example.com"} {
		if got, _ := find(email); got != "new_plain" {
			t.Errorf("FindAccount(%q) = %q, want new_plain", email, got)
		}
		if _, err := svc.Register(ctx, users.NewUser{Email: email, Username: "another", Password: "a long and unusual passphrase"}); !errors.Is(err, users.ErrEmailTaken) {
			t.Errorf("register %q: %v, want ErrEmailTaken", email, err)
		}
	}
	if _, ok := find("nobody@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com"); ok {
		t.Error("an unknown address was found")
	}
}
