package postgres_test

import (
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/portcullis/portcullis/internal/postgres"
)

func TestInIDOrder(t *testing.T) {
	low, high := uuid.MustParse("00000000-0000-7000-8000-000000000001"), uuid.MustParse("00000000-0000-7000-8000-000000000002")
	for _, tt := range []struct {
		a, b uuid.UUID
		want string
	}{{low, high, "ab"}, {high, low, "ba"}, {low, low, "ab"}} {
		var got string
		err := postgres.InIDOrder(tt.a, tt.b, func() error { got += "a"; return nil }, func() error { got += "b"; return nil })
		if err != nil || got != tt.want {
			t.Errorf("InIDOrder(%s, %s) ran %q (%v), want %q", tt.a, tt.b, got, err, tt.want)
		}
	}
	stop := errors.New("stop")
	var ran bool
	if err := postgres.InIDOrder(low, high, func() error { return stop }, func() error { ran = true; return nil }); err != stop || ran {
		t.Errorf("after the first lock failed: %v, second ran %v", err, ran)
	}
}
