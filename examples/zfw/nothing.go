package main

import (
	"fmt"
	"io"

	"github.com/zfw-go/zfw/examples/internal/zfwargs"
)

// nothingToDo is a C zfw operation this zfw has no need for (-B, -J,
// -F -j): it succeeds without touching the dataplane, and says why on
// stderr, so that scripts written for the C zfw carry on.
func nothingToDo(cmd zfwargs.Command, stderr io.Writer) int {
	fmt.Fprintf(stderr, "zfw: %s\n", cmd.Note)
	return 0
}
