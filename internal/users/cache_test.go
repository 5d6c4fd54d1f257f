package users

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestCachedUserRoundTrip(t *testing.T) {
	t.Parallel()
	name := "Ada | King\\n"
	at := time.Date(2026, 11, 26, 9, 30, 1, 123456000, time.UTC)
	for _, u := range []User{
		{ID: uuid.New(), Email: "ada@example.com", Username: "ada", FullName: &name, Role: RoleAdmin, IsActive: true, IsVerified: true, CreatedAt: at, UpdatedAt: at.Add(time.Hour)},
		{ID: uuid.New(), Email: "bob@example.com", Username: "bob", Role: RoleUser, CreatedAt: at, UpdatedAt: at},
		{ID: uuid.New(), Email: "e@example.com", Username: "e", FullName: new(string), Role: RoleModerator, CreatedAt: at, UpdatedAt: at},
	} {
		got, err := decodeUser(encodeUser(u))
		if err != nil {
			t.Fatalf("decodeUser(encodeUser(%+v)) error = %v", u, err)
		}
		if got.ID != u.ID || got.Email != u.Email || got.Username != u.Username || got.Role != u.Role ||
			got.IsActive != u.IsActive || got.IsVerified != u.IsVerified || !got.CreatedAt.Equal(u.CreatedAt) || !got.UpdatedAt.Equal(u.UpdatedAt) ||
			(got.FullName == nil) != (u.FullName == nil) || (u.FullName != nil && *got.FullName != *u.FullName) {
			t.Errorf("round trip of %+v = %+v", u, got)
		}
	}
}

func TestCachedUserRefusesGarbage(t *testing.T) {
	t.Parallel()
	good := encodeUser(User{ID: uuid.New(), Email: "a@example.com", Username: "a", Role: RoleUser})
	for _, raw := range []string{
		"", "stale", "u1", strings.Replace(good, "u1", "u0", 1), good + "\x00extra",
		strings.Replace(good, "\x00-\x00", "\x00\x00", 1), // full name neither null nor set
		strings.Replace(good, "-", "x", 1)[:len(good)-3] + "abc",
	} {
		if u, err := decodeUser(raw); err == nil {
			t.Errorf("decodeUser(%q) = %+v, want an error", raw, u)
		}
	}
}
