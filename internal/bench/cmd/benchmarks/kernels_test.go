package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zfw-go/zfw/internal/kernels"
)

func TestKernelSectionShowsEveryKernelOfTheMatrix(t *testing.T) {
	rep := &kernels.Report{
		Time: time.Date(2026, 12, 2, 17, 30, 0, 0, time.UTC),
		Results: []*kernels.Result{
			{Mode: "native", Kernel: "6.18.44", Pass: true, Transcript: &kernels.Transcript{
				Steps:       []kernels.StepResult{{Name: "load", Ran: true, Passed: 3}},
				Verified:    map[string]int{"zfw_ingress": 19299, "zfw_egress": 21859},
				LoadSeconds: 0.38, NewSeconds: []float64{0.3, 0.4, 0.5},
			}},
			{Mode: "qemu", Kernel: "6.1.0-57-amd64", Transcript: &kernels.Transcript{
				Steps:          []kernels.StepResult{{Name: "load", Ran: true, Passed: 2, Failed: 1}},
				Verified:       map[string]int{"zfw_ingress": 13416},
				ClsactFallback: true,
			}},
			{Mode: "qemu", Kernel: "linux-image-amd64", Error: "apt-cache: exit 100"},
		},
	}
	var b bytes.Buffer
	writeKernels(&b, config{kernels: "r.json"}, rep)
	md := b.String()
	for _, want := range []string{
		"From the matrix run of 2026-12-02 17:30 UTC.",
		"| kernel | how | attachment | result | `zfw.New` | object load | `zfw_egress` | `zfw_ingress` |",
		"| 6.18.44 | native (the machine's own) | TCX | PASS (3 tests, 0 failed) | 0.40 s (3 runs) | 0.38 s | 21,859 | 19,299 |",
		"| 6.1.0-57-amd64 | qemu (TCG) | clsact (no TCX) | FAIL (3 tests, 1 failed) | – | – | – | 13,416 |",
		"| linux-image-amd64 | qemu (TCG) | – | FAIL | – | – | – | – |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("section lacks %q:\n%s", want, md)
		}
	}
}

func TestQuickRunWithoutAKernelMatrixSaysSo(t *testing.T) {
	cfg := quickConfig()
	cfg.kernels = filepath.Join(t.TempDir(), "results.json")
	rep, err := readKernels(cfg)
	if err != nil || rep != nil {
		t.Fatalf("quick run without results: %v, %v", rep, err)
	}
	var b bytes.Buffer
	writeKernels(&b, cfg, rep)
	if !strings.Contains(b.String(), "No kernel matrix results at") {
		t.Errorf("section: %s", b.String())
	}
	cfg.quick = false
	if _, err := readKernels(cfg); err == nil || !strings.Contains(err.Error(), "make test-kernels") {
		t.Errorf("a full run without results: %v, want an error naming make test-kernels", err)
	}
}
