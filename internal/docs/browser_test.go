package docs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	apispec "github.com/portcullis/portcullis/api"
	"github.com/portcullis/portcullis/internal/docs"
)

// The browser tests load the page in headless Chromium (Debian's package "chromium"), under
// docs.CSP exactly as served, against a server with the real specification and a stand-in for
// one operation. They are skipped where Chromium is not installed, and with -short.

const probeToken = "probe-token-6a1f"

// probeJS runs in the page before Swagger UI. It records every CSP violation and script error,
// then does what a person would: Authorize with a bearer token, open getMe, Execute. It posts
// what it saw to /test/result.
const probeJS = `(function () {
  "use strict";
  var result = { violations: [], errors: [], done: [] };
  document.addEventListener("securitypolicyviolation", function (e) {
    result.violations.push(e.effectiveDirective + " blocked " + (e.blockedURI || "inline") + " at " + e.sourceFile + ":" + e.lineNumber);
  });
  window.addEventListener("error", function (e) { result.errors.push(String(e.message)); });
  function $(sel) { return document.querySelector(sel); }
  function type(input, value) {
    Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set.call(input, value);
    input.dispatchEvent(new Event("input", { bubbles: true }));
  }
  function click(sel) { var el = $(sel); if (el && !el.disabled) { el.click(); return true; } return false; }
  var steps = [
    ["open Authorize", function () { return click(".auth-wrapper .btn.authorize"); }],
    ["type the token", function () { var i = $("#auth-bearer-value"); if (!i) return false; type(i, "` + probeToken + `"); return true; }],
    ["apply it", function () { return click(".modal-ux button[type=submit].authorize"); }],
    ["close the dialog", function () { var m = $(".modal-ux"); return !!m && /Authorized/.test(m.textContent) && click(".modal-ux .btn-done"); }],
    ["open getMe", function () { return !$(".modal-ux") && click("#operations-users-getMe .opblock-summary-control"); }],
    ["execute", function () { return click("#operations-users-getMe .btn.execute"); }],
    ["see the response", function () {
      var s = $("#operations-users-getMe .live-responses-table tbody .response-col_status");
      return !!s && s.textContent.trim().indexOf("200") === 0;
    }]
  ];
  var ticks = 0;
  var timer = setInterval(function () {
    ticks++;
    while (result.done.length < steps.length && steps[result.done.length][1]()) {
      result.done.push(steps[result.done.length][0]);
    }
    if (result.done.length === steps.length || ticks > 600) {
      clearInterval(timer);
      result.authorizeButton = !!$(".auth-wrapper .btn.authorize");
      fetch("/test/result", { method: "POST", body: JSON.stringify(result) });
    }
  }, 50);
})();
`

type probeResult struct {
	Violations      []string `json:"violations"`
	Errors          []string `json:"errors"`
	Done            []string `json:"done"`
	AuthorizeButton bool     `json:"authorizeButton"`
}

type browserServer struct {
	*httptest.Server
	results chan probeResult
	mu      sync.Mutex
	authz   []string // Authorization headers getMe received
}

// newBrowserServer serves the docs routes behind the API's policy, /openapi.json from the real
// specification, getMe, and with ?probe in the page's URL, probeJS before Swagger UI.
func newBrowserServer(t *testing.T) *browserServer {
	t.Helper()
	spec, err := openapi3.NewLoader().LoadFromData(apispec.OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	s := &browserServer{results: make(chan probeResult, 1)}
	e := newEcho()
	e.GET("/openapi.json", func(c echo.Context) error { return c.JSONBlob(http.StatusOK, specJSON) })
	e.GET("/api/v1/users/me", func(c echo.Context) error {
		s.mu.Lock()
		s.authz = append(s.authz, c.Request().Header.Get("Authorization"))
		s.mu.Unlock()
		return c.JSON(http.StatusOK, map[string]any{"id": "0193c6c2-0000-7000-8000-000000000000", "username": "probe"})
	})
	e.GET("/test/probe.js", func(c echo.Context) error {
		return c.Blob(http.StatusOK, "text/javascript; charset=utf-8", []byte(probeJS))
	})
	e.POST("/test/result", func(c echo.Context) error {
		var r probeResult
		if err := json.NewDecoder(c.Request().Body).Decode(&r); err != nil {
			return err
		}
		select {
		case s.results <- r:
		default:
		}
		return c.NoContent(http.StatusNoContent)
	})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/docs/" || !r.URL.Query().Has("probe") {
			e.ServeHTTP(w, r)
			return
		}
		// The page as served, headers and all, with the probe's script tag added before the bundle.
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, r)
		bundle := []byte(`<script src="/docs/swagger-ui-bundle.js">`)
		body := rec.Body.Bytes()
		if !bytes.Contains(body, bundle) {
			t.Errorf("the page has no %s", bundle)
		}
		body = bytes.Replace(body, bundle, append([]byte(`<script src="/test/probe.js"></script>`), bundle...), 1)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

// dumpDOM loads url in headless Chromium and returns the DOM once the page has settled.
func dumpDOM(t *testing.T, chromium, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--no-first-run", "--no-default-browser-check",
		"--user-data-dir="+t.TempDir(),
		// Virtual time runs timers at once but waits for the network: the spec, the API call.
		"--virtual-time-budget=60000",
		"--dump-dom", url)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, tail(stderr.String(), 4000))
	}
	return stdout.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func chromiumOrSkip(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no browser")
	}
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	return path
}

// TestBrowserRenders loads /docs as served and checks that Swagger UI rendered the specification:
// the Authorize button of bearerAuth and the operations, registerUser among them.
func TestBrowserRenders(t *testing.T) {
	chromium := chromiumOrSkip(t)
	srv := newBrowserServer(t)
	dom := dumpDOM(t, chromium, srv.URL+"/docs")
	for _, want := range []string{
		`class="btn authorize unlocked"`,
		`<span>Authorize</span>`,
		`id="operations-auth-registerUser"`,
		`id="operations-users-getMe"`,
		`id="operations-admin-adminListUsers"`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %s\n%s", want, tail(dom, 3000))
		}
	}
	if strings.Contains(dom, "Failed to load API definition") {
		t.Errorf("Swagger UI could not load /openapi.json")
	}
}

// TestBrowserAuthorizeAndTryItOut signs in through the Authorize dialog and calls getMe from the
// page: the request carries the bearer token, and nothing the page does breaks docs.CSP.
func TestBrowserAuthorizeAndTryItOut(t *testing.T) {
	chromium := chromiumOrSkip(t)
	srv := newBrowserServer(t)
	dom := dumpDOM(t, chromium, srv.URL+"/docs/?probe")
	var r probeResult
	select {
	case r = <-srv.results:
	case <-time.After(10 * time.Second):
		t.Fatalf("the probe reported nothing\n%s", tail(dom, 3000))
	}
	t.Logf("probe: %+v", r)
	if len(r.Violations) > 0 {
		t.Errorf("Content-Security-Policy violations under %q:\n%s", docs.CSP, strings.Join(r.Violations, "\n"))
	}
	if len(r.Errors) > 0 {
		t.Errorf("script errors: %q", r.Errors)
	}
	if len(r.Done) != 7 {
		t.Errorf("the probe got through %d of 7 steps: %q", len(r.Done), r.Done)
	}
	srv.mu.Lock()
	authz := srv.authz
	srv.mu.Unlock()
	if len(authz) != 1 || authz[0] != "Bearer "+probeToken {
		t.Errorf("getMe received Authorization %q, want one %q", authz, "Bearer "+probeToken)
	}
}
