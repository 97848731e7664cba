package zfw

import (
	"errors"
	"fmt"

	zmaps "github.com/zfw-go/zfw/internal/maps"

	"github.com/zfw-go/zfw/internal/dataplane"
	"github.com/zfw-go/zfw/internal/rulestore"
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

// limitIfFull gives the error of an insert into the map name as a
// LimitError when the map was full.
func limitIfFull(name string, err error) error {
	if errors.Is(err, zmaps.ErrFull) {
		return &LimitError{Limit: name, Err: err}
	}
	return err
}

// publicError gives a rule-table LimitError in err as the LimitError
// users test for; other errors stay as they are.
func publicError(err error) error {
	var le *rulestore.LimitError
	if errors.As(err, &le) {
		return &LimitError{Limit: le.Limit, Max: le.Max, Have: le.Have, Err: le.Err}
	}
	return err
}
