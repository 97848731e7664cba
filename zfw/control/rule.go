package control

import (
	"fmt"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/zfw"
)

// Rule is one rule as the zfw command's -I gives it.
type Rule struct {
	Match
	// TProxyPort is the listener on the loopback address that matching
	// flows are steered to; 0 passes them to the host (-t 0).
	TProxyPort uint16 `json:"tproxyPort,omitzero"`
	// Deny drops matching packets (-d); TProxyPort must then be 0.
	Deny bool `json:"deny,omitzero"`
	// ServiceID tags the rule with the service it intercepts (-s).
	ServiceID string `json:"serviceId,omitzero"`
}

// Match is what identifies a rule: the C zfw's key (destination,
// source, protocol) and port range, plus the interfaces it applies on.
type Match struct {
	Destination netip.Prefix        `json:"destination"`
	Source      netip.Prefix        `json:"source,omitzero"` // zero: any source
	Protocol    intercept.Protocol  `json:"protocol"`
	Ports       intercept.PortRange `json:"ports"`
	// Interfaces the rule applies on (-N); none means all of them.
	Interfaces []string `json:"interfaces,omitzero"`
	// Egress: the rule decides new flows leaving an interface whose
	// outbound filter is on (-z egress), and only passes or drops.
	Egress bool `json:"egress,omitzero"`
}

// Direction limits Flush to the rules of one direction.
type Direction string

// Directions.
const (
	BothDirections Direction = ""
	Ingress        Direction = "ingress"
	Egress         Direction = "egress"
)

func (d Direction) check() error {
	switch d {
	case BothDirections, Ingress, Egress:
		return nil
	}
	return fmt.Errorf("direction %q: ingress or egress", string(d))
}

// holds reports whether a rule of the given direction is d's.
func (d Direction) holds(egress bool) bool {
	return d == BothDirections || (d == Egress) == egress
}

func (m Match) String() string {
	src := "any"
	if m.Source.IsValid() {
		src = m.Source.String()
	}
	s := fmt.Sprintf("%s %s from %s ports %s", m.Protocol, m.Destination, src, m.Ports)
	if len(m.Interfaces) > 0 {
		s += " on " + strings.Join(m.Interfaces, ",")
	}
	if m.Egress {
		s += " (egress)"
	}
	return s
}

// FirewallRule is the rule of package zfw that r stands for.
func (r Rule) FirewallRule() zfw.Rule {
	zr := zfw.Rule{
		Action:      zfw.Pass,
		Protocol:    r.Protocol,
		Destination: r.Destination,
		Source:      r.Source,
		Ports:       r.Ports,
		ServiceID:   r.ServiceID,
		Interfaces:  r.Interfaces,
		Egress:      r.Egress,
	}
	switch {
	case r.Deny:
		zr.Action = zfw.Deny
	case r.TProxyPort != 0:
		zr.Action, zr.TProxyPort = zfw.TProxy, r.TProxyPort
	}
	return zr
}

// sameEffect reports whether an installed rule does what r does,
// interfaces aside.
func sameEffect(ri zfw.RuleInfo, r zfw.Rule) bool {
	return ri.Action == r.Action && ri.TProxyPort == r.TProxyPort && ri.ServiceID == r.ServiceID
}

// sameSet reports whether two interface lists hold the same names.
func sameSet(a, b []string) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(s string) bool { return !slices.Contains(b, s) })
}

// union is a followed by the names of b it lacks.
func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// BuildVersion is this program's version, from its build information:
// the module version, or the VCS revision of a development build.
func BuildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "devel"
	}
	return "devel-" + rev[:min(12, len(rev))] + dirty
}
