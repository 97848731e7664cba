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
	zmaps "github.com/zfw-go/zfw/internal/maps"
	"github.com/zfw-go/zfw/internal/wire"
	"github.com/zfw-go/zfw/zfw/ddos"
)

// DDoS returns the SYN-flood protection of the interfaces set
// DDoSProtection. It needs the kernel dataplane.
func (f *Firewall) DDoS() ddos.Protection { return ddosProtection{f} }

// ddosProtection is ddos.Protection over the dataplane's maps:
// ddos_dport_map (the protected ports), ddos_allow_map (the allow-list)
// and ddos_saddr_map (the bans). config_map counts the first two, so
// that the program knows without a lookup whether either is empty.
type ddosProtection struct{ f *Firewall }

var _ ddos.Protection = ddosProtection{}

func (d ddosProtection) ProtectPorts(ctx context.Context, ports ...uint16) error {
	if slices.Contains(ports, 0) {
		return errors.New("ddos: port 0 cannot be protected")
	}
	return d.changePorts(ctx, ports, true)
}

func (d ddosProtection) UnprotectPorts(ctx context.Context, ports ...uint16) error {
	return d.changePorts(ctx, ports, false)
}

func (d ddosProtection) changePorts(ctx context.Context, ports []uint16, add bool) error {
	set := func(objs *bpfobj.ZfwObjects) mapSet[uint16] {
		return mapSet[uint16]{m: zmaps.Kernel(objs.DdosDportMap), name: "ddos_dport_map", key: func(p uint16) any { return p }}
	}
	return changeCounted(ctx, d.f, set, &d.f.tbl.ProtectedPorts, ports, add)
}

func (d ddosProtection) ProtectedPorts() ([]uint16, error) {
	ports, err := readSet[uint16](d.f, "ddos", func(objs *bpfobj.ZfwObjects) *ebpf.Map { return objs.DdosDportMap })
	slices.Sort(ports)
	return ports, err
}

func (d ddosProtection) AllowSources(ctx context.Context, srcs ...netip.Addr) error {
	return d.changeAllowed(ctx, srcs, true)
}

func (d ddosProtection) DisallowSources(ctx context.Context, srcs ...netip.Addr) error {
	return d.changeAllowed(ctx, srcs, false)
}

func (d ddosProtection) changeAllowed(ctx context.Context, srcs []netip.Addr, add bool) error {
	for _, s := range srcs {
		if !s.IsValid() {
			return errors.New("ddos allow-list: not an address")
		}
	}
	set := func(objs *bpfobj.ZfwObjects) mapSet[netip.Addr] {
		return mapSet[netip.Addr]{m: zmaps.Kernel(objs.DdosAllowMap), name: "ddos_allow_map", key: func(a netip.Addr) any {
			k := sourceKey(a)
			return &k
		}}
	}
	return changeCounted(ctx, d.f, set, &d.f.tbl.AllowedSources, srcs, add)
}

func (d ddosProtection) AllowedSources() ([]netip.Addr, error) {
	keys, err := readSet[bpfobj.ZfwAddrKey](d.f, "ddos", func(objs *bpfobj.ZfwObjects) *ebpf.Map { return objs.DdosAllowMap })
	out := make([]netip.Addr, 0, len(keys))
	for _, k := range keys {
		out = append(out, wire.AddrFrom(k.Addr, k.Family))
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, err
}

func (d ddosProtection) Bans() ([]ddos.Ban, error) {
	f := d.f
	f.mu.Lock()
	defer f.mu.Unlock()
	objs, err := f.kernel(context.Background(), "ddos")
	if err != nil {
		return nil, err
	}
	now := monotonic()
	offset := time.Now().UnixNano() - int64(now)
	var out []ddos.Ban
	var k bpfobj.ZfwAddrKey
	var b bpfobj.ZfwBan
	it := objs.DdosSaddrMap.Iterate()
	for it.Next(&k, &b) {
		if b.Until <= now {
			continue
		}
		out = append(out, ddos.Ban{
			Source: wire.AddrFrom(k.Addr, k.Family),
			Since:  time.Unix(0, int64(b.Since)+offset),
			Until:  time.Unix(0, int64(b.Until)+offset),
		})
	}
	slices.SortFunc(out, func(a, b ddos.Ban) int { return a.Source.Compare(b.Source) })
	return out, it.Err()
}

func (d ddosProtection) Unban(ctx context.Context, src netip.Addr) error {
	f := d.f
	f.mu.Lock()
	defer f.mu.Unlock()
	objs, err := f.kernel(ctx, "ddos")
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

// sourceKey is the addr_key of a source address.
func sourceKey(src netip.Addr) bpfobj.ZfwAddrKey {
	src = src.Unmap()
	k := bpfobj.ZfwAddrKey{Addr: wire.Addr(src), Family: 4}
	if src.Is6() {
		k.Family = 6
	}
	return k
}

// mapSet is a BPF hash map used as a set of values (each key's value a
// 1), as the DDoS ports and allow-list and the DNP3 codes are.
type mapSet[T any] struct {
	m    zmaps.Map
	name string
	// key gives the map key of a value, in the form Map.Update takes.
	key func(T) any
}

// change adds (or removes) every value, all or nothing: when one fails,
// the values it changed before are put back. It returns how many values
// the set gained (or lost, negative) and the failure.
func (s mapSet[T]) change(vals []T, add bool) (int, error) {
	var done []T
	for _, v := range vals {
		changed, err := s.put(v, add)
		if err != nil {
			err = fmt.Errorf("%s: %s %v: %w", s.name, verb(add), v, limitIfFull(s.name, err))
			for _, u := range slices.Backward(done) {
				if _, uerr := s.put(u, !add); uerr != nil {
					err = errors.Join(err, fmt.Errorf("%s: put %v back: %w", s.name, u, uerr))
				}
			}
			return 0, err
		}
		if changed {
			done = append(done, v)
		}
	}
	if add {
		return len(done), nil
	}
	return -len(done), nil
}

// put adds or removes one value and says whether the set changed.
func (s mapSet[T]) put(v T, add bool) (bool, error) {
	var err error
	if add {
		err = s.m.Update(s.key(v), uint8(1), ebpf.UpdateNoExist)
	} else {
		err = s.m.Delete(s.key(v))
	}
	switch {
	case err == nil:
		return true, nil
	case add && errors.Is(err, ebpf.ErrKeyExist), !add && errors.Is(err, ebpf.ErrKeyNotExist):
		return false, nil
	}
	return false, err
}

// changeCounted changes a set whose size config_map carries (so that
// the program knows without a lookup whether it is empty), in count.
func changeCounted[T any](ctx context.Context, f *Firewall, set func(*bpfobj.ZfwObjects) mapSet[T], count *uint32, vals []T, add bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	objs, err := f.kernel(ctx, "ddos")
	if err != nil {
		return err
	}
	n, err := set(objs).change(vals, add)
	*count = uint32(int(*count) + n)
	return errors.Join(err, f.tbl.WriteConfig())
}

// readSet lists the keys of a map used as a set, the map of the
// feature pick gives.
func readSet[K any](f *Firewall, feature string, pick func(*bpfobj.ZfwObjects) *ebpf.Map) ([]K, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	objs, err := f.kernel(context.Background(), feature)
	if err != nil {
		return nil, err
	}
	var out []K
	var k K
	var v uint8
	it := pick(objs).Iterate()
	for it.Next(&k, &v) {
		out = append(out, k)
	}
	return out, it.Err()
}

func verb(add bool) string {
	if add {
		return "add"
	}
	return "delete"
}
