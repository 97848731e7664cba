package main

import (
	"context"
	"fmt"
	"io"

	"github.com/zfw-go/zfw/examples/internal/zfwargs"
	"github.com/zfw-go/zfw/zfw/control"
)

// setInterface is an interface setting (-e, -v, -k, ...): on, or off
// with -d, on one managed interface or all of them, live.
func setInterface(ctx context.Context, cmd zfwargs.Command, ctl control.Controller, _, _ io.Writer) error {
	// The settings of an interface belong to the process that attached
	// it: it keeps them across its own restarts.
	if err := ownerOnly(ctl, "changing interface settings"); err != nil {
		return fmt.Errorf("%s: %w", cmd.Setting, err)
	}
	return ctl.SetInterface(ctx, cmd.Interface, cmd.Setting, !cmd.Off)
}
