package users

import "testing"

func TestEscapeLike(t *testing.T) {
	if got := escapeLike(`100%_\x`); got != `100\%\_\\x` {
		t.Fatalf("escapeLike = %q", got)
	}
}
