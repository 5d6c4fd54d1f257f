// End-to-end checks run by scripts in tools/e2e. A module of its own (standard library only), so
// the service's `go test ./...` and the generators' tools/go.mod never build it.
module github.com/portcullis/portcullis/tools/e2e

go 1.26.0
