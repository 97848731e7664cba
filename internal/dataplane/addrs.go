package dataplane

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Addresses lists an interface's own addresses, IPv4 and IPv6.
func (d *Dataplane) Addresses(ifindex int) (v4, v6 []netip.Addr, err error) {
	link := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}
	addrs, err := whole(func() ([]netlink.Addr, error) { return d.nl.AddrList(link, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, nil, fmt.Errorf("list addresses of interface %d: %w", ifindex, err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		if ip = ip.Unmap(); ip.Is4() {
			v4 = append(v4, ip)
		} else {
			v6 = append(v6, ip)
		}
	}
	// Global addresses first: the first one is what masquerade uses.
	slices.SortStableFunc(v6, func(a, b netip.Addr) int {
		return cmp.Compare(boolInt(a.IsLinkLocalUnicast()), boolInt(b.IsLinkLocalUnicast()))
	})
	return v4, v6, nil
}

// WatchAddresses calls changed with the interface index of every address
// added or removed in the dataplane's namespace, until done is closed.
// Interface addresses are followed from netlink events, not polled.
func (d *Dataplane) WatchAddresses(done <-chan struct{}, changed func(ifindex int)) error {
	ns, err := netns.Get()
	if err != nil {
		return fmt.Errorf("watch addresses: current namespace: %w", err)
	}
	updates := make(chan netlink.AddrUpdate, 64)
	err = netlink.AddrSubscribeWithOptions(updates, done, netlink.AddrSubscribeOptions{
		Namespace: &ns,
		ErrorCallback: func(err error) {
			select {
			case <-done: // the socket closing under the reader
			default:
				d.log.WithError(err).Warn("address subscription")
			}
		},
	})
	ns.Close()
	if err != nil {
		return fmt.Errorf("watch addresses: subscribe: %w", err)
	}
	go func() {
		for u := range updates {
			changed(u.LinkIndex)
		}
	}()
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// whole runs a netlink dump again while the kernel says a change during
// it may have left entries out (netlink.ErrDumpInterrupted), as happens
// when addresses or routes change on a busy host, up to five times.
func whole[T any](dump func() (T, error)) (T, error) {
	for i := 1; ; i++ {
		v, err := dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || i == 5 {
			return v, err
		}
	}
}

// ZitiTuns lists the namespace's tun devices named ziti*: the Ziti tun
// of ziti-edge-tunnel (ziti0, ...).
func (d *Dataplane) ZitiTuns() ([]string, error) {
	links, err := whole(d.nl.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var out []string
	for _, l := range links {
		if name := l.Attrs().Name; strings.HasPrefix(name, "ziti") && l.Type() == "tuntap" {
			out = append(out, name)
		}
	}
	return out, nil
}
