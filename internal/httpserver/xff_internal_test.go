package httpserver

import (
	"net/http"
	"strconv"
	"testing"
)

// Every request of an IPv6 client behind a trusted proxy has a ':' in X-Forwarded-For: reading
// it must not copy the request's other headers, which the client chooses and may be many.
func TestForwardedPortStrippingCopiesOnlyTheHeader(t *testing.T) {
	extract, err := ipExtractor([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	allocs := func(others int) float64 {
		r := &http.Request{RemoteAddr: "10.0.0.1:4321", Header: http.Header{"X-Forwarded-For": {"[2001:db8::1]:443"}}}
		for i := range others {
			r.Header.Set("X-Other-"+strconv.Itoa(i), "value")
		}
		if got := extract(r); got != "2001:db8::1" {
			t.Fatalf("client = %q, want 2001:db8::1", got)
		}
		return testing.AllocsPerRun(100, func() { extract(r) })
	}
	if few, many := allocs(0), allocs(40); many > few {
		t.Fatalf("allocations per request: %v with 40 other headers, %v with none", many, few)
	}
}
