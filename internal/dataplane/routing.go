package dataplane

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// routing is, per family, the fwmark rule and the local default route that
// make every steered packet local: after bpf_sk_assign the kernel still
// routes the packet, and one rule serves any number of services.
func (d *Dataplane) routes() ([]*netlink.Rule, []*netlink.Route, error) {
	lo, err := d.nl.LinkByName("lo")
	if err != nil {
		return nil, nil, fmt.Errorf("find lo: %w", err)
	}
	var rules []*netlink.Rule
	var routes []*netlink.Route
	for _, fam := range []struct {
		family int
		dst    *net.IPNet
	}{
		{unix.AF_INET, &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}},
		{unix.AF_INET6, &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}},
	} {
		r := netlink.NewRule()
		r.Family = fam.family
		r.Mark = d.cfg.Mark
		mask := d.cfg.Mark
		r.Mask = &mask
		r.Table = d.cfg.Table
		r.Priority = d.cfg.RulePriority
		rules = append(rules, r)
		routes = append(routes, &netlink.Route{
			Family:    fam.family,
			LinkIndex: lo.Attrs().Index,
			Dst:       fam.dst,
			Table:     d.cfg.Table,
			Type:      unix.RTN_LOCAL,
			Scope:     netlink.SCOPE_HOST,
		})
	}
	return rules, routes, nil
}

// InstallRouting adds the policy routing; it is idempotent.
func (d *Dataplane) InstallRouting() error {
	rules, routes, err := d.routes()
	if err != nil {
		return fmt.Errorf("policy routing: %w", err)
	}
	for _, rt := range routes {
		if err := d.nl.RouteReplace(rt); err != nil {
			return fmt.Errorf("policy routing: add local default route to table %d: %w", d.cfg.Table, err)
		}
	}
	for _, r := range rules {
		if err := d.nl.RuleAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("policy routing: add fwmark %#x rule: %w", d.cfg.Mark, err)
		}
	}
	d.routing = true
	return nil
}

// RemoveRouting deletes what InstallRouting added.
func (d *Dataplane) RemoveRouting() error {
	rules, routes, err := d.routes()
	if err != nil {
		return fmt.Errorf("policy routing: %w", err)
	}
	var errs []error
	for _, r := range rules {
		if err := d.nl.RuleDel(r); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("delete fwmark rule: %w", err))
		}
	}
	for _, rt := range routes {
		if err := d.nl.RouteDel(rt); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete local route: %w", err))
		}
	}
	d.routing = false
	return errors.Join(errs...)
}
