package dataplane

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/zfw-go/zfw/testenv"
)

func TestLoadErrorsNameWhatTheKernelLacks(t *testing.T) {
	have := func() error { return nil }
	lacks := func() error { return fmt.Errorf("probe: %w", ebpf.ErrNotSupported) }
	denied := func() error { return syscall.EPERM }
	loadErr := errors.New("load program: invalid argument")
	tests := []struct {
		name string
		reqs []requirement
		want []string // in the message; none: the error is returned as it was
	}{
		{"nothing missing", []requirement{{"a", "5.2", have}, {"b", "5.17", have}}, nil},
		{"one missing", []requirement{{"a", "5.2", have}, {"the bpf_loop helper", "5.17", lacks}},
			[]string{"the bpf_loop helper needs Linux 5.17 or later", kernelRelease()}},
		{"two missing", []requirement{{"ring buffer maps", "5.8", lacks}, {"the bpf_loop helper", "5.17", lacks}},
			[]string{"ring buffer maps needs Linux 5.8 or later; the bpf_loop helper needs Linux 5.17 or later"}},
		{"a probe that cannot run says nothing", []requirement{{"a", "5.2", denied}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := explainLoad(loadErr, tt.reqs)
			if !errors.Is(err, loadErr) {
				t.Fatalf("%v does not wrap the load error", err)
			}
			if tt.want == nil {
				if err != loadErr {
					t.Errorf("got %q, want the load error as it was", err)
				}
				return
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
		})
	}
}

// On every kernel the matrix boots, the probes must find what the
// programs use: a probe that reports a present feature missing would send
// an operator after the wrong kernel.
func TestThisKernelHasWhatTheDataplaneNeeds(t *testing.T) {
	testenv.RequirePrivileged(t)
	if lacks := missing(requirements()); len(lacks) > 0 {
		t.Errorf("kernel %s: %s", kernelRelease(), strings.Join(lacks, "; "))
	}
}
