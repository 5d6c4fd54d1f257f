package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkJob is one wrk invocation against the server.
type wrkJob struct {
	path           string
	threads, conns int
	header         string        // sent with every request, such as "Authorization: Bearer …"
	script         string        // a Lua script, such as tokenScript's
	warmup         time.Duration // unmeasured load before the run, when longer than -warmup
	// walk, for a tokenScript with addresses, makes the measured run go on where its warm-up's
	// walk of the addresses ended, rather than start it again: a restart would leave the
	// addresses after the warm-up's last one unseen for up to two rounds of the walk.
	walk bool
	from int64 // where each thread's walk starts, in addresses of its own share
}

// wrkStats is what wrk reports.
type wrkStats struct {
	requests     int64
	rps          float64
	p50, p99     time.Duration
	non2xx       int64
	socketErrors int64
	cpu          time.Duration // wrk's own CPU time (user and system)
}

// successRate is the 2xx answers per second: wrk's Requests/sec counts every answer, errors
// included.
func (st wrkStats) successRate() float64 {
	if st.requests <= 0 {
		return 0
	}
	return st.rps * float64(st.requests-st.non2xx) / float64(st.requests)
}

// run drives the job for d (wrk counts whole seconds) and parses wrk's report.
func (j wrkJob) run(ctx context.Context, baseURL string, d time.Duration) (wrkStats, error) {
	cmd := exec.CommandContext(ctx, "wrk", j.args(baseURL, d)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkStats{}, fmt.Errorf("wrk %s: %w: %s", j.path, err, out)
	}
	st, err := parseWrk(string(out))
	if err != nil {
		return wrkStats{}, fmt.Errorf("wrk %s: %w in:\n%s", j.path, err, out)
	}
	st.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return st, nil
}

// args are wrk's arguments for j against baseURL for d.
func (j wrkJob) args(baseURL string, d time.Duration) []string {
	args := []string{
		"-t", strconv.Itoa(j.threads), "-c", strconv.Itoa(j.conns),
		"-d", fmt.Sprintf("%ds", max(1, int(d.Round(time.Second)/time.Second))),
		"--latency", "--timeout", "5s",
	}
	if j.header != "" {
		args = append(args, "-H", j.header)
	}
	if j.script != "" {
		args = append(args, "-s", j.script)
	}
	args = append(args, baseURL+j.path)
	if j.from > 0 {
		args = append(args, "--", strconv.FormatInt(j.from, 10))
	}
	return args
}

var (
	wrkRequests = regexp.MustCompile(`(?m)^\s*(\d+) requests in `)
	wrkRPS      = regexp.MustCompile(`(?m)^Requests/sec:\s+([\d.]+)`)
	wrkP50      = regexp.MustCompile(`(?m)^\s+50(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$`)
	wrkP99      = regexp.MustCompile(`(?m)^\s+99(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// parseWrk reads wrk's text report (run with --latency).
func parseWrk(out string) (wrkStats, error) {
	var st wrkStats
	m := wrkRequests.FindStringSubmatch(out)
	if m == nil {
		return st, fmt.Errorf("no request count")
	}
	st.requests, _ = strconv.ParseInt(m[1], 10, 64)
	if m = wrkRPS.FindStringSubmatch(out); m == nil {
		return st, fmt.Errorf("no Requests/sec")
	}
	st.rps, _ = strconv.ParseFloat(m[1], 64)
	var err error
	if st.p50, err = wrkLatency(wrkP50, out); err != nil {
		return st, fmt.Errorf("p50: %w", err)
	}
	if st.p99, err = wrkLatency(wrkP99, out); err != nil {
		return st, fmt.Errorf("p99: %w", err)
	}
	if m = wrkNon2xx.FindStringSubmatch(out); m != nil {
		st.non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m = wrkSocket.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			st.socketErrors += n
		}
	}
	return st, nil
}

func wrkLatency(re *regexp.Regexp, out string) (time.Duration, error) {
	m := re.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no latency distribution (run wrk with --latency)")
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, err
	}
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour}[m[2]]
	return time.Duration(v * float64(unit)), nil
}

// clientIPs is how many client addresses the me-ips scenario's requests come from: each
// address recurs every few seconds, as a real client's would, and its per-IP rate-limit bucket is
// one of 100,000 that the limiter holds in memory. The scenario's warm-up sends each at least
// once, so that the measured run sees clients seen before.
const clientIPs = 100_000

// tokenScript writes a wrk Lua script that sends each request with the next of tokens as its
// bearer token; each wrk thread starts at a different place in the list. With ips > 0 (at most
// 131,072) each request also carries an X-Forwarded-For, the next of that many addresses of
// 198.18.0.0/15 (RFC 2544's benchmarking range), each thread walking its own share.
func tokenScript(dir string, tokens []string, ips int) (string, error) {
	var b strings.Builder
	b.WriteString("local tokens = {\n")
	for _, t := range tokens {
		fmt.Fprintf(&b, "  %q,\n", "Bearer "+t)
	}
	b.WriteString(`}
local threads = 0
local ips = ` + strconv.Itoa(ips) + `
function setup(thread)
  thread:set("offset", threads * 7919)
  thread:set("ipfrom", threads)
  threads = threads + 1
end
local i = 0
local k = 0
function init(args)
  i = (offset or 0) % #tokens
  -- args[1]: how far into its share of the addresses each thread starts (see wrkJob.from)
  k = ((ipfrom or 0) + 2 * (tonumber(args[1]) or 0)) % math.max(ips, 1)
end
function request()
  i = i % #tokens + 1
  local headers = { ["Authorization"] = tokens[i] }
  if ips > 0 then
    -- threads take every other address (2 threads): thread t sends t, t+2, t+4, ...
    k = (k + 2) % ips
    headers["X-Forwarded-For"] = "198." .. (18 + math.floor(k / 65536)) .. "." .. (math.floor(k / 256) % 256) .. "." .. (k % 256)
  end
  return wrk.format(nil, nil, headers)
end
`)
	name := "tokens.lua"
	if ips > 0 {
		name = "tokens-ips.lua"
	}
	path := filepath.Join(dir, name)
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}
