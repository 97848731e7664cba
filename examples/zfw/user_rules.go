package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"

	"github.com/zfw-go/zfw/examples/internal/zfwargs"
)

// envUserRules names the user rules script instead of
// zfwargs.UserRulesScript.
const envUserRules = "ZFW_USER_RULES"

// userRules is -A: it runs the user rules script, a file of zfw command
// lines that the C zfw's packages install and its start-up scripts (and
// ziti-edge-tunnel in firewall mode) run through -A. The script's zfw
// calls reach the same dataplane: it gets where the dataplane is in the
// environment. No script is no error: there are no user rules.
func userRules(ctx context.Context, cmd zfwargs.Command, getenv func(string) string, stdout, stderr io.Writer) error {
	script := getenv(envUserRules)
	if script == "" {
		script = zfwargs.UserRulesScript
	}
	if _, err := os.Stat(script); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stderr, "zfw: -A: no user rules script at %s: nothing to add\n", script)
		return nil
	}
	c := osexec.CommandContext(ctx, script)
	c.Env = append(os.Environ(), envPinPath+"="+cmd.PinPath, envSocket+"="+cmd.Socket)
	c.Stdout, c.Stderr = stdout, stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("-A: user rules script %s: %w", script, err)
	}
	return nil
}
