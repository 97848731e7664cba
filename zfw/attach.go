package zfw

import (
	"context"
	"errors"
	"fmt"

	zmaps "github.com/zfw-go/zfw/internal/maps"
)

// Attach puts the dataplane on one more interface, with its settings, as
// if Options.Interfaces had named it: both directions, the interface's
// addresses kept current, and the policy routing installed if this is the
// first. An interface the Firewall manages already is left as it is
// (SetInterface changes its settings). On error nothing of it stays.
func (f *Firewall) Attach(ctx context.Context, ifc Interface) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.kernel(ctx, "attach"); err != nil {
		return err
	}
	if f.opts.RulesOnly {
		return fmt.Errorf("attach %s: a RulesOnly Firewall attaches nothing; its dataplane's owner does", ifc.Name)
	}
	if err := validIfname(ifc.Name); err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	if f.ifaces[ifc.Name] != nil {
		return nil
	}
	idx, err := f.dp.Ifindex(ifc.Name)
	if err != nil {
		return fmt.Errorf("attach %s: %w", ifc.Name, err)
	}
	if err := f.dp.InstallRouting(); err != nil {
		return fmt.Errorf("attach %s: %w", ifc.Name, err)
	}
	if err := f.dp.AttachSkLookup(); err != nil {
		return fmt.Errorf("attach %s: %w", ifc.Name, err)
	}
	// Settings first: the program leaves interfaces without them alone.
	if err := f.setInterface(ifc.Name, idx, ifc.InterfaceSettings); err != nil {
		f.forget(ifc.Name, idx)
		return err
	}
	if _, err := f.dp.Attach(ifc.Name); err != nil {
		f.forget(ifc.Name, idx)
		return err
	}
	if err := f.watchAddresses(); err != nil {
		f.dp.Detach(ifc.Name)
		f.forget(ifc.Name, idx)
		return fmt.Errorf("attach %s: %w", ifc.Name, err)
	}
	f.log.WithField("interface", ifc.Name).Info("dataplane attached")
	return nil
}

// Detach takes the dataplane off an interface it manages: its programs,
// its settings and addresses in the maps. Sessions through it expire as
// usual. An interface it does not manage is an error wrapping
// ErrNotFound.
func (f *Firewall) Detach(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.kernel(ctx, "detach"); err != nil {
		return err
	}
	if f.opts.RulesOnly {
		return fmt.Errorf("detach %s: a RulesOnly Firewall detaches nothing; its dataplane's owner does", name)
	}
	st := f.ifaces[name]
	if st == nil {
		return fmt.Errorf("detach %s: not an interface the dataplane manages: %w", name, ErrNotFound)
	}
	if err := f.dp.Detach(name); err != nil {
		return err
	}
	f.forget(name, st.index)
	// Flows cached while it was attached are decided afresh if it comes
	// back.
	if err := f.tbl.VoidFlowCache(); err != nil {
		return fmt.Errorf("detach %s: %w", name, err)
	}
	f.log.WithField("interface", name).Info("dataplane detached")
	return nil
}

// forget removes what the maps and the Firewall hold of an interface.
func (f *Firewall) forget(name string, index int) {
	key := uint32(index)
	if err := f.tbl.Maps.Diag.Delete(key); err != nil && !errors.Is(err, zmaps.ErrKeyNotExist) {
		f.log.WithError(err).WithField("interface", name).Warn("clear interface settings")
	}
	objs := f.dp.Objects()
	objs.IfindexIpMap.Delete(key)
	objs.IfindexIp6Map.Delete(key)
	delete(f.ifaces, name)
}
