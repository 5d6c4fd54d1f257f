package httpserver

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/ratelimit"
	"github.com/portcullis/portcullis/internal/telemetry"
)

type panickingPinger struct{}

func (panickingPinger) Ping(context.Context) error { panic("boom in a handler") }

// A panicking handler is answered 500 like any internal error, and an operator sees it: the
// panic is logged with its stack, and the request has its access line and is counted as a 5xx
// (the error-rate alerts and the dashboard read that counter).
func TestPanicIsLoggedWithStackAndCounted(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	m := telemetry.NewMetrics(nil)
	s, err := New(config.HTTP{MaxBodyBytes: 1 << 16}, Deps{
		Limiter: ratelimit.New(nil, logger),
		Limits:  Limits{IP: ratelimit.Limit{Name: "ip", Count: 1000, Period: time.Minute}},
		Ready:   map[string]Pinger{"boom": panickingPinger{}},
		Metrics: m,
		Logger:  logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), `"code":"internal"`) {
		t.Fatalf("answer to a panic: %d %s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), "boom") || strings.Contains(rec.Body.String(), "goroutine") {
		t.Fatalf("the panic reached the client: %s", rec.Body)
	}
	out := logs.String()
	if !strings.Contains(out, `"msg":"panic"`) || !strings.Contains(out, "boom in a handler") {
		t.Fatalf("the panic is not logged: %s", out)
	}
	if !strings.Contains(out, "panic_internal_test.go") {
		t.Errorf("the panic's log line has no stack: %s", out)
	}
	if !strings.Contains(out, `"msg":"request"`) || !strings.Contains(out, `"status":500`) {
		t.Errorf("no access line for the panicking request: %s", out)
	}
	scrape := httptest.NewRecorder()
	m.Handler().ServeHTTP(scrape, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if want := `portcullis_http_requests_total{method="GET",route="/readyz",status_class="5xx"} 1`; !strings.Contains(scrape.Body.String(), want) {
		t.Errorf("the panicking request is not counted as a 5xx")
	}
}
