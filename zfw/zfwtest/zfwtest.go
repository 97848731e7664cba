// Package zfwtest lets tunneler authors unit-test their use of zfw
// without root: New returns a real *zfw.Firewall whose maps live in
// memory (same layouts, capacities and errors as the kernel's), and
// Verdict answers what the dataplane would do with a packet, from a
// pure-Go reference model of the policy.
//
//	fw := zfwtest.New(t, zfw.Interface{Name: "eth0"})
//	myTunneler.Start(fw.Firewall)
//	v := fw.Verdict(zfwtest.TCP("192.168.1.5:40000", "10.9.0.5:8080", "eth0"))
//	if v.Action != zfw.TProxy || v.ServiceID != "svc1" { … }
package zfwtest

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/internal/policy"
	"github.com/zfw-go/zfw/zfw"
)

// Firewall is an in-memory *zfw.Firewall plus the reference model.
type Firewall struct {
	*zfw.Firewall
	index map[string]int
	addrs map[string][]netip.Addr
}

// SetAddresses tells the reference model an interface's own addresses
// (the kernel dataplane learns them from netlink), which a default-deny
// interface admits SSH to.
func (f *Firewall) SetAddresses(iface string, addrs ...netip.Addr) {
	f.addrs[iface] = addrs
}

// New returns an in-memory firewall "attached" to the given interfaces
// (indexes are assigned from 2 up; "lo" is 1). It is closed when the test
// ends.
func New(tb testing.TB, ifaces ...zfw.Interface) *Firewall {
	tb.Helper()
	f, err := Open(ifaces...)
	if err != nil {
		tb.Fatalf("zfwtest: %v", err)
	}
	tb.Cleanup(func() { f.Close() })
	return f
}

// Open is New outside a test (an Example, a tool): the caller closes the
// Firewall.
func Open(ifaces ...zfw.Interface) (*Firewall, error) {
	index := map[string]int{"lo": 1}
	for i, ifc := range ifaces {
		if ifc.Name != "lo" {
			index[ifc.Name] = i + 2
		}
	}
	fw, err := zfw.New(zfw.Options{
		Interfaces: ifaces,
		InMemory:   true,
		InterfaceIndex: func(name string) (int, error) {
			if idx, ok := index[name]; ok {
				return idx, nil
			}
			return 0, fmt.Errorf("interface %s: no such interface", name)
		},
	})
	if err != nil {
		return nil, err
	}
	return &Firewall{Firewall: fw, index: index, addrs: map[string][]netip.Addr{}}, nil
}

// Packet is a packet arriving on an interface.
type Packet struct {
	Protocol intercept.Protocol
	Src, Dst netip.AddrPort
	// Interface it arrives on; empty means the first attached one.
	Interface string
	// Fragment marks an IP fragment (its ports are not used).
	Fragment bool
	// IPProto, for packets that are neither TCP nor UDP (Protocol
	// empty): 1 ICMP, 58 ICMPv6, 112 VRRP, …; ICMPType with it.
	IPProto  uint8
	ICMPType uint8
}

// TCP builds a TCP packet from "addr:port" strings; it panics on a bad
// address, as test fixtures do.
func TCP(src, dst, iface string) Packet {
	return Packet{Protocol: intercept.TCP, Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort(dst), Interface: iface}
}

// UDP is TCP's twin for UDP.
func UDP(src, dst, iface string) Packet {
	p := TCP(src, dst, iface)
	p.Protocol = intercept.UDP
	return p
}

// Verdict is what the dataplane does with a packet.
type Verdict struct {
	// Action: zfw.Pass, zfw.Deny or zfw.TProxy.
	Action zfw.Action
	// RuleID of the matching rule, 0 when none matched.
	RuleID uint32
	// ServiceID of the matching rule, if it has one.
	ServiceID string
	// TProxyPort receives the packet when Action is zfw.TProxy.
	TProxyPort uint16
}

// Verdict evaluates p against the installed rules and interface settings.
func (f *Firewall) Verdict(p Packet) Verdict {
	iface := p.Interface
	settings := policy.Interface{}
	attached := f.Interfaces()
	if iface == "" && len(attached) > 0 {
		iface = attached[0].Name
	}
	for _, ifc := range attached {
		if ifc.Name == iface {
			settings = policy.Interface{
				DefaultDeny: ifc.DefaultDeny, PerInterface: ifc.PerInterfaceRules,
				ICMPEcho: ifc.ICMPEcho, DisableSSH: ifc.DisableSSH, VRRP: ifc.VRRP,
				PassNonTuple: ifc.PassNonTuple, DisableIPv6: ifc.DisableIPv6,
				Addrs: f.addrs[iface],
			}
		}
	}
	infos := f.Rules().List()
	rules := make([]policy.Rule, 0, len(infos))
	for _, ri := range infos {
		r := policy.Rule{
			ID: ri.ID, Seq: ri.Order, ServiceID: ri.ServiceID,
			Proto: protoNumber(ri.Protocol, 0), Dst: ri.Destination, Src: ri.Source,
			PortLow: ri.Ports.Low, PortHigh: ri.Ports.High,
			Action: policy.Action(ri.Action), TProxyPort: ri.TProxyPort,
		}
		for _, name := range ri.Interfaces {
			r.Interfaces = append(r.Interfaces, f.index[name])
		}
		rules = append(rules, r)
	}
	d := policy.Evaluate(rules, settings, policy.Packet{
		Src: p.Src.Addr().Unmap(), Dst: p.Dst.Addr().Unmap(), Proto: protoNumber(p.Protocol, p.IPProto),
		SrcPort: p.Src.Port(), DstPort: p.Dst.Port(), Ifindex: f.index[iface], Fragment: p.Fragment,
		ICMPType: p.ICMPType,
	})
	v := Verdict{Action: zfw.Action(d.Action), RuleID: d.RuleID, TProxyPort: d.TProxyPort}
	for _, ri := range infos {
		if ri.ID == d.RuleID {
			v.ServiceID = ri.ServiceID
		}
	}
	return v
}

func protoNumber(p intercept.Protocol, ipProto uint8) uint8 {
	switch p {
	case intercept.TCP:
		return policy.ProtoTCP
	case intercept.UDP:
		return policy.ProtoUDP
	}
	return ipProto
}
