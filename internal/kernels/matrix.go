package kernels

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Config is one run of the matrix.
type Config struct {
	// RepoDir is the module the test binaries are built from.
	RepoDir string
	// CacheDir holds unpacked kernels, binaries, initramfs images and
	// logs (.cache/kernels, git-ignored).
	CacheDir string
	// GoTool is the go command.
	GoTool string
	// Plan is the steps every kernel runs.
	Plan []Step
	// QEMU runs the guests.
	QEMU QEMU
	// Busybox is a static busybox binary.
	Busybox string
	// Tools are host binaries the tests exec (ip, tc), copied into guests
	// with their shared libraries.
	Tools []string
	// Debian boots Debian's stock amd64 kernel from apt.
	Debian bool
	// Host tests the running kernel: booted under qemu when its image is
	// in /boot, else natively.
	Host bool
	// Out receives progress and the one-line summaries.
	Out io.Writer
	// LogTail is how many lines of a failed run's log are printed.
	LogTail int
}

// Run runs the matrix and returns its report; the error says which
// kernels failed (the report is complete either way, when not nil).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	rep := &Report{Time: time.Now().UTC(), Plan: cfg.Plan}
	for _, d := range []string{"bin", "logs"} {
		if err := os.MkdirAll(filepath.Join(cfg.CacheDir, d), 0o755); err != nil {
			return nil, fmt.Errorf("kernels: %w", err)
		}
	}
	fmt.Fprintf(cfg.Out, "kernels: building test binaries\n")
	bins, err := BuildTestBinaries(ctx, cfg.GoTool, cfg.RepoDir, filepath.Join(cfg.CacheDir, "bin"), cfg.Plan)
	if err != nil {
		return nil, err
	}
	var failed []string
	record := func(r *Result) {
		rep.Results = append(rep.Results, r)
		if !r.Pass {
			failed = append(failed, r.Kernel)
			printTail(cfg.Out, r.Log, cfg.LogTail)
		}
		fmt.Fprintln(cfg.Out, r.Summary())
	}
	if cfg.Host {
		record(cfg.hostRow(ctx, bins))
	}
	if cfg.Debian {
		fmt.Fprintf(cfg.Out, "kernels: fetching %s's kernel\n", DebianMetapackage)
		k, err := FetchDebianKernel(ctx, filepath.Join(cfg.CacheDir, "debian"))
		if err != nil {
			record(&Result{Label: DebianMetapackage, Mode: "qemu", Kernel: DebianMetapackage, Error: err.Error()})
		} else {
			record(cfg.qemuRow(ctx, k, bins))
		}
	}
	if len(failed) > 0 {
		return rep, fmt.Errorf("kernels: failed on %s", strings.Join(failed, ", "))
	}
	return rep, nil
}

// hostRow tests the running kernel: under qemu if /boot has its image,
// else natively.
func (cfg Config) hostRow(ctx context.Context, bins map[string]string) *Result {
	release, err := hostRelease()
	if err != nil {
		return &Result{Label: "host", Mode: "native", Kernel: "host", Error: err.Error()}
	}
	if img := "/boot/vmlinuz-" + release; fileExists(img) {
		k := &Kernel{Release: release, Image: img}
		if mods := "/lib/modules/" + release; fileExists(mods) {
			k.ModulesDir = mods
		}
		r := cfg.qemuRow(ctx, k, bins)
		r.Label = "host"
		return r
	}
	fmt.Fprintf(cfg.Out, "kernels: %s (host): no /boot/vmlinuz-%s, running natively\n", release, release)
	r := &Result{Label: "host", Mode: "native", Kernel: release, Log: cfg.logPath("host-" + release)}
	took, err := RunNative(ctx, bins, cfg.Plan, r.Log)
	r.Seconds = took.Seconds()
	r.finish(err, cfg.Plan)
	return r
}

// qemuRow boots k with an initramfs holding the plan and reads the
// results from its console.
func (cfg Config) qemuRow(ctx context.Context, k *Kernel, bins map[string]string) *Result {
	r := &Result{Label: k.Release, Mode: "qemu", Package: k.Package, Kernel: k.Release, Log: cfg.logPath(k.Release)}
	initrd, err := cfg.initramfs(ctx, k, bins)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	return cfg.bootGuest(ctx, k, initrd, r)
}

// bootGuest boots k with initrd, filling r, and boots it once more if its
// kernel failed the first time.
func (cfg Config) bootGuest(ctx context.Context, k *Kernel, initrd string, r *Result) *Result {
	cfg.boot(ctx, k, initrd, r)
	if !r.kernelFailed() {
		return r
	}
	// The guest's kernel itself failed (a soft lockup, a panic), which a
	// TCG guest on a busy host has done once in a while with no test
	// failing before it. Show what the kernel said, keep that log, and
	// boot once more: the row says it happened whatever the second boot
	// does, and a kernel that fails twice fails the row.
	first := cfg.logPath(k.Release + "-first-boot")
	if err := os.Rename(r.Log, first); err != nil {
		r.Error += "; " + err.Error()
		return r
	}
	printKernelReport(cfg.Out, first, kernelReportLines)
	fmt.Fprintf(cfg.Out, "kernels: %s: the guest's kernel failed (%s); its log is %s; booting it once more\n", k.Release, r.Error, first)
	again := &Result{Label: r.Label, Mode: r.Mode, Package: r.Package, Kernel: k.Release, Log: r.Log,
		FirstBoot: &FirstBoot{Error: r.Error, Log: first, KernelErrors: r.KernelErrors}}
	cfg.boot(ctx, k, initrd, again)
	return again
}

// boot runs one guest of k and fills r from its transcript.
func (cfg Config) boot(ctx context.Context, k *Kernel, initrd string, r *Result) {
	fmt.Fprintf(cfg.Out, "kernels: booting %s under qemu (TCG, up to %s)\n", k.Release, cfg.QEMU.Timeout)
	took, err := cfg.QEMU.Boot(ctx, k, initrd, r.Log)
	r.Seconds = took.Seconds()
	r.finish(err, cfg.Plan)
}

// kernelFailed reports whether the run failed because its kernel reported
// a bug or panicked, with no test failed before it.
func (r *Result) kernelFailed() bool {
	if r.Pass || r.Transcript == nil {
		return false
	}
	for _, s := range r.Steps {
		if s.Failed > 0 {
			return false
		}
	}
	return slices.ContainsFunc(r.KernelErrors, fatalKernelError)
}

// finish reads the run's transcript and decides the row.
func (r *Result) finish(runErr error, plan []Step) {
	f, err := os.Open(r.Log)
	if err == nil {
		r.Transcript, err = ParseTranscript(f)
		f.Close()
	}
	if r.Transcript != nil && r.Transcript.Kernel != "" {
		r.Kernel = r.Transcript.Kernel
	}
	var checkErr error
	if r.Transcript != nil {
		checkErr = r.Transcript.Check(plan)
	}
	if all := errors.Join(runErr, err, checkErr); all != nil {
		r.Error = strings.ReplaceAll(all.Error(), "\n", "; ")
		return
	}
	r.Pass = true
}

// initramfs writes k's initramfs into the cache and returns its path.
func (cfg Config) initramfs(ctx context.Context, k *Kernel, bins map[string]string) (string, error) {
	if libs, err := SharedLibraries(ctx, cfg.Busybox); err != nil || len(libs) > 0 {
		return "", fmt.Errorf("kernels: %s is not a static busybox (install busybox-static): %v", cfg.Busybox, err)
	}
	spec := &Initramfs{Busybox: cfg.Busybox, Tools: cfg.Tools, TestBinaries: bins, Plan: cfg.Plan, ModulesDir: k.ModulesDir}
	for _, t := range cfg.Tools {
		libs, err := SharedLibraries(ctx, t)
		if err != nil {
			return "", err
		}
		for _, l := range libs {
			if !slices.Contains(spec.Libraries, l) {
				spec.Libraries = append(spec.Libraries, l)
			}
		}
	}
	if k.ModulesDir != "" {
		tree, err := OpenModuleTree(k.ModulesDir)
		if err != nil {
			return "", err
		}
		if spec.Modules, err = tree.Resolve(GuestModules); err != nil {
			return "", err
		}
	}
	dir := filepath.Join(cfg.CacheDir, "initramfs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("kernels: %w", err)
	}
	dst := filepath.Join(dir, k.Release+".cpio.gz")
	if err := spec.WriteFile(dst); err != nil {
		return "", err
	}
	return dst, nil
}

func (cfg Config) logPath(name string) string {
	return filepath.Join(cfg.CacheDir, "logs", name+".log")
}

// LookTools finds the named binaries on PATH.
func LookTools(names ...string) ([]string, error) {
	var paths []string
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			return nil, fmt.Errorf("kernels: %s (install iproute2): %w", n, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return !errors.Is(err, fs.ErrNotExist)
}

// kernelReportLines is how much of a kernel's bug report is printed: the
// report line, the registers and both CPUs' backtraces.
const kernelReportLines = 120

// printKernelReport prints n lines of a run's log from the kernel's first
// fatal report on (a soft lockup's registers and backtraces).
func printKernelReport(w io.Writer, path string, n int) {
	var report []string
	err := scanLog(path, func(line string) bool {
		if len(report) == 0 {
			if msg, _, ok := kernelReport(line); !ok || !fatalKernelError(msg) {
				return true
			}
		}
		report = append(report, line)
		return len(report) < n
	})
	if err != nil {
		fmt.Fprintf(w, "kernels: log: %v\n", err)
		if len(report) == 0 {
			return
		}
	}
	fmt.Fprintf(w, "----- the kernel's report in %s -----\n%s\n-----\n", path, strings.Join(report, "\n"))
}

// printTail prints the last n lines of a run's log.
func printTail(w io.Writer, path string, n int) {
	if path == "" || n <= 0 {
		return
	}
	var ring []string
	err := scanLog(path, func(line string) bool {
		ring = append(ring, line)
		if len(ring) > n {
			ring = ring[1:]
		}
		return true
	})
	if err != nil {
		fmt.Fprintf(w, "kernels: log: %v\n", err)
		if len(ring) == 0 {
			return
		}
	}
	fmt.Fprintf(w, "----- last %d lines of %s -----\n%s\n-----\n", len(ring), path, strings.Join(ring, "\n"))
}

// scanLog calls each with every line of a run's log, its carriage return
// trimmed, until each returns false; an error (the log cannot be opened,
// or a read failed) comes after the lines read before it.
func scanLog(path string, each func(line string) bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		if !each(strings.TrimRight(sc.Text(), "\r")) {
			return nil
		}
	}
	return sc.Err()
}
