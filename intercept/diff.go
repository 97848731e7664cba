package intercept

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// ErrDuplicateServiceID is wrapped by the error Diff returns when one set
// lists a service id twice.
var ErrDuplicateServiceID = errors.New("duplicate service id")

// Delta is what turns one set of intercepts into another, by service id.
// Each list is sorted by service id. Its intercepts are the ones given to
// Diff, not normalised copies, and share their slices.
type Delta struct {
	// Added are the intercepts of services only in the desired set.
	Added []Intercept
	// Removed are the intercepts of services only in the current set.
	Removed []Intercept
	// Changed are the services in both sets whose intercepts are not
	// Equal.
	Changed []Change
}

// Change is a service whose intercept differs between two sets.
type Change struct {
	// Old is the intercept in the current set.
	Old Intercept
	// New is the intercept in the desired set.
	New Intercept
}

// Empty reports whether the delta changes nothing.
func (d Delta) Empty() bool {
	return len(d.Added) == 0 && len(d.Removed) == 0 && len(d.Changed) == 0
}

// Diff compares the current intercepts with the desired ones, matching
// them by service id. A service whose intercepts are Equal in both sets,
// whatever the order of their lists, appears in no list of the Delta.
//
// A service id listed twice in either set is an error wrapping
// ErrDuplicateServiceID, and the Delta is empty. Diff does not validate
// the intercepts; the caller validates the desired ones before applying
// the Delta.
func Diff(current, desired []Intercept) (Delta, error) {
	cur, err := byServiceID(current, "current")
	if err != nil {
		return Delta{}, err
	}
	want, err := byServiceID(desired, "desired")
	if err != nil {
		return Delta{}, err
	}

	var d Delta
	for id, k := range want {
		old, ok := cur[id]
		switch {
		case !ok:
			d.Added = append(d.Added, desired[k])
		case !current[old].Equal(desired[k]):
			d.Changed = append(d.Changed, Change{Old: current[old], New: desired[k]})
		}
	}
	for id, k := range cur {
		if _, ok := want[id]; !ok {
			d.Removed = append(d.Removed, current[k])
		}
	}

	byID := func(a, b Intercept) int { return cmp.Compare(a.ServiceID, b.ServiceID) }
	slices.SortFunc(d.Added, byID)
	slices.SortFunc(d.Removed, byID)
	slices.SortFunc(d.Changed, func(a, b Change) int { return byID(a.New, b.New) })
	return d, nil
}

// byServiceID maps each service id of set to its index, rejecting a
// service id listed twice. name names the set in the error.
func byServiceID(set []Intercept, name string) (map[string]int, error) {
	m := make(map[string]int, len(set))
	for k, ic := range set {
		if first, dup := m[ic.ServiceID]; dup {
			return nil, fmt.Errorf("intercept %q: %s[%d] and %s[%d]: %w",
				ic.ServiceID, name, first, name, k, ErrDuplicateServiceID)
		}
		m[ic.ServiceID] = k
	}
	return m, nil
}
