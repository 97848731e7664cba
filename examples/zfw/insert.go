package main

import (
	"context"
	"io"

	"github.com/zfw-go/zfw/examples/internal/zfwargs"
	"github.com/zfw-go/zfw/zfw/control"
)

// insertRule is -I: one rule, ingress or (-z egress) egress. Inserting
// what is there changes nothing; the same match with another effect
// replaces it in one step.
func insertRule(ctx context.Context, cmd zfwargs.Command, ctl control.Controller, _, _ io.Writer) error {
	_, err := ctl.Insert(ctx, cmd.Rule)
	return err
}
