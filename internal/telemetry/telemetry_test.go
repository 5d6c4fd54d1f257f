package telemetry

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
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
