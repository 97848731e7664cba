package zfw

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// Uninstall removes a dataplane that no process owns, as `zfw -Q` does:
// it detaches the programs from every interface (pinned TCX links, and
// the clsact filters of kernels without TCX), removes the policy routing
// (for opts.Mark, Table and RulePriority: the defaults unless the owner
// set others) and deletes the pins under opts.PinPath. Nothing pinned
// there is not an error. A dataplane a running process owns is not
// touched: the error wraps ErrBusy.
func Uninstall(ctx context.Context, opts Options) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	pin := opts.PinPath
	if pin == "" {
		pin = DefaultPinPath
	}
	if _, err := os.Stat(pin); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	opts.PinPath = pin
	opts.Interfaces = nil
	opts.KeepOnClose = false
	opts.RulesOnly = false
	fw, err := New(opts)
	if err != nil {
		return fmt.Errorf("uninstall %s: %w", pin, err)
	}
	// New detached the stale TCX links (it manages no interface); the
	// clsact filters and the routing the owner left are removed here.
	err = errors.Join(fw.dp.RemoveFilters(), fw.dp.RemoveRouting(), fw.Close())
	if err != nil {
		return fmt.Errorf("uninstall %s: %w", pin, err)
	}
	return nil
}
