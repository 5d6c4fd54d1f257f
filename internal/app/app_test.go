package app

import (
	"log/slog"
	"strings"
	"testing"
	"time"

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

// With Redis unreachable, an account's failed-login budget is replayed from the wrong passwords
// audited over the last two failure periods (auth.Service.sharedBudget). An audit retention
// shorter than that purges failures the replay still needs, and buys guesses back: such a
// configuration is refused before anything starts.
func TestAuditRetentionMustCoverTheFailureReplay(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Postgres.URL = "postgres://postgres@127.0.0.1:1/none?connect_timeout=1" // never reached
	cfg.AuditRetention = 24 * time.Hour
	cfg.Limits.LoginAccountFailures = "10/13h"
	a, err := New(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		a.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "PORTCULLIS_AUDIT_RETENTION") {
		t.Fatalf("New() with a 24h audit retention and failures counted over 13h: error %v, want one naming PORTCULLIS_AUDIT_RETENTION", err)
	}
}
