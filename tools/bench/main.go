// Command bench is `make bench`: it builds and starts `portcullis serve` on a database of its
// own, seeds it, drives every performance scenario of issue 7 with wrk or Go workers, and prints
// one table of req/s, p50, p99 and errors against the targets. Speed never fails it: it exits 1
// only when the harness itself breaks (the server does not start, wrk's output cannot be read,
// a scenario has no successful request).
//
//	go -C tools/bench run .            # the full run; appends the table to bench/RESULTS.md
//	go -C tools/bench run . -smoke     # everything at tiny scale, on a throwaway database
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the command line.
type options struct {
	repo        string
	binary      string
	given       bool // binary came from -binary rather than this working tree
	database    string
	pgURL       string
	redisURL    string
	users       int
	listUsers   int
	duration    time.Duration
	loginRounds int
	loginWindow time.Duration
	warmup      time.Duration
	query       string
	shortQuery  string
	deepPages   int
	adminConns  int
	smoke       bool
	noRecord    bool
	pprof       bool
	profileDir  string
	only        map[string]bool // scenarios to run; empty runs them all
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseFlags() (options, error) {
	var o options
	flag.StringVar(&o.repo, "repo", "", "repository root (default: git's top level of the working directory)")
	flag.StringVar(&o.binary, "binary", "", "a built portcullis binary (default: go build ./cmd/portcullis into a temporary directory)")
	flag.StringVar(&o.database, "database", "portcullis_bench", "bench database, created and migrated by the server; reused by later runs")
	flag.StringVar(&o.pgURL, "pg", envOr("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "PostgreSQL URL of a maintenance database; the bench database lives on the same server")
	flag.StringVar(&o.redisURL, "redis", envOr("REDIS_URL", "redis://127.0.0.1:6379/0"), "Redis URL (the run uses a key prefix of its own)")
	flag.IntVar(&o.users, "users", 64, "users registered and logged in through the API (argon2id each: keep it modest)")
	flag.IntVar(&o.listUsers, "list-users", 1_000_000, "users bulk-inserted in SQL for the admin listing when the database has fewer")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per scenario")
	flag.IntVar(&o.loginRounds, "login-rounds", 8, "rounds of the judged login run, each a login window between raw argon2id measurements")
	flag.DurationVar(&o.loginWindow, "login-window", 4*time.Second, "measured time of each judged login round (each raw argon2id measurement around it takes half)")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before each scenario")
	flag.StringVar(&o.query, "q", "person 4f", "text filter of the admin listing scenarios")
	flag.StringVar(&o.shortQuery, "q-short", "zq", "a text filter too short for pg_trgm of the admin listing's short-filter scenario (the default matches no one: a walk's worst case)")
	flag.IntVar(&o.deepPages, "deep-pages", 40, "how many pages of the text filter to walk for the deep-page scenario")
	flag.IntVar(&o.adminConns, "admin-c", 1, "wrk connections of the admin listing scenarios (a latency target: one operator's requests, one at a time)")
	flag.BoolVar(&o.smoke, "smoke", false, "tiny scale on a throwaway database, no RESULTS.md: proves the harness works")
	flag.BoolVar(&o.noRecord, "no-record", false, "do not append the table to bench/RESULTS.md")
	flag.BoolVar(&o.pprof, "pprof", false, "start the server with its pprof debug listener (PORTCULLIS_DEBUG_ADDR)")
	flag.StringVar(&o.profileDir, "profile", "", "capture a CPU profile (up to 10 s) and a heap profile of the server during each scenario into this directory; implies -pprof")
	only := flag.String("only", "", "comma-separated scenarios to run (bare, baseline, me, login, refresh, admin); the default runs all")
	flag.Parse()
	if flag.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if *only != "" {
		o.only = map[string]bool{}
		for _, name := range strings.Split(*only, ",") {
			if !slices.Contains(scenarioNames, name) {
				return o, fmt.Errorf("-only: unknown scenario %q (want some of %s)", name, strings.Join(scenarioNames, ", "))
			}
			o.only[name] = true
		}
	}
	if o.smoke {
		o.database = fmt.Sprintf("portcullis_bench_smoke_%d", os.Getpid())
		o.users, o.listUsers = 8, 3000
		o.duration, o.warmup, o.loginRounds, o.loginWindow = time.Second, 0, 2, time.Second
		o.query, o.deepPages = "person 4", 2
		o.noRecord = true
	}
	if o.profileDir != "" {
		o.pprof = true
	}
	o.given = o.binary != ""
	if o.users < 1 || o.duration < time.Second || o.loginRounds < 1 || o.loginWindow < time.Second {
		return o, errors.New("-users and -login-rounds must be at least 1, -duration and -login-window at least 1s")
	}
	if o.repo == "" {
		out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
		if err != nil {
			return o, fmt.Errorf("find the repository root (pass -repo): %w", err)
		}
		o.repo = strings.TrimSpace(string(out))
	}
	return o, nil
}

func run() error {
	o, err := parseFlags()
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk is not installed: apt-get install wrk")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	begin := time.Now()

	tmp, err := os.MkdirTemp("", "portcullis-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.binary == "" {
		o.binary = filepath.Join(tmp, "portcullis")
		logf("building %s", o.binary)
		build := exec.CommandContext(ctx, "go", "build", "-o", o.binary, "./cmd/portcullis")
		build.Dir, build.Stdout, build.Stderr = o.repo, os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build portcullis: %w", err)
		}
	}
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
	}

	db, err := openBenchDB(ctx, o)
	if err != nil {
		return err
	}
	defer db.close(o.smoke)

	srv, err := startServer(ctx, o, db, tmp)
	if err != nil {
		return err
	}
	defer srv.stop()

	env, err := seed(ctx, o, db, srv)
	if err != nil {
		return err
	}
	res, err := runScenarios(ctx, o, srv, env)
	if err != nil {
		return err
	}
	if err := srv.stop(); err != nil {
		logf("stopping the server: %v", err)
	}

	info := describeMachine(ctx, o, db)
	table := res.table(o, info)
	fmt.Println()
	fmt.Print(table)
	if !o.noRecord {
		path := filepath.Join(o.repo, "bench", "RESULTS.md")
		if err := record(path, table); err != nil {
			return err
		}
		logf("appended to %s", path)
	}
	if err := res.broken(); err != nil {
		return err
	}
	logf("done in %v", time.Since(begin).Round(time.Second))
	return nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// logf reports progress on stderr, so that stdout holds only the table.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
