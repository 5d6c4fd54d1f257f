package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// benchDB is the bench database: its URL for the server, a maintenance connection that holds the
// run's advisory lock, and a pool on the database itself once the server has created it.
type benchDB struct {
	name    string
	url     string
	existed bool
	maint   *pgx.Conn
	pool    *pgxpool.Pool
}

// openBenchDB connects to the maintenance database and, for a reusable database, waits until no
// other bench run uses it: two runs seeding and loading one database would spoil both.
func openBenchDB(ctx context.Context, o options) (*benchDB, error) {
	u, err := url.Parse(o.pgURL)
	if err != nil {
		return nil, fmt.Errorf("-pg: %w", err)
	}
	maint, err := pgx.Connect(ctx, o.pgURL)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL at %s: %w", u.Redacted(), err)
	}
	d := &benchDB{name: o.database, maint: maint}
	if !o.smoke {
		var got bool
		if err := maint.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtext($1))", "portcullis-bench:"+d.name).Scan(&got); err != nil {
			maint.Close(ctx)
			return nil, fmt.Errorf("lock the bench database: %w", err)
		}
		if !got {
			logf("another bench run uses %s: waiting for it", d.name)
			if _, err := maint.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", "portcullis-bench:"+d.name); err != nil {
				maint.Close(ctx)
				return nil, fmt.Errorf("lock the bench database: %w", err)
			}
		}
	}
	if err := maint.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", d.name).Scan(&d.existed); err != nil {
		maint.Close(ctx)
		return nil, fmt.Errorf("look up database %s: %w", d.name, err)
	}
	u.Path = "/" + d.name
	d.url = u.String()
	return d, nil
}

// connect opens the pool on the bench database, which the server creates and migrates.
func (d *benchDB) connect(ctx context.Context) error {
	pool, err := pgxpool.New(ctx, d.url)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", d.name, err)
	}
	d.pool = pool
	return nil
}

// dropSigningKeys removes the signing keys of a reused database before the server starts with a
// fresh random key-encryption key, which could not unseal them. Nothing else depends on them:
// the run logs in again.
func (d *benchDB) dropSigningKeys(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, d.url)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", d.name, err)
	}
	defer conn.Close(ctx)
	var has bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('signing_keys') IS NOT NULL").Scan(&has); err != nil || !has {
		return err
	}
	_, err = conn.Exec(ctx, "DELETE FROM signing_keys")
	return err
}

// churned are the tables every login and refresh writes to.
var churned = []string{"user_sessions", "spent_refresh_tokens", "audit_events"}

// vacuum vacuums and analyses the churned tables, as autovacuum would between the runs that
// reuse the database: without it (autovacuum is off on some CI machines) every run leaves the
// next one more dead rows to wade through, and the refresh figure falls from run to run.
func (d *benchDB) vacuum(ctx context.Context) error {
	if _, err := d.pool.Exec(ctx, "VACUUM (ANALYZE) "+strings.Join(churned, ", ")); err != nil {
		return fmt.Errorf("vacuum %s: %w", strings.Join(churned, ", "), err)
	}
	return nil
}

// close releases the pool and the lock; a smoke database is dropped.
func (d *benchDB) close(drop bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if d.pool != nil {
		d.pool.Close()
	}
	if drop {
		if _, err := d.maint.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{d.name}.Sanitize()+" WITH (FORCE)"); err != nil {
			logf("drop %s: %v", d.name, err)
		}
	}
	d.maint.Close(ctx)
}
