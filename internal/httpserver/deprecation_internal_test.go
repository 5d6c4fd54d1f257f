package httpserver

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"
)

func TestDeprecationHeadersFollowTheSpec(t *testing.T) {
	tests := []struct {
		name                   string
		op                     *openapi3.Operation
		wantDeprecation, want  string
		wantErr, wantNoHeaders bool
	}{
		{name: "current", op: &openapi3.Operation{OperationID: "a"}, wantNoHeaders: true},
		{name: "deprecated with sunset", op: &openapi3.Operation{OperationID: "b", Deprecated: true, Extensions: map[string]any{
			"x-deprecated-at": "2026-07-01T00:00:00Z", "x-sunset": "2027-01-01T00:00:00Z"}},
			wantDeprecation: "@1782864000", want: "Fri, 01 Jan 2027 00:00:00 GMT"},
		{name: "deprecated without sunset", op: &openapi3.Operation{OperationID: "c", Deprecated: true, Extensions: map[string]any{
			"x-deprecated-at": "2026-07-01T00:00:00Z"}}, wantDeprecation: "@1782864000"},
		{name: "deprecated without a date", op: &openapi3.Operation{OperationID: "d", Deprecated: true}, wantErr: true},
		{name: "malformed date", op: &openapi3.Operation{OperationID: "e", Deprecated: true, Extensions: map[string]any{"x-deprecated-at": "July"}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mw, err := deprecation(tt.op)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr || tt.wantNoHeaders {
				if mw != nil {
					t.Fatal("a middleware for an operation that needs none")
				}
				return
			}
			e := echo.New()
			rec := httptest.NewRecorder()
			c := e.NewContext(httptest.NewRequest(http.MethodGet, "/", nil), rec)
			if err := mw(func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })(c); err != nil {
				t.Fatal(err)
			}
			if got := rec.Header().Get("Deprecation"); got != tt.wantDeprecation {
				t.Fatalf("Deprecation = %q, want %q", got, tt.wantDeprecation)
			}
			if got := rec.Header().Get("Sunset"); got != tt.want {
				t.Fatalf("Sunset = %q, want %q", got, tt.want)
			}
		})
	}
}
