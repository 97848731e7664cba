// Package conntrack holds the sessions the dataplane tracks, as
// zfw.Firewall.Sessions lists and counts them: sessions opened outwards,
// whose replies it admits, and sessions a rule admitted inwards, whose
// later packets take the fast path.
package conntrack

import (
	"net/netip"
	"time"

	"github.com/zfw-go/zfw/intercept"
)

// Direction says which side opened a session.
type Direction string

// Directions.
const (
	// Outbound sessions were opened from this side: the host, or a client
	// it routes, sent the first packet out of the interface.
	Outbound Direction = "outbound"
	// Inbound sessions were opened from the far side and admitted by a
	// rule; their later packets take the fast path.
	Inbound Direction = "inbound"
)

// Session is one tracked session.
type Session struct {
	Direction Direction
	Protocol  intercept.Protocol
	// Interface the session passes through.
	Interface string
	// Client opened the session; Server answers it.
	Client, Server netip.AddrPort
	// State: for TCP "opening" (SYN sent), "answered" (SYN-ACK seen),
	// "established", "closing"; for UDP "active".
	State string
	// Idle is the time since the session's last packet.
	Idle time.Duration
	// Expired sessions admit nothing; garbage collection removes them.
	Expired bool
	// TProxyPort is the listener an inbound session's packets are
	// steered to; zero when the rule that admitted it passes them to the
	// host.
	TProxyPort uint16
}

// Filter selects sessions; zero fields match everything.
type Filter struct {
	Direction Direction
	Protocol  intercept.Protocol
	Interface string
	// Address matches sessions whose client or server is inside it.
	Address netip.Prefix
}

// Match reports whether s is one of the sessions f selects.
func (f Filter) Match(s Session) bool {
	if f.Direction != "" && f.Direction != s.Direction {
		return false
	}
	if f.Protocol != "" && f.Protocol != s.Protocol {
		return false
	}
	if f.Interface != "" && f.Interface != s.Interface {
		return false
	}
	if f.Address.IsValid() && !f.Address.Contains(s.Client.Addr()) && !f.Address.Contains(s.Server.Addr()) {
		return false
	}
	return true
}

// Count is how full the session maps are.
type Count struct {
	// Outbound sessions.
	TCP, UDP int
	// Inbound sessions.
	InboundTCP, InboundUDP int
	// Capacity of each of the four maps.
	MaxTCP, MaxUDP int
}
