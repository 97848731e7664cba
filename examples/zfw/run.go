package main

import (
	"context"
	"fmt"
	"io"

	"github.com/zfw-go/zfw/examples/internal/zfwargs"
	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/control"
)

// Environment variables that say where the dataplane is.
const (
	envPinPath = "ZFW_PIN_PATH"
	envSocket  = "ZFW_CONTROL_SOCKET"
)

// A verb runs one operation through the dataplane's controller: its
// owner's control socket, or the kept dataplane itself. Each has its own
// file.
type verb func(ctx context.Context, cmd zfwargs.Command, ctl control.Controller, stdout, stderr io.Writer) error

var verbs = map[zfwargs.Operation]verb{
	zfwargs.OpInsert:       insertRule,
	zfwargs.OpDelete:       deleteRule,
	zfwargs.OpFlush:        flushRules,
	zfwargs.OpList:         list,
	zfwargs.OpSetInterface: setInterface,
	zfwargs.OpSetMember:    setMember,
	zfwargs.OpMonitor:      monitor,
	zfwargs.OpAttach:       attach,
	zfwargs.OpTunnel:       tunnel,
}

// run runs one zfw command line and returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd, err := zfwargs.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "zfw: %v\nTry 'zfw --help'.\n", err)
		return 2
	}
	switch cmd.Op {
	case zfwargs.OpHelp:
		writeUsage(stdout)
		return 0
	case zfwargs.OpVersion:
		// OpenZiti runs -V to probe the diverter; it must not need a
		// running dataplane.
		fmt.Fprintf(stdout, "zfw %s (zfw-go, control protocol %d)\n", control.BuildVersion(), control.ProtocolVersion)
		return 0
	}
	locate(&cmd, getenv)
	if cmd.Op == zfwargs.OpUninstall {
		if err := uninstall(ctx, cmd.PinPath, cmd.Socket, stderr); err != nil {
			fmt.Fprintf(stderr, "zfw: %v\n", err)
			return 1
		}
		return 0
	}
	if cmd.Op == zfwargs.OpUserRules {
		if err := userRules(ctx, cmd, getenv, stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "zfw: %v\n", err)
			return 1
		}
		return 0
	}
	v := verbs[cmd.Op]
	if v == nil {
		fmt.Fprintf(stderr, "zfw: operation %d: not runnable\n", cmd.Op)
		return 1
	}
	ctl, closeCtl, created, err := connect(ctx, cmd.PinPath, cmd.Socket, cmd.Op == zfwargs.OpInsert)
	if err != nil {
		fmt.Fprintf(stderr, "zfw: %v\n", err)
		return 1
	}
	if created {
		fmt.Fprintf(stderr, "zfw: no dataplane was running: created one at %s with no interface attached; "+
			"the program that attaches it (examples/edge-router, or a tunneler built on zfw) adopts its rules when it starts\n", cmd.PinPath)
	}
	err = v(ctx, cmd, ctl, stdout, stderr)
	if cerr := closeCtl(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(stderr, "zfw: %v\n", err)
		return 1
	}
	return 0
}

// locate fills in where the dataplane and its owner's socket are: the
// command line, else the environment, else the defaults.
func locate(cmd *zfwargs.Command, getenv func(string) string) {
	if cmd.PinPath == "" {
		cmd.PinPath = getenv(envPinPath)
	}
	if cmd.PinPath == "" {
		cmd.PinPath = zfw.DefaultPinPath
	}
	if cmd.Socket == "" {
		cmd.Socket = getenv(envSocket)
	}
	if cmd.Socket == "" {
		cmd.Socket = control.SocketPath(cmd.PinPath)
	}
}

func writeUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: zfw -I|-D|-L|-F|-Q|-V [OPTION...], or zfw <interface setting> <ifname|all> [-d]")
	fmt.Fprintln(w, "Changes the rules of a running zfw dataplane, like the C zfw.")
	fmt.Fprintln(w)
	zfwargs.WriteOptions(w)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Exit status: 0 success, 1 failure, 2 bad command line.")
}
