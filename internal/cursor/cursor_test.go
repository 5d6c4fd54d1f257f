package cursor

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestRoundTripAndTampering(t *testing.T) {
	p := Position{Sort: "-created_at", Value: "2026-01-02T03:04:05.123456Z", ID: uuid.Must(uuid.NewV7())}
	got, err := Decode(Encode(p), "-created_at")
	if err != nil || got != p {
		t.Fatalf("Decode(Encode(p)) = %+v, %v; want %+v", got, err, p)
	}
	for name, s := range map[string]string{
		"other sort": Encode(p),
		"not base64": "!!!",
		"not json":   "bm90IGpzb24",
		"nil id":     Encode(Position{Sort: "email", Value: "a"}),
		"empty":      "",
	} {
		if _, err := Decode(s, "email"); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Decode error = %v, want ErrInvalid", name, err)
		}
	}
}

func TestTheLongestEmailFitsTheSpecLimit(t *testing.T) {
	email := strings.Repeat("&", 64) + "@" + strings.Repeat("\\", 100) + strings.Repeat("a", 85) + ".example"
	c := Encode(Position{Sort: "-email", Value: email, ID: uuid.Must(uuid.NewV7())})
	if len(c) > 1024 {
		t.Fatalf("cursor of %d characters; the spec allows 1024", len(c))
	}
	if p, err := Decode(c, "-email"); err != nil || p.Value != email {
		t.Fatalf("round trip: %v", err)
	}
}
