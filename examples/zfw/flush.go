package main

import (
	"context"
	"io"

	"github.com/zfw-go/zfw/examples/internal/zfwargs"
	"github.com/zfw-go/zfw/zfw/control"
)

// flushRules is -F: every rule added with -I goes (only one direction's
// with -z), all at once; the intercepts the owner registered stay. With
// -Y, -U, -C or -j it empties that list instead (lists.go).
func flushRules(ctx context.Context, cmd zfwargs.Command, ctl control.Controller, _, _ io.Writer) error {
	if cmd.List != "" {
		return flushMembers(ctx, cmd, ctl)
	}
	return ctl.Flush(ctx, cmd.Direction)
}
