package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The targets of issue 7.
const (
	targetRSS        = 150_000_000 // bytes of peak resident memory at c=256
	targetRefreshRPS = 2500
	targetLoginRatio = 0.90 // successful logins/s ÷ raw argon2id verifies/s
	targetAdminP99   = 20 * time.Millisecond
	targetMeRPS      = 20_000
	targetMeP99      = 10 * time.Millisecond
)

// row is one line of the table.
type row struct {
	name, endpoint string
	conc           int
	ok             int64 // successful requests; 0 means the harness is broken
	failed         int64 // requests that got an error (non-2xx, socket error, 503): a judged row with any fails
	rps            float64
	p50, p99       time.Duration // 0: not measured
	errors         string
	cpu            cpuUse
	ratio          float64 // 0: none
	target         string
	pass           *bool  // nil: no target
	limiter        string // what decided the per-IP limit's checks during the run (decisionShares)
}

// decisionShares says what decided limit's checks between two scrapes of the server's metrics
// (portcullis_ratelimit_decisions_total), as shares: "credit 64.0%, redis 36.0%". It is empty
// when the limit made no decision.
func decisionShares(before, after map[string]float64, limit string) string {
	by := map[string]float64{}
	var total float64
	suffix := `,limit="` + limit + `"}`
	for k, v := range after {
		rest, ok := strings.CutPrefix(k, "portcullis_ratelimit_decisions_total{")
		if !ok || !strings.HasSuffix(rest, suffix) {
			continue
		}
		_, decider, ok := strings.Cut(rest, `decided_by="`)
		if !ok {
			continue
		}
		decider, _, _ = strings.Cut(decider, `"`)
		n := v - before[k]
		by[decider] += n
		total += n
	}
	if total == 0 {
		return ""
	}
	names := slices.Sorted(maps.Keys(by))
	slices.SortStableFunc(names, func(a, b string) int { return cmp.Compare(by[b], by[a]) })
	parts := make([]string, 0, len(names))
	for _, n := range names {
		if by[n] > 0 {
			parts = append(parts, fmt.Sprintf("%s %.1f%%", n, 100*by[n]/total))
		}
	}
	return strings.Join(parts, ", ")
}

// results are the whole run's measurements.
type results struct {
	rows          []row
	rssHWM        int64 // VmHWM after the c=256 scenario
	hwmReset      bool  // whether VmHWM was reset before it (else it is the peak since start)
	rssPeak       int64 // highest VmRSS sampled during it
	before, after snapshot
	argon         argon2Params
	problems      []string // harness failures
}

// runner drives the scenarios against one server and collects their rows.
type runner struct {
	o       options
	srv     *server
	e       *env
	res     *results
	baseRPS float64 // the /healthz baseline's, for the ratio of every HTTP row
	bareRPS float64 // net/http without middleware: the machine's ceiling
}

// scenarioNames name runScenarios' scenarios, in the order they run, for -only.
var scenarioNames = []string{"bare", "baseline", "me", "login", "refresh", "admin"}

func runScenarios(ctx context.Context, o options, srv *server, e *env) (*results, error) {
	r := &runner{o: o, srv: srv, e: e, res: &results{argon: serverArgon2Params()}}
	pgPort, redisPort, err := ports(o)
	if err != nil {
		return nil, err
	}
	if r.res.before, err = srv.snapshot(ctx, pgPort, redisPort); err != nil {
		return nil, fmt.Errorf("leak check before the load: %w", err)
	}
	// Login runs before refresh: a refresh burst leaves PostgreSQL with WAL to write and dead
	// rows to vacuum, which would tax the login run but not the raw argon2id run after it.
	for i, scenario := range []func(context.Context) error{r.bare, r.baseline, r.me, r.login, r.refresh, r.admin} {
		if len(o.only) > 0 && !o.only[scenarioNames[i]] {
			continue
		}
		if err := e.db.vacuum(ctx); err != nil {
			return nil, err
		}
		if err := scenario(ctx); err != nil {
			return nil, err
		}
	}
	// Leak check: the load is over and the clients' connections are closed; give the server a
	// moment to notice.
	e.http.CloseIdleConnections()
	time.Sleep(2 * time.Second)
	if r.res.after, err = srv.snapshot(ctx, pgPort, redisPort); err != nil {
		return nil, fmt.Errorf("leak check after the load: %w", err)
	}
	return r.res, nil
}

// wrk runs job after the warm-up and returns its row, profiled when asked.
func (r *runner) wrk(ctx context.Context, name, endpoint string, job wrkJob) (row, error) {
	logf("scenario %s: %s at c=%d", name, endpoint, job.conns)
	if warmup := max(r.o.warmup, job.warmup); warmup > 0 {
		st, err := job.run(ctx, r.srv.url, warmup)
		if err != nil {
			return row{}, err
		}
		if job.walk {
			// Two threads take every other address: each sent about half the requests.
			job.from = st.requests / int64(max(job.threads, 1))
		}
	}
	before, _ := scrape(ctx, r.srv.metricsURL) // best effort: the limiter's decisions
	finish := r.srv.profile(r.o.profileDir, name, r.o.duration)
	cpu := startCPU(r.srv.pid())
	st, err := job.run(ctx, r.srv.url, r.o.duration)
	use := cpu.cores(st.cpu)
	finish()
	if err != nil {
		return row{}, err
	}
	after, _ := scrape(ctx, r.srv.metricsURL)
	rps := st.successRate()
	out := row{name: name, endpoint: endpoint, conc: job.conns, ok: st.requests - st.non2xx, failed: st.non2xx + st.socketErrors, rps: rps, p50: st.p50, p99: st.p99,
		errors: strconv.FormatInt(st.non2xx+st.socketErrors, 10), ratio: r.httpRatio(rps), cpu: use, limiter: decisionShares(before, after, "ip")}
	if st.socketErrors > 0 {
		out.errors = fmt.Sprintf("%d (non-2xx %d, socket %d)", st.non2xx+st.socketErrors, st.non2xx, st.socketErrors)
	}
	return out, nil
}

// loop runs workers closed-loop for the scenario's duration after its warm-up and returns the
// measured run's outcomes and CPU use, profiled when asked.
func (r *runner) loop(ctx context.Context, name string, workers int, do func(worker int) (int, time.Duration)) (st loopStats, use cpuUse, err error) {
	return r.loopFor(ctx, name, workers, r.o.warmup, r.o.duration, do)
}

// loopFor is loop with its own warm-up and measured time.
func (r *runner) loopFor(ctx context.Context, name string, workers int, warmup, d time.Duration, do func(worker int) (int, time.Duration)) (st loopStats, use cpuUse, err error) {
	if warmup > 0 {
		drive(ctx, workers, warmup, do)
	}
	finish := r.srv.profile(r.o.profileDir, name, d)
	cpu := startCPU(r.srv.pid())
	st = drive(ctx, workers, d, do)
	use = cpu.cores(0)
	finish()
	return st, use, ctx.Err()
}

func (r *runner) httpRatio(rps float64) float64 {
	if r.baseRPS == 0 {
		return 0
	}
	return rps / r.baseRPS
}

// bare is the machine's ceiling for any Go HTTP service: net/http with one handler and no
// middleware, in this process, driven exactly like the baseline. The absolute targets
// were set on a machine where this did ~67,000 req/s; its row says what this one does.
func (r *runner) bare(ctx context.Context) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	url := "http://" + ln.Addr().String()
	job := wrkJob{path: "/", threads: 2, conns: 32}
	logf("scenario bare: net/http without middleware at c=%d", job.conns)
	if r.o.warmup > 0 {
		if _, err := job.run(ctx, url, r.o.warmup); err != nil {
			return err
		}
	}
	cpu := startCPU(os.Getpid())
	st, err := job.run(ctx, url, r.o.duration)
	use := cpu.cores(st.cpu)
	if err != nil {
		return err
	}
	r.bareRPS = st.successRate()
	r.res.add(row{name: "bare", endpoint: "GET / (net/http, no middleware, not Portcullis)", conc: job.conns, ok: st.requests - st.non2xx,
		failed: st.non2xx + st.socketErrors, rps: r.bareRPS, p50: st.p50, p99: st.p99, errors: strconv.FormatInt(st.non2xx+st.socketErrors, 10), cpu: use})
	return nil
}

// baseline is the bare route of the same server.
func (r *runner) baseline(ctx context.Context) error {
	base, err := r.wrk(ctx, "baseline", "GET /healthz", wrkJob{path: "/healthz", threads: 2, conns: 32})
	if err != nil {
		return err
	}
	base.ratio, r.baseRPS = 1, base.rps
	r.res.add(base)
	if n := len(r.res.rows); n > 1 && r.res.rows[n-2].name == "bare" {
		r.res.rows[n-2].ratio = r.bareRPS / r.baseRPS
	}
	return nil
}

// me is GET /users/me at 32 and at 256 connections, each request with the next seeded user's
// token, and the server's peak memory during the second.
func (r *runner) me(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "portcullis-bench-wrk-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tokens := make([]string, len(r.e.accounts))
	for i, a := range r.e.accounts {
		tokens[i] = a.access
	}
	script, err := tokenScript(dir, tokens, 0)
	if err != nil {
		return err
	}
	ipsScript, err := tokenScript(dir, tokens, clientIPs)
	if err != nil {
		return err
	}
	job := wrkJob{path: "/api/v1/users/me", threads: 2, conns: 32, script: script}
	row32, err := r.wrk(ctx, "me", "GET /api/v1/users/me", job)
	if err != nil {
		return err
	}
	target := fmt.Sprintf(">= %d req/s, p99 <= %v", targetMeRPS, targetMeP99)
	if r.bareRPS > 0 {
		target += fmt.Sprintf(" (bare net/http here: %.2f of it)", row32.rps/r.bareRPS)
	}
	r.res.add(judged(row32, target+limiterNote(row32), row32.rps >= targetMeRPS && row32.p99 <= targetMeP99))

	job.conns = 256
	pid := r.srv.pid()
	// Reset VmHWM to the current RSS, so that it is this scenario's peak rather than seeding's
	// (argon2id's memory); without the reset it is the peak since start and says so.
	r.res.hwmReset = resetHWM(pid)
	stopSampling := r.res.sampleRSS(pid)
	row256, err := r.wrk(ctx, "me-256", "GET /api/v1/users/me", job)
	stopSampling()
	if err != nil {
		return err
	}
	row256.target = "peak RSS: see below"
	r.res.add(row256)
	if r.res.rssHWM, _, err = memory(pid); err != nil {
		return err
	}

	// The rows above come from one address: one raised per-IP bucket, always in this instance's
	// memory. Real clients are many addresses, each a bucket of its own, first seen (and checked
	// in Redis before it is admitted) once in a while. This row is that traffic, through a
	// trusted proxy.
	job.conns, job.script, job.walk = 32, ipsScript, true
	// The warm-up sends every address once or more (twice as long as the one-address row's rate
	// would take: this row is slower): a client that recurs every few seconds has been seen
	// before, and its first
	// request, which waits for Redis, is an artifact of every client starting at once. The row
	// shows what decided the limit (all "credit" once every address came).
	if r.o.warmup > 0 && row32.rps > 0 {
		job.warmup = time.Duration(2 * clientIPs / row32.rps * float64(time.Second))
	}
	rowIPs, err := r.wrk(ctx, "me-ips", fmt.Sprintf("GET /api/v1/users/me from %s client addresses (X-Forwarded-For)", thousands(clientIPs)), job)
	if err != nil {
		return err
	}
	if r.bareRPS > 0 {
		target = fmt.Sprintf(">= %d req/s, p99 <= %v (bare net/http here: %.2f of it)", targetMeRPS, targetMeP99, rowIPs.rps/r.bareRPS)
	}
	r.res.add(judged(rowIPs, target+limiterNote(rowIPs), rowIPs.rps >= targetMeRPS && rowIPs.p99 <= targetMeP99))
	return nil
}

// refresh is POST /auth/refresh, each worker following its own session's token chain.
func (r *runner) refresh(ctx context.Context) error {
	logf("scenario refresh: POST /api/v1/auth/refresh at c=%d", refreshWorkers)
	rf := newRefresher(r.e)
	st, use, err := r.loop(ctx, "refresh", refreshWorkers, func(w int) (int, time.Duration) { return rf.do(ctx, w), 0 })
	if err != nil {
		return err
	}
	out := loopRow("refresh", "POST /api/v1/auth/refresh", refreshWorkers, st, st.okLat)
	out.cpu, out.ratio, out.failed = use, r.httpRatio(out.rps), st.shed+st.other
	out.errors = fmt.Sprintf("%d (503 %d; chains restarted, warm-up included: %d)", st.shed+st.other, st.shed, rf.broken.Load())
	r.res.add(judged(out, fmt.Sprintf(">= %d req/s", targetRefreshRPS), out.rps >= targetRefreshRPS))
	return nil
}

// login is POST /auth/login of the seeded users: by clients that wait out a 503's Retry-After
// as the SDKs do (the ratio target), then by a flood that never waits (the 503s must stay fast,
// and memory bounded). The judged ratio's baseline is the machine's raw argon2id rate with the
// server idle, through the server's own hashing code; x/crypto's argon2.IDKey is measured beside
// it for comparison.
func (r *runner) login(ctx context.Context) error {
	a := r.res.argon
	verify, xcrypto, err := rawVerifiers(a)
	if err != nil {
		return err
	}
	window := r.o.loginWindow
	measure := func(verify func()) raw {
		cpu := startCPU(r.srv.pid())
		rate, n := argon2Rate(verify, window/2)
		return raw{rate, n, cpu.cores(0)}
	}
	logf("raw argon2id: m=%d t=%d p=%d on %d goroutines", a.memoryKiB, a.iterations, a.parallelism, runtime.NumCPU())

	// The waiting clients' run is judged over rounds, because these shared VMs' speed moves by
	// up to ±25% from one second to the next: one run against a raw rate measured before or
	// after it measures the machine as much as the server. Each round measures the raw rates
	// right before and right after its login window, the server idle, in the order A B (login)
	// B A, so that a linear drift cancels; the round's ratio is its logins/s over the mean of its
	// two own-code rates. The judged ratio is all rounds' logins/s over the mean of all their raw
	// rates, and the spread of the round ratios gives it a confidence interval, so a reader sees
	// how far one run can be trusted.
	var (
		waiting    loopStats
		waitingCPU cpuUse
		own, xc    raw // summed over every measurement, averaged after
		ratios     []float64
		counters   = make([]int, loginWorkers)
		rounds     = r.o.loginRounds
		warmup     = min(r.o.warmup, time.Second) // the gate fills in well under a second
	)
	hashesBefore := r.hashTime(ctx)
	for round := range rounds {
		ownA, xcA := measure(verify), measure(xcrypto)
		logf("scenario login (round %d of %d): POST /api/v1/auth/login at c=%d for %s", round+1, rounds, loginWorkers, window)
		st, use, err := r.loopFor(ctx, "login", loginWorkers, warmup, window, func(w int) (int, time.Duration) {
			return loginOnce(ctx, r.e, w, &counters[w], true)
		})
		if err != nil {
			return err
		}
		xcB, ownB := measure(xcrypto), measure(verify)
		rps := float64(st.ok) / st.elapsed.Seconds()
		ratios = append(ratios, rps/((ownA.rate+ownB.rate)/2))
		logf("  raw %.1f/s before, %.1f/s after; logins %.1f/s: %.3f (steal %.2f cores)", ownA.rate, ownB.rate, rps, ratios[round], use.steal)
		waiting.merge(st)
		waitingCPU = waitingCPU.plus(use)
		own, xc = own.add(ownA).add(ownB), xc.add(xcA).add(xcB)
	}
	own, xc = own.mean(2*rounds), xc.mean(2*rounds)
	waitingCPU = waitingCPU.scaled(1 / float64(rounds))
	var perHash float64 // mean seconds of one hash inside the server during the login rounds
	if after := r.hashTime(ctx); hashesBefore.n >= 0 && after.n > hashesBefore.n {
		perHash = (after.seconds - hashesBefore.seconds) / (after.n - hashesBefore.n)
	}

	logf("scenario login-flood: POST /api/v1/auth/login at c=%d", loginWorkers)
	pid := r.srv.pid()
	hwmReset := resetHWM(pid)
	flood, floodCPU, err := r.loop(ctx, "login-flood", loginWorkers, func(w int) (int, time.Duration) {
		return loginOnce(ctx, r.e, w, &counters[w], false)
	})
	if err != nil {
		return err
	}
	var floodHWM int64
	if hwmReset {
		floodHWM, _, _ = memory(pid)
	}

	ok, shed := loginRows("login", "clients wait out Retry-After", waiting, waitingCPU, own.rate)
	detail := fmt.Sprintf("%.4f", ok.ratio)
	if rounds > 1 {
		lo, hi := confidence95(ratios)
		detail += fmt.Sprintf(" over %d rounds of %s, 95%% CI of the round ratios' mean %.3f-%.3f; rounds %s", rounds, window, lo, hi, formatRatios(ratios))
	}
	detail += fmt.Sprintf("; %.2f of x/crypto's rate", ok.rps/xc.rate)
	if perHash > 0 {
		// Each raw goroutine hashes back to back, so its time per hash is cores ÷ rate.
		detail += fmt.Sprintf("; a hash %.1f ms in the server, %.1f ms raw", perHash*1e3, float64(runtime.NumCPU())/own.rate*1e3)
	}
	r.res.add(judged(ok, fmt.Sprintf("ratio >= %.2f (%s)", targetLoginRatio, detail), ok.ratio >= targetLoginRatio))
	r.res.rows = append(r.res.rows, shed) // not add: zero 503s is fine

	fl, flShed := loginRows("login-flood", "clients never wait", flood, floodCPU, own.rate)
	if floodHWM > 0 {
		fl.target = fmt.Sprintf("peak RSS %.1f MB", float64(floodHWM)/1e6)
	}
	r.res.add(fl)
	r.res.rows = append(r.res.rows, flShed)

	params := fmt.Sprintf("m=%d t=%d p=%d", a.memoryKiB, a.iterations, a.parallelism)
	r.res.add(row{name: "argon2id-raw", endpoint: "password.Hasher.Verify " + params + " (the server's code: pooled memory)",
		conc: runtime.NumCPU(), ok: own.n, rps: own.rate, errors: "-", ratio: 1, cpu: own.cpu})
	r.res.add(row{name: "argon2id-xcrypto", endpoint: "x/crypto argon2.IDKey " + params + " (allocates its memory per call)",
		conc: runtime.NumCPU(), ok: xc.n, rps: xc.rate, errors: "-", ratio: xc.rate / own.rate, cpu: xc.cpu})
	return nil
}

// raw is a raw argon2id measurement: its rate, its verifies and the CPU it used.
type raw struct {
	rate float64
	n    int64
	cpu  cpuUse
}

// add sums b into a; mean turns a sum of k measurements into their mean rate and CPU, keeping
// the total of verifies.
func (a raw) add(b raw) raw { return raw{a.rate + b.rate, a.n + b.n, a.cpu.plus(b.cpu)} }

func (a raw) mean(k int) raw {
	return raw{a.rate / float64(k), a.n, a.cpu.scaled(1 / float64(k))}
}

// mean is the arithmetic mean of xs (at least one).
func mean(xs []float64) float64 {
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// confidence95 is the 95% confidence interval of the mean of xs (at least two), by Student's t.
func confidence95(xs []float64) (lo, hi float64) {
	n, m := float64(len(xs)), mean(xs)
	var sq float64
	for _, x := range xs {
		sq += (x - m) * (x - m)
	}
	half := studentT975(len(xs)-1) * math.Sqrt(sq/(n-1)/n)
	return m - half, m + half
}

// studentT975 is the 0.975 quantile of Student's t with df degrees of freedom (df >= 1); past
// the table, the quantile at its nearest tabled df below, which errs wide.
func studentT975(df int) float64 {
	table := []float64{12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
		2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
		2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042}
	switch {
	case df <= len(table):
		return table[max(df, 1)-1]
	case df < 60:
		return 2.042 // df 30
	case df < 120:
		return 2.000 // df 60
	}
	return 1.980 // df 120
}

func formatRatios(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprintf("%.3f", x)
	}
	return strings.Join(s, " ")
}

// loginRows are a login run's rows: its 200s, with their ratio to the raw argon2id rate, and
// its 503s.
func loginRows(name, clients string, st loopStats, cpu cpuUse, rawRate float64) (ok, shed row) {
	ok = loopRow(name, "POST /api/v1/auth/login -> 200 ("+clients+")", loginWorkers, st, st.okLat)
	ok.errors = fmt.Sprintf("%d (503s: next row)", st.other)
	ok.ratio, ok.cpu = ok.rps/rawRate, cpu
	shed = loopRow(name+"-503", "POST /api/v1/auth/login -> 503", loginWorkers, st, st.shedLat)
	shed.ok, shed.rps, shed.errors, shed.cpu = st.shed, float64(st.shed)/st.elapsed.Seconds(), "-", cpu
	return ok, shed
}

// hashTotals are the server's portcullis_password_hash_duration_seconds sum and count; n is -1
// when the server does not export them (an older binary) or the scrape failed.
type hashTotals struct{ seconds, n float64 }

func (r *runner) hashTime(ctx context.Context) hashTotals {
	m, err := scrape(ctx, r.srv.metricsURL)
	n, ok := m["portcullis_password_hash_duration_seconds_count"]
	if err != nil || !ok {
		return hashTotals{n: -1}
	}
	return hashTotals{seconds: m["portcullis_password_hash_duration_seconds_sum"], n: n}
}

// admin is GET /admin/users: the text filter's first page, a page deep into it, the first page
// of a filter too short for pg_trgm, the unfiltered first page.
func (r *runner) admin(ctx context.Context) error {
	auth := "Authorization: Bearer " + r.e.adminToken
	for _, a := range []struct{ name, path, shown string }{
		{"admin-filter", r.e.filterFirst, fmt.Sprintf("q=%q", r.o.query)},
		{fmt.Sprintf("admin-filter-p%d", r.e.deepPage), r.e.filterDeep, fmt.Sprintf("q=%q page %d", r.o.query, r.e.deepPage)},
		{"admin-filter-short", r.e.filterShort, fmt.Sprintf("q=%q", r.o.shortQuery)},
		{"admin-first", r.e.unfiltered, "first page"},
	} {
		out, err := r.wrk(ctx, a.name, "GET /api/v1/admin/users "+a.shown, wrkJob{path: a.path, threads: min(2, r.o.adminConns), conns: r.o.adminConns, header: auth})
		if err != nil {
			return err
		}
		r.res.add(judged(out, fmt.Sprintf("p99 <= %v", targetAdminP99), out.p99 <= targetAdminP99))
	}
	return nil
}

// judged returns r with its target and whether it meets it. A row with errors misses whatever
// its figures: wrk's latencies and rate include the errors' answers (a 401 of an expired token
// is fast), and a target is about answering requests, not refusing them.
// limiterNote is r's limiter shares as a note for its target column.
func limiterNote(r row) string {
	if r.limiter == "" {
		return ""
	}
	return "; per-IP limit decided by " + r.limiter
}

func judged(r row, target string, ok bool) row {
	if r.failed > 0 {
		ok = false
		target += fmt.Sprintf("; %d requests failed", r.failed)
	}
	r.target, r.pass = target, &ok
	return r
}

// add appends r; a row without a single success means the harness is broken.
func (res *results) add(r row) {
	if r.ok == 0 {
		res.problems = append(res.problems, fmt.Sprintf("scenario %s: no successful request", r.name))
	}
	res.rows = append(res.rows, r)
}

// loopRow summarises a Go-worker run: successes per second and the given latencies.
func loopRow(name, endpoint string, conc int, st loopStats, lat []time.Duration) row {
	p50, p99 := percentiles(lat)
	return row{name: name, endpoint: endpoint, conc: conc, ok: st.ok, rps: float64(st.ok) / st.elapsed.Seconds(), p50: p50, p99: p99}
}

// sampleRSS records the highest VmRSS every 100 ms until the returned function is called.
func (res *results) sampleRSS(pid int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if _, rss, err := memory(pid); err == nil {
				res.rssPeak = max(res.rssPeak, rss)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// broken reports harness failures: a scenario without a single success.
func (res *results) broken() error {
	if len(res.problems) == 0 {
		return nil
	}
	return fmt.Errorf("harness failure: %v", res.problems)
}

// ports are the PostgreSQL and Redis ports the server connects to, for counting its connections.
func ports(o options) (pg, redis int, err error) {
	port := func(raw, def string) (int, error) {
		u, err := url.Parse(raw)
		if err != nil {
			return 0, err
		}
		p := u.Port()
		if p == "" {
			p = def
		}
		return strconv.Atoi(p)
	}
	if pg, err = port(o.pgURL, "5432"); err != nil {
		return 0, 0, fmt.Errorf("-pg: %w", err)
	}
	if redis, err = port(o.redisURL, "6379"); err != nil {
		return 0, 0, fmt.Errorf("-redis: %w", err)
	}
	return pg, redis, nil
}
