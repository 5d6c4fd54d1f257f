package main

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/testenv"
)

// SIGTERM to `make run` (what a supervisor or `kill` sends to the process it started) reaches
// the server: make passes SIGTERM on to its recipe's process, and that must be the server
// itself. Under `go run`, the go command took the signal and died without passing it on, so
// the server was orphaned, still listening and holding its connections.
func TestMakeRunStopsTheServerOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary through make")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command("make", "-s", "-C", "../..", "run", "BIN="+filepath.Join(t.TempDir(), "portcullis"))
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+testenv.NewDB(t),
		"PORTCULLIS_REDIS_PREFIX="+testenv.RedisPrefix(t),
		"PORTCULLIS_HTTP_ADDR="+addr,
		"PORTCULLIS_METRICS_ADDR=",
		"PORTCULLIS_SHUTDOWN_DRAIN=0s",
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the cleanup can end whatever is left
	// A file, not a pipe: Wait would wait for an orphaned server to close a pipe.
	out, err := os.Create(filepath.Join(t.TempDir(), "make-run.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	log := func() string { // its end: the server logs every probe
		b, _ := os.ReadFile(out.Name())
		return string(b[max(0, len(b)-3000):])
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	answers := func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	}
	for deadline := time.Now().Add(3 * time.Minute); !answers(); time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-exited:
			t.Fatalf("make run exited before serving: %v\n%s", err, log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("make run never served\n%s", log())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("make run did not exit after SIGTERM\n%s", log())
	}
	for deadline := time.Now().Add(10 * time.Second); answers(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the server still answers after make run was stopped with SIGTERM: orphaned\n%s", log())
		}
	}
	if !strings.Contains(log(), `"msg":"shutting down"`) {
		t.Fatalf("the server did not shut down gracefully:\n%s", log())
	}
}
