package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// healthcheck exits 0 while the local server answers and fails once it is gone, over plain HTTP
// and TLS, with the listen address written as the server takes it (":port" included).
func TestHealthcheck(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, certFile, keyFile)
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // our own throwaway certificate
	for _, c := range []struct {
		name, scheme string
		client       *http.Client
		extra        map[string]string
		ready        bool
	}{
		{"http", "http", http.DefaultClient, map[string]string{}, true},
		{"tls", "https", insecure, map[string]string{"PORTCULLIS_TLS_CERT_FILE": certFile, "PORTCULLIS_TLS_KEY_FILE": keyFile}, true},
		// Redis unreachable (nothing listens on port 1): still ready, since the service answers
		// correctly without it (TestHealthcheckReadyFailsWhenNotReady has a 503).
		{"redis down", "http", http.DefaultClient, map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := startServe(t, c.extra, c.client, c.scheme)
			_, port, err := net.SplitHostPort(srv.addr)
			if err != nil {
				t.Fatal(err)
			}
			vars := map[string]string{"PORTCULLIS_HTTP_ADDR": ":" + port}
			for k, v := range c.extra {
				vars[k] = v
			}
			check := func(args ...string) (string, error) {
				var out bytes.Buffer
				err := run(context.Background(), append([]string{"healthcheck"}, args...), env(vars), strings.NewReader(""), &out)
				return out.String(), err
			}
			if out, err := check(); err != nil || out != "/healthz: ok\n" {
				t.Fatalf("healthcheck against a live server: %q, %v", out, err)
			}
			out, err := check("-ready")
			if c.ready && (err != nil || out != "/readyz: ok\n") {
				t.Fatalf("healthcheck -ready against a ready server: %q, %v", out, err)
			}
			if !c.ready && (err == nil || !strings.Contains(err.Error(), "/readyz answered 503")) {
				t.Fatalf("healthcheck -ready against a server without Redis: %q, %v; want /readyz answered 503", out, err)
			}
			srv.stop(t)
			if _, err := check(); err == nil {
				t.Fatal("healthcheck passed with the server stopped")
			}
		})
	}
}

// healthcheck -ready fails when /readyz answers 503 (PostgreSQL down, or the server draining),
// though /healthz answers.
func TestHealthcheckReadyFailsWhenNotReady(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":503,"code":"not-ready","checks":{"postgres":"unavailable"}}`))
			return
		}
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"PORTCULLIS_HTTP_ADDR": ":" + port}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"healthcheck"}, env(vars), strings.NewReader(""), &out); err != nil {
		t.Fatalf("healthcheck against a live server: %q, %v", out.String(), err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"healthcheck", "-ready"}, env(vars), strings.NewReader(""), &out); err == nil || !strings.Contains(err.Error(), "/readyz answered 503") {
		t.Fatalf("healthcheck -ready against a server answering 503: %q, %v; want /readyz answered 503", out.String(), err)
	}
}
