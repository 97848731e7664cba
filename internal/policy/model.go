package policy

import "net/netip"

// Packet is what the reference model needs to know of a packet.
type Packet struct {
	Src, Dst netip.Addr
	Proto    uint8
	SrcPort  uint16
	DstPort  uint16
	Ifindex  int
	// Fragment marks an IPv4 or IPv6 fragment; its ports are not used.
	Fragment bool
	// ICMPType of an ICMP or ICMPv6 packet.
	ICMPType uint8
	// Egress evaluates a packet leaving the interface against the egress
	// rules (the first packet of a flow: later ones follow its session).
	Egress bool
}

// Interface is the part of an interface's settings that policy reads.
type Interface struct {
	// DefaultDeny drops packets no rule matches (otherwise they pass).
	DefaultDeny bool
	// PerInterface applies only rules that list the interface.
	PerInterface bool
	// Host passthroughs of a DefaultDeny interface (see
	// zfw.InterfaceSettings): echo, SSH to Addrs, VRRP, other protocols.
	ICMPEcho, DisableSSH, VRRP, PassNonTuple bool
	// DisableIPv6 drops every IPv6 packet.
	DisableIPv6 bool
	// Addrs are the interface's own addresses.
	Addrs []netip.Addr
	// OutboundFilter: new flows leaving need an egress rule that passes.
	OutboundFilter bool
}

// Decision is the verdict for one packet.
type Decision struct {
	Action     Action
	RuleID     uint32 // 0 when no rule matched
	TProxyPort uint16
}

// Evaluate is the reference model of the dataplane's policy, written
// straight from the rule semantics rather than from the compiled tables:
// among the rules that match, the longest destination prefix wins, then
// the longest source prefix, then the oldest rule. No match gives the
// interface default. A fragment passes only if every rule that could
// match it on some port passes and, where the interface denies by
// default, one of them passes every port; otherwise it is denied.
func Evaluate(rules []Rule, iface Interface, p Packet) Decision {
	if p.Egress {
		return evaluateEgress(rules, iface, p)
	}
	deflt := Decision{Action: ActionPass}
	if iface.DefaultDeny {
		deflt.Action = ActionDeny
	}
	if iface.DisableIPv6 && p.Dst.Is6() {
		return Decision{Action: ActionDeny}
	}
	if p.Proto != ProtoTCP && p.Proto != ProtoUDP {
		if iface.DefaultDeny && otherPasses(iface, p) {
			return Decision{Action: ActionPass}
		}
		return deflt
	}
	if p.Fragment {
		return fragmentDecision(rules, iface, p, !iface.DefaultDeny)
	}
	best := bestRule(rules, iface, p)
	if best == nil {
		if iface.DefaultDeny && tuplePasses(iface, p) {
			return Decision{Action: ActionPass}
		}
		return deflt
	}
	d := Decision{Action: best.Action, RuleID: best.ID}
	if best.Action == ActionTProxy {
		d.TProxyPort = best.TProxyPort
	}
	return d
}

// bestRule is the matching rule that takes precedence, or nil.
func bestRule(rules []Rule, iface Interface, p Packet) *Rule {
	var best *Rule
	for i := range rules {
		r := &rules[i]
		if candidate(r, iface, p) && p.DstPort >= r.PortLow && p.DstPort <= r.PortHigh &&
			(best == nil || outranks(r, best)) {
			best = r
		}
	}
	return best
}

// fragmentDecision: a fragment passes only if every rule that could
// match it on some port passes, and either the default passes or one of
// those rules passes every port.
func fragmentDecision(rules []Rule, iface Interface, p Packet, passByDefault bool) Decision {
	fullPass := false
	for i := range rules {
		r := &rules[i]
		if !candidate(r, iface, p) {
			continue
		}
		if r.Action != ActionPass {
			return Decision{Action: ActionDeny}
		}
		if r.PortLow <= 1 && r.PortHigh == 65535 {
			fullPass = true
		}
	}
	if fullPass || passByDefault {
		return Decision{Action: ActionPass}
	}
	return Decision{Action: ActionDeny}
}

// evaluateEgress: with the outbound filter off everything leaves; on,
// TCP and UDP need an egress rule that passes (no match is a drop), and a
// fragment leaves only if every port would.
func evaluateEgress(rules []Rule, iface Interface, p Packet) Decision {
	pass := Decision{Action: ActionPass}
	if !iface.OutboundFilter || (p.Proto != ProtoTCP && p.Proto != ProtoUDP) {
		return pass
	}
	if p.Fragment {
		return fragmentDecision(rules, iface, p, false)
	}
	best := bestRule(rules, iface, p)
	if best == nil || best.Action != ActionPass {
		d := Decision{Action: ActionDeny}
		if best != nil {
			d.RuleID = best.ID
		}
		return d
	}
	return Decision{Action: ActionPass, RuleID: best.ID}
}

// candidate reports whether r matches p on everything but the port.
func candidate(r *Rule, iface Interface, p Packet) bool {
	if r.Egress != p.Egress || r.Proto != p.Proto || !r.Dst.Contains(p.Dst) {
		return false
	}
	if r.Src.IsValid() && !r.Src.Contains(p.Src) {
		return false
	}
	if len(r.Interfaces) == 0 {
		return !iface.PerInterface
	}
	for _, ifx := range r.Interfaces {
		if ifx == p.Ifindex {
			return true
		}
	}
	return false
}

// outranks reports whether a takes precedence over b.
func outranks(a, b *Rule) bool {
	if a.Dst.Bits() != b.Dst.Bits() {
		return a.Dst.Bits() > b.Dst.Bits()
	}
	if a.SrcBits() != b.SrcBits() {
		return a.SrcBits() > b.SrcBits()
	}
	return a.Seq < b.Seq
}

// otherPasses: what a default-deny interface admits of IP protocols other
// than TCP and UDP.
func otherPasses(iface Interface, p Packet) bool {
	t := p.ICMPType
	switch {
	case p.Proto == 1 && p.Dst.Is4():
		if t == 8 || t == 0 {
			return iface.ICMPEcho
		}
		return t == 3 || t == 11 || t == 12
	case p.Proto == 58 && p.Dst.Is6():
		if t == 128 || t == 129 {
			return iface.ICMPEcho
		}
		return (t >= 1 && t <= 4) || (t >= 133 && t <= 137)
	case p.Proto == 112:
		return iface.VRRP
	}
	return iface.PassNonTuple
}

// tuplePasses: what a default-deny interface admits of TCP and UDP that
// no rule matched: DHCP replies, and SSH to its own addresses.
func tuplePasses(iface Interface, p Packet) bool {
	if p.Proto == ProtoUDP {
		if p.Dst.Is4() {
			return p.SrcPort == 67 && p.DstPort == 68
		}
		return p.SrcPort == 547 && p.DstPort == 546
	}
	if p.DstPort != 22 || iface.DisableSSH {
		return false
	}
	for _, a := range iface.Addrs {
		if a == p.Dst {
			return true
		}
	}
	return false
}
