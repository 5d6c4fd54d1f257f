package main

import (
	"bytes"
	"context"
	"runtime/debug"
	"strings"
	"testing"
)

// A build names itself: the version set at link time, else the module's (go install …@v1.2.3),
// else the commit it was built from (marked when the tree had changes), and "dev" only when the
// build carries none of these. Every trace and the start log carry it, so an operator can tell
// which build answered; it was "dev" in every build.
func TestBuildVersion(t *testing.T) {
	vcs := func(rev, modified string) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified},
		}}
	}
	for _, tt := range []struct {
		name   string
		linked string
		info   *debug.BuildInfo
		ok     bool
		want   string
	}{
		{"linked", "v1.4.0", vcs("0123456789abcdef0123", "false"), true, "v1.4.0"},
		{"module", "dev", &debug.BuildInfo{Main: debug.Module{Version: "v1.3.2"}}, true, "v1.3.2"},
		{"commit", "dev", vcs("0123456789abcdef0123", "false"), true, "0123456789ab"},
		{"changed commit", "dev", vcs("0123456789abcdef0123", "true"), true, "0123456789ab-dirty"},
		{"nothing", "dev", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true, "dev"},
		{"no build info", "dev", nil, false, "dev"},
	} {
		if got := buildVersion(tt.linked, tt.info, tt.ok); got != tt.want {
			t.Errorf("%s: buildVersion = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// portcullis version prints it, without configuration.
func TestVersionCommand(t *testing.T) {
	var out bytes.Buffer
	empty := func(string) string { return "" }
	if err := run(context.Background(), []string{"version"}, empty, strings.NewReader(""), &out); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got == "" || strings.Contains(got, "\n") {
		t.Fatalf("portcullis version printed %q, want one line", out.String())
	}
}
