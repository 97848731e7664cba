// Command kernelmatrix runs the project's privileged tests on other
// kernels (`make test-kernels`): Debian 12's stock amd64 kernel booted
// under qemu-system-x86_64 (TCG) from a busybox initramfs, and the host's
// own kernel. It prints one summary line per kernel, writes the results as
// JSON, and exits non-zero if any kernel failed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/zfw-go/zfw/internal/kernels"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kernelmatrix:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		repo     = flag.String("repo", ".", "the module to build the test binaries from")
		cache    = flag.String("cache", ".cache/kernels", "cache for kernels, binaries, images and logs")
		out      = flag.String("json", "", "write the results here (default CACHE/results.json)")
		timeout  = flag.Duration("guest-timeout", 30*time.Minute, "longest one guest may run before qemu is killed")
		memory   = flag.Int("memory", 4096, "guest memory, MiB")
		cpus     = flag.Int("cpus", 2, "guest vCPUs")
		qemuBin  = flag.String("qemu", "qemu-system-x86_64", "the qemu binary")
		busybox  = flag.String("busybox", "/bin/busybox", "a static busybox (Debian's busybox-static)")
		host     = flag.Bool("host", true, "test the running kernel (natively when /boot lacks its image)")
		debian   = flag.Bool("debian", true, "test Debian's stock amd64 kernel under qemu")
		stepsArg = flag.String("steps", "", "comma-separated steps to run (default all: load,bpf,e2e,tproxy,testenv)")
		e2eRun   = flag.String("e2e-run", "", "the e2e step's -test.run pattern (default ^TestEndToEnd: all of zfw/e2e_test.go)")
		tail     = flag.Int("tail", 80, "log lines printed for a failed kernel")
	)
	flag.Parse()

	plan := kernels.DefaultPlan()
	if *e2eRun != "" {
		for i := range plan {
			if plan[i].Name == "e2e" {
				plan[i].Run = *e2eRun
			}
		}
	}
	plan, err := choose(plan, *stepsArg)
	if err != nil {
		return err
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("go command: %w", err)
	}
	tools, err := kernels.LookTools("ip", "tc")
	if err != nil {
		return err
	}
	qemu, err := exec.LookPath(*qemuBin)
	if err != nil {
		return fmt.Errorf("%s (install qemu-system-x86): %w", *qemuBin, err)
	}
	cacheDir, err := filepath.Abs(*cache)
	if err != nil {
		return err
	}
	jsonPath := *out
	if jsonPath == "" {
		jsonPath = filepath.Join(cacheDir, "results.json")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, runErr := kernels.Run(ctx, kernels.Config{
		RepoDir:  *repo,
		CacheDir: cacheDir,
		GoTool:   goTool,
		Plan:     plan,
		QEMU:     kernels.QEMU{Binary: qemu, MemoryMiB: *memory, CPUs: *cpus, Timeout: *timeout},
		Busybox:  *busybox,
		Tools:    tools,
		Debian:   *debian,
		Host:     *host,
		Out:      os.Stdout,
		LogTail:  *tail,
	})
	if rep != nil {
		if err := rep.WriteJSON(jsonPath); err != nil {
			return err
		}
		fmt.Printf("kernels: results in %s\n", jsonPath)
		fmt.Println("kernels: summary")
		for _, r := range rep.Results {
			fmt.Println("  " + r.Summary())
		}
	}
	return runErr
}

// choose keeps the steps of plan named in list (all when list is empty).
func choose(plan []kernels.Step, list string) ([]kernels.Step, error) {
	if list == "" {
		return plan, nil
	}
	var names []string
	for _, s := range plan {
		names = append(names, s.Name)
	}
	var out []kernels.Step
	for _, n := range strings.Split(list, ",") {
		i := slices.Index(names, n)
		if i < 0 {
			return nil, fmt.Errorf("-steps: unknown step %q (have %s)", n, strings.Join(names, ","))
		}
		out = append(out, plan[i])
	}
	return out, nil
}
