package postgres_test

import (
	"io/fs"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/db"
)

// indexedBefore are the migrations that built indexes on tables in service, in their schema
// change's one transaction, before this rule; applied everywhere, they stay as they are.
var indexedBefore = map[string]string{
	"00004_admin_and_audit.sql": "the listing's indexes on users, with the audit table they came with",
}

// A migration runs while instances of the previous version serve. An index built on a table
// they write holds off every write to it until the migration commits (a SHARE lock), so it is
// built CONCURRENTLY, which cannot run in goose's transaction. Tables the migration creates
// itself are empty and unseen: their indexes may be built in the plain way.
func TestMigrationsIndexLiveTablesConcurrently(t *testing.T) {
	files, err := fs.Glob(db.Migrations, "migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations: %v, %v", files, err)
	}
	created := regexp.MustCompile(`(?i)\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)`)
	index := regexp.MustCompile(`(?i)\bCREATE\s+(?:UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?\w*\s*ON\s+(?:ONLY\s+)?(\w+)`)
	for _, file := range files {
		name := path.Base(file)
		if _, ok := indexedBefore[name]; ok {
			continue
		}
		src, err := fs.ReadFile(db.Migrations, file)
		if err != nil {
			t.Fatal(err)
		}
		up, _, _ := strings.Cut(string(src), "-- +goose Down")
		own := map[string]bool{}
		for _, m := range created.FindAllStringSubmatch(up, -1) {
			own[strings.ToLower(m[1])] = true
		}
		noTx := strings.Contains(string(src), "-- +goose NO TRANSACTION")
		for _, m := range index.FindAllStringSubmatch(up, -1) {
			table := strings.ToLower(m[2])
			if own[table] {
				continue
			}
			if m[1] == "" || !noTx {
				t.Errorf("%s builds an index on %s, a table in service, without CONCURRENTLY in a NO TRANSACTION migration: %q", name, table, m[0])
			}
		}
	}
}
