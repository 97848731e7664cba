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
	if _, owner := ctl.(*control.Client); !owner {
		// The settings of an interface belong to the process that
		// attached it: it keeps them across its own restarts.
		return fmt.Errorf("%s: interface settings change through the dataplane's owner, and none serves a control socket here (start it, or point %s / --control-socket at its socket)", cmd.Setting, envSocket)
	}
	return ctl.SetInterface(ctx, cmd.Interface, cmd.Setting, !cmd.Off)
}
