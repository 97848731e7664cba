package main

import (
	"context"
	"fmt"
	"io"

	"github.com/zfw-go/zfw/examples/internal/zfwargs"
	"github.com/zfw-go/zfw/zfw/control"
)

// attach is -X <if|all> -z ingress|egress [-d] and -H <if|all>: the owner
// attaches the dataplane to the interface, both directions (its egress
// program tracks what the ingress one admits), or detaches it. The C
// zfw's -X -z egress -d takes the egress filter off, which turns the
// interface's outbound filtering and masquerade off; here the program
// stays, and so do those two settings' effects: off.
func attach(ctx context.Context, cmd zfwargs.Command, ctl control.Controller, _, stderr io.Writer) error {
	if err := ownerOnly(ctl, "attaching"); err != nil {
		return err
	}
	if cmd.Note != "" {
		fmt.Fprintf(stderr, "zfw: %s\n", cmd.Note)
	}
	switch {
	case !cmd.Off:
		return ctl.Attach(ctx, cmd.Interface)
	case cmd.Direction == control.Egress:
		for _, setting := range []string{"outbound-filtering", "masquerade"} {
			if err := ctl.SetInterface(ctx, cmd.Interface, setting, false); err != nil {
				return err
			}
		}
		return nil
	}
	return ctl.Detach(ctx, cmd.Interface)
}

// tunnel is -Z <if> [-d]: the owner makes the interface the Ziti tun of
// tunnel mode, its XDP program attached, or turns tunnel mode off.
func tunnel(ctx context.Context, cmd zfwargs.Command, ctl control.Controller, _, stderr io.Writer) error {
	if err := ownerOnly(ctl, "tunnel mode"); err != nil {
		return err
	}
	if cmd.Note != "" {
		fmt.Fprintf(stderr, "zfw: %s\n", cmd.Note)
	}
	if cmd.Off {
		return ctl.SetTunnel(ctx, "")
	}
	return ctl.SetTunnel(ctx, cmd.Interface)
}

// ownerOnly refuses what only the dataplane's owner can do when zfw
// works on a kept dataplane instead.
func ownerOnly(ctl control.Controller, what string) error {
	if _, owner := ctl.(*control.Client); owner {
		return nil
	}
	return fmt.Errorf("%s belongs to the dataplane's owner, and none serves a control socket here: start it (examples/edge-router attaches the interfaces its config names), or point %s / --control-socket at its socket", what, envSocket)
}
