package kernels

import (
	"fmt"
	"strings"
	"time"
)

// Step is one test binary run in every kernel of the matrix.
type Step struct {
	// Name labels the step in markers and summaries ("load", "bpf", "e2e").
	Name string `json:"name"`
	// Binary is the test binary's file name, built from Package.
	Binary string `json:"binary"`
	// Package is the Go package the binary is built from (./zfw/).
	Package string `json:"package"`
	// Run is the -test.run pattern.
	Run string `json:"run"`
	// Skip, if set, is the -test.skip pattern.
	Skip string `json:"skip,omitempty"`
	// Timeout is passed as -test.timeout, so a hung test panics with its
	// stack in the log instead of running into the guest's deadline.
	Timeout time.Duration `json:"timeout_ns"`
}

// Args are the test binary's arguments.
func (s Step) Args() []string {
	args := []string{"-test.v", "-test.count=1", "-test.timeout=" + s.Timeout.String(), "-test.run", s.Run}
	if s.Skip != "" {
		args = append(args, "-test.skip", s.Skip)
	}
	return args
}

// e2eRun selects the namespace end-to-end tests of package zfw
// (zfw/e2e_test.go): real TCP connections and UDP datagrams steered into
// TPROXY sockets through zfw.New, with TCX or, where the kernel lacks it
// (before 6.6), the clsact fallback; the legacy clsact attachment; the
// host firewall, masquerading router, SYN flood and tunnel (XDP) modes.
// All fourteen take about a minute under TCG.
// TestNewAttachesWithTCXOrSaysWhyNot proves the attachment each kernel
// gets (TCX from 6.6, else clsact and the message that says why).
const e2eRun = "^(TestEndToEnd|TestNewAttachesWithTCXOrSaysWhyNot$)"

// zfwSkip leaves the end-to-end tests out of the "bpf" step: they are a
// step of their own.
const zfwSkip = e2eRun

// DefaultPlan is what the matrix runs on every kernel: all of
// internal/bpfobj (the object load test with the verifier's counts); the
// tests of package zfw but its end-to-end ones (the BPF_PROG_TEST_RUN
// tests of zfw/bpf_*_test.go, TestProgram*, TestSessions*, TestFlowCache*,
// TestMasquerade* and the rest, plus the rules-only and table tests, but
// see zfwSkip; each
// loads the whole object, so under TCG each costs the guest's verifier
// time); the end-to-end tests; and the tests of tproxy (IP_TRANSPARENT
// sockets) and testenv (namespaces, veth topologies), which take seconds.
func DefaultPlan() []Step {
	return []Step{
		{Name: "load", Binary: "bpfobj.test", Package: "./internal/bpfobj/", Run: ".", Timeout: 5 * time.Minute},
		{Name: "features", Binary: "dataplane.test", Package: "./internal/dataplane/", Run: ".", Timeout: 3 * time.Minute},
		{Name: "bpf", Binary: "zfw.test", Package: "./zfw/", Run: ".", Skip: zfwSkip, Timeout: 15 * time.Minute},
		{Name: "e2e", Binary: "zfw.test", Package: "./zfw/", Run: e2eRun, Timeout: 10 * time.Minute},
		{Name: "tproxy", Binary: "tproxy.test", Package: "./tproxy/", Run: ".", Timeout: 3 * time.Minute},
		{Name: "testenv", Binary: "testenv.test", Package: "./testenv/", Run: ".", Timeout: 3 * time.Minute},
	}
}

// planBinaries returns each distinct binary of plan with its package.
func planBinaries(plan []Step) (map[string]string, error) {
	bins := map[string]string{}
	for _, s := range plan {
		if s.Name == "" || strings.ContainsAny(s.Name, " \t\n=") {
			return nil, fmt.Errorf("kernels: step name %q: must be one word", s.Name)
		}
		if p, ok := bins[s.Binary]; ok && p != s.Package {
			return nil, fmt.Errorf("kernels: binary %s built from both %s and %s", s.Binary, p, s.Package)
		}
		bins[s.Binary] = s.Package
	}
	return bins, nil
}
