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
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.setTunnel(ctx, t)
}

// setTunnel is SetTunnel with f.mu held.
func (f *Firewall) setTunnel(ctx context.Context, t Tunnel) error {
	name := t.Interface
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

// takeZitiTun sets tunnel mode's tun, when none is set, to the Ziti tun
// of the dataplane's namespace: its one tun device named ziti*, as the C
// zfw finds it. ziti-edge-tunnel turns tunnel mode on for its interfaces
// (zfw -T) and attaches its own XDP program to its tun, which cannot
// share this dataplane's maps; this one is attached instead. With no
// such tun, or several, nothing is set and SetTunnel is needed. f.mu
// must be held.
func (f *Firewall) takeZitiTun(ctx context.Context) {
	if f.tunnel.Interface != "" || f.dp == nil {
		return
	}
	tuns, err := f.dp.ZitiTuns()
	if err != nil || len(tuns) != 1 {
		f.log.WithError(err).WithField("candidates", tuns).Warn("tunnel mode is on, but no Ziti tun is set (SetTunnel, zfw -Z) and the namespace has not one tun named ziti*")
		return
	}
	if err := f.setTunnel(ctx, Tunnel{Interface: tuns[0]}); err != nil {
		f.log.WithError(err).WithField("tun", tuns[0]).Warn("take the Ziti tun for tunnel mode")
		return
	}
	f.log.WithField("tun", tuns[0]).Info("tunnel mode: took the namespace's Ziti tun")
}
