package main

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/testenv"
)

// A second SIGTERM (or Ctrl-C) ends the process at once: the first starts the drain and the
// graceful shutdown; an operator or supervisor that signals again means now, not after
// PORTCULLIS_SHUTDOWN_DRAIN and PORTCULLIS_HTTP_SHUTDOWN_TIMEOUT have run out.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	if os.Getenv("PORTCULLIS_TEST_RUN_MAIN") == "1" {
		os.Args = []string{"portcullis", "serve", "-no-migrate"}
		main()
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSecondSignalExitsAtOnce$")
	cmd.Env = append(os.Environ(),
		"PORTCULLIS_TEST_RUN_MAIN=1",
		"DATABASE_URL="+testenv.NewDB(t),
		"PORTCULLIS_REDIS_PREFIX="+testenv.RedisPrefix(t),
		"PORTCULLIS_HTTP_ADDR="+addr,
		"PORTCULLIS_METRICS_ADDR=",
		"PORTCULLIS_SHUTDOWN_DRAIN=60s",
	)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	status := func(path string) int {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for deadline := time.Now().Add(20 * time.Second); status("/healthz") != http.StatusOK; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("serve never answered")
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); status("/readyz") != http.StatusServiceUnavailable; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("readiness did not fail after SIGTERM")
		}
	}
	// The handler is released by a goroutine woken by the same signal as the drain; give it a
	// moment on a loaded machine.
	time.Sleep(200 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("a second SIGTERM during the drain did not end the process")
	}
}
