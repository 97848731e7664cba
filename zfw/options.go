package zfw

import (
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/internal/policy"
	"github.com/zfw-go/zfw/zfw/ddos"
)

// DefaultPinPath is where the dataplane's maps and links are pinned.
const DefaultPinPath = "/sys/fs/bpf/zfw"

// Defaults of the policy routing options.
const (
	// defaultMark is the skb mark put on steered packets ("ZF" in the top
	// half, clear of the low bits other software tends to use).
	defaultMark uint32 = 0x5a460000
	// defaultRouteTable holds the local default routes for marked packets.
	defaultRouteTable = 23110
	// defaultRulePriority places the fwmark rule before the main table.
	defaultRulePriority = 100
)

// Options configure New.
type Options struct {
	// Interfaces to attach the ingress program to.
	Interfaces []Interface
	// PinPath is the folder, on a bpf filesystem, holding the pinned
	// maps and links. Default DefaultPinPath. One process owns it at a
	// time; a later New over a dataplane kept with KeepOnClose adopts it.
	PinPath string
	// KeepOnClose leaves the dataplane attached and its rules in place
	// when the Firewall closes, for a restarting process to adopt.
	KeepOnClose bool
	// RulesOnly opens a dataplane another process kept (KeepOnClose)
	// only to read and change its rules, as the zfw command does when no
	// process serves it: New fails with an error wrapping ErrNoDataplane
	// when nothing is pinned at PinPath; it attaches, detaches and routes
	// nothing; the stored mark, timeouts and limits stay in force
	// (the options' are ignored); and Close keeps the dataplane.
	// Interfaces must be empty.
	RulesOnly bool
	// Mark, RouteTable and RulePriority shape the policy routing that
	// delivers steered packets locally (one rule and one route per
	// family). Zero means the default: mark 0x5a460000 ("ZF" in the top
	// half, clear of the low bits other software tends to use), table
	// 23110, and rule priority 100 (before the main table).
	Mark         uint32
	RouteTable   int
	RulePriority int
	// MaxRules and MaxPrefixes size the rule maps: range_map (and the
	// maps keyed by rule) and, per family, zt_tproxy_map. Zero means the
	// C zfw's sizes, 250,000 and 100,000. range_map is an array: its
	// memory is taken up front (about 40 bytes a rule). An adopted
	// dataplane keeps the sizes it was made with.
	MaxRules, MaxPrefixes int
	// Timeouts of the sessions a default-deny interface tracks.
	Timeouts Timeouts
	// SYNFlood tunes DDoS protection.
	SYNFlood ddos.SYNFlood
	// EventsPerSecond caps, per CPU, the events verbose interfaces send
	// to Events; the rest are counted (Stats.EventsLimited). Default 1000.
	EventsPerSecond int
	// LegacyTC attaches with a clsact filter even where the kernel has
	// TCX (kernels before 6.6 fall back to it by themselves).
	LegacyTC bool
	// Logger receives the firewall's logs. Default: a logger that
	// discards everything below warnings.
	Logger logrus.FieldLogger

	// InMemory keeps the maps in memory and touches no kernel state:
	// nothing is loaded, attached or routed. Rules behave exactly as in
	// the kernel maps, limits included. It exists for unit tests; see
	// package zfwtest.
	InMemory bool
	// InterfaceIndex resolves interface names in InMemory mode (the
	// kernel mode asks netlink). Nil there means no interface names
	// resolve.
	InterfaceIndex func(name string) (int, error)
}

// Timeouts are idle timeouts of tracked sessions: an expired session
// admits nothing more. Zero means the default.
type Timeouts struct {
	// TCPEstablished: an established TCP session, default 60 minutes.
	TCPEstablished time.Duration
	// TCPTransitory: a TCP session opening or closing, default 2 minutes.
	TCPTransitory time.Duration
	// UDP: a UDP session, default 30 seconds.
	UDP time.Duration
	// ICMPEcho: an echo request awaiting its reply, default 15 seconds.
	ICMPEcho time.Duration
}

// Interface is an interface to attach to and its settings.
type Interface struct {
	Name string
	InterfaceSettings
}

// InterfaceSettings are per-interface dataplane settings (diag_map).
type InterfaceSettings struct {
	// DefaultDeny makes the interface a host firewall: TCP and UDP
	// packets that no rule matches are dropped, and other traffic too but
	// for the passthroughs below, except replies to sessions opened
	// outwards through the interface, which the egress program tracks.
	// Off, unmatched packets go to the host unchanged and only
	// intercepted traffic is affected.
	DefaultDeny bool
	// PerInterfaceRules applies only rules that name this interface.
	PerInterfaceRules bool
	// Verbose emits an event for every dropped packet.
	Verbose bool

	// What a DefaultDeny interface admits without a rule, so the host
	// keeps its network. ARP, IPv6 neighbour and router discovery, DHCP
	// replies and ICMP errors always pass.

	// ICMPEcho admits ICMP and ICMPv6 echo requests and replies.
	ICMPEcho bool
	// DisableSSH stops the default admission of SSH (TCP 22) to the
	// interface's own addresses. Rules still apply either way.
	DisableSSH bool
	// VRRP admits IP protocol 112.
	VRRP bool
	// EAPOL admits 802.1X frames.
	EAPOL bool
	// PassNonTuple admits other IP protocols and other non-IP frames.
	PassNonTuple bool
	// DisableIPv6 drops every IPv6 packet on the interface, DefaultDeny
	// or not.
	DisableIPv6 bool
	// OutboundFilter makes new TCP and UDP flows leaving the interface
	// need an egress rule (Rule.Egress) that passes them; replies of
	// sessions opened inwards, and packets of sessions already opened
	// outwards, leave without one.
	OutboundFilter bool
	// DDoSProtection bans sources that send more SYNs per second than
	// Options.SYNFlood allows (to protected ports, or all ports when none
	// are protected; see Firewall.DDoS); a banned source's packets are
	// dropped before any other work until its ban ends.
	DDoSProtection bool
	// TunnelMode sends intercepted flows into the Ziti tun set with
	// Firewall.SetTunnel instead of to their TPROXY sockets (as
	// ziti-edge-tunnel's tun mode wants); without a tun set they go to
	// their sockets.
	TunnelMode bool
	// OTFiltering filters industrial protocols: DNP3 frames (TCP port
	// 20000) need an allowed function code (Firewall.OT) and, from the
	// outstation, a clear DIR bit; a Modbus/TCP response (from port 502)
	// must answer a request that left through the interface, once.
	OTFiltering bool
	// Masquerade source-translates TCP and UDP leaving the interface to
	// its first address of the packet's family (global IPv6 addresses
	// before link-local ones), keeping the source port unless another
	// flow to the same remote end holds it, and translates replies back.
	// The host's own traffic is left alone.
	Masquerade bool
}

func (o Options) withDefaults() (Options, error) {
	if o.PinPath == "" {
		o.PinPath = DefaultPinPath
	}
	if o.Mark == 0 {
		o.Mark = defaultMark
	}
	if o.RouteTable == 0 {
		o.RouteTable = defaultRouteTable
	}
	if o.RulePriority == 0 {
		o.RulePriority = defaultRulePriority
	}
	if o.Logger == nil {
		l := logrus.New()
		l.SetLevel(logrus.WarnLevel)
		o.Logger = l
	}
	if o.RulesOnly {
		if o.InMemory {
			return o, errors.New("options: RulesOnly opens a pinned dataplane; InMemory has none")
		}
		if len(o.Interfaces) > 0 {
			return o, errors.New("options: RulesOnly attaches nothing; Interfaces must be empty")
		}
		o.KeepOnClose = true
	}
	seen := make(map[string]bool)
	for i, ifc := range o.Interfaces {
		if err := validIfname(ifc.Name); err != nil {
			return o, fmt.Errorf("options: interfaces[%d]: %w", i, err)
		}
		if seen[ifc.Name] {
			return o, fmt.Errorf("options: interfaces[%d]: %s listed twice", i, ifc.Name)
		}
		seen[ifc.Name] = true
	}
	for _, t := range []struct {
		d   *time.Duration
		def time.Duration
	}{
		{&o.Timeouts.TCPEstablished, 60 * time.Minute},
		{&o.Timeouts.TCPTransitory, 2 * time.Minute},
		{&o.Timeouts.UDP, 30 * time.Second},
		{&o.Timeouts.ICMPEcho, 15 * time.Second},
	} {
		if *t.d < 0 {
			return o, fmt.Errorf("options: timeouts must not be negative")
		}
		if *t.d == 0 {
			*t.d = t.def
		}

	}
	if o.SYNFlood.SYNsPerSecond < 0 || o.SYNFlood.BanDuration < 0 {
		return o, fmt.Errorf("options: SYNFlood values must not be negative")
	}
	if o.SYNFlood.SYNsPerSecond == 0 {
		o.SYNFlood.SYNsPerSecond = 100
	}
	if o.SYNFlood.BanDuration == 0 {
		o.SYNFlood.BanDuration = 5 * time.Minute
	}
	if o.EventsPerSecond < 0 {
		return o, fmt.Errorf("options: EventsPerSecond must not be negative")
	}
	if o.EventsPerSecond == 0 {
		o.EventsPerSecond = 1000
	}
	if o.MaxRules == 0 {
		o.MaxRules = policy.MaxRules
	}
	if o.MaxPrefixes == 0 {
		o.MaxPrefixes = policy.MaxPrefixes
	}
	if o.MaxRules < 0 || o.MaxPrefixes < 0 || o.MaxRules > 1<<24 || o.MaxPrefixes > 1<<24 {
		return o, fmt.Errorf("options: MaxRules and MaxPrefixes must be between 1 and %d", 1<<24)
	}
	if o.RouteTable < 0 || o.RulePriority < 0 {
		return o, errors.New("options: RouteTable and RulePriority must not be negative")
	}
	return o, nil
}

func validIfname(name string) error {
	if name == "" || len(name) > 15 {
		return fmt.Errorf("interface name %q: must be 1 to 15 bytes", name)
	}
	for _, c := range name {
		if c == '/' || c <= ' ' || c == 0x7f {
			return fmt.Errorf("interface name %q: contains %q", name, c)
		}
	}
	return nil
}
