package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/zfw-go/zfw/examples/internal/zfwargs"
	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/control"
)

// listTitles heads each list in zfw -L -Y, -U, -C.
var listTitles = map[string]string{
	control.ListDDoSSources: "DDoS allow-list (only these sources open connections to guarded ports once any is listed)",
	control.ListDDoSBans:    "banned now for flooding SYNs",
	control.ListDDoSPorts:   "ports DDoS protection guards (none: every port)",
	control.ListDNP3Codes:   "DNP3 function codes allowed",
}

// listMembers is -L -Y, -L -U, -L -C: one of the dataplane's lists, a
// member per line. -Y shows the bans too: this zfw bans flooding sources
// by itself.
func listMembers(ctx context.Context, cmd zfwargs.Command, ctl control.Controller, stdout io.Writer) error {
	names := []string{cmd.List}
	if cmd.List == control.ListDDoSSources {
		names = append(names, control.ListDDoSBans)
	}
	for _, name := range names {
		members, err := ctl.Members(ctx, name)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %d\n", listTitles[name], len(members))
		for _, m := range members {
			fmt.Fprintln(stdout, m)
		}
	}
	return nil
}

// flushMembers is -F -Y, -F -U, -F -C, -F -j: the list is emptied,
// member by member (a local source as often as it was added).
func flushMembers(ctx context.Context, cmd zfwargs.Command, ctl control.Controller) error {
	members, err := ctl.Members(ctx, cmd.List)
	if err != nil {
		return err
	}
	for i, m := range members {
		if err := ctl.SetMember(ctx, cmd.List, m, false); err != nil {
			return fmt.Errorf("%w (%d of %d removed)", err, i, len(members))
		}
	}
	return nil
}

// setMember is -y, -u, -g: a member added to a list, or removed with -d;
// -B adds a local source and -J removes one. Removing what is not there
// succeeds, as the C zfw's callers expect.
func setMember(ctx context.Context, cmd zfwargs.Command, ctl control.Controller, _, stderr io.Writer) error {
	err := ctl.SetMember(ctx, cmd.List, cmd.Member, !cmd.Off)
	if cmd.Off && errors.Is(err, zfw.ErrNotFound) {
		fmt.Fprintf(stderr, "zfw: %v: nothing to remove\n", err)
		return nil
	}
	return err
}
