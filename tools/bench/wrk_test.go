package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	t.Parallel()
	// wrk 4.1.0's report with --latency, as printed against a server answering 404.
	const out = `Running 1s test @ http://127.0.0.1:18777/nonexistent
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.22ms    2.23ms  21.54ms   89.10%
    Req/Sec     0.99k   112.60     1.14k    70.00%
  Latency Distribution
     50%  850.00us
     75%    2.78ms
     90%    4.68ms
     99%    1.26s 
  988 requests in 1.00s, 501.72KB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 988
Requests/sec:    985.91
Transfer/sec:    500.66KB
`
	got, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkStats{requests: 988, rps: 985.91, p50: 850 * time.Microsecond, p99: 1260 * time.Millisecond, non2xx: 988, socketErrors: 10}
	if got != want {
		t.Errorf("parseWrk = %+v, want %+v", got, want)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Error("parseWrk accepted a report without figures")
	}
}

// A row's rate counts only successes, and any error fails its target: an expired token's 401s
// are fast, and would otherwise raise req/s and lower p99.
func TestErrorsNeverPass(t *testing.T) {
	t.Parallel()
	st := wrkStats{requests: 1000, rps: 500, non2xx: 400}
	if got := st.successRate(); got != 300 {
		t.Errorf("successRate = %v, want 300 (600 of 1000 answers were 2xx)", got)
	}
	if got := (wrkStats{}).successRate(); got != 0 {
		t.Errorf("successRate of nothing = %v", got)
	}
	r := judged(row{name: "admin-first", ok: 600, failed: 400, p99: time.Millisecond}, "p99 <= 20ms", true)
	if r.pass == nil || *r.pass {
		t.Errorf("a row with 400 failed requests passed: %+v", r)
	}
	if r = judged(row{name: "admin-first", ok: 600, p99: time.Millisecond}, "p99 <= 20ms", true); r.pass == nil || !*r.pass {
		t.Errorf("a row without errors that meets its target missed: %+v", r)
	}
}

// The me-ips script sends an X-Forwarded-For from the benchmarking range; the others send none.
func TestTokenScriptAddresses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, ips := range []int{0, clientIPs} {
		path, err := tokenScript(dir, []string{"a", "b"}, ips)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if !strings.Contains(s, `"Bearer a"`) || !strings.Contains(s, fmt.Sprintf("local ips = %d\n", ips)) {
			t.Errorf("ips %d: script lacks its tokens or its address count:\n%s", ips, s)
		}
	}
	if clientIPs > 2*65536 {
		t.Errorf("clientIPs %d overflows 198.18.0.0/15", clientIPs)
	}
}

// The measured run of me-ips goes on where its warm-up's walk of the addresses ended: wrk gets
// the start as the script's argument, and the script starts each thread that far into its share.
func TestWalkGoesOnAfterTheWarmUp(t *testing.T) {
	j := wrkJob{path: "/p", threads: 2, conns: 32, script: "s.lua", from: 12345}
	args := j.args("http://h", 10*time.Second)
	if n := len(args); n < 2 || args[n-3] != "http://h/p" || args[n-2] != "--" || args[n-1] != "12345" {
		t.Fatalf("wrk args %q: want the URL, then -- 12345", args)
	}
	j.from = 0
	if args := j.args("http://h", 10*time.Second); args[len(args)-1] != "http://h/p" {
		t.Fatalf("wrk args %q without a start: want the URL last", args)
	}
	path, err := tokenScript(t.TempDir(), []string{"a"}, clientIPs)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "2 * (tonumber(args[1]) or 0)") {
		t.Fatalf("the script does not start each thread at args[1] into its share:\n%s", b)
	}
}
