package kernels

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Result is one kernel's row of the matrix.
type Result struct {
	// Label names the kernel as the matrix was asked for it
	// ("6.1.0-57-amd64", "host").
	Label string `json:"label"`
	// Mode is "qemu" (booted under qemu-system-x86_64, TCG) or "native"
	// (run on the host's own kernel).
	Mode string `json:"mode"`
	// Package is the Debian package the kernel came from, if any.
	Package string `json:"package,omitempty"`
	// Kernel is the release the tests ran on (uname -r), or Label when
	// the run never said.
	Kernel  string  `json:"kernel"`
	Pass    bool    `json:"pass"`
	Error   string  `json:"error,omitempty"`
	Seconds float64 `json:"wall_seconds"` // boot to poweroff, or the native run
	Log     string  `json:"log"`
	// FirstBoot is set when the guest's kernel failed on the first boot
	// (see Config.qemuRow) and this row is the second.
	FirstBoot *FirstBoot `json:"first_boot,omitempty"`
	*Transcript
}

// FirstBoot is what a guest whose kernel failed did on its first boot.
type FirstBoot struct {
	Error        string   `json:"error"`
	Log          string   `json:"log"`
	KernelErrors []string `json:"kernel_errors"`
}

// Totals counts top-level tests over all steps.
func (r *Result) Totals() (run, failed, skipped int) {
	if r.Transcript == nil {
		return 0, 0, 0
	}
	for _, s := range r.Steps {
		run += s.Passed + s.Failed + s.Skipped
		failed += s.Failed
		skipped += s.Skipped
	}
	return run, failed, skipped
}

// NewMedian is the median of the zfw.New times the tests logged.
func (t *Transcript) NewMedian() (float64, bool) {
	if t == nil || len(t.NewSeconds) == 0 {
		return 0, false
	}
	s := slices.Clone(t.NewSeconds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

// Summary is the row's one-line summary, e.g.
//
//	kernel 6.1.0-57-amd64 (qemu): PASS 37 tests, 0 failed; load 8.6s bpf 420.0s e2e 36.1s; wall 481.2s; verified zfw_ingress=250308; object load 8.12s
func (r *Result) Summary() string {
	var b strings.Builder
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	mode := r.Mode
	if r.Mode == "native" {
		mode = "host, native"
	}
	fmt.Fprintf(&b, "kernel %s (%s): %s", r.Kernel, mode, verdict)
	run, failed, skipped := r.Totals()
	fmt.Fprintf(&b, " %d tests, %d failed", run, failed)
	if skipped > 0 {
		fmt.Fprintf(&b, ", %d skipped", skipped)
	}
	if r.Transcript != nil && len(r.Steps) > 0 {
		b.WriteString(";")
		for _, s := range r.Steps {
			switch {
			case !s.Ran && s.Running != "":
				fmt.Fprintf(&b, " %s unfinished (in %s)", s.Name, s.Running)
			case !s.Ran:
				fmt.Fprintf(&b, " %s unfinished", s.Name)
			case !s.OK():
				fmt.Fprintf(&b, " %s %.1fs!", s.Name, s.Seconds)
			default:
				fmt.Fprintf(&b, " %s %.1fs", s.Name, s.Seconds)
			}
		}
	}
	fmt.Fprintf(&b, "; wall %.1fs", r.Seconds)
	if r.Transcript != nil && len(r.Verified) > 0 {
		progs := make([]string, 0, len(r.Verified))
		for p := range r.Verified {
			progs = append(progs, p)
		}
		slices.Sort(progs)
		b.WriteString("; verified")
		for _, p := range progs {
			fmt.Fprintf(&b, " %s=%d", p, r.Verified[p])
		}
	}
	if r.Transcript != nil {
		if r.LoadSeconds > 0 {
			fmt.Fprintf(&b, "; object load %.2fs", r.LoadSeconds)
		} else if d, ok := r.TestSeconds["TestObjectsLoad"]; ok {
			fmt.Fprintf(&b, "; TestObjectsLoad %.2fs", d)
		}
		if med, ok := r.NewMedian(); ok {
			fmt.Fprintf(&b, "; zfw.New %.2fs (median of %d)", med, len(r.NewSeconds))
		}
		if r.ClsactFallback {
			b.WriteString("; clsact fallback")
		}
	}
	if r.Transcript != nil {
		for _, e := range r.KernelErrors {
			if !fatalKernelError(e) {
				fmt.Fprintf(&b, "; kernel said: %s", e)
			}
		}
	}
	if r.Error != "" {
		fmt.Fprintf(&b, "; %s", r.Error)
	}
	if r.FirstBoot != nil {
		fmt.Fprintf(&b, "; booted twice: the first boot's kernel failed: %s (log %s)", strings.Join(r.FirstBoot.KernelErrors, "; "), r.FirstBoot.Log)
	}
	return b.String()
}

// Report is the machine-readable matrix, written as JSON.
type Report struct {
	Time    time.Time `json:"time"`
	Plan    []Step    `json:"plan"`
	Results []*Result `json:"results"`
}

// ReadReport reads a matrix that WriteJSON wrote.
func ReadReport(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kernels: read results: %w", err)
	}
	var rep Report
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, fmt.Errorf("kernels: decode results %s: %w", path, err)
	}
	return &rep, nil
}

// WriteJSON writes rep to path atomically (a temporary file renamed).
func (rep *Report) WriteJSON(path string) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("kernels: encode results: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("kernels: write results: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("kernels: write results: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("kernels: write results: %w", err)
	}
	return nil
}
