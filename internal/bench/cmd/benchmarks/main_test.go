package main

import (
	"context"
	"fmt"
	"maps"
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
		// A row per client count, with latency and retransmissions.
		"| zfw, 100 intercepts | 2 |", "retransmitted per 1,000 connections",
		"| configuration | Gbit/s, one stream |",
		// Both layouts of TPROXY ports.
		"| 1,000 | 1 | 1 |", "| 1,000 | 1,000 | 1 |",
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

func TestProcCountersReadTheNamesAndValuesOfOneGroup(t *testing.T) {
	tests := []struct {
		file, group string
		want        map[string]string
	}{
		{"TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 3 5\nIpExt: InNoRoutes\nIpExt: 7\n", "TcpExt:",
			map[string]string{"SyncookiesSent": "0", "ListenOverflows": "3", "ListenDrops": "5"}},
		{"Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm RetransSegs\nTcp: 1 42\nUdp: InDatagrams\nUdp: 9\n", "Tcp:",
			map[string]string{"RtoAlgorithm": "1", "RetransSegs": "42"}},
		{"Tcp: RetransSegs\nTcp: 1 2\n", "Tcp:", map[string]string{}}, // values do not match the names
	}
	for _, tc := range tests {
		if got := procCounters([]byte(tc.file), tc.group); !maps.Equal(got, tc.want) {
			t.Errorf("procCounters(%q, %s) = %v, want %v", tc.file, tc.group, got, tc.want)
		}
	}
}
