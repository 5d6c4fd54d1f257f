package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/portcullis/portcullis/internal/config"
)

// healthcheck asks the server this configuration describes, on this machine, for /healthz (or
// /readyz with -ready) and fails unless it answers 200: a probe for container runtimes whose
// image has no shell or curl (the Dockerfile's HEALTHCHECK). It checks the local listener, so
// over TLS it does not verify the certificate, which names the service, not 127.0.0.1.
func healthcheck(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	ready := fs.Bool("ready", false, "ask /readyz (PostgreSQL and Redis reachable) instead of /healthz")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("PORTCULLIS_HTTP_ADDR %q: %w", cfg.HTTP.Addr, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1" // listening on every interface: loopback is one of them
	}
	scheme, path := "http", "/healthz"
	if cfg.HTTP.TLSCertFile != "" {
		scheme = "https"
	}
	if *ready {
		path = "/readyz"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, port)+path, nil)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the local listener, see above
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d", path, resp.StatusCode)
	}
	_, err = fmt.Fprintf(stdout, "%s: ok\n", path)
	return err
}
