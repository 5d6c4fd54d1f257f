package redis

import (
	"fmt"
	"testing"
)

// A single server's spans carry its address and port, as rueidisotel.NewClient's would; a
// cluster's carry neither.
func TestServerAttrs(t *testing.T) {
	for _, tc := range []struct {
		addrs []string
		want  string
	}{
		{[]string{"127.0.0.1:6379"}, "[server.address=127.0.0.1 server.port=6379]"},
		{[]string{"[::1]:6380"}, "[server.address=::1 server.port=6380]"},
		{[]string{"redis"}, "[server.address=redis]"},
		{[]string{"a:1", "b:2"}, "[]"},
	} {
		got := "["
		for i, a := range serverAttrs(tc.addrs) {
			if i > 0 {
				got += " "
			}
			got += fmt.Sprintf("%s=%s", a.Key, a.Value.Emit())
		}
		if got += "]"; got != tc.want {
			t.Errorf("serverAttrs(%q) = %s, want %s", tc.addrs, got, tc.want)
		}
	}
}
