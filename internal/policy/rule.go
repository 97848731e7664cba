// Package policy holds the rule model that the dataplane enforces: the
// rule type shared by intercepts and user rules, the limits the BPF maps
// impose, the compiler that turns rules into map contents, and a pure-Go
// reference model of the verdict the BPF program must reach.
package policy

import (
	"fmt"
	"net/netip"
)

// Action is what a matching rule does with a packet.
type Action uint8

// Actions. The numeric values are shared with the BPF program (zfw.h).
const (
	// ActionPass hands the packet to the host stack.
	ActionPass Action = 1
	// ActionDeny drops the packet.
	ActionDeny Action = 2
	// ActionTProxy steers the packet to the transparent listener on the
	// loopback address of the packet's family at TProxyPort.
	ActionTProxy Action = 3
)

func (a Action) String() string {
	switch a {
	case ActionPass:
		return "pass"
	case ActionDeny:
		return "deny"
	case ActionTProxy:
		return "tproxy"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// ProtoName names an IP protocol that rules may name: tcp, udp.
func ProtoName(p uint8) string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	}
	return fmt.Sprintf("proto(%d)", p)
}

// IP protocol numbers that rules may name.
const (
	ProtoTCP uint8 = 6
	ProtoUDP uint8 = 17
)

// Limits imposed by the map layouts in bpf/include/zfw.h.
const (
	// MaxServiceIDLen is the longest service id, in bytes, a rule stores.
	MaxServiceIDLen = 32
	// MaxServiceNameLen is the longest service name, in bytes, a rule stores.
	MaxServiceNameLen = 63
	// MaxRuleInterfaces is how many interfaces one rule may be limited to.
	MaxRuleInterfaces = 8
	// MaxRangesPerPrefix is how many rules may share one
	// (family, protocol, destination prefix).
	MaxRangesPerPrefix = 128
	// MaxRules is the default capacity of range_map: rules of both
	// families (zfw.Options.MaxRules changes it).
	MaxRules = 250000
	// MaxPrefixes is the default capacity of zt_tproxy_map and of
	// zt_tproxy6_map (zfw.Options.MaxPrefixes changes it):
	// distinct (protocol, destination prefix) pairs per family.
	MaxPrefixes = 100000
)

// Rule is one compiled match: a protocol, a destination prefix, an optional
// source prefix, a destination port range, optional interfaces, and what to
// do on a match. Intercepts expand into one Rule per protocol × address ×
// port range × source prefix.
type Rule struct {
	// ID identifies the rule in the maps; the firewall assigns it.
	ID uint32
	// Seq orders rules by insertion; lower is older and wins ties.
	Seq uint64
	// ServiceID is the owning service, empty for user rules.
	ServiceID string
	// Intercept marks a rule made by registering an intercept (as opposed
	// to one added through the rules API).
	Intercept bool
	// ServiceName is informational, for listings.
	ServiceName string
	// Proto is ProtoTCP or ProtoUDP.
	Proto uint8
	// Dst is the destination prefix, masked to its length.
	Dst netip.Prefix
	// Src is the source prefix, masked; the zero Prefix matches any source.
	Src netip.Prefix
	// PortLow and PortHigh bound the destination port, inclusive.
	PortLow, PortHigh uint16
	// Action decides the verdict of a matching packet.
	Action Action
	// TProxyPort is the listener port for ActionTProxy.
	TProxyPort uint16
	// Interfaces limits the rule to these interface indexes; empty means
	// every attached interface.
	Interfaces []int
	// Egress rules decide new flows leaving an interface whose outbound
	// filter is on; they only pass or deny.
	Egress bool
}

// SrcBits is the source prefix length the rule demands, 0 for any source.
func (r *Rule) SrcBits() int {
	if !r.Src.IsValid() {
		return 0
	}
	return r.Src.Bits()
}

// Is6 reports whether the rule matches IPv6 packets.
func (r *Rule) Is6() bool { return r.Dst.Addr().Is6() }
