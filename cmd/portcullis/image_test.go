package main

import (
	"net"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/config"
)

// The image's listeners are reachable from outside its container: a listener on loopback inside
// a container answers nobody, so the Prometheus configuration shipped in deploy/observability
// (which scrapes portcullis:9090) would see every instance down. The Dockerfile's ENV lines,
// read as the binary reads them, must put the API and the metrics on every interface, and the
// metrics on the port that configuration scrapes and the image exposes.
func TestImageListenersAreReachable(t *testing.T) {
	dockerfile, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	var exposed []string
	for _, line := range strings.Split(string(dockerfile), "\n") {
		fields := strings.Fields(line)
		switch {
		case len(fields) >= 2 && fields[0] == "ENV":
			for _, kv := range fields[1:] {
				k, v, _ := strings.Cut(kv, "=")
				vars[k] = v
			}
		case len(fields) >= 2 && fields[0] == "EXPOSE":
			exposed = append(exposed, fields[1:]...)
		}
	}
	cfg, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	prom, err := os.ReadFile("../../deploy/observability/prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	target := regexp.MustCompile(`(?m)^\s*- portcullis:(\d+)`).FindSubmatch(prom)
	if target == nil {
		t.Fatal("no portcullis scrape target in prometheus.yml")
	}
	for name, addr := range map[string]string{"API": cfg.HTTP.Addr, "metrics": cfg.MetricsAddr} {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("%s listener %q: %v", name, addr, err)
		}
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			t.Errorf("the image's %s listener is %s: unreachable from outside the container", name, addr)
		}
		if !strings.Contains(" "+strings.Join(exposed, " ")+" ", " "+port+" ") {
			t.Errorf("the image does not EXPOSE its %s port %s (EXPOSE %v)", name, port, exposed)
		}
		if name == "metrics" && port != string(target[1]) {
			t.Errorf("the image serves metrics on port %s; prometheus.yml scrapes %s", port, target[1])
		}
	}
}
