// Package event holds what the dataplane reports as it happens: drops,
// steers, session changes and SYN-flood bans. zfw.Firewall.Events streams
// them; an Event prints in the layout of the C zfw's monitor (zfw -M).
package event

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Event is one dataplane event. Interfaces emit events only when set
// Verbose, and at most zfw.Options.EventsPerSecond per CPU.
type Event struct {
	Time      time.Time
	Kind      Kind
	Interface string
	// Egress is true for events of packets leaving the interface.
	Egress bool
	// Protocol is the IP protocol number (6 TCP, 17 UDP, …).
	Protocol uint8
	Src, Dst netip.AddrPort
	TCPFlags uint8
	// RuleID is the rule that decided, when one did.
	RuleID uint32
	// TProxyPort is the listener a steered packet went to, or was meant
	// for when Reason is ReasonNoListener or ReasonAssignFailed.
	TProxyPort uint16
	// Reason says why a packet was dropped, for Drop.
	Reason Reason
	// Session is what changed, for Session events.
	Session Change
	// SrcMAC and DstMAC are the frame's, when it has an Ethernet header.
	SrcMAC, DstMAC net.HardwareAddr
}

// Kind says what an Event reports. The values are the dataplane's own
// (enum zfw_event_kind in bpf/include/zfw.h).
type Kind uint8

// Event kinds.
const (
	// Drop: a packet was dropped; Event.Reason says why.
	Drop Kind = 1
	// Steer: a new flow was handed to its TPROXY listener.
	Steer Kind = 2
	// Session: a tracked session changed state; Event.Session says how.
	Session Kind = 3
	// Ban: a source was banned for flooding SYNs.
	Ban Kind = 4
)

// String returns the kind's name: drop, steer, session, ban.
func (k Kind) String() string {
	switch k {
	case Drop:
		return "drop"
	case Steer:
		return "steer"
	case Session:
		return "session"
	case Ban:
		return "ban"
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Change is what happened to a tracked session: the dataplane's values
// (enum zfw_track).
type Change uint8

// Session changes.
const (
	OpenedOut   Change = 1
	OpenedIn    Change = 2
	Established Change = 3
	Closed      Change = 4
	Reset       Change = 5
	Expired     Change = 6
)

// String returns the change's name as the monitor prints it.
func (c Change) String() string {
	switch c {
	case OpenedOut:
		return "opened outwards"
	case OpenedIn:
		return "opened inwards"
	case Established:
		return "established"
	case Closed:
		return "closed"
	case Reset:
		return "reset"
	case Expired:
		return "expired"
	}
	return fmt.Sprintf("change(%d)", uint8(c))
}

// Reason says why a packet was dropped: the dataplane's values (enum
// zfw_reason); zero is none.
type Reason uint8

// Drop reasons.
const (
	ReasonMalformed    Reason = 1
	ReasonRuleDeny     Reason = 2
	ReasonDefaultDeny  Reason = 3
	ReasonFragment     Reason = 4
	ReasonNoListener   Reason = 5
	ReasonAssignFailed Reason = 6
	ReasonBanned       Reason = 7
	ReasonDNP3Blocked  Reason = 8
	ReasonDNP3Dir      Reason = 9
	ReasonModbus       Reason = 10
	ReasonMasquerade   Reason = 11
	ReasonNotAllowed   Reason = 12
)

// String returns why, in the monitor's words.
func (r Reason) String() string {
	switch r {
	case 0:
		return ""
	case ReasonMalformed:
		return "malformed"
	case ReasonRuleDeny:
		return "denied by rule"
	case ReasonDefaultDeny:
		return "no rule (default deny)"
	case ReasonFragment:
		return "fragment"
	case ReasonNoListener:
		return "no TPROXY listener"
	case ReasonAssignFailed:
		return "socket assign failed"
	case ReasonBanned:
		return "source banned (SYN flood)"
	case ReasonDNP3Blocked:
		return "DNP3 function code blocked"
	case ReasonDNP3Dir:
		return "DNP3 direction bit set"
	case ReasonModbus:
		return "Modbus response without a request"
	case ReasonMasquerade:
		return "masquerade translation failed"
	case ReasonNotAllowed:
		return "source not on the DDoS allow-list"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// String formats the event like `zfw -M`:
//
//	Nov 29 2026 04:12:33.123456789 : eth0 : INGRESS : TCP :10.0.0.2:40000 > 10.9.0.5:80 | tproxy ---> 127.0.0.1:7000
func (e Event) String() string {
	var b strings.Builder
	dir := "INGRESS"
	if e.Egress {
		dir = "EGRESS"
	}
	fmt.Fprintf(&b, "%s : %s : %s : %s :%s > %s", e.Time.Format("Jan 02 2006 15:04:05.000000000"),
		e.Interface, dir, protoLabel(e.Protocol), e.Src, e.Dst)
	switch e.Kind {
	case Steer:
		lo := "127.0.0.1"
		if e.Dst.Addr().Is6() {
			lo = "::1"
		}
		fmt.Fprintf(&b, " | tproxy ---> %s", net.JoinHostPort(lo, fmt.Sprint(e.TProxyPort)))
	case Drop:
		fmt.Fprintf(&b, " | DROP: %s", e.Reason)
		if e.RuleID != 0 {
			fmt.Fprintf(&b, " (rule %d)", e.RuleID)
		}
	case Session:
		fmt.Fprintf(&b, " | session %s", e.Session)
	case Ban:
		b.WriteString(" | SYN flood: source banned")
	default:
		fmt.Fprintf(&b, " | %s", e.Kind)
	}
	return b.String()
}

// protoLabel is the monitor's name of an IP protocol.
func protoLabel(p uint8) string {
	switch p {
	case 6:
		return "TCP"
	case 17:
		return "UDP"
	case 1:
		return "ICMP"
	case 58:
		return "ICMPv6"
	}
	return fmt.Sprintf("PROTO%d", p)
}
