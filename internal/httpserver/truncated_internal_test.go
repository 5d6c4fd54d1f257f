package httpserver

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/ratelimit"
)

// truncatedBody is a request body whose client went away mid-way: its read ends early.
type truncatedBody struct{ r io.Reader }

func (b truncatedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

// A request body cut short by the client is the client's fault, a 400: not a 503 that says
// the database is down (with an error log line and a 5xx count every such request).
func TestTruncatedBodyIsNotADatabaseOutage(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	s, err := New(config.HTTP{MaxBodyBytes: 1 << 16}, Deps{
		Limiter: ratelimit.New(nil, logger),
		Limits: Limits{
			IP:        ratelimit.Limit{Name: "ip", Count: 1000, Period: time.Minute},
			RefreshIP: ratelimit.Limit{Name: "refresh-ip", Count: 1000, Period: time.Minute},
		},
		Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/api/v1/auth/refresh", truncatedBody{strings.NewReader(`{"refresh_token":"abc`)})
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || strings.Contains(rec.Body.String(), "database") {
		t.Fatalf("truncated body: %d %s", rec.Code, rec.Body)
	}
}
