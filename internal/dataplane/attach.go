package dataplane

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// direction is one of an interface's two TC hooks.
type direction struct {
	name   string // "ingress", "egress": pin suffix and error text
	tcx    ebpf.AttachType
	parent uint32 // clsact parent of the fallback filter
}

var directions = []direction{
	{"ingress", ebpf.AttachTCXIngress, netlink.HANDLE_MIN_INGRESS},
	{"egress", ebpf.AttachTCXEgress, netlink.HANDLE_MIN_EGRESS},
}

// hook is a program on one direction of an interface.
type hook struct {
	tcx    link.Link          // TCX link, pinned
	filter *netlink.BpfFilter // clsact fallback
}

// attachment is the programs on one interface.
type attachment struct {
	ifname  string
	ifindex int
	hooks   []hook
	qdisc   bool // this process created the clsact qdisc
}

func (a *attachment) release() {
	for _, h := range a.hooks {
		if h.tcx != nil {
			h.tcx.Close()
		}
	}
}

func (d *Dataplane) linkPin(ifname string, dir direction) string {
	return filepath.Join(d.cfg.PinPath, linksDir, ifname+"-"+dir.name)
}

func (d *Dataplane) program(dir direction) *ebpf.Program {
	if dir.tcx == ebpf.AttachTCXEgress {
		return d.objs.ZfwEgress
	}
	return d.objs.ZfwIngress
}

// Attach puts the ingress and egress programs on ifname. TCX links that
// an earlier process pinned for the interface are taken over and pointed
// at this process's programs, so traffic never runs without the
// dataplane. On error nothing attached by this call stays.
func (d *Dataplane) Attach(ifname string) (int, error) {
	if a := d.attach[ifname]; a != nil {
		return a.ifindex, nil
	}
	l, err := d.nl.LinkByName(ifname)
	if err != nil {
		return 0, fmt.Errorf("attach %s: %w", ifname, err)
	}
	a := &attachment{ifname: ifname, ifindex: l.Attrs().Index}
	err = d.inNetns(func() error {
		for _, dir := range directions {
			h, err := d.attachHook(a, dir)
			if err != nil {
				d.detach(a)
				return err
			}
			a.hooks = append(a.hooks, h)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	d.attach[ifname] = a
	return a.ifindex, nil
}

func (d *Dataplane) attachHook(a *attachment, dir direction) (hook, error) {
	prog := d.program(dir)
	pin := d.linkPin(a.ifname, dir)
	if old, err := link.LoadPinnedLink(pin, nil); err == nil {
		if err := old.Update(prog); err == nil {
			d.log.WithField("interface", a.ifname).Debugf("adopted pinned TCX %s link", dir.name)
			return hook{tcx: old}, nil
		}
		old.Unpin()
		old.Close()
	}
	if !d.cfg.LegacyTC {
		tl, err := link.AttachTCX(link.TCXOptions{Interface: a.ifindex, Program: prog, Attach: dir.tcx})
		switch {
		case err == nil:
			if err := tl.Pin(pin); err != nil {
				tl.Close()
				return hook{}, fmt.Errorf("attach %s %s: pin link: %w", a.ifname, dir.name, err)
			}
			return hook{tcx: tl}, nil
		case !errors.Is(err, ebpf.ErrNotSupported):
			return hook{}, fmt.Errorf("attach %s %s (tcx): %w", a.ifname, dir.name, err)
		}
		d.log.WithField("interface", a.ifname).Infof("TCX needs Linux 6.6 or later and kernel %s has none: attached with a clsact filter instead", kernelRelease())
	}
	f, err := d.attachClsact(a, dir, prog)
	if err != nil {
		return hook{}, fmt.Errorf("attach %s %s (clsact): %w", a.ifname, dir.name, err)
	}
	return hook{filter: f}, nil
}

const filterPriority = 1

func clsact(ifindex int) *netlink.GenericQdisc {
	return &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: ifindex,
			Handle:    netlink.MakeHandle(0xffff, 0),
			Parent:    netlink.HANDLE_CLSACT,
		},
		QdiscType: "clsact",
	}
}

func (d *Dataplane) attachClsact(a *attachment, dir direction, prog *ebpf.Program) (*netlink.BpfFilter, error) {
	switch err := d.nl.QdiscAdd(clsact(a.ifindex)); {
	case err == nil:
		a.qdisc = true
	case errors.Is(err, unix.EEXIST):
	default:
		return nil, fmt.Errorf("add clsact qdisc: %w", err)
	}
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: a.ifindex,
			Parent:    dir.parent,
			Handle:    netlink.MakeHandle(0, 1),
			Protocol:  unix.ETH_P_ALL,
			Priority:  filterPriority,
		},
		Fd:           prog.FD(),
		Name:         "zfw_" + dir.name,
		DirectAction: true,
	}
	if err := d.nl.FilterReplace(f); err != nil {
		return nil, fmt.Errorf("add bpf filter: %w", err)
	}
	return f, nil
}

// Detach removes the programs from ifname.
func (d *Dataplane) Detach(ifname string) error {
	a := d.attach[ifname]
	if a == nil {
		return nil
	}
	delete(d.attach, ifname)
	if err := d.detach(a); err != nil {
		return fmt.Errorf("detach %s: %w", ifname, err)
	}
	return nil
}

func (d *Dataplane) detach(a *attachment) error {
	var errs []error
	for _, h := range a.hooks {
		if h.tcx != nil {
			if err := h.tcx.Unpin(); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			if err := h.tcx.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if h.filter != nil {
			if err := d.nl.FilterDel(h.filter); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENODEV) {
				errs = append(errs, err)
			}
		}
	}
	if a.qdisc {
		if err := d.nl.QdiscDel(clsact(a.ifindex)); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DetachStale removes pinned links of interfaces that are not in keep: an
// earlier process attached them and this one was not asked to.
func (d *Dataplane) DetachStale(keep map[string]bool) error {
	entries, err := os.ReadDir(filepath.Join(d.cfg.PinPath, linksDir))
	if err != nil {
		return fmt.Errorf("list pinned links: %w", err)
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		i := strings.LastIndexByte(name, '-')
		if i <= 0 || keep[name[:i]] {
			continue
		}
		l, err := link.LoadPinnedLink(filepath.Join(d.cfg.PinPath, linksDir, name), nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("load pinned link %s: %w", name, err))
			continue
		}
		l.Unpin()
		l.Close()
		d.log.WithField("interface", name[:i]).Info("detached interface no longer configured")
	}
	return errors.Join(errs...)
}

// Ifindex resolves an interface name in the dataplane's namespace.
func (d *Dataplane) Ifindex(name string) (int, error) {
	l, err := d.nl.LinkByName(name)
	if err != nil {
		return 0, &net.OpError{Op: "lookup", Net: "interface", Err: fmt.Errorf("%s: %w", name, err)}
	}
	return l.Attrs().Index, nil
}

// AttachTunXDP puts the tun return program on ifname in generic (skb)
// mode, which works on any device; the link is pinned like the TC ones.
func (d *Dataplane) AttachTunXDP(ifname string) (int, error) {
	l, err := d.nl.LinkByName(ifname)
	if err != nil {
		return 0, fmt.Errorf("attach %s xdp: %w", ifname, err)
	}
	idx := l.Attrs().Index
	if old := d.xdp[ifname]; old != nil {
		return idx, nil
	}
	pin := filepath.Join(d.cfg.PinPath, linksDir, ifname+"-xdp")
	if old, err := link.LoadPinnedLink(pin, nil); err == nil {
		if err := old.Update(d.objs.ZfwTunXdp); err == nil {
			d.xdp[ifname] = old
			return idx, nil
		}
		old.Unpin()
		old.Close()
	}
	var xl link.Link
	err = d.inNetns(func() error {
		var err error
		xl, err = link.AttachXDP(link.XDPOptions{Program: d.objs.ZfwTunXdp, Interface: idx, Flags: link.XDPGenericMode})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("attach %s xdp: %w", ifname, err)
	}
	if err := xl.Pin(pin); err != nil {
		xl.Close()
		return 0, fmt.Errorf("attach %s xdp: pin link: %w", ifname, err)
	}
	d.xdp[ifname] = xl
	return idx, nil
}

// DetachTunXDP removes the tun return program from ifname.
func (d *Dataplane) DetachTunXDP(ifname string) error {
	xl := d.xdp[ifname]
	if xl == nil {
		return nil
	}
	delete(d.xdp, ifname)
	xl.Unpin()
	if err := xl.Close(); err != nil {
		return fmt.Errorf("detach %s xdp: %w", ifname, err)
	}
	return nil
}

// RemoveFilters deletes, from every interface of the namespace, the
// clsact filters this package attaches (named zfw_ingress and
// zfw_egress). On kernels without TCX that is how a kept dataplane stays
// attached, and no pin holds the filters: removing the pins alone would
// leave them running. Only Uninstall calls it: another dataplane in the
// same namespace would lose its filters too.
func (d *Dataplane) RemoveFilters() error {
	return d.inNetns(func() error {
		links, err := whole(d.nl.LinkList)
		if err != nil {
			return fmt.Errorf("remove filters: list interfaces: %w", err)
		}
		var errs []error
		for _, l := range links {
			for _, dir := range directions {
				filters, err := d.nl.FilterList(l, dir.parent)
				if err != nil {
					continue // no clsact qdisc
				}
				for _, f := range filters {
					bf, ok := f.(*netlink.BpfFilter)
					if !ok || bf.Name != "zfw_"+dir.name {
						continue
					}
					if err := d.nl.FilterDel(bf); err != nil && !errors.Is(err, unix.ENOENT) {
						errs = append(errs, fmt.Errorf("remove %s filter of %s: %w", dir.name, l.Attrs().Name, err))
					}
				}
			}
		}
		return errors.Join(errs...)
	})
}
