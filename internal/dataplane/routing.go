package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

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

// localSourceProtocol marks the routes of local sources (rtm_protocol),
// so that the next owner of the pins, and Uninstall, find them among
// the namespace's routes.
const localSourceProtocol = 250

// localSourceRoute is the route that makes p local: in table local, on
// lo, as `ip route add local p dev lo` makes it.
func (d *Dataplane) localSourceRoute(p netip.Prefix) (*netlink.Route, error) {
	lo, err := d.nl.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("find lo: %w", err)
	}
	family := unix.AF_INET
	if p.Addr().Is6() {
		family = unix.AF_INET6
	}
	return &netlink.Route{
		Family:    family,
		LinkIndex: lo.Attrs().Index,
		Dst:       &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
		Table:     unix.RT_TABLE_LOCAL,
		Type:      unix.RTN_LOCAL,
		Scope:     netlink.SCOPE_HOST,
		Protocol:  localSourceProtocol,
	}, nil
}

// AddLocalSource makes the addresses of p local to the namespace.
func (d *Dataplane) AddLocalSource(p netip.Prefix) error {
	rt, err := d.localSourceRoute(p)
	if err == nil {
		err = d.nl.RouteReplace(rt)
	}
	if err != nil {
		return fmt.Errorf("local route for %s: %w", p, err)
	}
	return nil
}

// RemoveLocalSource takes back what AddLocalSource(p) did; a route
// already gone is no error.
func (d *Dataplane) RemoveLocalSource(p netip.Prefix) error {
	rt, err := d.localSourceRoute(p)
	if err == nil {
		if err = d.nl.RouteDel(rt); errors.Is(err, unix.ESRCH) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("delete local route for %s: %w", p, err)
	}
	return nil
}

// LocalSources lists the prefixes AddLocalSource made local, by this
// process or an earlier owner.
func (d *Dataplane) LocalSources() ([]netip.Prefix, error) {
	routes, err := whole(func() ([]netlink.Route, error) {
		return d.nl.RouteListFiltered(unix.AF_UNSPEC,
			&netlink.Route{Table: unix.RT_TABLE_LOCAL, Protocol: localSourceProtocol},
			netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	})
	if err != nil {
		return nil, fmt.Errorf("list local routes: %w", err)
	}
	var out []netip.Prefix
	for _, rt := range routes {
		if rt.Dst == nil {
			continue
		}
		a, ok := netip.AddrFromSlice(rt.Dst.IP)
		ones, _ := rt.Dst.Mask.Size()
		if ok {
			if rt.Family == unix.AF_INET {
				a = a.Unmap()
			}
			out = append(out, netip.PrefixFrom(a, ones))
		}
	}
	return out, nil
}

// RemoveLocalSources removes every local source.
func (d *Dataplane) RemoveLocalSources() error {
	ps, err := d.LocalSources()
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range ps {
		errs = append(errs, d.RemoveLocalSource(p))
	}
	return errors.Join(errs...)
}
