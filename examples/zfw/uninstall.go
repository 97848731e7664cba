package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/control"
)

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
