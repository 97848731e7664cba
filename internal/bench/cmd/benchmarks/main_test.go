package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/testenv"
)

// TestQuickRunWritesEveryReportSection runs the whole benchmark command
// in its -quick mode (about half a minute), so that a change that breaks
// a measurement or the report fails CI rather than the next `make bench`.
func TestQuickRunWritesEveryReportSection(t *testing.T) {
	testenv.RequirePrivileged(t)
	if testing.Short() {
		t.Skip("the quick benchmark run takes about half a minute; skipped with -short")
	}
	cfg := quickConfig()
	logger := logrus.New()
	logger.SetOutput(t.Output())
	logger.SetLevel(logrus.WarnLevel)
	cfg.log = logger
	out := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := run(context.Background(), cfg, out); err != nil {
		t.Fatalf("run: %v", err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	md := string(data)
	for _, want := range []string{
		"## Goals (issue 6)",
		"## Per packet (BPF_PROG_TEST_RUN)",
		"### IPv4", "### IPv6",
		paths[steeredHit].label, paths[replyMiss].label, paths[masquerade].label,
		"`zfw_ingress`",
		"## End to end",
		"iptables TPROXY, 100 rules",
		"## Control plane",
		"## OpenZiti integration (issue 5)",
		"### Service creation to first intercepted connection",
		fmt.Sprintf("| %s | %d |", cfg.zitiRefresh, cfg.zitiCreates),
		"| `zfw -I`, one process per call |",
		"| in process, one connection per call |",
		"### Registering services through intercept/ziti",
		fmt.Sprintf("| %s | %d |", count(cfg.zitiServices), cfg.zitiRegRounds),
		"## Kernels (`make test-kernels`)",
		"## Why the numbers look like this",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(md, " 0 [0–0]") {
		t.Errorf("report has a measurement of zero:\n%s", md)
	}
}

func TestTCPExtReadsNamesAndValuesOfTheTcpExtLines(t *testing.T) {
	netstat := "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 3 5\nIpExt: InNoRoutes\nIpExt: 7\n"
	got := tcpExt([]byte(netstat))
	if got["ListenOverflows"] != "3" || got["ListenDrops"] != "5" || got["InNoRoutes"] != "" || len(got) != 3 {
		t.Errorf("tcpExt = %v", got)
	}
}
