package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oapi-codegen/runtime/types"
	"github.com/portcullis/portcullis/gen/api"
	"github.com/portcullis/portcullis/internal/password"
	"golang.org/x/crypto/argon2"
)

// loopStats are a closed-loop run's outcomes: successes, 503s (shed by the hashing gate) and
// everything else, with the latencies of the first two.
type loopStats struct {
	ok, shed, other int64
	okLat, shedLat  []time.Duration
	elapsed         time.Duration
}

// drive runs workers closed-loop for d or until ctx ends: each repeatedly calls do, which returns
// the HTTP status (0 for a transport error) and how long the server asked the client to wait
// before its next request (Retry-After; zero for none), which the worker then sleeps, outside
// the measured latency. A request in flight at the deadline completes and counts.
func drive(ctx context.Context, workers int, d time.Duration, do func(worker int) (int, time.Duration)) loopStats {
	parts := make([]loopStats, workers)
	begin := time.Now()
	deadline := begin.Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			st := &parts[w]
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t := time.Now()
				status, wait := do(w)
				lat := time.Since(t)
				if wait > 0 {
					sleep(ctx, min(wait, time.Until(deadline)))
				}
				switch {
				case status >= 200 && status < 300:
					st.ok++
					st.okLat = append(st.okLat, lat)
				case status == http.StatusServiceUnavailable:
					st.shed++
					st.shedLat = append(st.shedLat, lat)
				default:
					st.other++
				}
			}
		})
	}
	wg.Wait()
	all := loopStats{elapsed: time.Since(begin)}
	for _, p := range parts {
		all.merge(p)
	}
	return all
}

// merge adds o's requests, latencies and time to s's.
func (s *loopStats) merge(o loopStats) {
	s.ok, s.shed, s.other = s.ok+o.ok, s.shed+o.shed, s.other+o.other
	s.okLat = append(s.okLat, o.okLat...)
	s.shedLat = append(s.shedLat, o.shedLat...)
	s.elapsed += o.elapsed
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// percentiles returns p50 and p99 of lat (sorting it).
func percentiles(lat []time.Duration) (p50, p99 time.Duration) {
	if len(lat) == 0 {
		return 0, 0
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
}

// refresher drives POST /auth/refresh: each worker owns one session's chain of single-use
// refresh tokens, each response's token being the next request's.
type refresher struct {
	e      *env
	chains []string
	broken atomic.Int64
}

func newRefresher(e *env) *refresher {
	return &refresher{e: e, chains: slices.Clone(e.chains)}
}

// do is one refresh of worker w's chain.
func (r *refresher) do(ctx context.Context, w int) int {
	resp, err := r.e.api.RefreshTokensWithResponse(ctx, api.RefreshRequest{RefreshToken: r.chains[w]})
	if err != nil {
		return 0
	}
	if resp.JSON200 != nil {
		r.chains[w] = resp.JSON200.RefreshToken
		return http.StatusOK
	}
	if resp.StatusCode() != http.StatusServiceUnavailable {
		// The chain is broken (a lost response, a revoked session): start a new one, counted.
		r.broken.Add(1)
		a := r.e.accounts[w%len(r.e.accounts)]
		if pair, err := login(ctx, r.e.api, a.email, a.password); err == nil {
			r.chains[w] = pair.RefreshToken
		}
	}
	return resp.StatusCode()
}

// loginOnce is one POST /auth/login of a seeded user, picked round robin per worker. With
// honour set it returns the Retry-After of a 503, as a well-behaved client waits it out.
func loginOnce(ctx context.Context, e *env, w int, n *int, honour bool) (int, time.Duration) {
	a := e.accounts[(w+*n*loginWorkers)%len(e.accounts)]
	*n++
	email := types.Email(a.email)
	resp, err := e.api.LoginWithResponse(ctx, api.LoginRequest{Email: &email, Password: a.password})
	if err != nil {
		return 0, 0
	}
	var wait time.Duration
	if honour && resp.StatusCode() == http.StatusServiceUnavailable {
		if secs, err := strconv.Atoi(resp.HTTPResponse.Header.Get("Retry-After")); err == nil {
			wait = time.Duration(secs) * time.Second
		}
	}
	return resp.StatusCode(), wait
}

// argon2Params are the server's: its defaults, or PORTCULLIS_ARGON2_* as the server reads them.
type argon2Params struct {
	memoryKiB, iterations uint32
	parallelism           uint8
}

func serverArgon2Params() argon2Params {
	p := argon2Params{memoryKiB: 19456, iterations: 2, parallelism: 1}
	if v, err := strconv.ParseUint(os.Getenv("PORTCULLIS_ARGON2_MEMORY_KIB"), 10, 32); err == nil {
		p.memoryKiB = uint32(v)
	}
	if v, err := strconv.ParseUint(os.Getenv("PORTCULLIS_ARGON2_ITERATIONS"), 10, 32); err == nil {
		p.iterations = uint32(v)
	}
	if v, err := strconv.ParseUint(os.Getenv("PORTCULLIS_ARGON2_PARALLELISM"), 10, 8); err == nil {
		p.parallelism = uint8(v)
	}
	return p
}

// rawVerifiers return one argon2id verify with p on the server's own code path
// (password.Hasher.Verify, whose working memory is pooled) and one through x/crypto's
// argon2.IDKey, which allocates and zeroes its 19 MiB on every call.
func rawVerifiers(p argon2Params) (server, xcrypto func(), err error) {
	const pw = "bench passphrase for portcullis"
	h := password.NewHasher(password.Params{MemoryKiB: p.memoryKiB, Iterations: p.iterations, Parallelism: p.parallelism})
	enc, err := h.Hash(pw)
	if err != nil {
		return nil, nil, err
	}
	if ok, _, err := h.Verify(pw, enc); !ok || err != nil {
		return nil, nil, fmt.Errorf("raw argon2id: a fresh hash does not verify (%v)", err)
	}
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	server = func() { _, _, _ = h.Verify(pw, enc) }
	xcrypto = func() { argon2.IDKey([]byte(pw), salt, p.iterations, p.memoryKiB, p.parallelism, 32) }
	return server, xcrypto, nil
}

// argon2Rate is a raw argon2id verify rate of this machine: verify on every core for d, with
// the server idle.
func argon2Rate(verify func(), d time.Duration) (perSecond float64, n int64) {
	var count atomic.Int64
	begin := time.Now()
	deadline := begin.Add(d)
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				verify()
				count.Add(1)
			}
		})
	}
	wg.Wait()
	n = count.Load()
	return float64(n) / time.Since(begin).Seconds(), n
}
