package kernels

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// RunNative runs plan's steps on the host's own kernel with the same
// binaries and the same requirement that privileged tests run, writing
// the same transcript (markers and test output) a guest prints to its
// console into logPath. A failing step is not an error: the transcript
// records it. Errors are for a run that could not be made.
func RunNative(ctx context.Context, bins map[string]string, plan []Step, logPath string) (time.Duration, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return 0, fmt.Errorf("kernels: %w", err)
	}
	defer log.Close()
	work, err := os.MkdirTemp("", "zfw-kernels-native-")
	if err != nil {
		return 0, fmt.Errorf("kernels: %w", err)
	}
	defer os.RemoveAll(work)

	start := time.Now()
	release, err := hostRelease()
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(log, "%s kernel=%s\n", Marker, release)
	for _, s := range plan {
		bin, ok := bins[s.Binary]
		if !ok {
			return time.Since(start), fmt.Errorf("kernels: step %s: no test binary %s", s.Name, s.Binary)
		}
		fmt.Fprintf(log, "%s begin=%s\n", Marker, s.Name)
		rc, took, err := runStep(ctx, bin, s, work, log)
		if err != nil {
			return time.Since(start), fmt.Errorf("kernels: step %s: %w", s.Name, err)
		}
		fmt.Fprintf(log, "%s step=%s rc=%d secs=%.2f\n", Marker, s.Name, rc, took.Seconds())
	}
	fmt.Fprintf(log, "%s done\n", Marker)
	return time.Since(start), nil
}

// runStep runs one test binary, its output into w, bounded by the step's
// timeout plus a minute (the binary's own -test.timeout fires first).
func runStep(ctx context.Context, bin string, s Step, dir string, w io.Writer) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, s.Args()...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), requirePrivileged)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, took, nil
	case errors.As(err, &ee):
		if ee.ExitCode() < 0 {
			return -1, took, nil // killed
		}
		return ee.ExitCode(), took, nil
	default:
		return 0, took, err
	}
}

// hostRelease is the running kernel's uname -r.
func hostRelease() (string, error) {
	data, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "", fmt.Errorf("kernels: kernel release: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}
