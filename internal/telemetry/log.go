package telemetry

import (
	"context"
	"log/slog"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel/trace"
)

// LogHandler wraps h so that a record logged with a context that carries a span gets its
// trace_id and span_id: every line of a request, not only its access line, leads to its trace.
func LogHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(traceHandler); ok {
		return h
	}
	return traceHandler{h}
}

type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(attrs)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}

// sdkLogger is the OpenTelemetry SDK's own logger: its messages and errors go to h, without the
// key/value pairs it adds to them, which quote configuration inputs whole (an
// OTEL_EXPORTER_OTLP_HEADERS entry it cannot parse, API key included). Its default printed them
// to stderr in plain text.
func sdkLogger(h slog.Handler) logr.Logger { return logr.FromSlogHandler(valuesDropped{h}) }

// valuesDropped passes records to its handler with their message and error ("err", as logr
// names it) only.
type valuesDropped struct{ slog.Handler }

func (h valuesDropped) Handle(ctx context.Context, r slog.Record) error {
	kept := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			kept.AddAttrs(slog.String("error", a.Value.String()))
		}
		return true
	})
	return h.Handler.Handle(ctx, kept)
}

func (h valuesDropped) WithAttrs([]slog.Attr) slog.Handler { return h }

func (h valuesDropped) WithGroup(string) slog.Handler { return h }
