package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// unlimited is every rate limit of the bench server: all of the load comes from one IP address.
// ratelimit.ParseLimit takes "count/period" with at most one event per microsecond.
const unlimited = "1000000/1s"

// server is the `portcullis serve` child process.
type server struct {
	cmd        *exec.Cmd
	env        []string
	binary     string
	url        string // http://127.0.0.1:port
	metricsURL string
	debugURL   string // empty without -pprof
	logPath    string
	exited     chan struct{}
	stopOnce   sync.Once
	stopErr    error
}

// startServer starts `portcullis serve` on the bench database with every rate limit raised, on
// free ports, and waits until /readyz answers 200.
func startServer(ctx context.Context, o options, db *benchDB, tmp string) (*server, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	kek := os.Getenv("PORTCULLIS_KEY_ENCRYPTION_KEY")
	if kek == "" {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		kek = base64.StdEncoding.EncodeToString(b)
		if db.existed {
			if err := db.dropSigningKeys(ctx); err != nil {
				return nil, fmt.Errorf("drop the signing keys sealed by an earlier run: %w", err)
			}
		}
	}
	s := &server{
		binary:     o.binary,
		url:        fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[1]),
		logPath:    filepath.Join(tmp, "server.log"),
		exited:     make(chan struct{}),
	}
	vars := map[string]string{
		"DATABASE_URL":                  db.url,
		"REDIS_URL":                     o.redisURL,
		"PORTCULLIS_REDIS_PREFIX":       fmt.Sprintf("portcullis-bench:%d:", os.Getpid()),
		"PORTCULLIS_CREATE_DATABASE":    "true",
		"PORTCULLIS_AUTO_MIGRATE":       "true",
		"PORTCULLIS_KEY_ENCRYPTION_KEY": kek,
		"PORTCULLIS_LOG_LEVEL":          "warn",
		"PORTCULLIS_HTTP_ADDR":          fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"PORTCULLIS_METRICS_ADDR":       fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"PORTCULLIS_SHUTDOWN_DRAIN":     "0s",
	}
	for _, name := range []string{"IP", "LOGIN_IP", "LOGIN_ACCOUNT_FAILURES", "REGISTER_IP", "REFRESH_IP", "PASSWORD_IP", "PASSWORD_ACCOUNT"} {
		vars["PORTCULLIS_RATE_LIMIT_"+name] = unlimited
	}
	// The me-ips scenario's requests carry an X-Forwarded-For, as behind a load balancer; the
	// others send none and are limited by their peer address, 127.0.0.1.
	vars["PORTCULLIS_TRUSTED_PROXIES"] = "127.0.0.1/32"
	if o.pprof {
		vars["PORTCULLIS_DEBUG_ADDR"] = fmt.Sprintf("127.0.0.1:%d", ports[2])
		s.debugURL = fmt.Sprintf("http://127.0.0.1:%d", ports[2])
	}
	s.env = os.Environ() // exec keeps the last value of a repeated key: ours
	for k, v := range vars {
		s.env = append(s.env, k+"="+v)
	}

	logFile, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(o.binary, "serve")
	s.cmd.Env, s.cmd.Stdout, s.cmd.Stderr = s.env, logFile, logFile
	if err := s.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s serve: %w", o.binary, err)
	}
	go func() {
		_ = s.cmd.Wait()
		logFile.Close()
		close(s.exited)
	}()
	logf("server pid %d on %s (metrics %s), database %s", s.cmd.Process.Pid, s.url, s.metricsURL, db.name)

	// The server migrates before it listens: on a reused database of a million users a migration
	// may rewrite the table and rebuild indexes for minutes.
	begin := time.Now()
	deadline, nextNote := begin.Add(15*time.Minute), begin.Add(30*time.Second)
	for {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("the server exited during start-up:\n%s", s.logTail(30))
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if resp, err := http.Get(s.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if now := time.Now(); now.After(deadline) {
			s.stop()
			return nil, fmt.Errorf("the server was not ready within 15m:\n%s", s.logTail(30))
		} else if now.After(nextNote) {
			logf("still waiting for /readyz after %v (migrating?)", now.Sub(begin).Round(time.Second))
			nextNote = now.Add(30 * time.Second)
		}
	}
}

// stop sends SIGTERM and waits for a graceful exit (kill after 30 s). It is safe to call twice.
func (s *server) stop() error {
	s.stopOnce.Do(func() {
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			s.stopErr = err
		}
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
			s.stopErr = errors.New("no exit within 30s of SIGTERM: killed")
		}
		if s.stopErr == nil && !s.cmd.ProcessState.Success() {
			s.stopErr = fmt.Errorf("exit status %v after SIGTERM:\n%s", s.cmd.ProcessState, s.logTail(20))
		}
	})
	return s.stopErr
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// logTail returns the last n lines of the server's log.
func (s *server) logTail(n int) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// profile captures, when profiling is on, a CPU profile of up to 10 s from now and, once the
// returned function is called (at the scenario's end), a heap profile. Failures are reported,
// never fatal: the debug listener is optional.
func (s *server) profile(dir, scenario string, d time.Duration) (finish func()) {
	if dir == "" || s.debugURL == "" {
		return func() {}
	}
	secs := max(1, min(10, int(d/time.Second)))
	done := make(chan struct{})
	go func() {
		defer close(done)
		fetch(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", s.debugURL, secs), filepath.Join(dir, scenario+".cpu.pprof"))
	}()
	return func() {
		<-done
		fetch(s.debugURL+"/debug/pprof/heap", filepath.Join(dir, scenario+".heap.pprof"))
	}
}

func fetch(url, path string) {
	resp, err := http.Get(url)
	if err != nil {
		logf("profile %s: %v", url, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		logf("profile %s: %s", url, resp.Status)
		return
	}
	f, err := os.Create(path)
	if err == nil {
		_, err = io.Copy(f, resp.Body)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		logf("profile %s: %v", path, err)
	}
}

// freePorts returns n distinct ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// snapshot is the server's state for the leak check.
type snapshot struct {
	goroutines   float64
	poolTotal    float64
	poolAcquired float64
	poolMax      float64
	pgConns      int
	redisConns   int
	// gomaxprocs is the server's GOMAXPROCS (0: its metrics did not say).
	gomaxprocs float64
}

// snapshot reads the metrics endpoint and counts the server's TCP connections to PostgreSQL
// and Redis.
func (s *server) snapshot(ctx context.Context, pgPort, redisPort int) (snapshot, error) {
	m, err := scrape(ctx, s.metricsURL)
	if err != nil {
		return snapshot{}, err
	}
	snap := snapshot{
		goroutines:   m["go_goroutines"],
		poolTotal:    m[`portcullis_db_pool_connections{state="total"}`],
		poolAcquired: m[`portcullis_db_pool_connections{state="acquired"}`],
		poolMax:      m[`portcullis_db_pool_connections{state="max"}`],
		gomaxprocs:   m["go_sched_gomaxprocs_threads"],
	}
	if _, ok := m["go_goroutines"]; !ok {
		return snapshot{}, errors.New("metrics: no go_goroutines")
	}
	conns, err := tcpConns(s.pid(), pgPort, redisPort)
	if err != nil {
		return snapshot{}, err
	}
	snap.pgConns, snap.redisConns = conns[pgPort], conns[redisPort]
	return snap, nil
}

// scrape reads a Prometheus text exposition into series → value.
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if line == "" || line[0] == '#' || i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m, sc.Err()
}

// resetHWM resets the process's VmHWM to its current RSS, so that a later memory reads the peak
// since now; false when the kernel refused (the peak is then the one since start).
func resetHWM(pid int) bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
}

// memory returns the process's peak (VmHWM) and current (VmRSS) resident set, in bytes.
func memory(pid int) (hwm, rss int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmHWM" && k != "VmRSS") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status %s: %w", pid, k, err)
		}
		if k == "VmHWM" {
			hwm = kb << 10
		} else {
			rss = kb << 10
		}
	}
	if hwm == 0 || rss == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status: no VmHWM or VmRSS", pid)
	}
	return hwm, rss, nil
}

// tcpConns counts the process's established TCP connections by remote port: its socket inodes
// from /proc/<pid>/fd, matched against /proc/<pid>/net/tcp and tcp6.
func tcpConns(pid int, ports ...int) (map[int]int, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	want := map[int]bool{}
	for _, p := range ports {
		want[p] = true
	}
	counts := map[int]int{}
	for _, table := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "01" || !inodes[f[9]] { // 01: ESTABLISHED
				continue
			}
			_, hexPort, _ := strings.Cut(f[2], ":")
			port, err := strconv.ParseInt(hexPort, 16, 32)
			if err == nil && want[int(port)] {
				counts[int(port)]++
			}
		}
	}
	return counts, nil
}

// cpuMeter measures, over a scenario, the cores the server, the clients and the stores kept
// busy: the server's from /proc/<pid>/stat, the clients' from this process's rusage plus what
// wrk reports, the stores' from /proc/<pid>/stat of every postgres and redis-server process; and
// the machine's busy time from /proc/stat, whose remainder is everything else (kernel threads
// and other processes), and apart from it the time the hypervisor stole.
type cpuMeter struct {
	pid                         int
	server, own, machine, steal time.Duration
	stores                      map[int]time.Duration
	begin                       time.Time
}

// cpuUse is the average cores kept busy during a scenario.
type cpuUse struct {
	server  float64 // the measured process
	clients float64 // wrk or this process's workers
	stores  float64 // PostgreSQL and Redis, all their processes
	other   float64 // the rest of the machine's busy time: kernel threads, other processes
	steal   float64 // what the hypervisor took from the machine's CPUs (not in the four above)
}

func (u cpuUse) plus(o cpuUse) cpuUse {
	return cpuUse{u.server + o.server, u.clients + o.clients, u.stores + o.stores, u.other + o.other, u.steal + o.steal}
}

func (u cpuUse) scaled(f float64) cpuUse {
	return cpuUse{u.server * f, u.clients * f, u.stores * f, u.other * f, u.steal * f}
}

func startCPU(pid int) cpuMeter {
	m := cpuMeter{pid: pid, server: processCPU(pid), own: ownCPU(), stores: storesCPU(), begin: time.Now()}
	m.machine, m.steal = machineCPU()
	return m
}

// cores returns the average cores used since start; wrk is the CPU time of client child
// processes.
func (m cpuMeter) cores(wrk time.Duration) cpuUse {
	wall := time.Since(m.begin).Seconds()
	u := cpuUse{
		server:  (processCPU(m.pid) - m.server).Seconds() / wall,
		clients: (ownCPU() - m.own + wrk).Seconds() / wall,
		stores:  storesSince(m.stores).Seconds() / wall,
	}
	busy, steal := machineCPU()
	// Process times and /proc/stat tick separately, so the difference can dip just below zero.
	u.other = max((busy-m.machine).Seconds()/wall-u.server-u.clients-u.stores, 0)
	u.steal = (steal - m.steal).Seconds() / wall
	return u
}

// storesSince is the CPU time the postgres and redis-server processes alive now used since
// start (all of it for those started since). One that exited meanwhile takes its share with it:
// a lower bound.
func storesSince(start map[int]time.Duration) time.Duration {
	var total time.Duration
	for pid, cpu := range storesCPU() {
		total += max(cpu-start[pid], 0)
	}
	return total
}

// storesCPU is the CPU time of each postgres and redis-server process alive now, by pid.
func storesCPU() map[int]time.Duration {
	dirs, _ := os.ReadDir("/proc")
	total := map[int]time.Duration{}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			continue
		}
		if name := strings.TrimSpace(string(comm)); name == "postgres" || name == "redis-server" {
			total[pid] = processCPU(pid)
		}
	}
	return total
}

// processCPU is the user and system time of pid: fields 14 and 15 of /proc/<pid>/stat, in clock
// ticks of 1/100 s (USER_HZ on Linux); 0 when unreadable.
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')') // the command name may hold spaces
	f := strings.Fields(string(b[i+1:]))       // f[0] is field 3, the state
	if i < 0 || len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * clockTick
}

// clockTick is USER_HZ's tick (1/100 s on Linux), the unit of /proc's CPU times.
const clockTick = 10 * time.Millisecond

// machineCPU is the busy time of every CPU of the machine since boot and, apart, the time the
// hypervisor stole from them (procStatTimes of /proc/stat's first line); 0 when unreadable.
func machineCPU() (busy, steal time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return procStatTimes(line)
}

// procStatTimes reads /proc/stat's "cpu" line: busy is its user, nice, system, irq and softirq
// fields (guest time is already in user), steal its steal field, the time the hypervisor ran
// something else while this machine's CPUs wanted to run. Idle and iowait are neither. The
// fields count clock ticks of 1/100 s; a line that is not "cpu" with 8 fields gives 0.
func procStatTimes(line string) (busy, steal time.Duration) {
	f := strings.Fields(line) // "cpu" user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7} {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += v
	}
	st, _ := strconv.ParseInt(f[8], 10, 64)
	return time.Duration(ticks) * clockTick, time.Duration(st) * clockTick
}

func ownCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
