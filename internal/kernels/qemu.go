package kernels

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// QEMU is how guests are run.
type QEMU struct {
	// Binary is qemu-system-x86_64.
	Binary string
	// MemoryMiB and CPUs size the guest.
	MemoryMiB, CPUs int
	// Timeout bounds one guest run, boot to poweroff; qemu is killed when
	// it passes.
	Timeout time.Duration
}

// args are qemu's arguments: TCG (no KVM here), no network device, the
// serial console on stdout, no reboot (the guest's poweroff -f, or a
// panic with panic=-1, ends qemu). A soft lockup panics the guest
// (softlockup_panic) with every CPU's backtrace, so a kernel hang ends the
// run in seconds instead of at the guest's deadline; loglevel 5 lets the
// backtraces (printed at the default level, 4) reach the console.
func (q QEMU) args(k *Kernel, initrd string) []string {
	return []string{
		"-machine", "q35", "-accel", "tcg", "-cpu", "max",
		"-smp", strconv.Itoa(q.CPUs), "-m", strconv.Itoa(q.MemoryMiB),
		"-nographic", "-no-reboot", "-nic", "none", "-monitor", "none",
		"-serial", "stdio",
		"-kernel", k.Image, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 oops=panic softlockup_panic=1 softlockup_all_cpu_backtrace=1 quiet loglevel=5 rdinit=/init",
	}
}

// Boot runs k with initrd under qemu, writing the serial console to
// logPath, and returns how long the guest ran. It fails if qemu fails or
// the deadline passes (qemu is then killed).
func (q QEMU) Boot(ctx context.Context, k *Kernel, initrd, logPath string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, q.Timeout)
	defer cancel()
	log, err := os.Create(logPath)
	if err != nil {
		return 0, fmt.Errorf("kernels: %w", err)
	}
	defer log.Close()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, q.Binary, q.args(k, initrd)...)
	cmd.Stdin = nil
	cmd.Stdout = log
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start)
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return took, fmt.Errorf("kernels: qemu %s: killed after %s (guest timeout)", k.Release, q.Timeout)
	}
	if err != nil {
		return took, fmt.Errorf("kernels: qemu %s: %w: %s", k.Release, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return took, nil
}
