package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/zfw-go/zfw/examples/internal/zfwargs"
	"github.com/zfw-go/zfw/zfw/control"
)

// monitor is -M <ifname|all> [-W file]: the dataplane's events, a line
// each in the C zfw's format, as they happen, until zfw is interrupted.
// With -W they are appended to the file instead of printed.
func monitor(ctx context.Context, cmd zfwargs.Command, ctl control.Controller, stdout, stderr io.Writer) error {
	out := stdout
	if cmd.LogFile != "" {
		f, err := os.OpenFile(cmd.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return fmt.Errorf("-W: %w", err)
		}
		defer f.Close()
		out = f
	}
	events, err := ctl.Monitor(ctx, cmd.Interface)
	if err != nil {
		return err
	}
	for ev := range events {
		if _, err := fmt.Fprintln(out, ev); err != nil {
			return fmt.Errorf("monitor: %w", err)
		}
	}
	if ctx.Err() != nil {
		return nil // interrupted: the way a monitor ends
	}
	return errors.New("monitor: the dataplane's owner stopped")
}
