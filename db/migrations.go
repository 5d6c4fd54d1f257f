// Package db holds the goose migrations, embedded so that the binary carries its own schema.
package db

import "embed"

// Migrations are the goose SQL migrations, in order, under "migrations".
//
//go:embed migrations/*.sql
var Migrations embed.FS
