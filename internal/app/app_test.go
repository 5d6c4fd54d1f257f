package app

import (
	"testing"

	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/ratelimit"
)

// Only the limit on every request may admit before Redis has recorded: the others guard
// passwords, accounts and tokens, and must stay exact.
func TestOnlyTheFloodLimitIsDeferred(t *testing.T) {
	t.Parallel()
	http, failures, err := ParseLimits(config.Limits{
		IP: "300/1m", LoginIP: "60/1m", LoginAccountFailures: "10/15m", RegisterIP: "20/1h",
		RefreshIP: "120/1m", PasswordIP: "20/1m", PasswordAccount: "5/15m",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !http.IP.Deferred {
		t.Errorf("the per-IP limit on every request = %+v, want Deferred", http.IP)
	}
	for _, lim := range []ratelimit.Limit{http.LoginIP, http.RegisterIP, http.RefreshIP, http.PasswordIP, http.PasswordAccount, failures} {
		if lim.Deferred {
			t.Errorf("limit %s is Deferred, want exact", lim.Name)
		}
	}
}
