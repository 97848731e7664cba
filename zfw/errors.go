package zfw

import (
	"errors"
	"fmt"

	"github.com/zfw-go/zfw/internal/dataplane"
)

var (
	// ErrNotFound reports a service or rule that is not registered.
	ErrNotFound = errors.New("not found")
	// ErrConflict reports a change that contradicts itself, such as a
	// Sync listing one service twice.
	ErrConflict = errors.New("conflict")
	// ErrClosed reports use of a closed Firewall.
	ErrClosed = errors.New("firewall closed")
	// ErrBusy reports, from New, a pin folder that another process
	// owns: one Firewall at a time holds a dataplane.
	ErrBusy = dataplane.ErrBusy
	// ErrNoDataplane reports, from a RulesOnly New, that nothing is
	// pinned at the pin folder.
	ErrNoDataplane = dataplane.ErrNoDataplane
)

// LimitError reports a change that would exceed a map's capacity. Nothing
// was changed.
type LimitError struct {
	// Limit names the map or limit, e.g. "range_map".
	Limit string
	// Max is the capacity; Have what the change would need.
	Max, Have int
	// Err is the kernel's error, when the kernel reported the limit.
	Err error
}

// Error says which limit the change would exceed.
func (e *LimitError) Error() string {
	if e.Max > 0 {
		return fmt.Sprintf("%s full: %d needed, %d at most", e.Limit, e.Have, e.Max)
	}
	return fmt.Sprintf("%s full: %v", e.Limit, e.Err)
}

// Unwrap returns the kernel's error, if any.
func (e *LimitError) Unwrap() error { return e.Err }
