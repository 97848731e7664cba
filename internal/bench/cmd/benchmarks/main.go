// Command benchmarks runs the zfw benchmarks once and writes
// BENCHMARKS.md: per-packet costs through BPF_PROG_TEST_RUN, end-to-end
// connection rates and throughput between network namespaces (against
// no interception and against iptables TPROXY), control-plane timings
// and memory, and the OpenZiti integration's figures (a real controller
// and the examples' tunneler and zfw command; the ziti binary must have
// been built with `make ziti`). It needs root. Everything it creates
// (namespaces, pinned dataplanes, iptables rules inside its own
// namespaces, processes, the OpenZiti network, temporary folders) is
// removed on exit.
//
//	go run ./internal/bench/cmd/benchmarks -o BENCHMARKS.md
//	go run ./internal/bench/cmd/benchmarks -quick -o /tmp/bench.md
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/internal/kernels"
)

func main() {
	out := flag.String("o", "BENCHMARKS.md", "file to write")
	quick := flag.Bool("quick", false, "a fast smoke run: few rounds, small counts (its numbers are not for publishing)")
	verbose := flag.Bool("v", false, "log progress")
	kernelResults := flag.String("kernels", defaultKernels, "the kernel matrix's results (make test-kernels)")
	flag.Parse()
	if os.Geteuid() != 0 {
		log.Fatal("benchmarks: needs root (BPF test runs, network namespaces)")
	}
	cfg := fullConfig()
	if *quick {
		cfg = quickConfig()
	}
	logger := logrus.New()
	if !*verbose {
		logger.SetLevel(logrus.WarnLevel)
	}
	cfg.log = logger
	cfg.kernels = *kernelResults
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	if err := run(ctx, cfg, *out); err != nil {
		log.Fatalf("benchmarks: %v", err)
	}
	logger.Infof("wrote %s in %s", *out, time.Since(start).Round(time.Second))
}

// config sizes a run.
type config struct {
	quick bool
	// rounds per per-packet measurement of packets run once per call,
	// and of one packet repeated; the median is reported. A repeated
	// round is short (about a millisecond), so it takes more of them
	// to spread a measurement over time than the machine's neighbours
	// take to disturb it.
	rounds, repeatedRounds int
	// counts of intercepts for the per-packet section.
	counts []int
	// repeat: runs per round of a repeated packet; perRound: runs per
	// round of one-run-per-call measurements.
	repeat, perRound int
	// missFlows: established flows cycled through to miss the flow cache.
	missFlows int

	e2eCounts   []int
	e2eRounds   int
	e2eDuration time.Duration
	// e2eClients: the connections/s test runs with each of these
	// numbers of concurrent clients, for e2eDuration each.
	e2eClients []int
	// e2eStreams: the throughput of one measurement is the mean of this
	// many streams, which share e2eDuration.
	e2eStreams int

	cpCounts []int
	// cpRounds for counts up to 10,000; larger counts run once.
	cpRounds int

	// zitiCLICalls `zfw -I` runs per round, zitiCLIRounds rounds.
	zitiCLICalls, zitiCLIRounds int
	// zitiServices registered through intercept/ziti, zitiRegRounds times.
	zitiServices, zitiRegRounds int
	// zitiCreates services created on a real controller, one at a time;
	// zitiRefresh is the tunneler's --refresh, empty for its default.
	zitiCreates int
	zitiRefresh string

	// kernels is the kernel matrix's results file (defaultKernels).
	kernels string

	log logrus.FieldLogger
}

// defaultKernels is where make test-kernels leaves its results, from the
// repository's top folder, where make bench runs.
const defaultKernels = ".cache/kernels/results.json"

func fullConfig() config {
	return config{
		rounds: 7, repeatedRounds: 31, counts: []int{1, 1000, 100000, 250000},
		repeat: 100000, perRound: 3000, missFlows: 16384,
		e2eCounts: []int{1, 1000, 10000}, e2eRounds: 5, e2eDuration: 1500 * time.Millisecond, e2eClients: []int{1, 4, 16}, e2eStreams: 4,
		cpCounts: []int{1000, 10000, 100000}, cpRounds: 3,
		zitiCLICalls: 1000, zitiCLIRounds: 3, zitiServices: 10000, zitiRegRounds: 5, zitiCreates: 5,
		kernels: defaultKernels,
	}
}

func quickConfig() config {
	return config{
		quick:  true,
		rounds: 3, repeatedRounds: 3, counts: []int{1, 1000},
		repeat: 2000, perRound: 300, missFlows: 3 * flowCacheSlots,
		e2eCounts: []int{1, 100}, e2eRounds: 1, e2eDuration: 300 * time.Millisecond, e2eClients: []int{1, 2}, e2eStreams: 1,
		cpCounts: []int{1000}, cpRounds: 1,
		zitiCLICalls: 50, zitiCLIRounds: 3, zitiServices: 1000, zitiRegRounds: 2, zitiCreates: 1, zitiRefresh: "1s",
		kernels: defaultKernels,
	}
}

// streamDuration is how long each throughput stream runs.
func (c config) streamDuration() time.Duration {
	return c.e2eDuration / time.Duration(c.e2eStreams)
}

// flowCacheSlots is the dataplane's per-CPU flow cache size
// (ZFW_FLOW_CACHE_SLOTS in bpf/include/zfw.h).
const flowCacheSlots = 4096

// results is everything one run measured.
type results struct {
	machine machine
	packets packetResults
	e2e     e2eResults
	control controlResults
	ziti    zitiResults
	kernels *kernels.Report
}

func run(ctx context.Context, cfg config, out string) error {
	var r results
	var err error
	r.machine = describeMachine()
	if r.kernels, err = readKernels(cfg); err != nil {
		return fmt.Errorf("kernels: %w", err)
	}
	// The OpenZiti section comes last: fail now, not minutes later, when
	// it cannot run.
	if _, err := zitiBinary(ctx); err != nil {
		return fmt.Errorf("OpenZiti integration: %w", err)
	}
	cfg.log.Info("per packet")
	if r.packets, err = perPacket(ctx, cfg); err != nil {
		return fmt.Errorf("per packet: %w", err)
	}
	cfg.log.Info("end to end")
	if r.e2e, err = endToEnd(ctx, cfg); err != nil {
		return fmt.Errorf("end to end: %w", err)
	}
	cfg.log.Info("control plane")
	if r.control, err = controlPlane(ctx, cfg); err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	cfg.log.Info("OpenZiti integration")
	if r.ziti, err = zitiIntegration(ctx, cfg); err != nil {
		return fmt.Errorf("OpenZiti integration: %w", err)
	}
	return os.WriteFile(out, report(cfg, r), 0o644)
}
