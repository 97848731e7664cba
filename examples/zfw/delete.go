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

// deleteRule is -D: the rule with the command's match goes (from the
// interfaces -N names, if any).
func deleteRule(ctx context.Context, cmd zfwargs.Command, ctl control.Controller, _, stderr io.Writer) error {
	_, err := ctl.Delete(ctx, cmd.Rule.Match)
	if errors.Is(err, zfw.ErrNotFound) {
		// As the C zfw: deleting what is not there succeeds. OpenZiti's
		// router deletes every intercept at each service change and
		// restart, and logs any other exit as an error.
		fmt.Fprintf(stderr, "zfw: %v: nothing to delete\n", err)
		return nil
	}
	return err
}
