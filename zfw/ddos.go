package zfw

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/cilium/ebpf"

	"github.com/zfw-go/zfw/internal/bpfobj"
	"github.com/zfw-go/zfw/internal/wire"
)

// DDoS manages SYN-flood protection (InterfaceSettings.DDoSProtection):
// the protected ports, the allow-list and the current bans.
type DDoS struct{ f *Firewall }

// DDoS returns the SYN-flood protection API. It needs the kernel
// dataplane.
func (f *Firewall) DDoS() *DDoS { return &DDoS{f} }

// Ban is a source banned for flooding SYNs.
type Ban struct {
	Source       netip.Addr
	Since, Until time.Time
}

func (d *DDoS) objects(ctx context.Context) (*bpfobj.ZfwObjects, error) {
	return d.f.kernel(ctx, "ddos")
}

// ProtectPorts limits SYN counting to these destination ports (with
// none protected, SYNs to every port count).
func (d *DDoS) ProtectPorts(ctx context.Context, ports ...uint16) error {
	return d.change(ctx, ports, true)
}

// UnprotectPorts removes ports from the protected set.
func (d *DDoS) UnprotectPorts(ctx context.Context, ports ...uint16) error {
	return d.change(ctx, ports, false)
}

func (d *DDoS) change(ctx context.Context, ports []uint16, add bool) error {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	objs, err := d.objects(ctx)
	if err != nil {
		return err
	}
	for _, p := range ports {
		if p == 0 {
			return errors.New("ddos: port 0 cannot be protected")
		}
	}
	n := d.f.tbl.protectedPorts
	for _, p := range ports {
		var one uint8 = 1
		if add {
			err = objs.DdosDportMap.Update(p, one, ebpf.UpdateNoExist)
			switch {
			case err == nil:
				n++
			case errors.Is(err, ebpf.ErrKeyExist):
			default:
				return fmt.Errorf("ddos_dport_map: add %d: %w", p, mapError("ddos_dport_map", err))
			}
			continue
		}
		switch err := objs.DdosDportMap.Delete(p); {
		case err == nil:
			n--
		case !errors.Is(err, ebpf.ErrKeyNotExist):
			return fmt.Errorf("ddos_dport_map: delete %d: %w", p, err)
		}
	}
	d.f.tbl.protectedPorts = n
	return d.f.tbl.writeConfig()
}

// ProtectedPorts lists the protected ports.
func (d *DDoS) ProtectedPorts() ([]uint16, error) {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	objs, err := d.objects(context.Background())
	if err != nil {
		return nil, err
	}
	var out []uint16
	var p uint16
	var v uint8
	it := objs.DdosDportMap.Iterate()
	for it.Next(&p, &v) {
		out = append(out, p)
	}
	slices.Sort(out)
	return out, it.Err()
}

// Bans lists the sources serving a ban.
func (d *DDoS) Bans() ([]Ban, error) {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	objs, err := d.objects(context.Background())
	if err != nil {
		return nil, err
	}
	now := monotonic()
	offset := time.Now().UnixNano() - int64(now)
	var out []Ban
	var k bpfobj.ZfwAddrKey
	var b bpfobj.ZfwBan
	it := objs.DdosSaddrMap.Iterate()
	for it.Next(&k, &b) {
		if b.Until <= now {
			continue
		}
		out = append(out, Ban{
			Source: wire.AddrFrom(k.Addr, k.Family),
			Since:  time.Unix(0, int64(b.Since)+offset),
			Until:  time.Unix(0, int64(b.Until)+offset),
		})
	}
	slices.SortFunc(out, func(a, b Ban) int { return a.Source.Compare(b.Source) })
	return out, it.Err()
}

// Unban lifts a source's ban.
func (d *DDoS) Unban(ctx context.Context, src netip.Addr) error {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	objs, err := d.objects(ctx)
	if err != nil {
		return err
	}
	src = src.Unmap()
	k := sourceKey(src)
	if err := objs.DdosSaddrMap.Delete(&k); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("unban %s: %w", src, ErrNotFound)
		}
		return fmt.Errorf("unban %s: %w", src, err)
	}
	return nil
}

// AllowSources puts sources on the allow-list, the C zfw's DDoS list
// (zfw -y). Once it lists any source, and ports are protected, a new
// connection to a protected port on a DDoS-protected interface is
// admitted only from a listed source (Stats.NotAllowed counts the rest,
// dropped), and no SYN is counted towards a ban there: the list replaces
// the flood threshold for those ports. With no port protected it gates
// nothing, as in the C zfw.
func (d *DDoS) AllowSources(ctx context.Context, srcs ...netip.Addr) error {
	return d.changeAllowed(ctx, srcs, true)
}

// DisallowSources takes sources off the allow-list; the last one off
// returns the protected ports to the flood threshold.
func (d *DDoS) DisallowSources(ctx context.Context, srcs ...netip.Addr) error {
	return d.changeAllowed(ctx, srcs, false)
}

func (d *DDoS) changeAllowed(ctx context.Context, srcs []netip.Addr, add bool) (err error) {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	objs, err := d.objects(ctx)
	if err != nil {
		return err
	}
	for _, s := range srcs {
		if !s.IsValid() {
			return errors.New("ddos allow-list: not an address")
		}
	}
	n := d.f.tbl.allowedSources
	// The count is written even when a change fails part way, so that it
	// stays the number of entries the map holds.
	defer func() {
		d.f.tbl.allowedSources = n
		if werr := d.f.tbl.writeConfig(); err == nil {
			err = werr
		}
	}()
	for _, s := range srcs {
		k := sourceKey(s)
		if add {
			switch err = objs.DdosAllowMap.Update(&k, uint8(1), ebpf.UpdateNoExist); {
			case err == nil:
				n++
			case errors.Is(err, ebpf.ErrKeyExist):
				err = nil
			default:
				return fmt.Errorf("ddos_allow_map: add %s: %w", s, mapError("ddos_allow_map", err))
			}
			continue
		}
		switch err = objs.DdosAllowMap.Delete(&k); {
		case err == nil:
			n--
		case errors.Is(err, ebpf.ErrKeyNotExist):
			err = nil
		default:
			return fmt.Errorf("ddos_allow_map: delete %s: %w", s, err)
		}
	}
	return nil
}

// AllowedSources lists the allow-list, sorted.
func (d *DDoS) AllowedSources() ([]netip.Addr, error) {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	objs, err := d.objects(context.Background())
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	var k bpfobj.ZfwAddrKey
	var v uint8
	it := objs.DdosAllowMap.Iterate()
	for it.Next(&k, &v) {
		out = append(out, wire.AddrFrom(k.Addr, k.Family))
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, it.Err()
}

// sourceKey is the addr_key of a source address.
func sourceKey(src netip.Addr) bpfobj.ZfwAddrKey {
	src = src.Unmap()
	k := bpfobj.ZfwAddrKey{Addr: wire.Addr(src), Family: 4}
	if src.Is6() {
		k.Family = 6
	}
	return k
}
