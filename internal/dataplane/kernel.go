package dataplane

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"
)

// A requirement is a kernel feature the programs cannot do without, and
// the Linux release that brought it.
type requirement struct {
	feature string
	since   string
	probe   func() error // nil when the kernel has it
}

// requirements lists what the dataplane needs of the kernel beyond BTF
// and BPF-to-BPF calls. TCX (Linux 6.6) is not among them: without it
// the programs attach with a clsact filter.
func requirements() []requirement {
	helper := func(fn asm.BuiltinFunc) func() error {
		return func() error { return features.HaveProgramHelper(ebpf.SchedCLS, fn) }
	}
	return []requirement{
		{"the bpf_skc_lookup_tcp helper (TC steering)", "5.2", helper(asm.FnSkcLookupTcp)},
		{"the bpf_jiffies64 helper (flow cache)", "5.5", helper(asm.FnJiffies64)},
		{"the bpf_sk_assign helper in TC programs (TPROXY steering)", "5.7", helper(asm.FnSkAssign)},
		{"ring buffer maps (events)", "5.8", func() error { return features.HaveMapType(ebpf.RingBuf) }},
		{"the bpf_loop helper (policy lookup, IPv6 extension headers)", "5.17", helper(asm.FnLoop)},
		{"the bpf_map_lookup_percpu_elem helper (flow cache)", "5.19", helper(asm.FnMapLookupPercpuElem)},
	}
}

// missing returns, for each requirement this kernel lacks, what it is and
// the Linux release it needs. A probe that fails for another reason (no
// privilege, say) is not reported as missing: the load error says more.
func missing(reqs []requirement) []string {
	var out []string
	for _, r := range reqs {
		if err := r.probe(); errors.Is(err, ebpf.ErrNotSupported) {
			out = append(out, fmt.Sprintf("%s needs Linux %s or later", r.feature, r.since))
		}
	}
	return out
}

// explainLoad wraps a failed load with what this kernel lacks, if it
// lacks anything the programs need: a verifier's "unknown func" names a
// helper by number, not the release an operator must run.
func explainLoad(err error, reqs []requirement) error {
	if lacks := missing(reqs); len(lacks) > 0 {
		return fmt.Errorf("kernel %s lacks what the dataplane needs: %s: %w",
			kernelRelease(), strings.Join(lacks, "; "), err)
	}
	return err
}

// kernelRelease is uname -r.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "(unknown release)"
	}
	return unix.ByteSliceToString(u.Release[:])
}
