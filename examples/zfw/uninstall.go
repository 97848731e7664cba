package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/control"
)

// uninstall is -Q. A dataplane nobody owns goes, all of it. A running
// owner is asked to turn it off as the C zfw's -Q does: every interface
// detached and every rule added with -I flushed; the owner runs on (its
// own intercepts stay, and -X attaches again), and stopping it removes
// the rest. ziti-edge-tunnel runs -Q as it starts and as it stops.
func uninstall(ctx context.Context, pin, socket string, stderr io.Writer) error {
	if c, err := control.Dial(ctx, socket); err == nil {
		defer c.Close()
		if err := c.Detach(ctx, control.AllInterfaces); err != nil {
			return fmt.Errorf("-Q: detach every interface: %w", err)
		}
		if err := c.Flush(ctx, control.BothDirections); err != nil {
			return fmt.Errorf("-Q: flush the rules: %w", err)
		}
		fmt.Fprintf(stderr, "zfw: -Q: the owner serving %s detached every interface and flushed the rules added with -I; it keeps running (stop it to remove the dataplane at %s)\n", socket, pin)
		return nil
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
