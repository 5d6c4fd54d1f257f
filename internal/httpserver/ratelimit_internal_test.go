package httpserver

import (
	"net/netip"
	"testing"
)

func TestIPKey(t *testing.T) {
	for _, c := range []struct {
		ip   string
		bits int
		want string
	}{
		{"198.51.100.7", 64, "ip:198.51.100.7"},
		{"::ffff:198.51.100.7", 64, "ip:198.51.100.7"},
		{"64:ff9b::c633:6407", 64, "ip:198.51.100.7"}, // NAT64: the IPv4 client inside
		{"2001:db8:1:3::1", 64, "ip:2001:db8:1:3::/64"},
		{"2001:db8:1:3::1", 48, "ip:2001:db8:1::/48"},
		{"2001:db8:1:3::1", 128, "ip:2001:db8:1:3::1/128"},
		{"fe80::1%eth0", 64, "ip:fe80::/64"},
		{"2001:db8:1:3::1", 0, "ip:2001:db8:1:3::/64"}, // unset: 64
	} {
		if got := ipKey(netip.MustParseAddr(c.ip), c.bits); got != c.want {
			t.Errorf("ipKey(%s, %d) = %q, want %q", c.ip, c.bits, got, c.want)
		}
	}
	if got := ipKey(netip.Addr{}, 64); got != "ip:invalid IP" {
		t.Errorf("ipKey(invalid) = %q, want the one shared bucket of unknown addresses", got)
	}
}
