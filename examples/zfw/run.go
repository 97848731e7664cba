package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/examples/internal/zfwargs"
	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/control"
)

// Environment variables that say where the dataplane is.
const (
	envPinPath = "ZFW_PIN_PATH"
	envSocket  = "ZFW_CONTROL_SOCKET"
)

// busyWait is how long zfw waits for a dataplane that another process
// holds without serving it: another zfw run holds it for milliseconds.
const busyWait = 3 * time.Second

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
	ctl, closeCtl, err := connect(ctx, cmd.PinPath, cmd.Socket)
	if err != nil {
		fmt.Fprintf(stderr, "zfw: %v\n", err)
		return 1
	}
	err = execute(ctx, cmd, ctl, stdout)
	if cerr := closeCtl(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(stderr, "zfw: %v\n", err)
		return 1
	}
	return 0
}

// connect finds who can run the operations: the owner's control socket,
// or else the pinned dataplane itself when nobody holds it.
func connect(ctx context.Context, pin, socket string) (control.Controller, func() error, error) {
	deadline := time.Now().Add(busyWait)
	for {
		if c, err := control.Dial(ctx, socket); err == nil {
			return c, c.Close, nil
		}
		log := logrus.New()
		log.SetLevel(logrus.WarnLevel)
		fw, err := zfw.New(zfw.Options{PinPath: pin, RulesOnly: true, Logger: log})
		switch {
		case err == nil:
			return control.NewLocal(fw), fw.Close, nil
		case errors.Is(err, zfw.ErrNoDataplane):
			return nil, nil, fmt.Errorf("no dataplane at %s and no control socket at %s: start the program that owns the dataplane first (examples/edge-router, or a tunneler built on zfw), or point %s / --pin-path at its pin folder", pin, socket, envPinPath)
		case !errors.Is(err, zfw.ErrBusy):
			return nil, nil, err
		}
		if time.Now().After(deadline) {
			owner := "another process"
			if pid, ok := lockOwner(pin); ok {
				owner = fmt.Sprintf("pid %d%s", pid, commOf(pid))
			}
			return nil, nil, fmt.Errorf("dataplane at %s is owned by %s but has no control socket at %s", pin, owner, socket)
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// execute runs the operation.
func execute(ctx context.Context, cmd zfwargs.Command, ctl control.Controller, stdout io.Writer) error {
	switch cmd.Op {
	case zfwargs.OpInsert:
		_, err := ctl.Insert(ctx, cmd.Rule)
		return err
	case zfwargs.OpDelete:
		_, err := ctl.Delete(ctx, cmd.Rule.Match)
		return err
	case zfwargs.OpFlush:
		return ctl.Flush(ctx)
	case zfwargs.OpList:
		l, err := ctl.List(ctx)
		if err != nil {
			return err
		}
		rules := l.Rules[:0:0]
		for _, r := range l.Rules {
			if (cmd.OnlyIntercepts && r.Action != zfw.TProxy) || (cmd.OnlyPassthrough && r.Action != zfw.Pass) {
				continue
			}
			rules = append(rules, r)
		}
		return zfw.WriteTable(stdout, rules, l.Usage)
	}
	return fmt.Errorf("operation %d: not runnable", cmd.Op)
}

func writeUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: zfw -I|-D|-L|-F|-V [OPTION...]")
	fmt.Fprintln(w, "Changes the rules of a running zfw dataplane, like the C zfw.")
	fmt.Fprintln(w)
	zfwargs.WriteOptions(w)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Exit status: 0 success, 1 failure, 2 bad command line.")
}

// commOf is " (name)" for a process, or "" when it cannot be read.
func commOf(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return " (" + strings.TrimSpace(string(b)) + ")"
}
