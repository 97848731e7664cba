package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/zfw-go/zfw/internal/kernels"
)

// readKernels reads the kernel matrix's results. A full run needs them
// (make bench runs make test-kernels first); a quick run reports their
// absence instead.
func readKernels(cfg config) (*kernels.Report, error) {
	rep, err := kernels.ReadReport(cfg.kernels)
	if err != nil && cfg.quick && errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w (make test-kernels writes it)", err)
	}
	return rep, nil
}

// writeKernels is issue 11's table: per kernel of the matrix, how long
// zfw.New takes to load and attach, and what each program costs the
// verifier.
func writeKernels(b *bytes.Buffer, cfg config, rep *kernels.Report) {
	fmt.Fprintf(b, "## Kernels (`make test-kernels`)\n\n")
	if rep == nil {
		fmt.Fprintf(b, "No kernel matrix results at `%s`: run `make test-kernels`.\n\n", cfg.kernels)
		return
	}
	progs := map[string]bool{}
	for _, r := range rep.Results {
		if r.Transcript != nil {
			for p := range r.Verified {
				progs[p] = true
			}
		}
	}
	names := make([]string, 0, len(progs))
	for p := range progs {
		names = append(names, p)
	}
	slices.Sort(names)
	fmt.Fprintf(b, "From the matrix run of %s. `zfw.New` is the median of the times the end-to-end tests logged for loading the objects (the verifier is most of it) and attaching to one interface; object load is the load test's. Verified instructions are the kernel's `verified_insns` for each program, global functions included; a test holds each to %s, a quarter of the verifier's limit. Guests run under qemu without KVM (TCG), so their times are those of an emulated CPU, several times slower than the same kernel on hardware.\n\n",
		rep.Time.UTC().Format("2006-01-02 15:04 UTC"), count(250000))
	fmt.Fprintf(b, "| kernel | how | attachment | result | `zfw.New` | object load |")
	for _, p := range names {
		fmt.Fprintf(b, " `%s` |", p)
	}
	fmt.Fprintf(b, "\n|---|---|---|---|---|---|%s\n", strings.Repeat("---|", len(names)))
	for _, r := range rep.Results {
		verdict, attach, newTime, load := "FAIL", "–", "–", "–"
		if r.Pass {
			verdict = "PASS"
		}
		if r.Transcript != nil {
			run, failed, _ := r.Totals()
			verdict = fmt.Sprintf("%s (%d tests, %d failed)", verdict, run, failed)
			attach = "TCX"
			if r.ClsactFallback {
				attach = "clsact (no TCX)"
			}
			if med, ok := r.NewMedian(); ok {
				newTime = fmt.Sprintf("%.2f s (%d runs)", med, len(r.NewSeconds))
			}
			if r.LoadSeconds > 0 {
				load = fmt.Sprintf("%.2f s", r.LoadSeconds)
			}
		}
		how := "qemu (TCG)"
		if r.Mode == "native" {
			how = "native (the machine's own)"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |", r.Kernel, how, attach, verdict, newTime, load)
		for _, p := range names {
			v := "–"
			if r.Transcript != nil {
				if n, ok := r.Verified[p]; ok {
					v = count(n)
				}
			}
			fmt.Fprintf(b, " %s |", v)
		}
		fmt.Fprintln(b)
	}
	fmt.Fprintln(b)
}
