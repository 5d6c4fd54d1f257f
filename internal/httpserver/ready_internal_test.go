package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/ratelimit"
	"github.com/portcullis/portcullis/internal/telemetry"
)

// slowPinger stands in for a dependency that takes a while to answer: each Ping waits for
// release (or its context), then answers nil, and counts itself.
type slowPinger struct {
	calls   atomic.Int32
	release chan struct{}
}

func (p *slowPinger) Ping(ctx context.Context) error {
	p.calls.Add(1)
	select {
	case <-p.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// readyServer serves New's handler over real HTTP with one dependency, p, as "slow", and
// serving, if any, as Deps.Serving.
func readyServer(t *testing.T, p Pinger, serving ...Pinger) *httptest.Server {
	t.Helper()
	d := Deps{
		Limiter: ratelimit.New(nil, slog.New(slog.DiscardHandler)),
		Limits:  Limits{IP: ratelimit.Limit{Name: "ip", Count: 1000, Period: time.Minute}},
		Ready:   map[string]Pinger{"slow": p},
		Metrics: telemetry.NewMetrics(nil),
		Logger:  slog.New(slog.DiscardHandler),
	}
	if len(serving) > 0 {
		d.Serving = serving[0]
	}
	s, err := New(config.HTTP{MaxBodyBytes: 1 << 16}, d)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv
}

// Probes that arrive while a readiness check runs share it: since the probes are not rate
// limited, a flood of /readyz must not become a flood of checks against PostgreSQL and Redis.
func TestReadinessProbesShareOneCheck(t *testing.T) {
	p := &slowPinger{release: make(chan struct{})}
	srv := readyServer(t, p)
	const n = 16
	var (
		wg       sync.WaitGroup
		statuses = make([]int, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(srv.URL + "/readyz")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	// Every probe is sent and waiting before the check answers: the handler has nothing else to
	// wait on, so 300 ms is ample even under the race detector.
	for deadline := time.Now().Add(5 * time.Second); p.calls.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no check started")
		}
	}
	time.Sleep(300 * time.Millisecond)
	close(p.release)
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("probe %d: %d, want 200", i, s)
		}
	}
	if got := p.calls.Load(); got != 1 {
		t.Fatalf("%d probes at once ran %d checks, want 1", n, got)
	}
	// A probe after the check ended runs a fresh one: results are shared, never kept.
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || p.calls.Load() != 2 {
		t.Fatalf("a later probe: %d after %d checks, want 200 after 2", resp.StatusCode, p.calls.Load())
	}
}

// A probe that hangs up does not fail the check the others are waiting on.
func TestReadinessCheckOutlivesTheProbeThatStartedIt(t *testing.T) {
	p := &slowPinger{release: make(chan struct{})}
	srv := readyServer(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		first <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); p.calls.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no check started")
		}
	}
	second := make(chan int, 1)
	go func() {
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Error(err)
			second <- 0
			return
		}
		resp.Body.Close()
		second <- resp.StatusCode
	}()
	time.Sleep(200 * time.Millisecond) // the second probe joins the check
	cancel()
	if err := <-first; err == nil {
		t.Fatal("the first probe was answered before the check ended")
	}
	time.Sleep(100 * time.Millisecond) // the hang-up reaches the server
	close(p.release)
	if got := <-second; got != http.StatusOK {
		t.Fatalf("the probe that stayed: %d, want 200: the first one's hang-up failed the shared check", got)
	}
}

// A probe sent after the drain began is not ready, even when it joins a check that began before:
// load balancers must stop sending at once (PORTCULLIS_SHUTDOWN_DRAIN). The drain flag is read by
// every probe itself, outside the shared check.
func TestProbeAfterTheDrainBeganIsNotReady(t *testing.T) {
	p := &slowPinger{release: make(chan struct{})}
	var draining atomic.Bool
	srv := readyServer(t, p, pingerFunc(func(context.Context) error {
		if draining.Load() {
			return errors.New("draining")
		}
		return nil
	}))
	get := func(out chan<- *http.Response) {
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Error(err)
		}
		out <- resp
	}
	before, after := make(chan *http.Response, 1), make(chan *http.Response, 1)
	go get(before)
	for deadline := time.Now().Add(5 * time.Second); p.calls.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no check started")
		}
	}
	draining.Store(true) // SIGTERM: App.Drain
	go get(after)
	time.Sleep(200 * time.Millisecond) // the second probe joins the check in flight
	close(p.release)
	(<-before).Body.Close()
	resp := <-after
	if resp == nil {
		t.FailNow()
	}
	defer resp.Body.Close()
	var problem struct{ Checks map[string]string }
	if err := json.NewDecoder(resp.Body).Decode(&problem); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || problem.Checks["server"] != "unavailable" || problem.Checks["slow"] != "ok" {
		t.Fatalf("a probe after the drain began: %d %v, want 503 with server unavailable and slow ok", resp.StatusCode, problem.Checks)
	}
	if got := p.calls.Load(); got != 1 {
		t.Fatalf("%d checks, want 1 shared", got)
	}
}

type pingerFunc func(context.Context) error

func (f pingerFunc) Ping(ctx context.Context) error { return f(ctx) }
