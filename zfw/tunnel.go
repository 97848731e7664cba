package zfw

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/zfw-go/zfw/internal/bpfobj"
	"github.com/zfw-go/zfw/internal/wire"
)

// Tunnel is the Ziti tun of tunnel mode.
type Tunnel struct {
	// Interface is the tun device, e.g. "ziti0"; empty turns tunnel mode
	// off (intercepted flows go to their sockets again).
	Interface string
	// Prefix is the range the tunneler hands out addresses from (its DNS
	// answers), e.g. 100.64.0.0/10; optional, kept for listings and
	// integrations.
	Prefix netip.Prefix
}

// SetTunnel configures tunnel mode: interfaces set TunnelMode send
// intercepted flows into t.Interface instead of to TPROXY sockets, and
// the XDP program attached to it (generic mode) sends the tunneler's
// replies straight back out of the interface each flow came in on, with
// the Ethernet addresses of its request.
func (f *Firewall) SetTunnel(ctx context.Context, t Tunnel) error {
	name := t.Interface
	f.mu.Lock()
	defer f.mu.Unlock()
	objs, err := f.kernel(ctx, "set tunnel")
	if err != nil {
		return err
	}
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
		if t.Prefix.IsValid() {
			p := t.Prefix.Masked()
			cfg.Prefix = wire.Addr(p.Addr())
			cfg.PrefixLen = uint8(p.Bits())
			cfg.Family = 4
			if p.Addr().Is6() {
				cfg.Family = 6
			}
		}
	}
	if err := objs.IfindexTunMap.Update(uint32(0), &cfg, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("set tunnel: ifindex_tun_map: %w", err)
	}
	if name == "" && f.tunnel.Interface != "" {
		if err := f.dp.DetachTunXDP(f.tunnel.Interface); err != nil {
			return err
		}
	}
	f.tunnel = t
	return nil
}

// Tunnel returns the tunnel-mode configuration.
func (f *Firewall) Tunnel() Tunnel {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tunnel
}
