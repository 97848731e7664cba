// Package wire converts between Go values and the byte layouts of the
// BPF map keys and values in bpf/include/zfw.h.
package wire

import (
	"bytes"
	"encoding/binary"
	"net/netip"

	"github.com/zfw-go/zfw/internal/bpfobj"
	"github.com/zfw-go/zfw/internal/policy"
)

// Addr returns a's bytes as the kernel holds them in a __u32[4]: wire
// order, IPv4 in the first word.
func Addr(a netip.Addr) [4]uint32 {
	var out [4]uint32
	if a.Is4() {
		b := a.As4()
		out[0] = binary.NativeEndian.Uint32(b[:])
		return out
	}
	b := a.As16()
	for i := range out {
		out[i] = binary.NativeEndian.Uint32(b[i*4:])
	}
	return out
}

// AddrFrom is the inverse of Addr for the given family (4 or 6).
func AddrFrom(w [4]uint32, family uint8) netip.Addr {
	if family == 4 {
		var b [4]byte
		binary.NativeEndian.PutUint32(b[:], w[0])
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	for i := range w {
		binary.NativeEndian.PutUint32(b[i*4:], w[i])
	}
	return netip.AddrFrom16(b)
}

// Port16 converts a host-order port to its wire-order u16 as stored.
func Port16(p uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], p)
	return binary.NativeEndian.Uint16(b[:])
}

// PortFrom16 is the inverse of Port16.
func PortFrom16(p uint16) uint16 { return Port16(p) }

// PrefixKey4 encodes a v4 zt_tproxy_map key.
func PrefixKey4(k policy.PrefixKey) bpfobj.ZfwPrefixKey {
	return bpfobj.ZfwPrefixKey{Proto: k.Proto, Len: uint8(k.Prefix.Bits()), Addr: Addr(k.Prefix.Addr())[0]}
}

// PrefixKey6 encodes a v6 zt_tproxy6_map key.
func PrefixKey6(k policy.PrefixKey) bpfobj.ZfwPrefix6Key {
	return bpfobj.ZfwPrefix6Key{Proto: k.Proto, Len: uint8(k.Prefix.Bits()), Addr: Addr(k.Prefix.Addr())}
}

// RangeEntry encodes the range_map slot of r.
func RangeEntry(r *policy.Rule) bpfobj.ZfwRangeEntry {
	e := bpfobj.ZfwRangeEntry{
		RuleId:     r.ID,
		PortLow:    r.PortLow,
		PortHigh:   r.PortHigh,
		TproxyPort: r.TProxyPort,
		Action:     uint8(r.Action),
	}
	if r.Src.IsValid() {
		e.Src = Addr(r.Src.Masked().Addr())
		e.SrcLen = uint8(r.Src.Bits())
	}
	if len(r.Interfaces) > 0 {
		e.Flags |= uint8(bpfobj.ZfwRangeFlagZFW_RANGE_HAS_IFLIST)
	}
	return e
}

// IfList encodes r's interface list.
func IfList(r *policy.Rule) bpfobj.ZfwIfList {
	var l bpfobj.ZfwIfList
	for i, ifx := range r.Interfaces {
		if i < len(l.Ifindex) {
			l.Ifindex[i] = uint32(ifx)
		}
	}
	return l
}

// Record encodes the rule_store_map record of r.
func Record(r *policy.Rule) bpfobj.ZfwRuleRecord {
	rec := bpfobj.ZfwRuleRecord{
		Seq:        r.Seq,
		Dst:        Addr(r.Dst.Addr()),
		PortLow:    r.PortLow,
		PortHigh:   r.PortHigh,
		TproxyPort: r.TProxyPort,
		Family:     family(r.Dst.Addr()),
		Proto:      r.Proto,
		DstLen:     uint8(r.Dst.Bits()),
		Action:     uint8(r.Action),
	}
	if r.Intercept {
		rec.Kind = uint8(bpfobj.ZfwRuleKindZFW_RULE_INTERCEPT)
	}
	if r.Egress {
		rec.Egress = 1
	}
	if r.Src.IsValid() {
		rec.Src = Addr(r.Src.Addr())
		rec.SrcLen = uint8(r.Src.Bits())
	}
	for i, ifx := range r.Interfaces {
		if i < len(rec.Ifindex) {
			rec.Ifindex[i] = uint32(ifx)
		}
	}
	putString(rec.ServiceId[:], r.ServiceID)
	putString(rec.ServiceName[:], r.ServiceName)
	return rec
}

// RuleFrom decodes a rule_store_map record.
func RuleFrom(id uint32, rec *bpfobj.ZfwRuleRecord) policy.Rule {
	r := policy.Rule{
		ID:          id,
		Seq:         rec.Seq,
		ServiceID:   getString(rec.ServiceId[:]),
		ServiceName: getString(rec.ServiceName[:]),
		Proto:       rec.Proto,
		Dst:         netip.PrefixFrom(AddrFrom(rec.Dst, rec.Family), int(rec.DstLen)),
		PortLow:     rec.PortLow,
		PortHigh:    rec.PortHigh,
		Action:      policy.Action(rec.Action),
		TProxyPort:  rec.TproxyPort,
		Intercept:   rec.Kind == uint8(bpfobj.ZfwRuleKindZFW_RULE_INTERCEPT),
		Egress:      rec.Egress == 1,
	}
	if rec.SrcLen > 0 {
		r.Src = netip.PrefixFrom(AddrFrom(rec.Src, rec.Family), int(rec.SrcLen))
	}
	for _, ifx := range rec.Ifindex {
		if ifx != 0 {
			r.Interfaces = append(r.Interfaces, int(ifx))
		}
	}
	return r
}

// ServiceID encodes a tproxy_extension_map value.
func ServiceID(id string) bpfobj.ZfwServiceId {
	var v bpfobj.ZfwServiceId
	putString(v.Id[:], id)
	return v
}

// ServiceIDFrom decodes a tproxy_extension_map value.
func ServiceIDFrom(v *bpfobj.ZfwServiceId) string { return getString(v.Id[:]) }

// TProxyExtKey encodes a tproxy_extension_map key.
func TProxyExtKey(port uint16, proto uint8) bpfobj.ZfwTproxyExtKey {
	return bpfobj.ZfwTproxyExtKey{TproxyPort: port, Proto: proto}
}

func family(a netip.Addr) uint8 {
	if a.Is4() {
		return 4
	}
	return 6
}

func putString[T ~int8 | ~uint8](dst []T, s string) {
	for i := 0; i < len(dst) && i < len(s); i++ {
		dst[i] = T(s[i])
	}
}

func getString[T ~int8 | ~uint8](src []T) string {
	b := make([]byte, 0, len(src))
	for _, c := range src {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(bytes.Clone(b))
}
