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
	if cmd.Op == zfwargs.OpUninstall {
		if err := uninstall(ctx, cmd.PinPath, cmd.Socket); err != nil {
			fmt.Fprintf(stderr, "zfw: %v\n", err)
			return 1
		}
		return 0
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
	err = execute(ctx, cmd, ctl, stdout, stderr)
	if cerr := closeCtl(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(stderr, "zfw: %v\n", err)
		return 1
	}
	return 0
}

// uninstall is -Q: it removes a dataplane nobody owns, all of it. An
// owner that runs is asked to do nothing: stopping it without keeping
// the dataplane removes everything, and removing its dataplane under it
// would leave it running blind.
func uninstall(ctx context.Context, pin, socket string) error {
	if c, err := control.Dial(ctx, socket); err == nil {
		c.Close()
		return fmt.Errorf("-Q: the dataplane at %s is owned by the process serving %s: stop it, and it removes everything unless it keeps the dataplane", pin, socket)
	}
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	err := zfw.Uninstall(ctx, zfw.Options{PinPath: pin, Logger: log})
	if errors.Is(err, zfw.ErrBusy) {
		owner := "another process"
		if pid, ok := lockOwner(pin); ok {
			owner = fmt.Sprintf("pid %d%s", pid, commOf(pid))
		}
		return fmt.Errorf("-Q: the dataplane at %s is owned by %s: stop it first", pin, owner)
	}
	return err
}

// connect finds who can run the operations: the owner's control socket,
// or else the pinned dataplane itself when nobody holds it. When nothing
// is pinned and create is set (an insert), it creates the dataplane, with
// no interface attached, and keeps it: a router may call zfw -I before the
// program that attaches the dataplane starts, and that program then adopts
// the rules instead of losing them. created reports that it did.
func connect(ctx context.Context, pin, socket string, create bool) (ctl control.Controller, closeCtl func() error, created bool, err error) {
	deadline := time.Now().Add(busyWait)
	for {
		if c, err := control.Dial(ctx, socket); err == nil {
			return c, c.Close, false, nil
		}
		log := logrus.New()
		log.SetLevel(logrus.WarnLevel)
		fw, err := zfw.New(zfw.Options{PinPath: pin, RulesOnly: true, Logger: log})
		if errors.Is(err, zfw.ErrNoDataplane) && create {
			fw, err = zfw.New(zfw.Options{PinPath: pin, KeepOnClose: true, Logger: log})
			created = err == nil
		}
		switch {
		case err == nil:
			return control.NewLocal(fw), fw.Close, created, nil
		case errors.Is(err, zfw.ErrNoDataplane):
			return nil, nil, false, fmt.Errorf("no dataplane at %s and no control socket at %s: start the program that owns the dataplane first (examples/edge-router, or a tunneler built on zfw), or point %s / --pin-path at its pin folder", pin, socket, envPinPath)
		case !errors.Is(err, zfw.ErrBusy):
			return nil, nil, false, err
		}
		if time.Now().After(deadline) {
			owner := "another process"
			if pid, ok := lockOwner(pin); ok {
				owner = fmt.Sprintf("pid %d%s", pid, commOf(pid))
			}
			return nil, nil, false, fmt.Errorf("dataplane at %s is owned by %s but has no control socket at %s", pin, owner, socket)
		}
		select {
		case <-ctx.Done():
			return nil, nil, false, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// execute runs the operation.
func execute(ctx context.Context, cmd zfwargs.Command, ctl control.Controller, stdout, stderr io.Writer) error {
	switch cmd.Op {
	case zfwargs.OpInsert:
		_, err := ctl.Insert(ctx, cmd.Rule)
		return err
	case zfwargs.OpDelete:
		_, err := ctl.Delete(ctx, cmd.Rule.Match)
		if errors.Is(err, zfw.ErrNotFound) {
			// As the C zfw: deleting what is not there succeeds. OpenZiti's
			// router deletes every intercept at each service change and
			// restart, and logs any other exit as an error.
			fmt.Fprintf(stderr, "zfw: %v: nothing to delete\n", err)
			return nil
		}
		return err
	case zfwargs.OpFlush:
		return ctl.Flush(ctx)
	case zfwargs.OpSetInterface:
		if _, owner := ctl.(*control.Client); !owner {
			// The settings of an interface belong to the process that
			// attached it: it keeps them across its own restarts.
			return fmt.Errorf("%s: interface settings change through the dataplane's owner, and none serves a control socket here (start it, or point %s / --control-socket at its socket)", cmd.Setting, envSocket)
		}
		return ctl.SetInterface(ctx, cmd.Interface, cmd.Setting, !cmd.Off)
	case zfwargs.OpList:
		if cmd.Interfaces {
			ifs, err := ctl.Interfaces(ctx)
			if err != nil {
				return err
			}
			return writeInterfaces(stdout, ifs)
		}
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
