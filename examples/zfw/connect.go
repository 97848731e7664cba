package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/control"
)

// busyWait is how long zfw waits for a dataplane that another process
// holds without serving it: another zfw run holds it for milliseconds.
const busyWait = 3 * time.Second

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

// commOf is " (name)" for a process, or "" when it cannot be read.
func commOf(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return " (" + strings.TrimSpace(string(b)) + ")"
}
