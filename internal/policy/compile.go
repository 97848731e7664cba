package policy

import (
	"cmp"
	"net/netip"
	"slices"
)

// PrefixKey identifies one entry of zt_tproxy_map / zt_tproxy6_map: the
// rules of one protocol under one destination prefix.
type PrefixKey struct {
	Egress bool // zt_egress_map / zt_egress6_map
	Proto  uint8
	Prefix netip.Prefix // masked
}

// KeyOf returns the prefix key the rule lives under.
func KeyOf(r *Rule) PrefixKey {
	return PrefixKey{Egress: r.Egress, Proto: r.Proto, Prefix: r.Dst.Masked()}
}

// Slot numbers the four prefix maps: IPv4 ingress, IPv6 ingress, IPv4
// egress, IPv6 egress.
func (k PrefixKey) Slot() int {
	s := 0
	if k.Family() == 6 {
		s = 1
	}
	if k.Egress {
		s += 2
	}
	return s
}

// Family is 4 or 6.
func (k PrefixKey) Family() uint8 {
	if k.Prefix.Addr().Is4() {
		return 4
	}
	return 6
}

// LensKey identifies one entry of prefix_len_map.
type LensKey struct {
	Egress bool
	Family uint8
	Proto  uint8
}

// MapKey is the prefix_len_map key: egress << 16 | family << 8 | proto.
func (k LensKey) MapKey() uint32 {
	key := uint32(k.Family)<<8 | uint32(k.Proto)
	if k.Egress {
		key |= 1 << 16
	}
	return key
}

// LensKeyFrom decodes a prefix_len_map key.
func LensKeyFrom(key uint32) LensKey {
	return LensKey{Egress: key>>16&1 == 1, Family: uint8(key >> 8), Proto: uint8(key)}
}

// LensKeyOf returns the length set a prefix key belongs to.
func LensKeyOf(k PrefixKey) LensKey {
	return LensKey{Egress: k.Egress, Family: k.Family(), Proto: k.Proto}
}

// SortBlock orders the rules of one prefix key by precedence: longest
// source prefix first, then insertion order. The dataplane takes the first
// rule of the block that matches.
func SortBlock(block []*Rule) {
	slices.SortStableFunc(block, func(a, b *Rule) int {
		if c := cmp.Compare(b.SrcBits(), a.SrcBits()); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
}

// Lengths returns, for each (family, protocol), the prefix lengths that
// have keys, longest first.
func Lengths(keys []PrefixKey) map[LensKey][]uint8 {
	seen := make(map[LensKey]map[uint8]bool)
	for _, k := range keys {
		lk := LensKeyOf(k)
		if seen[lk] == nil {
			seen[lk] = make(map[uint8]bool)
		}
		seen[lk][uint8(k.Prefix.Bits())] = true
	}
	out := make(map[LensKey][]uint8, len(seen))
	for lk, set := range seen {
		lens := make([]uint8, 0, len(set))
		for l := range set {
			lens = append(lens, l)
		}
		slices.SortFunc(lens, func(a, b uint8) int { return cmp.Compare(b, a) })
		out[lk] = lens
	}
	return out
}
