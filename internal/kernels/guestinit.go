package kernels

import (
	"fmt"
	"path"
	"strings"

	"github.com/zfw-go/zfw/testenv"
)

// Paths inside the initramfs.
const (
	guestBinDir    = "/zfw"     // test binaries
	guestModuleDir = "/modules" // modules, named NN-name.ko in load order
)

// requirePrivileged turns a skipped privileged test into a failure.
const requirePrivileged = testenv.RequireEnv + "=1"

// guestEnv is the environment the tests run with, in the guest and
// natively: a skipped privileged test fails.
var guestEnv = []string{
	requirePrivileged,
	"PATH=/sbin:/bin:/usr/sbin:/usr/bin",
	"HOME=/tmp",
	"TMPDIR=/tmp",
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// guestModulePath is where the i-th module to load lives in the guest.
func guestModulePath(i int, file string) string {
	return path.Join(guestModuleDir, fmt.Sprintf("%02d-%s.ko", i, moduleName(file)))
}

// initScript is the guest's /init (run by busybox sh): it mounts what the
// tests need, loads modules in order, runs every step, prints a marker
// line per step with its exit code and time, and powers the guest off.
func initScript(modules []string, plan []Step) string {
	var b strings.Builder
	b.WriteString(`#!/bin/busybox sh
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mkdir -p /proc /sys /dev /tmp /run
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /run/netns /sys/fs/bpf
mount -t bpf bpf /sys/fs/bpf
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
up() { cut -d' ' -f1 /proc/uptime; }
`)
	for _, kv := range guestEnv {
		fmt.Fprintf(&b, "export %s\n", kv)
	}
	fmt.Fprintf(&b, "echo \"%s kernel=$(uname -r)\"\n", Marker)
	for i, m := range modules {
		p := guestModulePath(i, m)
		fmt.Fprintf(&b, "insmod %s; echo \"%s insmod=%s rc=$?\"\n", p, Marker, moduleName(m))
	}
	b.WriteString("ip link set lo up\ncd /tmp\n")
	for _, s := range plan {
		args := make([]string, 0, 8)
		args = append(args, shellQuote(path.Join(guestBinDir, s.Binary)))
		for _, a := range s.Args() {
			args = append(args, shellQuote(a))
		}
		fmt.Fprintf(&b, "echo \"%s begin=%s\"\n", Marker, s.Name)
		b.WriteString("t0=$(up)\n")
		fmt.Fprintf(&b, "%s 2>&1\n", strings.Join(args, " "))
		b.WriteString("rc=$?\nt1=$(up)\n")
		fmt.Fprintf(&b, "echo \"%s step=%s rc=$rc secs=$(awk \"BEGIN{printf \\\"%%.2f\\\", $t1-$t0}\")\"\n", Marker, s.Name)
	}
	fmt.Fprintf(&b, "echo \"%s done\"\n", Marker)
	b.WriteString("sync\npoweroff -f\n")
	return b.String()
}
