// Package telemetry sets up tracing (OpenTelemetry, configured by the standard OTEL_*
// variables) and holds the service's Prometheus metrics.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// tracing is set once a real tracer provider is installed.
var tracing atomic.Bool

// Tracing reports whether spans are recorded: whether SetupTracing or UseTracerProvider
// installed a tracer provider. Until then every span is a no-op, and middleware may skip
// making them.
func Tracing() bool { return tracing.Load() }

// UseTracerProvider installs tp as the global tracer provider and turns Tracing on. The
// function it returns puts a no-op provider back and turns Tracing off, for a test that must
// not leave tracing on for the tests after it.
func UseTracerProvider(tp trace.TracerProvider) (undo func()) {
	otel.SetTracerProvider(tp)
	tracing.Store(true)
	return func() {
		otel.SetTracerProvider(noop.NewTracerProvider())
		tracing.Store(false)
	}
}

// SetupTracing installs the global tracer provider and the W3C trace-context propagator, and
// returns a function that flushes and stops it. The SDK's own diagnostics go to slog's default
// logger, by message and error only (sdkLogger). Tracing is on only when OTEL_TRACES_EXPORTER
// names an exporter ("otlp", "console"); unset or "none" leaves the no-op provider, which
// costs nearly nothing. OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL,
// OTEL_TRACES_SAMPLER(_ARG) and OTEL_SERVICE_NAME are read by the SDK as usual.
func SetupTracing(ctx context.Context, getenv func(string) string, version string) (func(context.Context) error, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	exporter := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))
	if exporter == "" || exporter == "none" {
		return func(context.Context) error { return nil }, nil
	}
	// Before the exporter reads OTEL_EXPORTER_OTLP_*: the SDK's complaints reach slog's default
	// logger (serve's), without the inputs they quote.
	otel.SetLogger(sdkLogger(slog.Default().Handler()))
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch {
	case exporter == "console":
		exp, err = stdouttrace.New()
	case exporter != "otlp":
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER %q: want otlp, console or none", exporter)
	case strings.HasPrefix(getenv("OTEL_EXPORTER_OTLP_PROTOCOL"), "http"):
		exp, err = otlptracehttp.New(ctx) // endpoint, headers and TLS from OTEL_EXPORTER_OTLP_*
	default:
		exp, err = otlptracegrpc.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("trace exporter: %w", err)
	}
	name := getenv("OTEL_SERVICE_NAME")
	if name == "" {
		name = "portcullis"
	}
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(name), semconv.ServiceVersion(version)))
	if err != nil && !errors.Is(err, resource.ErrSchemaURLConflict) {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	UseTracerProvider(tp)
	return tp.Shutdown, nil
}
