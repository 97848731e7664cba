package zfw

import (
	"context"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/zfw-go/zfw/internal/bpfobj"
)

// SetTunnel makes name the Ziti tun of tunnel mode: interfaces set
// TunnelMode send intercepted flows into it instead of to TPROXY sockets,
// and the XDP program attached to it (generic mode) sends the tunneler's
// replies straight back out of the interface each flow came in on, with
// the Ethernet addresses of its request. An empty name turns tunnel mode
// off (intercepted flows go to their sockets again).
func (f *Firewall) SetTunnel(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(ctx); err != nil {
		return err
	}
	if f.dp == nil {
		return fmt.Errorf("set tunnel: no kernel dataplane in memory mode")
	}
	objs := f.dp.Objects()
	var cfg bpfobj.ZfwTunConfig
	if name != "" {
		if err := validIfname(name); err != nil {
			return fmt.Errorf("set tunnel: %w", err)
		}
		idx, err := f.dp.AttachTunXDP(name)
		if err != nil {
			return fmt.Errorf("set tunnel: %w", err)
		}
		cfg.Ifindex = uint32(idx)
	}
	if err := objs.IfindexTunMap.Update(uint32(0), &cfg, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("set tunnel: ifindex_tun_map: %w", err)
	}
	if name == "" && f.tunnel != "" {
		if err := f.dp.DetachTunXDP(f.tunnel); err != nil {
			return err
		}
	}
	f.tunnel = name
	return nil
}
