package apperr

import (
	"errors"
	"fmt"
	"testing"
)

func TestDerivedErrorsMatchTheirSentinel(t *testing.T) {
	sentinel := New(Conflict, "email-taken", "email is already registered")
	other := New(Conflict, "username-taken", "username is already taken")
	derived := fmt.Errorf("register: %w", sentinel.WithField("email", "in use").Wrap(errors.New("pg: 23505")))

	if !errors.Is(derived, sentinel) {
		t.Fatal("derived error does not match its sentinel")
	}
	if errors.Is(derived, other) {
		t.Fatal("derived error matches another code")
	}
	e, ok := As(derived)
	if !ok || len(e.Fields) != 1 || e.Fields[0].Field != "email" {
		t.Fatalf("As() = %+v, %v; want the email field", e, ok)
	}
	if len(sentinel.Fields) != 0 {
		t.Fatal("WithField changed the sentinel")
	}
}
