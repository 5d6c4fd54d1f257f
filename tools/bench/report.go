package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// machine describes where and on what the run happened.
type machine struct {
	date      time.Time
	commit    string
	cpus      int
	cpuModel  string
	memory    string
	goVersion string
	postgres  string
	redis     string
	// tuning lists the runtime and hashing settings the server inherited from the environment.
	tuning []string
}

// tuningVars are the settings that change the figures without changing the code: Go's runtime
// knobs and the hashing gate's. The server inherits the harness's environment.
var tuningVars = []string{"GOMAXPROCS", "GOGC", "GOMEMLIMIT", "GODEBUG", "PORTCULLIS_HASH_CONCURRENCY", "PORTCULLIS_HASH_QUEUE"}

// tuningOf returns "NAME=value" for each of tuningVars set in environ (the last value of a
// repeated name, as exec keeps), in tuningVars' order.
func tuningOf(environ []string) []string {
	set := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			set[k] = v
		}
	}
	var out []string
	for _, k := range tuningVars {
		if v, ok := set[k]; ok {
			out = append(out, k+"="+v)
		}
	}
	return out
}

func describeMachine(ctx context.Context, o options, db *benchDB) machine {
	m := machine{date: time.Now().UTC(), cpus: runtime.NumCPU(), goVersion: runtime.Version(), cpuModel: "unknown", memory: "unknown", postgres: "unknown", redis: "unknown", tuning: tuningOf(os.Environ())}
	if out, err := exec.Command("git", "-C", o.repo, "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.commit = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "-C", o.repo, "status", "--porcelain").Output(); err == nil && len(st) > 0 {
			m.commit += " (dirty)"
		}
	}
	if v := procField("/proc/cpuinfo", "model name"); v != "" {
		m.cpuModel = v
	}
	if v := procField("/proc/meminfo", "MemTotal"); v != "" {
		if kb, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64); err == nil {
			m.memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	if err := db.maint.QueryRow(ctx, "SHOW server_version").Scan(&m.postgres); err != nil {
		m.postgres = "unknown"
	}
	if v, err := redisVersion(o.redisURL); err == nil {
		m.redis = v
	}
	return m
}

// procField returns the first value of key in a "key : value" file such as /proc/cpuinfo.
func procField(path, key string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// redisVersion asks Redis for INFO server over RESP: no client library for one command.
func redisVersion(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "6379")
	}
	conn, err := net.DialTimeout("tcp", host, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	command := func(args ...string) string {
		s := fmt.Sprintf("*%d\r\n", len(args))
		for _, a := range args {
			s += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
		}
		return s
	}
	req := ""
	if pw, ok := u.User.Password(); ok {
		req += command("AUTH", u.User.Username(), pw)
	}
	if _, err := conn.Write([]byte(req + command("INFO", "server"))); err != nil {
		return "", err
	}
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "redis_version:"); ok {
			return strings.TrimSpace(v), nil
		}
		if strings.HasPrefix(sc.Text(), "-") {
			return "", errors.New(sc.Text())
		}
	}
	return "", errors.New("no redis_version in INFO server")
}

// table renders the run as one Markdown section: the same text goes to stdout and RESULTS.md.
func (res *results) table(o options, m machine) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s, commit %s\n\n", m.date.Format("2006-01-02 15:04 MST"), m.commit)
	fmt.Fprintf(&b, "Machine: %d CPUs (%s), %s RAM; %s; PostgreSQL %s; Redis %s.  \n", m.cpus, m.cpuModel, m.memory, m.goVersion, m.postgres, m.redis)
	fmt.Fprintf(&b, "Run: %v per scenario after %v warm-up (the judged login run: %s of %v after %v warm-up each); %d API users; %s listing users; admin listing at c=%d.\n\n",
		o.duration, o.warmup, plural(o.loginRounds, "round"), o.loginWindow, min(o.warmup, time.Second), o.users, thousands(float64(o.listUsers)), o.adminConns)
	if o.given {
		fmt.Fprintf(&b, "The server was %s (-binary), not built from the commit above.\n\n", o.binary)
	}
	if len(m.tuning) > 0 {
		fmt.Fprintf(&b, "The server ran with %s from the environment (the defaults otherwise).\n\n", strings.Join(m.tuning, ", "))
	}
	if res.before.gomaxprocs > 0 {
		fmt.Fprintf(&b, "The server's GOMAXPROCS: %.0f.\n\n", res.before.gomaxprocs)
	}
	b.WriteString("| scenario | endpoint | c | req/s | p50 | p99 | errors | ratio | CPU server/clients/stores/other/steal | target |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |\n")
	for _, r := range res.rows {
		ratio := "-"
		if r.ratio > 0 {
			ratio = fmt.Sprintf("%.3f", r.ratio)
		}
		target := r.target
		if r.pass != nil {
			target = mark(*r.pass) + ": " + target
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s | %s | %.2f/%.2f/%.2f/%.2f/%.2f | %s |\n",
			r.name, r.endpoint, r.conc, rate(r.rps), ms(r.p50), ms(r.p99), r.errors, ratio, r.cpu.server, r.cpu.clients, r.cpu.stores, r.cpu.other, r.cpu.steal, target)
	}
	b.WriteString("\n")
	// The kernel updates VmHWM lazily, so a sample of VmRSS can exceed it: the target takes the
	// higher of the two.
	since := "during the c=256 run"
	if !res.hwmReset {
		since = "since start (VmHWM could not be reset), seeding's argon2id included"
	}
	if res.rssHWM == 0 && res.rssPeak == 0 {
		b.WriteString("- Peak resident memory: not measured (the c=256 /users/me run was not among the scenarios)\n")
	} else {
		fmt.Fprintf(&b, "- Peak resident memory of the server %s: VmHWM %s (highest VmRSS sampled every 100 ms: %s); target <= %s: **%s**\n",
			since, mb(res.rssHWM), mb(res.rssPeak), mb(targetRSS), mark(max(res.rssHWM, res.rssPeak) <= targetRSS))
	}
	bf, af := res.before, res.after
	fmt.Fprintf(&b, "- Leak check, before the first scenario -> 2 s after the last: goroutines %.0f -> %.0f; pgx pool total %.0f -> %.0f, acquired %.0f -> %.0f (max %.0f); "+
		"server TCP connections to PostgreSQL %d -> %d, to Redis %d -> %d: **%s** (goroutines grew by at most %d, no pool connection left acquired, none outside the pool, Redis connections grew by at most %d)\n",
		bf.goroutines, af.goroutines, bf.poolTotal, af.poolTotal, bf.poolAcquired, af.poolAcquired, af.poolMax,
		bf.pgConns, af.pgConns, bf.redisConns, af.redisConns, mark(res.leakFree()), leakGoroutines, leakRedisConns)
	b.WriteString("- ratio: req/s ÷ the /healthz baseline's for HTTP rows; for login, successful logins/s ÷ raw argon2id verifies/s " +
		"(the server's own password.Hasher.Verify with its parameters on every core, server idle, measured right before and right after each round of the waiting clients' login run and averaged over all rounds; " +
		"x/crypto's argon2.IDKey is measured the same way, the two interleaved so that a drift of the machine's speed cancels, and its rate shown beside; " +
		"the interval is Student's t over the rounds' own ratios). " +
		"errors: non-2xx responses and socket errors; req/s counts 2xx answers only, and a judged row with any error misses its target. CPU: average cores kept busy by the server, by the load generators (wrk or this harness's workers), by the stores (every postgres and redis-server process), which share the machine, and by everything else the machine ran meanwhile (other: its busy time in /proc/stat less the first three, mostly kernel threads); what the four leave of the CPU count was idle. " +
		"steal: cores' worth of time the hypervisor gave to other guests while this machine's CPUs wanted to run (/proc/stat), time none of the four got. " +
		"Targets are reported, never enforced. Before each scenario the harness runs VACUUM (ANALYZE) on the tables logins and refreshes write, as autovacuum would.\n")
	return b.String()
}

// The leak check's allowances: a few goroutines come and go on their own (timers, the metrics
// scrape itself); rueidis may dial a spare connection.
const (
	leakGoroutines = 10
	leakRedisConns = 2
)

// leakFree reports whether the server holds no more after the load than before, beyond the
// pool's idle connections, which it keeps by design.
func (res *results) leakFree() bool {
	bf, af := res.before, res.after
	outsideBefore, outsideAfter := float64(bf.pgConns)-bf.poolTotal, float64(af.pgConns)-af.poolTotal
	return af.goroutines <= bf.goroutines+leakGoroutines &&
		af.poolAcquired == 0 &&
		outsideAfter <= outsideBefore &&
		af.redisConns <= bf.redisConns+leakRedisConns
}

func mark(ok bool) string {
	if ok {
		return "pass"
	}
	return "MISS"
}

func ms(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func mb(bytes int64) string { return fmt.Sprintf("%.1f MB", float64(bytes)/1e6) }

// rate formats a rate: one decimal below 100, whole numbers with separators above.
func rate(n float64) string {
	if n < 100 {
		return fmt.Sprintf("%.1f", n)
	}
	return thousands(n)
}

// thousands formats n rounded, with thousands separators: 1,234,567.
func thousands(n float64) string {
	s := strconv.FormatInt(int64(n+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// record appends the section to RESULTS.md, creating it with a short preamble.
func record(path, section string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	_, err := os.Stat(path)
	fresh := errors.Is(err, os.ErrNotExist)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if fresh {
		_, err = f.WriteString("# Benchmark results\n\n`make bench` (tools/bench) appends one section per run, newest last. " +
			"The figures come from shared development machines and are noisy: compare runs of one machine only.\n")
	}
	if err == nil {
		_, err = f.WriteString("\n" + section)
	}
	return errors.Join(err, f.Close())
}

// plural is n and noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
