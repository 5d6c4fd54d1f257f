package audit_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// Events recorded before the cutoff go, however many there are, and the purge itself is
// recorded with how many it removed and up to when; later events stay; a purge with nothing to
// remove records nothing.
func TestPurgeDeletesEventsBeforeTheCutoffAndRecordsIt(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	pool := testenv.Pool(t, testenv.NewDB(t))
	now := time.Now().UTC().Truncate(time.Second)
	cutoff := now.Add(-30 * 24 * time.Hour)
	const old = 1000 + 5 // more than one DELETE's worth
	if _, err := pool.Exec(ctx, `INSERT INTO audit_events (id, occurred_at, action, outcome, detail)
		SELECT gen_random_uuid(), $1::timestamptz - i * interval '1 second', 'user.login', 'success', '{}' FROM generate_series(1, $2::int) i`,
		cutoff, old); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO audit_events (id, occurred_at, action, outcome, detail)
		VALUES (gen_random_uuid(), $1, 'user.register', 'success', '{}'), (gen_random_uuid(), $2, 'user.login', 'success', '{}')`,
		cutoff.Add(time.Second), now); err != nil {
		t.Fatal(err)
	}

	n, err := audit.Purge(ctx, pool, cutoff)
	if err != nil || n != old {
		t.Fatalf("Purge = %d, %v; want %d, nil", n, err, old)
	}
	var left, before int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE occurred_at < $1) FROM audit_events WHERE action <> 'audit.purge'`, cutoff).Scan(&left, &before); err != nil {
		t.Fatal(err)
	}
	if left != 2 || before != 0 {
		t.Fatalf("after the purge: %d events left, %d of them before the cutoff; want 2 and 0", left, before)
	}
	var detail []byte
	var purges int
	if err := pool.QueryRow(ctx, `SELECT count(*) OVER (), detail FROM audit_events WHERE action = 'audit.purge'`).Scan(&purges, &detail); err != nil {
		t.Fatalf("the purge was not recorded: %v", err)
	}
	var d struct {
		Deleted        int64  `json:"deleted"`
		RecordedBefore string `json:"recorded_before"`
	}
	if err := json.Unmarshal(detail, &d); err != nil || purges != 1 || d.Deleted != old || d.RecordedBefore != cutoff.Format(time.RFC3339) {
		t.Fatalf("purge event: %d of them, detail %s (%v); want one with deleted %d, recorded_before %s", purges, detail, err, old, cutoff.Format(time.RFC3339))
	}

	if n, err := audit.Purge(ctx, pool, cutoff); n != 0 || err != nil {
		t.Fatalf("second Purge = %d, %v; want 0, nil", n, err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE action = 'audit.purge'`).Scan(&purges); err != nil || purges != 1 {
		t.Fatalf("purge events after a purge that removed nothing = %d (%v), want still 1", purges, err)
	}
}

// A DELETE whose reply is lost may have removed its batch: the purge must still leave a record,
// saying its count is unconfirmed, or events would vanish from the trail without a trace.
func TestPurgeWhoseReplyIsLostIsStillRecorded(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	url := testenv.NewDB(t)
	direct := testenv.Pool(t, url)
	proxiedURL, proxy := testenv.BehindProxy(t, url)
	proxied := testenv.Pool(t, proxiedURL)
	cutoff := time.Now().UTC().Truncate(time.Second).Add(-30 * 24 * time.Hour)
	const old = 10
	if _, err := direct.Exec(ctx, `INSERT INTO audit_events (id, occurred_at, action, outcome, detail)
		SELECT gen_random_uuid(), $1::timestamptz - i * interval '1 second', 'user.login', 'success', '{}' FROM generate_series(1, $2::int) i`,
		cutoff, old); err != nil {
		t.Fatal(err)
	}
	// The DELETE's cutoff parameter as pgx sends it: microseconds since 2000-01-01 UTC, binary.
	marker := make([]byte, 8)
	binary.BigEndian.PutUint64(marker, uint64(cutoff.Sub(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).Microseconds()))
	proxy.LoseReplyTo(string(marker))

	n, err := audit.Purge(ctx, proxied, cutoff)
	if err == nil {
		t.Fatalf("Purge with its DELETE's reply lost = %d, nil; want an error", n)
	}
	var left int
	if err := direct.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE action = 'user.login'`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d old events left (%v); the test needs the lost DELETE to have committed", left, err)
	}
	var detail []byte
	if err := direct.QueryRow(ctx, `SELECT detail FROM audit_events WHERE action = 'audit.purge'`).Scan(&detail); err != nil {
		t.Fatalf("a purge whose DELETE's reply was lost removed %d events and left no record: %v", old, err)
	}
	var d struct {
		Deleted      int64 `json:"deleted"`
		CountUnknown bool  `json:"count_unknown"`
	}
	if err := json.Unmarshal(detail, &d); err != nil || d.Deleted != n || !d.CountUnknown {
		t.Fatalf("purge event detail %s (%v); want deleted %d (the confirmed ones) and count_unknown", detail, err, n)
	}
}

// The purge's record says up to when the trail was removed (detail.recorded_before), so it must
// be exactly the cutoff the DELETE used: the run's cutoff (now less the retention) falls within
// a second, and recorded_before, written to the second, said the purge stopped up to a second
// before events it had removed.
func TestPurgeRecordsTheCutoffItDeletedUpTo(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	pool := testenv.Pool(t, testenv.NewDB(t))
	second := time.Now().UTC().Truncate(time.Second).Add(-30 * 24 * time.Hour)
	cutoff := second.Add(700 * time.Millisecond)
	// One event in each part of that second, before the cutoff and after it, and an older one
	// that goes whatever the purge makes of the second.
	for _, at := range []time.Time{second.Add(-5 * time.Second), second.Add(200 * time.Millisecond), second.Add(900 * time.Millisecond)} {
		if _, err := pool.Exec(ctx, `INSERT INTO audit_events (id, occurred_at, action, outcome, detail)
			VALUES (gen_random_uuid(), $1, 'user.login', 'success', '{}')`, at); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := audit.Purge(ctx, pool, cutoff); err != nil {
		t.Fatal(err)
	}
	var detail []byte
	if err := pool.QueryRow(ctx, `SELECT detail FROM audit_events WHERE action = 'audit.purge'`).Scan(&detail); err != nil {
		t.Fatalf("no purge recorded: %v", err)
	}
	var d struct {
		Deleted        int64  `json:"deleted"`
		RecordedBefore string `json:"recorded_before"`
	}
	if err := json.Unmarshal(detail, &d); err != nil {
		t.Fatal(err)
	}
	upTo, err := time.Parse(time.RFC3339Nano, d.RecordedBefore)
	if err != nil {
		t.Fatalf("recorded_before %q: %v", d.RecordedBefore, err)
	}
	// What the record says is gone (everything before upTo) must be what is gone.
	var gone, keptBefore int
	if err := pool.QueryRow(ctx, `SELECT 3 - count(*), count(*) FILTER (WHERE occurred_at < $1) FROM audit_events WHERE action = 'user.login'`, upTo).Scan(&gone, &keptBefore); err != nil {
		t.Fatal(err)
	}
	var goneAfter int64 // the event at .2 s gone while the record says the purge stopped before it
	if gone == 2 && !second.Add(200*time.Millisecond).Before(upTo) {
		goneAfter = 1
	}
	if d.Deleted != int64(gone) || keptBefore != 0 || goneAfter != 0 {
		t.Fatalf("purge recorded deleted %d, recorded_before %s; the trail lost %d events (%d of them at or after that), kept %d before it",
			d.Deleted, d.RecordedBefore, gone, goneAfter, keptBefore)
	}
}
