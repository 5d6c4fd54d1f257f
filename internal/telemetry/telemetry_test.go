package telemetry

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"
)

// UseTracerProvider's undo turns tracing off again and stops spans reaching the provider, so a
// test that traces leaves the tests after it on the untraced path they would take in production.
func TestUseTracerProviderUndo(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	undo := UseTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	if !Tracing() {
		t.Fatal("Tracing() = false with a provider installed")
	}
	_, span := otel.Tracer("test").Start(context.Background(), "while installed")
	span.End()
	undo()
	if Tracing() {
		t.Error("Tracing() = true after undo")
	}
	_, span = otel.Tracer("test").Start(context.Background(), "after undo")
	span.End()
	if n := len(rec.Ended()); n != 1 {
		t.Errorf("the provider recorded %d spans; want 1, the one started while it was installed", n)
	}
}

// The OpenTelemetry SDK reports an OTEL_EXPORTER_OTLP_HEADERS entry it cannot parse with the
// entry itself ("Authorization: Bearer <key>", written with a colon instead of '='), through its
// own logger, which printed it to stderr in plain text. Its diagnostics reach the service's log
// (slog's default, which serve sets), by message and error, without the values.
func TestOTelDiagnosticsReachTheLogWithoutTheirValues(t *testing.T) {
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(prev); otel.SetLogger(logr.Discard()) })
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization: Bearer hunter2,x-api-key=hunter2%zz")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	env := map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}
	stop, err := SetupTracing(context.Background(), func(k string) string { return env[k] }, "test")
	if err != nil {
		t.Fatal(err)
	}
	UseTracerProvider(noop.NewTracerProvider())() // tracing off again for the tests after this one
	_ = stop(context.Background())
	out := buf.String()
	if strings.Contains(out, "hunter2") {
		t.Errorf("the log holds the header's value:\n%s", out)
	}
	if !strings.Contains(out, "parse headers") || !strings.Contains(out, "escape header value") {
		t.Errorf("the SDK's complaints about the headers did not reach the log:\n%s", out)
	}
}
