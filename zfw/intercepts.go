package zfw

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/internal/policy"
)

// Register installs a service's intercept: from its return on, new flows
// to the intercept's addresses and ports go to its TPROXY listener.
// Registering a service id again replaces its intercept in one step.
// Register is all-or-nothing: on error the dataplane is as it was.
func (f *Firewall) Register(ctx context.Context, ic intercept.Intercept) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(ctx); err != nil {
		return err
	}
	if err := ic.Validate(); err != nil {
		return fmt.Errorf("register: %w", err)
	}
	ic = ic.Normalize()
	old := f.services[ic.ServiceID]
	if old != nil && old.ic.Equal(ic) {
		return nil
	}
	rules, err := f.expand(ic)
	if err != nil {
		return fmt.Errorf("register %q: %w", ic.ServiceID, err)
	}
	var remove []uint32
	if old != nil {
		remove = old.ids
	}
	if err := f.change(rules, remove); err != nil {
		return fmt.Errorf("register %q: %w", ic.ServiceID, err)
	}
	f.services[ic.ServiceID] = &service{ic: ic, ids: ruleIDs(rules)}
	return nil
}

// Unregister removes a service's intercept. New flows to its addresses
// are no longer steered. An unknown id returns an error wrapping
// ErrNotFound.
func (f *Firewall) Unregister(ctx context.Context, serviceID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(ctx); err != nil {
		return err
	}
	svc := f.services[serviceID]
	if svc == nil {
		return fmt.Errorf("unregister %q: %w", serviceID, ErrNotFound)
	}
	if err := f.change(nil, svc.ids); err != nil {
		return fmt.Errorf("unregister %q: %w", serviceID, err)
	}
	delete(f.services, serviceID)
	return nil
}

// Sync makes the registered intercepts equal to desired, touching only
// the services that differ: new ones are added, missing ones removed,
// changed ones replaced. It is one all-or-nothing change.
func (f *Firewall) Sync(ctx context.Context, desired []intercept.Intercept) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(ctx); err != nil {
		return err
	}
	want := make(map[string]intercept.Intercept, len(desired))
	for i, ic := range desired {
		if err := ic.Validate(); err != nil {
			return fmt.Errorf("sync: intercepts[%d]: %w", i, err)
		}
		if _, dup := want[ic.ServiceID]; dup {
			return fmt.Errorf("sync: intercepts[%d]: service %q listed twice: %w", i, ic.ServiceID, ErrConflict)
		}
		want[ic.ServiceID] = ic.Normalize()
	}
	var (
		add     []*policy.Rule
		remove  []uint32
		updated = make(map[string]*service)
		gone    []string
	)
	for id, svc := range f.services {
		if _, ok := want[id]; !ok {
			remove = append(remove, svc.ids...)
			gone = append(gone, id)
		}
	}
	// Sorted, so insertion order (and so precedence among equal prefixes)
	// does not depend on map iteration.
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		ic := want[id]
		old := f.services[id]
		if old != nil && old.ic.Equal(ic) {
			continue
		}
		rules, err := f.expand(ic)
		if err != nil {
			return fmt.Errorf("sync %q: %w", id, err)
		}
		if old != nil {
			remove = append(remove, old.ids...)
		}
		add = append(add, rules...)
		updated[id] = &service{ic: ic, ids: ruleIDs(rules)}
	}
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	if err := f.change(add, remove); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	for _, id := range gone {
		delete(f.services, id)
	}
	for id, svc := range updated {
		f.services[id] = svc
	}
	return nil
}

// Intercepts returns the registered intercepts, sorted by service id.
func (f *Firewall) Intercepts() []intercept.Intercept {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]intercept.Intercept, 0, len(f.services))
	for _, svc := range f.services {
		out = append(out, svc.ic)
	}
	slices.SortFunc(out, func(a, b intercept.Intercept) int { return cmp.Compare(a.ServiceID, b.ServiceID) })
	return out
}

// expand turns an intercept into rules with ids and insertion order.
func (f *Firewall) expand(ic intercept.Intercept) ([]*policy.Rule, error) {
	// Refuse before allocating: an intercept can name enough ranges and
	// addresses to expand into more rules than memory holds.
	if n, limit := ic.RuleCount(), int(f.tbl.Maps.Ranges.MaxEntries()); n > limit {
		return nil, &LimitError{Limit: "range_map", Max: limit, Have: n}
	}
	rules, err := ic.Rules(f.ifindex)
	if err != nil {
		return nil, err
	}
	out := make([]*policy.Rule, len(rules))
	for i := range rules {
		r := rules[i]
		r.Intercept = true
		out[i] = &r
	}
	f.tbl.Assign(out)
	return out, nil
}

// change plans and applies one change to the rule maps.
func (f *Firewall) change(add []*policy.Rule, remove []uint32) error {
	p, err := f.tbl.Plan(add, remove, nil)
	if err != nil {
		return publicError(err)
	}
	if err := f.tbl.Apply(p); err != nil {
		return publicError(err)
	}
	f.handOverListeners(add)
	return nil
}

func ruleIDs(rules []*policy.Rule) []uint32 {
	ids := make([]uint32, len(rules))
	for i, r := range rules {
		ids[i] = r.ID
	}
	return ids
}

// adoptServices rebuilds the registered intercepts from the rules an
// adopted dataplane holds. An intercept expands into the product of its
// protocols, addresses, ports and sources, so the sets of each recover it.
func (f *Firewall) adoptServices() {
	byService := make(map[string][]*policy.Rule)
	for _, r := range f.tbl.Rules {
		if r.Intercept {
			byService[r.ServiceID] = append(byService[r.ServiceID], r)
		}
	}
	for id, rules := range byService {
		ic := intercept.Intercept{ServiceID: id}
		protos := make(map[intercept.Protocol]bool)
		addrs := make(map[netip.Prefix]bool)
		ports := make(map[intercept.PortRange]bool)
		srcs := make(map[netip.Prefix]bool)
		ifs := make(map[string]bool)
		ids := make([]uint32, 0, len(rules))
		for _, r := range rules {
			ic.ServiceName = r.ServiceName
			ic.TProxyPort = r.TProxyPort
			protos[protoOf(r.Proto)] = true
			addrs[r.Dst] = true
			ports[intercept.PortRange{Low: r.PortLow, High: r.PortHigh}] = true
			if r.Src.IsValid() {
				srcs[r.Src] = true
			}
			for _, ifx := range r.Interfaces {
				ifs[f.ifname(ifx)] = true
			}
			ids = append(ids, r.ID)
		}
		for p := range protos {
			ic.Protocols = append(ic.Protocols, p)
		}
		for a := range addrs {
			ic.Addresses = append(ic.Addresses, a)
		}
		for p := range ports {
			ic.Ports = append(ic.Ports, p)
		}
		for s := range srcs {
			ic.SourcePrefixes = append(ic.SourcePrefixes, s)
		}
		for n := range ifs {
			ic.Interfaces = append(ic.Interfaces, n)
		}
		f.services[id] = &service{ic: ic.Normalize(), ids: ids}
	}
}
