package testenv

import (
	"flag"
	"testing"
)

// Under -short (make test-short, which starts no services) the helpers that need PostgreSQL or
// Redis skip the test that calls them instead of failing it. The test turns -short on itself,
// so that make test checks it too.
func TestShortSkipsTestsThatNeedServices(t *testing.T) {
	was := flag.Lookup("test.short").Value.String()
	if err := flag.Set("test.short", "true"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = flag.Set("test.short", was) })
	for name, need := range map[string]func(testing.TB){
		"NewDB":       func(t testing.TB) { NewDB(t) },
		"RedisPrefix": func(t testing.TB) { RedisPrefix(t) },
		"Config":      func(t testing.TB) { Config(t) },
	} {
		var skipped bool
		t.Run(name, func(t *testing.T) {
			defer func() { skipped = t.Skipped() }()
			need(t)
		})
		if !skipped {
			t.Errorf("%s under -short: the test was not skipped", name)
		}
	}
}
