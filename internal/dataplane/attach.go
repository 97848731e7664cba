package dataplane

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// attachment is the ingress program on one interface.
type attachment struct {
	ifname  string
	ifindex int
	tcx     link.Link          // TCX link, pinned
	filter  *netlink.BpfFilter // clsact fallback
	qdisc   bool               // this process created the clsact qdisc
}

func (a *attachment) release() {
	if a.tcx != nil {
		a.tcx.Close()
	}
}

func (d *Dataplane) linkPin(ifname string) string {
	return filepath.Join(d.cfg.PinPath, linksDir, ifname+"-ingress")
}

// Attach puts the ingress program on ifname. A TCX link that an earlier
// process pinned for the interface is taken over and pointed at this
// process's program, so traffic never runs without the dataplane.
func (d *Dataplane) Attach(ifname string) (int, error) {
	if a := d.attach[ifname]; a != nil {
		return a.ifindex, nil
	}
	l, err := d.nl.LinkByName(ifname)
	if err != nil {
		return 0, fmt.Errorf("attach %s ingress: %w", ifname, err)
	}
	ifindex := l.Attrs().Index
	prog := d.objs.ZfwIngress
	a := &attachment{ifname: ifname, ifindex: ifindex}

	pin := d.linkPin(ifname)
	if old, err := link.LoadPinnedLink(pin, nil); err == nil {
		if err := old.Update(prog); err == nil {
			a.tcx = old
			d.attach[ifname] = a
			d.log.WithField("interface", ifname).Debug("adopted pinned TCX link")
			return ifindex, nil
		}
		old.Unpin()
		old.Close()
	}

	if !d.cfg.LegacyTC {
		tl, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: ebpf.AttachTCXIngress})
		switch {
		case err == nil:
			if err := tl.Pin(pin); err != nil {
				tl.Close()
				return 0, fmt.Errorf("attach %s ingress: pin link: %w", ifname, err)
			}
			a.tcx = tl
			d.attach[ifname] = a
			return ifindex, nil
		case !errors.Is(err, ebpf.ErrNotSupported):
			return 0, fmt.Errorf("attach %s ingress (tcx): %w", ifname, err)
		}
		d.log.WithField("interface", ifname).Info("TCX not supported by this kernel; using a clsact filter")
	}
	if err := d.attachClsact(a, prog); err != nil {
		return 0, fmt.Errorf("attach %s ingress (clsact): %w", ifname, err)
	}
	d.attach[ifname] = a
	return ifindex, nil
}

const filterPriority = 1

func (d *Dataplane) attachClsact(a *attachment, prog *ebpf.Program) error {
	q := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: a.ifindex,
			Handle:    netlink.MakeHandle(0xffff, 0),
			Parent:    netlink.HANDLE_CLSACT,
		},
		QdiscType: "clsact",
	}
	switch err := d.nl.QdiscAdd(q); {
	case err == nil:
		a.qdisc = true
	case errors.Is(err, unix.EEXIST):
	default:
		return fmt.Errorf("add clsact qdisc: %w", err)
	}
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: a.ifindex,
			Parent:    netlink.HANDLE_MIN_INGRESS,
			Handle:    netlink.MakeHandle(0, 1),
			Protocol:  unix.ETH_P_ALL,
			Priority:  filterPriority,
		},
		Fd:           prog.FD(),
		Name:         "zfw_ingress",
		DirectAction: true,
	}
	if err := d.nl.FilterReplace(f); err != nil {
		if a.qdisc {
			d.nl.QdiscDel(q)
		}
		return fmt.Errorf("add bpf filter: %w", err)
	}
	a.filter = f
	return nil
}

// Detach removes the program from ifname.
func (d *Dataplane) Detach(ifname string) error {
	a := d.attach[ifname]
	if a == nil {
		return nil
	}
	delete(d.attach, ifname)
	var errs []error
	if a.tcx != nil {
		if err := a.tcx.Unpin(); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		if err := a.tcx.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if a.filter != nil {
		if err := d.nl.FilterDel(a.filter); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, err)
		}
		if a.qdisc {
			q := &netlink.GenericQdisc{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: a.ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}, QdiscType: "clsact"}
			if err := d.nl.QdiscDel(q); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENODEV) {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("detach %s ingress: %w", ifname, err)
	}
	return nil
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
		const suffix = "-ingress"
		if len(name) <= len(suffix) || name[len(name)-len(suffix):] != suffix {
			continue
		}
		ifname := name[:len(name)-len(suffix)]
		if keep[ifname] {
			continue
		}
		l, err := link.LoadPinnedLink(filepath.Join(d.cfg.PinPath, linksDir, name), nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("load pinned link %s: %w", name, err))
			continue
		}
		l.Unpin()
		l.Close()
		d.log.WithField("interface", ifname).Info("detached interface no longer configured")
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
