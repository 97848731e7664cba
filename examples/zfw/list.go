package main

import (
	"context"
	"io"

	"github.com/zfw-go/zfw/examples/internal/listing"
	"github.com/zfw-go/zfw/examples/internal/zfwargs"
	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/control"
)

// list is -L: the rules (only intercepts with -i, only pass-through
// rules with -f, one direction with -z) and how full the maps are; with
// -E, the managed interfaces instead (list_interfaces.go); with -Y, -U
// or -C, one of the dataplane's lists (lists.go); with -G, the sessions
// (list_sessions.go).
func list(ctx context.Context, cmd zfwargs.Command, ctl control.Controller, stdout, _ io.Writer) error {
	if cmd.List != "" {
		return listMembers(ctx, cmd, ctl, stdout)
	}
	if cmd.Sessions {
		s, err := ctl.Sessions(ctx)
		if err != nil {
			return err
		}
		return writeSessions(stdout, s)
	}
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
		if cmd.Direction != control.BothDirections && (cmd.Direction == control.Egress) != r.Egress {
			continue
		}
		rules = append(rules, r)
	}
	return listing.Rules(stdout, rules, l.Usage)
}
